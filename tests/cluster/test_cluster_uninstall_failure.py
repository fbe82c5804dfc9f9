"""The uninstall's failure path on the real cluster: one node's kubelet stopped, so the node goes NotReady
under the real node lifecycle controller. The hook fails naming that node, Helm keeps the release and its
resources; with the kubelet back, a second `helm uninstall` cleans every node."""

from __future__ import annotations

import subprocess

import pytest
from clusterkit import HELM3, HELM4, NAMESPACE, ClusterKit, wait_for
from devcluster import __main__ as tool

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


def test_a_hook_pod_stopped_mid_run_reports_and_removes_its_node_pods(clean_cluster: ClusterKit) -> None:
    """SIGTERM to the hook's PID 1, as at the Job's deadline. The worker lacks the cleanup image (no registry
    is reachable), so its node pod waits in ErrImagePull within its start-error grace; the hook pod is
    deleted then. The summary (as the Job's CleanupFailed Event: the pod and its log are gone with it) and the
    removal of the run's node pods still happen, and a later uninstall finishes."""
    kit = clean_cluster
    worker = kit.nodes[-1]
    kit.install(HELM4, "multus", "mode=thick", "cleanup.image.pullPolicy=IfNotPresent",
                f"cleanup.job.nodeSelector.kubernetes\\.io/hostname={kit.nodes[0]}")
    kit.multus_pods_running()
    archive = tool.hook_image_archive()
    assert archive is not None
    for _source, name in tool.HOOK_IMAGE_TAGS:
        kit.cluster.ctr(worker, "images", "rm", name)
    try:
        helm = subprocess.Popen([str(kit.helm_bins[HELM4]), "uninstall", "multus", "-n", NAMESPACE, "--wait",
                                 "--timeout", "3m"], env=kit.helm_env(), stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        node_pod = "app.kubernetes.io/component=node-cleanup,app.kubernetes.io/instance=multus"
        wait_for(f"the node pod on {worker} waiting for its image", lambda: any(
            p["spec"].get("nodeName") == worker and p["status"].get("phase") == "Pending"
            for p in kit.pods(NAMESPACE, node_pod)), 90)
        (hook,) = [p["metadata"]["name"] for p in kit.pods(NAMESPACE, "batch.kubernetes.io/job-name=multus-cleanup")]
        kit.kubectl("delete", "pod", hook, "-n", NAMESPACE, "--wait=false")
        output, _ = helm.communicate(timeout=240)
        assert helm.returncode != 0, output
        events = kit.kubectl("get", "events", "-n", NAMESPACE, "--field-selector",
                             "involvedObject.kind=Job,involvedObject.name=multus-cleanup,reason=CleanupFailed").stdout
        assert "the cleanup was stopped (SIGTERM" in events, f"no CleanupFailed event with the summary:\n{events}"
        wait_for("the run's node pods gone", lambda: not kit.pods(NAMESPACE, node_pod), 30)
    finally:
        kit.cluster.import_images([archive], nodes=[worker], tags=tool.HOOK_IMAGE_TAGS)
    assert kit.uninstall(HELM4).returncode == 0
