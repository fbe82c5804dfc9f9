"""Multus that comes back: a GitOps tool or an operator that owns a Multus DaemonSet undoes the stop (self-heal),
and Multus writes its files again on nodes the sweep just cleaned. Warn before the stop when a DaemonSet
carries another controller's tracking metadata; after the sweep, read the DaemonSets again and name any that
came back, so the run fails instead of reporting nodes clean that are not."""

from __future__ import annotations

import logging

from .kube import DAEMONSETS, JSON, PODS, Kube, NotFound
from .stop import STOP_LABEL, Stopped, is_stopped

log = logging.getLogger(__name__)

# metadata key prefix -> the controller it means
_TRACKERS = (("argocd.argoproj.io/", "Argo CD"), ("kustomize.toolkit.fluxcd.io/", "Flux (Kustomization)"),
             ("helm.toolkit.fluxcd.io/", "Flux (HelmRelease)"))


def tracked_by(ds: JSON) -> list[str]:
    """Which other controllers say they manage this DaemonSet, from its labels, annotations and owners."""
    meta = ds.get("metadata") or {}
    found: list[str] = []
    for key, value in sorted({**(meta.get("labels") or {}), **(meta.get("annotations") or {})}.items()):
        for prefix, who in _TRACKERS:
            if key.startswith(prefix) and not any(f.startswith(who) for f in found):
                found.append(f"{who} ({key}={value})")
    found += [f"{o.get('kind', '?')} {o.get('name', '?')} ({o.get('apiVersion', '?')}), its owner"
              for o in meta.get("ownerReferences") or []]
    return found


def warn_tracked(stopped: list[Stopped]) -> None:
    for item in stopped:
        for who in tracked_by(item.daemonset):
            log.warning("Multus DaemonSet %s/%s is managed by %s: if it reverts changes (self-heal, "
                        "reconcile), it restarts Multus during the cleanup and the run fails; pause it for the "
                        "uninstall", item.ref.namespace, item.ref.name, who)


def came_back(kube: Kube, stopped: list[Stopped]) -> list[str]:
    """The stopped DaemonSets that something restored since the stop, each with what shows it."""
    problems = []
    for item in stopped:
        ref = item.ref
        try:
            ds = kube.request("get", DAEMONSETS, namespace=ref.namespace, name=ref.name)
        except NotFound:
            continue  # deleted by someone: it schedules nothing
        signs = []
        if not is_stopped(ds):
            signs.append(f"its nodeSelector no longer has {STOP_LABEL}=true")
        names, _ = kube.list_reduced(PODS, _live_name, namespace=ref.namespace,
                                     query={"labelSelector": item.selector})
        live = sorted(names)
        if live:
            signs.append(f"{len(live)} Multus pod(s) scheduled again ({', '.join(live[:5])})")
        if signs:
            who = tracked_by(ds)
            hint = f"managed by {'; '.join(who)}" if who else "something (a GitOps tool or an operator)"
            problems.append(f"DaemonSet {ref.namespace}/{ref.name} was restored during the cleanup: "
                            f"{' and '.join(signs)}; {hint} reverted the stop")
    return problems


def _live_name(pod: JSON) -> str | None:
    meta = pod.get("metadata") or {}
    return None if meta.get("deletionTimestamp") else str(meta.get("name", ""))
