"""Read-only and permission-denied paths, for real: a read-only bind mount, and root without
CAP_DAC_OVERRIDE (as in a cleanup pod with capabilities dropped). Clear error, exit 1, nothing half-done.
Also a backup onto another filesystem (tmpfs). Each runs the real console script in its own mount
namespace; they need root and run in .ci/run."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import footprints as fp

CONSOLE_SCRIPT = str(Path(sys.executable).with_name("multus-cleanup"))
NO_DAC = ["setpriv", "--bounding-set=-dac_override,-dac_read_search,-fowner",
          "--inh-caps=-dac_override,-dac_read_search,-fowner"]


def run_in_mount_ns(shell_setup: str, *cleanup_args: str, prefix: tuple[str, ...] = ()
                    ) -> tuple[int, dict[str, Any], str]:
    for tool in ("unshare", "mount", "setpriv"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is missing (util-linux); .ci/run installs it")
    command = " ".join([*prefix, CONSOLE_SCRIPT, "node", "--output", "json", *cleanup_args])
    result = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-ec",
                             f"{shell_setup}\nexec {command}"], capture_output=True, text=True, check=False)
    report = json.loads(result.stdout) if result.stdout.strip() else {}
    return result.returncode, report, result.stderr


@pytest.fixture
def thin_node(root: Path, needs_root: None) -> Path:
    primary = fp.node_before_multus(root)
    fp.install_thin(root, primary, rename_conf_file=True)
    return root


def test_read_only_bin_dir_fails_before_any_change(thin_node: Path) -> None:
    root = thin_node
    before = fp.snapshot(root, times=True)
    bin_dir = root / "opt/cni/bin"
    code, report, err = run_in_mount_ns(
        f"mount --bind {bin_dir} {bin_dir}\nmount -o remount,bind,ro {bin_dir}", "--host-root", str(root))

    assert code == 1, err
    assert report["clean"] is False
    assert "cannot remove /opt/cni/bin/multus: /opt/cni/bin: read-only file system" in report["errors"]
    assert fp.snapshot(root, times=True) == before  # the primary was not even restored


def test_whole_host_read_only_is_refused_cleanly(thin_node: Path) -> None:
    root = thin_node
    before = fp.snapshot(root, times=True)
    code, report, _ = run_in_mount_ns(f"mount --bind {root} {root}\nmount -o remount,bind,ro {root}",
                                      "--host-root", str(root))
    assert code == 1
    assert any("cannot restore /etc/cni/net.d/10-bridge.conflist: /etc/cni/net.d: read-only file system" in e
               for e in report["errors"])
    assert fp.snapshot(root, times=True) == before


def test_permission_denied_without_dac_override_fails_before_any_change(thin_node: Path) -> None:
    root = thin_node
    (root / "etc/cni/net.d/multus.d").chmod(0o555)  # the kubeconfig cannot be unlinked without DAC override
    before = fp.snapshot(root, times=True)

    code, report, err = run_in_mount_ns("true", "--host-root", str(root), prefix=tuple(NO_DAC))

    assert code == 1, err
    assert ("cannot remove /etc/cni/net.d/multus.d: /etc/cni/net.d/multus.d: permission denied"
            in report["errors"])
    assert fp.snapshot(root, times=True) == before


def test_backup_onto_another_filesystem_copies_then_removes(root: Path, needs_root: None) -> None:
    primary = fp.node_before_multus(root)
    before = fp.snapshot(root)
    fp.install_thick(root, primary)
    fp.install_thin(root, primary)
    backup = root / "var/backups"
    backup.mkdir(parents=True)
    backup_tree = root.parent / "backup-seen"
    code, report, err = run_in_mount_ns(
        f"mount -t tmpfs tmpfs {backup}",
        "--host-root", str(root), "--backup-dir", "/var/backups/multus",
        # copy the tmpfs content out before the namespace (and its tmpfs) goes away
        prefix=("sh", "-c", f"'\"$0\" \"$@\"; rc=$?; cp -a {backup} {backup_tree}; exit $rc'"))
    assert code == 0, err
    assert report["clean"] is True
    backup.rmdir()
    assert fp.snapshot(root) == before
    saved = fp.snapshot(backup_tree)
    assert saved["/multus/opt/cni/bin/multus"][2] == fp.EXECUTABLE
    assert saved["/multus/etc/cni/net.d/multus.d/multus.kubeconfig"] == ("file", 0o600, fp.KUBECONFIG)
    assert "/multus/run/multus/multus.sock" not in saved  # a socket cannot be copied and means nothing
