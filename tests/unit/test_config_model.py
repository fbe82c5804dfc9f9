"""The one config model: what a config file may say, what it means, and how a mistake is named."""

from __future__ import annotations

from pathlib import Path

import pytest

from multus_cleanup.config import ConfigError, load_config, parse_config
from multus_cleanup.config.node import check_backup_dir


def test_the_defaults_are_multus_v4s_layout_and_a_careful_run() -> None:
    config = parse_config({})
    assert (config.node.cni_conf_dir, config.node.cni_bin_dir) == ("/etc/cni/net.d", "/opt/cni/bin")
    assert config.node.multus_conf_dir == "/etc/cni/net.d/multus.d"  # follows cniConfDir
    assert config.cluster.unreachable_nodes == "fail" and config.cluster.attached_pods == "warn"
    assert config.cluster.delete_crd is False and config.cluster.delete_network_attachment_definitions is False


def test_the_multus_data_dir_follows_a_moved_config_dir() -> None:
    config = parse_config({"node": {"cniConfDir": "/var/lib/rancher/k3s/agent/etc/cni/net.d"}})
    assert config.node.multus_conf_dir == "/var/lib/rancher/k3s/agent/etc/cni/net.d/multus.d"


@pytest.mark.parametrize(("raw", "field"), [
    ({"nodes": {}}, "nodes"),
    ({"node": {"cniConfDir": "etc/cni"}}, "node.cniConfDir"),
    ({"cluster": {"concurrency": 0}}, "cluster.concurrency"),
    ({"cluster": {"unreachableNodes": "ignore"}}, "cluster.unreachableNodes"),
    ({"cluster": {"nodePod": {"image": "has space"}}}, "cluster.nodePod.image"),
])
def test_a_mistake_is_named_by_its_field(raw: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(raw)
    assert caught.value.field == field, str(caught.value)


def test_a_json_and_a_yaml_file_mean_the_same(tmp_path: Path) -> None:
    (tmp_path / "c.json").write_text('{"cluster": {"concurrency": 7}}')
    (tmp_path / "c.yaml").write_text("cluster:\n  concurrency: 7\n")
    assert load_config(str(tmp_path / "c.json")) == load_config(str(tmp_path / "c.yaml"))
    assert load_config(None, env_text='{"cluster": {"concurrency": 7}}').cluster.concurrency == 7


def test_a_backup_dir_inside_what_is_cleaned_is_refused() -> None:
    node = parse_config({}).node
    with pytest.raises(ConfigError) as caught:
        check_backup_dir(node, "/etc/cni/net.d/backup")
    assert caught.value.field == "--backup-dir" and "inside node.cniConfDir" in str(caught.value)
    check_backup_dir(node, "/var/backups/multus")  # outside: fine
