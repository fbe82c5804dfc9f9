"""RBAC proof: every request `multus-cleanup run` makes during a full uninstall (and the list of Events it
makes about a node pod that never reports) is allowed by the Role and ClusterRole that the real `helm
template` renders, and every rule (each verb of it) is used. The chart's own DaemonSet runs in the
emulator; the config is the chart's ConfigMap."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from emulator import RbacPolicy, RequestRecord, rule_allows
from emulator.kubelet import SimulatedKubelet
from emulator.objects import make_daemonset
from simcluster import NAD_CRD, SimCluster, cluster_fixture, nad  # noqa: F401 - provides the `cluster` fixture

from multus_cleanup.cluster.kube import connect
from multus_cleanup.cluster.podevents import why_stuck

sys.path.insert(0, str(Path(__file__).parents[1] / "chart"))
from helm import HELM_VERSIONS, Helm, helm_binary

NS = "kube-system"
SA = "multus-cleanup"


@pytest.fixture(params=[v for v, _ in HELM_VERSIONS], ids=lambda v: f"helm-{v}")
def helm(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Helm:
    version = request.param
    env_var = dict(HELM_VERSIONS)[version]
    return Helm(version=version, path=helm_binary(version, env_var), home=tmp_path_factory.mktemp("helm-home"))


def rendered(helm: Helm, values: dict[str, Any]) -> list[dict[str, Any]]:
    result = helm.template([], values)
    assert result.ok, result.stderr
    return result.objects()


def unused_rules(policy: RbacPolicy, records: list[RequestRecord]) -> list[str]:
    """Each verb of each rule must have allowed at least one request."""
    unused = []
    scopes = [(None, policy.cluster_rules), *list(policy.namespace_rules.items())]
    for namespace, rules in scopes:
        for rule in rules:
            for verb in rule["verbs"]:
                narrowed = {**rule, "verbs": [verb]}
                if not any(rule_allows(narrowed, r) and (namespace is None or r.namespace == namespace)
                           for r in records):
                    unused.append(f"{namespace or 'cluster'}: {verb} {rule}")
    return unused


@pytest.mark.parametrize("scenario", ["defaults", "delete-nads-and-extras", "delete-crd"])
def test_every_call_is_allowed_and_every_rule_used(cluster: SimCluster, kubelet: SimulatedKubelet, helm: Helm,
                                                   scenario: str) -> None:
    values: dict[str, Any] = {"cleanup.nodePod.timeoutSeconds": 30}
    if scenario == "delete-nads-and-extras":
        values |= {"cleanup.deleteNetworkAttachmentDefinitions": True,
                   "cleanup.multusDaemonSets": [{"namespace": "multus-old", "name": "kube-multus-ds"}],
                   "cleanup.extraResources": [
                       {"group": "", "version": "v1", "resource": "configmaps", "name": "multus-leftover",
                        "namespace": NS},
                       {"group": "rbac.authorization.k8s.io", "version": "v1", "resource": "clusterroles",
                        "name": "multus-old"}]}
    if scenario == "delete-crd":
        values |= {"cleanup.deleteCRD": True}
    objects = rendered(helm, values)
    by_kind = {(d["kind"], d["metadata"]["name"]): d for d in objects}
    cluster.create("daemonsets", NS, by_kind[("DaemonSet", "multus")], group="apps")
    names = cluster.add_nodes(5, "thick", control_planes=1, cordoned=1)
    cluster.create("customresourcedefinitions", None, NAD_CRD, group="apiextensions.k8s.io")
    cluster.create("network-attachment-definitions", "default", nad("macvlan"), group="k8s.cni.cncf.io")
    if scenario == "delete-nads-and-extras":
        cluster.create("namespaces", None, {"apiVersion": "v1", "kind": "Namespace",
                                            "metadata": {"name": "multus-old"}})
        cluster.create("daemonsets", "multus-old", make_daemonset("kube-multus-ds", "multus-old"), group="apps")
        cluster.create("configmaps", NS, {"apiVersion": "v1", "kind": "ConfigMap",
                                          "metadata": {"name": "multus-leftover", "namespace": NS}})
        cluster.create("clusterroles", None, {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                                              "metadata": {"name": "multus-old"}, "rules": []},
                       group="rbac.authorization.k8s.io")
    assert kubelet.wait_idle()
    kubelet.termination_delay = 0.5  # Multus pods take a moment to go, as in a real cluster: watched
    # A kubelet that keeps less of the termination message than the node wrote: the cleanup reads each
    # node's report from its pod's log instead (pods/log get), so that rule is exercised too.
    kubelet.termination_message_limit = 200
    cluster.server.log.clear()

    config = yaml.safe_load(by_kind[("ConfigMap", "multus-cleanup")]["data"]["config.yaml"])
    code, summary, log = cluster.orchestrate("run", config)
    # What the run asks about a node pod that never reports (here no pod is stuck): its own Events.
    assert why_stuck(connect(str(cluster.kubeconfig)), NS, "multus-cleanup-abcde-node-0-0") == ""

    assert code == 0, log
    assert all(cluster.restored(n) for n in names)
    records = [r for r in cluster.server.log.records() if r.resource_request]
    policy = RbacPolicy.from_manifests(objects, SA, NS)
    assert [f"{r.verb} {r.full_resource} ns={r.namespace} name={r.name}" for r in policy.violations(records)] == []
    assert unused_rules(policy, records) == []
    if scenario != "defaults":
        assert summary["deleted"], summary
