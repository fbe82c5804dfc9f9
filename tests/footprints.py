"""Node trees for tests: a node before Multus, and the footprints Multus v4.3.0 leaves on it, in any layout.

The files' content comes from `demo.footprint`, the one rendition of what Multus v4.3.0 writes (thin's
`00-multus.conf` for a primary cniVersion < 1.0.0 or `00-multus.conflist` >= 1.0.0 with the primary as its
delegate; thick's `multus-shim` config; the kubeconfig; a stale daemon socket). This module places them
for a platform layout (default, k3s, OpenShift, GKE) and adds the states a node goes through (graceful
exit, interrupted install). `snapshot()` captures a tree byte for byte so a test can assert it equals the
pre-install tree.
"""

from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from demo import footprint as multus_v4

EXECUTABLE = b"#!/bin/sh\n# stand-in CNI plugin binary\nexit 0\n"
KUBECONFIG = multus_v4.kubeconfig().encode()

PRIMARY_1_0_0: dict[str, Any] = {
    "cniVersion": "1.0.0", "name": "k8s-pod-network",
    "plugins": [{"type": "bridge", "bridge": "cni0", "isGateway": True, "ipMasq": True,
                 "ipam": {"type": "host-local", "subnet": "10.88.0.0/16"}},
                {"type": "portmap", "capabilities": {"portMappings": True}}],
}
PRIMARY_0_3_1: dict[str, Any] = {"cniVersion": "0.3.1", "name": "cbr0", "type": "bridge", "bridge": "cni0",
                 "ipam": {"type": "host-local", "subnet": "10.244.0.0/16"}}


@dataclass(frozen=True)
class Layout:
    """Where a platform keeps CNI files (host paths), and the matching `node:` config section."""

    name: str
    conf_dir: str = "/etc/cni/net.d"
    bin_dir: str = "/opt/cni/bin"
    socket_dir: str = "/run/multus"
    cache_dir: str = "/var/lib/cni/multus"

    def node_config(self) -> dict[str, object]:
        return {"cniConfDir": self.conf_dir, "cniBinDir": self.bin_dir,
                "socketDir": self.socket_dir, "cacheDir": self.cache_dir}


DEFAULT = Layout("default")
K3S = Layout("k3s", conf_dir="/var/lib/rancher/k3s/agent/etc/cni/net.d",
             bin_dir="/var/lib/rancher/k3s/data/current/bin")
OPENSHIFT = Layout("openshift", conf_dir="/etc/kubernetes/cni/net.d", bin_dir="/var/lib/cni/bin")
GKE = Layout("gke", bin_dir="/home/kubernetes/bin")


def _p(root: Path, host_path: str) -> Path:
    return root / host_path.lstrip("/")


def write(root: Path, host_path: str, data: bytes | str, mode: int = 0o644) -> Path:
    path = _p(root, host_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    path.chmod(mode)
    return path


def node_before_multus(root: Path, layout: Layout = DEFAULT, primary: str = "1.0.0") -> str:
    """A node with a primary CNI and neighbours that are not Multus's. Returns the primary's host path."""
    if primary == "1.0.0":
        primary_path, primary_conf = f"{layout.conf_dir}/10-bridge.conflist", PRIMARY_1_0_0
    else:
        primary_path, primary_conf = f"{layout.conf_dir}/10-flannel.conf", PRIMARY_0_3_1
    write(root, primary_path, json.dumps(primary_conf, indent=2))
    # Neighbours that must survive: another CNI's files, whereabouts, an unknown file, a disabled config.
    write(root, f"{layout.conf_dir}/calico-kubeconfig", "calico: kubeconfig\n", 0o600)
    write(root, f"{layout.conf_dir}/whereabouts.d/whereabouts.conf", '{"datastore": "kubernetes"}\n')
    write(root, f"{layout.conf_dir}/99-loopback.conf.disabled", '{"type": "loopback"}\n')
    write(root, f"{layout.conf_dir}/README", "notes of the admin\n")
    for plugin in ("bridge", "host-local", "loopback", "portmap", "whereabouts", "multus-helper-not-ours"):
        write(root, f"{layout.bin_dir}/{plugin}", EXECUTABLE, 0o755)
    write(root, "/var/lib/cni/networks/cbr0/10.88.0.2", "containerid\n")
    write(root, "/run/flannel/subnet.env", "FLANNEL_SUBNET=10.244.1.1/24\n")
    _p(root, "/var/log").mkdir(parents=True, exist_ok=True)
    return primary_path


def _multus_conf(root: Path, layout: Layout, primary_path: str, thick: bool) -> tuple[str, str]:
    """(host path, content) of the config Multus v4.3.0 generates for this primary config."""
    primary = json.loads(_p(root, primary_path).read_text())
    if thick:
        return f"{layout.conf_dir}/00-multus.conf", multus_v4.thick_config(primary, Path(primary_path).name)
    name, text = multus_v4.thin_config(primary)
    return f"{layout.conf_dir}/{name}", text


def install_thin(root: Path, primary_path: str, layout: Layout = DEFAULT, *, rename_conf_file: bool = False,
                 pods: int = 2) -> None:
    conf_path, conf = _multus_conf(root, layout, primary_path, thick=False)
    for binary in ("multus", "passthru"):
        write(root, f"{layout.bin_dir}/{binary}", EXECUTABLE, 0o755)
    write(root, f"{layout.conf_dir}/multus.d/multus.kubeconfig", KUBECONFIG, 0o600)
    write(root, conf_path, conf, 0o600)
    if rename_conf_file:
        _p(root, primary_path).rename(_p(root, primary_path + ".old"))
    _pod_cache(root, layout, pods)


def install_thick(root: Path, primary_path: str, layout: Layout = DEFAULT, pods: int = 2) -> None:
    conf_path, conf = _multus_conf(root, layout, primary_path, thick=True)
    for binary in ("multus-shim", "passthru"):
        write(root, f"{layout.bin_dir}/{binary}", EXECUTABLE, 0o755)
    multus_v4.make_stale_socket(_p(root, layout.socket_dir) / "multus.sock")
    write(root, conf_path, conf, 0o600)
    _pod_cache(root, layout, pods)


def graceful_exit(root: Path, layout: Layout = DEFAULT) -> None:
    """What thin with --cleanup-config-on-exit leaves: its config gone, kubeconfig and binaries left."""
    for name in ("00-multus.conf", "00-multus.conflist"):
        _p(root, f"{layout.conf_dir}/{name}").unlink(missing_ok=True)


def interrupted_install(root: Path, layout: Layout = DEFAULT) -> None:
    """Temp files of atomic copies killed mid-write."""
    write(root, f"{layout.bin_dir}/multus.temp4711", EXECUTABLE[:10], 0o755)
    write(root, f"{layout.bin_dir}/passthru.temp", EXECUTABLE[:5], 0o755)
    write(root, f"{layout.bin_dir}/_multus-shim", EXECUTABLE, 0o755)
    write(root, f"{layout.conf_dir}/00-multus.conf.new", '{"cniVersion": "0.3', 0o600)
    write(root, f"{layout.conf_dir}/multus.d/multus.kubeconfig.new", KUBECONFIG[:20], 0o600)


def _pod_cache(root: Path, layout: Layout, pods: int) -> None:
    for i in range(pods):
        cid = f"{i:064x}"
        write(root, f"{layout.cache_dir}/{cid}", json.dumps({"delegates": []}), 0o600)
        write(root, f"{layout.cache_dir}/results/multus-cni-network-{cid}-eth0", "{}", 0o600)


Snapshot = dict[str, tuple[object, ...]]


def snapshot(root: Path, *, times: bool = False) -> Snapshot:
    """Every entry under root: type, mode, bytes or link target (and mtimes if asked), byte for byte."""
    tree: Snapshot = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in sorted(dirnames + filenames):
            path = Path(dirpath) / name
            st = path.lstat()
            key = "/" + str(path.relative_to(root))
            extra: tuple[object, ...] = (st.st_mtime_ns,) if times else ()
            if stat.S_ISLNK(st.st_mode):
                tree[key] = ("link", os.readlink(path), *extra)
            elif stat.S_ISREG(st.st_mode):
                tree[key] = ("file", stat.S_IMODE(st.st_mode), path.read_bytes(), *extra)
            else:
                tree[key] = (stat.filemode(st.st_mode), stat.S_IMODE(st.st_mode), *extra)
    return tree
