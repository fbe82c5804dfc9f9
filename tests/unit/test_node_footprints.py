"""Every footprint Multus v4 leaves is removed, and the node's tree equals the tree before Multus, byte
for byte; the config the runtime then loads is the primary's."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

import footprints as fp


def test_thin_with_cni_0_3_1_primary_writes_and_loses_00_multus_conf(root: Path, cleanup: Callable) -> None:
    primary = fp.node_before_multus(root, primary="0.3.1")
    before = fp.snapshot(root)
    fp.install_thin(root, primary)
    assert (root / "etc/cni/net.d/00-multus.conf").exists()

    code, report, _ = cleanup(root)

    assert code == 0 and report["clean"] is True and report["errors"] == []
    assert fp.snapshot(root) == before
    assert report["primary_config"] == "/etc/cni/net.d/10-flannel.conf"
    assert report["removed"] == [
        "/etc/cni/net.d/00-multus.conf", "/etc/cni/net.d/multus.d", "/opt/cni/bin/multus",
        "/opt/cni/bin/passthru", "/var/lib/cni/multus",
    ]
    assert report["pod_error_before"].startswith("new pods go through Multus")


def test_thin_with_cni_1_0_0_primary_writes_and_loses_00_multus_conflist(root: Path, cleanup: Callable) -> None:
    primary = fp.node_before_multus(root, primary="1.0.0")
    before = fp.snapshot(root)
    fp.install_thin(root, primary)
    assert (root / "etc/cni/net.d/00-multus.conflist").exists()

    code, report, _ = cleanup(root)

    assert (code, report["clean"]) == (0, True)
    assert fp.snapshot(root) == before
    assert "/etc/cni/net.d/00-multus.conflist" in report["removed"]
    assert report["primary_config"] == "/etc/cni/net.d/10-bridge.conflist"


def test_thin_with_rename_conf_file_restores_the_primary_before_removing_multus(root: Path,
                                                                                  cleanup: Callable) -> None:
    primary = fp.node_before_multus(root)
    before = fp.snapshot(root)
    fp.install_thin(root, primary, rename_conf_file=True)
    assert not (root / "etc/cni/net.d/10-bridge.conflist").exists()

    code, report, _ = cleanup(root)

    assert (code, report["clean"]) == (0, True)
    assert report["restored"] == [{"from": "/etc/cni/net.d/10-bridge.conflist.old",
                                   "to": "/etc/cni/net.d/10-bridge.conflist"}]
    assert fp.snapshot(root) == before


def test_thin_after_graceful_exit_leaves_kubeconfig_and_binaries_which_go(root: Path, cleanup: Callable) -> None:
    primary = fp.node_before_multus(root)
    before = fp.snapshot(root)
    fp.install_thin(root, primary)
    fp.graceful_exit(root)

    code, report, _ = cleanup(root)

    assert (code, report["clean"]) == (0, True)
    assert report["pod_error_before"] is None  # the primary already loads; the rest is litter
    assert "/etc/cni/net.d/multus.d" in report["removed"]
    assert fp.snapshot(root) == before


def test_graceful_exit_with_renamed_primary_gets_its_network_back(root: Path, cleanup: Callable) -> None:
    """Multus removed its config on exit but the primary stays renamed: the node has no network at all."""
    primary = fp.node_before_multus(root)
    before = fp.snapshot(root)
    fp.install_thin(root, primary, rename_conf_file=True)
    fp.graceful_exit(root)

    code, report, _ = cleanup(root)

    assert report["pod_error_before"].startswith("no CNI config in /etc/cni/net.d")
    assert report["restored"] == [{"from": "/etc/cni/net.d/10-bridge.conflist.old",
                                   "to": "/etc/cni/net.d/10-bridge.conflist"}]
    assert (code, report["clean"], report["pod_error_after"]) == (0, True, None)
    assert fp.snapshot(root) == before


def test_thick_shim_stale_socket_and_cache(root: Path, cleanup: Callable) -> None:
    primary = fp.node_before_multus(root)
    before = fp.snapshot(root)
    fp.install_thick(root, primary)

    code, report, _ = cleanup(root)

    assert (code, report["clean"]) == (0, True)
    assert report["pod_error_before"].endswith("dial unix /run/multus/multus.sock: connect: connection refused")
    assert {"/opt/cni/bin/multus-shim", "/run/multus", "/var/lib/cni/multus"} <= set(report["removed"])
    assert fp.snapshot(root) == before


def test_thick_daemon_gone_without_socket_names_the_missing_socket(root: Path, cleanup: Callable) -> None:
    primary = fp.node_before_multus(root)
    fp.install_thick(root, primary)
    (root / "run/multus/multus.sock").unlink()
    code, report, _ = cleanup(root, "--dry-run")
    assert code == 0 and report["clean"] is False
    assert "multus.sock: connect: no such file or directory" in report["pod_error_before"]


def test_interrupted_install_temp_files_are_removed(root: Path, cleanup: Callable) -> None:
    primary = fp.node_before_multus(root)
    before = fp.snapshot(root)
    fp.install_thin(root, primary)
    fp.interrupted_install(root)

    code, report, _ = cleanup(root)

    assert (code, report["clean"]) == (0, True)
    assert {"/opt/cni/bin/multus.temp4711", "/opt/cni/bin/passthru.temp", "/opt/cni/bin/_multus-shim",
            "/etc/cni/net.d/00-multus.conf.new"} <= set(report["removed"])
    assert fp.snapshot(root) == before


def test_interrupted_first_install_only_temp_files(root: Path, cleanup: Callable) -> None:
    primary = fp.node_before_multus(root)
    before = fp.snapshot(root)
    fp.interrupted_install(root)
    code, report, _ = cleanup(root)
    assert (code, report["clean"]) == (0, True)
    assert fp.snapshot(root) == before
    assert primary == report["primary_config"]


def test_binary_gone_config_left_is_the_seed_failure_and_is_fixed(root: Path, cleanup: Callable) -> None:
    primary = fp.node_before_multus(root)
    before = fp.snapshot(root)
    fp.install_thin(root, primary)
    (root / "opt/cni/bin/multus").unlink()  # a naive uninstall removed the binary only

    code, report, _ = cleanup(root)

    assert report["pod_error_before"] == 'failed to find plugin "multus" in path [/opt/cni/bin]'
    assert (code, report["clean"]) == (0, True)
    assert fp.snapshot(root) == before


def test_kubeconfig_gone_is_diagnosed(root: Path, cleanup: Callable) -> None:
    primary = fp.node_before_multus(root)
    fp.install_thin(root, primary)
    (root / "etc/cni/net.d/multus.d/multus.kubeconfig").unlink()
    _, report, _ = cleanup(root, "--dry-run")
    assert report["pod_error_before"] == (
        "failed to get context for the kubeconfig /etc/cni/net.d/multus.d/multus.kubeconfig")


@pytest.mark.parametrize("layout", [fp.K3S, fp.OPENSHIFT, fp.GKE], ids=lambda lay: lay.name)
@pytest.mark.parametrize("flavour", ["thin", "thick"])
def test_non_default_layouts(root: Path, cleanup: Callable, layout: fp.Layout, flavour: str) -> None:
    primary = fp.node_before_multus(root, layout)
    before = fp.snapshot(root)
    if flavour == "thin":
        fp.install_thin(root, primary, layout, rename_conf_file=True)
    else:
        fp.install_thick(root, primary, layout)
    fp.interrupted_install(root, layout)

    code, report, _ = cleanup(root, config={"node": layout.node_config()})

    assert (code, report["clean"]) == (0, True), report
    assert report["primary_config"] == primary
    assert fp.snapshot(root) == before


def test_default_config_on_a_k3s_node_touches_nothing_of_k3s(root: Path, cleanup: Callable) -> None:
    """Paths come from config only: the defaults never reach into a non-default layout."""
    primary = fp.node_before_multus(root, fp.K3S)
    fp.install_thin(root, primary, fp.K3S)
    rancher = fp.snapshot(root / "var/lib/rancher")
    code, report, _ = cleanup(root)
    assert code == 1 and report["clean"] is False
    assert report["removed"] == ["/var/lib/cni/multus"]  # the cache path is the same on k3s
    assert fp.snapshot(root / "var/lib/rancher") == rancher
    assert report["pod_error_after"].startswith("no CNI config in /etc/cni/net.d")


def test_a_multus_config_cilium_renamed_aside_is_removed_and_cilium_s_other_backups_stay(
        root: Path, cleanup: Callable) -> None:
    """Cilium (cni.exclusive) renames other configs to *.cilium_bak and back when it goes: Multus's must not
    come back after Multus is gone; a backup of the primary's is not ours to touch."""
    primary = fp.node_before_multus(root)
    net_d = root / "etc/cni/net.d"
    (net_d / "10-bridge.conflist.cilium_bak").write_bytes((net_d / "10-bridge.conflist").read_bytes())
    before = fp.snapshot(root)
    fp.install_thin(root, primary)
    (net_d / "00-multus.conflist").rename(net_d / "00-multus.conflist.cilium_bak")

    code, report, _ = cleanup(root)

    assert (code, report["clean"]) == (0, True)
    assert "/etc/cni/net.d/00-multus.conflist.cilium_bak" in report["removed"]
    assert fp.snapshot(root) == before
