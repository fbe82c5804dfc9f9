"""The cluster's images (devcluster/images.py), built from the real binaries and run by a real containerd.

tools/build-real multus builds Multus v4.3.0 and pause (cached; it waits for any other build holding its lock);
build_images writes the OCI archives; a throwaway containerd (demo/sandbox.py, in a namespace of its own)
imports them and runs what the chart's DaemonSet runs, with the commands and args `helm template` renders:
- thin: the init container's /install_multus puts multus and passthru into a bind-mounted bin dir, and they run;
  /thin_entrypoint with the chart's args writes Multus's config and kubeconfig, and removes the config on SIGTERM;
- thick: the init container's install gives multus-shim and passthru; the daemon answers -version;
- pause runs as 65535 and exits 0 on SIGTERM; busybox runs `ip -o addr` in a pod with a CNI address.
Needs root, the Debian packages in demo.sandbox.APT_PACKAGES, Go (tools/build-real) and the Helm binary of
tests/chart (python3 tools/fetch_helm.py). Anything missing FAILS (never skips).
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
import tarfile
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
for _path in (REPO, REPO / "tests/chart"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from demo import sandbox  # noqa: E402
from demo.sandbox import Sandbox, SandboxError, snapshot  # noqa: E402
from devcluster import images  # noqa: E402
from helm import HELM_VERSIONS, Helm, HelmMissingError, containers, helm_binary  # noqa: E402

SNAPSHOTTER = "overlayfs"  # native copies ~150 MB of Multus binaries for every container
MULTUS_IMAGES = {"thin": images.MULTUS_THIN_IMAGE, "thick": images.MULTUS_THICK_IMAGE}

pytestmark = [pytest.mark.runtime, pytest.mark.root]


# ---------------------------------------------------------------------------------------------------------
# inputs: the real binaries, the archives, the chart's DaemonSet


@pytest.fixture(scope="module")
def multus_bin() -> Path:
    if os.geteuid() != 0:
        pytest.fail("the cluster images are run by containerd, which needs root: run as root", pytrace=False)
    t0 = time.monotonic()
    r = subprocess.run([str(REPO / "tools/build-real"), "multus"], capture_output=True, text=True,
                       timeout=3600, check=False, cwd=REPO)
    if r.returncode != 0:
        pytest.fail(f"tools/build-real multus failed (exit {r.returncode}):\n{r.stdout}\n{r.stderr}", pytrace=False)
    out = subprocess.run([str(REPO / "tools/build-real"), "--print-dir", "multus"], capture_output=True,
                         text=True, timeout=60, check=True, cwd=REPO).stdout.strip()
    print(f"[build-real] {r.stdout.strip()} ({time.monotonic() - t0:.1f} s)")
    return Path(out) / "bin"


@dataclass(frozen=True)
class Built:
    archives: dict[str, Path]
    seconds: float
    cached_seconds: float


@pytest.fixture(scope="module")
def built(multus_bin: Path, tmp_path_factory: pytest.TempPathFactory) -> Built:
    out = tmp_path_factory.mktemp("cluster-images")
    t0 = time.monotonic()
    archives = images.build_images(multus_bin, out)
    t1 = time.monotonic()
    again = images.build_images(multus_bin, out)
    t2 = time.monotonic()
    assert again == archives
    sizes = ", ".join(f"{p.name} {p.stat().st_size / 1e6:.1f} MB" for p in archives.values())
    print(f"[images] built in {t1 - t0:.1f} s, up to date in {t2 - t1:.2f} s: {sizes}")
    return Built(archives, t1 - t0, t2 - t1)


@pytest.fixture(scope="module")
def helm(tmp_path_factory: pytest.TempPathFactory) -> Helm:
    version, env_var = HELM_VERSIONS[0]
    try:
        path = helm_binary(version, env_var)
    except HelmMissingError as exc:
        pytest.fail(str(exc), pytrace=False)
    return Helm(version=version, path=path, home=tmp_path_factory.mktemp("helm-home"))


@pytest.fixture(scope="module")
def daemonsets(helm: Helm) -> dict[str, dict[str, Any]]:
    """The chart's Multus DaemonSet per mode, rendered with the cluster's image repository."""
    out = {}
    for mode in MULTUS_IMAGES:
        r = helm.template(set_values={"mode": mode, "image.repository": images.MULTUS_REPOSITORY})
        assert r.returncode == 0, r.stderr
        [ds] = [doc for _, doc in r.docs if doc.get("kind") == "DaemonSet" and
                "install-multus-binary" in containers(doc, init=True)]
        out[mode] = ds
    return out


def command_of(container: dict[str, Any]) -> list[str]:
    return [*container["command"], *container.get("args", [])]


# ---------------------------------------------------------------------------------------------------------
# the archives, read without any runtime


def read_image(archive: Path) -> tuple[str, dict[str, Any], dict[str, tarfile.TarInfo]]:
    """The archive's ref, image config and every layer member by path (upper layers win)."""
    with tarfile.open(archive) as tar:

        def blob(digest: str) -> bytes:
            handle = tar.extractfile("blobs/sha256/" + digest.split(":", 1)[1])
            assert handle is not None
            return handle.read()

        index_handle = tar.extractfile("index.json")
        assert index_handle is not None
        [entry] = json.load(index_handle)["manifests"]
        manifest = json.loads(blob(entry["digest"]))
        config = json.loads(blob(manifest["config"]["digest"]))
        members: dict[str, tarfile.TarInfo] = {}
        for layer in manifest["layers"]:
            handle = tar.extractfile("blobs/sha256/" + layer["digest"].split(":", 1)[1])
            assert handle is not None
            with tarfile.open(fileobj=handle) as layer_tar:
                members.update({m.name: m for m in layer_tar.getmembers()})
    assert entry["platform"] == {"architecture": sandbox._go_arch(), "os": "linux"}
    assert config["architecture"] == sandbox._go_arch() and config["os"] == "linux"
    return entry["annotations"]["org.opencontainers.image.ref.name"], config, members


def is_executable_file(members: dict[str, tarfile.TarInfo], path: str) -> bool:
    m = members.get(path.lstrip("/"))
    return m is not None and m.isfile() and bool(m.mode & stat.S_IXUSR)


def test_every_image_is_built_for_this_machine(built: Built) -> None:
    assert set(built.archives) == {images.PAUSE_IMAGE, images.BUSYBOX_IMAGE, *MULTUS_IMAGES.values()}
    for ref, archive in built.archives.items():
        assert read_image(archive)[0] == ref
    assert images.MULTUS_THICK_IMAGE == images.MULTUS_THIN_IMAGE + "-thick"


@pytest.mark.parametrize("mode", list(MULTUS_IMAGES))
def test_multus_image_has_what_the_charts_daemonset_runs(built: Built, daemonsets: dict[str, dict[str, Any]],
                                                         mode: str) -> None:
    ds = daemonsets[mode]
    init = containers(ds, init=True)["install-multus-binary"]
    main = containers(ds)["kube-multus"]
    assert init["image"] == main["image"] == MULTUS_IMAGES[mode], "the chart pulls the image this module builds"
    _, config, members = read_image(built.archives[MULTUS_IMAGES[mode]])
    for c in (init, main):
        assert is_executable_file(members, c["command"][0]), f"{c['command'][0]} missing from the {mode} image"
    # what install_multus copies from, in both images as in upstream's
    for name in images.MULTUS_BINARIES:
        assert is_executable_file(members, f"/usr/src/multus-cni/bin/{name}"), name
    assert members["usr/src/multus-cni/LICENSE"].isfile()
    assert is_executable_file(members, "/bin/busybox") and members["bin/sh"].issym()
    # upstream's Entrypoint is the chart's main command
    assert config["config"]["Entrypoint"] == main["command"]
    assert "Cmd" not in config["config"]
    assert config["config"]["Labels"]["org.opencontainers.image.version"] == images.MULTUS_VERSION
    if mode == "thin":
        assert is_executable_file(members, "/install_multus") and is_executable_file(members, "/thin_entrypoint")


def test_pause_and_busybox_images(built: Built) -> None:
    _, pause_config, pause_members = read_image(built.archives[images.PAUSE_IMAGE])
    assert pause_config["config"]["Entrypoint"] == ["/pause"]
    assert pause_config["config"]["User"] == "65535:65535"
    assert list(pause_members) == ["pause"] and is_executable_file(pause_members, "/pause")
    _, bb_config, bb_members = read_image(built.archives[images.BUSYBOX_IMAGE])
    assert bb_config["config"]["Cmd"] == ["/bin/sh"]
    for applet in ("sh", "ip", "wget", "nc", "sleep", "ps"):
        assert bb_members[f"bin/{applet}"].issym(), applet


def test_an_archive_is_rebuilt_only_when_its_inputs_change(built: Built, multus_bin: Path, tmp_path: Path) -> None:
    assert built.cached_seconds < 10, f"an up-to-date check took {built.cached_seconds:.1f} s"
    out = tmp_path / "out"
    first = images.build_images(multus_bin, out)
    before = {ref: p.stat().st_mtime_ns for ref, p in first.items()}
    # the same binaries but one: passthru changed, as a new Multus build would change it
    changed = tmp_path / "bin"
    changed.mkdir()
    for f in multus_bin.iterdir():
        (changed / f.name).symlink_to(f)
    (changed / "passthru").unlink()
    (changed / "passthru").write_bytes((multus_bin / "passthru").read_bytes() + b"\0")
    (tmp_path / "LICENSE").symlink_to(multus_bin.parent / "LICENSE")
    second = images.build_images(changed, out)
    rebuilt = {ref for ref, p in second.items() if p.stat().st_mtime_ns != before[ref]}
    assert rebuilt == set(MULTUS_IMAGES.values())


# ---------------------------------------------------------------------------------------------------------
# running them


@pytest.fixture(scope="module")
def real_before() -> dict[str, Any]:
    return snapshot()


@pytest.fixture(scope="module")
def sb(built: Built, real_before: dict[str, Any]) -> Iterator[Sandbox]:
    try:
        sandbox.require_prerequisites()
    except SandboxError as exc:
        pytest.fail(str(exc), pytrace=False)
    with Sandbox() as box:
        for ref, archive in built.archives.items():
            seconds = box.import_image(archive, ref, SNAPSHOTTER)
            print(f"[containerd] imported {ref} in {seconds:.1f} s")
        yield box
    assert snapshot() == real_before, "the machine's own CNI dirs changed"


def cleanup(box: Sandbox, cid: str) -> None:
    if cid in box.ctr("containers", "ls", "-q").stdout.split():
        box.ctr("tasks", "delete", "-f", cid)
        box.ctr("containers", "delete", cid)


def run(box: Sandbox, image: str, command: Sequence[str], *, mounts: Sequence[tuple[Path, str]] = (),
        env: Sequence[str] = (), detach: bool = False, cid: str = "",
        timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """`ctr run --rm` of `image` (`command` replaces entrypoint + args, as a pod's `command` does)."""
    assert box.tmp is not None
    cid = cid or f"img-{uuid.uuid4().hex[:12]}"
    args = ["run", "--runc-root", str(box.tmp / "runc"), "--snapshotter", SNAPSHOTTER]
    args += ["-d"] if detach else ["--rm"]
    for src, dst in mounts:
        args += ["--mount", f"type=bind,src={src},dst={dst},options=rbind:rw"]
    for e in env:
        args += ["--env", e]
    try:
        return box.ctr(*args, image, cid, *command, timeout=timeout)
    finally:
        if not detach:
            cleanup(box, cid)


def task_status(box: Sandbox, cid: str) -> tuple[int, str]:
    """(pid, status) of a task per `ctr tasks ls`, (0, "") when there is none."""
    for line in box.ctr("tasks", "ls").stdout.splitlines()[1:]:
        fields = line.split()
        if fields and fields[0] == cid:
            return int(fields[1]), fields[2]
    return 0, ""


def wait_for(what: str, predicate: Any, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        time.sleep(0.2)


def cni_version(binary: Path) -> dict[str, Any]:
    r = subprocess.run([str(binary)], env={"CNI_COMMAND": "VERSION"}, input="", capture_output=True, text=True,
                       timeout=30, check=False)
    assert r.returncode == 0, r.stderr
    answer: dict[str, Any] = json.loads(r.stdout)
    return answer


@pytest.mark.parametrize("mode", list(MULTUS_IMAGES))
def test_the_init_container_installs_the_multus_binaries(sb: Sandbox, daemonsets: dict[str, dict[str, Any]],
                                                         multus_bin: Path, tmp_path: Path, mode: str) -> None:
    init = containers(daemonsets[mode], init=True)["install-multus-binary"]
    [mount] = init["volumeMounts"]
    host_bin = tmp_path / "opt-cni-bin"
    host_bin.mkdir()
    r = run(sb, MULTUS_IMAGES[mode], command_of(init), mounts=[(host_bin, mount["mountPath"])])
    print(f"[{mode} init] {' '.join(command_of(init))}: exit {r.returncode}\n{r.stdout}{r.stderr}")
    assert r.returncode == 0, r.stdout + r.stderr
    multus = "multus" if mode == "thin" else "multus-shim"
    assert sorted(p.name for p in host_bin.iterdir()) == sorted([multus, "passthru"])
    for name in (multus, "passthru"):
        installed = host_bin / name
        assert installed.stat().st_mode & 0o111, f"{name} is not executable"
        assert installed.read_bytes() == (multus_bin / name).read_bytes()
    # as the runtime will run them from the node's bin dir
    version = subprocess.run([str(host_bin / multus), "-version"], capture_output=True, text=True, timeout=30,
                             check=False)
    print(f"[{mode}] {multus} -version: {version.stdout.strip()}")
    assert f"version:{images.MULTUS_VERSION}(" in version.stdout
    assert "1.0.0" in cni_version(host_bin / multus)["supportedVersions"]
    assert "1.0.0" in cni_version(host_bin / "passthru")["supportedVersions"]


def test_the_thick_daemon_answers(sb: Sandbox, daemonsets: dict[str, dict[str, Any]]) -> None:
    main = containers(daemonsets["thick"])["kube-multus"]
    r = run(sb, images.MULTUS_THICK_IMAGE, [*main["command"], "-version"])
    print(f"[thick daemon] {r.stdout.strip()}")
    assert r.returncode == 4, r.stdout + r.stderr  # upstream's -version exits 4 (cmd/multus-daemon/main.go)
    assert re.match(rf"multus-daemon: version:{images.MULTUS_VERSION}\(", r.stdout), r.stdout


def test_the_thin_entrypoint_writes_the_multus_config_and_removes_it_on_sigterm(
        sb: Sandbox, daemonsets: dict[str, dict[str, Any]], tmp_path: Path) -> None:
    """The chart's thin container (command and args as rendered) on a node with a primary conflist: it installs
    multus, writes 00-multus.conflist and the kubeconfig with the pod's token; cleanupConfigOnExit removes the
    config at SIGTERM."""
    main = containers(daemonsets["thin"])["kube-multus"]
    mounts = {m["name"]: m["mountPath"] for m in main["volumeMounts"]}
    net_d, bin_dir, secrets = tmp_path / "net.d", tmp_path / "bin", tmp_path / "serviceaccount"
    for d in (net_d, bin_dir, secrets):
        d.mkdir()
    name, primary = sandbox.primary_config("conflist")
    (net_d / name).write_text(json.dumps(primary))
    token = uuid.uuid4().hex
    (secrets / "token").write_text(token)
    (secrets / "ca.crt").write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    cid = f"thin-{uuid.uuid4().hex[:8]}"
    r = run(sb, images.MULTUS_THIN_IMAGE, command_of(main), detach=True, cid=cid,
            mounts=[(net_d, mounts["cni"]), (bin_dir, mounts["cnibin"]),
                    (secrets, "/var/run/secrets/kubernetes.io/serviceaccount")],
            env=["KUBERNETES_SERVICE_HOST=10.96.0.1", "KUBERNETES_SERVICE_PORT=443"])
    try:
        assert r.returncode == 0, r.stdout + r.stderr
        conflist = net_d / "00-multus.conflist"
        wait_for("00-multus.conflist", conflist.exists)
        conf = json.loads(conflist.read_text())
        kubeconfig = yaml.safe_load((net_d / "multus.d/multus.kubeconfig").read_text())
        assert conf["plugins"][0]["type"] == "multus"
        assert conf["plugins"][0]["delegates"][0]["name"] == primary["name"]
        assert kubeconfig["users"][0]["user"]["token"] == token
        assert (bin_dir / "multus").is_file()
        print(f"[thin entrypoint] wrote {sorted(str(f.relative_to(tmp_path)) for f in tmp_path.rglob('*'))}")
        sb.ctr("tasks", "kill", "-s", "SIGTERM", cid)
        wait_for("the thin container to stop", lambda: task_status(sb, cid)[1] in ("STOPPED", ""))
        assert not conflist.exists(), "cleanupConfigOnExit: the config goes at SIGTERM"
        assert (net_d / name).exists(), "the primary config stays"
    finally:
        cleanup(sb, cid)


def test_pause_runs_unprivileged_and_exits_on_sigterm(sb: Sandbox) -> None:
    cid = f"pause-{uuid.uuid4().hex[:8]}"
    result: list[subprocess.CompletedProcess[str]] = []
    runner = threading.Thread(target=lambda: result.append(run(sb, images.PAUSE_IMAGE, [], cid=cid, timeout=60)))
    runner.start()
    try:
        wait_for("pause to run", lambda: task_status(sb, cid)[1] == "RUNNING")
        pid = task_status(sb, cid)[0]
        uid = re.search(r"^Uid:\s+(\d+)", Path(f"/proc/{pid}/status").read_text(), re.MULTILINE)
        assert uid and uid.group(1) == "65535"
        time.sleep(1)  # it keeps running until it is told to stop
        assert task_status(sb, cid)[1] == "RUNNING"
        t0 = time.monotonic()
        sb.ctr("tasks", "kill", "-s", "SIGTERM", cid)
        runner.join(timeout=30)
        print(f"[pause] pid {pid} uid 65535, exited {time.monotonic() - t0:.2f} s after SIGTERM")
    finally:
        runner.join(timeout=60)
        cleanup(sb, cid)
    [r] = result
    assert r.returncode == 0, r.stdout + r.stderr


def test_busybox_runs_a_pod_with_a_cni_address(sb: Sandbox) -> None:
    sb.new_node()
    r = sb.run_pod(image=images.BUSYBOX_IMAGE, command=("sh", "-c", "ip -o addr"))
    print(f"[busybox pod] {r.stdout.strip()}")
    assert r.returncode == 0, r.stderr
    assert re.search(r"\blo\s+inet 127\.0\.0\.1/8", r.stdout), r.stdout
    assert re.search(r"\beth0\s+inet 10\.88\.\d+\.\d+/16", r.stdout), r.stdout
    assert sb.leftovers() == []
