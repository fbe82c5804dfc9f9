"""The one report model: what a node cleanup found, did and verified (NodeReport), how each node of a run
ended (NodeOutcome, NodeStatus) and the run's summary (Summary), with the exit codes they map to. JSON for
machines, text for people. Pure data: the node engine and the orchestrator both write it."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum
from typing import Any

SCHEMA_VERSION = 1
# The kubelet keeps the LAST 4096 bytes of a termination message file: a longer report loses its start and
# no longer parses. Reports are capped below it.
TERMINATION_MESSAGE_LIMIT = 4096
# The full report's line in the node pod's log, read when the termination message does not parse.
LOG_REPORT_PREFIX = "multus-cleanup-report: "
_LISTS = ("found", "removed", "restored", "backed_up", "kept", "errors")


class ExitCode(IntEnum):
    """The exit codes of every multus-cleanup command, defined once."""

    OK = 0  # node: the node is clean; run/check: every required node is clean
    FAILED = 1  # node: something is left or failed; run/check: a node is not clean, or the run failed
    USAGE = 2  # bad usage or an invalid config: nothing was touched


class NodeStatus(StrEnum):
    """How one node ended in a run (`check` reads CLEAN as "checked clean")."""

    CLEAN = "clean"
    NOT_CLEAN = "not clean"  # its engine ran and found or left Multus files
    FAILED = "failed"  # its cleanup pod could not run or report
    UNREACHABLE = "unreachable"  # NotReady, or no report in time: follows the unreachableNodes policy
    GONE = "gone"  # deleted during the run: nothing left to clean, never a failure



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
    truncated: bool = False  # lists or strings were cut to fit a termination message

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
            **({"truncated": True} if self.truncated else {}),
        }

    def to_json(self, *, compact: bool = False) -> str:
        if compact:
            return json.dumps(self.to_dict(), separators=(",", ":"), sort_keys=False)
        return json.dumps(self.to_dict(), indent=2)

    def to_termination_message(self, limit: int = TERMINATION_MESSAGE_LIMIT) -> str:
        """Compact JSON of at most `limit` bytes, so the kubelet keeps all of it and it parses.

        When the whole report does not fit, every list keeps its first items and every string its start,
        both halved until it fits; `truncated` says so and `omitted` counts the list items left out. The
        node pod's log has the full report (LOG_REPORT_PREFIX)."""
        text = self.to_json(compact=True)
        if len(text.encode()) <= limit:
            return text
        full = self.to_dict()
        for items, chars in _budgets(max(len(full[k]) for k in _LISTS)):
            text = json.dumps(_shrunk(full, items, chars), separators=(",", ":"))
            if len(text.encode()) <= limit:
                return text
        # Only with an absurd limit or node name: never hand the kubelet a document it would cut.
        return NodeReport(node=self.node[:63], host_root=self.host_root[:63], dry_run=self.dry_run,
                          clean=self.clean, truncated=True).to_json(compact=True)

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
                truncated=bool(data.get("truncated", False)),
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
        if self.truncated:
            lines.append("  (report shortened to fit the pod's termination message; the node pod's log has it all)")
        if self.dry_run:
            lines.append(f"  result: {'clean now' if self.clean else 'not clean now'}")
        else:
            lines.append(f"  result: {'CLEAN, new pods use the primary CNI' if self.clean else 'NOT CLEAN'}")
        return "\n".join(lines)


def _shorten(value: Any, chars: int) -> Any:
    """Every string in `value` cut to `chars` characters, marked with an ellipsis."""
    if isinstance(value, str):
        return value if len(value) <= chars else value[:chars - 1] + "\u2026"
    if isinstance(value, list):
        return [_shorten(v, chars) for v in value]
    if isinstance(value, dict):
        return {k: _shorten(v, chars) for k, v in value.items()}
    return value


def _budgets(most: int) -> list[tuple[int, int]]:
    """(items per list, characters per string), tried in order: first fewer items, keeping the first
    (most telling) error whole as long as possible, then shorter strings, then empty lists."""
    budgets, items = [(most, 1024)], most
    while items > 1:
        items //= 2
        budgets.append((max(items, 1), 1024))
    budgets += [(1, chars) for chars in (512, 256, 128, 64, 32, 16)]
    return [*budgets, (0, 16)]


def _shrunk(full: dict[str, Any], items: int, chars: int) -> dict[str, Any]:
    # The node's name stays whole: it is what the summary is keyed by.
    data = {k: v if k == "node" else _shorten(v, chars) for k, v in full.items()}
    omitted = {k: len(full[k]) - items for k in _LISTS if len(full[k]) > items}
    for key in omitted:
        data[key] = data[key][:items]
    data["truncated"] = True
    if omitted:
        data["omitted"] = omitted
    return data


def report_from_log(log: str) -> NodeReport:
    """The full report from a node pod's log: its last LOG_REPORT_PREFIX line. Raises ValueError."""
    for line in reversed(log.splitlines()):
        if line.startswith(LOG_REPORT_PREFIX):
            return NodeReport.from_json(line[len(LOG_REPORT_PREFIX):])
    raise ValueError("not a node report: the log has no report line")


@dataclass
class NodeOutcome:
    node: str
    status: NodeStatus
    detail: str = ""
    report: NodeReport | None = None
    attempts: int = 1


@dataclass
class Summary:
    command: str
    run_id: str
    multus_pods_stopped: int = 0
    outcomes: list[NodeOutcome] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    error: str | None = None
    warnings: list[str] = field(default_factory=list)
    success: bool = False
    requests: dict[str, int] = field(default_factory=dict)

    def count(self, status: NodeStatus) -> int:
        return sum(1 for o in self.outcomes if o.status == status)

    def to_json(self) -> str:
        return json.dumps({
            "command": self.command, "run": self.run_id, "success": self.success, "error": self.error,
            "warnings": self.warnings, "multus_pods_stopped": self.multus_pods_stopped,
            "nodes": {o.node: {"status": o.status, "detail": o.detail, "attempts": o.attempts,
                               "report": o.report.to_dict() if o.report else None} for o in self.outcomes},
            "deleted": self.deleted, "api_requests": self.requests,
        }, indent=2)

    def to_text(self) -> str:
        total = len(self.outcomes)
        lines = [f"multus-cleanup {self.command} (run {self.run_id})"]
        if self.command == "run":
            lines.append(f"  Multus pods stopped: {self.multus_pods_stopped}")
        counts = ", ".join(f"{self.count(s)} {s}" for s in NodeStatus if self.count(s))
        lines.append(f"  nodes: {total}" + (f" ({counts})" if counts else ""))
        for o in sorted(self.outcomes, key=lambda o: o.node):
            if o.status != NodeStatus.CLEAN:
                lines.append(f"    {o.node}: {o.status}: {o.detail}")
        lines += [f"  deleted {d}" for d in self.deleted]
        lines += [f"  WARNING: {w}" for w in self.warnings]
        if self.error:
            lines.append(f"  ERROR: {self.error}")
        lines.append(f"  API requests: {sum(self.requests.values())} "
                     f"({', '.join(f'{v} {k}' for k, v in sorted(self.requests.items()))})")
        lines.append("  result: " + verdict(self))
        return "\n".join(lines)


def verdict(summary: Summary) -> str:
    skipped = summary.count(NodeStatus.UNREACHABLE)
    if summary.command == "check":
        return "CLEAN: no Multus leftovers on any node" if summary.success else \
            "NOT CLEAN: see the nodes above (fix: multus-cleanup run, docs/repair.md)"
    if summary.success and skipped:
        return (f"SUCCESS, but {skipped} unreachable node(s) were skipped and still need cleaning: run the "
                "cleanup again when they are back (docs/uninstall.md#unreachable-nodes)")
    if summary.success:
        return "SUCCESS: every node is verified clean; Multus's resources can now be deleted"
    return ("FAILED: nothing was deleted from the API; fix the cause above and run the cleanup again "
            "(a second `helm uninstall` re-runs it)")
