"""Chart lint beyond what `ct lint` (test_chart_ct.py) covers, and the README.

ct lints Chart.yaml (yamale, yamllint), values.yaml and ci/*-values.yaml (yamllint) and runs helm lint once
per ci/*-values.yaml. Here: helm lint --strict with the chart's defaults, under both Helm binaries; yamllint
with ct's rules on the YAML ct does not read (the helm-unittest suites, ct.yaml); .yamllint staying ct's
lintconf.yaml; the README generated from values.yaml.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from helm import CHART_DIR, CI_VALUES, REPO_ROOT, Helm, RealPartMissingError, real_part
from yamllint import linter  # type: ignore[import-untyped]
from yamllint.config import YamlLintConfig  # type: ignore[import-untyped]

README_GENERATOR_VERSION = "2.7.2"
README_GENERATOR = Path(os.environ.get(
    "README_GENERATOR_BIN", REPO_ROOT / ".cache" / "npm" / "node_modules" / ".bin" / "readme-generator"))
NPM_INSTALL = (f"npm install --prefix .cache/npm --no-audit --no-fund "
               f"@bitnami/readme-generator-for-helm@{README_GENERATOR_VERSION}")


def test_ci_values_files_cover_the_required_scenarios() -> None:
    names = {p.name for p in CI_VALUES}
    assert {"thick-values.yaml", "thin-values.yaml", "k3s-values.yaml", "no-cleanup-values.yaml"} <= names
    loaded = {p.name: yaml.safe_load(p.read_text()) for p in CI_VALUES}
    assert loaded["thin-values.yaml"]["mode"] == "thin"
    assert loaded["no-cleanup-values.yaml"]["cleanup"]["enabled"] is False
    assert loaded["k3s-values.yaml"]["hostPaths"]["cniConfDir"] != "/etc/cni/net.d"


@pytest.mark.helm
def test_helm_lint_strict_is_clean_with_the_defaults(helm: Helm) -> None:
    """ct lints once per ci/*-values.yaml and never with the chart's defaults alone."""
    proc = helm.lint()
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert "[WARNING]" not in output and "[ERROR]" not in output, output
    assert "1 chart(s) linted, 0 chart(s) failed" in output


def _yamllint_files() -> list[Path]:
    """The YAML of the chart that ct does not lint itself (it lints Chart.yaml, values.yaml, ci/*)."""
    return [*sorted((CHART_DIR / "tests").glob("*_test.yaml")), REPO_ROOT / "ct.yaml"]


@pytest.mark.parametrize("path", _yamllint_files(), ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_yamllint_with_ct_lint_conf(path: Path) -> None:
    conf = YamlLintConfig(file=str(REPO_ROOT / ".yamllint"))
    problems = list(linter.run(path.read_text(), conf, str(path)))
    assert not problems, "\n".join(f"{path}:{p.line}:{p.column}: [{p.level}] {p.message} ({p.rule})"
                                   for p in problems)


def test_yamllint_conf_is_cts_own() -> None:
    """.yamllint (used for the YAML ct does not lint) is ct's etc/lintconf.yaml below its header comment."""
    try:
        cts = (real_part("ct") / "etc" / "lintconf.yaml").read_text()
    except RealPartMissingError as exc:
        pytest.fail(str(exc), pytrace=False)
    ours = (REPO_ROOT / ".yamllint").read_text()
    body = "".join(line for line in ours.splitlines(keepends=True) if not line.startswith("# "))
    assert body == cts, "resync .yamllint with chart-testing's etc/lintconf.yaml (keep the header comment)"


def test_chart_yaml_metadata() -> None:
    chart = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())
    assert chart["apiVersion"] == "v2"
    assert chart["name"] == "multus"
    assert chart["version"] == "0.1.0"
    assert chart["appVersion"] == "v4.3.0"
    assert chart["kubeVersion"] == ">=1.29.0-0"


def test_ct_yaml_points_at_this_chart_and_cts_own_configs() -> None:
    ct = yaml.safe_load((REPO_ROOT / "ct.yaml").read_text())
    assert ct["chart-dirs"] == ["."]
    assert ct["charts"] == ["chart"]
    assert ct["validate-maintainers"] is False
    assert ct["validate-chart-schema"] is True and ct["validate-yaml"] is True
    assert ct["check-version-increment"] is False  # ct.yaml says why
    # ct's own etc/chart_schema.yaml and etc/lintconf.yaml (CT_CONFIG_DIR), not copies in the repository
    assert "chart-yaml-schema" not in ct and "lint-conf" not in ct


def _run_readme_generator(values: Path, readme: Path) -> subprocess.CompletedProcess[str]:
    if not README_GENERATOR.exists() or shutil.which("node") is None:
        pytest.fail(f"readme-generator not found at {README_GENERATOR} (or no node). Install it with: "
                    f"{NPM_INSTALL}", pytrace=False)
    return subprocess.run([str(README_GENERATOR), "--values", str(values), "--readme", str(readme)],
                          capture_output=True, text=True, check=False, timeout=120)


def test_readme_is_generated_from_values_comments(tmp_path: Path) -> None:
    """chart/README.md equals what readme-generator makes of values.yaml; it also fails on an undocumented value."""
    copy = tmp_path / "chart"
    shutil.copytree(CHART_DIR, copy)
    proc = _run_readme_generator(copy / "values.yaml", copy / "README.md")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    regenerated = (copy / "README.md").read_text()
    assert regenerated == (CHART_DIR / "README.md").read_text(), (
        "chart/README.md is out of date; regenerate it with: .cache/npm/node_modules/.bin/readme-generator "
        "--values chart/values.yaml --readme chart/README.md")


def test_readme_generator_rejects_an_undocumented_value(tmp_path: Path) -> None:
    """The check above is only worth something if a value without `## @param` breaks it."""
    copy = tmp_path / "chart"
    shutil.copytree(CHART_DIR, copy)
    with (copy / "values.yaml").open("a") as fh:
        fh.write("undocumentedValue: 1\n")
    proc = _run_readme_generator(copy / "values.yaml", copy / "README.md")
    assert proc.returncode != 0
    assert "Missing metadata for key: undocumentedValue" in proc.stdout + proc.stderr


def test_every_value_has_a_comment() -> None:
    """Each key line of values.yaml follows a comment block (the @param line or its `##` continuation)."""
    lines = (CHART_DIR / "values.yaml").read_text().splitlines()
    stack: list[tuple[int, bool]] = []  # (indent, documented) of open mappings
    for i, line in enumerate(lines):
        stripped = line.strip()
        if not stripped or stripped.startswith("#") or stripped.startswith("- "):
            continue
        if ":" not in stripped:
            continue
        indent = len(line) - len(line.lstrip())
        while stack and stack[-1][0] >= indent:
            stack.pop()
        j = i - 1
        while j >= 0 and lines[j].strip() == "":
            j -= 1
        has_comment = j >= 0 and lines[j].strip().startswith("#")
        parent_documented = bool(stack) and stack[-1][1]
        assert has_comment or parent_documented, f"values.yaml:{i + 1}: {stripped!r} has no comment"
        stack.append((indent, has_comment or parent_documented))
