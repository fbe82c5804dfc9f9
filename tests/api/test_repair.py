"""Repairing a cluster Multus was already deleted from the naive way (`kubectl delete -f multus-daemonset.yml`),
as docs/repair.md tells a user to: `check`, then `run --kubeconfig`, then `check` again. No chart installed."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from emulator.kubelet import SimulatedKubelet
from simcluster import SimCluster, cluster_fixture  # noqa: F401 - provides the `cluster` fixture

from multus_cleanup.cli import main

NS = "kube-system"


@pytest.fixture
def broken(cluster: SimCluster, monkeypatch: pytest.MonkeyPatch) -> tuple[SimCluster, list[str]]:
    """3 nodes whose Multus DaemonSet was deleted: its config stays, its binary went with the last pod."""
    monkeypatch.delenv("MULTUS_CLEANUP_JOB_NAME")  # a workstation: no hook Job owns the node pods
    monkeypatch.delenv("MULTUS_CLEANUP_JOB_UID")
    names = cluster.add_nodes(3, "thin")
    for name in names:
        (cluster.roots[name] / "opt/cni/bin/multus").unlink()
    return cluster, names


def run_cli(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    code = main(list(argv), stdout=out, stderr=io.StringIO())
    return code, out.getvalue()


def test_check_then_repair_then_check(broken: tuple[SimCluster, list[str]]) -> None:
    cluster, names = broken
    kubeconfig = str(cluster.kubeconfig)

    code, text = run_cli("check", "--kubeconfig", kubeconfig)
    assert code == 1
    for name in names:
        found = "found /etc/cni/net.d/10-bridge.conflist.old, /etc/cni/net.d/00-multus.conflist"
        assert f"{name}: not clean: {found}" in text
    assert 'new pods would fail with: failed to find plugin "multus" in path [/opt/cni/bin]' in text
    assert "result: NOT CLEAN" in text
    assert not any(cluster.restored(n) for n in names)  # check changed nothing

    code, text = run_cli("run", "--kubeconfig", kubeconfig)
    assert code == 0, text
    assert "result: SUCCESS" in text
    assert all(cluster.restored(n) for n in names)

    code, text = run_cli("check", "--kubeconfig", kubeconfig)
    assert code == 0, text
    assert "nodes: 3 (3 clean)" in text and "result: CLEAN" in text


def test_check_reports_json_per_node(broken: tuple[SimCluster, list[str]]) -> None:
    cluster, names = broken
    code, out = run_cli("check", "--kubeconfig", str(cluster.kubeconfig), "--output", "json")
    summary = json.loads(out)
    assert code == 1 and summary["success"] is False
    node = summary["nodes"][names[0]]
    assert node["status"] == "not clean"
    assert node["report"]["dry_run"] is True
    assert "/opt/cni/bin/passthru" in node["report"]["found"]
    assert node["report"]["pod_error_after"] == 'failed to find plugin "multus" in path [/opt/cni/bin]'


def test_context_picks_the_cluster(broken: tuple[SimCluster, list[str]], tmp_path: Path) -> None:
    cluster, _ = broken
    config: dict[str, Any] = yaml.safe_load(cluster.kubeconfig.read_text())
    config["clusters"].append({"name": "prod", "cluster": {"server": "https://127.0.0.1:1"}})
    config["contexts"].append({"name": "prod", "context": {"cluster": "prod", "user": "emulator"}})
    config["current-context"] = "prod"
    two = tmp_path / "two-contexts"
    two.write_text(yaml.safe_dump(config))
    code, text = run_cli("check", "--kubeconfig", str(two), "--context", "emulator")
    assert code == 1 and "result: NOT CLEAN" in text


def test_plan_changes_nothing_and_says_what_run_would_do(broken: tuple[SimCluster, list[str]]) -> None:
    cluster, names = broken
    cluster.server.log.clear()
    code, text = run_cli("plan", "--kubeconfig", str(cluster.kubeconfig))
    assert code == 0
    assert "DaemonSet kube-system/kube-multus-ds: not found, nothing to stop" in text
    assert "2. clean 3 ready node(s) of 3 matching {'kubernetes.io/os': 'linux'}" in text
    assert "nothing (user data is kept)" in text
    assert "hostNetwork: true" in text
    assert {r.verb for r in cluster.server.log.records()} <= {"get", "list"}
    assert not any(cluster.restored(n) for n in names)


def test_chart_repair_mode_config_repairs_the_cluster(broken: tuple[SimCluster, list[str]],
                                                      kubelet: SimulatedKubelet) -> None:
    """`helm install multus-repair ./chart --set repair.enabled=true` runs the cleanup with the chart's config."""
    import sys

    sys.path.insert(0, str(Path(__file__).parents[1] / "chart"))
    from helm import HELM_VERSIONS, Helm, helm_binary

    cluster, names = broken
    version, env_var = HELM_VERSIONS[-1]
    helm = Helm(version=version, path=helm_binary(version, env_var), home=cluster.tmp / "helm-home")
    result = helm.template([], {"repair.enabled": True, "cleanup.enabled": False}, release="multus-repair")
    assert result.ok, result.stderr
    configmap = next(d for d in result.objects() if d["kind"] == "ConfigMap"
                     and d["metadata"]["name"].endswith("-cleanup"))
    code, _summary, log = cluster.orchestrate("run", yaml.safe_load(configmap["data"]["config.yaml"]))
    assert code == 0, log
    assert all(cluster.restored(n) for n in names)
    assert kubelet.errors == []
