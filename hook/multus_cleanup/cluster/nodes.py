"""Which nodes to clean, and which of them can run a pod right now."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .kube import NODES, Kube
from .selectors import from_labels


@dataclass(frozen=True)
class NodeInfo:
    name: str
    ready: bool
    why_not_ready: str = ""


def list_nodes(kube: Kube, selector: Mapping[str, str]) -> list[NodeInfo]:
    """Every matching node, control-plane, tainted and cordoned ones included (node pods tolerate all)."""
    items, _ = kube.list_all(NODES, query={"labelSelector": from_labels(selector)} if selector else None)
    return sorted((_info(n) for n in items), key=lambda n: n.name)


def _info(node: Mapping[str, Any]) -> NodeInfo:
    name = node["metadata"]["name"]
    for condition in (node.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            if condition.get("status") == "True":
                return NodeInfo(name, True)
            why = condition.get("message") or condition.get("reason") or "Ready is " + str(condition.get("status"))
            return NodeInfo(name, False, f"NotReady: {why}")
    return NodeInfo(name, False, "NotReady: the node reports no Ready condition")
