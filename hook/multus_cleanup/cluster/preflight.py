"""Checks before the first change: would the API admit the node pods, and which pods still use a secondary
network. Both only read (a server-side dry run persists nothing), so a failure here leaves Multus running."""

from __future__ import annotations

import logging
from typing import Any

from .kube import PODS, ApiError, Conflict, Forbidden, Kube

log = logging.getLogger(__name__)

NETWORKS_ANNOTATION = "k8s.v1.cni.cncf.io/networks"


class PreflightError(Exception):
    pass


def check_admission(kube: Kube, namespace: str, pod: dict[str, Any], node: str) -> None:
    """A server-side dry-run create of one node's real pod: admission (PodSecurity, ResourceQuota, LimitRange,
    webhooks and policies) and field validation answer as for the real create, and nothing is stored.
    An RBAC denial stays a Forbidden (its message names the rule to grant); quota is waited for in Kube."""
    try:
        kube.request("create", PODS, namespace=namespace, body=pod, query={"dryRun": "All"})
    except Forbidden:
        raise
    except Conflict:
        pass  # AlreadyExists comes from storage, after admission accepted the pod
    except ApiError as err:
        message = str(err.args[0]).split(": ", 2)[-1]
        raise PreflightError(
            f"the API server would reject the cleanup's node pods (server-side dry run of the pod for node {node}; "
            f"nothing was changed, Multus still runs): {message}. {_advice(message, namespace)}") from err
    log.info("Admission: the API server accepts the cleanup pod for node %s (server-side dry run)", node)


def _advice(message: str, namespace: str) -> str:
    text = message.lower()
    if "podsecurity" in text:
        return (f"Namespace {namespace} enforces a Pod Security level that forbids the node pods' hostPath "
                f"volumes and root user: label it `kubectl label namespace {namespace} "
                "pod-security.kubernetes.io/enforce=privileged --overwrite`, or install the chart in a "
                "namespace that allows them (docs/uninstall.md#the-api-server-would-reject-the-cleanups-node-pods)")
    if "insufficient quota to match these scopes" in text:
        # ResourceQuota admission configured to limit critical priority classes (GKE does, for every
        # namespace but kube-system): such pods need a quota with that scope in their namespace.
        return (f"Pods of priority class system-node-critical are admitted in namespace {namespace} only with a "
                "ResourceQuota whose scopeSelector names that class (GKE allows them only in kube-system): install "
                "the chart in kube-system, create such a ResourceQuota in the release namespace, or set "
                "cleanup.priorityClassName to another class (docs/uninstall.md#priority-and-preemption)")
    if "exceeded quota" in text:
        return (f"A ResourceQuota in namespace {namespace} had no room for a node pod after waiting about a minute: "
                "raise it or free room (`kubectl describe resourcequota -n "
                f"{namespace}`), then uninstall again")
    if "limitrange" in text or "per container" in text or "per pod" in text:
        return (f"A LimitRange in namespace {namespace} rejects the node pods' resources: set "
                "cleanup.nodePod.resources within its bounds (`kubectl describe limitrange -n "
                f"{namespace}`)")
    if "admission webhook" in text or "validatingadmissionpolic" in text or "denied" in text:
        return ("An admission webhook or policy (Kyverno, Gatekeeper, a ValidatingAdmissionPolicy) denies them: "
                "add an exception for pods labelled app.kubernetes.io/name=multus-cleanup in namespace "
                f"{namespace}")
    if "invalid" in text:
        return "The node pod's settings are not valid for this API server: fix the field it names under cleanup.*"
    return "Fix what the API server names, then uninstall again"


def attached_pods(kube: Kube) -> list[str]:
    """`namespace/name (networks: ...)` of every pod that is not finished and asks Multus for more networks."""
    attached, _ = kube.list_reduced(PODS, _attached)
    return sorted(attached)


def _attached(pod: dict[str, Any]) -> str | None:
    meta, phase = pod.get("metadata") or {}, (pod.get("status") or {}).get("phase")
    networks = (meta.get("annotations") or {}).get(NETWORKS_ANNOTATION, "").strip()
    if networks and phase not in ("Succeeded", "Failed"):
        return f"{meta.get('namespace')}/{meta.get('name')} (networks: {networks[:100]})"
    return None


def describe_attached(attached: list[str], policy: str) -> str:
    names = ", ".join(attached[:20]) + (f" and {len(attached) - 20} more" if len(attached) > 20 else "")
    what = (f"{len(attached)} pod(s) are still attached to secondary networks: {names}. Once Multus is gone, "
            "deleting them does not reach the secondary CNI plugin (its interfaces and IP addresses are not "
            "released)")
    if policy == "fail":
        return (f"{what}. Delete those pods first (or set cleanup.attachedPods=warn to uninstall anyway); "
                "nothing was changed (docs/uninstall.md#pods-are-still-attached-to-secondary-networks)")
    return f"{what}; continuing (attachedPods: warn)"
