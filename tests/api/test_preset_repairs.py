"""`multus-cleanup run --preset NAME` end to end against the emulated API: the platform's own Multus
DaemonSet (in the platform's namespace) is stopped, every node is repaired, the DaemonSets the preset names
but the cluster lacks are skipped, and the log starts with the platform's switch."""

from __future__ import annotations

import pytest
from emulator.kubelet import SimulatedKubelet
from simcluster import SimCluster, cluster_fixture  # noqa: F401 - provides the `cluster` fixture

from multus_cleanup.cluster.presets import get_preset, load_presets


@pytest.mark.parametrize("name", sorted(load_presets()))
def test_a_preset_repairs_the_nodes_of_the_platforms_multus(cluster: SimCluster, kubelet: SimulatedKubelet,
                                                            name: str) -> None:
    preset = get_preset(name)
    namespace, daemonset = preset.daemonsets[0].split("/")
    names = cluster.add_nodes(3, "thin")
    if namespace != "kube-system":
        cluster.create("namespaces", None, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    cluster.add_multus_daemonset(daemonset, namespace)
    assert kubelet.wait_idle()
    assert len(cluster.pods(namespace, f"app={daemonset}")) == 3

    code, summary, log = cluster.orchestrate(
        "run", {"cluster": {"nodeTimeoutSeconds": 30, "stopTimeoutSeconds": 30}}, "--preset", name)

    assert code == 0, log
    assert summary["success"] is True
    assert all(cluster.restored(n) for n in names)
    assert cluster.pods(namespace, f"app={daemonset}") == []  # the platform's Multus was stopped
    assert f"WARNING {preset.warning()}" in log
    for missing in preset.daemonsets[1:]:
        assert f"Multus DaemonSet {missing} not found: nothing to stop there" in log
