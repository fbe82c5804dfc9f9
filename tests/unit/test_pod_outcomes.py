"""How the orchestrator reads a cleanup pod's status, as a real kubelet writes it."""

from __future__ import annotations

from typing import Any

from multus_cleanup.cluster.sweep import CLEAN, FAILED, NOT_CLEAN, _judge
from multus_cleanup.report import NodeReport


def pod(phase: str, state: dict[str, Any], **status: Any) -> dict[str, Any]:
    return {"metadata": {"name": "p"}, "status": {"phase": phase, **status,
                                                  "containerStatuses": [{"name": "cleanup", "state": state}]}}


def terminated(code: int, message: str) -> dict[str, Any]:
    return {"terminated": {"exitCode": code, "reason": "Completed" if code == 0 else "Error", "message": message}}


def test_clean_report() -> None:
    report = NodeReport(node="n", host_root="/host", clean=True)
    verdict = _judge(pod("Succeeded", terminated(0, report.to_termination_message())), "MODIFIED")
    assert verdict is not None and verdict[0] == CLEAN and verdict[2] == report


def test_not_clean_report_is_retried_with_its_errors() -> None:
    report = NodeReport(node="n", host_root="/host", errors=["cannot remove x: permission denied"])
    assert _judge(pod("Failed", terminated(1, report.to_json(compact=True))), "MODIFIED") == (
        NOT_CLEAN, "cannot remove x: permission denied", report, True)


def test_config_rejected_is_not_retried() -> None:
    verdict = _judge(pod("Failed", terminated(2, "multus-cleanup: invalid configuration: node.cniBinDir: ...")), "M")
    assert verdict is not None and verdict[0] == FAILED and verdict[3] is False
    assert "rejected its configuration: multus-cleanup: invalid configuration: node.cniBinDir" in verdict[1]


def test_crash_without_report_shows_the_log_tail() -> None:
    verdict = _judge(pod("Failed", terminated(137, "Traceback ...\nMemoryError")), "MODIFIED")
    assert verdict == (FAILED, "exit code 137 without a report (Error): Traceback ...\nMemoryError", None, True)


def test_image_pull_failure_is_reported_at_once_in_the_kubelets_words() -> None:
    waiting = {"waiting": {"reason": "ImagePullBackOff", "message": 'Back-off pulling image "reg/x:1"'}}
    assert _judge(pod("Pending", waiting), "MODIFIED") == (
        FAILED, 'its cleanup pod cannot start: ImagePullBackOff: Back-off pulling image "reg/x:1"', None, False)


def test_pending_pod_is_still_going_and_deletion_is_a_failure() -> None:
    assert _judge(pod("Pending", {"waiting": {"reason": "ContainerCreating"}}), "MODIFIED") is None
    verdict = _judge(pod("Pending", {}), "DELETED")
    assert verdict is not None and verdict[:2] == (FAILED, "its cleanup pod was deleted before it finished")


def test_rejected_by_the_kubelet_without_running() -> None:
    evicted = {"metadata": {"name": "p"}, "status": {"phase": "Failed", "reason": "OutOfcpu",
                                                     "message": "Node didn't have enough resource: cpu"}}
    verdict = _judge(evicted, "MODIFIED")
    assert verdict is not None and verdict[0] == FAILED
    assert verdict[1] == "pod failed without running (OutOfcpu: Node didn't have enough resource: cpu)"


def test_pod_killed_at_its_deadline_is_unreachable() -> None:
    from multus_cleanup.cluster.sweep import UNREACHABLE

    killed = pod("Failed", terminated(137, ""), reason="DeadlineExceeded",
                 message="Pod was active on the node longer than the specified deadline")
    assert _judge(killed, "MODIFIED") == (UNREACHABLE, "its cleanup pod did not finish within its deadline", None,
                                          False)
