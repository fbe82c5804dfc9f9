"""End-to-end proof on a real container runtime: containerd + runc + the real CNI plugins start pods.

Every scenario runs on a fresh throwaway node (demo/sandbox.py): the pod outcomes below are containerd's
own messages (`ctr run --cni`), and the cleanup is the installed `multus-cleanup` console script, run as a
subprocess against the node's host root. One containerd serves the whole module, in a private mount + network
namespace; the machine's own CNI dirs are checked to be untouched.

Needs root and the Debian packages in demo.sandbox.APT_PACKAGES. Anything missing FAILS (never skips).
"""

from __future__ import annotations

import ipaddress
import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from demo import footprint  # noqa: E402
from demo.sandbox import (  # noqa: E402
    APT_INSTALL,
    Node,
    PodResult,
    PrimaryKind,
    Sandbox,
    SandboxError,
    missing_prerequisites,
    primary_config,
    snapshot,
)

pytestmark = [pytest.mark.runtime, pytest.mark.root]

ENGINE = Path(sys.executable).parent / "multus-cleanup"
POD_NET = ipaddress.ip_network("10.88.0.0/16")
Runtime = Sandbox | str  # the module's sandbox, or why it could not start
PRIMARY = {"conflist": "/etc/cni/net.d/10-bridge.conflist", "conf": "/etc/cni/net.d/10-bridge.conf"}


def _prerequisite_problems() -> list[str]:
    problems = missing_prerequisites()
    if not ENGINE.is_file():
        problems.append(f"the multus-cleanup console script is not installed next to {sys.executable} "
                        "(pip install -e . in this venv)")
    return problems


@pytest.fixture(scope="module")
def real_before() -> dict[str, Any]:
    return snapshot()


@pytest.fixture(scope="module")
def runtime(real_before: dict[str, Any]) -> Iterator[Runtime]:
    """One sandbox for the module, or why there is none (each test then FAILS with that message)."""
    problems = _prerequisite_problems()
    if problems:
        yield ("the real-runtime tests cannot run:\n  - " + "\n  - ".join(problems)
               + f"\n(as root: apt-get update && {APT_INSTALL})")
        return
    sandbox = Sandbox()
    try:
        sandbox.start()
    except SandboxError as exc:
        yield f"the throwaway node did not start: {exc}"
        return
    try:
        yield sandbox
    finally:
        sandbox.close()


def need(runtime: Runtime) -> Sandbox:
    if isinstance(runtime, str):
        pytest.fail(runtime, pytrace=False)
    return runtime


def pod(sb: Sandbox, what: str) -> PodResult:
    result = sb.run_pod()
    print(f"[{what}] {result.describe()}")
    assert sb.leftovers() == [], "a pod run left a task or container behind"
    return result


def assert_pod_runs(sb: Sandbox, what: str) -> PodResult:
    result = pod(sb, what)
    assert result.ok, f"{what}: the runtime could not start a pod: {result.error}"
    assert result.ip is not None
    assert ipaddress.ip_interface(result.ip).ip in POD_NET, result.stdout
    return result


def assert_pod_fails(sb: Sandbox, what: str, *expected: str) -> PodResult:
    result = pod(sb, what)
    assert not result.ok, f"{what}: a pod started, but it must not: {result.stdout}"
    for text in expected:
        assert text in result.error, f"{what}: runtime said {result.error!r}, expected {text!r} in it"
    return result


def renamed_primary_multus_binary_gone(runtime: Runtime) -> tuple[Sandbox, Node]:
    """A node where thin Multus ran with --rename-conf-file and a naive uninstall took only its binary:
    its config is left, the primary is renamed to .old, and new pods fail."""
    sb = need(runtime)
    node = sb.new_node(primary="conflist")
    fp = node.install_multus("thin", rename_conf_file=True)
    footprint.remove_binaries(node.root, fp)
    assert_pod_fails(sb, "renamed primary, thin config left, binary gone", 'failed to find plugin "multus"')
    return sb, node


def run_engine(node: Node, *extra: str) -> tuple[int, dict[str, Any]]:
    """The real console script, as a node's cleanup pod runs it; returns (exit code, JSON report)."""
    cmd = [str(ENGINE), "node", "--host-root", str(node.root), "--output", "json", "--node-name", node.name,
           *extra]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    print(f"[multus-cleanup node{' ' + ' '.join(extra) if extra else ''}] exit {r.returncode}\n{r.stdout}"
          f"{r.stderr}")
    try:
        report: dict[str, Any] = json.loads(r.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"multus-cleanup printed no JSON report (exit {r.returncode}):\n{r.stdout}\n{r.stderr}")
    return r.returncode, report


def assert_clean(node: Node, code: int, report: dict[str, Any], primary: str) -> None:
    assert code == 0, f"multus-cleanup exit {code}: {report.get('errors')}"
    assert report["clean"] is True
    assert report["errors"] == []
    assert report["primary_config"] == primary
    for name in ("etc/cni/net.d/00-multus.conf", "etc/cni/net.d/00-multus.conflist", "etc/cni/net.d/multus.d",
                 "opt/cni/bin/multus", "opt/cni/bin/multus-shim", "opt/cni/bin/passthru", "run/multus",
                 "var/lib/cni/multus"):
        assert not (node.root / name).exists(), f"/{name} is still on the node"
    assert (node.root / primary.lstrip("/")).is_file()


@pytest.mark.parametrize("primary", ["conflist", "conf"])
def test_footprint_has_multus_v4_3_0_shapes(tmp_path: Path, primary: PrimaryKind) -> None:
    """The files the scenarios use are shaped as Multus v4.3.0 writes them (thin_entrypoint, generator.go)."""
    name, conf = primary_config(primary)
    (tmp_path / "etc/cni/net.d").mkdir(parents=True)
    (tmp_path / "etc/cni/net.d" / name).write_text(json.dumps(conf))
    fp = footprint.install_multus(tmp_path, "thin", rename_conf_file=True)
    multus = json.loads((tmp_path / fp.config.lstrip("/")).read_text())
    plugin = multus["plugins"][0] if primary == "conflist" else multus
    assert multus["cniVersion"] == conf["cniVersion"] and multus["name"] == "multus-cni-network"
    assert plugin["type"] == "multus"
    assert plugin["kubeconfig"] == "/etc/cni/net.d/multus.d/multus.kubeconfig"
    assert plugin["delegates"] == [conf]
    assert (tmp_path / fp.config.lstrip("/")).stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "etc/cni/net.d/multus.d/multus.kubeconfig").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "etc/cni/net.d" / (name + ".old")).is_file()
    assert not (tmp_path / "etc/cni/net.d" / name).exists()
    assert sorted(p.name for p in (tmp_path / "opt/cni/bin").iterdir()) == ["multus", "passthru"]

    thick_root = tmp_path / "thick"
    (thick_root / "etc/cni/net.d").mkdir(parents=True)
    (thick_root / "etc/cni/net.d" / name).write_text(json.dumps(conf))
    fp = footprint.install_multus(thick_root, "thick")
    assert fp.config == "/etc/cni/net.d/00-multus.conf"  # thick: always .conf, cniVersion 0.3.1
    assert json.loads((thick_root / "etc/cni/net.d/00-multus.conf").read_text()) == {
        "cniVersion": "0.3.1", "logLevel": "verbose", "logToStderr": True, "name": "multus-cni-network",
        "clusterNetwork": f"/host/etc/cni/net.d/{name}", "type": "multus-shim"}
    assert (thick_root / "run/multus").stat().st_mode & 0o777 == 0o700
    assert (thick_root / "run/multus/multus.sock").is_socket()
    assert sorted(p.name for p in (thick_root / "opt/cni/bin").iterdir()) == ["multus-shim", "passthru"]


def test_prerequisites() -> None:
    problems = _prerequisite_problems()
    assert not problems, "missing: " + "; ".join(problems) + f" (as root: apt-get update && {APT_INSTALL})"


@pytest.mark.parametrize("primary", ["conflist", "conf"])
def test_a_pod_gets_an_address_from_the_primary_cni(runtime: Runtime, primary: PrimaryKind) -> None:
    sb = need(runtime)
    sb.new_node(primary=primary)
    assert_pod_runs(sb, f"primary {primary} only")


@pytest.mark.parametrize(("primary", "multus_config"), [("conflist", "00-multus.conflist"),
                                                        ("conf", "00-multus.conf")])
def test_bc_thin_config_left_binary_gone_then_cleanup(
    runtime: Runtime, primary: PrimaryKind, multus_config: str
) -> None:
    sb = need(runtime)
    node = sb.new_node(primary=primary)
    assert_pod_runs(sb, "before Multus")
    fp = node.install_multus("thin")
    assert fp.config == f"/etc/cni/net.d/{multus_config}"  # v4.3.0: conflist for a CNI >= 1.0.0 primary
    footprint.remove_binaries(node.root, fp)  # the naive uninstall: binary gone, config left
    assert_pod_fails(sb, "thin config left, binary gone", 'plugin type="multus"', 'failed to find plugin "multus"')

    code, report = run_engine(node)
    assert_clean(node, code, report, PRIMARY[primary])
    assert fp.config in report["removed"]
    assert_pod_runs(sb, "after multus-cleanup node")

    code, report = run_engine(node)  # a second run (a restarted cleanup pod) finds nothing and stays clean
    assert_clean(node, code, report, PRIMARY[primary])
    assert report["removed"] == [] and report["restored"] == []
    assert_pod_runs(sb, "after a second multus-cleanup node")


@pytest.mark.parametrize("primary", ["conflist", "conf"])
def test_d_rename_conf_file_naive_cleanup_leaves_no_network_engine_restores(
    runtime: Runtime, primary: PrimaryKind
) -> None:
    sb = need(runtime)
    node = sb.new_node(primary=primary)
    fp = node.install_multus("thin", rename_conf_file=True)
    assert fp.renamed == (PRIMARY[primary], PRIMARY[primary] + ".old")
    assert not node.path(PRIMARY[primary]).exists()
    footprint.remove_config_only(node.root, fp)  # the naive cleanup: only Multus's own config file
    assert_pod_fails(sb, "naive cleanup after --rename-conf-file", "no network config found in /etc/cni/net.d")

    code, report = run_engine(node)
    assert_clean(node, code, report, PRIMARY[primary])
    assert {"from": PRIMARY[primary] + ".old", "to": PRIMARY[primary]} in report["restored"]
    assert_pod_runs(sb, "after multus-cleanup node restored the primary")


def test_d_rename_conf_file_engine_on_the_untouched_footprint(runtime: Runtime) -> None:
    sb, node = renamed_primary_multus_binary_gone(runtime)
    code, report = run_engine(node)
    assert_clean(node, code, report, PRIMARY["conflist"])
    assert {"from": PRIMARY["conflist"] + ".old", "to": PRIMARY["conflist"]} in report["restored"]
    assert_pod_runs(sb, "after multus-cleanup node")


def test_e_thick_stale_socket_then_cleanup(runtime: Runtime) -> None:
    sb = need(runtime)
    node = sb.new_node(primary="conflist")
    fp = node.install_multus("thick")
    sock_path = node.path("/run/multus/multus.sock")
    assert sock_path.is_socket()
    with socket.socket(socket.AF_UNIX) as s, pytest.raises(ConnectionRefusedError):
        s.connect(str(sock_path))  # stale: the daemon is gone
    assert json.loads(node.path(fp.config).read_text())["type"] == "multus-shim"
    assert_pod_fails(sb, "thick: shim config + stale socket", 'plugin type="multus-shim"',
                     "dial unix /run/multus/multus.sock: connect: connection refused")

    code, report = run_engine(node)
    assert_clean(node, code, report, PRIMARY["conflist"])
    assert "/run/multus" in report["removed"]
    assert_pod_runs(sb, "after multus-cleanup node")


def test_backup_dir_keeps_multus_files_out_of_the_runtimes_way(runtime: Runtime) -> None:
    sb, node = renamed_primary_multus_binary_gone(runtime)
    code, report = run_engine(node, "--backup-dir", "/var/backups/multus")
    assert_clean(node, code, report, PRIMARY["conflist"])
    assert report["backed_up"], "nothing was moved into the backup dir"
    assert any(p.is_file() for p in node.path("/var/backups/multus").rglob("*"))
    assert_pod_runs(sb, "after multus-cleanup node --backup-dir")


def test_dry_run_changes_nothing_and_pods_still_fail(runtime: Runtime) -> None:
    sb = need(runtime)
    node = sb.new_node(primary="conflist")
    fp = node.install_multus("thin")
    footprint.remove_binaries(node.root, fp)
    before = node.listing()
    code, report = run_engine(node, "--dry-run")
    assert code in (0, 1)
    assert report["dry_run"] is True
    assert node.listing() == before
    assert_pod_fails(sb, "after --dry-run", 'failed to find plugin "multus"')


def test_z_real_cni_dirs_untouched_and_sandbox_gone(runtime: Runtime, real_before: dict[str, Any]) -> None:
    sb = need(runtime)
    assert snapshot() == real_before, "the machine's own CNI dirs changed while the sandbox ran"
    tmp, pid = sb.tmp, sb.containerd_pid
    assert tmp is not None and pid is not None
    sb.close()
    assert not tmp.exists(), f"{tmp} was not removed"
    assert not Path(f"/proc/{pid}").exists(), f"containerd (PID {pid}) still runs"
    assert snapshot() == real_before, "the machine's own CNI dirs changed"
