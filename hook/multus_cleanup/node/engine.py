"""Clean one node: plan, check every step can be done, act in order, verify what pods will meet."""

from __future__ import annotations

import posixpath
from dataclasses import dataclass

from ..config import NodeConfig
from ..report import Kept, Move, NodeReport
from .footprint import Action, Plan, make_plan, make_restore_plan
from .hostfs import HostFS, HostPathError
from .verify import inspect

MOUNT_POINT_KEPT = "a mount point (e.g. the cleanup pod's hostPath volume): emptied; the empty directory stays"


@dataclass(frozen=True)
class NodeRun:
    host_root: str
    node_name: str
    dry_run: bool = False
    backup_dir: str | None = None  # a host path: move instead of delete


def clean_node(cfg: NodeConfig, run: NodeRun) -> NodeReport:
    fs = HostFS(run.host_root)
    report = NodeReport(node=run.node_name, host_root=run.host_root, dry_run=run.dry_run)
    plan = make_plan(fs, cfg)
    report.found = plan.found
    report.pod_error_before = inspect(fs, cfg).pod_error
    report.errors += list(plan.problems) + _preflight(fs, plan, run)
    if report.errors:
        # Nothing is touched: a half-done cleanup could leave the node worse than it found it.
        _verify(fs, cfg, report, plan_after=plan)
        return report
    if run.dry_run:
        report.restored = [Move(a.entry.host_path, a.restore_to) for a in plan.actions if a.restore_to]
        report.removed = [a.entry.host_path for a in plan.actions if not a.is_restore]
        _verify(fs, cfg, report, plan_after=plan)
        return report
    _apply_in_order(fs, plan, run, report)
    _verify(fs, cfg, report, plan_after=make_plan(fs, cfg))
    return report


def restore_renamed_primary(cfg: NodeConfig, run: NodeRun) -> NodeReport:
    """Rename back the primary config that thin Multus renamed to `<name>.old`, and nothing else (thin
    Multus's init container, before each start: see make_restore_plan). `clean` means it went without error;
    Multus's own files stay, and the runtime keeps loading Multus's config throughout."""
    fs = HostFS(run.host_root)
    report = NodeReport(node=run.node_name, host_root=run.host_root, dry_run=run.dry_run)
    plan = make_restore_plan(fs, cfg)
    report.found = plan.found
    report.errors += list(plan.problems) + _preflight(fs, plan, run)
    if report.errors:
        pass  # nothing is touched
    elif run.dry_run:
        report.restored = [Move(a.entry.host_path, a.restore_to) for a in plan.actions if a.restore_to]
    else:
        _apply_in_order(fs, plan, run, report)
    report.clean = not report.errors
    return report


def _preflight(fs: HostFS, plan: Plan, run: NodeRun) -> list[str]:
    problems = []
    for action in plan.actions:
        if action.restore_to:
            reason = fs.why_not_writable(action.entry.real.parent)
            where = posixpath.dirname(action.restore_to)
            if reason:
                problems.append(f"cannot restore {action.restore_to}: {where}: {reason}")
            continue
        reason = fs.why_tree_not_removable(action.entry)
        if reason:
            problems.append(f"cannot remove {action.entry.host_path}: {reason}")
    if run.backup_dir and plan.actions and not run.dry_run:
        problems += _backup_dir_problems(fs, run.backup_dir)
    return problems


def _backup_dir_problems(fs: HostFS, backup_dir: str) -> list[str]:
    existing = backup_dir
    while fs.resolve_dir(existing) is None:
        if fs.entry(existing) is not None:
            return [f"cannot back up into {backup_dir}: {existing} is not a directory"]
        existing = posixpath.dirname(existing)
    real = fs.resolve_dir(existing)
    assert real is not None
    reason = fs.why_not_writable(real)
    return [f"cannot back up into {backup_dir}: {existing}: {reason}"] if reason else []


def _apply_in_order(fs: HostFS, plan: Plan, run: NodeRun, report: NodeReport) -> None:
    for action in plan.actions:
        try:
            _apply(fs, action, run, report)
        except HostPathError as err:
            # Stop at the first failure: the order guarantees the node is consistent up to here.
            report.errors.append(str(err))
            return


def _apply(fs: HostFS, action: Action, run: NodeRun, report: NodeReport) -> None:
    entry = action.entry
    if action.restore_to:
        fs.rename(entry, action.restore_to)
        report.restored.append(Move(entry.host_path, action.restore_to))
        return
    if run.backup_dir:
        target, whole = fs.move_to_backup(entry, run.backup_dir)
        if target:
            report.backed_up.append(Move(entry.host_path, target))
    else:
        whole = fs.remove(entry)
    if whole:
        report.removed.append(entry.host_path)
    else:
        report.kept.append(Kept(entry.host_path, MOUNT_POINT_KEPT))


def _verify(fs: HostFS, cfg: NodeConfig, report: NodeReport, plan_after: Plan) -> None:
    verdict = inspect(fs, cfg)
    report.primary_config = None if verdict.is_multus else verdict.loaded
    report.pod_error_after = verdict.pod_error
    left = plan_after.harmful
    if not report.dry_run:
        if left:
            report.errors.append("still on the node: " + ", ".join(left))
        if verdict.pod_error:
            report.errors.append(f"new pods on this node would fail: {verdict.pod_error}")
    report.clean = not report.errors and not left and not verdict.pod_error
