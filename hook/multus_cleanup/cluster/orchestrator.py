"""The cleanup, in order: validate, stop Multus, clean and verify every node, apply the node policy,
delete what the user asked for from the API, summarise. Exit 0 only if every required node is clean."""

from __future__ import annotations

import logging
import secrets
import string
import time
from collections.abc import Callable

import yaml

from ..config import CleanupConfig
from ..report import ExitCode, NodeOutcome, NodeStatus, Summary, verdict
from .comeback import came_back, warn_tracked
from .deletions import NAD_CRD, delete_requested
from .events import JobEvents
from .kube import CRDS, DAEMONSETS, NADS, PODS, ApiError, Kube, NotFound
from .nodepod import NodePodFactory, Owner, validate_pod
from .nodes import NodeInfo, list_nodes
from .preflight import PreflightError, attached_pods, check_admission, describe_attached
from .selectors import from_label_selector
from .signals import Terminated
from .stop import MultusPods, Stopped, pause_multus, undo_stop
from .sweep import Sweep, SweepResult

log = logging.getLogger(__name__)



def new_run_id() -> str:
    return "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(5))


def run(config: CleanupConfig, kube: Kube, owner: Owner | None, run_id: str | None = None,
        elapsed: float = 0.0) -> Summary:
    """`elapsed`: seconds the run's budget has already used (the hook Job's time before this pod started)."""
    summary = Summary("run", run_id or new_run_id())
    events = JobEvents(kube, owner, config.cluster.namespace, summary.run_id)
    try:
        _run(config, kube, owner, summary, events, elapsed)
    except ApiError as err:
        events.warning("CleanupFailed", f"{err}; nothing was deleted from the API")
        raise
    except Terminated as stop:  # before or after the sweep: the stop of Multus was undone if nothing changed
        summary.error = _stopped_message(stop.signal, summary)
    for outcome in summary.outcomes:
        if outcome.status != NodeStatus.CLEAN:
            events.node_failed(outcome.node, outcome.status, outcome.detail)
    if summary.success:
        events.normal("CleanupSucceeded", verdict(summary))
    else:
        events.warning("CleanupFailed", f"{summary.error}. {verdict(summary)}")
    summary.requests = dict(kube.requests)  # the Events included
    return summary


def _stopped_message(signal_name: str, summary: Summary) -> str:
    done = summary.count(NodeStatus.CLEAN)
    return (f"the cleanup was stopped ({signal_name}: the hook Job reached activeDeadlineSeconds, or its pod was "
            f"deleted) with {done} of {len(summary.outcomes)} node(s) clean; nothing was deleted from the API. Run "
            "it again (a second `helm uninstall`), with a longer cleanup.job.activeDeadlineSeconds if time ran out")


def _run(config: CleanupConfig, kube: Kube, owner: Owner | None, summary: Summary, events: JobEvents,
         elapsed: float) -> Summary:
    deadline = time.monotonic() + config.cluster.deadline_seconds - elapsed
    if elapsed:
        log.info("the hook Job started %.0f s ago: %.0f s of the run's budget are left", elapsed,
                 max(0.0, config.cluster.deadline_seconds - elapsed))
    cluster = config.cluster
    factory = NodePodFactory(config, summary.run_id, owner)
    validate_pod(factory.render("node-name-check"))  # before any change: a bad template stops here
    nodes = list_nodes(kube, cluster.node_selector, cluster.node_selector_expressions)
    try:
        _preflight(kube, factory, config, summary, nodes)
    except PreflightError as err:
        summary.error = str(err)
        return _done(summary, kube)
    events.normal("CleanupStarted", f"stopping Multus, then cleaning {sum(n.ready for n in nodes)} ready node(s) "
                                    f"of {len(nodes)} (run {summary.run_id})")
    stopped = pause_multus(kube, cluster.multus_daemonsets)
    warn_tracked(stopped)
    multus = MultusPods(kube, stopped, frozenset(n.name for n in nodes if not n.ready))
    try:
        summary.multus_pods_stopped = multus.list_and_evict()
        events.normal("MultusStopped", f"Multus stopped: its DaemonSets schedule no pods, its "
                                       f"{summary.multus_pods_stopped} pod(s) are deleted; each node is cleaned "
                                       "as soon as its own is gone")
        terminated = _sweep(kube, factory, config, summary, "clean", nodes, deadline,
                            on_progress=events.progress, multus=multus)
    except (ApiError, Terminated):
        _undo(kube, stopped, summary)
        raise
    finally:
        multus.close()
    if terminated:
        summary.error = _stopped_message(terminated, summary)
        _undo(kube, stopped, summary)
        return _done(summary, kube)
    failed = [o for o in summary.outcomes if o.status in (NodeStatus.FAILED, NodeStatus.NOT_CLEAN)]
    unreachable = [o for o in summary.outcomes if o.status == NodeStatus.UNREACHABLE]
    restored = came_back(kube, stopped)
    if restored:
        summary.error = ("Multus came back while the nodes were cleaned, so they may hold its files again: "
                         f"{'; '.join(restored)}. Pause whatever manages it (Argo CD auto-sync/self-heal, a Flux "
                         "Kustomization, an operator) and uninstall again (docs/uninstall.md#multus-came-back)")
    elif failed:
        summary.error = f"{len(failed)} node(s) are not clean: {', '.join(o.node for o in failed[:20])}"
    elif unreachable and cluster.unreachable_nodes == "fail":
        summary.error = (f"{len(unreachable)} node(s) could not be cleaned (unreachableNodes: fail): "
                         f"{', '.join(o.node for o in unreachable[:20])}. Bring them back, or set "
                         "cleanup.nodes.unreachable=skip to finish without them")
    else:
        summary.deleted = delete_requested(kube, cluster)
        summary.success = True
    if not summary.success and not restored:
        _undo(kube, stopped, summary)
    return _done(summary, kube)


def _preflight(kube: Kube, factory: NodePodFactory, config: CleanupConfig, summary: Summary,
               nodes: list[NodeInfo]) -> None:
    """Before the stop: the pods on secondary networks, and whether the API admits a real node pod."""
    attached = attached_pods(kube)
    if attached:
        message = describe_attached(attached, config.cluster.attached_pods)
        if config.cluster.attached_pods == "fail":
            raise PreflightError(message)
        log.warning("%s", message)
        summary.warnings.append(message)
    ready = [n.name for n in nodes if n.ready]
    if ready:
        check_admission(kube, config.cluster.namespace, factory.render(ready[0]), ready[0])


def _undo(kube: Kube, stopped: list[Stopped], summary: Summary) -> None:
    """A run that failed before it changed any node restarts Multus: the cluster is as before the uninstall."""
    touched = [o.node for o in summary.outcomes
               if o.status == NodeStatus.CLEAN
               or (o.report and (o.report.removed or o.report.restored or o.report.backed_up))]
    if touched or not any(s.patched for s in stopped):
        return
    failed = undo_stop(kube, stopped)
    summary.warnings.append("no node was changed, so Multus was restarted (its DaemonSets' nodeSelector is as "
                            "before the cleanup)" if not failed else
                            f"no node was changed, but Multus could not be restarted: {'; '.join(failed)}")


def check(config: CleanupConfig, kube: Kube, owner: Owner | None, run_id: str | None = None) -> Summary:
    """Read-only on the nodes: every node's engine runs with --dry-run and reports what remains."""
    summary = Summary("check", run_id or new_run_id())
    deadline = time.monotonic() + config.cluster.deadline_seconds
    factory = NodePodFactory(config, summary.run_id, owner, dry_run=True)
    validate_pod(factory.render("node-name-check"))
    cluster = config.cluster
    _sweep(kube, factory, config, summary, "checked clean",
           list_nodes(kube, cluster.node_selector, cluster.node_selector_expressions), deadline)
    summary.success = all(o.status in (NodeStatus.CLEAN, NodeStatus.GONE) for o in summary.outcomes)
    return _done(summary, kube)


def _sweep(kube: Kube, factory: NodePodFactory, config: CleanupConfig, summary: Summary, what: str,
           nodes: list[NodeInfo], deadline: float, on_progress: Callable[[str], None] | None = None,
           multus: MultusPods | None = None) -> str | None:
    """Clean (or check) the ready nodes, each once its Multus pod is gone; returns the signal's name if one
    stopped it early."""
    ready = [n.name for n in nodes if n.ready]
    log.info("%d node(s) match %s; %d ready", len(nodes), dict(config.cluster.node_selector), len(ready))
    sweep = Sweep(kube, factory, config.cluster, what=what, on_progress=on_progress)
    sweep.remove_stale_pods()
    result = sweep.run(ready, deadline, multus)
    _add_not_ready(result, [n for n in nodes if not n.ready])
    summary.outcomes = list(result.outcomes.values())
    return result.terminated


def _add_not_ready(result: SweepResult, not_ready: list[NodeInfo]) -> None:
    for node in not_ready:
        log.warning("node %s: UNREACHABLE: %s", node.name, node.why_not_ready)
        result.outcomes[node.name] = NodeOutcome(node.name, NodeStatus.UNREACHABLE, node.why_not_ready, attempts=0)


def _done(summary: Summary, kube: Kube) -> Summary:
    summary.requests = dict(kube.requests)
    return summary


def plan(config: CleanupConfig, kube: Kube) -> str:
    """What `run` would do, from reads only."""
    cluster = config.cluster
    lines = ["multus-cleanup plan: what `run` would do (nothing is changed)", "1. stop Multus:"]
    for ref in cluster.multus_daemonsets:
        try:
            ds = kube.request("get", DAEMONSETS, namespace=ref.namespace, name=ref.name)
            selector = from_label_selector((ds.get("spec") or {}).get("selector") or {})
            pods, _ = kube.list_all(PODS, namespace=ref.namespace, query={"labelSelector": selector})
            lines.append(f"   DaemonSet {ref.namespace}/{ref.name}: stop it and delete its {len(pods)} pod(s)")
        except NotFound:
            lines.append(f"   DaemonSet {ref.namespace}/{ref.name}: not found, nothing to stop")
    nodes = list_nodes(kube, cluster.node_selector, cluster.node_selector_expressions)
    ready = [n for n in nodes if n.ready]
    lines.append(f"2. clean {len(ready)} ready node(s) of {len(nodes)} matching {dict(cluster.node_selector)}, "
                 f"{cluster.concurrency} at a time, in namespace {cluster.namespace}")
    lines += [f"   {n.name}: UNREACHABLE ({n.why_not_ready}); policy unreachableNodes={cluster.unreachable_nodes}"
              for n in nodes if not n.ready]
    lines.append("3. delete from the API:")
    lines += [f"   {line}" for line in _planned_deletions(kube, config)] or ["   nothing (user data is kept)"]
    factory = NodePodFactory(config, "plan0", None)
    example = factory.render(ready[0].name if ready else "NODE")
    validate_pod(example)
    lines.append("the cleanup pod for one node:")
    lines += ["   " + line for line in yaml.safe_dump(example, sort_keys=False).splitlines()]
    return "\n".join(lines)


def _planned_deletions(kube: Kube, config: CleanupConfig) -> list[str]:
    cluster, lines = config.cluster, []
    if cluster.delete_crd:
        try:
            kube.request("get", CRDS, name=NAD_CRD)
            lines.append(f"CustomResourceDefinition {NAD_CRD} and with it every NetworkAttachmentDefinition")
        except NotFound:
            lines.append(f"CustomResourceDefinition {NAD_CRD}: already gone")
    elif cluster.delete_network_attachment_definitions:
        try:
            items, _ = kube.list_all(NADS)
            lines.append(f"{len(items)} NetworkAttachmentDefinition(s)")
        except NotFound:
            lines.append("NetworkAttachmentDefinitions: not served, nothing to delete")
    lines += [extra.describe() for extra in cluster.extra_resources]
    return lines


__all__ = ["ApiError", "ExitCode", "Summary", "check", "plan", "run"]
