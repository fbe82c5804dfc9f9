"""`helm install` and `helm uninstall` of the chart on the real cluster, with the real Helm 3 and Helm 4:
Multus Running on every node, a pod attached to a second network, then the pre-delete hook Job under the
real Job controller, its node pods under the real kubelets, and afterwards every node able to start pods."""

from __future__ import annotations

import ipaddress
import time

import pytest
from clusterkit import HELM3, HELM4, NAD_SUBNET, NAMESPACE, PRIMARY_CONFIG, ClusterKit

pytestmark = pytest.mark.cluster

SCENARIOS = [
    pytest.param(HELM3, ("mode=thick",), id="helm3-thick"),
    pytest.param(HELM4, ("mode=thin",), id="helm4-thin"),
    # renameConfFile with cleanupConfigOnExit would leave the node without any config on a Multus restart
    pytest.param(HELM4, ("mode=thin", "config.renameConfFile=true", "config.cleanupConfigOnExit=false"),
                 id="helm4-thin-renameConfFile"),
]


@pytest.mark.parametrize(("helm", "values"), SCENARIOS)
def test_install_attach_uninstall(clean_cluster: ClusterKit, helm: str, values: tuple[str, ...]) -> None:
    kit = clean_cluster
    kit.install(helm, "multus", *values)
    kit.multus_pods_running()
    for node in kit.nodes:
        assert kit.multus_leftovers(node), f"{node}: Multus wrote nothing"
        assert kit.loaded_config(node).startswith("00-multus"), f"{node}: the runtime does not load Multus"
    if "config.renameConfFile=true" in values:
        for node in kit.nodes:
            net_d = kit.cluster.node_root(node) / "etc/cni/net.d"
            assert (net_d / f"{PRIMARY_CONFIG}.old").exists() and not (net_d / PRIMARY_CONFIG).exists()

    kit.second_network()
    worker = kit.nodes[-1]
    kit.start_pod("attached", worker, networks="second")
    kit.wait_running("attached")
    net1 = kit.net1_address("attached")
    assert ipaddress.ip_address(net1) in ipaddress.ip_network(NAD_SUBNET), f"net1 {net1} is not from the NAD"

    result = kit.uninstall(helm)
    assert result.returncode == 0, f"helm uninstall failed:\n{result.stdout}\n{result.stderr}"
    assert kit.helm(helm, "status", "multus", "-n", NAMESPACE, check=False).returncode != 0, "release still there"
    assert not kit.pods(NAMESPACE, "app.kubernetes.io/instance=multus"), "Multus or cleanup pods left"
    assert kit.cleanup_pod_nodes() >= set(kit.nodes), "a node's cleanup pod never started under its kubelet"
    # what `kubectl get events` shows for the hook Job, which outlive it (Helm deleted it on success)
    job_events = kit.kubectl("get", "events", "-n", NAMESPACE, "--field-selector",
                             "involvedObject.kind=Job,involvedObject.name=multus-cleanup").stdout
    for reason in ("CleanupStarted", "MultusStopped", "Progress", "CleanupSucceeded"):
        assert reason in job_events, f"no {reason} event on the hook Job:\n{job_events}"
    for node in kit.nodes:
        assert kit.multus_leftovers(node) == [], f"{node}: Multus files left after the uninstall"
        assert kit.loaded_config(node) == PRIMARY_CONFIG, f"{node}: the runtime loads {kit.loaded_config(node)}"
        primary = kit.cluster.node_root(node) / "etc/cni/net.d" / PRIMARY_CONFIG
        assert primary.read_bytes() == kit.primary[node], f"{node}: the primary config changed"
    kit.pod_on_every_node("after")


def test_a_thin_multus_restart_with_renamed_primary_keeps_the_node_ready(clean_cluster: ClusterKit) -> None:
    """renameConfFile leaves only `<primary>.old` beside Multus's config: a restarted Multus pod must not take
    the node's last config with it (the chart refuses cleanupConfigOnExit with it, see test_chart_rendering),
    and must start again. thin_entrypoint alone finds no plain primary config then and exits, again and again
    (CrashLoopBackOff: this test caught it); the chart's restore-renamed-primary init container renames the
    primary back before each start."""
    kit = clean_cluster
    kit.install(HELM4, "multus", "mode=thin", "config.renameConfFile=true", "config.cleanupConfigOnExit=false")
    worker = kit.nodes[-1]
    renamed = kit.cluster.node_root(worker) / "etc/cni/net.d" / f"{PRIMARY_CONFIG}.old"
    old_pod = kit.multus_pods_running()[worker]
    assert renamed.exists(), "thin Multus did not rename the primary config"
    kit.kubectl("delete", "pod", old_pod, "-n", NAMESPACE, "--wait=true")
    new_pod = kit.multus_pods_running()[worker]
    assert new_pod != old_pod
    time.sleep(15)  # a crash-looping thin_entrypoint exits within a second of each start
    pod = kit.cluster.get_json("pod", new_pod, "-n", NAMESPACE)
    restarts = {c["name"]: c["restartCount"] for c in pod["status"]["containerStatuses"]}
    assert restarts == {"kube-multus": 0}, f"the restarted Multus pod's containers restarted: {restarts}"
    assert renamed.exists(), "the restarted Multus did not rename the primary config again"
    logs = kit.kubectl("logs", "-n", NAMESPACE, new_pod, "-c", "restore-renamed-primary").stdout
    assert f"renamed /etc/cni/net.d/{PRIMARY_CONFIG}.old back to /etc/cni/net.d/{PRIMARY_CONFIG}" in logs, logs
    assert worker in kit.cluster.ready_nodes(), f"{worker} went NotReady after its Multus pod restarted"
    assert kit.loaded_config(worker).startswith("00-multus"), kit.loaded_config(worker)
    kit.start_pod("after-restart", worker)
    kit.wait_running("after-restart")
    result = kit.uninstall(HELM4)
    assert result.returncode == 0, f"helm uninstall failed:\n{result.stdout}\n{result.stderr}"
    assert kit.loaded_config(worker) == PRIMARY_CONFIG and kit.multus_leftovers(worker) == []
