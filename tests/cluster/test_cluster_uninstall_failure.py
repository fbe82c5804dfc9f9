"""The uninstall's failure path on the real cluster: one node's kubelet stopped, so the node goes NotReady
under the real node lifecycle controller. The hook fails naming that node, Helm keeps the release and its
resources; with the kubelet back, a second `helm uninstall` cleans every node."""

from __future__ import annotations

import pytest
from clusterkit import HELM3, HELM4, NAMESPACE, ClusterKit, wait_for

pytestmark = pytest.mark.cluster


@pytest.mark.parametrize("helm", [HELM4, HELM3])
def test_a_not_ready_node_fails_the_uninstall_and_a_second_one_succeeds(clean_cluster: ClusterKit,
                                                                          helm: str) -> None:
    kit = clean_cluster
    kit.install(helm, "multus", "mode=thick")
    kit.multus_pods_running()
    worker = kit.nodes[-1]
    kit.cluster.stop_kubelet(worker)
    # kube-controller-manager's default node-monitor-grace-period is 50 s
    wait_for(f"{worker} NotReady", lambda: worker not in kit.cluster.ready_nodes(), timeout=120, interval=2)

    failed = kit.uninstall(helm)
    output = failed.stdout + failed.stderr
    assert failed.returncode != 0, f"the uninstall passed with {worker} NotReady:\n{output}"
    assert worker in output, f"the failure does not name {worker}:\n{output}"
    assert "FAILED" in output, f"Helm did not show the hook's summary (hook-output-log-policy):\n{output}"
    status = kit.helm(helm, "status", "multus", "-n", NAMESPACE, "-o", "json").stdout
    assert '"status":"uninstalling"' in status.replace(" ", ""), status
    assert kit.cluster.get_json("daemonset", "multus", "-n", NAMESPACE), "the Multus DaemonSet is gone"
    assert kit.cluster.get_json("serviceaccount", "multus-cleanup", "-n", NAMESPACE), "the hook's RBAC is gone"
    assert kit.multus_leftovers(worker), f"{worker} was cleaned although its kubelet is stopped"

    kit.cluster.start_kubelet(worker)
    kit.cluster.wait_ready([worker], timeout=120)
    second = kit.uninstall(helm)
    assert second.returncode == 0, f"the second uninstall failed:\n{second.stdout}\n{second.stderr}"
    for node in kit.nodes:
        assert kit.multus_leftovers(node) == [], f"{node}: Multus files left after the second uninstall"
    kit.pod_on_every_node("after")
