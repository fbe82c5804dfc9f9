"""Before the first change (admission dry run, pods on secondary networks), undoing the stop when no node was
changed, and Multus that comes back during the sweep: the orchestrator against the emulator."""

from __future__ import annotations

from typing import Any

import pytest
from emulator.kubelet import SimulatedKubelet
from emulator.objects import make_daemonset
from simcluster import SimCluster, cluster_fixture  # noqa: F401 - provides the `cluster` fixture

from multus_cleanup.cluster.stop import STOP_LABEL

NS = "kube-system"
DS = "kube-multus-ds"
POD_SECURITY = ('pods "x" is forbidden: violates PodSecurity "baseline:latest": hostPath volumes (volumes '
                '"host-0"), runAsUser=0')
QUOTA = 'pods "x" is forbidden: exceeded quota: pods, requested: pods=1, used: pods=2, limited: pods=2'


def config(**cluster: Any) -> dict[str, Any]:
    return {"cluster": {"nodeTimeoutSeconds": 30, "stopTimeoutSeconds": 30, **cluster}}


def node_selector(cluster: SimCluster) -> dict[str, str]:
    store = cluster.server.store
    ds = store.get(store.rt("daemonsets", "apps"), NS, DS)
    return dict(ds["spec"]["template"]["spec"].get("nodeSelector") or {})


def changes(cluster: SimCluster) -> list[str]:
    """What the run changed in the cluster (the Events it writes on its Job are reports, not changes)."""
    return [f"{r.verb} {r.resource}" for r in cluster.server.log.records()
            if r.verb in ("create", "patch", "delete", "deletecollection") and not r.query.get("dryRun")
            and r.resource != "events"]


def test_an_admission_rejection_stops_the_run_before_any_change(cluster: SimCluster) -> None:
    names = cluster.add_nodes(2, "thick")
    cluster.add_multus_daemonset()
    cluster.server.faults.fail(403, count=None, message=POD_SECURITY, verb="create", resource="pods", dry_run=True)

    code, summary, log = cluster.orchestrate("run", config())

    assert code == 1, log
    assert "PodSecurity" in summary["error"] and "nothing was changed" in summary["error"]
    assert "pod-security.kubernetes.io/enforce=privileged" in summary["error"]  # advice that fits the rejection
    assert "permission denied" not in summary["error"]  # a 403 from admission is not RBAC
    assert changes(cluster) == [] and node_selector(cluster) == {}
    assert not any(cluster.restored(n) for n in names)  # no node was touched


def test_a_full_quota_is_waited_for(cluster: SimCluster) -> None:
    names = cluster.add_nodes(2, "thick")
    cluster.server.faults.fail(403, count=2, message=QUOTA, verb="create", resource="pods", dry_run=True)

    code, _summary, log = cluster.orchestrate("run", config())

    assert code == 0, log
    assert "a ResourceQuota has no room" in log
    assert all(cluster.restored(n) for n in names)


def test_a_failed_stop_is_undone(cluster: SimCluster, kubelet: SimulatedKubelet) -> None:
    cluster.add_nodes(2, "thick")
    cluster.add_multus_daemonset()
    assert kubelet.wait_idle()
    kubelet.termination_delay = 5.0  # Multus pods outlive stopTimeoutSeconds

    code, summary, log = cluster.orchestrate("run", config(stopTimeoutSeconds=1))

    assert code == 1, log
    assert "2 node(s) could not be cleaned" in summary["error"]
    for node in summary["nodes"].values():
        assert node["status"] == "unreachable" and "was still running 1s after it was deleted" in node["detail"]
    assert node_selector(cluster) == {}  # as before the stop: Multus schedules again
    assert any("Multus was restarted" in w for w in summary["warnings"])


def test_multus_restored_during_the_sweep_fails_the_run(cluster: SimCluster, kubelet: SimulatedKubelet) -> None:
    cluster.add_nodes(2, "thick")
    store = cluster.server.store
    multus = make_daemonset(DS, NS)
    multus["metadata"]["annotations"] = {"argocd.argoproj.io/tracking-id": "multus:apps/DaemonSet:x"}
    cluster.create("daemonsets", NS, multus, group="apps")
    assert kubelet.wait_idle()
    run_pod = kubelet.run_pod

    def self_heal(pod: dict[str, Any], node: str) -> Any:
        # what Argo CD's self-heal does: put the DaemonSet back as git has it
        store.patch(store.rt("daemonsets", "apps"), NS, DS, {"spec": {"template": {"spec": {
            "nodeSelector": {STOP_LABEL: None}}}}}, "application/merge-patch+json")
        return run_pod(pod, node)

    kubelet.run_pod = self_heal

    code, summary, log = cluster.orchestrate("run", config(deleteCRD=True))

    assert code == 1, log
    assert f"DaemonSet {NS}/{DS} was restored during the cleanup" in summary["error"]
    assert "Argo CD" in summary["error"] and "managed by Argo CD" in log  # warned before the stop too
    assert summary["deleted"] == []


@pytest.mark.parametrize("policy", ["fail", "warn"])
def test_pods_on_secondary_networks_follow_the_policy(cluster: SimCluster, policy: str) -> None:
    names = cluster.add_nodes(1, "thick")
    cluster.add_multus_daemonset()
    cluster.create("pods", "default", {"apiVersion": "v1", "kind": "Pod", "metadata": {
        "name": "attached", "namespace": "default", "annotations": {"k8s.v1.cni.cncf.io/networks": "macvlan"}},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}})

    code, summary, log = cluster.orchestrate("run", config(attachedPods=policy))

    said = (summary["error"] or "") if policy == "fail" else " ".join(summary["warnings"])
    assert "default/attached (networks: macvlan)" in said, log
    if policy == "fail":
        assert code == 1 and changes(cluster) == [] and node_selector(cluster) == {}
    else:
        assert code == 0 and all(cluster.restored(n) for n in names)

