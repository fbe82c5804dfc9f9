"""The one report model: what a node cleanup found, did and verified. JSON for machines, text for people."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Move:
    """A rename on the node: a restored primary config, or a file moved into the backup dir."""

    source: str
    target: str

    def to_dict(self) -> dict[str, str]:
        return {"from": self.source, "to": self.target}


@dataclass(frozen=True)
class Kept:
    path: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"path": self.path, "reason": self.reason}


@dataclass
class NodeReport:
    node: str
    host_root: str
    dry_run: bool = False
    clean: bool = False
    found: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    restored: list[Move] = field(default_factory=list)
    backed_up: list[Move] = field(default_factory=list)
    kept: list[Kept] = field(default_factory=list)
    primary_config: str | None = None
    pod_error_before: str | None = None
    pod_error_after: str | None = None
    errors: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA_VERSION,
            "node": self.node,
            "host_root": self.host_root,
            "dry_run": self.dry_run,
            "clean": self.clean,
            "found": self.found,
            "removed": self.removed,
            "restored": [m.to_dict() for m in self.restored],
            "backed_up": [m.to_dict() for m in self.backed_up],
            "kept": [k.to_dict() for k in self.kept],
            "primary_config": self.primary_config,
            "pod_error_before": self.pod_error_before,
            "pod_error_after": self.pod_error_after,
            "errors": self.errors,
        }

    def to_json(self, *, compact: bool = False) -> str:
        if compact:
            return json.dumps(self.to_dict(), separators=(",", ":"), sort_keys=False)
        return json.dumps(self.to_dict(), indent=2)

    def to_termination_message(self, limit: int = 4096) -> str:
        """Compact JSON within a pod's termination-message limit: long path lists are cut, counted."""
        text = self.to_json(compact=True)
        if len(text.encode()) <= limit:
            return text
        data = self.to_dict()
        for key in ("found", "removed", "kept", "backed_up", "restored", "errors"):
            items = data[key]
            while len(items) > 1 and len(json.dumps(data, separators=(",", ":")).encode()) > limit:
                items.pop()
                data["truncated"] = True
        return json.dumps(data, separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NodeReport:
        """Read a report back (the orchestrator reads node pods' reports). Raises ValueError if malformed."""
        try:
            return cls(
                node=str(data["node"]),
                host_root=str(data["host_root"]),
                dry_run=bool(data["dry_run"]),
                clean=bool(data["clean"]),
                found=[str(p) for p in data["found"]],
                removed=[str(p) for p in data["removed"]],
                restored=[Move(str(m["from"]), str(m["to"])) for m in data["restored"]],
                backed_up=[Move(str(m["from"]), str(m["to"])) for m in data["backed_up"]],
                kept=[Kept(str(k["path"]), str(k["reason"])) for k in data["kept"]],
                primary_config=None if data["primary_config"] is None else str(data["primary_config"]),
                pod_error_before=data.get("pod_error_before"),
                pod_error_after=data.get("pod_error_after"),
                errors=[str(e) for e in data["errors"]],
            )
        except (KeyError, TypeError) as err:
            raise ValueError(f"not a node report: missing or malformed {err}") from err

    @classmethod
    def from_json(cls, text: str) -> NodeReport:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(f"not a node report: {err}") from err
        if not isinstance(data, dict):
            raise ValueError("not a node report: expected a JSON object")
        return cls.from_dict(data)

    def to_text(self) -> str:
        verb = "would " if self.dry_run else ""
        mode = " [dry run: nothing changed]" if self.dry_run else ""
        lines = [f"node {self.node} (host root {self.host_root}){mode}"]
        if self.pod_error_before:
            lines.append(f"  found: {self.pod_error_before}")
        if not (self.found or self.removed or self.restored):
            lines.append("  no Multus files found")
        for move in self.restored:
            lines.append(f"  {verb}restore primary CNI config {move.source} -> {move.target}")
        for path in self.removed:
            lines.append(f"  {verb}remove {path}")
        for move in self.backed_up:
            lines.append(f"  {verb}back up {move.source} -> {move.target}")
        for kept in self.kept:
            lines.append(f"  kept {kept.path}: {kept.reason}")
        if self.primary_config:
            lines.append(f"  the runtime {'would load' if self.dry_run else 'loads'} {self.primary_config}")
        for error in self.errors:
            lines.append(f"  ERROR: {error}")
        if self.dry_run:
            lines.append(f"  result: {'clean now' if self.clean else 'not clean now'}")
        else:
            lines.append(f"  result: {'CLEAN, new pods use the primary CNI' if self.clean else 'NOT CLEAN'}")
        return "\n".join(lines)
