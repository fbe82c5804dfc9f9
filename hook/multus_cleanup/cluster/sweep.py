"""Step 2: run the node engine on every node, one short-lived pod per node, and collect the reports.

At most `concurrency` pods are in flight; creations run on a small thread pool so round trips overlap.
One watch on this run's pods brings every status change (the report is in the termination message of
the pod status the watch already delivers), so each node costs one create and no polling; all pods of
the run go with one deletecollection at the end.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter, deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from ..config.cluster import ClusterConfig
from ..report import NodeReport
from .kube import JSON, PODS, ApiError, Conflict, Forbidden, Gone, Kube
from .nodepod import MANAGED_SELECTOR, RUN_LABEL, NodePodFactory, validate_pod

log = logging.getLogger(__name__)

CLEAN, NOT_CLEAN, FAILED, UNREACHABLE = "clean", "not clean", "failed", "unreachable"
# Waiting reasons that no amount of waiting fixes: report them at once, in the kubelet's words.
STUCK_REASONS = frozenset({"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "CreateContainerConfigError",
                           "CreateContainerError", "RunContainerError"})


@dataclass
class NodeOutcome:
    node: str
    status: str
    detail: str = ""
    report: NodeReport | None = None
    attempts: int = 1


@dataclass
class _Task:
    node: str
    attempt: int
    started: float
    pod_name: str


@dataclass
class SweepResult:
    outcomes: dict[str, NodeOutcome] = field(default_factory=dict)

    def by_status(self, status: str) -> list[NodeOutcome]:
        return [o for o in self.outcomes.values() if o.status == status]


class Sweep:
    def __init__(self, kube: Kube, factory: NodePodFactory, cluster: ClusterConfig, *, what: str = "clean") -> None:
        self.kube = kube
        self.factory = factory
        self.cluster = cluster
        self.what = what  # "clean" or "checked", for progress lines
        self.events: queue.Queue[tuple[str, Any]] = queue.Queue()
        self._stop = threading.Event()
        self._selector = f"{RUN_LABEL}={factory.run_id}"

    def run(self, nodes: list[str], deadline: float | None = None) -> SweepResult:
        """Clean `nodes`; at `deadline` (time.monotonic()) the nodes not done yet are given up as unreachable."""
        result = SweepResult()
        if not nodes:
            return result
        validate_pod(self.factory.render(nodes[0]))  # every pod comes from the same template
        _, version = self.kube.list_all(PODS, namespace=self.cluster.namespace,
                                        query={"labelSelector": self._selector})
        watcher = threading.Thread(target=self._watch, args=(version,), name="pod-watch", daemon=True)
        watcher.start()
        pool = ThreadPoolExecutor(max_workers=min(8, self.cluster.concurrency), thread_name_prefix="create")
        try:
            self._loop(nodes, result, pool, deadline)
        finally:
            self._stop.set()
            pool.shutdown(wait=True, cancel_futures=True)
            self._delete_pods(self._selector)
        return result

    def remove_stale_pods(self) -> None:
        """Node pods of an earlier run that was killed: they would only confuse this one."""
        self._delete_pods(MANAGED_SELECTOR)

    # -- the loop --------------------------------------------------------------------------------------
    def _loop(self, nodes: list[str], result: SweepResult, pool: ThreadPoolExecutor, deadline: float | None) -> None:
        waiting = deque(nodes)
        active: dict[str, _Task] = {}
        progress = _Progress(len(nodes), self.what)
        timeout = self.cluster.node_timeout_seconds
        while waiting or active:
            while waiting and len(active) < self.cluster.concurrency:
                node = waiting.popleft()
                task = self._launch(node, 0, pool)
                active[task.pod_name] = task
            try:
                kind, payload = self.events.get(timeout=0.5)
            except queue.Empty:
                kind, payload = "tick", None
            if kind == "fatal":
                raise payload
            if kind == "create-failed":
                task, err = payload
                if active.pop(task.pod_name, None):
                    self._finish(result, progress, task, FAILED, f"cannot create its cleanup pod: {err}",
                                 active, pool, retry=not isinstance(err, Forbidden))
            elif kind == "pod":
                event_type, pod = payload
                running = active.get(pod["metadata"]["name"])
                verdict = _judge(pod, event_type) if running is not None else None
                if running is not None and verdict is not None:
                    del active[running.pod_name]
                    status, detail, report, retry = verdict
                    self._finish(result, progress, running, status, detail, active, pool, retry=retry,
                                 report=report)
            now = time.monotonic()
            if deadline is not None and now > deadline:
                late = list(active.values()) + [_Task(n, 0, now, "") for n in waiting]
                waiting.clear()
                active.clear()
                for task in late:
                    self._finish(result, progress, task, UNREACHABLE, "not cleaned: the cleanup ran out of time "
                                 "(cluster.deadlineSeconds); run it again", active, pool, retry=False)
                return
            for task in [t for t in active.values() if now - t.started > timeout]:
                del active[task.pod_name]
                self._finish(result, progress, task, UNREACHABLE, f"no report within {timeout}s "
                             "(the node may be down, or its kubelet cannot start the pod)", active, pool,
                             retry=False)

    def _launch(self, node: str, attempt: int, pool: ThreadPoolExecutor) -> _Task:
        task = _Task(node, attempt, time.monotonic(), self.factory.pod_name(node, attempt))
        pool.submit(self._create, task)
        return task

    def _create(self, task: _Task) -> None:
        body = self.factory.render(task.node, task.attempt)
        try:
            try:
                self.kube.request("create", PODS, namespace=self.cluster.namespace, body=body)
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

    def _finish(self, result: SweepResult, progress: _Progress, task: _Task, status: str, detail: str,
                active: dict[str, _Task], pool: ThreadPoolExecutor, *, retry: bool,
                report: NodeReport | None = None) -> None:
        if status != CLEAN and retry and task.attempt < self.cluster.node_retries:
            log.warning("node %s: %s; trying again (attempt %d of %d)", task.node, detail, task.attempt + 2,
                        self.cluster.node_retries + 1)
            again = self._launch(task.node, task.attempt + 1, pool)
            active[again.pod_name] = again
            return
        result.outcomes[task.node] = NodeOutcome(task.node, status, detail, report, task.attempt + 1)
        if status != CLEAN:
            log.warning("node %s: %s: %s", task.node, status.upper(), detail)
        progress.done(status)

    # -- the watch -------------------------------------------------------------------------------------
    def _watch(self, version: str) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                query = {"labelSelector": self._selector, "resourceVersion": version}
                for event in self.kube.watch(PODS, namespace=self.cluster.namespace, query=query,
                                             timeout_seconds=60):
                    obj = event["object"]
                    version = (obj.get("metadata") or {}).get("resourceVersion") or version
                    if event["type"] in ("ADDED", "MODIFIED", "DELETED"):
                        self.events.put(("pod", (event["type"], obj)))
                    failures = 0
                    if self._stop.is_set():
                        return
            except Gone:
                # Our resourceVersion is too old: list again and treat what is there as fresh news.
                items, version = self.kube.list_all(PODS, namespace=self.cluster.namespace,
                                                    query={"labelSelector": self._selector})
                for pod in items:
                    self.events.put(("pod", ("MODIFIED", pod)))
            except Forbidden as err:
                self.events.put(("fatal", err))
                return
            except ApiError as err:
                failures += 1
                log.warning("watching cleanup pods failed (%s); watching again", err)
                time.sleep(min(5.0, 0.5 * failures))

    def _delete_pods(self, selector: str) -> None:
        try:
            self.kube.request("deletecollection", PODS, namespace=self.cluster.namespace,
                              query={"labelSelector": selector, "propagationPolicy": "Background"})
        except ApiError as err:
            log.warning("could not delete cleanup pods (%s); they are owned by the hook Job and go with it", err)


def _judge(pod: JSON, event_type: str) -> tuple[str, str, NodeReport | None, bool] | None:
    """(status, detail, report, worth retrying) once a pod has an outcome; None while it is still going."""
    status = pod.get("status") or {}
    phase = status.get("phase")
    containers = status.get("containerStatuses") or []
    state = (containers[0].get("state") or {}) if containers else {}
    if phase in ("Succeeded", "Failed"):
        terminated = state.get("terminated") or {}
        code = terminated.get("exitCode")
        message = terminated.get("message") or ""
        if status.get("reason") == "DeadlineExceeded":
            return UNREACHABLE, "its cleanup pod did not finish within its deadline", None, False
        if not terminated:
            why = status.get("reason") or "no container status"
            return FAILED, f"pod {phase.lower()} without running ({why}: {status.get('message', '')})", None, True
        if code == 2:
            return FAILED, f"the node command rejected its configuration: {message.strip()[-500:]}", None, False
        try:
            report = NodeReport.from_json(message)
        except ValueError:
            tail = message.strip()[-300:]
            return FAILED, f"exit code {code} without a report ({terminated.get('reason', '')}): {tail}", None, True
        if report.clean and code == 0:
            return CLEAN, "", report, False
        if report.dry_run:
            return NOT_CLEAN, _leftovers(report), report, False
        return NOT_CLEAN, "; ".join(report.errors) or "the node is not clean", report, True
    if event_type == "DELETED":
        return FAILED, "its cleanup pod was deleted before it finished", None, True
    waiting = state.get("waiting") or {}
    if waiting.get("reason") in STUCK_REASONS:
        return FAILED, f"its cleanup pod cannot start: {waiting['reason']}: {waiting.get('message', '')}", None, False
    return None


def _leftovers(report: NodeReport) -> str:
    found = ", ".join(report.found) or "no Multus files"
    error = f"; new pods would fail with: {report.pod_error_after}" if report.pod_error_after else ""
    return f"found {found}{error}"


class _Progress:
    """'17/40 nodes clean' lines: every node for small clusters, every 5% (or 5 s) for large ones."""

    def __init__(self, total: int, what: str) -> None:
        self.total, self.what = total, what
        self.counts: Counter[str] = Counter()
        self.step = max(1, total // 20)
        self.last = time.monotonic()

    def done(self, status: str) -> None:
        self.counts[status] += 1
        finished = sum(self.counts.values())
        now = time.monotonic()
        if finished % self.step == 0 or finished == self.total or now - self.last > 5:
            self.last = now
            others = ", ".join(f"{n} {s}" for s, n in sorted(self.counts.items()) if s != CLEAN)
            log.info("%d/%d nodes %s%s", self.counts[CLEAN], self.total, self.what, f" ({others})" if others else "")

