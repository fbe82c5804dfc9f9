"""Verification reads the config directory as the runtime does, and says in words what new pods meet."""

from __future__ import annotations

import errno
import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

import footprints as fp


@pytest.mark.parametrize(("name", "content", "problem"), [
    ("05-broken.conf", "{not json", "not valid JSON"),
    ("05-list.json", "[1]", "not a JSON object"),
    ("05-empty.conflist", '{"cniVersion": "1.0.0", "name": "e", "plugins": []}', "a .conflist without plugins"),
    ("05-notype.conflist", '{"name": "e", "plugins": [{"ipam": {}}]}', "a plugin without a type"),
    ("05-list-in-conf.conf", '{"name": "e", "plugins": [{"type": "bridge"}]}', "no network type"),
])
def test_a_first_config_the_runtime_rejects_is_reported(root: Path, cleanup: Callable, name: str,
                                                        content: str, problem: str) -> None:
    fp.node_before_multus(root)
    fp.write(root, f"/etc/cni/net.d/{name}", content)
    code, report, _ = cleanup(root)
    assert code == 1
    assert report["pod_error_after"] == f"the runtime cannot load /etc/cni/net.d/{name}: {problem}" or \
        report["pod_error_after"].startswith(f"the runtime cannot load /etc/cni/net.d/{name}: {problem}")


def test_dangling_link_as_first_config(root: Path, cleanup: Callable) -> None:
    fp.node_before_multus(root)
    (root / "etc/cni/net.d/01-gone.conf").symlink_to("/etc/cni/elsewhere.conf")
    _, report, _ = cleanup(root)
    assert "01-gone.conf: not a readable file (a dangling link?)" in report["pod_error_after"]


def test_missing_plugin_of_the_primary_is_named(root: Path, cleanup: Callable) -> None:
    fp.node_before_multus(root)
    (root / "opt/cni/bin/portmap").unlink()
    code, report, _ = cleanup(root)
    assert code == 1
    assert report["errors"] == [
        'new pods on this node would fail: failed to find plugin "portmap" in path [/opt/cni/bin]']


def test_links_to_configs_and_plugins_inside_the_root_count_and_dirs_do_not(root: Path, cleanup: Callable) -> None:
    fp.node_before_multus(root)
    (root / "etc/cni/net.d/00-a-dir.conf").mkdir()
    fp.write(root, "/etc/cni/shared/01-shared.conflist", json.dumps(fp.PRIMARY_1_0_0))
    (root / "etc/cni/net.d/01-shared.conflist").symlink_to("../shared/01-shared.conflist")
    bridge = root / "opt/cni/bin/bridge"
    bridge.rename(root / "opt/cni/bridge-real")
    bridge.symlink_to("/opt/cni/bridge-real")
    code, report, _ = cleanup(root)
    assert (code, report["primary_config"]) == (0, "/etc/cni/net.d/01-shared.conflist")


def test_link_loop_in_a_configured_path_is_a_clear_error(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from multus_cleanup.cli import main

    (root / "etc/cni").mkdir(parents=True)
    (root / "etc/cni/net.d").symlink_to("/etc/cni/net.d")
    assert main(["node", "--host-root", str(root)]) == 1
    assert "/etc/cni/net.d: too many levels of symbolic links" in capsys.readouterr().err


def test_an_operation_failing_midway_stops_and_is_reported(root: Path, cleanup: Callable,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """A change that passed the preflight can still fail (e.g. a file made immutable meanwhile)."""
    primary = fp.node_before_multus(root)
    fp.install_thin(root, primary, rename_conf_file=True)
    real_unlink = os.unlink

    def unlink(path: object, *args: object, **kwargs: object) -> None:
        if str(path).endswith("00-multus.conflist"):
            raise OSError(errno.EPERM, "Operation not permitted")
        real_unlink(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "unlink", unlink)
    code, report, _ = cleanup(root)
    monkeypatch.undo()

    assert code == 1 and report["clean"] is False
    assert report["restored"] == [{"from": primary + ".old", "to": primary}]
    assert report["errors"][0] == "cannot remove /etc/cni/net.d/00-multus.conflist: permission denied"
    assert (root / "opt/cni/bin/multus").exists()  # later steps did not run: Multus still works here
    code, report, _ = cleanup(root)  # the re-run finishes the job
    assert (code, report["clean"]) == (0, True)


def test_a_failed_restore_touches_nothing_else(root: Path, cleanup: Callable, monkeypatch: pytest.MonkeyPatch
                                               ) -> None:
    primary = fp.node_before_multus(root)
    fp.install_thin(root, primary, rename_conf_file=True)
    before = fp.snapshot(root)

    def rename(*_args: object, **_kwargs: object) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "rename", rename)
    code, report, _ = cleanup(root)
    monkeypatch.undo()
    assert code == 1 and report["removed"] == []
    assert report["errors"][0] == (f"cannot rename {primary}.old to {primary}: Input/output error")
    assert fp.snapshot(root) == before


def test_backup_of_a_mount_point_copies_and_keeps_the_empty_dir(root: Path, needs_root: None) -> None:
    import subprocess
    import sys

    primary = fp.node_before_multus(root)
    fp.install_thick(root, primary)
    fp.write(root, "/run/multus/daemon-state", "x")
    script = (
        "import sys, subprocess;"
        f"subprocess.run(['mount', '--bind', '{root}/run/multus', '{root}/run/multus'], check=True);"
        "from multus_cleanup.cli import main;"
        f"sys.exit(main(['node', '--host-root', '{root}', '--output', 'json', '--backup-dir', '/var/bk']))"
    )
    result = subprocess.run(["unshare", "-m", "--propagation", "private", sys.executable, "-c", script],
                            capture_output=True, text=True, check=False)
    report = json.loads(result.stdout)
    assert result.returncode == 0 and report["clean"] is True, result.stderr
    assert report["kept"][0]["path"] == "/run/multus"
    assert (root / "var/bk/run/multus/daemon-state").read_text() == "x"
    assert not (root / "var/bk/run/multus/multus.sock").exists()
