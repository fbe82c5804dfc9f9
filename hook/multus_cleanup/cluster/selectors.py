"""Label selectors as the API takes them in `labelSelector=`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def from_label_selector(selector: Mapping[str, Any]) -> str:
    """A metav1.LabelSelector (matchLabels and matchExpressions) as a selector string."""
    parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], ",".join(expr.get("values") or [])
        parts.append({"In": f"{key} in ({values})", "NotIn": f"{key} notin ({values})", "Exists": key,
                      "DoesNotExist": f"!{key}"}[op])
    return ",".join(parts)
