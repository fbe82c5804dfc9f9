"""Label and field selectors, parsed once per request and matched per object.

Label selector grammar (as in ``k8s.io/apimachinery/pkg/labels``): comma-separated requirements,
each ``key``, ``!key``, ``key=value``, ``key==value``, ``key!=value``, ``key in (a,b)``,
``key notin (a,b)``. ``key!=value`` and ``notin`` match objects that lack the key (as upstream).

Field selectors: ``field=value``, ``field==value``, ``field!=value``, comma-separated, on the fields
each resource declares as selectable (an unknown field is a 400, as upstream).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

_SET_RE = re.compile(r"^\s*([^\s!=(),]+)\s+(in|notin)\s+\(([^)]*)\)\s*$")
_EQ_RE = re.compile(r"^\s*([^\s!=(),]+)\s*(==|=|!=)\s*([^\s!=(),]*)\s*$")
_EXISTS_RE = re.compile(r"^\s*(!?)\s*([^\s!=(),]+)\s*$")


class SelectorError(ValueError):
    """A selector that does not parse (served as 400 BadRequest)."""


@dataclass(frozen=True)
class Requirement:
    key: str
    op: str  # "exists", "!exists", "=", "!=", "in", "notin"
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        if self.op == "exists":
            return present
        if self.op == "!exists":
            return not present
        if self.op in ("=", "in"):
            return present and labels[self.key] in self.values
        # "!=" and "notin" match objects lacking the key.
        return not present or labels[self.key] not in self.values


def _split_top_level(text: str) -> list[str]:
    parts: list[str] = []
    depth = 0
    current: list[str] = []
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return [part for part in parts if part.strip()]


@dataclass(frozen=True)
class LabelSelector:
    requirements: tuple[Requirement, ...] = ()

    @classmethod
    def parse(cls, text: str | None) -> LabelSelector:
        if not text:
            return cls()
        reqs: list[Requirement] = []
        for part in _split_top_level(text):
            if m := _SET_RE.match(part):
                values = frozenset(v.strip() for v in m.group(3).split(",") if v.strip())
                reqs.append(Requirement(m.group(1), m.group(2), values))
            elif m := _EQ_RE.match(part):
                op = "!=" if m.group(2) == "!=" else "="
                reqs.append(Requirement(m.group(1), op, frozenset([m.group(3)])))
            elif m := _EXISTS_RE.match(part):
                reqs.append(Requirement(m.group(2), "!exists" if m.group(1) else "exists"))
            else:
                raise SelectorError(f"unable to parse requirement: {part.strip()!r}")
        return cls(tuple(reqs))

    @classmethod
    def from_dict(cls, selector: Mapping[str, Any] | None) -> LabelSelector:
        """A ``metav1.LabelSelector`` (matchLabels + matchExpressions) as used in specs."""
        if not selector:
            return cls()
        reqs = [Requirement(k, "=", frozenset([v])) for k, v in (selector.get("matchLabels") or {}).items()]
        ops = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!exists"}
        for expr in selector.get("matchExpressions") or []:
            reqs.append(Requirement(expr["key"], ops[expr["operator"]], frozenset(expr.get("values") or [])))
        return cls(tuple(reqs))

    def __bool__(self) -> bool:
        return bool(self.requirements)

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        labels = labels or {}
        return all(req.matches(labels) for req in self.requirements)


def _get_path(obj: Mapping[str, Any], path: str) -> str:
    value: Any = obj
    for part in path.split("."):
        if not isinstance(value, Mapping):
            return ""
        value = value.get(part)
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# Extra field getters where the selectable value is not a plain path.
FieldGetter = Callable[[Mapping[str, Any]], str]


@dataclass(frozen=True)
class FieldSelector:
    terms: tuple[tuple[str, bool, str], ...] = ()  # (field, equal?, value)

    @classmethod
    def parse(cls, text: str | None, supported: frozenset[str]) -> FieldSelector:
        if not text:
            return cls()
        terms: list[tuple[str, bool, str]] = []
        for part in text.split(","):
            if not part.strip():
                continue
            m = re.match(r"^\s*([^\s!=]+)\s*(==|=|!=)\s*(.*?)\s*$", part)
            if not m:
                raise SelectorError(f"invalid selector: {part!r}; can't understand {part!r}")
            field = m.group(1)
            if field not in supported:
                raise SelectorError(f'field label not supported: {field}')
            terms.append((field, m.group(2) != "!=", m.group(3)))
        return cls(tuple(terms))

    def __bool__(self) -> bool:
        return bool(self.terms)

    def matches(self, obj: Mapping[str, Any]) -> bool:
        return all((_get_path(obj, field) == value) == equal for field, equal, value in self.terms)

    def exact(self, field: str) -> str | None:
        """The value a positive ``field=value`` term pins (for index look-ups), if any."""
        for name, equal, value in self.terms:
            if name == field and equal:
                return value
        return None
