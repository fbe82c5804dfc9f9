"""The helm-unittest suites in chart/tests, run by the real plugin: `helm unittest --strict chart`.

The plugin is helm-unittest v1.1.2 built from its pinned Go module by tools/build-real, laid out as a Helm
plugins directory that HELM_PLUGINS points at (nothing is installed into a Helm config). It runs under
Helm 4.3.1 and under Helm 3.21.4 (built the same way). Helm 3.17.2 cannot load this plugin: it rejects its
plugin.yaml (`json: unknown field "platformHooks"`), so it is not one of the hosts here.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from helm import (
    CHART_DIR,
    HELM_VERSIONS,
    REPO_ROOT,
    Helm,
    HelmMissingError,
    RealPartMissingError,
    helm_binary,
    real_part,
)

pytestmark = pytest.mark.helm

PLUGIN_VERSION = "1.1.2"  # tools/gomod/helm-unittest/go.mod
HELM3_BUILT_VERSION = "v3.21.4"  # tools/gomod/helm3/go.mod
HOSTS = ("v4.3.1", HELM3_BUILT_VERSION)
SUITES = sorted((CHART_DIR / "tests").glob("*_test.yaml"))


def _plugins_dir() -> Path:
    try:
        plugins = real_part("helm-unittest") / "plugins"
    except RealPartMissingError as exc:
        pytest.fail(str(exc), pytrace=False)
    if not (plugins / "unittest" / "plugin.yaml").is_file():
        pytest.fail(f"no unittest/plugin.yaml in {plugins}: rebuild with tools/build-real helm-unittest",
                    pytrace=False)
    return plugins


def _host_path(version: str) -> Path:
    if version == HELM3_BUILT_VERSION:
        try:
            return real_part("helm3") / "bin" / "helm"
        except RealPartMissingError as exc:
            pytest.fail(str(exc), pytrace=False)
    try:
        return helm_binary(version, dict(HELM_VERSIONS)[version])
    except HelmMissingError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(params=HOSTS, ids=[f"helm-{v}" for v in HOSTS])
def host(request: pytest.FixtureRequest, tmp_path: Path) -> Helm:
    """A Helm that sees the built helm-unittest plugin and nothing else of the user's Helm setup."""
    version: str = request.param
    return Helm(version=version, path=_host_path(version), home=tmp_path / "helm-home", plugins=_plugins_dir())


def _output(proc: subprocess.CompletedProcess[str]) -> str:
    return f"exit {proc.returncode}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"


def _expected_counts() -> tuple[int, int]:
    """(suites, tests) in chart/tests: the plugin must report every one of them as passed."""
    tests = sum(len(yaml.safe_load(path.read_text())["tests"]) for path in SUITES)
    return len(SUITES), tests


def test_the_plugin_loaded_is_the_pinned_build(host: Helm) -> None:
    proc = host.run("plugin", "list")
    assert proc.returncode == 0, _output(proc)
    assert re.search(rf"^unittest\s+{re.escape(PLUGIN_VERSION)}\s", proc.stdout, re.MULTILINE), _output(proc)


def test_helm_unittest_passes_every_suite(host: Helm) -> None:
    assert SUITES, "no helm-unittest suite in chart/tests"
    proc = host.run("unittest", "--strict", "chart")
    output = _output(proc)
    assert proc.returncode == 0, f"helm unittest failed under Helm {host.version}:\n{output}"
    suites, tests = _expected_counts()
    assert re.search(r"^Charts:\s+1 passed, 1 total$", proc.stdout, re.MULTILINE), output
    assert re.search(rf"^Test Suites:\s+{suites} passed, {suites} total$", proc.stdout, re.MULTILINE), output
    assert re.search(rf"^Tests:\s+{tests} passed, {tests} total$", proc.stdout, re.MULTILINE), output


def test_helm_unittest_fails_a_wrong_assertion(host: Helm, tmp_path: Path) -> None:
    """The pass above means something only if the plugin evaluates the assertions: a wrong one must fail."""
    chart = tmp_path / "chart"
    shutil.copytree(CHART_DIR, chart, ignore=shutil.ignore_patterns("tests"))
    (chart / "tests").mkdir()
    (chart / "tests" / "wrong_test.yaml").write_text(yaml.safe_dump({
        "suite": "a wrong expectation",
        "templates": ["templates/daemonset.yaml"],
        "capabilities": {"majorVersion": 1, "minorVersion": 31},
        "tests": [{"it": "expects the wrong name",
                   "asserts": [{"equal": {"path": "metadata.name", "value": "not-multus"}}]}],
    }))
    proc = subprocess.run([str(host.path), "unittest", "--strict", str(chart)], capture_output=True, text=True,
                          env=host.env(), timeout=120, check=False, cwd=tmp_path)
    assert proc.returncode != 0, _output(proc)
    assert re.search(r"^Tests:\s+1 failed, 0 passed, 1 total$", proc.stdout, re.MULTILINE), _output(proc)
    assert "not-multus" in proc.stdout, _output(proc)


def test_built_helm3_reports_its_version_and_a_real_kubernetes(tmp_path: Path) -> None:
    """Helm 3.21.4 from source is stamped: its version, and its offline capabilities (not Helm's v1.20 default)."""
    helm = Helm(version=HELM3_BUILT_VERSION, path=_host_path(HELM3_BUILT_VERSION), home=tmp_path / "home")
    proc = helm.run("version", "--template", "{{.Version}}")
    assert proc.returncode == 0 and proc.stdout.strip() == HELM3_BUILT_VERSION, _output(proc)
    chart = tmp_path / "caps"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: caps\nversion: 0.1.0\n")
    (chart / "templates" / "caps.yaml").write_text(
        "kind: ConfigMap\napiVersion: v1\nmetadata:\n  name: caps\n"
        "data:\n  kube: {{ .Capabilities.KubeVersion.Version | quote }}\n")
    proc = helm.run("template", str(chart))
    assert proc.returncode == 0, _output(proc)
    kube = yaml.safe_load(proc.stdout)["data"]["kube"]
    client_go = re.search(r"^\s*k8s\.io/client-go v0\.(\d+)\.", (REPO_ROOT / "tools" / "gomod" / "helm3" /
                                                              "go.mod").read_text(), re.MULTILINE)
    assert client_go, "tools/gomod/helm3/go.mod pins no k8s.io/client-go"
    assert kube == f"v1.{client_go.group(1)}.0", f"capabilities report {kube}"
