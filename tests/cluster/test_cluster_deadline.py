"""The hook Job killed at its deadline, by the real Job controller, while node pods are still outstanding.

The cleanup normally ends its own run 30 s before the Job's activeDeadlineSeconds, so the Job controller's
kill never comes. Here it does. The release keeps Multus's files in a backup dir (`cleanup.backupDir`), and on
every node that path is a regular file: each node pod then hangs in ContainerCreating with the kubelet's
FailedMount (`hostPath type check failed: ... is not a directory`), which the run's own podevents.why_stuck
reads from the real API server. With both node pods outstanding, the Job's activeDeadlineSeconds is patched
down to a few seconds past its age: the Job controller deletes the hook pod (DeadlineExceeded) and the kubelet
sends its PID 1 SIGTERM. What an operator sees is checked: `helm uninstall` fails; the hook's log and the
Job's CleanupFailed Event carry the partial summary naming SIGTERM and the deadline; the Job's condition is
DeadlineExceeded; no node pod of the run is left; Multus runs again (no node was changed) and every node
starts pods. With the nodes fixed (the file gone), a second `helm uninstall` cleans every node."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime
from typing import Any

import pytest
from clusterkit import HELM3, HELM4, NAMESPACE, ClusterKit, wait_for

from multus_cleanup.cluster.kube import connect
from multus_cleanup.cluster.podevents import why_stuck
from multus_cleanup.cluster.stop import STOP_LABEL

pytestmark = pytest.mark.cluster

JOB = "multus-cleanup"
HOOK_POD = f"batch.kubernetes.io/job-name={JOB}"
NODE_PODS = "app.kubernetes.io/component=node-cleanup,app.kubernetes.io/instance=multus"
BACKUP = "/run/multus-cleanup-backup"  # in each node's own /run (a tmpfs of its mount namespace)
GRACE = 5  # seconds past the Job's age its new activeDeadlineSeconds gives


def job_age(job: dict[str, Any]) -> float:
    started = datetime.strptime(job["status"]["startTime"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    return (datetime.now(UTC) - started).total_seconds()


def job_events(kit: ClusterKit, reason: str) -> list[str]:
    events = kit.cluster.get_json("events", "-n", NAMESPACE, "--field-selector",
                                  f"involvedObject.kind=Job,involvedObject.name={JOB},reason={reason}")["items"]
    return [str(e.get("message", "")) for e in events]


@pytest.mark.parametrize("helm", [HELM4, HELM3])
def test_a_hook_job_killed_at_its_deadline_reports_and_removes_its_node_pods(clean_cluster: ClusterKit,
                                                                            helm: str) -> None:
    kit = clean_cluster
    kit.install(helm, "multus", "mode=thick", f"cleanup.backupDir={BACKUP}")
    kit.multus_pods_running()
    for node in kit.nodes:
        kit.cluster.in_node(node, "touch", BACKUP)  # not a directory: the node pod's hostPath cannot mount
    uninstall: subprocess.Popen[str] | None = None
    logs: subprocess.Popen[str] | None = None
    output = log = ""
    stuck: dict[str, str] = {}
    try:
        uninstall = subprocess.Popen([str(kit.helm_bins[helm]), "uninstall", "multus", "-n", NAMESPACE, "--wait",
                                      "--timeout", "4m"], env=kit.helm_env(), stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        hook = wait_for("the hook pod Running", lambda: [
            p["metadata"]["name"] for p in kit.pods(NAMESPACE, HOOK_POD) if p["status"].get("phase") == "Running"],
            120, interval=0.5)[0]
        logs = subprocess.Popen([str(kit.cluster.bins / "kubectl"), "--kubeconfig", str(kit.cluster.kubeconfig),
                                 "logs", "-f", "-n", NAMESPACE, hook], stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        kube = connect(str(kit.cluster.kubeconfig))

        def all_stuck() -> bool:
            for pod in kit.pods(NAMESPACE, NODE_PODS):
                assert pod["status"].get("phase") == "Pending", f"a node pod got past its mount: {pod['status']}"
                if said := why_stuck(kube, NAMESPACE, pod["metadata"]["name"]):
                    stuck[pod["spec"]["nodeName"]] = said
            return set(stuck) == set(kit.nodes)
        wait_for("a node pod on every node stuck on its mount", all_stuck, 120, interval=1)

        job = kit.cluster.get_json("job", JOB, "-n", NAMESPACE)
        deadline = int(job_age(job)) + GRACE
        assert deadline < job["spec"]["activeDeadlineSeconds"] - 30, "the run's own deadline would come first"
        kit.kubectl("patch", "job", JOB, "-n", NAMESPACE, "--type", "merge", "-p",
                    f'{{"spec": {{"activeDeadlineSeconds": {deadline}}}}}')

        output, _ = uninstall.communicate(timeout=240)
        log, _ = logs.communicate(timeout=60)
    finally:
        for proc in (uninstall, logs):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.communicate()
        for node in kit.nodes:
            kit.cluster.in_node(node, "rm", "-f", BACKUP, check=False)  # the fix: the second run creates it

    # podevents.why_stuck, on the real kubelet's events: the FailedMount that kept each node pod back
    for node, said in stuck.items():
        assert said.startswith("FailedMount: MountVolume.SetUp failed for volume ") and BACKUP in said, (node, said)
    # what `helm uninstall` says, and the Job as `kubectl describe job` shows it
    assert uninstall is not None and uninstall.returncode != 0, f"the uninstall passed after the kill:\n{output}"
    job = kit.cluster.get_json("job", JOB, "-n", NAMESPACE)
    failed = [c for c in job["status"].get("conditions", []) if c["type"] == "Failed" and c["status"] == "True"]
    assert [c["reason"] for c in failed] == ["DeadlineExceeded"], job["status"]
    assert job["status"].get("failed") == 1 and not job["status"].get("active"), job["status"]
    assert job_events(kit, "DeadlineExceeded") == ["Job was active longer than specified deadline"]
    # the hook's own summary: in its log (streamed while it ran) and as the Job's CleanupFailed Event
    stopped = "the cleanup was stopped (SIGTERM: the hook Job reached activeDeadlineSeconds"
    assert stopped in log and "with 0 of 2 node(s) clean" in log, f"no partial summary in the hook's log:\n{log}"
    for node in kit.nodes:
        assert f"{node}: unreachable: not cleaned: the cleanup was stopped (SIGTERM)" in log, log
    assert "no node was changed, so Multus was restarted" in log, log
    cleanup_failed = job_events(kit, "CleanupFailed")
    assert any(stopped in m for m in cleanup_failed), f"no CleanupFailed Event with the summary: {cleanup_failed}"
    # no node pod of the run is left; Multus is restarted (no node was changed), and every node starts pods
    wait_for("the run's node pods gone", lambda: not kit.pods(NAMESPACE, NODE_PODS), 30)
    ds = kit.cluster.get_json("daemonset", "multus", "-n", NAMESPACE)
    assert STOP_LABEL not in (ds["spec"]["template"]["spec"].get("nodeSelector") or {}), ds["spec"]["template"]
    kit.multus_pods_running()
    kit.pod_on_every_node("after-deadline")
    print(f"helm uninstall ({helm}) at the deadline:\n{output}\nthe hook's log:\n{log}\nwhy_stuck: {stuck}\n"
          f"CleanupFailed: {cleanup_failed}")

    try:
        second = kit.uninstall(helm)
        assert second.returncode == 0, f"the second uninstall failed:\n{second.stdout}\n{second.stderr}"
        for node in kit.nodes:
            assert kit.multus_leftovers(node) == [], f"{node}: Multus files left after the second uninstall"
        kit.pod_on_every_node("after-second")
    finally:
        for node in kit.nodes:
            kit.cluster.in_node(node, "rm", "-rf", BACKUP, check=False)
