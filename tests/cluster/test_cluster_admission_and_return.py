"""What the real API server and controllers do to an uninstall, on the real cluster: PodSecurity rejects the node
pods (the uninstall fails before any change), a full ResourceQuota is waited for, a DaemonSet restored mid-run
(as a GitOps self-heal does) fails the run, and pods still on a secondary network follow cleanup.attachedPods."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from clusterkit import HELM3, HELM4, NAMESPACE, ClusterKit, wait_for

from multus_cleanup.cluster.stop import STOP_LABEL

pytestmark = pytest.mark.cluster

DAEMONSET = "multus"
HOOK_JOB = "multus-cleanup"
POD_SECURITY = "pod-security.kubernetes.io/enforce"


@contextmanager
def meanwhile(what: str, action: Callable[[threading.Event], None]) -> Iterator[None]:
    """Run `action` in a thread while the body runs (an uninstall); its failure fails the test."""
    done, errors = threading.Event(), []

    def run() -> None:
        try:
            action(done)
        except Exception as err:
            errors.append(err)

    thread = threading.Thread(target=run, name=what, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join(timeout=30)
    assert not errors, f"{what}: {errors[0]}"


def hook_log(kit: ClusterKit) -> str:
    return kit.kubectl("logs", "-n", NAMESPACE, f"job/{HOOK_JOB}", check=False, timeout=20).stdout


def multus_template(kit: ClusterKit) -> dict[str, Any]:
    return dict(kit.cluster.get_json("daemonset", DAEMONSET, "-n", NAMESPACE)["spec"]["template"])


def workstation_run(kit: ClusterKit, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """`multus-cleanup run` from this machine (docs/repair.md) with the hook's own config from its ConfigMap."""
    config = tmp_path / "config.yaml"
    config.write_text(kit.cluster.get_json("configmap", HOOK_JOB, "-n", NAMESPACE)["data"]["config.yaml"])
    return subprocess.run([str(Path(sys.executable).with_name("multus-cleanup")), "run", "--kubeconfig",
                           str(kit.cluster.kubeconfig), "--config", str(config)], capture_output=True, text=True,
                          timeout=300, check=False)


def test_pod_security_fails_the_uninstall_before_any_change(clean_cluster: ClusterKit, tmp_path: Path) -> None:
    kit = clean_cluster
    kit.install(HELM4, "multus", "mode=thick")
    before = kit.multus_pods_running()
    template = multus_template(kit)
    kit.kubectl("label", "namespace", NAMESPACE, f"{POD_SECURITY}=baseline", "--overwrite")
    try:
        # The hook Job's own pod (hostNetwork) is refused first: Helm prints the API server's warning, the Job
        # never starts, Helm gives up at its --timeout.
        failed = kit.uninstall(HELM4, "multus", "--timeout", "30s")
        output = failed.stdout + failed.stderr
        assert failed.returncode != 0, f"the uninstall passed although PodSecurity forbids the hook:\n{output}"
        assert "would violate PodSecurity" in output and "baseline:latest" in output, output  # Helm 4 quotes it
        events = kit.cluster.get_json("events", "-n", NAMESPACE, "--field-selector",
                                      f"involvedObject.kind=Job,involvedObject.name={HOOK_JOB},reason=FailedCreate")
        assert any("PodSecurity" in e["message"] for e in events["items"]), events
        # The hook's admission check, where its orchestrator can run (a workstation): the node pods' dry run
        # is refused, with the fix, and nothing is changed.
        ran = workstation_run(kit, tmp_path)
        assert ran.returncode == 1, ran.stdout + ran.stderr
        assert "the API server would reject the cleanup's node pods" in ran.stdout, ran.stdout
        assert "PodSecurity" in ran.stdout and f"{POD_SECURITY}=privileged" in ran.stdout, ran.stdout
        assert multus_template(kit) == template, "the Multus DaemonSet was changed"
        assert kit.multus_pods_running() == before, "Multus's pods were restarted"
    finally:
        kit.kubectl("label", "namespace", NAMESPACE, f"{POD_SECURITY}-")

    second = kit.uninstall(HELM4)
    assert second.returncode == 0, f"the uninstall failed once the namespace allows the pods:\n{second.stdout}"
    assert all(kit.multus_leftovers(n) == [] for n in kit.nodes)


def test_a_full_resource_quota_is_waited_for(clean_cluster: ClusterKit) -> None:
    kit = clean_cluster
    kit.install(HELM3, "multus", "mode=thick")
    kit.multus_pods_running()
    live = [p for p in kit.pods(NAMESPACE) if p["status"].get("phase") not in ("Succeeded", "Failed")]
    # room for the hook Job's own pod, none for a node pod
    quota = {"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "pods", "namespace": NAMESPACE},
             "spec": {"hard": {"pods": str(len(live) + 1)}}}
    kit._apply(quota)
    wait_for("the quota's usage counted", lambda: kit.cluster.get_json("resourcequota", "pods", "-n", NAMESPACE)
             .get("status", {}).get("used"), 60)

    waited: list[str] = []

    def free_the_quota(done: threading.Event) -> None:
        def hit() -> bool:
            if "a ResourceQuota has no room" in hook_log(kit):
                waited.append("yes")
            return bool(waited) or done.is_set()
        wait_for("the hook waiting for room in the quota", hit, 120)
        kit.kubectl("patch", "resourcequota", "pods", "-n", NAMESPACE, "--type=merge",
                    "-p", json.dumps({"spec": {"hard": {"pods": "100"}}}))

    try:
        with meanwhile("free the quota", free_the_quota):
            result = kit.uninstall(HELM3)
    finally:
        kit.kubectl("delete", "resourcequota", "pods", "-n", NAMESPACE, check=False)
    assert waited, "the node pod was never refused by the quota"
    assert result.returncode == 0, f"the uninstall failed although the quota was freed:\n{result.stdout}"
    assert all(kit.multus_leftovers(n) == [] for n in kit.nodes)


def test_a_daemonset_restored_mid_run_fails_the_uninstall(clean_cluster: ClusterKit) -> None:
    kit = clean_cluster
    kit.install(HELM4, "multus", "mode=thick")
    kit.multus_pods_running()

    healed: list[float] = []

    def self_heal(done: threading.Event) -> None:
        # as Argo CD's self-heal does: whenever it sees the drift, here once the nodes are being cleaned (the
        # Job's retry is healed too)
        while not done.is_set():
            stopped = STOP_LABEL in (multus_template(kit)["spec"].get("nodeSelector") or {})
            if stopped and kit.pods(NAMESPACE, "app.kubernetes.io/component=node-cleanup"):
                kit.kubectl("patch", "daemonset", DAEMONSET, "-n", NAMESPACE, "--type=merge", "-p",
                            json.dumps({"spec": {"template": {"spec": {"nodeSelector": {STOP_LABEL: None}}}}}))
                healed.append(time.monotonic())
            time.sleep(0.2)

    with meanwhile("restore the DaemonSet", self_heal):
        failed = kit.uninstall(HELM4)
    output = failed.stdout + failed.stderr
    assert failed.returncode != 0, f"the uninstall passed although Multus came back:\n{output}"
    assert healed, "the DaemonSet was never restored"
    assert f"DaemonSet {NAMESPACE}/{DAEMONSET} was restored during the cleanup" in output, output
    assert kit.cluster.get_json("daemonset", DAEMONSET, "-n", NAMESPACE), "Helm deleted the DaemonSet"


def test_pods_on_a_secondary_network_follow_attached_pods(clean_cluster: ClusterKit) -> None:
    kit = clean_cluster
    kit.install(HELM4, "multus", "mode=thick", "cleanup.attachedPods=fail")
    kit.multus_pods_running()
    kit.second_network()
    kit.start_pod("attached", kit.nodes[-1], networks="second")
    kit.wait_running("attached")
    template = multus_template(kit)

    failed = kit.uninstall(HELM4)
    output = failed.stdout + failed.stderr
    assert failed.returncode != 0, f"attachedPods=fail, yet the uninstall passed:\n{output}"
    assert "default/attached (networks: second)" in output, output
    assert multus_template(kit) == template, "the Multus DaemonSet was changed"

    # what docs/uninstall.md tells the user: the hook reads its ConfigMap when it runs
    config = kit.cluster.get_json("configmap", HOOK_JOB, "-n", NAMESPACE)["data"]["config.yaml"]
    assert "attachedPods: fail" in config
    patch = {"data": {"config.yaml": config.replace("attachedPods: fail", "attachedPods: warn")}}
    kit.kubectl("patch", "configmap", HOOK_JOB, "-n", NAMESPACE, "--type=merge", "-p", json.dumps(patch))
    passed = kit.uninstall(HELM4)
    output = passed.stdout + passed.stderr
    assert passed.returncode == 0, f"attachedPods=warn, yet the uninstall failed:\n{output}"
    assert "WARNING: 1 pod(s) are still attached to secondary networks: default/attached" in output, output
