"""The chart as it is published: one version, `helm package` with what Artifact Hub reads, and the release
workflow's path (package --sign, push to an OCI registry, pull --verify) against a real registry of our own.

- the version is written once, in chart/Chart.yaml: pyproject.toml, multus_cleanup.__version__, hook/Dockerfile's
  VERSION, the cleanup image the chart pulls by default and the one Artifact Hub lists equal it (the Palette
  pack takes it from Chart.yaml: test_palette_pack.py); appVersion is Multus's;
- the Artifact Hub annotations (images, crds, changes, license) parse as Artifact Hub reads them and say what
  the chart does: the images are the ones it renders, the CRDs the ones in crds/;
- `helm package` (both Helm versions) gives multus-<version>.tgz with Chart.yaml, values, schema, README, the
  CRD and the `helm test` hooks, and without the helm-unittest suites;
- the OCI push: the CNCF Distribution registry (`registry`, built by tools/build-real from its pinned Go
  module) on 127.0.0.1; `helm package --sign` with a throwaway GPG key, `helm push --plain-http`, `helm pull
  --verify` gives back the same bytes and a provenance that verifies.

Missing tools FAIL: the registry (tools/build-real registry), gpg (Debian gnupg), Helm (tools/fetch_helm.py).
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import tarfile
import time
import tomllib
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from helm import CHART_DIR, REPO_ROOT, Helm, RealPartMissingError, real_part, split_documents

CHART = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())
VERSION = CHART["version"]
TGZ = f"{CHART['name']}-{VERSION}.tgz"
PROJECT = "https://github.com/multus-cleanup/multus-cleanup"
CHANGE_KINDS = {"added", "changed", "deprecated", "removed", "fixed", "security"}  # Artifact Hub's


def annotation(name: str) -> Any:
    return yaml.safe_load(CHART["annotations"][f"artifacthub.io/{name}"])


# --- one version ------------------------------------------------------------------------------------

def test_the_version_is_the_chart_version_everywhere() -> None:
    assert re.fullmatch(r"\d+\.\d+\.\d+", VERSION), VERSION
    assert CHART["appVersion"] == "v4.3.0", "appVersion is the Multus the chart deploys"
    pyproject = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    assert pyproject["project"]["version"] == VERSION
    init = (REPO_ROOT / "hook" / "multus_cleanup" / "__init__.py").read_text()
    assert re.findall(r'^__version__ = "([^"]+)"$', init, re.M) == [VERSION]
    dockerfile = (REPO_ROOT / "hook" / "Dockerfile").read_text()
    assert re.findall(r"^ARG VERSION=(\S+)$", dockerfile, re.M) == [VERSION]
    images = {i["name"]: i["image"] for i in annotation("images")}
    assert images["multus-cleanup"] == f"ghcr.io/multus-cleanup/multus-cleanup:{VERSION}"
    assert images["multus-thin"].endswith(f":{CHART['appVersion']}")
    assert images["multus-thick"].endswith(f":{CHART['appVersion']}-thick")


def test_the_version_check_would_catch_a_drift(tmp_path: Path) -> None:
    """Negative control: the same regex on a Dockerfile with another VERSION finds that one, not the chart's."""
    drifted = (REPO_ROOT / "hook" / "Dockerfile").read_text().replace(f"ARG VERSION={VERSION}", "ARG VERSION=9.9.9")
    assert re.findall(r"^ARG VERSION=(\S+)$", drifted, re.M) == ["9.9.9"]


# --- Artifact Hub ------------------------------------------------------------------------------------

def test_chart_yaml_points_at_this_project() -> None:
    assert CHART["home"] == PROJECT
    assert CHART["sources"][0] == PROJECT
    assert "https://github.com/k8snetworkplumbingwg/multus-cni" in CHART["sources"]
    assert CHART["annotations"]["artifacthub.io/license"] == "Apache-2.0"


def test_artifacthub_images_are_the_images_the_chart_renders(helm: Helm) -> None:
    listed = {i["image"] for i in annotation("images")}
    assert all(set(i) == {"name", "image"} for i in annotation("images"))
    rendered: set[str] = set()
    for mode in ("thick", "thin"):
        result = helm.template(set_values={"mode": mode})
        assert result.ok, result.stderr
        for doc in result.objects():
            rendered |= set(re.findall(r"^\s+image: \"?([^\"\s]+)\"?$", yaml.safe_dump(doc), re.M))
    # the `helm test` image (tests.enabled, off by default) is pulled by `helm test` only: not listed
    assert rendered == listed


def test_artifacthub_crds_are_the_crds_the_chart_installs() -> None:
    crds = [yaml.safe_load(p.read_text()) for p in sorted((CHART_DIR / "crds").glob("*.yaml"))]
    expected = [{"kind": c["spec"]["names"]["kind"], "name": c["metadata"]["name"],
                 "version": next(v["name"] for v in c["spec"]["versions"] if v.get("storage"))} for c in crds]
    listed = annotation("crds")
    assert [{k: c[k] for k in ("kind", "name", "version")} for c in listed] == expected
    assert all(c["displayName"] and c["description"] for c in listed)


def test_artifacthub_changes_use_artifacthubs_kinds() -> None:
    changes = annotation("changes")
    assert changes and all(set(c) <= {"kind", "description", "links"} for c in changes)
    assert {c["kind"] for c in changes} <= CHANGE_KINDS
    assert all(isinstance(c["description"], str) and c["description"] for c in changes)


# --- helm package --------------------------------------------------------------------------------------

def package(helm: Helm, dest: Path, *extra: str) -> Path:
    proc = helm.run("package", str(CHART_DIR), "--destination", str(dest), *extra)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert sorted(p.name for p in dest.iterdir() if not p.name.endswith(".prov")) == [TGZ]
    return dest / TGZ


def test_helm_package_holds_what_artifacthub_and_helm_need(helm: Helm, tmp_path: Path) -> None:
    tgz = package(helm, tmp_path)
    with tarfile.open(tgz) as tar:
        names = set(tar.getnames())
        packaged_chart = yaml.safe_load(tar.extractfile("multus/Chart.yaml").read())  # type: ignore[union-attr]
    for needed in ("Chart.yaml", "values.yaml", "values.schema.json", "README.md",
                   "crds/network-attachment-definitions.yaml", "templates/tests/secondary-network-pod.yaml",
                   "templates/tests/network-attachment-definition.yaml"):
        assert f"multus/{needed}" in names, needed
    assert not [n for n in names if n.startswith("multus/tests/")], "the helm-unittest suites stay out"
    assert packaged_chart["annotations"] == CHART["annotations"]
    assert packaged_chart["version"] == VERSION and packaged_chart["home"] == PROJECT
    # the packaged chart renders the test hooks when asked
    result = helm.run("template", "multus", str(tgz), "-n", "kube-system", "--set", "tests.enabled=true",
                      "--show-only", "templates/tests/secondary-network-pod.yaml")
    assert result.returncode == 0, result.stderr
    (pod,) = (doc for _, doc in split_documents(result.stdout))
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"


# --- OCI push, with provenance, to a registry of our own ----------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """host:port of a CNCF Distribution registry on 127.0.0.1, storage in a temp dir, stopped afterwards."""
    try:
        binary = real_part("registry") / "bin" / "registry"
    except RealPartMissingError as exc:
        pytest.fail(str(exc), pytrace=False)
    home = tmp_path_factory.mktemp("registry")
    port = free_port()
    config = home / "config.yml"
    config.write_text(yaml.safe_dump({
        "version": 0.1, "log": {"level": "warn"},
        "storage": {"filesystem": {"rootdirectory": str(home / "data")}, "delete": {"enabled": True}},
        "http": {"addr": f"127.0.0.1:{port}"},
    }))
    log = (home / "registry.log").open("w")
    proc = subprocess.Popen([str(binary), "serve", str(config)], stdout=log, stderr=subprocess.STDOUT)
    address = f"127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://{address}/v2/", timeout=2) as response:
                    assert response.status == 200
                    break
            except (urllib.error.URLError, ConnectionError):
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"the registry did not start: {(home / 'registry.log').read_text()}")
                time.sleep(0.2)
        yield address
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


@pytest.fixture(scope="module")
def gpg_keys(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path, Path]]:
    """(key name, secret keyring, public keyring): a throwaway RSA key, in legacy keyrings as Helm reads them.
    gpg starts a gpg-agent for the key's home; it is stopped at the end (it would outlive the tests)."""
    gpg = shutil.which("gpg")
    if gpg is None:
        pytest.fail("gpg is missing (apt-get install gnupg; tools/install-deps does)", pytrace=False)
    home = tmp_path_factory.mktemp("gnupg")
    home.chmod(0o700)
    name = "multus-cleanup chart test <chart-test@multus-cleanup.invalid>"
    env = {"GNUPGHOME": str(home), "PATH": "/usr/bin:/bin"}

    def run(*args: str) -> bytes:
        proc = subprocess.run([gpg, "--batch", *args], capture_output=True, env=env, timeout=120, check=False)
        assert proc.returncode == 0, proc.stderr.decode()
        return proc.stdout

    run("--passphrase", "", "--quick-gen-key", name, "rsa3072", "sign", "never")
    secring, pubring = home / "secring.gpg", home / "pubring.gpg"
    secring.write_bytes(run("--export-secret-keys", name))
    pubring.write_bytes(run("--export", name))
    try:
        yield name, secring, pubring
    finally:
        subprocess.run(["gpgconf", "--kill", "gpg-agent"], env=env, capture_output=True, timeout=30, check=False)


def test_signed_package_pushed_to_an_oci_registry_comes_back_the_same_and_verifies(
        helm: Helm, tmp_path: Path, registry: str, gpg_keys: tuple[str, Path, Path]) -> None:
    """What .github/workflows/release.yaml does, against the local registry."""
    name, secring, pubring = gpg_keys
    dist = tmp_path / "dist"
    tgz = package(helm, dist, "--sign", "--key", name, "--keyring", str(secring))
    assert (dist / f"{TGZ}.prov").is_file()
    verify = helm.run("verify", str(tgz), "--keyring", str(pubring))
    assert verify.returncode == 0, verify.stdout + verify.stderr

    repo = f"oci://{registry}/charts-{helm.version.replace('.', '-')}"
    push = helm.run("push", str(tgz), repo, "--plain-http")
    assert push.returncode == 0, push.stdout + push.stderr
    assert f"Pushed: {registry}/charts-{helm.version.replace('.', '-')}/multus:{VERSION}" in push.stdout + push.stderr

    pulled = tmp_path / "pulled"
    pulled.mkdir()  # helm pull writes into an existing directory
    pull = helm.run("pull", f"{repo}/multus", "--version", VERSION, "--plain-http", "--destination", str(pulled),
                    "--verify", "--keyring", str(pubring))
    assert pull.returncode == 0, pull.stdout + pull.stderr
    assert (pulled / TGZ).read_bytes() == tgz.read_bytes()
    assert (pulled / f"{TGZ}.prov").read_bytes() == (dist / f"{TGZ}.prov").read_bytes()


def test_pull_verify_refuses_a_chart_without_provenance(helm: Helm, tmp_path: Path, registry: str,
                                            gpg_keys: tuple[str, Path, Path]) -> None:
    """Negative control: a pushed chart without provenance is refused by `helm pull --verify`."""
    _, _, pubring = gpg_keys
    tgz = package(helm, tmp_path / "dist")
    (tmp_path / "pulled").mkdir()
    repo = f"oci://{registry}/unsigned-{helm.version.replace('.', '-')}"
    push = helm.run("push", str(tgz), repo, "--plain-http")
    assert push.returncode == 0, push.stdout + push.stderr
    pull = helm.run("pull", f"{repo}/multus", "--version", VERSION, "--plain-http",
                    "--destination", str(tmp_path / "pulled"), "--verify", "--keyring", str(pubring))
    assert pull.returncode != 0, pull.stdout
