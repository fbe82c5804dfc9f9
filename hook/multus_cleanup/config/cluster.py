"""What the orchestrator does in the cluster (the `cluster:` section). Extended by the orchestrator work."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from . import fields as f


@dataclass(frozen=True)
class ClusterConfig:
    pass


def parse_cluster_config(raw_value: object, field: str = "cluster") -> ClusterConfig:
    raw: Mapping[str, Any] = f.section(raw_value, field)
    f.reject_unknown(raw, set(), field)
    return ClusterConfig()
