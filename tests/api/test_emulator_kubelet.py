"""The simulated DaemonSet controller and kubelet, observed through the real ``kubernetes`` client."""

from __future__ import annotations

import json
import os
import time
from typing import Any

import kubernetes.client
from emulator import EmulatedApiServer
from emulator.kubelet import SimulatedKubelet
from emulator.objects import AddNodes, make_daemonset, wait_until

CLEANUP = {"app.kubernetes.io/component": "node-cleanup"}


def _cleanup_pod(name: str, node: str, policy: str = "Never") -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": dict(CLEANUP)},
            "spec": {"nodeName": node, "restartPolicy": policy, "hostNetwork": True,
                     "automountServiceAccountToken": False,
                     "containers": [{"name": "cleanup", "image": "multus-cleanup:1"}]}}


def _ds_pods(core: kubernetes.client.CoreV1Api) -> dict[str, Any]:
    return {p.spec.node_name: p for p in core.list_namespaced_pod("kube-system", label_selector="app=multus").items}


def test_daemonset_gets_one_running_pod_per_eligible_node(api_client: kubernetes.client.ApiClient,
                                                          kubelet: SimulatedKubelet, nodes: AddNodes) -> None:
    core, apps = kubernetes.client.CoreV1Api(api_client), kubernetes.client.AppsV1Api(api_client)
    nodes(5, control_planes=1, cordoned=1)
    apps.create_namespaced_daemon_set("kube-system", make_daemonset("multus", "kube-system"))
    # Without tolerations the control-plane node is skipped; a cordoned node still gets a daemon pod.
    apps.create_namespaced_daemon_set("kube-system", make_daemonset("picky", "kube-system", tolerate_all=False,
                                                                    labels={"app": "picky"}))
    assert kubelet.wait_idle()
    pods = _ds_pods(core)
    assert sorted(pods) == ["node-000", "node-001", "node-002", "node-003", "node-004"]
    assert {p.status.phase for p in pods.values()} == {"Running"}
    assert all(p.metadata.owner_references[0].kind == "DaemonSet" for p in pods.values())
    picky = core.list_namespaced_pod("kube-system", label_selector="app=picky").items
    assert sorted(p.spec.node_name for p in picky) == ["node-001", "node-002", "node-003", "node-004"]
    status = apps.read_namespaced_daemon_set_status("multus", "kube-system").status
    assert (status.desired_number_scheduled, status.current_number_scheduled, status.number_ready) == (5, 5, 5)


def test_unmatchable_node_selector_makes_daemon_pods_go_away_after_termination_delay(
        api_client: kubernetes.client.ApiClient, kubelet: SimulatedKubelet, nodes: AddNodes) -> None:
    core, apps = kubernetes.client.CoreV1Api(api_client), kubernetes.client.AppsV1Api(api_client)
    nodes(3)
    apps.create_namespaced_daemon_set("kube-system", make_daemonset("multus", "kube-system"))
    assert kubelet.wait_idle()
    kubelet.termination_delay = 0.5
    apps.patch_namespaced_daemon_set("multus", "kube-system", {
        "spec": {"template": {"spec": {"nodeSelector": {"multus-cleanup/stopped": "true"}}}}})
    wait_until(lambda: all(p.metadata.deletion_timestamp for p in _ds_pods(core).values()) and len(_ds_pods(core)) == 3)
    started = time.monotonic()
    wait_until(lambda: _ds_pods(core) == {})
    assert time.monotonic() - started > 0.2  # they sat Terminating for a while
    assert kubelet.wait_idle()
    status = apps.read_namespaced_daemon_set("multus", "kube-system").status
    assert (status.desired_number_scheduled, status.current_number_scheduled) == (0, 0)


def test_cleanup_pod_run_writes_terminated_status(api_client: kubernetes.client.ApiClient,
                                                   kubelet: SimulatedKubelet, nodes: AddNodes) -> None:
    core = kubernetes.client.CoreV1Api(api_client)
    names = nodes(2)
    calls: list[tuple[str, str]] = []

    def run_pod(pod: dict[str, Any], node: str) -> tuple[int, str, str]:
        calls.append((pod["metadata"]["name"], node))
        if node == names[1]:
            return 3, json.dumps({"node": node, "clean": False}), "engine log line\n"
        return 0, json.dumps({"node": node, "clean": True}), "ok\n"

    kubelet.run_pod = run_pod
    core.create_namespaced_pod("kube-system", _cleanup_pod("good", names[0]))
    core.create_namespaced_pod("kube-system", _cleanup_pod("bad", names[1]))
    assert kubelet.wait_idle()
    good = core.read_namespaced_pod("good", "kube-system")
    assert good.status.phase == "Succeeded"
    terminated = good.status.container_statuses[0].state.terminated
    assert (terminated.exit_code, terminated.reason) == (0, "Completed")
    assert json.loads(terminated.message) == {"node": names[0], "clean": True}
    bad = core.read_namespaced_pod("bad", "kube-system").status
    assert bad.phase == "Failed"
    assert (bad.container_statuses[0].state.terminated.exit_code,
            bad.container_statuses[0].state.terminated.reason) == (3, "Error")
    assert core.read_namespaced_pod_log("bad", "kube-system") == "engine log line\n"
    assert sorted(calls) == [("bad", names[1]), ("good", names[0])]


def test_not_ready_nodes_never_run_pods(api_client: kubernetes.client.ApiClient, kubelet: SimulatedKubelet,
                                        nodes: AddNodes) -> None:
    core = kubernetes.client.CoreV1Api(api_client)
    names = nodes(2, not_ready=1)
    core.create_namespaced_pod("kube-system", _cleanup_pod("down", names[1]))
    assert kubelet.wait_idle()
    assert core.read_namespaced_pod("down", "kube-system").status.phase == "Pending"
    node = core.read_node(names[1])
    assert [c.status for c in node.status.conditions if c.type == "Ready"] == ["Unknown"]
    # A pod bound to a dead node stays Terminating, as upstream, until it is force-deleted.
    core.delete_namespaced_pod("down", "kube-system")
    assert core.read_namespaced_pod("down", "kube-system").metadata.deletion_timestamp is not None
    core.delete_namespaced_pod("down", "kube-system", grace_period_seconds=0)
    assert core.list_namespaced_pod("kube-system").items == []

    kubelet.set_ready(names[0], False)
    core.create_namespaced_pod("kube-system", _cleanup_pod("later", names[0]))
    assert kubelet.wait_idle()
    assert core.read_namespaced_pod("later", "kube-system").status.phase == "Pending"
    kubelet.set_ready(names[0], True)
    wait_until(lambda: core.read_namespaced_pod("later", "kube-system").status.phase == "Succeeded")


def test_fail_first_then_succeed_and_delay(api_client: kubernetes.client.ApiClient, kubelet: SimulatedKubelet,
                                           nodes: AddNodes) -> None:
    core = kubernetes.client.CoreV1Api(api_client)
    names = nodes(2)
    kubelet.run_pod = lambda pod, node: (0, "{}")
    kubelet.behaviour(names[0]).fail_first = 1
    kubelet.behaviour(names[0]).fail_result = (2, "boom")
    kubelet.behaviour(names[1]).delay = 0.4

    core.create_namespaced_pod("kube-system", _cleanup_pod("try-1", names[0]))
    core.create_namespaced_pod("kube-system", _cleanup_pod("slow", names[1]))
    time.sleep(0.2)
    assert core.read_namespaced_pod("slow", "kube-system").status.phase == "Pending"
    assert kubelet.wait_idle()
    first = core.read_namespaced_pod("try-1", "kube-system").status
    assert first.phase == "Failed" and first.container_statuses[0].state.terminated.message == "boom"
    core.create_namespaced_pod("kube-system", _cleanup_pod("try-2", names[0]))
    assert kubelet.wait_idle()
    assert core.read_namespaced_pod("try-2", "kube-system").status.phase == "Succeeded"
    assert core.read_namespaced_pod("slow", "kube-system").status.phase == "Succeeded"
    assert kubelet.behaviour(names[0]).attempts == 2


def test_on_failure_restarts_the_container(api_client: kubernetes.client.ApiClient, kubelet: SimulatedKubelet,
                                           nodes: AddNodes) -> None:
    core = kubernetes.client.CoreV1Api(api_client)
    names = nodes(1)
    kubelet.run_pod = lambda pod, node: (0, "done")
    kubelet.behaviour(names[0]).fail_first = 2
    core.create_namespaced_pod("kube-system", _cleanup_pod("retry", names[0], policy="OnFailure"))
    assert kubelet.wait_idle()
    status = core.read_namespaced_pod("retry", "kube-system").status
    assert status.phase == "Succeeded" and status.container_statuses[0].restart_count == 2
    assert status.container_statuses[0].last_state.terminated.exit_code == 1


def test_active_deadline_kills_a_hanging_pod(api_client: kubernetes.client.ApiClient, kubelet: SimulatedKubelet,
                                             nodes: AddNodes) -> None:
    core = kubernetes.client.CoreV1Api(api_client)
    names = nodes(1)
    kubelet.behaviour(names[0]).hang = True
    pod = _cleanup_pod("stuck", names[0])
    pod["spec"]["activeDeadlineSeconds"] = 1
    core.create_namespaced_pod("kube-system", pod)
    wait_until(lambda: core.read_namespaced_pod("stuck", "kube-system").status.phase == "Running")
    assert kubelet.wait_idle(timeout=5)  # waits out the deadline timer
    status = core.read_namespaced_pod("stuck", "kube-system").status
    assert (status.phase, status.reason) == ("Failed", "DeadlineExceeded")
    assert status.container_statuses[0].state.terminated.exit_code == 137


def test_pods_of_a_deleted_node_are_collected(api_client: kubernetes.client.ApiClient, kubelet: SimulatedKubelet,
                                              nodes: AddNodes) -> None:
    core = kubernetes.client.CoreV1Api(api_client)
    names = nodes(1, not_ready=1)
    core.create_namespaced_pod("kube-system", _cleanup_pod("orphan", names[0]))
    core.delete_namespaced_pod("orphan", "kube-system")
    assert core.read_namespaced_pod("orphan", "kube-system").metadata.deletion_timestamp is not None
    core.delete_node(names[0])
    wait_until(lambda: core.list_namespaced_pod("kube-system").items == [])


def test_termination_message_is_truncated_like_the_kubelet(api_client: kubernetes.client.ApiClient,
                                                           kubelet: SimulatedKubelet, nodes: AddNodes) -> None:
    core = kubernetes.client.CoreV1Api(api_client)
    names = nodes(1)
    kubelet.run_pod = lambda pod, node: (0, "head" + "x" * 5000 + "tail")
    core.create_namespaced_pod("kube-system", _cleanup_pod("big", names[0]))
    assert kubelet.wait_idle()
    message = core.read_namespaced_pod("big", "kube-system").status.container_statuses[0].state.terminated.message
    assert len(message) == 4096 and message.endswith("tail"), "the kubelet keeps the LAST 4096 bytes"


def test_job_deletion_collects_its_cleanup_pods(api_client: kubernetes.client.ApiClient, kubelet: SimulatedKubelet,
                                                nodes: AddNodes, api_server: EmulatedApiServer) -> None:
    core, batch = kubernetes.client.CoreV1Api(api_client), kubernetes.client.BatchV1Api(api_client)
    names = nodes(3)
    kubelet.behaviour(names[0]).hang = True
    job = batch.create_namespaced_job("kube-system", {
        "metadata": {"name": "hook"},
        "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "i"}]}}}})
    for name in names:
        pod = _cleanup_pod(f"clean-{name}", name)
        pod["metadata"]["ownerReferences"] = [{"apiVersion": "batch/v1", "kind": "Job", "name": "hook",
                                               "uid": job.metadata.uid, "controller": True}]
        core.create_namespaced_pod("kube-system", pod)
    assert kubelet.wait_idle()
    assert core.read_namespaced_pod(f"clean-{names[0]}", "kube-system").status.phase == "Running"
    batch.delete_namespaced_job("hook", "kube-system", propagation_policy="Background")
    components = "app.kubernetes.io/component"
    wait_until(lambda: core.list_namespaced_pod("kube-system", label_selector=components).items == [])
    assert api_server.store.count("pods") == 0


def test_daemonset_over_many_nodes_settles_quickly(api_client: kubernetes.client.ApiClient,
                                                   kubelet: SimulatedKubelet, nodes: AddNodes) -> None:
    count = int(os.environ.get("EMULATOR_SCALE_NODES", "500"))  # EMULATOR_SCALE_NODES=5000 for the big run
    apps = kubernetes.client.AppsV1Api(api_client)
    nodes(count)
    started = time.monotonic()
    apps.create_namespaced_daemon_set("kube-system", make_daemonset("multus", "kube-system"))
    assert kubelet.wait_idle(timeout=30)
    status = apps.read_namespaced_daemon_set_status("multus", "kube-system").status
    assert status.number_ready == count
    apps.patch_namespaced_daemon_set("multus", "kube-system", {
        "spec": {"template": {"spec": {"nodeSelector": {"nowhere": "true"}}}}})
    assert kubelet.wait_idle(timeout=30)
    assert apps.read_namespaced_daemon_set_status("multus", "kube-system").status.current_number_scheduled == 0
    assert time.monotonic() - started < 15 * max(1, count // 1000)
