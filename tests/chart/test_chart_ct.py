"""`ct lint --config ct.yaml`, by the real chart-testing v3.14.0 (built from its pinned Go module by tools/build-real).

ct runs yamale on Chart.yaml with its own etc/chart_schema.yaml, yamllint on Chart.yaml, values.yaml and
ci/*-values.yaml with its own etc/lintconf.yaml (CT_CONFIG_DIR points at the built etc/), and
`helm lint --strict` once per ci/*-values.yaml, with the `helm`, `git`, `yamllint` and `yamale` it finds on
PATH: here each real Helm binary in turn and the venv's yamllint and yamale. ct.yaml says why the version
increment check is off.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helm import (
    CHART_DIR,
    CI_VALUES,
    HELM_VERSIONS,
    REPO_ROOT,
    Helm,
    HelmMissingError,
    RealPartMissingError,
    helm_binary,
    real_part,
)

pytestmark = pytest.mark.helm

CT_VERSION = "v3.14.0"  # tools/gomod/ct/go.mod


def _ct_dir() -> Path:
    try:
        return real_part("ct")
    except RealPartMissingError as exc:
        pytest.fail(str(exc), pytrace=False)


def _tool_dir(name: str) -> str:
    """The directory of a tool ct runs: the venv's for yamllint and yamale, PATH's for git."""
    venv_bin = Path(sys.executable).parent
    if (venv_bin / name).is_file():
        return str(venv_bin)
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} not found (ct lint needs it; tools/install-deps installs it)", pytrace=False)
    return str(Path(found).parent)


def run_ct(helm: Helm, workdir: Path, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    ct = _ct_dir()
    bin_dir = tmp_path / "ct-path"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "helm").unlink(missing_ok=True)
    (bin_dir / "helm").symlink_to(helm.path)
    path = [str(bin_dir), *dict.fromkeys(_tool_dir(t) for t in ("yamllint", "yamale", "git"))]
    env = {**helm.env(), "PATH": os.pathsep.join(path), "CT_CONFIG_DIR": str(ct / "etc")}
    env = {k: v for k, v in env.items() if not k.startswith("CT_") or k == "CT_CONFIG_DIR"}
    return subprocess.run([str(ct / "bin" / "ct"), *args], capture_output=True, text=True, env=env, cwd=workdir,
                          timeout=300, check=False)


def _output(proc: subprocess.CompletedProcess[str]) -> str:
    return f"exit {proc.returncode}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"


def test_ct_is_the_pinned_build_with_its_own_config_files(tmp_path: Path) -> None:
    ct = _ct_dir()
    proc = subprocess.run([str(ct / "bin" / "ct"), "version"], capture_output=True, text=True, timeout=60,
                          check=False, cwd=tmp_path)
    assert proc.returncode == 0, _output(proc)
    assert f"Version:\t {CT_VERSION}" in proc.stdout, _output(proc)
    assert (ct / "etc" / "chart_schema.yaml").is_file() and (ct / "etc" / "lintconf.yaml").is_file()


def test_ct_lint_passes(helm: Helm, tmp_path: Path) -> None:
    proc = run_ct(helm, REPO_ROOT, tmp_path, "lint", "--config", "ct.yaml", "--print-config")
    output = _output(proc)
    assert proc.returncode == 0, f"ct lint failed with Helm {helm.version}:\n{output}"
    assert "All charts linted successfully" in proc.stdout, output
    ct_etc = _ct_dir() / "etc"
    # the config ct printed: ct's own schema and lint rules, and the checks ct.yaml asks for
    assert f"ChartYamlSchema: {ct_etc / 'chart_schema.yaml'}" in proc.stderr, output
    assert f"LintConf: {ct_etc / 'lintconf.yaml'}" in proc.stderr, output
    assert "ValidateChartSchema: true" in proc.stderr and "ValidateYaml: true" in proc.stderr, output
    assert f"Validating {CHART_DIR.name}/Chart.yaml...\nValidation success!" in proc.stdout, output
    for values in CI_VALUES:
        rel = values.relative_to(REPO_ROOT)
        assert f'Linting chart with values file "{rel}"...' in proc.stdout, output


def _broken_copy(tmp_path: Path, edit: str) -> Path:
    """A git work tree holding ct.yaml and a copy of the chart, with one thing ct must reject."""
    repo = tmp_path / "repo"
    shutil.copytree(CHART_DIR, repo / "chart")
    shutil.copy2(REPO_ROOT / "ct.yaml", repo / "ct.yaml")
    subprocess.run(["git", "init", "-q", str(repo)], check=True, capture_output=True, timeout=60)
    if edit == "yamllint":
        with (repo / "chart" / "values.yaml").open("a") as fh:
            fh.write("trailing: spaces   \n")
    else:
        with (repo / "chart" / "Chart.yaml").open("a") as fh:
            fh.write("notAChartYamlField: 1\n")
    return repo


@pytest.mark.parametrize(("edit", "message"), [
    ("yamllint", "(trailing-spaces)"),
    ("yamale", "notAChartYamlField: Unexpected element"),
], ids=["yamllint", "yamale"])
def test_ct_lint_rejects_what_its_own_rules_forbid(tmp_path: Path, edit: str, message: str) -> None:
    """ct really runs yamllint and yamale with its config: a violation of each fails the lint."""
    repo = _broken_copy(tmp_path, edit)
    helm = Helm(version="v4.3.1", path=_helm4(), home=tmp_path / "helm-home")
    proc = run_ct(helm, repo, tmp_path, "lint", "--config", "ct.yaml")
    assert proc.returncode != 0, _output(proc)
    assert message in proc.stdout + proc.stderr, _output(proc)


def _helm4() -> Path:
    try:
        return helm_binary("v4.3.1", dict(HELM_VERSIONS)["v4.3.1"])
    except HelmMissingError as exc:
        pytest.fail(str(exc), pytrace=False)
