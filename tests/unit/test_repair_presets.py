"""Repair presets (hook/multus_cleanup/cluster/presets.yaml): what each platform's preset stops and cleans,
how the user's own config wins over it, and that an unknown name stops the run before anything happens.
The chart's side, and that both agree, is tests/chart/test_chart_repair_presets.py."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import yaml

from multus_cleanup.cli import main
from multus_cleanup.cluster import kube
from multus_cleanup.cluster.presets import CLUSTER_KEYS, NODE_KEYS, get_preset, load_presets
from multus_cleanup.config import ConfigError, parse_config

ROOT = Path(__file__).parents[2]
KUBESPRAY = [f"kube-multus-{kind}-{arch}" for kind in ("ds", "containerd", "crio", "docker")
             for arch in ("amd64", "arm64", "arm")]
# name -> (DaemonSets stopped, CNI conf dir, CNI bin dir), as read from each platform's sources (presets.yaml)
FACTS = {
    "rke2": (["kube-system/rke2-multus"], "/etc/cni/net.d", "/opt/cni/bin"),
    "kubespray": ([f"kube-system/{name}" for name in KUBESPRAY], "/etc/cni/net.d", "/opt/cni/bin"),
    "kubevirt-cnao": (["cluster-network-addons/multus"], "/etc/cni/net.d", "/opt/cni/bin"),
    "nvidia-network-operator": (["nvidia-network-operator/kube-multus-ds"], "/etc/cni/net.d", "/opt/cni/bin"),
}


def test_there_is_a_preset_for_each_platform_that_ships_multus() -> None:
    assert sorted(load_presets()) == sorted(FACTS)


@pytest.mark.parametrize("name", sorted(FACTS))
def test_a_preset_alone_is_a_whole_config(name: str) -> None:
    daemonsets, conf_dir, bin_dir = FACTS[name]
    config = parse_config(get_preset(name).apply(None))
    assert [f"{r.namespace}/{r.name}" for r in config.cluster.multus_daemonsets] == daemonsets
    assert (config.node.cni_conf_dir, config.node.cni_bin_dir) == (conf_dir, bin_dir)
    assert config.node.multus_conf_dir == f"{conf_dir}/multus.d"
    # everything else stays the model's default: a preset only names the platform's Multus
    default = parse_config({})
    assert config.cluster.node_pod == default.cluster.node_pod
    assert config.node.config_files == default.node.config_files


@pytest.mark.parametrize("name", sorted(FACTS))
def test_a_preset_sets_only_what_the_chart_maps_and_says_how_to_switch_multus_off(name: str) -> None:
    preset = get_preset(name)
    assert set(preset.config) <= {"node", "cluster"}
    assert set(preset.config.get("node") or {}) <= NODE_KEYS
    assert set(preset.config.get("cluster") or {}) <= CLUSTER_KEYS
    warning = preset.warning()
    assert preset.platform in warning and preset.switch_off in warning and preset.comes_back in warning
    assert "docs/repair.md" in warning


def test_what_the_user_sets_wins_and_the_preset_fills_in_the_rest() -> None:
    preset = get_preset("rke2")
    raw = preset.apply({"node": {"cniBinDir": "/usr/libexec/cni"},
                        "cluster": {"concurrency": 7, "multusDaemonSets": [{"namespace": "a", "name": "b"}]}})
    config = parse_config(raw)
    assert config.node.cni_bin_dir == "/usr/libexec/cni"  # the user's
    assert config.node.cni_conf_dir == "/etc/cni/net.d"  # the preset's
    assert [(r.namespace, r.name) for r in config.cluster.multus_daemonsets] == [("a", "b")]  # the user's list
    assert config.cluster.concurrency == 7
    assert preset.config["cluster"]["multusDaemonSets"] == [{"namespace": "kube-system", "name": "rke2-multus"}]


@pytest.mark.parametrize(("raw", "field"), [
    ({"node": "/etc/cni/net.d"}, "node"),
    ({"cluster": {"multusDaemonSets": "rke2-multus"}}, "cluster.multusDaemonSets"),
    ({"nodes": {}}, "nodes"),
])
def test_a_mistake_under_a_preset_is_still_named_by_its_field(raw: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(get_preset("kubespray").apply(raw))
    assert caught.value.field == field, str(caught.value)


def test_an_unknown_preset_names_the_field_and_the_valid_presets() -> None:
    with pytest.raises(ConfigError) as caught:
        get_preset("RKE2")
    assert caught.value.field == "--preset"
    assert "kubespray, kubevirt-cnao, nvidia-network-operator, rke2" in caught.value.problem


@pytest.mark.parametrize("command", ["run", "plan", "check"])
def test_an_unknown_preset_stops_the_command_before_it_connects(command: str, monkeypatch: pytest.MonkeyPatch,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    def no_cluster(*_: object) -> None:
        raise AssertionError("connected to a cluster with an unknown preset")

    monkeypatch.setattr(kube, "connect", no_cluster)
    assert main([command, "--preset", "k3s", "--kubeconfig", "/nonexistent"]) == 2
    err = capsys.readouterr().err
    assert "--preset: unknown preset 'k3s'; valid presets: kubespray, kubevirt-cnao, nvidia-network-operator, rke2" \
        in err


def test_a_run_with_a_preset_starts_with_the_platforms_switch(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    seen = []

    def no_cluster(*_: object) -> None:
        seen.append(True)
        raise RuntimeError("no cluster here")

    monkeypatch.setattr(kube, "connect", no_cluster)
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"node": {"cniConfDir": "/etc/cni/other.d"}}))
    with caplog.at_level(logging.WARNING, logger="multus_cleanup"):
        assert main(["run", "--preset", "nvidia-network-operator", "--config", str(config)]) == 1
    assert seen == [True]  # the preset and the config were read before the connection
    warning = get_preset("nvidia-network-operator").warning()
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING] == [warning]
    assert "nicclusterpolicy nic-cluster-policy" in warning


def test_the_help_and_the_chart_name_every_preset(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    values = (ROOT / "chart" / "values.yaml").read_text()
    param = next(line for line in values.splitlines() if "@param repair.preset" in line)
    for name in load_presets():
        assert name in help_text, f"multus-cleanup run --help does not name the preset {name}"
        assert f"`{name}`" in param, f"values.yaml's repair.preset does not name the preset {name}"


@pytest.mark.parametrize("name", sorted(FACTS))
def test_docs_repair_has_a_section_per_preset_with_its_switch_and_command(name: str) -> None:
    text = (ROOT / "docs" / "repair.md").read_text()
    heading = next((line for line in text.splitlines() if line.startswith("### ") and f"(`{name}`)" in line), None)
    assert heading, f"docs/repair.md has no section `### ... (`{name}`)`"
    section = text.split(heading, 1)[1].split("\n### ", 1)[0].split("\n## ", 1)[0]
    assert "Switch it off:" in section and f"--preset {name}" in section
    for ref in get_preset(name).daemonsets:
        namespace, daemonset = ref.split("/")
        assert namespace in section and daemonset.split("-")[0] in section, ref
