"""A cluster that Multus broke: Multus deleted the naive way (every object of the release deleted, no hook,
as `kubectl delete -f multus-daemonset.yml` does), new pods failing with the runtime's own message, then the
repair, from a workstation (`multus-cleanup run --kubeconfig`) and with the chart's repair mode."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from clusterkit import CHART, HELM3, HELM4, IMAGE_VALUES, NAMESPACE, PRIMARY_CONFIG, ClusterKit, wait_for
from devcluster import __main__ as tool

pytestmark = pytest.mark.cluster


def break_the_cluster(kit: ClusterKit, helm: str) -> None:
    """Thin Multus as upstream deploys it (no config cleanup on exit), then deleted without its cleanup."""
    kit.install(helm, "multus", "mode=thin", "config.cleanupConfigOnExit=false")
    kit.multus_pods_running()
    kit.helm(helm, "uninstall", "multus", "-n", NAMESPACE, "--no-hooks", "--wait", "--timeout", "2m")
    wait_for("the Multus pods gone", lambda: not kit.pods(NAMESPACE, "app.kubernetes.io/instance=multus"), 120)
    for node in kit.nodes:
        assert kit.loaded_config(node) == "00-multus.conflist", f"{node}: Multus's config is not left behind"
    kit.start_pod("broken", kit.nodes[-1])
    message = wait_for("the runtime's error for the new pod", lambda: kit.pod_state("broken").waiting, 90)
    # the runtime's own words: the thin binary's token belongs to a ServiceAccount that is gone (Unauthorized)
    # or, while the API server still has it, lost its ClusterRoleBinding (forbidden)
    assert 'plugin type="multus"' in message and ("Unauthorized" in message or "forbidden" in message), message
    kit.kubectl("delete", "pod", "broken", "-n", "default", "--grace-period=1", "--wait=true", check=False)


def assert_repaired(kit: ClusterKit, prefix: str) -> None:
    for node in kit.nodes:
        assert kit.multus_leftovers(node) == [], f"{node}: Multus files left after the repair"
        assert kit.loaded_config(node) == PRIMARY_CONFIG
    kit.pod_on_every_node(prefix)


def test_repair_from_a_workstation(clean_cluster: ClusterKit, tmp_path: Path) -> None:
    kit = clean_cluster
    break_the_cluster(kit, HELM4)
    config = tmp_path / "repair.yaml"
    config.write_text(yaml.safe_dump({"cluster": {"nodePod": {"image": tool.HOOK_IMAGE, "imagePullPolicy": "Never"}}}))
    command = [str(Path(sys.executable).with_name("multus-cleanup")), "--kubeconfig", str(kit.cluster.kubeconfig),
               "--config", str(config)]

    def cleanup(verb: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([command[0], verb, *command[1:]], capture_output=True, text=True, timeout=300,
                              check=False)

    before = cleanup("check")
    assert before.returncode == 1 and "not clean" in before.stdout, before.stdout + before.stderr
    assert all(node in before.stdout for node in kit.nodes), before.stdout
    report = json.loads(subprocess.run([command[0], "check", *command[1:], "--output", "json"], capture_output=True,
                                       text=True, timeout=300, check=False).stdout)
    assert report["success"] is False
    for node in kit.nodes:
        seen = report["nodes"][node]
        assert seen["status"] == "not clean" and seen["report"]["dry_run"] is True, seen
        assert "/etc/cni/net.d/00-multus.conflist" in seen["report"]["found"], seen
    plan = cleanup("plan")
    assert plan.returncode == 0, plan.stdout + plan.stderr
    assert "DaemonSet kube-system/kube-multus-ds: not found, nothing to stop" in plan.stdout
    assert f"2. clean {len(kit.nodes)} ready node(s) of {len(kit.nodes)}" in plan.stdout
    assert "nothing (user data is kept)" in plan.stdout and "hostNetwork: true" in plan.stdout
    assert all(kit.multus_leftovers(node) for node in kit.nodes), "plan changed a node"
    # --context picks the cluster out of a kubeconfig whose current context is another one
    two = yaml.safe_load(kit.cluster.kubeconfig.read_text())
    two["clusters"].append({"name": "prod", "cluster": {"server": "https://127.0.0.1:1"}})
    two["contexts"].append({"name": "prod", "context": {"cluster": "prod", "user": two["users"][0]["name"]}})
    two["current-context"] = "prod"
    (tmp_path / "two-contexts").write_text(yaml.safe_dump(two))
    picked = subprocess.run([command[0], "check", "--kubeconfig", str(tmp_path / "two-contexts"), "--context",
                             two["contexts"][0]["name"], "--config", str(config)], capture_output=True, text=True,
                            timeout=300, check=False)
    assert picked.returncode == 1 and "result: NOT CLEAN" in picked.stdout, picked.stdout + picked.stderr
    repaired = cleanup("run")
    assert repaired.returncode == 0 and "result: SUCCESS" in repaired.stdout, repaired.stdout + repaired.stderr
    after = cleanup("check")
    assert after.returncode == 0 and "result: CLEAN" in after.stdout, after.stdout + after.stderr
    assert_repaired(kit, "repaired")


def test_repair_with_the_charts_repair_mode(clean_cluster: ClusterKit) -> None:
    kit = clean_cluster
    break_the_cluster(kit, HELM3)
    sets = [a for v in (*IMAGE_VALUES, "repair.enabled=true") for a in ("--set", v)]
    kit.helm(HELM3, "install", "multus-repair", str(CHART), "-n", NAMESPACE, *sets, "--wait", "--wait-for-jobs",
             "--timeout", "4m")
    assert_repaired(kit, "repaired-by-chart")
    kit.helm(HELM3, "uninstall", "multus-repair", "-n", NAMESPACE, "--wait", "--timeout", "2m")
