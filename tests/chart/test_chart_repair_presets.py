"""`repair.preset` (real Helm 3 and Helm 4): each platform's preset renders the cleanup that
`multus-cleanup run --preset` runs, from the one source (hook/multus_cleanup/cluster/presets.yaml, copied to
chart/files/repair-presets.yaml by tools/sync-presets); the user's values win; an unknown name fails before
anything is installed; NOTES.txt says how to switch Multus off in the platform first."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from helm import CHART_DIR, NAMESPACE, REPO_ROOT, Helm, Render, RenderResult, split_documents

from multus_cleanup.cluster.nodepod import NodePodFactory, validate_pod
from multus_cleanup.cluster.presets import get_preset, load_presets
from multus_cleanup.config import CleanupConfig, parse_config

pytestmark = pytest.mark.helm
PRESETS = sorted(load_presets())
VAP = "admissionregistration.k8s.io/v1/ValidatingAdmissionPolicy"


def repair(preset: str, **values: Any) -> dict[str, Any]:
    return {"repair.enabled": True, "repair.preset": preset, **values}


def cleanup_config(result: RenderResult) -> dict[str, Any]:
    assert result.ok, result.stderr
    configmap = next(d for d in result.objects() if d["kind"] == "ConfigMap"
                     and d["metadata"]["name"].endswith("-cleanup"))
    raw: dict[str, Any] = yaml.safe_load(configmap["data"]["config.yaml"])
    return raw


def daemonsets(config: CleanupConfig) -> list[str]:
    return [f"{r.namespace}/{r.name}" for r in config.cluster.multus_daemonsets]


def test_the_charts_copy_of_the_presets_is_the_hook_packages() -> None:
    proc = subprocess.run([sys.executable, str(REPO_ROOT / "tools" / "sync-presets"), "--check"],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, f"run tools/sync-presets: {proc.stderr}"


@pytest.mark.parametrize("name", PRESETS)
def test_the_chart_and_the_cli_run_the_same_cleanup_for_a_preset(helm: Helm, render: Render, name: str) -> None:
    result = render(helm, set_values=repair(name))
    chart_raw = cleanup_config(result)
    chart = parse_config(chart_raw)
    preset = get_preset(name)
    cli = parse_config(preset.apply(None))  # `multus-cleanup run --preset NAME`, no config file
    assert chart.node == cli.node
    assert daemonsets(chart) == daemonsets(cli) == preset.daemonsets
    # The Job runs `run --config <the ConfigMap> --preset NAME`: the preset changes nothing the chart resolved
    job = next(d for d in result.objects() if d["kind"] == "Job")
    assert job["spec"]["template"]["spec"]["containers"][0]["args"] == [
        "run", "--config", "/etc/multus-cleanup/config.yaml", "--preset", name]
    assert parse_config(preset.apply(chart_raw)) == chart
    assert result.kind("DaemonSet") == []  # repair mode installs no Multus
    validate_pod(NodePodFactory(chart, "abcde", None).render("node-a"))


@pytest.mark.parametrize("name", PRESETS)
def test_rbac_and_the_fence_follow_the_presets_daemonsets_and_paths(helm: Helm, render: Render, name: str) -> None:
    result = render(helm, set_values=repair(name), api_versions=[VAP])
    assert result.ok, result.stderr
    preset = get_preset(name)
    by_namespace: dict[str, set[str]] = {}
    for ref in preset.daemonsets:
        namespace, ds = ref.split("/")
        by_namespace.setdefault(namespace, set()).add(ds)
    roles = {d["metadata"]["namespace"]: d for d in result.objects() if d["kind"] == "Role"}
    for namespace, names in by_namespace.items():
        rule = next(r for r in roles[namespace]["rules"] if r["resources"] == ["daemonsets"])
        assert set(rule["resourceNames"]) == names and rule["verbs"] == ["get", "patch"]
    policy = next(d for d in result.objects() if d["kind"] == "ValidatingAdmissionPolicy")
    fenced = yaml.safe_load(next(v["expression"] for v in policy["spec"]["variables"] if v["name"] == "hostPaths"))
    node = preset.config["node"]
    assert node["cniConfDir"] in fenced and node["cniBinDir"] in fenced
    pod = NodePodFactory(parse_config(cleanup_config(result)), "abcde", None).render("node-a")
    assert {v["hostPath"]["path"] for v in pod["spec"]["volumes"]} <= set(fenced)


def test_the_users_values_win_over_the_presets(helm: Helm, render: Render) -> None:
    mine = {"hostPaths.cniBinDir": "/usr/libexec/cni",
            "cleanup.multusDaemonSets": [{"namespace": "kubevirt-hyperconverged", "name": "multus"}]}
    config = parse_config(cleanup_config(render(helm, set_values=repair("kubevirt-cnao", **mine))))
    assert config.node.cni_bin_dir == "/usr/libexec/cni" and config.node.cni_conf_dir == "/etc/cni/net.d"
    assert daemonsets(config) == ["kubevirt-hyperconverged/multus"]


@pytest.mark.parametrize("preset", ["RKE2", "k3s", "openshift"])
def test_an_unknown_preset_fails_naming_the_field_and_the_valid_presets(helm: Helm, render: Render,
                                                                        preset: str) -> None:
    result = render(helm, set_values=repair(preset))
    assert not result.ok and result.stdout == ""
    assert f'repair.preset: unknown preset "{preset}"; valid presets: {", ".join(PRESETS)}' in result.stderr


def test_a_preset_outside_repair_mode_fails(helm: Helm, render: Render) -> None:
    for values in ({"repair.preset": "rke2"}, {"repair.preset": "rke2", "cleanup.enabled": False}):
        result = render(helm, set_values=values)
        assert not result.ok and 'repair.preset "rke2" needs repair.enabled=true' in result.stderr, values


def _chart_copy(tmp_path: Path) -> Path:
    chart = tmp_path / "multus"
    shutil.copytree(CHART_DIR, chart, ignore=shutil.ignore_patterns("tests"))
    return chart


def _template(helm: Helm, chart: Path, *sets: str) -> RenderResult:
    args = ["template", "multus", str(chart), "--namespace", NAMESPACE]
    for item in sets:
        args += ["--set", item]
    proc = helm.run(*args)
    return RenderResult(proc.returncode, proc.stdout, proc.stderr,
                        split_documents(proc.stdout) if proc.returncode == 0 else ())


def test_a_presets_paths_apply_where_hostpaths_keeps_the_charts_defaults(helm: Helm, tmp_path: Path) -> None:
    """With a preset that moves every path: each is applied while hostPaths.* keeps values.yaml's default
    (so the chart's idea of the defaults is values.yaml's), and a hostPaths value of the user's own wins."""
    chart = _chart_copy(tmp_path)
    presets_file = chart / "files" / "repair-presets.yaml"
    data = yaml.safe_load(presets_file.read_text())
    moved = {"cniConfDir": "/var/lib/p/net.d", "cniBinDir": "/var/lib/p/bin", "multusConfDir": "/var/lib/p/multus.d",
             "socketDir": "/run/p/multus", "cacheDir": "/var/lib/p/multus-cache"}
    data["presets"]["moved"] = {**data["presets"]["rke2"], "config": {"node": moved}}
    presets_file.write_text(yaml.safe_dump(data))

    config = parse_config(cleanup_config(_template(helm, chart, "repair.enabled=true", "repair.preset=moved")))
    assert config.node.to_raw() | moved == config.node.to_raw()  # every path is the preset's
    assert daemonsets(config) == []  # the preset names none, and neither does the user

    mine = parse_config(cleanup_config(_template(helm, chart, "repair.enabled=true", "repair.preset=moved",
                                                 "hostPaths.cniConfDir=/etc/kubernetes/cni/net.d")))
    assert mine.node.cni_conf_dir == "/etc/kubernetes/cni/net.d" and mine.node.cni_bin_dir == moved["cniBinDir"]


def test_notes_tell_how_to_switch_multus_off_in_the_platform(helm: Helm, tmp_path: Path) -> None:
    """NOTES.txt as `helm install` prints it (rendered through a template: `helm template` leaves NOTES out)."""
    chart = _chart_copy(tmp_path)
    notes = (chart / "templates" / "NOTES.txt").read_text()
    (chart / "templates" / "NOTES.txt").unlink()
    (chart / "templates" / "zz-notes.yaml").write_text(
        '{{- define "test.notes" -}}\n' + notes + '\n{{- end -}}\n'
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: notes\ndata:\n"
        '  notes: |\n{{ include "test.notes" . | indent 4 }}\n')

    def rendered(*sets: str) -> str:
        result = _template(helm, chart, *sets)
        assert result.ok, result.stderr
        text: str = next(d for d in result.objects() if d["metadata"]["name"] == "notes")["data"]["notes"]
        return text

    assert "WARNING" not in rendered("repair.enabled=true")
    for name in PRESETS:
        preset = get_preset(name)
        text = rendered("repair.enabled=true", f"repair.preset={name}")
        flat = " ".join(text.split())
        assert f"WARNING: {preset.platform} installs Multus itself. Switch it off there first" in flat
        assert preset.switch_off in text and preset.comes_back in text  # unwrapped: its commands copy whole
        assert all(ds in flat for ds in preset.daemonsets)
