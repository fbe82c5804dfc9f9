"""Step 1: stop Multus, so nothing re-creates its files while the nodes are cleaned.

The DaemonSet stays (Helm deletes it afterwards); its pod template gets a nodeSelector no node carries,
so the DaemonSet controller removes every Multus pod. A restored primary config would otherwise make a
running Multus regenerate its own config.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from ..config.cluster import ObjectRef
from .kube import DAEMONSETS, JSON, PODS, ApiError, Gone, Kube, NotFound
from .selectors import from_label_selector

log = logging.getLogger(__name__)

STOP_LABEL = "multus-cleanup.k8s.cni.cncf.io/stopped"


class StopError(Exception):
    pass


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


def wait_stopped(kube: Kube, stopped: list[Stopped], timeout_seconds: int,
                 unreachable_nodes: frozenset[str] = frozenset()) -> int:
    """Wait until the pods of every stopped DaemonSet are gone. Returns how many ran.

    Pods on unreachable nodes are not waited for: they stay Terminating until their kubelet returns, and
    their nodes cannot be cleaned now anyway (the unreachableNodes policy decides about them).
    """
    deadline = time.monotonic() + timeout_seconds
    # List every DaemonSet's pods first, then watch each until its pods are gone.
    listed = [(s.ref, s.selector, *kube.list_all(PODS, namespace=s.ref.namespace,
                                                 query={"labelSelector": s.selector}))
              for s in stopped]
    return sum(_wait_gone(kube, ref, selector, items, version, deadline, timeout_seconds, unreachable_nodes)
               for ref, selector, items, version in listed)


def _wait_gone(kube: Kube, ref: ObjectRef, selector: str, items: list[JSON], version: str, deadline: float,
               timeout_seconds: int, unreachable_nodes: frozenset[str]) -> int:
    """Wait until no pod of the DaemonSet is left on a reachable node: a watch from the list, no polling."""

    def reachable(pods: list[JSON]) -> dict[str, JSON]:
        alive = {}
        for pod in pods:
            node = (pod.get("spec") or {}).get("nodeName")
            if node in unreachable_nodes:
                log.warning("Multus pod %s is on unreachable node %s: not waiting for it", pod["metadata"]["name"],
                            node)
            else:
                alive[pod["metadata"]["name"]] = pod
        return alive

    alive = reachable(items)
    initial = len(items)
    if alive:
        log.info("Waiting for %d Multus pod(s) of %s/%s to terminate", len(alive), ref.namespace, ref.name)
    while alive:
        remaining = int(deadline - time.monotonic())
        if remaining <= 0:
            raise StopError(_still_running(ref, alive, timeout_seconds))
        query = {"labelSelector": selector, "resourceVersion": version}
        try:
            for event in kube.watch(PODS, namespace=ref.namespace, query=query,
                                    timeout_seconds=min(remaining, 60)):
                obj = event["object"]
                version = obj.get("metadata", {}).get("resourceVersion", version)
                if event["type"] == "DELETED":
                    alive.pop(obj["metadata"]["name"], None)
                elif event["type"] in ("ADDED", "MODIFIED") and (obj.get("spec") or {}).get("nodeName") \
                        not in unreachable_nodes:
                    alive[obj["metadata"]["name"]] = obj
                if not alive or time.monotonic() > deadline:
                    break
        except Gone:
            items, version = kube.list_all(PODS, namespace=ref.namespace, query={"labelSelector": selector})
            alive = reachable(items)
    if initial:
        log.info("All Multus pods of %s/%s on reachable nodes are gone", ref.namespace, ref.name)
    return initial


def _still_running(ref: ObjectRef, alive: dict[str, JSON], timeout_seconds: int) -> str:
    names = [f"{name} on {(pod.get('spec') or {}).get('nodeName', '?')}" for name, pod in sorted(alive.items())[:10]]
    more = f" and {len(alive) - 10} more" if len(alive) > 10 else ""
    return (f"Multus pods of DaemonSet {ref.namespace}/{ref.name} were still running after {timeout_seconds}s: "
            f"{', '.join(names)}{more}. Their nodes may be unreachable (pods stuck Terminating); "
            "see docs/uninstall.md#multus-pods-do-not-stop")
