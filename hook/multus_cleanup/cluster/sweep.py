"""Step 2: run the node engine on every node, one short-lived pod per node, and collect the reports.

A node's pod is created as soon as its Multus pod is gone (stop.MultusPods). As many pods are in flight as
the API server absorbs, up to `concurrency` (pacing.InFlightLimit); creations run on a small thread pool so
round trips overlap. One watch on this run's pods brings every status change (the report is in the
termination message of the pod status the watch already delivers), so each node costs one create and no
polling; all pods of the run go with one deletecollection at the end.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal

from ..config.cluster import ClusterConfig
from ..report import NodeOutcome, NodeReport, NodeStatus, report_from_log
from .kube import JSON, NODES, PODS, ApiError, Conflict, Forbidden, Gone, Kube, NotFound
from .nodepod import MANAGED_SELECTOR, RUN_LABEL, SHARD_LABEL, SHARDS, NodePodFactory, validate_pod
from .pacing import InFlightLimit
from .podevents import why_stuck
from .signals import Terminated
from .stop import MultusPods
from .watchbackoff import WatchBackoff

log = logging.getLogger(__name__)

CONTAINER = "cleanup"  # the node pod's container; admission webhooks may add others (sidecars) around it
# Waiting reasons that no amount of waiting fixes: report them at once, in the kubelet's words.
STUCK_REASONS = frozenset({"InvalidImageName", "ErrImageNeverPull", "CreateContainerConfigError",
                           "RunContainerError"})
# Waiting reasons that are often transient (a registry hiccup, a rate limit, a runtime busy creating
# containers): final only when they last `startErrorGraceSeconds`, or when the message is definitive.
TRANSIENT_REASONS = frozenset({"ErrImagePull", "ImagePullBackOff", "CreateContainerError"})
# Words of containerd, CRI-O and registries that mean a retry cannot succeed.
DEFINITIVE_WORDS = ("not found", "unauthorized", "no matching manifest", "no match for platform",
                    "manifest unknown", "pull access denied", "denied: ", "403 forbidden")
# What the watches and the pod creators tell the sweep's loop: a pod changed ((event type, pod)), a create
# failed ((task, error)), the watch cannot go on (the error), a node's Multus pod is gone (the node); "tick"
# is the loop's own timeout.
EventKind = Literal["pod", "create-failed", "fatal", "free", "tick"]
SweepEvent = tuple[EventKind, Any]
NODE_LIST_SECONDS = 2.0  # how old the node names may be when a failed node is checked for being deleted
SHARD_ABOVE = 500  # node pods: more than that are deleted by SHARDS parallel deletecollections
MAX_EVENT_READS = 20  # silent nodes whose pod Events are read: when a thousand time out, twenty say why


@dataclass
class _Task:
    node: str
    attempt: int
    started: float
    pod_name: str
    start_error: str = ""  # the kubelet's last transient waiting reason and message
    start_error_since: float | None = None


class WatchFailed(ApiError):
    """The watch on the node pods could not be kept up: without it, no node's result would arrive."""

    def __init__(self, namespace: str, why: str) -> None:
        super().__init__(0, "", why, "watch", f"pods in namespace {namespace}")
        self.why = why

    def __str__(self) -> str:
        return (f"the watch on the cleanup pods in namespace {self.what.rsplit(' ', 1)[-1]} {self.why}; nothing "
                "more was cleaned. Run the uninstall again once the API server answers watches")


@dataclass
class SweepResult:
    outcomes: dict[str, NodeOutcome] = field(default_factory=dict)
    terminated: str | None = None  # the signal that stopped the sweep early, if one did

    def by_status(self, status: NodeStatus) -> list[NodeOutcome]:
        return [o for o in self.outcomes.values() if o.status == status]


class Sweep:
    def __init__(self, kube: Kube, factory: NodePodFactory, cluster: ClusterConfig, *, what: str = "clean",
                 on_progress: Callable[[str], None] | None = None) -> None:
        self.kube = kube
        self.factory = factory
        self.cluster = cluster
        self.what = what  # "clean" or "checked", for progress lines
        self.on_progress = on_progress  # each progress line also goes here (the Job's Events)
        self.events: queue.Queue[SweepEvent] = queue.Queue()
        self._stop = threading.Event()
        self._selector = f"{RUN_LABEL}={factory.run_id}"
        self._watcher: threading.Thread | None = None
        self.limit = InFlightLimit(cluster.concurrency)
        self._events_read = 0
        self._node_names: set[str] | None = None
        self._node_names_at = 0.0

    def run(self, nodes: list[str], deadline: float | None = None, multus: MultusPods | None = None) -> SweepResult:
        """Clean `nodes`, each once `multus` says its Multus pod is gone; at `deadline` (time.monotonic()) the
        nodes not done yet are given up as unreachable."""
        result = SweepResult()
        if not nodes:
            return result
        validate_pod(self.factory.render(nodes[0]))  # every pod comes from the same template
        _, version = self.kube.list_all(PODS, namespace=self.cluster.namespace,
                                        query={"labelSelector": self._selector})
        watcher = threading.Thread(target=self._watch, args=(version,), name="pod-watch", daemon=True)
        self._watcher = watcher
        watcher.start()
        pool = ThreadPoolExecutor(max_workers=min(8, self.cluster.concurrency), thread_name_prefix="create")
        try:
            self._loop(nodes, result, pool, deadline, multus)
        except Terminated as stop:
            result.terminated = stop.signal
            for node in nodes:
                if node not in result.outcomes:
                    result.outcomes[node] = NodeOutcome(
                        node, NodeStatus.UNREACHABLE, f"not cleaned: the cleanup was stopped ({stop.signal}) before "
                        "this node reported; run it again", attempts=0)
        finally:
            self._stop.set()
            pool.shutdown(wait=True, cancel_futures=True)
            self._delete_run_pods(len(nodes))
        return result

    def remove_stale_pods(self) -> None:
        """Node pods of an earlier run that was killed: they would only confuse this one."""
        self._delete_pods(MANAGED_SELECTOR)

    # -- the loop --------------------------------------------------------------------------------------
    def _loop(self, nodes: list[str], result: SweepResult, pool: ThreadPoolExecutor, deadline: float | None,
              multus: MultusPods | None) -> None:
        held = multus.subscribe(lambda node: self.events.put(("free", node))) & set(nodes) if multus else set()
        waiting = deque(n for n in nodes if n not in held)
        if held:
            log.info("%d node(s) are cleaned once their Multus pod is gone, the other %d now", len(held),
                     len(waiting))
        active: dict[str, _Task] = {}
        progress = _Progress(len(nodes), self.what, self.on_progress, in_flight=lambda: len(active))
        timeout = self.cluster.node_timeout_seconds
        held_checked = time.monotonic()
        while waiting or active or held:
            while waiting and len(active) < self.limit.value:
                node = waiting.popleft()
                task = self._launch(node, 0, pool)
                active[task.pod_name] = task
            kind: EventKind
            try:
                kind, payload = self.events.get(timeout=0.5)
            except queue.Empty:
                kind, payload = "tick", None
            if kind == "fatal":
                raise payload
            if kind == "tick" and not self._watcher_alive():
                raise WatchFailed(self.cluster.namespace, "stopped unexpectedly")
            if kind == "free":
                if payload in held:
                    held.discard(payload)
                    waiting.append(payload)
            elif kind == "create-failed":
                task, err = payload
                if active.pop(task.pod_name, None):
                    self._finish(result, progress, task, NodeStatus.FAILED, f"cannot create its cleanup pod: {err}",
                                 active, pool, retry=not isinstance(err, Forbidden))
            elif kind == "pod":
                event_type, pod = payload
                running = active.get(pod["metadata"]["name"])
                verdict = self._judge(pod, event_type) if running is not None else None
                if running is not None and verdict is None:
                    _note_start_error(running, pod, self.cluster.start_error_grace_seconds)
                if running is not None and verdict is not None:
                    del active[running.pod_name]
                    status, detail, report, retry = verdict
                    self._finish(result, progress, running, status, detail, active, pool, retry=retry,
                                 report=report)
            now = time.monotonic()
            if multus is not None and held and now - held_checked >= 1.0:
                held_checked = now
                if multus.failure is not None:
                    raise multus.failure
                for node, why in multus.overdue(self.cluster.stop_timeout_seconds).items():
                    if node in held:
                        held.discard(node)
                        self._finish(result, progress, _Task(node, 0, now, ""), NodeStatus.UNREACHABLE, why,
                                     active, pool, retry=False)
            if deadline is not None and now > deadline:
                late = list(active.values()) + [_Task(n, 0, now, "") for n in (*waiting, *sorted(held))]
                waiting.clear()
                active.clear()
                held.clear()
                for task in late:
                    self._finish(result, progress, task, NodeStatus.UNREACHABLE,
                                 "not cleaned: the cleanup ran out of time "
                                 "(cluster.deadlineSeconds); run it again", active, pool, retry=False)
                return
            grace = self.cluster.start_error_grace_seconds
            for task in [t for t in active.values() if t.start_error_since is not None
                         and now - t.start_error_since >= grace]:
                del active[task.pod_name]
                self._finish(result, progress, task, NodeStatus.FAILED,
                             f"its cleanup pod cannot start: {task.start_error} "
                             f"(for {grace}s)", active, pool, retry=False)
            for task in [t for t in active.values() if now - t.started > timeout]:
                del active[task.pod_name]
                self._finish(result, progress, task, NodeStatus.UNREACHABLE, self._silent(task, timeout), active,
                             pool, retry=False)

    def _silent(self, task: _Task, timeout: int) -> str:
        """Why a node's pod never reported: the kubelet's last waiting reason, and the pod's own Warning Events
        (FailedMount, FailedCreatePodSandBox, ...), read for the first few such nodes only (one list each)."""
        last = f"; last: {task.start_error}" if task.start_error else ""
        events = ""
        if self._events_read < MAX_EVENT_READS:
            self._events_read += 1
            events = why_stuck(self.kube, self.cluster.namespace, task.pod_name)
        return (f"no report within {timeout}s" + (f": {events}" if events else "")
                + f" (the node may be down, or its kubelet cannot start the pod{last})")

    def _launch(self, node: str, attempt: int, pool: ThreadPoolExecutor) -> _Task:
        task = _Task(node, attempt, time.monotonic(), self.factory.pod_name(node, attempt))
        pool.submit(self._create, task)
        return task

    def _create(self, task: _Task) -> None:
        body = self.factory.render(task.node, task.attempt)
        started, throttled = time.monotonic(), self.kube.throttled
        try:
            try:
                self.kube.request("create", PODS, namespace=self.cluster.namespace, body=body)
                self.limit.observe(time.monotonic() - started, throttled=self.kube.throttled != throttled)
            except Conflict:
                # Usually a retried create whose first try got through: then the watch reports the pod.
                # Make sure it exists (with `list`, which the cleanup may already do); else create it again.
                found = self.kube.request("list", PODS, namespace=self.cluster.namespace, query={
                    "labelSelector": self._selector, "fieldSelector": f"metadata.name={task.pod_name}"})
                if not found.get("items"):
                    self.kube.request("create", PODS, namespace=self.cluster.namespace, body=body)
        except Forbidden as err:
            self.events.put(("fatal", err))
        except ApiError as err:
            self.events.put(("create-failed", (task, err)))

    def _finish(self, result: SweepResult, progress: _Progress, task: _Task, status: NodeStatus, detail: str,
                active: dict[str, _Task], pool: ThreadPoolExecutor, *, retry: bool,
                report: NodeReport | None = None) -> None:
        if status in (NodeStatus.FAILED, NodeStatus.UNREACHABLE) and not self._node_exists(task.node):
            status, retry = NodeStatus.GONE, False
            detail = "the node was deleted during the run: nothing left to clean"
        if status != NodeStatus.CLEAN and retry and task.attempt < self.cluster.node_retries:
            log.warning("node %s: %s; trying again (attempt %d of %d)", task.node, detail, task.attempt + 2,
                        self.cluster.node_retries + 1)
            again = self._launch(task.node, task.attempt + 1, pool)
            active[again.pod_name] = again
            return
        result.outcomes[task.node] = NodeOutcome(task.node, status, detail, report, task.attempt + 1)
        if status != NodeStatus.CLEAN:
            log.warning("node %s: %s: %s", task.node, status.upper(), detail)
        progress.done(status)

    def _node_exists(self, node: str) -> bool:
        """Asked only when a node's pod failed or went silent. The node names are listed (no extra RBAC) at
        most every NODE_LIST_SECONDS: when thousands of nodes time out together, that is a few lists, not
        one per node."""
        now = time.monotonic()
        if self._node_names is None or now - self._node_names_at > NODE_LIST_SECONDS:
            try:
                names, _ = self.kube.list_reduced(NODES, lambda n: str((n.get("metadata") or {}).get("name")))
            except ApiError:
                return True  # unknown: keep the failure as it is
            self._node_names, self._node_names_at = set(names), now
        return node in self._node_names

    # -- the watch -------------------------------------------------------------------------------------
    def _watcher_alive(self) -> bool:
        return self._watcher is None or self._watcher.is_alive() or self._stop.is_set()

    def _watch(self, version: str) -> None:
        """Follow this run's pods until the sweep ends. Never ends silently: whatever stops it for good
        reaches the loop as a "fatal" event with the real error."""
        try:
            self._follow(version)
        except Exception as err:
            log.exception("the watch on the cleanup pods failed")
            self.events.put(("fatal", WatchFailed(self.cluster.namespace, f"failed: {err!r}")))

    def _follow(self, version: str) -> None:
        backoff = WatchBackoff()
        relist = False
        while not self._stop.is_set():
            try:
                if relist:
                    # Our resourceVersion was too old: list again and treat what is there as fresh news.
                    items, version = self.kube.list_all(PODS, namespace=self.cluster.namespace,
                                                        query={"labelSelector": self._selector})
                    relist = False
                    for pod in items:
                        self.events.put(("pod", ("MODIFIED", pod)))
                query = {"labelSelector": self._selector, "resourceVersion": version}
                for event in self.kube.watch(PODS, namespace=self.cluster.namespace, query=query,
                                             timeout_seconds=60):
                    obj = event["object"]
                    version = (obj.get("metadata") or {}).get("resourceVersion") or version
                    if event["type"] in ("ADDED", "MODIFIED", "DELETED"):
                        self.events.put(("pod", (event["type"], obj)))
                    backoff.succeeded()
                    if self._stop.is_set():
                        return
            except Gone:
                relist = True
            except Forbidden as err:
                self.events.put(("fatal", err))
                return
            except ApiError as err:
                # Kube already retried 429/5xx/dropped connections; back off more before watching again.
                delay = backoff.failed()
                if delay is None:
                    self.events.put(("fatal", WatchFailed(
                        self.cluster.namespace, f"kept failing for {backoff.give_up_seconds:.0f}s: {err}")))
                    return
                log.warning("watching cleanup pods failed (%s); watching again in %.1fs", err, delay)
                self._stop.wait(delay)

    def _judge(self, pod: JSON, event_type: str) -> tuple[NodeStatus, str, NodeReport | None, bool] | None:
        return _judge(pod, event_type, read_log=lambda: self._read_log(pod["metadata"]["name"]))

    def _read_log(self, pod_name: str) -> str:
        """The cleanup container's log (the full report), when its termination message does not parse."""
        try:
            return self.kube.read_log(self.cluster.namespace, pod_name, container=CONTAINER)
        except NotFound:
            return ""
        except Forbidden as err:
            log.warning("cannot read the log of %s: %s", pod_name, err)
            return ""
        except ApiError as err:
            log.warning("cannot read the log of %s (%s)", pod_name, err)
            return ""

    def _delete_run_pods(self, count: int) -> None:
        """All pods of this run: one deletecollection, or SHARDS in parallel for a large run (a collection is
        deleted one pod after the other: 35 s for 5,000 pods, measured, on the uninstall's critical path)."""
        if count <= SHARD_ABOVE:
            self._delete_pods(self._selector)
            return
        with ThreadPoolExecutor(max_workers=SHARDS, thread_name_prefix="delete") as pool:
            list(pool.map(self._delete_pods, [f"{self._selector},{SHARD_LABEL}={k}" for k in range(SHARDS)]))

    def _delete_pods(self, selector: str) -> None:
        try:
            self.kube.request_discarding("deletecollection", PODS, namespace=self.cluster.namespace,
                                         query={"labelSelector": selector, "propagationPolicy": "Background"})
        except ApiError as err:
            log.warning("could not delete cleanup pods (%s); they are owned by the hook Job and go with it", err)


def container_state(pod: JSON) -> dict[str, Any]:
    """The state of the container named `cleanup`: webhooks may inject others, and the kubelet lists
    container statuses by name, so the first one is not necessarily ours."""
    for container in (pod.get("status") or {}).get("containerStatuses") or []:
        if container.get("name") == CONTAINER:
            return container.get("state") or {}
    return {}


def _judge(pod: JSON, event_type: str, read_log: Callable[[], str] | None = None
           ) -> tuple[NodeStatus, str, NodeReport | None, bool] | None:
    """(status, detail, report, worth retrying) once a pod has an outcome; None while it is still going.

    The outcome is the `cleanup` container's: once it terminated, the pod's phase does not matter (an
    injected sidecar may hold the pod Running forever)."""
    status = pod.get("status") or {}
    phase = status.get("phase") or "Pending"
    state = container_state(pod)
    terminated = state.get("terminated") or {}
    if phase in ("Succeeded", "Failed") or terminated:
        code = terminated.get("exitCode")
        message = terminated.get("message") or ""
        if status.get("reason") == "DeadlineExceeded":
            return NodeStatus.UNREACHABLE, "its cleanup pod did not finish within its deadline", None, False
        if not terminated:
            why = status.get("reason") or "no container status"
            detail = f"pod {phase.lower()} without running ({why}: {status.get('message', '')})"
            return NodeStatus.FAILED, detail, None, True
        if code == 2:
            detail = f"the node command rejected its configuration: {message.strip()[-500:]}"
            return NodeStatus.FAILED, detail, None, False
        try:
            report = _report(message, read_log)
        except ValueError:
            tail = message.strip()[-300:]
            detail = f"exit code {code} without a report ({terminated.get('reason', '')}): {tail}"
            return NodeStatus.FAILED, detail, None, True
        if report.clean and code == 0:
            return NodeStatus.CLEAN, "", report, False
        if report.dry_run:
            return NodeStatus.NOT_CLEAN, _leftovers(report), report, False
        return NodeStatus.NOT_CLEAN, "; ".join(report.errors) or "the node is not clean", report, True
    if event_type == "DELETED":
        return NodeStatus.FAILED, "its cleanup pod was deleted before it finished", None, True
    waiting = state.get("waiting") or {}
    reason, text = waiting.get("reason"), waiting.get("message", "")
    if reason in STUCK_REASONS or (reason in TRANSIENT_REASONS and _definitive(text)):
        return NodeStatus.FAILED, f"its cleanup pod cannot start: {reason}: {text}", None, False
    return None


def _report(message: str, read_log: Callable[[], str] | None) -> NodeReport:
    """The report from the termination message; from the pod's log if that does not parse (a report
    written by an older node command may exceed the 4 KiB the kubelet keeps, and lose its start)."""
    try:
        return NodeReport.from_json(message)
    except ValueError:
        if read_log is None:
            raise
        report = report_from_log(read_log())
        log.info("node %s: read its report from the pod's log (the termination message did not parse)",
                 report.node)
        return report


def _definitive(message: str) -> bool:
    lowered = message.lower()
    return any(word in lowered for word in DEFINITIVE_WORDS)


def _note_start_error(task: _Task, pod: JSON, grace: int) -> None:
    """Remember since when the cleanup container has been waiting for a transient reason."""
    state = container_state(pod)
    waiting = state.get("waiting") or {}
    if waiting.get("reason") in TRANSIENT_REASONS:
        task.start_error = f"{waiting['reason']}: {waiting.get('message', '')}"
        if task.start_error_since is None:
            task.start_error_since = time.monotonic()
            log.info("node %s: its cleanup pod cannot start yet (%s); the kubelet retries, waiting up to %ds",
                     task.node, task.start_error, grace)
    elif state.get("running"):
        task.start_error_since = None  # it got past it (the image pulled on a retry)


def _leftovers(report: NodeReport) -> str:
    found = ", ".join(report.found) or "no Multus files"
    error = f"; new pods would fail with: {report.pod_error_after}" if report.pod_error_after else ""
    return f"found {found}{error}"


class _Progress:
    """'17/40 nodes clean' lines: every node for small clusters, every 5% (or 5 s) for large ones."""

    def __init__(self, total: int, what: str, on_line: Callable[[str], None] | None = None,
                 in_flight: Callable[[], int] | None = None) -> None:
        self.total, self.what, self.on_line, self.in_flight = total, what, on_line, in_flight
        self.counts: Counter[NodeStatus] = Counter()
        self.step = max(1, total // 20)
        self.last = time.monotonic()

    def done(self, status: NodeStatus) -> None:
        self.counts[status] += 1
        finished = sum(self.counts.values())
        now = time.monotonic()
        if finished % self.step == 0 or finished == self.total or now - self.last > 5:
            self.last = now
            others = ", ".join(f"{n} {s}" for s, n in sorted(self.counts.items()) if s != NodeStatus.CLEAN)
            clean = self.counts[NodeStatus.CLEAN]
            line = f"{clean}/{self.total} nodes {self.what}" + (f" ({others})" if others else "")
            flying = self.in_flight() if self.in_flight is not None and finished < self.total else 0
            if flying:
                line += f"; {flying} in flight"
            log.info("%s", line)
            if self.on_line is not None:
                self.on_line(line)

