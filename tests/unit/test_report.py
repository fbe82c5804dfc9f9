"""The report reads back from JSON (the orchestrator reads node pods' reports) and reads well as text."""

from __future__ import annotations

import pytest

from multus_cleanup.report import Kept, Move, NodeReport


def full_report(dry_run: bool = False) -> NodeReport:
    return NodeReport(
        node="worker-1", host_root="/host", dry_run=dry_run, clean=not dry_run,
        found=["/etc/cni/net.d/00-multus.conf"], removed=["/etc/cni/net.d/00-multus.conf"],
        restored=[Move("/etc/cni/net.d/10-calico.conflist.old", "/etc/cni/net.d/10-calico.conflist")],
        backed_up=[Move("/etc/cni/net.d/00-multus.conf", "/var/bk/etc/cni/net.d/00-multus.conf")],
        kept=[Kept("/run/multus", "a mount point")], primary_config="/etc/cni/net.d/10-calico.conflist",
        pod_error_before='failed to find plugin "multus" in path [/opt/cni/bin]', errors=[],
    )


@pytest.mark.parametrize("compact", [True, False])
def test_json_round_trip(compact: bool) -> None:
    report = full_report()
    assert NodeReport.from_json(report.to_json(compact=compact)) == report


def test_compact_json_fits_a_termination_message() -> None:
    assert len(full_report().to_json(compact=True).encode()) < 4096


@pytest.mark.parametrize("text", ["nonsense", "[]", '{"node": "x"}', '{"node": 1, "host_root": "/", '
                                  '"dry_run": false, "clean": true, "found": 3}'])
def test_malformed_reports_are_rejected_with_a_reason(text: str) -> None:
    with pytest.raises(ValueError, match="not a node report"):
        NodeReport.from_json(text)


def test_text_tells_an_operator_what_happened() -> None:
    text = full_report().to_text()
    assert text.splitlines() == [
        "node worker-1 (host root /host)",
        '  found: failed to find plugin "multus" in path [/opt/cni/bin]',
        "  restore primary CNI config /etc/cni/net.d/10-calico.conflist.old -> /etc/cni/net.d/10-calico.conflist",
        "  remove /etc/cni/net.d/00-multus.conf",
        "  back up /etc/cni/net.d/00-multus.conf -> /var/bk/etc/cni/net.d/00-multus.conf",
        "  kept /run/multus: a mount point",
        "  the runtime loads /etc/cni/net.d/10-calico.conflist",
        "  result: CLEAN, new pods use the primary CNI",
    ]


def test_dry_run_text_says_would() -> None:
    report = full_report(dry_run=True)
    report.errors = ["cannot remove x: permission denied"]
    text = report.to_text()
    assert "[dry run: nothing changed]" in text and "would remove /etc/cni/net.d/00-multus.conf" in text
    assert "ERROR: cannot remove x: permission denied" in text and text.endswith("result: not clean now")
    assert "no Multus files found" in NodeReport(node="n", host_root="/h").to_text()


def huge_report() -> NodeReport:
    """A node with hundreds of leftover cache entries and an error naming them all: ~60 KiB of JSON."""
    cache = [f"/var/lib/cni/multus/results/{i:04d}-{'c' * 48}-eth0" for i in range(400)]
    return NodeReport(node="worker-with-a-rather-long-name-1", host_root="/host", found=cache, removed=cache[:300],
                      kept=[Kept(p, "a mount point " + "x" * 300) for p in cache[:50]],
                      errors=["cannot remove /var/lib/cni/multus: permission denied",
                              "still on the node: " + ", ".join(cache)],
                      pod_error_before="é" * 5000)  # non-ASCII: the limit is in bytes


@pytest.mark.parametrize("limit", [4096, 1024, 300])
def test_a_huge_report_is_capped_to_a_termination_message_that_parses(limit: int) -> None:
    report = huge_report()
    assert len(report.to_json(compact=True).encode()) > 16 * limit
    message = report.to_termination_message(limit)
    assert len(message.encode()) <= limit
    capped = NodeReport.from_json(message)
    assert capped.truncated and capped.node == report.node and capped.clean is False
    if limit >= 1024:  # the first (most telling) error survives, shortened at worst
        assert capped.errors and capped.errors[0].startswith("cannot remove /var/lib/cni/mult")
    for kept, full in [*zip(capped.found, report.found, strict=False),
                       *zip(capped.errors, report.errors, strict=False)]:
        assert full.startswith(kept.removesuffix("…")), "a string is cut at its end, never rewritten"
    assert "shortened" in capped.to_text()


def test_the_kubelet_keeps_the_tail_so_an_uncapped_report_would_not_parse() -> None:
    text = huge_report().to_json(compact=True).encode()
    with pytest.raises(ValueError, match="not a node report"):
        NodeReport.from_json(text[-4096:].decode(errors="ignore"))


def test_a_report_that_fits_is_not_marked_truncated() -> None:
    message = full_report().to_termination_message()
    assert "truncated" not in message and NodeReport.from_json(message) == full_report()


def test_the_full_report_is_read_back_from_the_pod_log() -> None:
    from multus_cleanup.report import LOG_REPORT_PREFIX, report_from_log

    report = huge_report()
    log = report.to_text() + "\n" + LOG_REPORT_PREFIX + report.to_json(compact=True) + "\n"
    assert report_from_log(log) == report
    with pytest.raises(ValueError, match="no report line"):
        report_from_log(report.to_text())
