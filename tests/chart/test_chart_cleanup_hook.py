"""The rendered cleanup hook (real Helm 3 and Helm 4): what Helm, Argo CD and the orchestrator rely on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from helm import CHART_DIR, Helm, Render, RenderResult

from multus_cleanup.cluster.nodepod import NodePodFactory, validate_pod
from multus_cleanup.config import parse_config

pytestmark = pytest.mark.helm
CLEANUP = "cleanup"


def cleanup_objects(result: RenderResult) -> dict[str, dict[str, Any]]:
    assert result.ok, result.stderr
    found = {}
    for doc in result.objects():
        if (doc["metadata"].get("labels") or {}).get("app.kubernetes.io/component") == CLEANUP:
            found[f"{doc['kind']}/{doc['metadata'].get('namespace', '')}/{doc['metadata']['name']}"] = doc
    return found


def one(objects: dict[str, dict[str, Any]], kind: str) -> dict[str, Any]:
    docs = [d for key, d in objects.items() if key.startswith(kind + "/")]
    assert len(docs) == 1, list(objects)
    return docs[0]


def config_of(objects: dict[str, dict[str, Any]]) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(one(objects, "ConfigMap")["data"]["config.yaml"])
    return data


def test_the_job_is_a_pre_delete_hook_helm_and_argo_cd_wait_for(helm: Helm, render: Render) -> None:
    job = one(cleanup_objects(render(helm)), "Job")
    assert job["metadata"]["annotations"] == {
        "helm.sh/hook": "pre-delete",
        "helm.sh/hook-weight": "0",
        "helm.sh/hook-delete-policy": "before-hook-creation,hook-succeeded",
        # the log on success too: the summary's warnings (attached pods, skipped nodes) reach the operator
        "helm.sh/hook-output-log-policy": "hook-succeeded,hook-failed",
    }
    spec = job["spec"]
    assert spec["activeDeadlineSeconds"] < 300  # below Helm's default --timeout 5m
    assert spec["backoffLimit"] == 0  # a failed run reported why; a retry would have less time
    assert spec["podFailurePolicy"]["rules"] == [
        {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]}]
    assert "ttlSecondsAfterFinished" not in spec  # a Job that vanishes early makes Helm 4 wait its timeout
    pod = spec["template"]["spec"]
    assert pod["hostNetwork"] is True and pod["restartPolicy"] == "Never"
    assert pod["serviceAccountName"] == "multus-cleanup"
    # never the not-ready/unreachable taints: a Job placed on a NotReady node would never start
    assert pod["tolerations"] == [
        {"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule"},
        {"key": "CriticalAddonsOnly", "operator": "Exists"}]
    terms = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert {(e["key"], e["operator"], tuple(e["values"])) for e in terms[0]["matchExpressions"]} == {
        ("kubernetes.io/os", "In", ("linux",)), ("kubernetes.io/arch", "In", ("amd64", "arm64")),
        ("type", "NotIn", ("virtual-kubelet",)), ("eks.amazonaws.com/compute-type", "NotIn", ("fargate",))}
    container = pod["containers"][0]
    assert container["args"] == ["run", "--config", "/etc/multus-cleanup/config.yaml"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert {e["name"]: e["valueFrom"]["fieldRef"]["fieldPath"] for e in container["env"]} == {
        "MULTUS_CLEANUP_JOB_NAME": "metadata.labels['batch.kubernetes.io/job-name']",
        "MULTUS_CLEANUP_JOB_UID": "metadata.labels['batch.kubernetes.io/controller-uid']"}


def test_what_the_hook_needs_is_an_ordinary_release_resource(helm: Helm, render: Render) -> None:
    """Not hooks: they exist before any pre-delete hook runs, under Helm 3, Helm 4 and Argo CD (which
    creates all PreDelete hooks at once, unordered), and Helm deletes them only after the hook succeeded."""
    objects = cleanup_objects(render(helm))
    kinds = sorted(key.split("/")[0] for key in objects)
    assert kinds == ["ClusterRole", "ClusterRoleBinding", "ConfigMap", "Job", "Role", "RoleBinding",
                     "ServiceAccount"]
    for key, doc in objects.items():
        if not key.startswith("Job/"):
            assert "helm.sh/hook" not in (doc["metadata"].get("annotations") or {}), key


def test_cleanup_disabled_renders_no_hook(helm: Helm, render: Render) -> None:
    result = render(helm, values_file=CHART_DIR / "ci" / "no-cleanup-values.yaml")
    assert cleanup_objects(result) == {}
    assert "helm.sh/hook" not in result.stdout


@pytest.mark.parametrize("values_file", sorted((CHART_DIR / "ci").glob("*-values.yaml")), ids=lambda p: p.stem)
def test_the_config_is_valid_and_follows_the_multus_host_paths(helm: Helm, render: Render, values_file: Path) -> None:
    result = render(helm, values_file=values_file)
    objects = cleanup_objects(result)
    if not objects:
        return  # cleanup disabled
    config = parse_config(config_of(objects))
    ds = result.one("DaemonSet")
    host_paths = {v["hostPath"]["path"] for v in ds["spec"]["template"]["spec"]["volumes"] if "hostPath" in v}
    assert config.node.cni_conf_dir in host_paths and config.node.cni_bin_dir in host_paths
    assert [(r.namespace, r.name) for r in config.cluster.multus_daemonsets] == [
        (ds["metadata"]["namespace"], ds["metadata"]["name"])]
    job = one(objects, "Job")
    assert config.cluster.deadline_seconds < job["spec"]["activeDeadlineSeconds"]
    pod = NodePodFactory(config, "abcde", None).render("worker-1")
    validate_pod(pod)
    mounted = {v["hostPath"]["path"] for v in pod["spec"]["volumes"]}
    assert config.node.cni_conf_dir in mounted and config.node.cni_bin_dir in mounted
    assert pod["spec"]["containers"][0]["image"] == job["spec"]["template"]["spec"]["containers"][0]["image"]


def test_user_data_is_kept_unless_asked_and_rbac_follows(helm: Helm, render: Render) -> None:
    default = cleanup_objects(render(helm))
    assert config_of(default)["cluster"]["deleteCRD"] is False
    assert config_of(default)["cluster"]["attachedPods"] == "warn"
    # pods in every namespace: only listed, for the pods still attached to secondary networks
    assert one(default, "ClusterRole")["rules"] == [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["list"]},
                                                    {"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}]

    asked = cleanup_objects(render(helm, set_values={"cleanup.deleteNetworkAttachmentDefinitions": True}))
    assert one(asked, "ClusterRole")["rules"][2] == {
        "apiGroups": ["k8s.cni.cncf.io"], "resources": ["network-attachment-definitions"],
        "verbs": ["list", "deletecollection"]}

    crd = cleanup_objects(render(helm, set_values={"cleanup.deleteCRD": True}))
    assert one(crd, "ClusterRole")["rules"][2] == {
        "apiGroups": ["apiextensions.k8s.io"], "resources": ["customresourcedefinitions"], "verbs": ["delete"],
        "resourceNames": ["network-attachment-definitions.k8s.cni.cncf.io"]}


def test_extra_resources_and_daemonsets_get_exactly_named_rules(helm: Helm, render: Render) -> None:
    objects = cleanup_objects(render(helm, set_values={
        "cleanup.extraResources": [
            {"group": "whereabouts.cni.cncf.io", "version": "v1alpha1", "resource": "ippools", "name": "pool-a",
             "namespace": "kube-system"},
            {"group": "apiextensions.k8s.io", "version": "v1", "resource": "customresourcedefinitions",
             "name": "ippools.whereabouts.cni.cncf.io"}],
        "cleanup.multusDaemonSets": [{"namespace": "multus-old", "name": "kube-multus-ds"}]}))
    roles = {key.split("/")[1]: doc for key, doc in objects.items() if key.startswith("Role/")}
    assert sorted(roles) == ["kube-system", "multus-old"]
    assert roles["multus-old"]["rules"] == [
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["list", "watch", "deletecollection"]},
        {"apiGroups": ["apps"], "resources": ["daemonsets"], "verbs": ["get", "patch"],
         "resourceNames": ["kube-multus-ds"]}]
    assert roles["kube-system"]["rules"][-1] == {"apiGroups": ["whereabouts.cni.cncf.io"], "resources": ["ippools"],
                                                 "verbs": ["delete"], "resourceNames": ["pool-a"]}
    assert one(objects, "ClusterRole")["rules"][-1]["resourceNames"] == ["ippools.whereabouts.cni.cncf.io"]
    bindings = [d for k, d in objects.items() if k.startswith("RoleBinding/")]
    assert {b["subjects"][0]["namespace"] for b in bindings} == {"kube-system"}  # the hook's own SA


def test_image_reference_and_digest(helm: Helm, render: Render) -> None:
    job = one(cleanup_objects(render(helm)), "Job")
    assert job["spec"]["template"]["spec"]["containers"][0]["image"] == "ghcr.io/multus-cleanup/multus-cleanup:0.1.0"
    digest = "sha256:" + "a" * 64
    pinned = cleanup_objects(render(helm, set_values={"cleanup.image.digest": digest}))
    image = one(pinned, "Job")["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == f"ghcr.io/multus-cleanup/multus-cleanup@{digest}"
    assert config_of(pinned)["cluster"]["nodePod"]["image"] == image


def test_repair_mode_runs_the_cleanup_as_an_ordinary_job_without_multus(helm: Helm, render: Render) -> None:
    result = render(helm, set_values={"repair.enabled": True, "cleanup.enabled": False,
                                      "cleanup.multusDaemonSets": [{"namespace": "kube-system",
                                                                    "name": "kube-multus-ds"}]})
    objects = cleanup_objects(result)
    job = one(objects, "Job")
    assert "annotations" not in job["metadata"]  # runs at install, not on uninstall
    assert result.kind("DaemonSet") == []
    config = parse_config(config_of(objects))
    assert [(r.namespace, r.name) for r in config.cluster.multus_daemonsets] == [("kube-system", "kube-multus-ds")]


@pytest.mark.parametrize(("toleration", "message"), [
    ({"operator": "Exists"}, "key"),
    ({"key": "node.kubernetes.io/unreachable", "operator": "Exists"},
     "must not tolerate node.kubernetes.io/unreachable"),
    ({"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoSchedule"},
     "must not tolerate node.kubernetes.io/not-ready"),
])
def test_the_job_refuses_tolerations_that_would_place_it_on_a_not_ready_node(
        helm: Helm, render: Render, toleration: dict[str, str], message: str) -> None:
    result = render(helm, set_values={"cleanup.job.tolerations": [toleration]})
    assert not result.ok and "tolerations" in result.stderr and message in result.stderr, result.stderr


VAP = "admissionregistration.k8s.io/v1/ValidatingAdmissionPolicy"


def test_a_cluster_that_serves_admission_policies_gets_the_fence(helm: Helm) -> None:
    """Where the API serves ValidatingAdmissionPolicy (1.30+), the ServiceAccount that may create pods is
    fenced to node pods of the cleanup's shape (proven on the real API server in tests/cluster)."""
    fenced = helm.template(api_versions=[VAP], set_values={"cleanup.extraFiles": ["/etc/whereabouts/x.conf"]})
    assert fenced.ok, fenced.stderr
    policy = next(d for d in fenced.objects() if d["kind"] == "ValidatingAdmissionPolicy")
    binding = next(d for d in fenced.objects() if d["kind"] == "ValidatingAdmissionPolicyBinding")
    assert binding["spec"] == {"policyName": policy["metadata"]["name"], "validationActions": ["Deny"]}
    assert policy["spec"]["matchConditions"][0]["expression"] == (
        "request.userInfo.username == 'system:serviceaccount:kube-system:multus-cleanup'")
    paths = next(v["expression"] for v in policy["spec"]["variables"] if v["name"] == "hostPaths")
    assert paths == '["/etc/cni/net.d","/opt/cni/bin","/run","/var/lib/cni","/etc/whereabouts"]'
    assert not [d for d in helm.template().objects() if d["kind"] == "ValidatingAdmissionPolicy"]  # 1.29: none
    off = helm.template(api_versions=[VAP], set_values={"cleanup.admissionPolicy.enabled": False})
    assert not [d for d in off.objects() if d["kind"] == "ValidatingAdmissionPolicy"]


def test_a_63_character_fullname_still_gives_every_object_a_name_of_its_own(helm: Helm, render: Render) -> None:
    """Names are cut before their suffix: `<63 chars>-cleanup` cut to 63 would be the DaemonSet's name again."""
    result = render(helm, set_values={"fullnameOverride": "m" * 63, "mode": "thick"})
    assert result.ok, result.stderr
    names: dict[tuple[str, str], int] = {}
    for doc in result.objects():
        key = (doc["kind"], doc["metadata"]["name"])
        names[key] = names.get(key, 0) + 1
        assert len(doc["metadata"]["name"]) <= 63, key
    assert [k for k, n in names.items() if n > 1] == []
    assert ("DaemonSet", "m" * 63) in names and ("ServiceAccount", "m" * 55 + "-cleanup") in names
    assert ("ConfigMap", "m" * 49 + "-daemon-config") in names


def test_node_pods_have_their_own_service_account_without_a_token(helm: Helm, render: Render) -> None:
    result = render(helm)
    assert result.ok, result.stderr
    objects = result.objects()
    (account,) = [o for o in objects
                  if o["kind"] == "ServiceAccount" and o["metadata"]["name"] == "multus-cleanup-node"]
    assert account["automountServiceAccountToken"] is False
    configmap = next(o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "multus-cleanup")
    config = parse_config(yaml.safe_load(configmap["data"]["config.yaml"]))
    pod = NodePodFactory(config, "abcde", None).render("node-a")
    assert pod["spec"]["serviceAccountName"] == "multus-cleanup-node"
    assert pod["spec"]["automountServiceAccountToken"] is False


def test_openshift_binds_the_sccs_each_service_account_needs(helm: Helm, render: Render) -> None:
    assert not [d for d in render(helm).objects() if d["metadata"]["name"].endswith(("-scc-privileged",
                                                                                   "-scc-hostnetwork-v2"))]
    result = render(helm, set_values={"openshift": {"enabled": True}})
    assert result.ok, result.stderr
    bindings = {(d["subjects"][0]["name"], d["roleRef"]["name"]) for d in result.objects()
                if d["kind"] == "RoleBinding" and d["roleRef"]["name"].startswith("system:openshift:scc:")}
    assert bindings == {("multus", "system:openshift:scc:privileged"),
                        ("multus-cleanup-node", "system:openshift:scc:privileged"),
                        ("multus-cleanup", "system:openshift:scc:hostnetwork-v2")}


def test_a_privileged_node_pod_does_not_ask_for_no_privilege_escalation(helm: Helm, render: Render) -> None:
    """privileged: true with allowPrivilegeEscalation: false is a 422 from the API server, on every node."""
    configmap = one(cleanup_objects(render(helm, set_values={"cleanup": {"nodePod": {"securityContext": {
        "privileged": True}}}})), "ConfigMap")
    config = parse_config(yaml.safe_load(configmap["data"]["config.yaml"]))
    context = NodePodFactory(config, "abcde", None).render("node-a")["spec"]["containers"][0]["securityContext"]
    assert context["privileged"] is True and "allowPrivilegeEscalation" not in context
    validate_pod(NodePodFactory(config, "abcde", None).render("node-a"))
