"""A throwaway node: real containerd + runc + CNI plugins, isolated from the machine's own CNI setup.

How it works (needs root and the Debian packages in `APT_PACKAGES`):
- a temp dir holds everything: containerd's root/state/socket, a busybox OCI image, and one "host root"
  per throwaway node (`<tmp>/nodes/<name>/etc/cni/net.d`, `/opt/cni/bin`, `/var/lib/cni`, `/run/multus`),
  ordinary directories that `multus-cleanup node --host-root <tmp>/nodes/<name>` works on from outside;
- a small driver (`demo/nsdriver.py`) runs under `unshare -m -n --propagation private`: in that
  private mount + network namespace it brings `lo` up, shadows `/run` and any missing parent of the CNI dirs
  with an overlay whose writable layer is a namespace-private tmpfs (so nothing is ever created on the real
  filesystem), hides `/usr/lib/cni`, and starts `containerd`;
- the active node's dirs are bind-mounted over `/etc/cni/net.d`, `/opt/cni/bin`, `/var/lib/cni` and
  `/run/multus` inside the namespace only, and `ctr run --rm --cni` (entered with `nsenter`) starts pods
  exactly like a CRI runtime: first config in `/etc/cni/net.d`, plugins from `/opt/cni/bin`;
- the driver keeps running until its stdin closes; then it stops containerd by PID, kills what is left in
  its mount namespace by PID, and lazily unmounts. The sandbox removes the temp dir.
The machine's real `/etc/cni`, `/opt/cni`, `/var/lib/cni`, `/run/multus` are never touched.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import platform
import re
import select
import shutil
import struct
import subprocess
import sys
import tarfile
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from . import footprint

APT_PACKAGES = ("containerd", "runc", "containernetworking-plugins", "busybox-static", "iproute2")
APT_INSTALL = "apt-get install -y --no-install-recommends " + " ".join(APT_PACKAGES)

# command -> Debian package providing it
REQUIRED_COMMANDS = {
    "containerd": "containerd", "ctr": "containerd", "containerd-shim-runc-v2": "containerd",
    "runc": "runc", "unshare": "util-linux", "nsenter": "util-linux", "mount": "mount", "umount": "mount",
    "ip": "iproute2",
}
SYSTEM_CNI_DIR = Path("/usr/lib/cni")
PLUGINS = ("bridge", "host-local", "loopback")
REQUIRED_FILES = {str(SYSTEM_CNI_DIR / p): "containernetworking-plugins" for p in PLUGINS}

# The machine's own CNI locations: the sandbox must leave them exactly as they were.
REAL_CNI_PATHS = ("/etc/cni", "/opt/cni", "/var/lib/cni", "/run/multus", "/usr/lib/cni")
# Mount targets inside the namespace, bound from the active node's host root.
NODE_DIRS = ("etc/cni/net.d", "opt/cni/bin", "var/lib/cni", "run/multus")

IMAGE_REF = "localhost/multus-sandbox/busybox:1"
CTR_NAMESPACE = "multus-sandbox"
POD_COMMAND = ("sh", "-c", "ip -o -4 addr show dev eth0")
BUSYBOX_APPLETS = ("sh", "ip", "ifconfig", "cat", "ls", "echo", "sleep", "hostname", "true", "route")

PrimaryKind = Literal["conflist", "conf"]


class SandboxError(RuntimeError):
    """The sandbox could not be set up or used (not a pod failure: those are results)."""


# ---------------------------------------------------------------------------------------------------------
# prerequisites


def _elf_interpreter(path: Path) -> str | None:
    """The ELF program interpreter (PT_INTERP) of `path`, None for a static binary."""
    data = path.read_bytes()
    if data[:4] != b"\x7fELF" or data[4] != 2:  # 64-bit only; busybox-static on amd64/arm64
        return "not a 64-bit ELF"
    endian = "<" if data[5] == 1 else ">"
    phoff = struct.unpack_from(endian + "Q", data, 0x20)[0]
    phentsize, phnum = struct.unpack_from(endian + "HH", data, 0x36)
    for i in range(phnum):
        off = phoff + i * phentsize
        p_type = struct.unpack_from(endian + "I", data, off)[0]
        if p_type == 3:  # PT_INTERP
            p_offset, _, _, p_filesz = struct.unpack_from(endian + "QQQQ", data, off + 8)
            return data[p_offset:p_offset + p_filesz].rstrip(b"\0").decode(errors="replace")
    return None


def find_static_busybox() -> Path | None:
    for candidate in ("/bin/busybox", "/usr/bin/busybox", shutil.which("busybox") or ""):
        if candidate and Path(candidate).is_file() and _elf_interpreter(Path(candidate)) is None:
            return Path(candidate)
    return None


def missing_prerequisites() -> list[str]:
    """Everything the sandbox needs and does not find, one line each ([] when all is there)."""
    problems: list[str] = []
    if os.geteuid() != 0:
        problems.append(f"must run as root (euid is {os.geteuid()}): mount/network namespaces, containerd")
    for cmd, pkg in REQUIRED_COMMANDS.items():
        if shutil.which(cmd) is None:
            problems.append(f"command {cmd!r} not found (Debian package {pkg})")
    for path, pkg in REQUIRED_FILES.items():
        if not os.access(path, os.X_OK):
            problems.append(f"{path} not found (Debian package {pkg})")
    if find_static_busybox() is None:
        problems.append("no statically linked /bin/busybox (Debian package busybox-static)")
    return problems


def missing_packages() -> list[str]:
    """The Debian packages to install so that `missing_prerequisites` has nothing left to say but root."""
    pkgs = {pkg for cmd, pkg in REQUIRED_COMMANDS.items() if shutil.which(cmd) is None}
    pkgs |= {pkg for path, pkg in REQUIRED_FILES.items() if not os.access(path, os.X_OK)}
    if find_static_busybox() is None:
        pkgs.add("busybox-static")
    return sorted(pkgs)


def require_prerequisites() -> None:
    problems = missing_prerequisites()
    if problems:
        raise SandboxError(
            "the throwaway node cannot start:\n  - " + "\n  - ".join(problems)
            + f"\ninstall as root with: apt-get update && {APT_INSTALL}")


def snapshot(paths: Sequence[str] = REAL_CNI_PATHS) -> dict[str, Any]:
    """A comparable picture of some real paths: every entry's type, mode, size, mtime, link target."""
    result: dict[str, Any] = {}
    for top in paths:
        p = Path(top)
        if not p.exists() and not p.is_symlink():
            result[top] = "absent"
            continue
        entries: dict[str, tuple[int, int, int, str]] = {}
        items = [p, *sorted(p.rglob("*"))] if p.is_dir() and not p.is_symlink() else [p]
        for item in items:
            st = item.lstat()
            link = os.readlink(item) if item.is_symlink() else ""
            entries[str(item)] = (st.st_mode, st.st_size, st.st_mtime_ns, link)
        result[top] = entries
    return result


# ---------------------------------------------------------------------------------------------------------
# the image


def _tar_add(tar: tarfile.TarFile, name: str, *, kind: bytes, mode: int, data: bytes | Path = b"",
             link: str = "") -> None:
    """One tar member with a fixed owner and mtime, so the same inputs give the same bytes; a Path is streamed."""
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.mtime = 1_700_000_000
    info.linkname = link
    if kind != tarfile.REGTYPE:
        tar.addfile(info)
    elif isinstance(data, Path):
        info.size = data.stat().st_size
        with data.open("rb") as f:
            tar.addfile(info, f)
    else:
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))


def _go_arch() -> str:
    machine = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le",
            "s390x": "s390x", "riscv64": "riscv64"}.get(machine, machine)


@dataclass(frozen=True)
class ImageEntry:
    """One member of an image's layer: `path` without a leading slash; data is bytes or a file to copy."""

    path: str
    kind: bytes = tarfile.REGTYPE
    mode: int = 0o755
    data: bytes | Path = b""
    link: str = ""  # a symlink's target, or a hard link's (another member's path)

    @classmethod
    def dir(cls, path: str, mode: int = 0o755) -> ImageEntry:
        return cls(path, tarfile.DIRTYPE, mode)

    @classmethod
    def symlink(cls, path: str, target: str) -> ImageEntry:
        return cls(path, tarfile.SYMTYPE, 0o777, link=target)

    @classmethod
    def hardlink(cls, path: str, target: str) -> ImageEntry:
        return cls(path, tarfile.LNKTYPE, 0o755, link=target)


def busybox_entries(busybox: Path, applets: Sequence[str] = BUSYBOX_APPLETS) -> list[ImageEntry]:
    """A minimal root: the usual top-level dirs, /bin/busybox with its applet links, root in /etc/passwd."""
    entries = [ImageEntry.dir(d, 0o1777 if d == "tmp" else 0o755)
               for d in ("bin", "dev", "etc", "proc", "sys", "tmp", "root", "run", "var")]
    entries.append(ImageEntry("bin/busybox", data=busybox))
    entries += [ImageEntry.symlink(f"bin/{applet}", "busybox") for applet in applets if applet != "busybox"]
    entries.append(ImageEntry("etc/passwd", mode=0o644, data=b"root:x:0:0:root:/root:/bin/sh\n"))
    return entries


def write_oci_image(dest: Path, ref: str, layers: Sequence[Sequence[ImageEntry]], config: dict[str, Any]) -> None:
    """An OCI image layout tar for this machine's architecture: one uncompressed layer per item of `layers`,
    `config` as the image config's "config" (Entrypoint, Cmd, Env, ...), `ref` as its name; no registry needed.
    Layers are spooled to temp files beside `dest`, so large binaries never sit in memory; images that share a
    layer share its blob (and its snapshot) in containerd."""
    with contextlib.ExitStack() as stack:
        blobs: list[tuple[str, int, Any]] = []  # digest, size, file
        for entries in layers:
            layer_file = stack.enter_context(tempfile.TemporaryFile(dir=dest.parent))
            with tarfile.open(fileobj=layer_file, mode="w", format=tarfile.PAX_FORMAT) as layer:
                for e in entries:
                    _tar_add(layer, e.path, kind=e.kind, mode=e.mode, data=e.data, link=e.link)
            size = layer_file.tell()
            layer_file.seek(0)
            blobs.append(("sha256:" + hashlib.file_digest(layer_file, "sha256").hexdigest(), size, layer_file))

        def blob(data: bytes) -> tuple[str, int]:
            return "sha256:" + hashlib.sha256(data).hexdigest(), len(data)

        image_config = json.dumps({
            "architecture": _go_arch(), "os": "linux", "config": config,
            "rootfs": {"type": "layers", "diff_ids": [digest for digest, _, _ in blobs]},
        }).encode()
        config_digest, config_size = blob(image_config)
        manifest = json.dumps({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": config_digest, "size": config_size},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": digest, "size": size}
                       for digest, size, _ in blobs],
        }).encode()
        manifest_digest, manifest_size = blob(manifest)
        index = json.dumps({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [{
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": manifest_digest, "size": manifest_size,
                "platform": {"architecture": _go_arch(), "os": "linux"},
                "annotations": {"io.containerd.image.name": ref, "org.opencontainers.image.ref.name": ref},
            }],
        }).encode()
        with tarfile.open(dest, mode="w", format=tarfile.PAX_FORMAT) as out:
            _tar_add(out, "blobs", kind=tarfile.DIRTYPE, mode=0o755)
            _tar_add(out, "blobs/sha256", kind=tarfile.DIRTYPE, mode=0o755)
            written = set()
            for digest, size, layer_file in blobs:
                if digest in written:
                    continue
                written.add(digest)
                info = tarfile.TarInfo("blobs/sha256/" + digest.split(":")[1])
                info.mode, info.mtime, info.size = 0o644, 1_700_000_000, size
                layer_file.seek(0)
                out.addfile(info, layer_file)
            for data in (image_config, manifest):
                _tar_add(out, "blobs/sha256/" + blob(data)[0].split(":")[1], kind=tarfile.REGTYPE,
                         mode=0o644, data=data)
            _tar_add(out, "oci-layout", kind=tarfile.REGTYPE, mode=0o644, data=b'{"imageLayoutVersion":"1.0.0"}')
            _tar_add(out, "index.json", kind=tarfile.REGTYPE, mode=0o644, data=index)


def build_image(busybox: Path, dest: Path, ref: str = IMAGE_REF) -> None:
    """The sandbox's pod image: busybox and its applet links, `/bin/sh` as its command."""
    write_oci_image(dest, ref, [busybox_entries(busybox)],
                    {"Env": ["PATH=/bin"], "Cmd": ["/bin/sh"], "WorkingDir": "/"})


# ---------------------------------------------------------------------------------------------------------
# nodes and pods


def primary_config(kind: PrimaryKind) -> tuple[str, dict[str, Any]]:
    """The primary CNI: bridge + host-local, as a CNI 1.0.0 conflist or a CNI 0.3.1 single-plugin conf."""
    bridge: dict[str, Any] = {
        "type": "bridge", "bridge": "cni0", "isGateway": True, "ipMasq": False, "hairpinMode": True,
        "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.88.0.0/16"}]],
                 "routes": [{"dst": "0.0.0.0/0"}]},
    }
    if kind == "conflist":
        return "10-bridge.conflist", {"cniVersion": "1.0.0", "name": "sandbox-pods", "plugins": [bridge]}
    return "10-bridge.conf", {"cniVersion": "0.3.1", "name": "sandbox-pods", **bridge}


@dataclass(frozen=True)
class Node:
    """One throwaway node's root filesystem (the parts CNI uses), as ordinary dirs on the machine."""

    name: str
    root: Path

    @property
    def net_d(self) -> Path:
        return self.root / "etc/cni/net.d"

    @property
    def bin_dir(self) -> Path:
        return self.root / "opt/cni/bin"

    def path(self, host_path: str) -> Path:
        """Where a host path of this node lives on the machine."""
        return self.root / host_path.lstrip("/")

    def install_multus(self, flavor: footprint.Flavor = "thin", *,
                       rename_conf_file: bool = False) -> footprint.Footprint:
        return footprint.install_multus(self.root, flavor, rename_conf_file=rename_conf_file)

    def listing(self) -> list[str]:
        return footprint.tree(self.root, *NODE_DIRS)


@dataclass(frozen=True)
class PodResult:
    """What the runtime said when asked to start a pod (`ctr run --rm --cni`)."""

    container_id: str
    returncode: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and self.ip is not None

    @property
    def ip(self) -> str | None:
        """The pod's IPv4 address on eth0 (CIDR form), as `ip addr` inside the pod printed it."""
        m = re.search(r"\binet (\d+\.\d+\.\d+\.\d+/\d+)", self.stdout)
        return m.group(1) if m else None

    @property
    def error(self) -> str:
        """The runtime's own error message (ctr's last `ctr: ...` line, else all of stderr)."""
        lines = [ln for ln in self.stderr.splitlines() if ln.startswith("ctr: ")]
        return lines[-1] if lines else self.stderr.strip()

    def describe(self) -> str:
        if self.ok:
            return f"pod {self.container_id} started, eth0 has {self.ip}"
        return f"pod {self.container_id} did NOT start: {self.error or f'exit {self.returncode}'}"


class Sandbox:
    """One containerd in a private mount+net namespace; many throwaway nodes, one active at a time."""

    def __init__(self, base_dir: str | None = None) -> None:
        self._base_dir = base_dir
        self.tmp: Path | None = None
        self._driver: subprocess.Popen[str] | None = None
        self.containerd_pid: int | None = None
        self.active: Node | None = None
        self._bound: list[str] = []
        self._count = 0
        self._nodes = 0
        self.startup_seconds = 0.0

    # -- lifecycle

    def __enter__(self) -> Sandbox:
        self.start()
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    @property
    def sock(self) -> Path:
        assert self.tmp is not None
        return self.tmp / "containerd/containerd.sock"

    def start(self, timeout: float = 60.0) -> None:
        require_prerequisites()
        t0 = time.monotonic()
        busybox = find_static_busybox()
        assert busybox is not None
        base = self._base_dir
        if base is None and len(tempfile.gettempdir()) > 40:
            base = "/tmp"  # noqa: S108 - containerd's socket path must stay under the 107-byte unix limit
        self.tmp = Path(tempfile.mkdtemp(prefix="multus-sandbox-", dir=base))
        try:
            self._start(busybox, timeout)
        except BaseException:
            self.close()
            raise
        self.startup_seconds = time.monotonic() - t0

    def _start(self, busybox: Path, timeout: float) -> None:
        tmp = self.tmp
        assert tmp is not None
        tmp.chmod(0o755)
        for d in ("containerd/root", "containerd/state", "containerd/opt", "runc", "nsfs", "empty", "nodes"):
            (tmp / d).mkdir(parents=True)
        build_image(busybox, tmp / "image.tar")
        (tmp / "containerd/config.toml").write_text(
            "version = 2\n"
            f'root = "{tmp}/containerd/root"\n'
            f'state = "{tmp}/containerd/state"\n'
            'disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.btrfs",'
            ' "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",'
            ' "io.containerd.snapshotter.v1.aufs"]\n'
            "[grpc]\n"
            f'  address = "{self.sock}"\n'
            "[ttrpc]\n"
            f'  address = "{self.sock}.ttrpc"\n'
            '[plugins."io.containerd.internal.v1.opt"]\n'
            f'  path = "{tmp}/containerd/opt"\n', encoding="utf-8")
        spec = {
            "tmp": str(tmp), "nsfs": str(tmp / "nsfs"), "empty": str(tmp / "empty"),
            "config": str(tmp / "containerd/config.toml"), "sock": str(self.sock),
            "log": str(tmp / "containerd.log"),
            "targets": ["/" + d for d in NODE_DIRS], "overlay_always": ["/run"],
            "hide": [str(SYSTEM_CNI_DIR)], "outer_mnt_ns": os.readlink("/proc/self/ns/mnt"),
            "outer_net_ns": os.readlink("/proc/self/ns/net"),
            "namespace": CTR_NAMESPACE,
        }
        (tmp / "driver.json").write_text(json.dumps(spec), encoding="utf-8")
        with (tmp / "driver.log").open("w") as log:
            self._driver = subprocess.Popen(
                ["unshare", "-m", "-n", "--propagation", "private", "--",
                 sys.executable, "-I", str(Path(__file__).resolve().with_name("nsdriver.py")),
                 str(tmp / "driver.json")],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True)
        assert self._driver.stdout is not None
        ready, _, _ = select.select([self._driver.stdout], [], [], timeout)
        line = self._driver.stdout.readline().strip() if ready else ""
        if not line.startswith("READY "):
            detail = (tmp / "driver.log").read_text(errors="replace")[-3000:]
            why = line or ("it exited" if self._driver.poll() is not None else f"no answer in {timeout:.0f} s")
            raise SandboxError(f"the namespace driver did not come up ({why}):\n{detail}")
        self.containerd_pid = int(line.split()[1])
        self.import_image(tmp / "image.tar", IMAGE_REF, timeout=120)

    def close(self) -> None:
        """Remove every task and container, stop containerd and the namespace, delete the temp dir."""
        try:
            if self._driver is not None and self._driver.poll() is None:
                with contextlib.suppress(Exception):
                    for cid in self.ctr("tasks", "ls", "-q", timeout=30).stdout.split():
                        self.ctr("tasks", "delete", "-f", cid, timeout=30)
                    for cid in self.ctr("containers", "ls", "-q", timeout=30).stdout.split():
                        self.ctr("containers", "delete", cid, timeout=30)
                assert self._driver.stdin is not None
                with contextlib.suppress(OSError):
                    self._driver.stdin.write("STOP\n")
                    self._driver.stdin.close()
                try:
                    self._driver.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    self._driver.kill()
                    self._driver.wait(timeout=10)
                    pid = self.containerd_pid  # the driver could not stop it: do it by its PID
                    with contextlib.suppress(OSError):
                        if pid and Path(f"/proc/{pid}/comm").read_text().strip() == "containerd":
                            os.kill(pid, 9)
            elif self._driver is not None and self._driver.stdin is not None:
                self._driver.stdin.close()
        finally:
            if self._driver is not None and self._driver.stdout is not None:
                self._driver.stdout.close()
            self._driver = None
            if self.tmp is not None and self.tmp.exists():
                shutil.rmtree(self.tmp, ignore_errors=True)
                if self.tmp.exists():  # e.g. still mounted somewhere: retry once after a moment
                    time.sleep(1)
                    shutil.rmtree(self.tmp, ignore_errors=True)

    # -- running things inside the namespace

    def nsexec(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run a command inside the sandbox's mount + network namespace."""
        if self._driver is None or self._driver.poll() is not None:
            raise SandboxError("the sandbox is not running")
        return subprocess.run(["nsenter", "-t", str(self._driver.pid), "-m", "-n", "--", *args],
                              capture_output=True, text=True, timeout=timeout, check=False)

    def ctr(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return self.nsexec("ctr", "-a", str(self.sock), "-n", CTR_NAMESPACE, *args, timeout=timeout)

    def import_image(self, archive: Path, ref: str, snapshotter: str = "native", timeout: float = 600) -> float:
        """Import an OCI archive that holds `ref`, unpacked for `snapshotter`; returns the seconds it took."""
        t0 = time.monotonic()
        r = self.ctr("images", "import", "--snapshotter", snapshotter, str(archive), timeout=timeout)
        if r.returncode != 0 or ref not in self.ctr("images", "ls", "-q").stdout.split():
            raise SandboxError(f"importing {archive.name} ({ref}) failed: {r.stdout}{r.stderr}")
        return time.monotonic() - t0

    # -- nodes

    def new_node(self, name: str | None = None, primary: PrimaryKind | None = "conflist") -> Node:
        """A fresh throwaway node with the primary CNI installed; it becomes the active node."""
        assert self.tmp is not None
        self._nodes += 1
        name = name or f"node{self._nodes}"
        node = Node(name, self.tmp / "nodes" / name)
        for d in NODE_DIRS[:3]:  # /run/multus exists only where Multus (thick) made it
            (node.root / d).mkdir(parents=True, exist_ok=False)
        footprint.copy_plugins(node.bin_dir, SYSTEM_CNI_DIR, PLUGINS)
        if primary is not None:
            fname, conf = primary_config(primary)
            (node.net_d / fname).write_text(json.dumps(conf, indent=2) + "\n", encoding="utf-8")
        self.activate(node)
        return node

    def activate(self, node: Node) -> None:
        """Bind this node's dirs over /etc/cni/net.d, /opt/cni/bin, /var/lib/cni, /run/multus (in the ns).

        Run again before every pod: a dir created or removed since (the engine removes /run/multus) is then
        seen inside the namespace as it is on the node. A dir the node lacks shows as an empty dir.
        """
        script = [f"umount -l {target}" for target in self._bound]
        bound = []
        for d in NODE_DIRS:
            src = node.root / d
            if src.is_dir() and not src.is_symlink():
                script.append(f"mount --bind '{src}' /{d}")
                bound.append("/" + d)
        r = self.nsexec("sh", "-ec", "\n".join(script))
        if r.returncode != 0:
            raise SandboxError(f"binding node {node.name}'s dirs failed: {r.stderr.strip()}")
        self._bound = bound
        self.active = node

    def run_pod(self, timeout: float = 90, *, image: str = IMAGE_REF,
                command: Sequence[str] = POD_COMMAND) -> PodResult:
        """Start a pod on the active node the way a CRI runtime does, wait for it, remove it.

        The pod (`image`, already imported) runs `command`, by default printing its eth0 address; a failed
        network setup yields ctr's own error message. Whatever a failed run leaves (task, container, snapshot)
        is removed.
        """
        if self.active is None:
            raise SandboxError("no active node: call new_node() first")
        self.activate(self.active)
        self._count += 1
        cid = f"pod-{self.active.name}-{self._count}-{uuid.uuid4().hex[:8]}"
        try:
            r = self.ctr("run", "--rm", "--cni", "--snapshotter", "native",
                         "--runc-root", str(self.tmp / "runc" if self.tmp else ""),
                         image, cid, *command, timeout=timeout)
            result = PodResult(cid, r.returncode, r.stdout, r.stderr)
        except subprocess.TimeoutExpired as e:
            out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
            err = e.stderr.decode() if isinstance(e.stderr, bytes) else (e.stderr or "")
            result = PodResult(cid, -1, out, err + f"\n(timed out after {timeout}s)")
        if result.returncode != 0 or cid in self.ctr("containers", "ls", "-q").stdout.split():
            self.ctr("tasks", "delete", "-f", cid)
            self.ctr("containers", "delete", cid)
        return result

    def leftovers(self) -> list[str]:
        """Tasks and containers still known to containerd (should be none between pods)."""
        return self.ctr("tasks", "ls", "-q").stdout.split() + self.ctr("containers", "ls", "-q").stdout.split()


@contextlib.contextmanager
def sandbox(base_dir: str | None = None) -> Iterator[Sandbox]:
    sb = Sandbox(base_dir)
    sb.start()
    try:
        yield sb
    finally:
        sb.close()
