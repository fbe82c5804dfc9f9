"""Write what Multus v4.3.0 leaves on a node, file for file, into a throwaway host root.

The shapes follow the upstream sources of k8snetworkplumbingwg/multus-cni at tag v4.3.0 (read, not copied):
- thin: `cmd/thin_entrypoint/main.go` (the `multusConfTemplate` / `multusConflistTemplate` text, the
  conflist when the primary's cniVersion >= 1.0.0, mode 0600, the kubeconfig template in
  `multus.d/multus.kubeconfig` mode 0600, `--rename-conf-file` renaming the primary to `<name>.old`),
  `cmd/install_multus/main.go` (binaries `multus` or `multus-shim`, plus `passthru`);
- thick: `pkg/server/config/generator.go` and `manager.go` (`00-multus.conf` 0600, the JSON of `MultusConf`
  in struct field order, `type: multus-shim`, `clusterNetwork` = the primary's path as the daemon sees it),
  the daemon's socket `/run/multus/multus.sock` (dir 0700), with the values of the upstream
  `deployments/multus-daemonset-thick.yml` daemon config (cniVersion 0.3.1, logLevel verbose, logToStderr).

The binaries are small stand-in scripts, never the real Multus: the tests only need files that exist where
Multus puts them; the thick shim stand-in really dials the daemon socket so a stale socket fails for real.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

Flavor = Literal["thin", "thick"]

MULTUS_VERSION = "v4.3.0"
NETWORK_NAME = "multus-cni-network"
# Host paths as Multus writes them into its configs (the DaemonSets mount the host's dirs under /host).
KUBECONFIG_HOST_PATH = "/etc/cni/net.d/multus.d/multus.kubeconfig"
THIN_MULTUS_CNI_CONF_DIR = "/host/etc/cni/multus/net.d"
THICK_AUTOCONFIG_DIR = "/host/etc/cni/net.d"
FAKE_API_SERVER = "10.96.0.1"
FAKE_TOKEN = "sandbox-fake-serviceaccount-token-not-a-secret"  # noqa: S105 (fake, by design)
FAKE_CA = b"-----BEGIN CERTIFICATE-----\nsandbox fake CA, not a certificate\n-----END CERTIFICATE-----\n"
CACHED_CONTAINER_ID = "5c1b0d2f" * 8

_THIN_STAND_IN = """#!/bin/sh
# Stand-in for the Multus {version} "{name}" binary, written by demo/footprint.py: NOT Multus.
echo '{{"cniVersion":"0.3.1","code":999,"msg":"{name}: sandbox stand-in, not the real Multus binary"}}'
exit 1
"""

_SHIM_STAND_IN = """#!{python} -I
# Stand-in for the Multus {version} "multus-shim" binary, written by demo/footprint.py: NOT Multus.
# Like the real shim it sends every CNI request to the Multus daemon's unix socket (daemonSocketDir,
# default /run/multus/), so a stale socket left by a stopped daemon fails with the kernel's own error.
import json, socket, sys
conf = json.loads(sys.stdin.read() or "{{}}")
path = (conf.get("daemonSocketDir") or "/run/multus/").rstrip("/") + "/multus.sock"
try:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.connect(path)
    msg = "multus-shim stand-in: the Multus daemon answered at " + path + ", but this is a sandbox"
except OSError as e:
    msg = "multus-shim stand-in: dial unix " + path + ": connect: " + (e.strerror or str(e)).lower()
print(json.dumps({{"cniVersion": conf.get("cniVersion", "0.3.1"), "code": 999, "msg": msg}}))
sys.exit(1)
"""


@dataclass
class Footprint:
    """What `install_multus` wrote: every path (host-root relative, leading slash) and the config."""

    flavor: Flavor
    config: str
    binaries: list[str]
    paths: list[str] = field(default_factory=list)
    renamed: tuple[str, str] | None = None  # (primary, primary + ".old") with --rename-conf-file
    socket: str | None = None


def go_json(value: Any) -> str:
    """`json.Marshal` of a Go map: sorted keys, compact, HTML characters escaped, UTF-8 kept."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _version_at_least_1(version: str) -> bool:
    try:
        return int(version.split(".")[0]) >= 1
    except ValueError:
        return False


def _capabilities(primary: dict[str, Any]) -> dict[str, bool]:
    caps: dict[str, bool] = {}
    plugins = primary.get("plugins")
    for conf in plugins if isinstance(plugins, list) else [primary]:
        if isinstance(conf, dict) and isinstance(conf.get("capabilities"), dict):
            caps.update({k: bool(v) for k, v in conf["capabilities"].items()})
    return caps


def thin_config(primary: dict[str, Any]) -> tuple[str, str]:
    """(file name, content) of the thin entrypoint's generated config for this primary config."""
    version = str(primary["cniVersion"])
    caps = _capabilities(primary)
    optional = ""
    if caps:
        optional += f'\n        "capabilities": {go_json(caps)},'
    optional += f'\n        "cniConf": {json.dumps(THIN_MULTUS_CNI_CONF_DIR)},'
    if _version_at_least_1(version):
        text = (
            "{\n"
            f'    "cniVersion": "{version}",\n'
            f'    "name": "{NETWORK_NAME}",\n'
            '    "plugins": [ {\n'
            f'        "type": "multus",{optional}\n'
            f'        "kubeconfig": "{KUBECONFIG_HOST_PATH}",\n'
            '        "delegates": [\n'
            f"            {go_json(primary)}\n"
            "        ]\n"
            "    }]\n"
            "}\n"
        )
        return "00-multus.conflist", text
    text = (
        "{\n"
        f'        "cniVersion": "{version}",\n'
        f'        "name": "{NETWORK_NAME}",\n'
        f'        "type": "multus",{optional}\n'
        f'        "kubeconfig": "{KUBECONFIG_HOST_PATH}",\n'
        '        "delegates": [\n'
        f"                {go_json(primary)}\n"
        "        ]\n"
        "}\n"
    )
    return "00-multus.conf", text


def thick_config(primary: dict[str, Any], primary_name: str) -> str:
    """The daemon's `00-multus.conf`: `MultusConf` marshalled in struct field order, cleared fields omitted."""
    conf: dict[str, Any] = {}
    caps = _capabilities(primary)
    if caps:
        conf["capabilities"] = dict(sorted(caps.items()))
    conf.update({
        "cniVersion": "0.3.1",
        "logLevel": "verbose",
        "logToStderr": True,
        "name": NETWORK_NAME,
        "clusterNetwork": f"{THICK_AUTOCONFIG_DIR}/{primary_name}",
        "type": "multus-shim",
    })
    return json.dumps(conf, separators=(",", ":"), ensure_ascii=False)


def kubeconfig() -> str:
    ca = base64.b64encode(FAKE_CA).decode()
    return (
        "# Kubeconfig file for Multus CNI plugin.\n"
        "apiVersion: v1\n"
        "kind: Config\n"
        "clusters:\n"
        "- name: local\n"
        "  cluster:\n"
        f"    server: https://{FAKE_API_SERVER}:443\n"
        f"    certificate-authority-data: {ca}\n"
        "users:\n"
        "- name: multus\n"
        "  user:\n"
        f'    token: "{FAKE_TOKEN}"\n'
        "contexts:\n"
        "- name: multus-context\n"
        "  context:\n"
        "    cluster: local\n"
        "    user: multus\n"
        "current-context: multus-context\n"
    )


def _write(path: Path, text: str, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)


def primary_config_file(net_d: Path) -> Path:
    """The config the runtime would load now that is not Multus's: first `.conf`/`.conflist`/`.json`."""
    for entry in sorted(net_d.iterdir()):
        if entry.is_file() and entry.suffix in (".conf", ".conflist", ".json") \
                and not entry.name.startswith("00-multus"):
            return entry
    raise FileNotFoundError(f"no primary CNI config in {net_d}")


def make_stale_socket(path: Path) -> None:
    """A unix socket file nobody listens on any more: what a stopped thick daemon leaves behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.parent.chmod(0o700)
    cwd = Path.cwd()
    os.chdir(path.parent)  # bind a short relative name: unix socket paths are limited to 107 bytes
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.bind(path.name)
    finally:
        os.chdir(cwd)
    path.chmod(0o600)


def install_multus(host_root: Path, flavor: Flavor = "thin", *, rename_conf_file: bool = False) -> Footprint:
    """Install a Multus v4.3.0 footprint under `host_root` as its DaemonSet would on a running node."""
    net_d = host_root / "etc/cni/net.d"
    bin_dir = host_root / "opt/cni/bin"
    primary_path = primary_config_file(net_d)
    primary = json.loads(primary_path.read_text(encoding="utf-8"))
    binary = "multus" if flavor == "thin" else "multus-shim"
    fp = Footprint(flavor=flavor, config="", binaries=[binary, "passthru"])

    # init container install-multus-binary: the plugin binary and passthru
    for name in fp.binaries:
        if name == "multus-shim":
            body = _SHIM_STAND_IN.format(python=os.path.realpath(sys.executable), version=MULTUS_VERSION)
        else:
            body = _THIN_STAND_IN.format(name=name, version=MULTUS_VERSION)
        _write(bin_dir / name, body, 0o755)
        fp.paths.append(f"/opt/cni/bin/{name}")

    if flavor == "thin":
        kc = net_d / "multus.d/multus.kubeconfig"
        _write(kc, kubeconfig(), 0o600)
        kc.parent.chmod(0o755)
        name, text = thin_config(primary)
        _write(net_d / name, text, 0o600)
        fp.paths += ["/etc/cni/net.d/multus.d/multus.kubeconfig", f"/etc/cni/net.d/{name}"]
        fp.config = f"/etc/cni/net.d/{name}"
        if rename_conf_file:
            old = primary_path.with_name(primary_path.name + ".old")
            primary_path.rename(old)
            fp.renamed = (f"/etc/cni/net.d/{primary_path.name}", f"/etc/cni/net.d/{old.name}")
    else:
        if rename_conf_file:
            raise ValueError("--rename-conf-file is a thin-plugin option; the thick daemon has none")
        _write(net_d / "00-multus.conf", thick_config(primary, primary_path.name), 0o600)
        fp.config = "/etc/cni/net.d/00-multus.conf"
        fp.paths.append(fp.config)
        make_stale_socket(host_root / "run/multus/multus.sock")
        fp.socket = "/run/multus/multus.sock"
        fp.paths.append(fp.socket)

    # the per-pod cache of a pod whose CNI DEL never reached Multus
    _write(host_root / "var/lib/cni/multus" / CACHED_CONTAINER_ID, go_json([primary]), 0o644)
    fp.paths.append(f"/var/lib/cni/multus/{CACHED_CONTAINER_ID}")
    return fp


def remove_binaries(host_root: Path, fp: Footprint) -> list[str]:
    """What a naive uninstall does to the binaries: gone, while the config stays."""
    removed = []
    for name in fp.binaries:
        path = host_root / "opt/cni/bin" / name
        if path.exists():
            path.unlink()
            removed.append(f"/opt/cni/bin/{name}")
    return removed


def remove_config_only(host_root: Path, fp: Footprint) -> str:
    """The naive cleanup of a renamed-primary node: delete Multus's config file, nothing else."""
    (host_root / fp.config.lstrip("/")).unlink()
    return fp.config


def tree(host_root: Path, *dirs: str) -> list[str]:
    """`ls -lR`-like listing of some host dirs (for the demo): `mode path [-> target]`."""
    lines: list[str] = []
    for d in dirs:
        base = host_root / d.lstrip("/")
        if not base.exists():
            continue
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames.sort()
            for name in sorted(filenames):
                p = Path(dirpath) / name
                st = p.lstat()
                kind = "s" if p.is_socket() else "-"
                lines.append(f"{kind}{oct(st.st_mode & 0o777)[2:]:>4}  /{p.relative_to(host_root)}")
    return lines


def copy_plugins(bin_dir: Path, source: Path, names: tuple[str, ...]) -> None:
    bin_dir.mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copy2(source / name, bin_dir / name)
