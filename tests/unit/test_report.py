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
