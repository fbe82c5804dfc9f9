"""The run's progress and result as Events on the hook Job, as `kubectl describe job` shows them."""

from __future__ import annotations

from typing import Any

from emulator.kubelet import SimulatedKubelet
from simcluster import SimCluster, cluster_fixture  # noqa: F401 - provides the `cluster` fixture

CONFIG = {"cluster": {"nodeTimeoutSeconds": 30, "stopTimeoutSeconds": 30}}


def job_events(cluster: SimCluster) -> list[dict[str, Any]]:
    store = cluster.server.store
    items, *_ = store.list(store.rt("events"), "kube-system")
    ours = [e for e in items
            if e["involvedObject"]["kind"] == "Job" and e["involvedObject"]["name"] == "multus-cleanup"]
    return sorted(ours, key=lambda e: int(e["metadata"]["resourceVersion"]))  # in the order they were written


def test_a_clean_run_tells_its_job_started_stopped_progress_and_success(cluster: SimCluster,
                                                                        kubelet: SimulatedKubelet) -> None:
    cluster.add_nodes(3, "thick")
    cluster.add_multus_daemonset()
    kubelet.wait_idle()
    code, _summary, log = cluster.orchestrate("run", CONFIG)
    assert code == 0, log
    events = job_events(cluster)
    assert [e["reason"] for e in events][:2] == ["CleanupStarted", "MultusStopped"]
    assert any(e["reason"] == "Progress" and "nodes clean" in e["message"] for e in events)
    assert events[-1]["reason"] == "CleanupSucceeded" and events[-1]["type"] == "Normal"
    job = cluster.server.store.get(cluster.server.store.rt("jobs", "batch"), "kube-system", "multus-cleanup")
    assert {e["involvedObject"]["uid"] for e in events} == {job["metadata"]["uid"]}


def test_a_failed_run_names_each_node_and_the_reason(cluster: SimCluster, kubelet: SimulatedKubelet) -> None:
    names = cluster.add_nodes(3, "thick", not_ready=1)
    cluster.add_multus_daemonset()
    kubelet.wait_idle()
    code, _summary, log = cluster.orchestrate("run", CONFIG)
    assert code == 1, log
    events = job_events(cluster)
    failed = [e for e in events if e["reason"] == "NodeNotClean"]
    assert [e["type"] for e in failed] == ["Warning"] and names[-1] in failed[0]["message"]
    assert events[-1]["reason"] == "CleanupFailed" and "unreachableNodes: fail" in events[-1]["message"]
