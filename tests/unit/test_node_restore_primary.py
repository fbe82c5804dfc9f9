"""`multus-cleanup node --restore-renamed-primary-only`: thin Multus's init container. With
`--rename-conf-file`, a restarted thin_entrypoint looks for the primary config among the plain names only, finds
`<primary>.old` and its own 00-multus.conf and exits, again and again (CrashLoopBackOff, seen on the real
cluster). Renaming the primary back first lets it start as on the first install; Multus's files stay."""

from __future__ import annotations

from pathlib import Path

import pytest

import footprints as fp
from multus_cleanup.cli import main


def restore(root: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["node", "--host-root", str(root), "--node-name", "node-a", "--restore-renamed-primary-only", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_a_restarted_thin_multus_finds_its_primary_and_keeps_its_files(root: Path,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    primary = fp.node_before_multus(root)
    fp.install_thin(root, primary, rename_conf_file=True)
    before = fp.snapshot(root)
    code, out, err = restore(root, capsys)
    assert (code, err) == (0, "")
    assert f"renamed {primary}.old back to {primary}" in out
    after = fp.snapshot(root)
    assert after[primary] == before[primary + ".old"] and primary + ".old" not in after
    # everything else, Multus's config, binaries and kubeconfig included, is as it was
    assert {k: v for k, v in after.items() if k != primary} == {k: v for k, v in before.items()
                                                               if k != primary + ".old"}


def test_nothing_renamed_nothing_changed(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    primary = fp.node_before_multus(root)
    fp.install_thin(root, primary)
    before = fp.snapshot(root)
    assert restore(root, capsys) == (0, "node-a: no renamed primary CNI config to rename back\n", "")
    assert fp.snapshot(root) == before


def test_a_fresh_node_without_multus_is_left_alone(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fp.node_before_multus(root)
    before = fp.snapshot(root)
    assert restore(root, capsys)[0] == 0
    assert fp.snapshot(root) == before


def test_dry_run_says_what_it_would_rename(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    primary = fp.node_before_multus(root)
    fp.install_thin(root, primary, rename_conf_file=True)
    before = fp.snapshot(root)
    code, out, _ = restore(root, capsys, "--dry-run")
    assert code == 0 and f"would rename {primary}.old back to {primary}" in out
    assert fp.snapshot(root) == before


def test_two_renamed_configs_neither_delegated_to_touches_nothing(root: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    primary = fp.node_before_multus(root)
    fp.install_thin(root, primary, rename_conf_file=True)
    fp.write(root, "/etc/cni/net.d/20-other.conf.old", '{"cniVersion": "0.3.1", "name": "o", "type": "bridge"}')
    multus_conf = next((root / "etc/cni/net.d").glob("00-multus.conf*"))
    multus_conf.write_text('{"cniVersion": "0.3.1", "name": "multus-cni-network", "type": "multus", "delegates": []}')
    before = fp.snapshot(root)
    code, _, err = restore(root, capsys)
    assert code == 1 and "several renamed primary configs" in err
    assert fp.snapshot(root) == before


def test_options_of_a_full_cleanup_are_refused(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = restore(root, capsys, "--backup-dir", "/var/backup")
    assert code == 2 and "--restore-renamed-primary-only" in err
