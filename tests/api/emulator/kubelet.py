"""A simulated DaemonSet controller and kubelet, driving pods in an emulator's store from a thread.

DaemonSet controller: one pod per eligible node for every DaemonSet (nodeSelector, required node
affinity and taints/tolerations honoured, with the tolerations the real controller adds, so cordoned
and NotReady nodes still get daemon pods). Pods on nodes that stop being eligible are deleted, so a
nodeSelector matching no node makes the daemon pods go away. Pods from an older template generation
are replaced (all at once: ``maxUnavailable`` is not honoured). DaemonSet status counters are kept.

Kubelet: on Ready nodes, daemon pods go Running/Ready; pods selected by ``cleanup_selector`` (and bound
with ``spec.nodeName``) are run through ``run_pod(pod, node_name) -> (exit_code, termination_message
[, logs])`` on a worker pool, then get the status a real kubelet writes: phase Succeeded/Failed,
``containerStatuses[*].state.terminated`` with exitCode, reason Completed/Error, message (truncated to
its last 4096 bytes as the kubelet does; ``FallbackToLogsOnError`` honoured). A node's ``start_error``
keeps its cleanup pods Pending with that waiting reason (ErrImagePull, ...) for ``start_error_seconds``.
``restartPolicy: OnFailure`` re-runs a failed container (restartCount, lastState).
``spec.activeDeadlineSeconds`` is enforced from the moment the kubelet takes the pod (+ its node's delay):
phase Failed, reason DeadlineExceeded, exit code 137.
Pods on NotReady or unknown nodes stay Pending; pods of a deleted Node are garbage-collected.
Graceful deletion: a deleted running pod keeps its deletionTimestamp for ``termination_delay`` seconds;
on a NotReady node it stays Terminating (as upstream, until force-deleted with grace period 0).

Not emulated: images, probes, resource accounting, init containers, pod networking, eviction, the
scheduler (pods without ``spec.nodeName`` stay Pending), Jobs (no job controller).
"""

from __future__ import annotations

import contextlib
import copy
import functools
import heapq
import itertools
import logging
import queue
import threading
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from .resources import ResourceType
from .selectors import LabelSelector
from .store import ApiError, Event, Obj, Store, now_iso

log = logging.getLogger(__name__)

RunResult = tuple[int, str] | tuple[int, str, str]
RunPod = Callable[[Obj, str], RunResult]
TERMINATION_MESSAGE_LIMIT = 4096  # bytes the kubelet reads from terminationMessagePath

DAEMON_TOLERATIONS: tuple[dict[str, Any], ...] = (
    {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/disk-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/memory-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/pid-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"},
)
HOST_NETWORK_TOLERATION = {"key": "node.kubernetes.io/network-unavailable", "operator": "Exists",
                           "effect": "NoSchedule"}


@dataclass
class NodeBehaviour:
    """How one node's kubelet behaves (mutable at run time)."""

    ready: bool = True  # False: the kubelet is down; its pods stay Pending (see also SimulatedKubelet.set_ready)
    fail_first: int = 0  # the first N cleanup-pod runs on this node fail with `fail_result`
    fail_result: tuple[int, str] = (1, "")
    delay: float = 0.0  # seconds between a cleanup pod appearing and it starting to run
    hang: bool = False  # cleanup pods start (Running) and never finish
    termination_delay: float | None = None  # overrides SimulatedKubelet.termination_delay on this node
    # (reason, message): cleanup pods wait with it (Pending), as with an image the node cannot pull, for
    # `start_error_seconds` (inf: for ever), then run
    start_error: tuple[str, str] | None = None
    start_error_seconds: float = float("inf")
    attempts: int = 0  # cleanup-pod runs so far (including injected failures)


@dataclass(order=True)
class _Timer:
    due: float
    seq: int
    action: Callable[[], None] = field(compare=False)
    cancelled: bool = field(default=False, compare=False)


def tolerates(tolerations: list[dict[str, Any]], taint: dict[str, Any]) -> bool:
    for tol in tolerations:
        if tol.get("effect") and tol["effect"] != taint.get("effect"):
            continue
        if tol.get("operator", "Equal") == "Exists":
            if not tol.get("key") or tol["key"] == taint.get("key"):
                return True
        elif tol.get("key") == taint.get("key") and (tol.get("value") or "") == (taint.get("value") or ""):
            return True
    return False


def _expression_matches(expr: dict[str, Any], value: str | None) -> bool:
    op, values = expr.get("operator"), expr.get("values") or []
    if op == "In":
        return value is not None and value in values
    if op == "NotIn":
        return value is None or value not in values
    if op == "Exists":
        return value is not None
    if op == "DoesNotExist":
        return value is None
    if op in ("Gt", "Lt") and value is not None and values:
        try:
            return int(value) > int(values[0]) if op == "Gt" else int(value) < int(values[0])
        except ValueError:
            return False
    return False


def node_affinity_matches(pod_spec: dict[str, Any], node: Obj) -> bool:
    required = (((pod_spec.get("affinity") or {}).get("nodeAffinity") or {})
                .get("requiredDuringSchedulingIgnoredDuringExecution") or {})
    terms = required.get("nodeSelectorTerms")
    if not terms:
        return True
    labels = node["metadata"].get("labels") or {}
    for term in terms:
        exprs = term.get("matchExpressions") or []
        fields = term.get("matchFields") or []
        if not exprs and not fields:
            continue
        if all(_expression_matches(e, labels.get(e.get("key"))) for e in exprs) and \
                all(_expression_matches(f, node["metadata"]["name"] if f.get("key") == "metadata.name" else None)
                    for f in fields):
            return True
    return False


def node_is_ready(node: Obj | None) -> bool:
    if node is None:
        return False
    for cond in (node.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return bool(cond.get("status") == "True")
    return False


def daemon_pod_fits(ds: Obj, node: Obj) -> bool:
    """Would the DaemonSet controller put a pod of ``ds`` on ``node``?"""
    pod_spec = ((ds.get("spec") or {}).get("template") or {}).get("spec") or {}
    labels = node["metadata"].get("labels") or {}
    for key, value in (pod_spec.get("nodeSelector") or {}).items():
        if labels.get(key) != value:
            return False
    if not node_affinity_matches(pod_spec, node):
        return False
    tolerations = list(pod_spec.get("tolerations") or []) + list(DAEMON_TOLERATIONS)
    if pod_spec.get("hostNetwork"):
        tolerations.append(HOST_NETWORK_TOLERATION)
    for taint in (node.get("spec") or {}).get("taints") or []:
        if taint.get("effect") in ("NoSchedule", "NoExecute") and not tolerates(tolerations, taint):
            return False
    return True


def _container_statuses(pod: Obj, state: dict[str, Any], *, ready: bool, restarts: int = 0,
                        last_state: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    statuses = []
    for container in (pod.get("spec") or {}).get("containers") or []:
        image = str(container.get("image", ""))
        statuses.append({
            "name": container.get("name", ""), "image": image, "imageID": f"{image}@sha256:{'0' * 64}",
            "containerID": f"containerd://{pod['metadata']['uid'].replace('-', '')}{restarts}",
            "ready": ready, "started": "running" in state, "restartCount": restarts,
            "state": state, "lastState": last_state or {},
        })
    return statuses


def _conditions(ready: bool, reason: str | None = None) -> list[dict[str, Any]]:
    now = now_iso()
    flag = "True" if ready else "False"
    conditions = [{"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
                  {"type": "Initialized", "status": "True", "lastTransitionTime": now}]
    for kind in ("ContainersReady", "Ready"):
        cond: dict[str, Any] = {"type": kind, "status": flag, "lastTransitionTime": now}
        if reason:
            cond["reason"] = reason
        conditions.append(cond)
    return conditions


def truncate_message(message: str, limit: int = TERMINATION_MESSAGE_LIMIT) -> str:
    """What the kubelet keeps of a termination message file: its LAST `limit` bytes (tail.ReadAtMost), so a
    longer JSON document loses its start."""
    data = message.encode()
    if len(data) <= limit:
        return message
    return data[-limit:].decode(errors="ignore")


class SimulatedKubelet:
    """The DaemonSet controller and every node's kubelet, in one background thread plus a worker pool."""

    def __init__(self, store: Store, *, run_pod: RunPod | None = None,
                 cleanup_selector: str = "app.kubernetes.io/component=node-cleanup",
                 termination_delay: float = 0.0, behaviours: dict[str, NodeBehaviour] | None = None,
                 workers: int = 16, resync_interval: float = 5.0, max_restarts: int = 5,
                 termination_message_limit: int = TERMINATION_MESSAGE_LIMIT, active_deadline: bool = True) -> None:
        self.store = store
        self.run_pod = run_pod
        self.cleanup_selector = LabelSelector.parse(cleanup_selector)
        self.termination_delay = termination_delay
        self.behaviours: dict[str, NodeBehaviour] = dict(behaviours or {})
        self.max_restarts = max_restarts
        self.termination_message_limit = termination_message_limit
        self.active_deadline = active_deadline  # kill cleanup pods running past spec.activeDeadlineSeconds
        self.resync_interval = resync_interval
        self.runs: list[tuple[str, str, int, str]] = []  # (pod namespace/name, node, exit code, message)
        self.errors: list[str] = []  # exceptions raised by run_pod (the pod is then Failed)
        self._workers = workers
        self._events: queue.Queue[tuple[ResourceType, Event] | None] = queue.Queue()
        self._timers: list[_Timer] = []
        self._seq = itertools.count()
        self._started: set[tuple[str, str, str]] = set()  # (ns, name, uid) of cleanup pods taken
        self._terminating: set[str] = set()  # uids with a removal scheduled
        self._dirty: set[tuple[str, str]] = set()  # DaemonSets to reconcile
        self._deadlines: dict[str, _Timer] = {}  # pod uid -> its activeDeadlineSeconds timer
        self._start_errors: dict[str, float] = {}  # pod uid -> when its start error began
        self._start_error_writes: dict[str, int] = {}
        self._busy = 0
        self._busy_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._pods = store.rt("pods")
        self._nodes = store.rt("nodes")
        self._daemonsets = store.rt("daemonsets", "apps")

    # ------------------------------------------------------------------------------------------ public

    def behaviour(self, node: str) -> NodeBehaviour:
        if node not in self.behaviours:
            self.behaviours[node] = NodeBehaviour()
        return self.behaviours[node]

    def start(self) -> SimulatedKubelet:
        self._pool = ThreadPoolExecutor(max_workers=self._workers, thread_name_prefix="kubelet-run")
        self.store.graceful_delete = self._graceful_delete
        self.store.subscribe(self._on_event)
        self._thread = threading.Thread(target=self._main, name="kubelet", daemon=True)
        self._thread.start()
        self._events.put(None)  # initial full sync
        return self

    def stop(self) -> None:
        self._stop.set()
        self._events.put(None)
        self.store.unsubscribe(self._on_event)
        if self.store.graceful_delete == self._graceful_delete:
            self.store.graceful_delete = None
        if self._thread is not None:
            self._thread.join(10)
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> SimulatedKubelet:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def set_ready(self, node: str, ready: bool) -> None:
        """Bring a node's kubelet up or down, and write what the node lifecycle controller would."""
        self.behaviour(node).ready = ready

        def edit(obj: Obj) -> None:
            now = now_iso()
            conditions = obj.setdefault("status", {}).setdefault("conditions", [])
            conditions[:] = [c for c in conditions if c.get("type") != "Ready"]
            conditions.append({"type": "Ready", "status": "True" if ready else "Unknown",
                               "reason": "KubeletReady" if ready else "NodeStatusUnknown",
                               "message": "kubelet is posting ready status" if ready else
                               "Kubelet stopped posting node status.",
                               "lastHeartbeatTime": now, "lastTransitionTime": now})

        def taints(obj: Obj) -> None:
            spec = obj.setdefault("spec", {})
            kept = [t for t in spec.get("taints") or [] if t.get("key") != "node.kubernetes.io/unreachable"]
            if not ready:
                kept += [{"key": "node.kubernetes.io/unreachable", "effect": effect, "timeAdded": now_iso()}
                         for effect in ("NoSchedule", "NoExecute")]
            spec["taints"] = kept

        with contextlib.suppress(ApiError):
            self.store.mutate(self._nodes, None, node, edit, subresource="status")
            self.store.mutate(self._nodes, None, node, taints)
        self._events.put(None)

    def wait_idle(self, timeout: float = 10.0, settle: float = 0.05) -> bool:
        """Wait until no event, timer (node delays, termination delays) or running pod is pending."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._idle():
                time.sleep(settle)
                if self._idle():
                    return True
            time.sleep(0.01)
        return False

    # ------------------------------------------------------------------------------------------ store hooks

    def _graceful_delete(self, rt: ResourceType, pod: Obj) -> bool:
        node = str((pod.get("spec") or {}).get("nodeName") or "")
        if self.store.find(self._nodes, None, node) is None:
            return False  # the pod garbage collector removes pods of nodes that are gone
        if not self._node_up(node):
            return True  # nobody to confirm it: the pod stays Terminating
        return self._termination_delay(node) > 0

    def _termination_delay(self, node: str) -> float:
        override = self.behaviour(node).termination_delay
        return self.termination_delay if override is None else override

    def _on_event(self, rt: ResourceType, ev: Event) -> None:
        if rt.key in (("", "pods"), ("", "nodes"), ("apps", "daemonsets")):
            self._events.put((rt, ev))

    # ------------------------------------------------------------------------------------------ main loop

    def _idle(self) -> bool:
        return self._events.unfinished_tasks == 0 and self._busy == 0 and not self._dirty and \
            not any(not t.cancelled for t in list(self._timers))

    def _main(self) -> None:
        last_resync = 0.0
        while not self._stop.is_set():
            timeout = min(self.resync_interval, 1.0)
            if self._timers:
                timeout = max(0.0, min(timeout, self._timers[0].due - time.monotonic()))
            batch: list[tuple[ResourceType, Event] | None] = []
            with contextlib.suppress(queue.Empty):
                batch.append(self._events.get(timeout=timeout))
                while True:
                    batch.append(self._events.get_nowait())
            with self._busy_lock:
                self._busy += 1
            try:
                full = False
                for entry in batch:
                    if entry is None:
                        full = True
                    else:
                        self._handle(*entry)
                if full or time.monotonic() - last_resync > self.resync_interval:
                    self._resync()
                    last_resync = time.monotonic()
                self._reconcile_dirty()
                self._run_timers()
            except Exception:  # keep the simulated nodes alive; record for the test to see
                self.errors.append(traceback.format_exc())
            finally:
                for _ in batch:
                    self._events.task_done()
                with self._busy_lock:
                    self._busy -= 1

    def _at(self, delay: float, action: Callable[[], None]) -> _Timer:
        timer = _Timer(time.monotonic() + delay, next(self._seq), action)
        heapq.heappush(self._timers, timer)
        return timer

    def _run_timers(self) -> None:
        now = time.monotonic()
        while self._timers and self._timers[0].due <= now:
            timer = heapq.heappop(self._timers)
            if timer.cancelled:
                continue
            try:
                timer.action()
            except Exception:
                self.errors.append(traceback.format_exc())

    def _handle(self, rt: ResourceType, ev: Event) -> None:
        if rt.key == ("apps", "daemonsets"):
            self._dirty.add((ev.obj["metadata"]["namespace"], ev.obj["metadata"]["name"]))
        elif rt.key == ("", "nodes"):
            self._dirty.update(self._all_daemonsets())
            if ev.type != "ADDED":  # readiness changed or the node is gone: look at its pods again
                for pod in self.store.pods_on_node(ev.obj["metadata"]["name"]):
                    self._consider_pod(pod)
        else:
            self._handle_pod(ev)

    def _handle_pod(self, ev: Event) -> None:
        pod = ev.obj
        meta = pod["metadata"]
        for ref in meta.get("ownerReferences") or []:
            if ref.get("kind") == "DaemonSet" and ref.get("controller"):
                self._dirty.add((meta["namespace"], ref["name"]))
        if ev.type == "DELETED":
            self._cancel_deadline(meta["uid"])
            return
        self._consider_pod(pod)

    def _consider_pod(self, pod: Obj) -> None:
        meta = pod["metadata"]
        node = (pod.get("spec") or {}).get("nodeName")
        if not node:
            return
        if meta.get("deletionTimestamp"):
            if meta["uid"] not in self._terminating and self.store.find(self._nodes, None, node) is None:
                self._terminating.add(meta["uid"])  # the pod garbage collector: the node is gone
                self._at(0.0, functools.partial(self._finish_delete, meta["namespace"], meta["name"], meta["uid"]))
            elif meta["uid"] not in self._terminating and self._node_up(node):
                self._terminating.add(meta["uid"])
                grace = float(meta.get("deletionGracePeriodSeconds") or 0)
                self._at(min(self._termination_delay(node), grace) if grace else 0.0,
                         functools.partial(self._finish_delete, meta["namespace"], meta["name"], meta["uid"]))
            return
        phase = (pod.get("status") or {}).get("phase", "Pending")
        if phase != "Pending" or not self._node_up(node):
            return
        if self._is_cleanup_pod(pod):
            key = (meta["namespace"], meta["name"], meta["uid"])
            if key not in self._started:
                self._started.add(key)
                delay = self.behaviour(node).delay
                self._at(delay, lambda: self._submit(key, node))
                deadline = (pod.get("spec") or {}).get("activeDeadlineSeconds")
                if deadline and self.active_deadline:
                    self._deadlines[meta["uid"]] = self._at(delay + float(deadline),
                                                            functools.partial(self._deadline_exceeded, key))
        elif self._is_daemon_pod(pod):
            self._write_running(meta["namespace"], meta["name"], meta["uid"], ready=True)

    def _finish_delete(self, namespace: str, name: str, uid: str) -> None:
        self._terminating.discard(uid)
        current = self.store.find(self._pods, namespace, name)
        if current is not None and current["metadata"]["uid"] == uid:
            self.store.remove_now(self._pods, namespace, name)

    def _resync(self) -> None:
        """Catch what events alone do not: nodes that came back, pods waiting for them."""
        self._dirty.update(self._all_daemonsets())
        items, *_ = self.store.list(self._pods)
        for pod in items:
            self._consider_pod(pod)

    def _all_daemonsets(self) -> set[tuple[str, str]]:
        items, *_ = self.store.list(self._daemonsets)
        return {(ds["metadata"]["namespace"], ds["metadata"]["name"]) for ds in items}

    def _node_up(self, node: str | None) -> bool:
        if not node:
            return False
        if not self.behaviour(node).ready:
            return False
        return node_is_ready(self.store.find(self._nodes, None, node))

    def _is_cleanup_pod(self, pod: Obj) -> bool:
        return bool(self.cleanup_selector) and self.cleanup_selector.matches(pod["metadata"].get("labels"))

    @staticmethod
    def _is_daemon_pod(pod: Obj) -> bool:
        return any(r.get("kind") == "DaemonSet" and r.get("controller")
                   for r in pod["metadata"].get("ownerReferences") or [])

    # ------------------------------------------------------------------------------------------ pod status writes

    def _write_running(self, namespace: str, name: str, uid: str, *, ready: bool) -> None:
        def edit(pod: Obj) -> None:
            if pod["metadata"]["uid"] != uid or (pod.get("status") or {}).get("phase") not in (None, "Pending"):
                return
            node = self.store.find(self._nodes, None, pod["spec"]["nodeName"]) or {}
            addresses = (node.get("status") or {}).get("addresses") or []
            host_ip = next((a["address"] for a in addresses if a.get("type") == "InternalIP"), "10.0.0.1")
            status = pod.setdefault("status", {})
            status.update(phase="Running", hostIP=host_ip, startTime=status.get("startTime") or now_iso(),
                          conditions=_conditions(ready),
                          containerStatuses=_container_statuses(pod, {"running": {"startedAt": now_iso()}},
                                                                ready=ready))
            status["podIP"] = host_ip if pod["spec"].get("hostNetwork") else "10.244.0.10"
            status["podIPs"] = [{"ip": status["podIP"]}]
            status["hostIPs"] = [{"ip": host_ip}]

        with contextlib.suppress(ApiError):
            self.store.mutate(self._pods, namespace, name, edit, subresource="status")

    def _submit(self, key: tuple[str, str, str], node: str) -> None:
        assert self._pool is not None
        if self._stop.is_set():
            return
        with self._busy_lock:
            self._busy += 1
        future = self._pool.submit(self._run_cleanup_pod, key, node)
        future.add_done_callback(lambda _f: self._done())

    def _done(self) -> None:
        with self._busy_lock:
            self._busy -= 1

    def _run_cleanup_pod(self, key: tuple[str, str, str], node: str) -> None:
        namespace, name, uid = key
        pod = self.store.find(self._pods, namespace, name)
        if pod is None or pod["metadata"]["uid"] != uid or pod["metadata"].get("deletionTimestamp"):
            return
        if not self._node_up(node):
            self._started.discard(key)  # try again when the node is back
            return
        behaviour = self.behaviour(node)
        if behaviour.start_error is not None and not self._start_error(key, node, behaviour):
            return
        self._write_running(namespace, name, uid, ready=True)
        if behaviour.hang:
            return
        restarts = 0
        last_state: dict[str, Any] | None = None
        while True:
            behaviour.attempts += 1
            pod = self.store.find(self._pods, namespace, name)
            if pod is None or pod["metadata"]["uid"] != uid:
                return
            logs = ""
            if behaviour.attempts <= behaviour.fail_first:
                exit_code, message = behaviour.fail_result
            elif self.run_pod is None:
                exit_code, message = 0, ""
            else:
                try:
                    result = self.run_pod(copy.deepcopy(pod), node)
                    exit_code, message = int(result[0]), str(result[1])
                    logs = str(result[2]) if len(result) > 2 else ""
                except Exception:
                    self.errors.append(traceback.format_exc())
                    exit_code, message = 128, ""
                    logs = traceback.format_exc()
            self.runs.append((f"{namespace}/{name}", node, exit_code, message))
            container = ((pod.get("spec") or {}).get("containers") or [{}])[0]
            if not message and exit_code != 0 and container.get("terminationMessagePolicy") == \
                    "FallbackToLogsOnError":
                message = "\n".join(logs.splitlines()[-80:])[-2048:]
            message = truncate_message(message, self.termination_message_limit)
            terminated = {"exitCode": exit_code, "reason": "Completed" if exit_code == 0 else "Error",
                          "startedAt": now_iso(), "finishedAt": now_iso(),
                          "containerID": f"containerd://{uid.replace('-', '')}{restarts}"}
            if message:
                terminated["message"] = message
            policy = (pod.get("spec") or {}).get("restartPolicy", "Always")
            if exit_code != 0 and policy in ("OnFailure", "Always") and restarts < self.max_restarts:
                restarts += 1
                last_state = {"terminated": terminated}
                self._write_restart(namespace, name, uid, restarts, last_state)
                continue
            self._write_terminated(namespace, name, uid, exit_code, terminated, restarts, last_state, logs)
            return

    def _start_error(self, key: tuple[str, str, str], node: str, behaviour: NodeBehaviour) -> bool:
        """Write the waiting reason, alternating with ImagePullBackOff as the kubelet does for pulls; True
        once `start_error_seconds` have passed (the container may start)."""
        namespace, name, uid = key
        assert behaviour.start_error is not None
        reason, message = behaviour.start_error
        begun = self._start_errors.setdefault(uid, time.monotonic())
        if time.monotonic() - begun >= behaviour.start_error_seconds:
            return True
        count = self._start_error_writes.get(uid, 0)
        self._start_error_writes[uid] = count + 1
        if reason == "ErrImagePull" and count % 2:
            reason, message = "ImagePullBackOff", f'Back-off pulling image: {message}'

        def edit(pod: Obj) -> None:
            if pod["metadata"]["uid"] == uid and (pod.get("status") or {}).get("phase") in (None, "Pending"):
                status = pod.setdefault("status", {})
                status.update(phase="Pending", conditions=_conditions(False, "ContainersNotReady"),
                              containerStatuses=_container_statuses(
                                  pod, {"waiting": {"reason": reason, "message": message}}, ready=False))

        with contextlib.suppress(ApiError):
            self.store.mutate(self._pods, namespace, name, edit, subresource="status")
        self._at(min(0.5, behaviour.start_error_seconds), lambda: self._submit(key, node))
        return False

    def _write_restart(self, namespace: str, name: str, uid: str, restarts: int, last_state: dict[str, Any]) -> None:
        def edit(pod: Obj) -> None:
            if pod["metadata"]["uid"] == uid:
                pod["status"]["containerStatuses"] = _container_statuses(
                    pod, {"running": {"startedAt": now_iso()}}, ready=True, restarts=restarts, last_state=last_state)

        with contextlib.suppress(ApiError):
            self.store.mutate(self._pods, namespace, name, edit, subresource="status")

    def _write_terminated(self, namespace: str, name: str, uid: str, exit_code: int, terminated: dict[str, Any],
                          restarts: int, last_state: dict[str, Any] | None, logs: str) -> None:
        self._cancel_deadline(uid)

        def edit(pod: Obj) -> None:
            status = pod.setdefault("status", {})
            if pod["metadata"]["uid"] != uid or status.get("phase") in ("Succeeded", "Failed"):
                return  # e.g. already killed for exceeding activeDeadlineSeconds
            status["phase"] = "Succeeded" if exit_code == 0 else "Failed"
            status["conditions"] = _conditions(False, "PodCompleted" if exit_code == 0 else "PodFailed")
            status["containerStatuses"] = _container_statuses(pod, {"terminated": terminated}, ready=False,
                                                              restarts=restarts, last_state=last_state)

        with self.store.lock:
            with contextlib.suppress(ApiError):
                self.store.mutate(self._pods, namespace, name, edit, subresource="status")
            current = self.store.find(self._pods, namespace, name)
            if current is not None and current["metadata"]["uid"] == uid:
                self.store.pod_logs[(namespace, name)] = logs

    def _cancel_deadline(self, uid: str) -> None:
        timer = self._deadlines.pop(uid, None)
        if timer is not None:
            timer.cancelled = True

    def _deadline_exceeded(self, key: tuple[str, str, str]) -> None:
        """The kubelet kills a pod active longer than spec.activeDeadlineSeconds."""
        namespace, name, uid = key
        self._deadlines.pop(uid, None)

        def edit(pod: Obj) -> None:
            status = pod.setdefault("status", {})
            if pod["metadata"]["uid"] != uid or status.get("phase") in ("Succeeded", "Failed"):
                return
            killed = {"exitCode": 137, "reason": "Error", "startedAt": status.get("startTime") or now_iso(),
                      "finishedAt": now_iso()}
            status.update(phase="Failed", reason="DeadlineExceeded",
                          message="Pod was active on the node longer than the specified deadline",
                          conditions=_conditions(False, "PodFailed"),
                          containerStatuses=_container_statuses(pod, {"terminated": killed}, ready=False))

        with contextlib.suppress(ApiError):
            self.store.mutate(self._pods, namespace, name, edit, subresource="status")

    # ------------------------------------------------------------------------------------------ DaemonSet controller

    def _reconcile_dirty(self) -> None:
        if not self._dirty:
            return
        dirty, self._dirty = self._dirty, set()
        nodes, *_ = self.store.list(self._nodes)
        for namespace, name in sorted(dirty):
            ds = self.store.find(self._daemonsets, namespace, name)
            if ds is not None:
                self._reconcile(ds, nodes)

    def _reconcile(self, ds: Obj, nodes: list[Obj]) -> None:
        meta = ds["metadata"]
        if meta.get("deletionTimestamp"):
            return
        generation = str(meta.get("generation", 1))
        desired = {n["metadata"]["name"] for n in nodes if daemon_pod_fits(ds, n)}
        by_node: dict[str, list[Obj]] = {}
        for pod in self.store.dependents(meta["uid"]):
            if pod.get("kind") == "Pod" and any(r.get("uid") == meta["uid"] and r.get("controller")
                                                for r in pod["metadata"].get("ownerReferences") or []):
                by_node.setdefault((pod.get("spec") or {}).get("nodeName") or "", []).append(pod)
        for node, pods in by_node.items():
            live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
            for index, pod in enumerate(live):
                labels = pod["metadata"].get("labels") or {}
                stale = labels.get("pod-template-generation") != generation
                if node not in desired or index > 0 or stale:
                    with contextlib.suppress(ApiError):
                        self.store.delete(self._pods, meta["namespace"], pod["metadata"]["name"])
        for node in sorted(desired):
            if not by_node.get(node):
                self._create_daemon_pod(ds, node, generation)
        self._write_ds_status(ds, desired)

    def _create_daemon_pod(self, ds: Obj, node: str, generation: str) -> None:
        meta = ds["metadata"]
        template = (ds.get("spec") or {}).get("template") or {}
        pod_meta = dict(template.get("metadata") or {})
        labels = dict(pod_meta.get("labels") or {})
        labels.update({"pod-template-generation": generation, "controller-revision-hash": f"rev{generation}"})
        spec = dict(template.get("spec") or {})
        tolerations = list(spec.get("tolerations") or [])
        extra = list(DAEMON_TOLERATIONS) + ([HOST_NETWORK_TOLERATION] if spec.get("hostNetwork") else [])
        for tol in extra:
            if tol not in tolerations:
                tolerations.append(dict(tol))
        spec.update(nodeName=node, tolerations=tolerations)
        body = {
            "metadata": {
                "generateName": f"{meta['name']}-", "namespace": meta["namespace"], "labels": labels,
                "annotations": dict(pod_meta.get("annotations") or {}),
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "DaemonSet", "name": meta["name"],
                                     "uid": meta["uid"], "controller": True, "blockOwnerDeletion": True}],
            },
            "spec": spec,
        }
        try:
            self.store.create(self._pods, meta["namespace"], body)
        except ApiError as exc:
            self.errors.append(f"DaemonSet {meta['namespace']}/{meta['name']}: creating a pod on {node}: {exc}")

    def _write_ds_status(self, ds: Obj, desired: set[str]) -> None:
        meta = ds["metadata"]
        pods = [p for p in self.store.dependents(meta["uid"]) if p.get("kind") == "Pod"]
        generation = str(meta.get("generation", 1))
        scheduled = {(p.get("spec") or {}).get("nodeName") for p in pods}
        ready_nodes = {(p.get("spec") or {}).get("nodeName") for p in pods
                       if (p.get("status") or {}).get("phase") == "Running"
                       and not p["metadata"].get("deletionTimestamp")}
        updated = {(p.get("spec") or {}).get("nodeName") for p in pods
                   if (p["metadata"].get("labels") or {}).get("pod-template-generation") == generation}
        status = {
            "currentNumberScheduled": len(scheduled & desired),
            "desiredNumberScheduled": len(desired),
            "numberMisscheduled": len(scheduled - desired),
            "numberReady": len(ready_nodes & desired),
            "numberAvailable": len(ready_nodes & desired),
            "updatedNumberScheduled": len(updated & desired),
            "observedGeneration": int(generation),
        }
        unavailable = len(desired) - status["numberAvailable"]
        if unavailable:
            status["numberUnavailable"] = unavailable

        def edit(obj: Obj) -> None:
            if obj["metadata"]["uid"] == meta["uid"]:
                obj["status"] = status

        with contextlib.suppress(ApiError):
            self.store.mutate(self._daemonsets, meta["namespace"], meta["name"], edit, subresource="status")
