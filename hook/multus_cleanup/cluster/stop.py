"""Step 1: stop Multus, so nothing re-creates its files while the nodes are cleaned.

Each Multus DaemonSet stays (Helm deletes it afterwards), but its pod template gets a nodeSelector no node
carries, so its controller schedules no Multus pod anywhere again; then the run deletes the Multus pods
itself, with one deletecollection per DaemonSet. (Leaving the deletions to the DaemonSet controller would
take nodes / 20 seconds, its default client rate: 250 s at 5,000 nodes, docs/performance.md.) A running
Multus would regenerate its config once the primary config is restored, so `MultusPods` follows the pods
as they go and frees each node for its cleanup as soon as its own Multus pod is gone: the stop and the
sweep overlap, and one node's slow kubelet holds up only that node.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from ..config.cluster import ObjectRef
from .kube import DAEMONSETS, JSON, PODS, ApiError, Forbidden, Gone, Kube, NotFound
from .selectors import from_label_selector
from .watchbackoff import WatchBackoff

log = logging.getLogger(__name__)

STOP_LABEL = "multus-cleanup.k8s.cni.cncf.io/stopped"


@dataclass(frozen=True)
class Stopped:
    """A Multus DaemonSet the run stopped; `patched`: by this run (so this run may undo it)."""

    ref: ObjectRef
    selector: str  # its pods' label selector
    patched: bool
    daemonset: JSON  # as read before the stop


def pause_multus(kube: Kube, daemonsets: tuple[ObjectRef, ...]) -> list[Stopped]:
    """Give every configured Multus DaemonSet's pod template a nodeSelector no node carries."""
    stopped: list[Stopped] = []
    for ref in daemonsets:
        try:
            ds = kube.request("get", DAEMONSETS, namespace=ref.namespace, name=ref.name)
        except NotFound:
            log.info("Multus DaemonSet %s/%s not found: nothing to stop there", ref.namespace, ref.name)
            continue
        spec = ds.get("spec") or {}
        selector = from_label_selector(spec.get("selector") or {})
        if is_stopped(ds):
            log.info("Multus DaemonSet %s/%s is already stopped", ref.namespace, ref.name)
        else:
            patch = {"spec": {"template": {"spec": {"nodeSelector": {STOP_LABEL: "true"}}}}}
            kube.request("patch", DAEMONSETS, namespace=ref.namespace, name=ref.name, body=patch,
                         content_type="application/merge-patch+json")
            log.info("Stopping Multus: DaemonSet %s/%s now schedules no pods (it stays for Helm to delete)",
                     ref.namespace, ref.name)
        stopped.append(Stopped(ref, selector, not is_stopped(ds), ds))
    return stopped


def is_stopped(ds: JSON) -> bool:
    node_selector = (((ds.get("spec") or {}).get("template") or {}).get("spec") or {}).get("nodeSelector") or {}
    return bool(node_selector.get(STOP_LABEL) == "true")


def undo_stop(kube: Kube, stopped: list[Stopped]) -> list[str]:
    """Put back the nodeSelector of every DaemonSet this run stopped: Multus runs again as before the run.
    Returns what could not be restarted, in words."""
    failed = []
    for item in (s for s in stopped if s.patched):
        ref = item.ref
        # Removing only our key leaves the nodeSelector exactly as it was before the stop.
        patch = {"spec": {"template": {"spec": {"nodeSelector": {STOP_LABEL: None}}}}}
        try:
            kube.request("patch", DAEMONSETS, namespace=ref.namespace, name=ref.name, body=patch,
                         content_type="application/merge-patch+json")
            log.info("Restarting Multus: DaemonSet %s/%s schedules its pods again, as before the cleanup",
                     ref.namespace, ref.name)
        except ApiError as err:
            log.error("could not restart Multus DaemonSet %s/%s: %s", ref.namespace, ref.name, err)
            failed.append(f"{ref.namespace}/{ref.name} ({err})")
    return failed


PodKey = tuple[str, str]  # namespace, name


class MultusPods:
    """The Multus pods of the stopped DaemonSets, node by node, from one list and one watch per DaemonSet.

    `on_free(node)` (see `subscribe`) is called from the watch's thread, under the lock, when a node's last
    Multus pod is gone.
    Pods on unreachable nodes are not waited for: they stay Terminating until their kubelet returns, and
    their nodes cannot be cleaned now anyway (the unreachableNodes policy decides about them).
    """

    def __init__(self, kube: Kube, stopped: list[Stopped], unreachable_nodes: frozenset[str]) -> None:
        self.kube, self.stopped, self.unreachable = kube, stopped, unreachable_nodes
        self.on_free: Callable[[str], None] | None = None
        self.total = 0  # Multus pods found at the stop
        self.failure: ApiError | None = None  # set when a watch failed for good: no node would be freed
        self._lock = threading.Lock()
        self._pods: dict[PodKey, str] = {}  # pod -> its node
        self._by_node: dict[str, set[PodKey]] = {}
        self._freed: set[str] = set()
        self._versions: dict[int, str] = {}
        self._evicted_at = 0.0
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    # -- the stop -------------------------------------------------------------------------------------
    def list_and_evict(self) -> int:
        """List the Multus pods, then start deleting them all (each with its own grace period) and watching
        them go. Returns how many there are. The deletion runs in a thread of its own: the API server deletes
        a collection one pod after the other (about 100 per second), and every node whose pod is gone can
        be cleaned meanwhile."""
        skipped: list[str] = []
        for index, item in enumerate(self.stopped):
            keys, version = self.kube.list_reduced(PODS, _key_and_node, namespace=item.ref.namespace,
                                                   query={"labelSelector": item.selector})
            self._versions[index] = version
            with self._lock:
                for name, node in keys:
                    self._add((item.ref.namespace, name), node)
            self.total += len(keys)
            skipped += sorted({node for _, node in keys if node in self.unreachable})
        if skipped:
            log.warning("Multus pods on %d unreachable node(s) are not waited for (%s): they stay Terminating "
                        "until their kubelet is back", len(skipped), ", ".join(skipped[:10]))
        log.info("Deleting the %d Multus pod(s) of %d DaemonSet(s); each node is cleaned as soon as its own is gone",
                 self.total, len(self.stopped))
        for index, item in enumerate(self.stopped):
            self._start(self._watch, index, item, f"multus-watch-{index}")
        self._start(self._evict, 0, None, "multus-evict")
        return self.total

    def _start(self, target: Callable[[int, Stopped | None], None], index: int, item: Stopped | None,
               name: str) -> None:
        thread = threading.Thread(target=target, args=(index, item), name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _evict(self, _index: int, _item: Stopped | None) -> None:
        try:
            for item in self.stopped:
                self.kube.request_discarding("deletecollection", PODS, namespace=item.ref.namespace,
                                             query={"labelSelector": item.selector})
        except ApiError as err:
            log.error("could not delete the Multus pods: %s", err)
            self.failure = err
        except Exception as err:  # never end silently: the sweep ends the run with this error
            log.exception("deleting the Multus pods failed")
            self.failure = ApiError(0, "", repr(err), "deletecollection", "pods")
        self._evicted_at = time.monotonic()  # stopTimeoutSeconds counts from here

    def close(self) -> None:
        self._stop.set()

    # -- what the sweep asks --------------------------------------------------------------------------
    def held(self) -> set[str]:
        with self._lock:
            return set(self._by_node)

    def _holding(self) -> bool:
        """Whether any node still waits (per watch event: no copy of the set)."""
        return bool(self._by_node)

    def subscribe(self, on_free: Callable[[str], None]) -> set[str]:
        """The nodes that still run a Multus pod; `on_free(node)` comes for each of them later, never before."""
        with self._lock:
            self.on_free = on_free
            return set(self._by_node)

    def overdue(self, timeout_seconds: int) -> dict[str, str]:
        """node -> why, for the nodes whose Multus pod outlived `timeout_seconds` since its deletion."""
        if not self._evicted_at or time.monotonic() - self._evicted_at < timeout_seconds:
            return {}
        with self._lock:
            late = {node: sorted(name for _, name in keys) for node, keys in self._by_node.items()}
        return {node: (f"its Multus pod {', '.join(names)} was still running {timeout_seconds}s after it was "
                       "deleted (stuck Terminating: the node or its kubelet may be down); see "
                       "docs/uninstall.md#multus-pods-do-not-stop") for node, names in late.items()}

    # -- bookkeeping ----------------------------------------------------------------------------------
    def _add(self, key: PodKey, node: str) -> None:
        if not node or node in self.unreachable:
            return  # not bound to a node: it holds none up
        if node in self._freed:
            # a DaemonSet controller that had not seen the stop yet: Multus may write there again
            log.warning("Multus pod %s/%s appeared on node %s after the stop", *key, node)
            return
        self._pods[key] = node
        self._by_node.setdefault(node, set()).add(key)

    def _remove(self, key: PodKey) -> None:
        node = self._pods.pop(key, None)
        if node is None:
            return
        keys = self._by_node.get(node, set())
        keys.discard(key)
        if not keys:
            self._by_node.pop(node, None)
            self._freed.add(node)
            if self.on_free is not None:
                self.on_free(node)
            if not self._by_node:
                log.info("All %d Multus pod(s) on reachable nodes are gone", self.total)

    def _resync(self, namespace: str, present: set[PodKey]) -> None:
        """After a relist: every pod of that namespace no longer listed is gone."""
        for key in [k for k in self._pods if k[0] == namespace and k not in present]:
            self._remove(key)

    # -- the watch ------------------------------------------------------------------------------------
    def _watch(self, index: int, item: Stopped | None) -> None:
        assert item is not None
        try:
            self._follow(index, item)
        except Exception as err:  # never end silently: the sweep ends the run with this error
            log.exception("the watch on the Multus pods failed")
            self.failure = err if isinstance(err, ApiError) else ApiError(0, "", repr(err), "watch", "pods")

    def _follow(self, index: int, item: Stopped) -> None:
        namespace, version = item.ref.namespace, self._versions.get(index, "")
        backoff = WatchBackoff()
        while not self._stop.is_set() and self._holding():
            try:
                query = {"labelSelector": item.selector, "resourceVersion": version}
                for event in self.kube.watch(PODS, namespace=namespace, query=query, timeout_seconds=60):
                    obj = event["object"]
                    meta = obj.get("metadata") or {}
                    version = meta.get("resourceVersion") or version
                    key = (namespace, str(meta.get("name", "")))
                    with self._lock:
                        if event["type"] == "DELETED":
                            self._remove(key)
                        elif event["type"] == "ADDED" and key not in self._pods:
                            self._add(key, str((obj.get("spec") or {}).get("nodeName") or ""))
                    backoff.succeeded()
                    if self._stop.is_set() or not self._holding():
                        return
            except Gone:
                keys, version = self.kube.list_reduced(PODS, _key_and_node, namespace=namespace,
                                                       query={"labelSelector": item.selector})
                with self._lock:
                    self._resync(namespace, {(namespace, name) for name, _ in keys})
            except Forbidden:
                raise
            except ApiError as err:
                delay = backoff.failed()
                if delay is None:
                    raise
                log.warning("watching the Multus pods failed (%s); watching again in %.1fs", err, delay)
                self._stop.wait(delay)


def _key_and_node(pod: JSON) -> tuple[str, str]:
    return str((pod.get("metadata") or {}).get("name", "")), str((pod.get("spec") or {}).get("nodeName") or "")
