"""`multus-cleanup run` end to end: the real orchestrator drives the real `kubernetes` client over HTTP
against the emulated API; the simulated kubelet runs the real node engine for every cleanup pod.

What a real cluster shows runs there (tests/cluster: install, uninstall, NotReady node, repair); this file
keeps what the real two-node cluster cannot do on demand: 50 nodes at once, a node pod that fails once, a
node that never reports, a run out of time, and the API requests counted per node."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from emulator.kubelet import SimulatedKubelet
from simcluster import NAD_CRD, SimCluster, cluster_fixture, nad  # noqa: F401 - provides the `cluster` fixture

NS = "kube-system"
DS_LABELS = "app=kube-multus-ds"


def config(**cluster_config: Any) -> dict[str, Any]:
    return {"cluster": {"nodeTimeoutSeconds": 30, "stopTimeoutSeconds": 30, **cluster_config}}


def once_its_cleanup_pod_exists(cluster: SimCluster, node: str,
                                act: Callable[[dict[str, Any]], None]) -> threading.Thread:
    """A started thread that calls `act(pod)` as soon as NODE's cleanup pod exists (within 20 s)."""
    def wait_and_act() -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            pods = [p for p in cluster.pods(NS, "app.kubernetes.io/component=node-cleanup")
                    if p["spec"].get("nodeName") == node]
            if pods:
                act(pods[0])
                return
            time.sleep(0.05)

    thread = threading.Thread(target=wait_and_act)
    thread.start()
    return thread


@pytest.mark.parametrize("flavour", ["thick", "thin"])
@pytest.mark.parametrize("count", [50])
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


def test_waits_for_a_slowly_terminating_multus_pod_before_touching_nodes(cluster: SimCluster,
                                                                         kubelet: SimulatedKubelet) -> None:
    cluster.add_nodes(3, "thick")
    cluster.add_multus_daemonset()
    assert kubelet.wait_idle()
    kubelet.termination_delay = 1.5  # thick Multus waits before removing its config on SIGTERM

    code, summary, log = cluster.orchestrate("run", config())

    assert code == 0, log
    records = cluster.server.log.records()
    creates = [i for i, r in enumerate(records) if r.verb == "create" and r.resource == "pods"]
    dry_runs = [i for i in creates if records[i].query.get("dryRun") == "All"]
    patch = next(i for i, r in enumerate(records) if r.verb == "patch" and r.resource == "daemonsets")
    assert len(dry_runs) == 1 and dry_runs[0] < patch  # admission is asked before anything changes
    assert patch < min(set(creates) - set(dry_runs))
    # the run deletes the Multus pods itself (the DaemonSet controller's 20/s would take minutes at scale)
    evict = next(i for i, r in enumerate(records) if r.verb == "deletecollection" and r.resource == "pods"
                 and r.namespace == NS)
    assert patch < evict < min(set(creates) - set(dry_runs))
    assert "3 node(s) are cleaned once their Multus pod is gone" in log
    assert log.index("All 3 Multus pod(s) on reachable nodes are gone") < log.index("nodes clean")
    assert summary["multus_pods_stopped"] == 3


def test_each_node_is_cleaned_as_soon_as_its_own_multus_pod_is_gone(cluster: SimCluster,
                                                                    kubelet: SimulatedKubelet) -> None:
    """The stop and the sweep overlap: one slow Multus pod holds up its own node only."""
    names = cluster.add_nodes(3, "thick")
    cluster.add_multus_daemonset()
    assert kubelet.wait_idle()
    slow = names[0]
    kubelet.behaviour(slow).termination_delay = 3.0

    code, _summary, log = cluster.orchestrate("run", config())

    assert code == 0, log
    assert all(cluster.restored(n) for n in names)
    lines = log.splitlines()
    first_clean = next(i for i, line in enumerate(lines) if "1/3 nodes clean" in line)
    all_gone = next(i for i, line in enumerate(lines) if "Multus pod(s) on reachable nodes are gone" in line)
    assert first_clean < all_gone, log  # the fast nodes were clean before the slow node's Multus pod went


@pytest.mark.parametrize("policy", ["fail", "skip"])
def test_not_ready_node_follows_the_policy(cluster: SimCluster, kubelet: SimulatedKubelet, policy: str) -> None:
    names = cluster.add_nodes(4, "thick", not_ready=1)
    cluster.add_multus_daemonset()
    cluster.create("customresourcedefinitions", None, NAD_CRD, group="apiextensions.k8s.io")
    cluster.create("network-attachment-definitions", "default", nad("macvlan"), group="k8s.cni.cncf.io")
    kubelet.wait_idle()
    down = names[-1]

    code, summary, _log = cluster.orchestrate(
        "run", config(unreachableNodes=policy, deleteNetworkAttachmentDefinitions=True))

    assert summary["nodes"][down]["status"] == "unreachable"
    assert "NotReady" in summary["nodes"][down]["detail"]
    assert all(cluster.restored(n) for n in names[:-1]) and not cluster.restored(down)
    nads = cluster.server.store.list(cluster.server.store.rt("network-attachment-definitions",
                                                             "k8s.cni.cncf.io"))[0]
    if policy == "fail":
        assert code == 1 and summary["success"] is False
        assert down in summary["error"] and "unreachableNodes: fail" in summary["error"]
        assert len(nads) == 1  # user data stays until every node is clean
    else:
        assert code == 0 and summary["success"] is True
        assert nads == []


def test_a_node_pod_that_fails_once_is_retried(cluster: SimCluster, kubelet: SimulatedKubelet) -> None:
    names = cluster.add_nodes(3, "thin")
    kubelet.behaviour(names[1]).fail_first = 1
    kubelet.behaviour(names[1]).fail_result = (1, "")

    code, summary, log = cluster.orchestrate("run", config())

    assert code == 0, log
    assert summary["nodes"][names[1]]["attempts"] == 2
    assert "trying again (attempt 2 of 2)" in log
    assert all(cluster.restored(n) for n in names)


def test_without_retries_a_failed_node_fails_the_run_and_a_rerun_finishes(cluster: SimCluster,
                                                                          kubelet: SimulatedKubelet) -> None:
    names = cluster.add_nodes(3, "thick")
    cluster.add_multus_daemonset()
    kubelet.behaviour(names[0]).fail_first = 1

    code, summary, log = cluster.orchestrate("run", config(nodeRetries=0))

    assert code == 1 and summary["nodes"][names[0]]["status"] == "failed"
    assert summary["error"] == f"1 node(s) are not clean: {names[0]}"
    code, summary, log = cluster.orchestrate("run", config(nodeRetries=0))  # a second `helm uninstall`
    assert code == 0, log
    assert "is already stopped" in log
    assert all(cluster.restored(n) for n in names)


def test_a_node_that_never_reports_times_out_as_unreachable(cluster: SimCluster, kubelet: SimulatedKubelet) -> None:
    names = cluster.add_nodes(3, "thick")
    kubelet.behaviour(names[2]).hang = True  # the pod starts and never finishes

    code, summary, _log = cluster.orchestrate("run", config(nodeTimeoutSeconds=5, unreachableNodes="fail"))

    assert code == 1
    assert summary["nodes"][names[2]] | {"report": None} == {
        "status": "unreachable", "attempts": 1, "report": None,
        "detail": "no report within 5s (the node may be down, or its kubelet cannot start the pod)"}
    assert cluster.pods(NS, "app.kubernetes.io/component=node-cleanup") == []





def test_api_requests_per_node_are_bounded(cluster: SimCluster, kubelet: SimulatedKubelet) -> None:
    """One create per node (and one dry run before any change); listing, watching and deleting cost a constant."""
    names = cluster.add_nodes(50, "thick")
    cluster.add_multus_daemonset()
    kubelet.wait_idle()
    cluster.server.log.clear()

    code, summary, log = cluster.orchestrate("run", config(concurrency=20))

    assert code == 0, log
    by_verb = dict(cluster.server.log.by_verb())
    events = cluster.server.log.count(verb="create", resource="events")
    assert 3 <= events <= 6, events  # started, Multus stopped, progress, the result: not one per node
    assert by_verb["create"] == len(names) + 1 + events
    assert sum(by_verb.values()) <= len(names) + 20, by_verb
    assert summary["api_requests"] == by_verb  # the orchestrator's own count agrees with the server's
    print(f"\n50-node uninstall: {sum(by_verb.values())} API requests ({by_verb}), "
          f"{sum(by_verb.values()) / len(names):.2f} per node")


def test_the_run_ends_with_a_summary_when_its_time_runs_out(cluster: SimCluster, kubelet: SimulatedKubelet) -> None:
    names = cluster.add_nodes(6, "thick")
    for name in names:
        kubelet.behaviour(name).delay = 2.0

    started = time.monotonic()
    code, summary, _log = cluster.orchestrate("run", config(deadlineSeconds=10, concurrency=1))

    assert code == 1 and time.monotonic() - started < 14
    statuses = [summary["nodes"][n]["status"] for n in names]
    assert "clean" in statuses and statuses[-1] == "unreachable"
    assert "the cleanup ran out of time" in summary["nodes"][names[-1]]["detail"]


def test_a_node_deleted_during_the_run_counts_as_gone_not_failed(cluster: SimCluster,
                                                                 kubelet: SimulatedKubelet) -> None:
    names = cluster.add_nodes(3, "thick")
    kubelet.behaviour(names[2]).hang = True  # its pod starts and never reports ...
    store = cluster.server.store
    # ... and the node is deleted meanwhile
    deleter = once_its_cleanup_pod_exists(cluster, names[2], lambda _pod: store.delete(store.rt("nodes"), None,
                                                                                        names[2]))
    code, summary, log = cluster.orchestrate("run", config(nodeTimeoutSeconds=5, unreachableNodes="fail"))
    deleter.join()

    assert code == 0, log
    assert summary["nodes"][names[2]]["status"] == "gone"
    assert summary["nodes"][names[2]]["detail"] == "the node was deleted during the run: nothing left to clean"
    assert all(cluster.restored(n) for n in names[:2])


def test_virtual_kubelet_and_fargate_nodes_are_left_out_by_default(cluster: SimCluster,
                                                                  kubelet: SimulatedKubelet) -> None:
    names = cluster.add_nodes(2, "thick")
    store = cluster.server.store
    for name, labels in ((names[0], {"type": "virtual-kubelet"}), (names[1], {"eks.amazonaws.com/compute-type":
                                                                                "fargate"})):
        node = store.get(store.rt("nodes"), None, name)
        node["metadata"]["labels"] = {**node["metadata"]["labels"], **labels}
        store.replace(store.rt("nodes"), None, name, node)
    code, summary, log = cluster.orchestrate("run", config())
    assert code == 0, log
    assert summary["nodes"] == {}, "a virtual-kubelet or Fargate node was given a cleanup pod"


def test_a_silent_node_says_what_its_pod_events_say(cluster: SimCluster, kubelet: SimulatedKubelet) -> None:
    """A node that times out carries its pod's Warning Events (here the kubelet's FailedMount), not a bare
    timeout."""
    names = cluster.add_nodes(2, "thick")
    kubelet.behaviour(names[1]).hang = True
    store = cluster.server.store
    mount = 'MountVolume.SetUp failed for volume "backup" : hostPath type check failed: /run/x is not a directory'

    def kubelet_event(pod: dict[str, Any]) -> None:
        store.create(store.rt("events"), NS, {
            "apiVersion": "v1", "kind": "Event", "metadata": {"name": "mount", "namespace": NS},
            "involvedObject": {"kind": "Pod", "name": pod["metadata"]["name"], "namespace": NS},
            "type": "Warning", "reason": "FailedMount", "message": mount})

    writer = once_its_cleanup_pod_exists(cluster, names[1], kubelet_event)
    code, summary, _log = cluster.orchestrate("run", config(nodeTimeoutSeconds=5, unreachableNodes="fail"))
    writer.join()

    assert code == 1
    assert summary["nodes"][names[1]]["detail"] == (
        f"no report within 5s: FailedMount: {mount} (the node may be down, or its kubelet cannot start the pod)")


def test_a_large_run_deletes_its_pods_in_parallel_shards(cluster: SimCluster, kubelet: SimulatedKubelet) -> None:
    """Above 500 nodes the run's pods go with 8 deletecollections, one per shard label, at once."""
    names = cluster.add_nodes(520, "thick")

    code, summary, log = cluster.orchestrate("run", config())

    assert code == 0, log
    assert summary["api_requests"]["deletecollection"] == 1 + 8  # stale pods of older runs, then the shards
    shards = sorted(r.query["labelSelector"].rsplit("=", 1)[-1] for r in cluster.server.log.records()
                    if r.verb == "deletecollection" and "shard" in r.query.get("labelSelector", ""))
    assert shards == [str(k) for k in range(8)]
    assert cluster.pods(NS, "app.kubernetes.io/component=node-cleanup") == []
    assert all(cluster.restored(n) for n in names[:5])
