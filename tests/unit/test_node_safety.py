"""The engine never deletes outside its configured paths, never follows a link out of the host root,
rejects bad input before touching anything, and never leaves a node worse than it found it."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from pathlib import Path

import pytest

import footprints as fp


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """Precious files outside the host root that an escaping link points at."""
    victim = tmp_path / "outside"
    fp.write(victim, "/etc/passwd", "root:x:0:0\n")
    fp.write(victim, "/00-multus.conf", '{"type": "multus"}')
    fp.write(victim, "/multus", fp.EXECUTABLE, 0o755)
    return victim


def test_links_in_place_of_multus_files_are_removed_as_links(root: Path, cleanup: Callable,
                                                              outside: Path) -> None:
    primary = fp.node_before_multus(root)
    before = fp.snapshot(root)
    victim = fp.snapshot(outside)
    fp.install_thin(root, primary)
    bin_multus = root / "opt/cni/bin/multus"
    bin_multus.unlink()
    bin_multus.symlink_to(outside / "multus")  # absolute link out of the root
    (root / "opt/cni/bin/passthru").unlink()
    (root / "opt/cni/bin/passthru").symlink_to("../../../../../../../../" + str(outside / "etc/passwd"))
    fp.write(root, "/run/placeholder", "x")
    (root / "run/multus").symlink_to(outside)  # a whole-dir link: never recursed into
    (root / "etc/cni/net.d/multus.d").rename(root / "kube")
    (root / "etc/cni/net.d/multus.d").symlink_to("/kube")  # absolute inside the root, as the node sees it

    code, report, _ = cleanup(root)

    assert (code, report["clean"]) == (0, True), report
    assert fp.snapshot(outside) == victim
    assert (root / "kube/multus.kubeconfig").exists()  # the link went, not what it points at
    (root / "kube/multus.kubeconfig").unlink()
    (root / "kube").rmdir()
    (root / "run/placeholder").unlink()
    assert fp.snapshot(root) == before


def test_directory_links_cannot_escape_the_host_root(root: Path, cleanup: Callable, outside: Path) -> None:
    """/etc/cni/net.d as a link to ../../../outside resolves chroot-style, inside the root."""
    victim = fp.snapshot(outside)
    (root / "etc/cni").mkdir(parents=True)
    (root / "etc/cni/net.d").symlink_to("../../../../../../../../../" + str(outside))
    (root / "opt/cni").mkdir(parents=True)
    (root / "opt/cni/bin").symlink_to(outside)  # absolute: means <root><outside> on the node, absent

    code, report, _ = cleanup(root)

    assert report["removed"] == [] and report["found"] == []
    assert fp.snapshot(outside) == victim
    assert code == 1 and "no CNI config" in report["pod_error_after"]


def test_directory_links_inside_the_root_are_followed_like_the_node_would(root: Path, cleanup: Callable) -> None:
    """rke2 style: /etc/cni/net.d is a link to the data dir; the node sees one directory."""
    layout = fp.Layout("linked", conf_dir="/var/lib/rancher/rke2/agent/etc/cni/net.d")
    primary = fp.node_before_multus(root, layout)
    (root / "etc/cni").mkdir(parents=True)
    (root / "etc/cni/net.d").symlink_to("/var/lib/rancher/rke2/agent/etc/cni/net.d")
    before = fp.snapshot(root)
    fp.install_thin(root, primary, layout)

    code, report, _ = cleanup(root)

    assert (code, report["clean"]) == (0, True), report
    assert report["primary_config"] == "/etc/cni/net.d/10-bridge.conflist"
    assert fp.snapshot(root) == before


@pytest.mark.parametrize(("node", "field"), [
    ({"cniBinDir": "/opt/../etc"}, "node.cniBinDir"),
    ({"cniConfDir": "etc/cni/net.d"}, "node.cniConfDir"),
    ({"cniConfDir": "/"}, "node.cniConfDir"),
    ({"configFiles": ["../../etc/passwd"]}, "node.configFiles[0]"),
    ({"binaries": ["multus", "/usr/bin/sudo"]}, "node.binaries[1]"),
    ({"binaries": ["mul*"]}, "node.binaries[0]"),
    ({"binTempFiles": ["*"]}, "node.binTempFiles[0]"),
    ({"socketDir": "/run"}, "node.socketDir"),
    ({"cacheDir": "/var/lib/cni/multus/../.."}, "node.cacheDir"),
    ({"multusConfDir": "/etc/cni"}, "node.multusConfDir"),
    ({"cacheDir": "/opt/multus", "cniBinDir": "/opt/multus/bin"}, "node.cacheDir"),
    ({"extraFiles": ["relative/file"]}, "node.extraFiles[0]"),
    ({"extraFiles": "/etc/x"}, "node.extraFiles"),
    ({"restoreRenamedPrimary": "yes"}, "node.restoreRenamedPrimary"),
    ({"cniBinDirr": "/opt/cni/bin"}, "node.cniBinDirr"),
    ({"passthruBinary": "../passthru"}, "node.passthruBinary"),
])
def test_bad_config_exits_2_naming_the_field_and_touches_nothing(root: Path, cleanup: Callable,
                                                                 node: dict[str, object], field: str) -> None:
    primary = fp.node_before_multus(root)
    fp.install_thin(root, primary)
    before = fp.snapshot(root, times=True)

    code, report, err = cleanup(root, config={"node": node})

    assert code == 2 and report == {}
    assert f"invalid configuration: {field}:" in err
    assert fp.snapshot(root, times=True) == before


@pytest.mark.parametrize(("text", "message"), [
    ("node: [1, 2]", "node: must be a mapping"),
    ("node: {cniConfDir: /x\n", "is not valid YAML"),
    ("nodes: {}", "nodes: unknown key"),
    ("- a list", "config: must be a mapping"),
])
def test_malformed_config_files(root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                text: str, message: str) -> None:
    from multus_cleanup.cli import main

    cfg = tmp_path / "bad.yaml"
    cfg.write_text(text)
    assert main(["node", "--host-root", str(root), "--config", str(cfg)]) == 2
    assert message in capsys.readouterr().err


def test_bad_usage_exits_2(root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from multus_cleanup.cli import main

    assert main(["node", "--host-root", str(tmp_path / "nope")]) == 2
    assert "--host-root:" in capsys.readouterr().err
    assert main(["node", "--host-root", str(root), "--config", str(tmp_path / "missing.yaml")]) == 2
    assert "--config: cannot read" in capsys.readouterr().err
    assert main(["node", "--host-root", str(root), "--backup-dir", "/etc/cni/net.d/backup"]) == 2
    assert "--backup-dir:" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["node", "--output", "xml"])
    assert exit_info.value.code == 2


def test_dry_run_touches_nothing_and_tells_what_it_would_do(root: Path, cleanup: Callable) -> None:
    primary = fp.node_before_multus(root)
    fp.install_thick(root, primary)
    fp.install_thin(root, primary, rename_conf_file=True)
    fp.interrupted_install(root)
    before = fp.snapshot(root, times=True)

    code, report, _ = cleanup(root, "--dry-run")

    assert code == 0 and report["dry_run"] is True and report["clean"] is False
    assert fp.snapshot(root, times=True) == before
    assert report["restored"] == [{"from": primary + ".old", "to": primary}]
    assert "/etc/cni/net.d/00-multus.conflist" in report["removed"]


def test_second_run_removes_nothing_and_exits_0(root: Path, cleanup: Callable) -> None:
    primary = fp.node_before_multus(root)
    fp.install_thick(root, primary)
    assert cleanup(root)[0] == 0
    code, report, _ = cleanup(root)
    assert (code, report["removed"], report["restored"], report["found"]) == (0, [], [], [])


def test_only_multus_config_on_the_node_is_not_clean_with_the_reason(root: Path, cleanup: Callable) -> None:
    primary = fp.node_before_multus(root)
    fp.install_thin(root, primary)
    Path(root / primary.lstrip("/")).unlink()  # the primary CNI was uninstalled too

    code, report, _ = cleanup(root)

    assert code == 1 and report["clean"] is False
    assert report["primary_config"] is None
    assert any("no CNI config in /etc/cni/net.d" in e for e in report["errors"])


def test_passthru_stays_while_a_remaining_config_uses_it(root: Path, cleanup: Callable) -> None:
    primary = fp.node_before_multus(root)
    fp.install_thin(root, primary)
    fp.write(root, "/etc/cni/net.d/20-sriov-passthru.conflist",
             json.dumps({"cniVersion": "1.0.0", "name": "x", "plugins": [{"type": "passthru"}]}))
    code, report, _ = cleanup(root)
    assert (code, report["clean"]) == (0, True)
    assert (root / "opt/cni/bin/passthru").exists()
    assert "/opt/cni/bin/passthru" not in report["removed"]


def test_plain_name_present_means_the_old_file_is_not_ours(root: Path, cleanup: Callable) -> None:
    primary = fp.node_before_multus(root)
    fp.write(root, primary + ".old", '{"cniVersion": "1.0.0", "name": "stale", "plugins": [{"type": "bridge"}]}')
    before = fp.snapshot(root)
    fp.install_thin(root, primary)
    code, report, _ = cleanup(root)
    assert (code, report["restored"]) == (0, [])
    assert fp.snapshot(root) == before


def test_old_file_without_multus_on_a_working_node_is_left_alone(root: Path, cleanup: Callable) -> None:
    fp.node_before_multus(root)
    fp.write(root, "/etc/cni/net.d/05-weave.conflist.old",
             '{"cniVersion": "1.0.0", "name": "w", "plugins": [{"type": "bridge"}]}')
    before = fp.snapshot(root)
    assert cleanup(root)[1]["restored"] == []
    assert fp.snapshot(root) == before


def test_several_renamed_configs_pick_multus_delegate_or_refuse(root: Path, cleanup: Callable) -> None:
    primary = fp.node_before_multus(root)
    decoy = '{"cniVersion": "1.0.0", "name": "decoy", "plugins": [{"type": "bridge"}]}'
    fp.write(root, "/etc/cni/net.d/05-decoy.conflist.old", decoy)
    fp.install_thin(root, primary, rename_conf_file=True)

    code, report, _ = cleanup(root)  # the Multus config's delegate identifies the real primary

    assert (code, report["restored"]) == (0, [{"from": primary + ".old", "to": primary}])
    assert (root / "etc/cni/net.d/05-decoy.conflist.old").read_text() == decoy

    root2 = root.parent / "host2"
    primary = fp.node_before_multus(root2)
    fp.write(root2, "/etc/cni/net.d/05-decoy.conflist.old", decoy)
    fp.install_thin(root2, primary, rename_conf_file=True)
    fp.graceful_exit(root2)  # no Multus config left to tell which one Multus renamed
    before = fp.snapshot(root2, times=True)
    code, report, _ = cleanup(root2)
    assert code == 1 and "several renamed primary configs" in report["errors"][0]
    assert fp.snapshot(root2, times=True) == before


def test_extra_files_are_removed_and_directories_refused(root: Path, cleanup: Callable) -> None:
    primary = fp.node_before_multus(root)
    fp.install_thin(root, primary)
    fp.write(root, "/var/log/multus.log", "log\n")
    code, report, _ = cleanup(root, config={"node": {"logFile": "/var/log/multus.log",
                                                     "extraFiles": ["/etc/cni/net.d/whereabouts.d/whereabouts.conf",
                                                                    "/not/there"]}})
    assert (code, report["clean"]) == (0, True)
    assert {"/var/log/multus.log", "/etc/cni/net.d/whereabouts.d/whereabouts.conf"} <= set(report["removed"])

    fp.install_thin(root, primary)
    before = fp.snapshot(root, times=True)
    code, report, _ = cleanup(root, config={"node": {"extraFiles": ["/etc/cni/net.d/whereabouts.d"]}})
    assert code == 1 and "is a directory" in report["errors"][0]
    assert fp.snapshot(root, times=True) == before


def test_backup_dir_keeps_everything_removed_for_rollback(root: Path, cleanup: Callable) -> None:
    primary = fp.node_before_multus(root)
    before = fp.snapshot(root)
    fp.install_thick(root, primary)
    fp.install_thin(root, primary)
    installed = fp.snapshot(root)

    code, report, _ = cleanup(root, "--backup-dir", "/var/backups/multus")

    assert (code, report["clean"]) == (0, True)
    backup = root / "var/backups/multus"
    saved = fp.snapshot(backup)
    for path, entry in installed.items():  # every file Multus had is in the backup, byte for byte
        if path not in before and entry[0] == "file":
            assert saved[path] == entry, path
    assert [m["from"] for m in report["backed_up"]] == report["removed"]
    assert all(m["to"] == "/var/backups/multus" + m["from"] for m in report["backed_up"])
    without_backup = {k: v for k, v in fp.snapshot(root).items() if not k.startswith("/var/backups")}
    assert without_backup == {k: v for k, v in before.items()}

    fp.install_thin(root, primary)  # a second uninstall keeps the first backup
    assert cleanup(root, "--backup-dir", "/var/backups/multus")[0] == 0
    assert (backup / "opt/cni/bin/multus.1").exists()
    first_backup = {k: v for k, v in fp.snapshot(backup).items() if not re.search(r"\.1(/|$)", k)}
    assert saved == first_backup


def test_backup_dir_that_is_a_file_is_refused_before_any_change(root: Path, cleanup: Callable) -> None:
    primary = fp.node_before_multus(root)
    fp.install_thin(root, primary)
    fp.write(root, "/var/backups", "not a dir")
    before = fp.snapshot(root, times=True)
    code, report, _ = cleanup(root, "--backup-dir", "/var/backups/multus")
    assert code == 1 and "is not a directory" in report["errors"][0]
    assert fp.snapshot(root, times=True) == before


def test_killed_at_any_step_never_worse_and_a_rerun_finishes(root: Path, cleanup: Callable,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Interrupt every filesystem change in turn (as a SIGKILL would): at each stop the node loads either
    a working Multus config or the primary with its plugins, and a re-run restores the pre-install tree."""
    from multus_cleanup.config import NodeConfig
    from multus_cleanup.node.hostfs import HostFS
    from multus_cleanup.node.verify import inspect

    class Killed(BaseException):
        pass

    real = {name: getattr(os, name) for name in ("unlink", "rmdir", "rename")}
    step = 0
    while True:
        host = root.parent / f"kill-{step}"
        primary = fp.node_before_multus(host)
        before = fp.snapshot(host)
        fp.install_thick(host, primary)
        fp.install_thin(host, primary, rename_conf_file=True)
        fp.interrupted_install(host)
        calls = 0

        def counting(name: str, stop_after: int = step) -> Callable[..., object]:
            def op(*args: object, **kwargs: object) -> object:
                nonlocal calls
                calls += 1
                if calls > stop_after:
                    raise Killed
                return real[name](*args, **kwargs)
            return op

        for name in real:
            monkeypatch.setattr(os, name, counting(name))
        try:
            cleanup(host)
            finished = True
        except Killed:
            finished = False
        finally:
            for name, fn in real.items():
                monkeypatch.setattr(os, name, fn)
        verdict = inspect(HostFS(host), NodeConfig())
        assert verdict.pod_error is None or verdict.pod_error.startswith("new pods go through Multus"), (
            step, verdict)
        code, report, _ = cleanup(host)
        assert (code, report["clean"]) == (0, True), (step, report)
        assert fp.snapshot(host) == before, step
        if finished:
            break
        step += 1
    assert step > 20  # every unlink/rmdir/rename of a full thick+thin footprint was a stop point


def test_mount_point_is_emptied_and_kept_then_harmless(root: Path, cleanup: Callable, needs_root: None) -> None:
    """In a cleanup pod /run/multus may be the hostPath mount itself: rmdir fails with EBUSY."""
    import subprocess
    import sys

    primary = fp.node_before_multus(root)
    fp.install_thick(root, primary)
    script = (
        "import json, sys, subprocess;"
        f"subprocess.run(['mount', '--bind', '{root}/run/multus', '{root}/run/multus'], check=True);"
        "from multus_cleanup.cli import main;"
        f"a = main(['node', '--host-root', '{root}', '--output', 'json']);"
        f"b = main(['node', '--host-root', '{root}', '--output', 'json']);"
        "sys.exit(a * 10 + b)"
    )
    result = subprocess.run(["unshare", "-m", "--propagation", "private", sys.executable, "-c", script],
                            capture_output=True, text=True, check=False)
    first, second = (json.loads(doc) for doc in result.stdout.replace("}\n{", "}\n\x00{").split("\x00"))
    assert result.returncode == 0, result.stderr
    assert first["clean"] is True and first["kept"] == [
        {"path": "/run/multus", "reason": "a mount point (e.g. the cleanup pod's hostPath volume): emptied; "
                                          "the empty directory stays"}]
    assert second["removed"] == [] and second["clean"] is True
