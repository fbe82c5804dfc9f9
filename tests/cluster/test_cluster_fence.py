"""The cleanup's ServiceAccount holds the right to create pods in the release namespace; the chart's
ValidatingAdmissionPolicy fences it on the real API server: the node pods it needs are admitted, any other
pod it asks for is refused with the reason, and the uninstall still works behind the fence."""

from __future__ import annotations

import copy
import json
import subprocess
from typing import Any

import pytest
import yaml
from clusterkit import HELM4, NAMESPACE, ClusterKit

from multus_cleanup.cluster.nodepod import NodePodFactory
from multus_cleanup.config import parse_config

pytestmark = pytest.mark.cluster

SERVICE_ACCOUNT = f"system:serviceaccount:{NAMESPACE}:multus-cleanup"
POLICY = f"multus-cleanup.{NAMESPACE}"


def create_as_cleanup(kit: ClusterKit, pod: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    """`kubectl create --dry-run=server` with the cleanup ServiceAccount's identity: admission runs, nothing is made."""
    return subprocess.run([str(kit.cluster.bins / "kubectl"), "--kubeconfig", str(kit.cluster.kubeconfig),
                           "--as", SERVICE_ACCOUNT, "create", "--dry-run=server", "-f", "-"],
                          input=json.dumps(pod), capture_output=True, text=True, timeout=60, check=False)


def test_the_cleanup_service_account_may_create_node_pods_and_nothing_else(clean_cluster: ClusterKit) -> None:
    kit = clean_cluster
    kit.install(HELM4, "multus", "mode=thick")
    kit.multus_pods_running()
    assert kit.cluster.get_json("validatingadmissionpolicybinding", POLICY)["spec"]["validationActions"] == ["Deny"]
    configmap = kit.cluster.get_json("configmap", "multus-cleanup", "-n", NAMESPACE)
    config = parse_config(yaml.safe_load(configmap["data"]["config.yaml"]))
    node_pod = NodePodFactory(config, "fence", None).render(kit.nodes[-1])

    admitted = create_as_cleanup(kit, node_pod)
    assert admitted.returncode == 0, f"the node pod itself was refused:\n{admitted.stderr}"

    other = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "not-a-node-pod", "namespace": NAMESPACE},
             "spec": {"containers": [{"name": "c", "image": "localhost/multus-cleanup-test/busybox:1"}]}}
    shell = copy.deepcopy(node_pod)
    shell["spec"]["containers"][0]["command"] = ["sh", "-c", "cat /host/etc/cni/net.d/*"]
    root = copy.deepcopy(node_pod)
    root["spec"]["volumes"].append({"name": "root", "hostPath": {"path": "/"}})
    privileged = copy.deepcopy(node_pod)
    privileged["spec"]["containers"][0]["securityContext"] = {"privileged": True}
    token = copy.deepcopy(node_pod)
    token["spec"]["automountServiceAccountToken"] = True
    for pod, why in ((other, "only node cleanup pods"), (shell, "with `multus-cleanup node`, and nothing else"),
                     (root, "hostPath volumes of a node cleanup pod are limited to"),
                     (privileged, "is privileged"), (token, "carries no API token")):
        refused = create_as_cleanup(kit, pod)
        assert refused.returncode != 0, f"admitted a pod the fence must refuse ({why})"
        assert POLICY in refused.stderr and why in refused.stderr, refused.stderr

    result = kit.uninstall(HELM4)
    assert result.returncode == 0, f"helm uninstall failed behind the fence:\n{result.stdout}\n{result.stderr}"
    assert all(kit.multus_leftovers(node) == [] for node in kit.nodes)
