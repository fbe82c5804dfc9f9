"""Builders for complete objects (what a real cluster would return), for seeding the emulator."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from .store import Obj, Store

AddNodes = Callable[..., list[str]]  # the conftest `nodes` fixture: nodes(count, **add_nodes kwargs)

CONTROL_PLANE_TAINT = {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}


def make_node(name: str, *, control_plane: bool = False, cordoned: bool = False, ready: bool = True,
              labels: dict[str, str] | None = None, taints: list[dict[str, Any]] | None = None,
              arch: str = "amd64", internal_ip: str | None = None) -> Obj:
    """A Linux Node as a kubeadm-style cluster shows it (the emulator fills in the rest of the status)."""
    node_labels = {
        "kubernetes.io/os": "linux", "kubernetes.io/arch": arch, "kubernetes.io/hostname": name,
        "beta.kubernetes.io/os": "linux", "beta.kubernetes.io/arch": arch,
    }
    node_taints: list[dict[str, Any]] = []
    if control_plane:
        node_labels["node-role.kubernetes.io/control-plane"] = ""
        node_labels["node.kubernetes.io/exclude-from-external-load-balancers"] = ""
        node_taints.append(dict(CONTROL_PLANE_TAINT))
    if not ready:
        node_taints += [{"key": "node.kubernetes.io/unreachable", "effect": effect} for effect in
                        ("NoSchedule", "NoExecute")]
    node_labels.update(labels or {})
    node_taints += list(taints or [])
    spec: dict[str, Any] = {"podCIDR": "10.244.0.0/24", "podCIDRs": ["10.244.0.0/24"]}
    if node_taints:
        spec["taints"] = node_taints
    if cordoned:
        spec["unschedulable"] = True
    address = internal_ip or "10.0.0.1"
    ready_condition = {
        "type": "Ready", "status": "True" if ready else "Unknown",
        "reason": "KubeletReady" if ready else "NodeStatusUnknown",
        "message": "kubelet is posting ready status" if ready else "Kubelet stopped posting node status.",
    }
    return {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": node_labels,
                     "annotations": {"node.alpha.kubernetes.io/ttl": "0",
                                     "volumes.kubernetes.io/controller-managed-attach-detach": "true"}},
        "spec": spec,
        "status": {
            "addresses": [{"type": "InternalIP", "address": address}, {"type": "Hostname", "address": name}],
            "conditions": [
                {"type": "MemoryPressure", "status": "False", "reason": "KubeletHasSufficientMemory",
                 "message": "kubelet has sufficient memory available"},
                {"type": "DiskPressure", "status": "False", "reason": "KubeletHasNoDiskPressure",
                 "message": "kubelet has no disk pressure"},
                {"type": "PIDPressure", "status": "False", "reason": "KubeletHasSufficientPID",
                 "message": "kubelet has sufficient PID available"},
                ready_condition,
            ],
        },
    }


def add_nodes(store: Store, count: int, *, prefix: str = "node-", control_planes: int = 0, cordoned: int = 0,
              not_ready: int = 0, labels: dict[str, str] | None = None) -> list[str]:
    """Create ``count`` Linux nodes: the first ``control_planes`` are tainted control-plane nodes, the last
    ``not_ready`` are NotReady, the ``cordoned`` before those are cordoned. Returns their names."""
    names = []
    rt = store.rt("nodes")
    width = max(3, len(str(count)))
    for i in range(count):
        name = f"{prefix}{i:0{width}d}"
        from_end = count - i
        node = make_node(
            name, control_plane=i < control_planes, ready=from_end > not_ready,
            cordoned=not_ready < from_end <= not_ready + cordoned, labels=labels,
            internal_ip=f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255 or 1}",
        )
        store.create(rt, None, node)
        names.append(name)
    return names


def make_daemonset(name: str, namespace: str, *, labels: dict[str, str] | None = None,
                   node_selector: dict[str, str] | None = None, image: str = "ghcr.io/k8snetworkplumbingwg/"
                   "multus-cni:v4.2.2-thick", tolerate_all: bool = True, host_network: bool = True) -> Obj:
    """A Multus-like DaemonSet."""
    pod_labels = dict(labels or {"app": name})
    spec: dict[str, Any] = {
        "hostNetwork": host_network,
        "containers": [{"name": "kube-multus", "image": image}],
    }
    if tolerate_all:
        spec["tolerations"] = [{"operator": "Exists", "effect": "NoSchedule"},
                               {"operator": "Exists", "effect": "NoExecute"}]
    if node_selector:
        spec["nodeSelector"] = dict(node_selector)
    return {
        "apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(pod_labels)},
        "spec": {"selector": {"matchLabels": pod_labels},
                 "template": {"metadata": {"labels": pod_labels}, "spec": spec}},
    }


NAD_CRD: Obj = {
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": "network-attachment-definitions.k8s.cni.cncf.io"},
    "spec": {
        "group": "k8s.cni.cncf.io", "scope": "Namespaced",
        "names": {"plural": "network-attachment-definitions", "singular": "network-attachment-definition",
                  "kind": "NetworkAttachmentDefinition", "shortNames": ["net-attach-def"]},
        "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
            "type": "object", "properties": {"spec": {"type": "object", "properties": {
                "config": {"type": "string"}}}}}}}],
    },
}


def make_nad(name: str, namespace: str, config: str = '{"cniVersion":"0.3.1","type":"macvlan"}') -> Obj:
    return {"apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
            "metadata": {"name": name, "namespace": namespace}, "spec": {"config": config}}


def wait_until(predicate: Callable[[], object], timeout: float = 5.0) -> None:
    """Poll `predicate` (every 20 ms) until it is true; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"condition not met within {timeout} s")
