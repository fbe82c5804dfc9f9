"""How the orchestrator reads a cleanup pod's status, as a real kubelet writes it."""

from __future__ import annotations

from typing import Any

import pytest

from multus_cleanup.cluster.sweep import _judge
from multus_cleanup.report import NodeReport, NodeStatus

CLEAN, FAILED, NOT_CLEAN = NodeStatus.CLEAN, NodeStatus.FAILED, NodeStatus.NOT_CLEAN
UNREACHABLE = NodeStatus.UNREACHABLE


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


@pytest.mark.parametrize(("reason", "message"), [
    ("ErrImageNeverPull", 'Container image "reg/x:1" is not present with pull policy of Never'),
    ("InvalidImageName", 'Failed to apply default image tag "reg/X:1": couldn\'t parse image name'),
    ("ErrImagePull", 'failed to pull and unpack image "reg/x:1": failed to resolve reference "reg/x:1": '
                     "reg/x:1: not found"),
    ("ErrImagePull", 'failed to resolve reference "reg/x:1": pull access denied, repository does not exist or '
                     "may require authorization: server message: insufficient_scope: authorization failed"),
    ("ImagePullBackOff", 'Back-off pulling image "reg/x:1": ErrImagePull: 401 Unauthorized'),
    ("ErrImagePull", "no matching manifest for linux/arm64 in the manifest list entries"),
])
def test_definitive_start_errors_are_reported_at_once_in_the_kubelets_words(reason: str, message: str) -> None:
    waiting = {"waiting": {"reason": reason, "message": message}}
    assert _judge(pod("Pending", waiting), "MODIFIED") == (
        FAILED, f"its cleanup pod cannot start: {reason}: {message}", None, False)


@pytest.mark.parametrize(("reason", "message"), [
    ("ImagePullBackOff", 'Back-off pulling image "reg/x:1"'),
    ("ErrImagePull", "failed to pull and unpack image: 429 Too Many Requests: toomanyrequests"),
    ("ErrImagePull", "dial tcp 10.0.0.1:443: i/o timeout"),
    ("CreateContainerError", "context deadline exceeded"),
])
def test_transient_start_errors_wait_for_their_grace(reason: str, message: str) -> None:
    """The kubelet retries them: the sweep gives them startErrorGraceSeconds (tests/api shows it)."""
    assert _judge(pod("Pending", {"waiting": {"reason": reason, "message": message}}), "MODIFIED") is None


def with_sidecar(phase: str, state: dict[str, Any]) -> dict[str, Any]:
    """As a real kubelet writes it: container statuses sorted by name, an injected proxy first, still running."""
    return {"metadata": {"name": "p"}, "status": {"phase": phase, "containerStatuses": [
        {"name": "aaa-proxy", "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}}},
        {"name": "cleanup", "state": state}, {"name": "zz-agent", "state": {"terminated": {"exitCode": 0}}}]}}


def test_the_cleanup_containers_status_is_read_whatever_a_webhook_injected() -> None:
    report = NodeReport(node="n", host_root="/host", clean=True)
    verdict = _judge(with_sidecar("Succeeded", terminated(0, report.to_termination_message())), "MODIFIED")
    assert verdict is not None and verdict[0] == CLEAN
    assert _judge(with_sidecar("Pending", {"waiting": {"reason": "ContainerCreating"}}), "MODIFIED") is None


def test_a_pod_held_running_by_a_sidecar_is_a_result_once_cleanup_terminated() -> None:
    report = NodeReport(node="n", host_root="/host", clean=True)
    verdict = _judge(with_sidecar("Running", terminated(0, report.to_termination_message())), "MODIFIED")
    assert verdict is not None and verdict[:3] == (CLEAN, "", report)
    failed = NodeReport(node="n", host_root="/host", errors=["cannot remove x: permission denied"])
    verdict = _judge(with_sidecar("Running", terminated(1, failed.to_termination_message())), "MODIFIED")
    assert verdict == (NOT_CLEAN, "cannot remove x: permission denied", failed, True)
    assert _judge(with_sidecar("Running", {"running": {}}), "MODIFIED") is None


def test_an_unparsable_termination_message_is_read_from_the_pod_log() -> None:
    from multus_cleanup.report import LOG_REPORT_PREFIX

    report = NodeReport(node="n", host_root="/host", clean=True, removed=[f"/var/lib/cni/multus/{i}" for i in
                                                                          range(500)])
    cut = report.to_json(compact=True)[-4096:]  # what the kubelet keeps of an uncapped report
    log = report.to_text() + "\n" + LOG_REPORT_PREFIX + report.to_json(compact=True) + "\n"
    verdict = _judge(pod("Succeeded", terminated(0, cut)), "MODIFIED", read_log=lambda: log)
    assert verdict == (CLEAN, "", report, False)
    verdict = _judge(pod("Succeeded", terminated(0, cut)), "MODIFIED", read_log=lambda: "no report here")
    assert verdict is not None and verdict[0] == FAILED and "without a report" in verdict[1]


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
    killed = pod("Failed", terminated(137, ""), reason="DeadlineExceeded",
                 message="Pod was active on the node longer than the specified deadline")
    assert _judge(killed, "MODIFIED") == (UNREACHABLE, "its cleanup pod did not finish within its deadline", None,
                                          False)
