"""The run's part of the report model: node statuses, the summary an operator reads, the exit codes."""

from __future__ import annotations

import json

from multus_cleanup.report import ExitCode, NodeOutcome, NodeReport, NodeStatus, Summary, verdict


def summary(*outcomes: NodeOutcome, success: bool, error: str | None = None) -> Summary:
    return Summary("run", "abcde", multus_pods_stopped=2, outcomes=list(outcomes), success=success, error=error,
                   requests={"create": 3, "list": 2})


def test_statuses_and_exit_codes_are_the_words_and_numbers_users_see() -> None:
    assert [str(s) for s in NodeStatus] == ["clean", "not clean", "failed", "unreachable", "gone"]
    assert (ExitCode.OK, ExitCode.FAILED, ExitCode.USAGE) == (0, 1, 2)


def test_a_successful_run_counts_its_nodes_and_says_what_may_follow() -> None:
    done = summary(NodeOutcome("a", NodeStatus.CLEAN), NodeOutcome("b", NodeStatus.CLEAN), success=True)
    text = done.to_text()
    assert "nodes: 2 (2 clean)" in text and "Multus pods stopped: 2" in text
    assert "API requests: 5 (3 create, 2 list)" in text
    assert text.endswith("result: SUCCESS: every node is verified clean; Multus's resources can now be deleted")


def test_a_failed_run_names_each_node_that_is_not_clean_and_why() -> None:
    failed = summary(NodeOutcome("a", NodeStatus.CLEAN),
                     NodeOutcome("b", NodeStatus.UNREACHABLE, "NotReady: kubelet stopped posting status"),
                     success=False, error="1 node(s) could not be cleaned (unreachableNodes: fail): b")
    text = failed.to_text()
    assert "nodes: 2 (1 clean, 1 unreachable)" in text
    assert "    b: unreachable: NotReady: kubelet stopped posting status" in text
    assert "ERROR: 1 node(s) could not be cleaned" in text
    assert verdict(failed).startswith("FAILED: nothing was deleted from the API")


def test_skipped_nodes_still_need_a_rerun_and_the_verdict_says_so() -> None:
    skipped = summary(NodeOutcome("a", NodeStatus.CLEAN), NodeOutcome("b", NodeStatus.UNREACHABLE, "NotReady"),
                      success=True)
    assert verdict(skipped).startswith("SUCCESS, but 1 unreachable node(s) were skipped")


def test_json_has_every_node_with_its_status_and_report() -> None:
    report = NodeReport(node="a", host_root="/host", removed=["/etc/cni/net.d/00-multus.conf"])
    data = json.loads(summary(NodeOutcome("a", NodeStatus.CLEAN, report=report), success=True).to_json())
    assert data["success"] is True and data["run"] == "abcde"
    assert data["nodes"]["a"]["status"] == "clean"
    assert data["nodes"]["a"]["report"]["removed"] == ["/etc/cni/net.d/00-multus.conf"]
    assert data["api_requests"] == {"create": 3, "list": 2}
