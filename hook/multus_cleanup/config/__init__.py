"""The one config model shared by the node engine and the orchestrator, loaded from YAML."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from . import fields as f
from .cluster import ClusterConfig, parse_cluster_config
from .errors import ConfigError
from .node import NodeConfig, parse_node_config

__all__ = ["CONFIG_ENV", "CleanupConfig", "ClusterConfig", "ConfigError", "NodeConfig", "load_config", "parse_config"]


@dataclass(frozen=True)
class CleanupConfig:
    node: NodeConfig = field(default_factory=NodeConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)


def parse_config(raw_value: object) -> CleanupConfig:
    raw = f.section(raw_value, "config")
    f.reject_unknown(raw, {"node", "cluster"}, "")
    return CleanupConfig(node=parse_node_config(raw.get("node")), cluster=parse_cluster_config(raw.get("cluster")))


CONFIG_ENV = "MULTUS_CLEANUP_CONFIG"


def load_config(path: str | None, env_text: str | None = None) -> CleanupConfig:
    """Load the YAML config from a file, else from the text of $MULTUS_CLEANUP_CONFIG (how node pods get
    theirs), else the built-in Multus v4 defaults."""
    if path is None and not env_text:
        return CleanupConfig()
    import yaml  # lazily: the default path needs no YAML parser

    if path is not None:
        source = path
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as err:
            raise ConfigError("--config", f"cannot read {path}: {err.strerror}") from err
    else:
        source, text = f"${CONFIG_ENV}", env_text or ""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ConfigError("--config", f"{source} is not valid YAML: {err}") from err
    return parse_config(raw)
