"""The layers, enforced: the import contract in pyproject.toml holds (and `lint-imports` would catch a break),
and the running `multus-cleanup node` loads neither the orchestrator nor kubernetes, yaml or jinja2.

Missing tools FAIL: `lint-imports` is import-linter, in the test extra.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from dataclasses import replace
from pathlib import Path

import pytest

from multus_cleanup.config import CleanupConfig, NodeConfig, load_config

REPO_ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = ("multus_cleanup.cluster", "kubernetes", "yaml", "jinja2")
BIN = Path(sys.executable).parent


def venv_tool(name: str) -> str:
    path = BIN / name
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.fail(f"{path} is missing (pip install -e '.[test]'); the layer checks cannot be skipped",
                    pytrace=False)
    return str(path)


def lint_imports(cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([venv_tool("lint-imports"), "--no-cache"], cwd=cwd, capture_output=True, text=True,
                          timeout=120, check=False, env=env)


def test_the_import_contract_holds() -> None:
    proc = lint_imports(REPO_ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Contracts: 1 kept, 0 broken." in proc.stdout


def test_the_contract_forbids_exactly_what_the_issue_names() -> None:
    config = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    (contract,) = config["contracts"]
    assert contract["type"] == "forbidden"
    assert contract["source_modules"] == ["multus_cleanup.node"]
    assert contract["forbidden_modules"] == list(FORBIDDEN)
    assert not contract.get("allow_indirect_imports"), "a chain through another module must count too"
    assert contract["ignore_imports"] == ["multus_cleanup.config -> yaml"], "the one allowed edge, no wildcard"


@pytest.mark.parametrize("bad_import", [
    "import kubernetes",
    "from ..cluster import kube",
    "import jinja2",
    "from .. import report\nimport yaml",
])
def test_lint_imports_catches_a_break(bad_import: str, tmp_path: Path) -> None:
    """Negative control: the same contract on a copy of the package with one bad import in the engine fails."""
    shutil.copytree(REPO_ROOT / "hook" / "multus_cleanup", tmp_path / "src" / "multus_cleanup",
                    ignore=shutil.ignore_patterns("__pycache__"))
    engine = tmp_path / "src" / "multus_cleanup" / "node" / "engine.py"
    engine.write_text(engine.read_text() + f"\n{bad_import}\n")
    shutil.copy(REPO_ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "src")}
    proc = lint_imports(tmp_path, env)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Contracts: 0 kept, 1 broken." in proc.stdout
    assert "multus_cleanup.node.engine ->" in proc.stdout


def imported_modules(args: list[str], env_extra: dict[str, str] | None = None) -> tuple[int, set[str], str]:
    """Run the console script `multus-cleanup ARGS` under `python -X importtime`: (exit code, every module it
    imported, stdout)."""
    env = {k: v for k, v in os.environ.items() if k != "MULTUS_CLEANUP_CONFIG"}
    env.update(env_extra or {})
    proc = subprocess.run([sys.executable, "-X", "importtime", venv_tool("multus-cleanup"), *args],
                          capture_output=True, text=True, timeout=60, check=False, env=env)
    modules = {m.group(1) for m in re.finditer(r"^import time:\s+\d+ \|\s+\d+ \|\s+(\S+)\s*$", proc.stderr, re.M)}
    assert "multus_cleanup.node.engine" in modules, proc.stderr[-2000:]
    return proc.returncode, modules, proc.stdout


def loaded(modules: set[str], roots: tuple[str, ...]) -> list[str]:
    return sorted(m for m in modules if any(m == r or m.startswith(f"{r}.") for r in roots))


@pytest.fixture
def host(tmp_path: Path) -> Path:
    root = tmp_path / "host"
    (root / "etc" / "cni" / "net.d").mkdir(parents=True)
    return root


def test_multus_cleanup_node_loads_no_orchestrator_kubernetes_yaml_or_jinja2(host: Path) -> None:
    code, modules, out = imported_modules(["node", "--host-root", str(host), "--dry-run", "--output", "json"])
    assert code == 0, out
    assert json.loads(out)["node"]
    assert loaded(modules, FORBIDDEN) == []


def test_as_node_pods_run_it_json_config_in_the_environment(host: Path) -> None:
    """The orchestrator hands node pods their `node:` section as JSON in $MULTUS_CLEANUP_CONFIG
    (cluster/nodepod.py): parsed with the standard library, no YAML parser loaded."""
    node = replace(NodeConfig(), cni_conf_dir="/etc/cni/other.d")
    text = json.dumps({"node": node.to_raw()}, separators=(",", ":"))
    code, modules, out = imported_modules(["node", "--host-root", str(host), "--dry-run", "--output", "json"],
                                          {"MULTUS_CLEANUP_CONFIG": text})
    assert code == 0, out
    assert loaded(modules, FORBIDDEN) == []
    assert load_config(None, text) == CleanupConfig(node=node)


def test_a_yaml_config_file_loads_yaml_and_still_nothing_else(host: Path, tmp_path: Path) -> None:
    """A YAML file given with --config needs the YAML parser (config/, the contract's one allowed edge)."""
    config = tmp_path / "config.yaml"
    config.write_text("node:\n  cniConfDir: /etc/cni/other.d\n")
    code, modules, out = imported_modules(["node", "--host-root", str(host), "--dry-run", "--config", str(config)])
    assert code == 0, out
    assert "yaml" in modules
    assert loaded(modules, ("multus_cleanup.cluster", "kubernetes", "jinja2")) == []


def test_the_other_commands_still_load_the_orchestrator() -> None:
    """Positive control: the import-time scan sees the orchestrator when it is loaded."""
    proc = subprocess.run([sys.executable, "-X", "importtime", venv_tool("multus-cleanup"), "plan", "--help"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "multus_cleanup.cluster.cli" in proc.stderr


def test_json_and_yaml_text_give_the_same_config() -> None:
    node = replace(NodeConfig(), cni_conf_dir="/etc/cni/other.d", cni_bin_dir="/opt/other/bin")
    as_json = json.dumps({"node": node.to_raw()})
    as_yaml = "node:\n" + "".join(f"  {k}: {json.dumps(v)}\n" for k, v in node.to_raw().items())
    assert load_config(None, as_json) == load_config(None, as_yaml) == CleanupConfig(node=node)
    # a YAML flow mapping that is not JSON still reads as YAML
    assert load_config(None, "{node: {cniConfDir: /etc/cni/other.d}}").node.cni_conf_dir == "/etc/cni/other.d"
