"""The chart under Argo CD (examples/argocd/application.yaml, docs/argocd.md).

Argo CD never runs `helm install`: its repo server renders the chart with
`helm template <path> --name-template <release> --namespace <ns> --kube-version <cluster> --values <file>...
--values <valuesObject> --api-versions <every group/version and group/version/kind> --include-crds`
(argoproj/argo-cd util/helm/cmd.go) and applies the result itself. Since 3.3.0 it runs `helm.sh/hook:
pre-delete` resources as PreDelete hooks when the Application is deleted: re-rendered from Git, all created
at once with no order between them, and with no timeout. So, rendered exactly that way:
- the cleanup Job is the ONLY hook, a pre-delete one, with delete policies Argo CD maps to its own;
- everything the Job needs (ServiceAccount, Roles/RoleBindings, ClusterRole/Binding, ConfigMap) is an
  ordinary resource, present before any PreDelete hook runs whatever the order;
- the Job's names match those objects, and the Job bounds itself (activeDeadlineSeconds, backoffLimit).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from helm import CHART_DIR, CI_VALUES, REPO_ROOT, Helm, RenderResult, split_documents
from yamllint import linter  # type: ignore[import-untyped]
from yamllint.config import YamlLintConfig  # type: ignore[import-untyped]

pytestmark = pytest.mark.helm

APPLICATION = REPO_ROOT / "examples" / "argocd" / "application.yaml"
CHART = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())

# helm.sh/hook -> Argo CD hook type (argo-cd docs "Helm hooks"; PreDelete since 3.3.0)
ARGO_HOOK_TYPES = {"pre-install": "PreSync", "pre-upgrade": "PreSync", "post-install": "PostSync",
                   "post-upgrade": "PostSync", "pre-delete": "PreDelete", "post-delete": "PostDelete"}
# helm.sh/hook-delete-policy -> argocd.argoproj.io/hook-delete-policy
ARGO_DELETE_POLICIES = {"before-hook-creation": "BeforeHookCreation", "hook-succeeded": "HookSucceeded",
                        "hook-failed": "HookFailed"}
HOOK_ANNOTATIONS = ("helm.sh/hook", "argocd.argoproj.io/hook")

# Kubernetes versions as a cluster reports them to Argo CD: the chart's minimum, a k3s and an EKS build
KUBE_VERSIONS = ["1.29.0", "v1.31.4+k3s1", "v1.33.2-eks-931bdca"]
# What Argo CD passes as --api-versions: each group/version, and each group/version/Kind the cluster serves
API_VERSIONS = [
    "v1", "v1/ConfigMap", "v1/Namespace", "v1/Node", "v1/Pod", "v1/Secret", "v1/Service", "v1/ServiceAccount",
    "apps/v1", "apps/v1/DaemonSet", "apps/v1/Deployment", "batch/v1", "batch/v1/Job",
    "rbac.authorization.k8s.io/v1", "rbac.authorization.k8s.io/v1/ClusterRole",
    "rbac.authorization.k8s.io/v1/ClusterRoleBinding", "rbac.authorization.k8s.io/v1/Role",
    "rbac.authorization.k8s.io/v1/RoleBinding", "apiextensions.k8s.io/v1",
    "apiextensions.k8s.io/v1/CustomResourceDefinition", "scheduling.k8s.io/v1",
    "scheduling.k8s.io/v1/PriorityClass", "k8s.cni.cncf.io/v1", "k8s.cni.cncf.io/v1/NetworkAttachmentDefinition",
    "argoproj.io/v1alpha1", "argoproj.io/v1alpha1/Application",
]


def application() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(APPLICATION.read_text())
    return data


def argo_template(helm: Helm, tmp_path: Path, kube_version: str = KUBE_VERSIONS[0],
                  values: dict[str, Any] | None = None) -> RenderResult:
    """Render chart/ with the command line Argo CD's repo server builds for the example Application."""
    app = application()
    source = app["spec"]["source"]
    extra_values = tmp_path / "argocd-values.yaml"  # Argo writes valuesObject to a temporary file
    extra_values.write_text(yaml.safe_dump(source["helm"]["valuesObject"] if values is None else values))
    args = ["template", str(REPO_ROOT / source["path"]), "--name-template", source["helm"]["releaseName"],
            "--namespace", app["spec"]["destination"]["namespace"], "--kube-version", kube_version,
            "--values", str(extra_values)]
    for api_version in API_VERSIONS:
        args += ["--api-versions", api_version]
    args.append("--include-crds")
    proc = helm.run(*args)
    return RenderResult(proc.returncode, proc.stdout, proc.stderr,
                        split_documents(proc.stdout) if proc.returncode == 0 else ())


def is_hook(doc: dict[str, Any]) -> bool:
    annotations = doc["metadata"].get("annotations") or {}
    return any(key in annotations for key in HOOK_ANNOTATIONS)


def key(doc: dict[str, Any]) -> tuple[str, str, str]:
    return doc["kind"], doc["metadata"].get("namespace", ""), doc["metadata"]["name"]


# --- the example Application ----------------------------------------------------------------------

def test_the_example_says_argo_cd_3_3_is_required() -> None:
    text = APPLICATION.read_text()
    assert "REQUIRES Argo CD >= 3.3.0" in text and ">= 3.3.5 recommended" in text
    assert "docs/argocd.md" in text and "multus-cleanup run" in text


def test_the_example_application() -> None:
    app = application()
    assert (app["apiVersion"], app["kind"]) == ("argoproj.io/v1alpha1", "Application")
    # cascading deletion: without the finalizer nothing is deleted and no PreDelete hook runs
    assert app["metadata"]["finalizers"] == ["resources-finalizer.argocd.argoproj.io"]
    source = app["spec"]["source"]
    assert source["path"] == "chart" and (REPO_ROOT / source["path"] / "Chart.yaml").is_file()
    assert re.fullmatch(r"https://\S+\.git", source["repoURL"])
    # a release tag, whose chart version is the default cleanup image tag
    assert source["targetRevision"] == f"v{CHART['version']}"
    # label tracking (Argo CD < 3.0 default) writes the Application name into app.kubernetes.io/instance
    assert source["helm"]["releaseName"] == app["metadata"]["name"] == "multus"
    assert app["spec"]["destination"] == {"server": "https://kubernetes.default.svc", "namespace": "kube-system"}
    options = app["spec"]["syncPolicy"]["syncOptions"]
    assert "ServerSideApply=true" in options and "FailOnSharedResource=true" in options
    assert not any(o.startswith("CreateNamespace=") for o in options)  # kube-system exists
    assert app["spec"]["syncPolicy"]["automated"] == {"prune": True, "selfHeal": True}


def test_the_examples_pass_yamllint_with_cts_rules() -> None:
    conf = YamlLintConfig(file=str(REPO_ROOT / ".yamllint"))
    for path in sorted((REPO_ROOT / "examples").rglob("*.yaml")):
        problems = list(linter.run(path.read_text(), conf, str(path)))
        assert not problems, "\n".join(f"{path}:{p.line}:{p.column} {p.message}" for p in problems)


def test_the_example_values_are_what_the_docs_describe() -> None:
    cleanup = application()["spec"]["source"]["helm"]["valuesObject"]["cleanup"]
    assert cleanup["enabled"] is True
    assert cleanup["job"]["activeDeadlineSeconds"] > 0 and cleanup["job"]["backoffLimit"] >= 0
    assert cleanup["deleteNetworkAttachmentDefinitions"] is False and cleanup["deleteCRD"] is False


# --- the chart rendered the way Argo CD renders it -------------------------------------------------

@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
def test_argo_renders_the_chart_with_its_crd(helm: Helm, tmp_path: Path, kube_version: str) -> None:
    result = argo_template(helm, tmp_path, kube_version)
    assert result.ok, result.stderr
    kinds = [doc["kind"] for doc in result.objects()]
    assert kinds.count("CustomResourceDefinition") == 1  # --include-crds: Argo applies crds/ itself
    assert kinds.count("DaemonSet") == 1


def test_below_the_charts_minimum_kubernetes_argo_shows_the_reason(helm: Helm, tmp_path: Path) -> None:
    result = argo_template(helm, tmp_path, "1.28.9")
    assert not result.ok
    assert "kubeVersion" in result.stderr and ">=1.29.0-0" in result.stderr


def test_the_cleanup_job_is_the_only_hook_and_argo_runs_it_as_pre_delete(helm: Helm, tmp_path: Path) -> None:
    result = argo_template(helm, tmp_path)
    assert result.ok, result.stderr
    hooks = [doc for doc in result.objects() if is_hook(doc)]
    # PreDelete hooks are created all at once, unordered: a second hook could not rely on the first
    assert [key(doc) for doc in hooks] == [("Job", "kube-system", "multus-cleanup")]
    annotations = hooks[0]["metadata"]["annotations"]
    # Argo CD splits the value on commas: pre-delete alone, so the Job never runs at a sync
    assert [ARGO_HOOK_TYPES[h.strip()] for h in annotations["helm.sh/hook"].split(",")] == ["PreDelete"]
    assert "argocd.argoproj.io/hook" not in annotations  # no second, conflicting declaration
    policies = annotations["helm.sh/hook-delete-policy"].split(",")
    # every policy maps to Argo CD's. (Helm keeps a failed Job for its log, as there is no hook-failed;
    # Argo CD deletes a failed PreDelete hook itself and creates it again: docs/argocd.md)
    assert {ARGO_DELETE_POLICIES[p] for p in policies} == {"BeforeHookCreation", "HookSucceeded"}


def test_what_the_hook_needs_is_not_a_hook(helm: Helm, tmp_path: Path) -> None:
    """Argo CD deletes an Application's resources only after its PreDelete hooks: ordinary resources exist
    for the whole hook. A ServiceAccount or ConfigMap made a hook would be created with the Job, unordered
    (and, deleted by hook-succeeded after install, would be missing at deletion: argoproj/argo-cd#26404)."""
    result = argo_template(helm, tmp_path)
    assert result.ok, result.stderr
    job = next(doc for doc in result.objects() if doc["kind"] == "Job")
    pod = job["spec"]["template"]["spec"]
    ordinary = {key(doc): doc for doc in result.objects() if not is_hook(doc)}
    ns = job["metadata"]["namespace"]
    sa = pod["serviceAccountName"]
    config_maps = [v["configMap"]["name"] for v in pod["volumes"] if "configMap" in v]
    assert ("ServiceAccount", ns, sa) in ordinary
    assert config_maps == ["multus-cleanup"] and ("ConfigMap", ns, config_maps[0]) in ordinary
    bindings = [doc for k, doc in ordinary.items() if k[0] in ("RoleBinding", "ClusterRoleBinding")
                and any(s == {"kind": "ServiceAccount", "name": sa, "namespace": ns} for s in doc["subjects"])]
    assert {doc["kind"] for doc in bindings} == {"RoleBinding", "ClusterRoleBinding"}
    for binding in bindings:
        role_kind = binding["roleRef"]["kind"]
        role_ns = binding["metadata"].get("namespace", "") if role_kind == "Role" else ""
        assert (role_kind, role_ns, binding["roleRef"]["name"]) in ordinary, binding["metadata"]["name"]
    # the Role in the release namespace lets the hook create and watch its node pods
    role = ordinary[("Role", ns, "multus-cleanup")]
    assert any("pods" in r["resources"] and "create" in r["verbs"] for r in role["rules"])
    # the config the Job reads names the DaemonSet that exists as an ordinary resource too
    config = yaml.safe_load(ordinary[("ConfigMap", ns, "multus-cleanup")]["data"]["config.yaml"])
    for ds in config["cluster"]["multusDaemonSets"]:
        assert ("DaemonSet", ds["namespace"], ds["name"]) in ordinary


def test_the_job_bounds_itself_because_argo_has_no_hook_timeout(helm: Helm, tmp_path: Path) -> None:
    result = argo_template(helm, tmp_path)
    job = next(doc for doc in result.objects() if doc["kind"] == "Job")
    values = application()["spec"]["source"]["helm"]["valuesObject"]["cleanup"]["job"]
    assert job["spec"]["activeDeadlineSeconds"] == values["activeDeadlineSeconds"]
    assert job["spec"]["backoffLimit"] == values["backoffLimit"]
    assert isinstance(job["spec"]["activeDeadlineSeconds"], int) and job["spec"]["activeDeadlineSeconds"] > 0
    assert "ttlSecondsAfterFinished" not in job["spec"]  # a vanished Job reads as neither success nor failure
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"


def test_a_longer_deadline_set_in_git_reaches_the_re_rendered_hook(helm: Helm, tmp_path: Path) -> None:
    values = application()["spec"]["source"]["helm"]["valuesObject"]
    values["cleanup"]["job"]["activeDeadlineSeconds"] = 900
    result = argo_template(helm, tmp_path, values=values)
    assert result.ok, result.stderr
    assert next(d for d in result.objects() if d["kind"] == "Job")["spec"]["activeDeadlineSeconds"] == 900


def test_with_the_cleanup_disabled_there_is_no_hook(helm: Helm, tmp_path: Path) -> None:
    values = application()["spec"]["source"]["helm"]["valuesObject"]
    values["cleanup"] = {"enabled": False}
    result = argo_template(helm, tmp_path, values=values)
    assert result.ok, result.stderr
    assert [key(d) for d in result.objects() if is_hook(d)] == []


def test_argo_renders_what_helm_installs(helm: Helm, tmp_path: Path) -> None:
    """--kube-version and --api-versions change nothing: no template branches on what Argo CD passes (and
    none calls `lookup`, which has no cluster to ask in Argo CD's repo server)."""
    argo = argo_template(helm, tmp_path)
    values = tmp_path / "plain.yaml"
    values.write_text(yaml.safe_dump(application()["spec"]["source"]["helm"]["valuesObject"]))
    plain = helm.template([values], include_crds=True)
    assert argo.ok and plain.ok, argo.stderr + plain.stderr
    assert argo.objects() == plain.objects()
    for template in (CHART_DIR / "templates").rglob("*"):  # templates/tests/ too
        if template.is_dir():
            continue
        assert not re.search(r"\blookup\b", template.read_text()), f"{template.name} calls lookup"


@pytest.mark.parametrize("values_file", CI_VALUES, ids=lambda p: p.name)
def test_every_ci_scenario_keeps_one_pre_delete_hook_and_its_needs_ordinary(
        helm: Helm, tmp_path: Path, values_file: Path) -> None:
    """The chart's ci/*-values.yaml scenarios (thin, k3s paths, cleanup off) as an Application's values."""
    values = yaml.safe_load(values_file.read_text())
    result = argo_template(helm, tmp_path, values=values)
    assert result.ok, result.stderr
    hooks = [key(d) for d in result.objects() if is_hook(d)]
    if values.get("cleanup", {}).get("enabled", True) is False:
        assert hooks == []
        return
    assert hooks == [("Job", "kube-system", "multus-cleanup")]
    ordinary = {key(d) for d in result.objects() if not is_hook(d)}
    assert {("ServiceAccount", "kube-system", "multus-cleanup"), ("ConfigMap", "kube-system", "multus-cleanup"),
            ("Role", "kube-system", "multus-cleanup"), ("RoleBinding", "kube-system", "multus-cleanup"),
            ("ClusterRole", "", "multus-cleanup"), ("ClusterRoleBinding", "", "multus-cleanup")} <= ordinary
