"""`multus-cleanup run` end to end: the real orchestrator drives the real `kubernetes` client over HTTP
against the emulated API; the simulated kubelet runs the real node engine for every cleanup pod."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from emulator import EmulatedApiServer
from emulator.kubelet import SimulatedKubelet
from simcluster import SimCluster, owner_env

NS = "kube-system"
DS_LABELS = "app=kube-multus-ds"


@pytest.fixture
def cluster(api_server: EmulatedApiServer, kubelet: SimulatedKubelet, tmp_path: Path,
            monkeypatch: pytest.MonkeyPatch) -> Iterator[SimCluster]:
    sim = SimCluster(api_server, kubelet, tmp_path)
    for key, value in owner_env(sim).items():
        monkeypatch.setenv(key, value)
    yield sim
    assert sim.violations == []  # the engine never touched a path its pod does not mount
    assert kubelet.errors == []


def config(**cluster: Any) -> dict[str, Any]:
    return {"cluster": {"nodeTimeoutSeconds": 30, "stopTimeoutSeconds": 30, **cluster}}


@pytest.mark.parametrize("flavour", ["thick", "thin"])
@pytest.mark.parametrize("count", [1, 3, 50])
def test_full_uninstall_restores_every_node(cluster: SimCluster, kubelet: SimulatedKubelet, flavour: str,
                                            count: int) -> None:
    names = cluster.add_nodes(count, flavour, control_planes=min(count, 3) // 2, cordoned=min(count, 3) // 3)
    cluster.add_multus_daemonset()
    assert kubelet.wait_idle()
    assert len(cluster.pods(NS, DS_LABELS)) == count

    code, summary, log = cluster.orchestrate("run", config(concurrency=20))

    assert code == 0, log
    assert summary["success"] is True
    assert {n: s["status"] for n, s in summary["nodes"].items()} == {n: "clean" for n in names}
    assert all(cluster.restored(n) for n in names)
    assert cluster.pods(NS, DS_LABELS) == []  # Multus was stopped ...
    assert cluster.pods(NS, "app.kubernetes.io/component=node-cleanup") == []  # ... and no node pod is left
    assert f"{count}/{count} nodes clean" in log
