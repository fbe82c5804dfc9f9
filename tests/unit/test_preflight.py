"""The words of the checks before the first change and after the sweep: advice per kind of admission
rejection, the controllers named by a DaemonSet's metadata, the attachedPods setting."""

from __future__ import annotations

import pytest

from multus_cleanup.cluster.comeback import tracked_by
from multus_cleanup.cluster.preflight import _advice, describe_attached
from multus_cleanup.config import ConfigError
from multus_cleanup.config.cluster import parse_cluster_config


@pytest.mark.parametrize(("message", "advice"), [
    ('pods "x" is forbidden: violates PodSecurity "baseline:latest": hostPath volumes',
     "pod-security.kubernetes.io/enforce=privileged"),
    ('pods "x" is forbidden: exceeded quota: pods, requested: pods=1', "kubectl describe resourcequota"),
    ('pods "x" is forbidden: insufficient quota to match these scopes: [{PriorityClass In [system-node-critical '
     'system-cluster-critical]}]', "cleanup.priorityClassName to another class"),
    ('pods "x" is forbidden: maximum memory usage per Container is 64Mi, but limit is 128Mi',
     "cleanup.nodePod.resources"),
    ('admission webhook "validate.kyverno.svc" denied the request: hostPath is not allowed',
     "add an exception for pods labelled app.kubernetes.io/name=multus-cleanup"),
    ('Pod "x" is invalid: spec.containers[0].securityContext: Invalid value', "fix the field it names"),
])
def test_each_rejection_gets_the_advice_that_fits(message: str, advice: str) -> None:
    assert advice in _advice(message, "kube-system")


def test_the_controllers_a_daemonset_names() -> None:
    ds = {"metadata": {
        "labels": {"app.kubernetes.io/instance": "multus", "kustomize.toolkit.fluxcd.io/name": "infra"},
        "annotations": {"argocd.argoproj.io/tracking-id": "multus:apps/DaemonSet:kube-system/multus"},
        "ownerReferences": [{"apiVersion": "k8s.cni.cncf.io/v1", "kind": "MultusOperator", "name": "default"}]}}
    found = tracked_by(ds)
    assert [f.split(" ")[0] for f in found] == ["Argo", "Flux", "MultusOperator"], found
    assert "Flux (Kustomization) (kustomize.toolkit.fluxcd.io/name=infra)" in found
    assert tracked_by({"metadata": {"labels": {"app.kubernetes.io/managed-by": "Helm"}}}) == []  # Helm: us


def test_attached_pods_policy_is_checked_and_named() -> None:
    assert parse_cluster_config({}).attached_pods == "warn"
    assert parse_cluster_config({"attachedPods": "fail"}).attached_pods == "fail"
    with pytest.raises(ConfigError, match=r"cluster\.attachedPods.*warn, fail"):
        parse_cluster_config({"attachedPods": "ignore"})
    text = describe_attached([f"default/p{i} (networks: a)" for i in range(25)], "fail")
    assert "25 pod(s)" in text and "and 5 more" in text and "cleanup.attachedPods=warn" in text
