"""Which nodes to clean, and which of them can run a pod right now."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .kube import NODES, Kube
from .selectors import from_label_selector


@dataclass(frozen=True)
class NodeInfo:
    name: str
    ready: bool
    why_not_ready: str = ""


def list_nodes(kube: Kube, selector: Mapping[str, str],
               expressions: Sequence[Mapping[str, Any]] = ()) -> list[NodeInfo]:
    """Every matching node, control-plane, tainted and cordoned ones included (node pods tolerate all)."""
    query = from_label_selector({"matchLabels": selector, "matchExpressions": list(expressions)})
    infos, _ = kube.list_reduced(NODES, _info, query={"labelSelector": query} if query else None)
    return sorted(infos, key=lambda n: n.name)


def _info(node: Mapping[str, Any]) -> NodeInfo:
    name = node["metadata"]["name"]
    for condition in (node.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            if condition.get("status") == "True":
                return NodeInfo(name, True)
            why = condition.get("message") or condition.get("reason") or "Ready is " + str(condition.get("status"))
            return NodeInfo(name, False, f"NotReady: {why}")
    return NodeInfo(name, False, "NotReady: the node reports no Ready condition")
