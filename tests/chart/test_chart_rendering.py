"""What an operator checks in the rendering: upstream parity, thick vs thin, host paths, names, options."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from helm import (
    CHART_DIR,
    CI_VALUES,
    NAMESPACE,
    Doc,
    Helm,
    Render,
    RenderResult,
    containers,
    daemon_config,
    host_path,
    load_upstream,
    mounts,
    normalise_rules,
    volumes,
)

pytestmark = pytest.mark.helm

IMAGE_REPO = "ghcr.io/k8snetworkplumbingwg/multus-cni"
THICK = "multus-daemonset-thick.yml"
THIN = "multus-daemonset.yml"


def upstream(manifest: str, kind: str) -> Doc:
    (doc,) = [d for d in load_upstream(manifest) if d["kind"] == kind]
    return doc


def ds(result: RenderResult) -> Doc:
    assert result.ok, result.stderr
    return result.one("DaemonSet")


def main(result: RenderResult) -> Doc:
    return containers(ds(result))["kube-multus"]


def init(result: RenderResult) -> Doc:
    return containers(ds(result), init=True)["install-multus-binary"]


def strip_descriptions(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: strip_descriptions(v) for k, v in node.items() if k != "description"}
    if isinstance(node, list):
        return [strip_descriptions(v) for v in node]
    return node


def norm_volume(vol: Doc) -> Doc:
    out = dict(vol)
    if "hostPath" in out:
        out["hostPath"] = {**out["hostPath"], "path": host_path(vol)}
    return out


# --- Helm 3 and Helm 4 agree -----------------------------------------------------------------------------


@pytest.mark.parametrize("values_file", CI_VALUES, ids=lambda p: p.name)
def test_helm3_and_helm4_render_the_same_objects(all_helms: list[Helm], render: Render, values_file: Path) -> None:
    h3, h4 = (render(h, values_file, include_crds=True) for h in all_helms)
    assert h3.ok and h4.ok, h3.stderr + h4.stderr
    assert h3.docs == h4.docs


# --- parity with upstream v4.3.0 -----------------------------------------------------------------------------


def test_thick_default_reproduces_upstream_daemonset(helm: Helm, render: Render) -> None:
    result = render(helm)
    ours, theirs = ds(result), upstream(THICK, "DaemonSet")
    pod, upod = ours["spec"]["template"]["spec"], theirs["spec"]["template"]["spec"]
    assert pod["hostNetwork"] is upod["hostNetwork"] is True
    assert pod["hostPID"] is upod["hostPID"] is True
    assert pod["terminationGracePeriodSeconds"] == upod["terminationGracePeriodSeconds"]
    assert ours["spec"]["updateStrategy"] == theirs["spec"]["updateStrategy"]
    for ours_c, theirs_c in ((containers(ours), containers(theirs)),
                             (containers(ours, init=True), containers(theirs, init=True))):
        assert ours_c.keys() == theirs_c.keys()
        for name, c in ours_c.items():
            u = theirs_c[name]
            for key in ("command", "args", "resources", "securityContext", "terminationMessagePolicy", "env"):
                assert c.get(key) == u.get(key), f"{name}.{key}"
            assert mounts(c) == mounts(u), name
            assert c["image"] == f"{IMAGE_REPO}:v4.3.0-thick"
            assert u["image"].split(":")[0] == IMAGE_REPO
    assert {k: norm_volume(v) for k, v in volumes(ours).items()} == \
           {k: norm_volume(v) for k, v in volumes(theirs).items()}


def test_thick_default_daemon_config_is_upstreams(helm: Helm, render: Render) -> None:
    result = render(helm)
    cm, theirs = result.one("ConfigMap"), upstream(THICK, "ConfigMap")
    assert cm["metadata"]["name"] == theirs["metadata"]["name"] == "multus-daemon-config"
    assert daemon_config(result) == json.loads(theirs["data"]["daemon-config.json"])
    vol = volumes(ds(result))["multus-daemon-config"]["configMap"]
    assert vol["name"] == cm["metadata"]["name"]
    assert vol["items"] == [{"key": "daemon-config.json", "path": "daemon-config.json"}]


def test_thin_reproduces_upstream_daemonset(helm: Helm, render: Render) -> None:
    result = render(helm, set_values={"mode": "thin"})
    ours, theirs = ds(result), upstream(THIN, "DaemonSet")
    pod, upod = ours["spec"]["template"]["spec"], theirs["spec"]["template"]["spec"]
    assert "hostPID" not in pod and "hostPID" not in upod
    assert pod["hostNetwork"] is True
    c, u = containers(ours)["kube-multus"], containers(theirs)["kube-multus"]
    assert c["command"] == u["command"] == ["/thin_entrypoint"]
    assert set(u["args"]) <= set(c["args"]), "every upstream thin flag is passed"
    for key in ("resources", "securityContext", "terminationMessagePolicy"):
        assert c[key] == u[key], key
    i, ui = init(result), containers(theirs, init=True)["install-multus-binary"]
    for key in ("command", "args", "resources", "securityContext", "volumeMounts"):
        assert i.get(key) == ui.get(key), key
    assert c["image"] == i["image"] == f"{IMAGE_REPO}:v4.3.0"
    # upstream's thin ConfigMap (a flannel example) is unused with --multus-conf-file=auto: not rendered
    assert {k: norm_volume(v) for k, v in volumes(ours).items()} == \
           {k: norm_volume(v) for k, v in volumes(theirs).items() if k != "multus-cfg"}
    assert mounts(c) == {k: v for k, v in mounts(u).items() if k != "multus-cfg"}
    assert result.kind("ConfigMap") == []


@pytest.mark.parametrize(("mode", "manifest"), [("thick", THICK), ("thin", THIN)])
def test_rbac_equals_upstream(helm: Helm, render: Render, mode: str, manifest: str) -> None:
    result = render(helm, set_values={"mode": mode})
    role, theirs = result.one("ClusterRole"), upstream(manifest, "ClusterRole")
    assert normalise_rules(role["rules"]) == normalise_rules(theirs["rules"])
    assert len(role["rules"]) == len(theirs["rules"])
    binding = result.one("ClusterRoleBinding")
    sa = result.one("ServiceAccount")
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                  "name": role["metadata"]["name"]}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": sa["metadata"]["name"],
                                    "namespace": NAMESPACE}]
    assert ds(result)["spec"]["template"]["spec"]["serviceAccountName"] == sa["metadata"]["name"]


def test_crd_is_upstreams(helm: Helm, render: Render) -> None:
    result = render(helm, include_crds=True)
    ours, theirs = result.one("CustomResourceDefinition"), upstream(THICK, "CustomResourceDefinition")
    assert ours["metadata"]["name"] == theirs["metadata"]["name"] == "network-attachment-definitions.k8s.cni.cncf.io"
    assert strip_descriptions(ours["spec"]) == strip_descriptions(theirs["spec"])
    assert render(helm).kind("CustomResourceDefinition") == [], "the CRD comes only from crds/"


# --- thick vs thin ---------------------------------------------------------------------------------------------


def test_thick_and_thin_differ_where_upstream_does(helm: Helm, render: Render) -> None:
    thick, thin = render(helm), render(helm, set_values={"mode": "thin"})
    assert main(thick)["command"] == ["/usr/src/multus-cni/bin/multus-daemon"]
    assert init(thick)["command"][-2:] == ["-t", "thick"]
    assert main(thin)["command"] == ["/thin_entrypoint"]
    assert init(thin)["args"] == ["--type", "thin"]
    assert main(thick)["image"].endswith(":v4.3.0-thick")
    assert main(thin)["image"].endswith(":v4.3.0")
    assert {"hostroot", "host-run", "multus-daemon-config", "host-var-lib-cni-multus"} <= volumes(ds(thick)).keys()
    assert set(volumes(ds(thin))) == {"cni", "cnibin"}
    assert mounts(main(thick))["cnibin"]["mountPath"] == "/opt/cni/bin"
    assert mounts(main(thin))["cnibin"]["mountPath"] == "/host/opt/cni/bin"
    assert any(e["name"] == "MULTUS_NODE_NAME" for e in main(thick)["env"])
    assert "env" not in main(thin)
    for result in (thick, thin):
        assert mounts(init(result))["cnibin"] == {"name": "cnibin", "mountPath": "/host/opt/cni/bin",
                                                  "mountPropagation": "Bidirectional"}


def test_thin_cleans_its_config_on_exit_by_default_and_keeps_the_primary_config(helm: Helm, render: Render) -> None:
    args = main(render(helm, set_values={"mode": "thin"}))["args"]
    assert "--cleanup-config-on-exit=true" in args
    assert "--rename-conf-file=false" in args
    args = main(render(helm, set_values={"mode": "thin", "config": {"renameConfFile": True,
                                                                     "cleanupConfigOnExit": False}}))["args"]
    assert "--rename-conf-file=true" in args
    assert "--cleanup-config-on-exit=false" in args


def test_thin_with_rename_conf_file_renames_the_primary_back_before_each_start(helm: Helm, render: Render) -> None:
    """thin_entrypoint, restarted, finds no plain primary config and exits (CrashLoopBackOff on the real
    cluster): an init container of the cleanup image renames `<primary>.old` back first, as the first one."""
    paths = {"cniConfDir": "/var/lib/rancher/rke2/agent/etc/cni/net.d"}
    result = render(helm, set_values={"mode": "thin", "hostPaths": paths,
                                      "config": {"renameConfFile": True, "cleanupConfigOnExit": False}})
    inits = containers(ds(result), init=True)
    assert list(inits) == ["restore-renamed-primary", "install-multus-binary"]
    restore = inits["restore-renamed-primary"]
    (hook_job,) = result.from_template("templates/cleanup-job.yaml")
    assert restore["image"] == containers(hook_job)["cleanup"]["image"]  # the hook's image
    assert restore["command"] == ["multus-cleanup", "node", "--restore-renamed-primary-only", "--host-root", "/host"]
    assert restore["volumeMounts"] == [{"name": "cni", "mountPath": "/host" + paths["cniConfDir"]}]
    assert volumes(ds(result))["cni"]["hostPath"]["path"] == paths["cniConfDir"]
    env = {e["name"]: e.get("value") for e in restore["env"]}
    node_config = json.loads(env["MULTUS_CLEANUP_CONFIG"])["node"]
    assert node_config["cniConfDir"] == paths["cniConfDir"] and node_config["restoreRenamedPrimary"] is True
    assert restore["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert not restore["securityContext"]["privileged"]
    for other in ({"mode": "thin"}, {"mode": "thick"}):
        assert "restore-renamed-primary" not in containers(ds(render(helm, set_values=other)), init=True)


def test_thin_refuses_rename_conf_file_with_cleanup_on_exit(helm: Helm, render: Render) -> None:
    """Together they leave a restarted node with only `<primary>.old`: no pod networking at all."""
    result = render(helm, set_values={"mode": "thin", "config": {"renameConfFile": True}})
    assert not result.ok
    assert "config.renameConfFile with config.cleanupConfigOnExit" in result.stderr
    assert "set config.cleanupConfigOnExit=false" in result.stderr


# --- host paths follow the values -----------------------------------------------------------------------------

CUSTOM_PATHS = {
    "cniConfDir": "/var/lib/rancher/k3s/agent/etc/cni/net.d",
    "cniBinDir": "/var/lib/rancher/k3s/data/cni",
    "multusConfDir": "/var/lib/multus/multus.d",
    "socketDir": "/var/run/multus-sock",
    "cacheDir": "/var/cache/multus",
    "kubeletDir": "/var/lib/k0s/kubelet",
}


def test_thick_host_paths_follow_values(helm: Helm, render: Render) -> None:
    result = render(helm, set_values={"hostPaths": CUSTOM_PATHS})
    vols, mnt = volumes(ds(result)), mounts(main(result))
    assert host_path(vols["cni"]) == CUSTOM_PATHS["cniConfDir"]
    assert host_path(vols["cnibin"]) == CUSTOM_PATHS["cniBinDir"]
    assert mnt["cnibin"]["mountPath"] == CUSTOM_PATHS["cniBinDir"], "the daemon needs the bin dir at its host path"
    assert mounts(init(result))["cnibin"]["mountPath"] == "/host/opt/cni/bin"
    assert host_path(vols["host-run"]) == "/var/run"
    assert mnt["host-run"]["mountPath"] == "/host/var/run"
    assert host_path(vols["host-var-lib-cni-multus"]) == mnt["host-var-lib-cni-multus"]["mountPath"] == \
        CUSTOM_PATHS["cacheDir"]
    assert host_path(vols["host-var-lib-kubelet"]) == CUSTOM_PATHS["kubeletDir"]
    assert mnt["host-var-lib-kubelet"]["mountPath"] == "/var/lib/kubelet"
    conf = daemon_config(result)
    assert conf["socketDir"] == "/host/var/run/multus-sock/"
    assert conf["daemonSocketDir"] == CUSTOM_PATHS["socketDir"], "the shim on the node must find the socket"
    assert conf["cniDir"] == CUSTOM_PATHS["cacheDir"]
    assert conf["cniConfigDir"] == conf["multusAutoconfigDir"] == "/host/etc/cni/net.d"


def test_thin_host_paths_follow_values(helm: Helm, render: Render) -> None:
    result = render(helm, set_values={"mode": "thin", "hostPaths": CUSTOM_PATHS})
    vols, mnt = volumes(ds(result)), mounts(main(result))
    assert host_path(vols["cni"]) == CUSTOM_PATHS["cniConfDir"]
    assert host_path(vols["cnibin"]) == CUSTOM_PATHS["cniBinDir"]
    assert host_path(vols["multus-data-dir"]) == CUSTOM_PATHS["multusConfDir"]
    assert mnt["multus-data-dir"]["mountPath"] == "/host/etc/cni/net.d/multus.d"
    assert (f"--multus-kubeconfig-file-host={CUSTOM_PATHS['multusConfDir']}/multus.kubeconfig"
            in main(result)["args"])


def test_multus_conf_dir_defaults_under_the_conf_dir(helm: Helm, render: Render) -> None:
    result = render(helm, set_values={"mode": "thin", "hostPaths": {"cniConfDir": "/etc/kubernetes/cni/net.d"}})
    assert "--multus-kubeconfig-file-host=/etc/kubernetes/cni/net.d/multus.d/multus.kubeconfig" in main(result)["args"]
    assert "multus-data-dir" not in volumes(ds(result)), "the default multus.d is inside the mounted conf dir"


def test_k3s_ci_values_reach_the_pod(helm: Helm, render: Render) -> None:
    values_file = CHART_DIR / "ci" / "k3s-values.yaml"
    values = yaml.safe_load(values_file.read_text())
    result = render(helm, values_file)
    vols = volumes(ds(result))
    assert host_path(vols["cni"]) == values["hostPaths"]["cniConfDir"]
    assert host_path(vols["cnibin"]) == values["hostPaths"]["cniBinDir"]
    log_dir = str(Path(values["config"]["logFile"]).parent)
    assert host_path(vols["multus-log-dir"]) == mounts(main(result))["multus-log-dir"]["mountPath"] == log_dir
    assert daemon_config(result)["logFile"] == values["config"]["logFile"]


# --- Multus options --------------------------------------------------------------------------------------------

OPTIONS = {
    "namespaceIsolation": True,
    "globalNamespaces": ["default", "infra"],
    "readinessIndicatorFile": "/run/flannel/subnet.env",
    "masterCNIFile": "10-flannel.conflist",
    "logLevel": "debug",
    "logFile": "/var/log/multus.log",
    "cniVersion": "1.0.0",
    "overrideNetworkName": True,
}


def test_thick_options_reach_daemon_config(helm: Helm, render: Render) -> None:
    result = render(helm, set_values={"config": {**OPTIONS, "daemonExtraConfig": {"metricsPort": 9091,
                                                                                   "logToStderr": False}}})
    conf = daemon_config(result)
    assert conf["namespaceIsolation"] is True
    assert conf["globalNamespaces"] == "default,infra"
    assert conf["readinessindicatorfile"] == "/run/flannel/subnet.env"
    assert conf["multusMasterCNI"] == "10-flannel.conflist"
    assert conf["logLevel"] == "debug"
    assert conf["logFile"] == "/var/log/multus.log"
    assert conf["cniVersion"] == "1.0.0"
    assert conf["overrideNetworkName"] is True
    assert conf["metricsPort"] == 9091
    assert conf["logToStderr"] is False, "daemonExtraConfig overrides the chart's keys"
    vols = volumes(ds(result))
    assert host_path(vols["readiness-indicator-dir"]) == "/run/flannel"
    assert host_path(vols["multus-log-dir"]) == "/var/log"


def test_thin_options_become_flags(helm: Helm, render: Render) -> None:
    args = main(render(helm, set_values={"mode": "thin", "config": {**OPTIONS, "skipConfigWatch": True,
                                                                     "additionalBinDir": "/opt/multus/bin"}}))["args"]
    for flag in ("--namespace-isolation=true", "--global-namespaces=default,infra",
                 "--readiness-indicator-file=/run/flannel/subnet.env",
                 "--multus-master-cni-file-name=10-flannel.conflist", "--multus-log-level=debug",
                 "--multus-log-file=/var/log/multus.log", "--cni-version=1.0.0", "--override-network-name=true",
                 "--skip-config-watch=true", "--additional-bin-dir=/opt/multus/bin", "--multus-conf-file=auto"):
        assert flag in args


def test_daemon_config_change_rolls_the_pods(helm: Helm, render: Render) -> None:
    def checksum(result: RenderResult) -> str:
        return str(ds(result)["spec"]["template"]["metadata"]["annotations"]["checksum/daemon-config"])

    assert checksum(render(helm)) != checksum(render(helm, set_values={"config": {"logLevel": "debug"}}))


# --- image --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("values", "image"), [
    ({}, f"{IMAGE_REPO}:v4.3.0-thick"),
    ({"mode": "thin"}, f"{IMAGE_REPO}:v4.3.0"),
    ({"image": {"tag": "v4.2.4"}}, f"{IMAGE_REPO}:v4.2.4-thick"),
    ({"image": {"tag": "v4.3.0-thick"}}, f"{IMAGE_REPO}:v4.3.0-thick"),
    ({"image": {"repository": "mirror.local/multus-thick", "thickTagSuffix": ""}}, "mirror.local/multus-thick:v4.3.0"),
    ({"image": {"digest": "sha256:" + "a" * 64}}, f"{IMAGE_REPO}@sha256:{'a' * 64}"),
])
def test_image_reference(helm: Helm, render: Render, values: dict[str, Any], image: str) -> None:
    result = render(helm, set_values=values)
    assert main(result)["image"] == init(result)["image"] == image


def test_pull_policy_and_secrets(helm: Helm, render: Render) -> None:
    result = render(helm, set_values={"image": {"pullPolicy": "Always"}, "imagePullSecrets": [{"name": "regcred"}]})
    assert main(result)["imagePullPolicy"] == init(result)["imagePullPolicy"] == "Always"
    assert ds(result)["spec"]["template"]["spec"]["imagePullSecrets"] == [{"name": "regcred"}]


# --- names and labels ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("release", "values", "fullname"), [
    ("multus", {}, "multus"),
    ("net", {}, "net-multus"),
    ("net", {"fullnameOverride": "cni-multiplexer"}, "cni-multiplexer"),
])
def test_names_are_release_scoped(helm: Helm, render: Render, release: str, values: dict[str, Any],
                                  fullname: str) -> None:
    result = render(helm, set_values=values, release=release)
    for kind in ("DaemonSet", "ServiceAccount", "ClusterRole", "ClusterRoleBinding"):
        assert result.one(kind)["metadata"]["name"] == fullname, kind
    assert result.one("ConfigMap")["metadata"]["name"] == f"{fullname}-daemon-config"


def test_every_resource_carries_helm_labels(helm: Helm, render: Render) -> None:
    result = render(helm, set_values={"commonLabels": {"team": "net"}}, release="net")
    for doc in result.objects():
        labels = doc["metadata"]["labels"]
        assert labels["app.kubernetes.io/name"] == "multus"
        assert labels["app.kubernetes.io/instance"] == "net"
        assert labels["app.kubernetes.io/managed-by"] == "Helm"
        assert labels["helm.sh/chart"] == "multus-0.1.0"
        assert labels["team"] == "net"
        if doc["kind"] != "ClusterRole" and doc["kind"] != "ClusterRoleBinding":
            assert doc["metadata"]["namespace"] == NAMESPACE
    daemonset = ds(result)
    selector = daemonset["spec"]["selector"]["matchLabels"]
    assert selector == {"app.kubernetes.io/name": "multus", "app.kubernetes.io/instance": "net",
                        "app.kubernetes.io/component": "cni"}
    assert selector.items() <= daemonset["spec"]["template"]["metadata"]["labels"].items()


# --- scheduling and pod settings -------------------------------------------------------------------------------


def test_defaults_schedule_on_every_linux_node_as_node_critical(helm: Helm, render: Render) -> None:
    pod = ds(render(helm))["spec"]["template"]["spec"]
    assert pod["tolerations"] == [{"operator": "Exists"}]
    assert pod["nodeSelector"] == {"kubernetes.io/os": "linux"}
    assert pod["priorityClassName"] == "system-node-critical"
    assert "affinity" not in pod


def test_pod_settings_pass_through(helm: Helm, render: Render) -> None:
    affinity = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "multus", "operator": "NotIn", "values": ["off"]}]}]}}}
    values = {
        "affinity": affinity,
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "net", "effect": "NoSchedule"}],
        "nodeSelector": {"kubernetes.io/os": "linux", "net": "multus"},
        "priorityClassName": "",
        "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "20%"}},
        # Helm merges maps with the defaults: null removes upstream's limits
        "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": None},
        "initResources": {"limits": {"memory": "32Mi"}},
        "podSecurityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
        "securityContext": {"privileged": True, "readOnlyRootFilesystem": False},
        "podAnnotations": {"example.com/audit": "yes"},
        "podLabels": {"example.com/team": "net"},
        "extraEnv": [{"name": "GOMAXPROCS", "value": "1"}],
        "extraArgs": ["-version"],
    }
    result = render(helm, set_values=values)
    d = ds(result)
    pod = d["spec"]["template"]["spec"]
    assert pod["affinity"] == affinity
    assert pod["tolerations"] == values["tolerations"]
    assert pod["nodeSelector"] == values["nodeSelector"]
    assert "priorityClassName" not in pod
    assert d["spec"]["updateStrategy"] == values["updateStrategy"]
    assert main(result)["resources"] == {"requests": {"cpu": "50m", "memory": "64Mi"}}
    assert init(result)["resources"] == {"requests": {"cpu": "10m", "memory": "15Mi"}, "limits": {"memory": "32Mi"}}
    assert pod["securityContext"] == values["podSecurityContext"]
    assert main(result)["securityContext"] == init(result)["securityContext"] == values["securityContext"]
    assert d["spec"]["template"]["metadata"]["annotations"]["example.com/audit"] == "yes"
    assert d["spec"]["template"]["metadata"]["labels"]["example.com/team"] == "net"
    assert {"name": "GOMAXPROCS", "value": "1"} in main(result)["env"]
    assert main(result)["args"] == ["-version"]


# --- values that switch parts off --------------------------------------------------------------------------------


def test_repair_mode_installs_no_multus(helm: Helm, render: Render) -> None:
    result = render(helm, set_values={"repair": {"enabled": True}})
    assert result.ok, result.stderr
    for kind in ("DaemonSet", "ConfigMap", "ServiceAccount", "ClusterRole", "ClusterRoleBinding"):
        assert result.kind(kind) == [], kind


def test_existing_service_account_and_no_rbac(helm: Helm, render: Render) -> None:
    result = render(helm, set_values={"serviceAccount": {"create": False, "name": "multus-sa"},
                                      "rbac": {"create": False}})
    assert result.kind("ServiceAccount") == result.kind("ClusterRole") == result.kind("ClusterRoleBinding") == []
    assert ds(result)["spec"]["template"]["spec"]["serviceAccountName"] == "multus-sa"


def test_cleanup_disabled_still_installs_multus(helm: Helm, render: Render) -> None:
    result = render(helm, CHART_DIR / "ci" / "no-cleanup-values.yaml")
    assert ds(result)["metadata"]["name"] == "multus"


@pytest.mark.parametrize("mode", ["thick", "thin"])
def test_pre_pull_of_the_cleanup_image_is_an_init_container_of_multus(helm: Helm, render: Render, mode: str) -> None:
    """cleanup.prePullImage: every node that runs Multus has the cleanup image before the uninstall needs it."""
    assert "pull-cleanup-image" not in containers(ds(render(helm, set_values={"mode": mode})), init=True)
    result = render(helm, set_values={"mode": mode, "cleanup": {"prePullImage": True, "image": {
        "repository": "registry.example/multus-cleanup", "tag": "1.2.3", "pullPolicy": "Always"}}})
    pull = containers(ds(result), init=True)["pull-cleanup-image"]
    assert pull["image"] == "registry.example/multus-cleanup:1.2.3" and pull["imagePullPolicy"] == "Always"
    assert pull["args"] == ["--version"] and pull["securityContext"]["runAsNonRoot"] is True
    job = next(d for d in result.objects() if d["kind"] == "Job")
    assert job["spec"]["template"]["spec"]["containers"][0]["image"] == pull["image"]  # the same image, once
    off = render(helm, set_values={"mode": mode, "cleanup": {"prePullImage": True, "enabled": False}})
    assert "pull-cleanup-image" not in containers(ds(off), init=True)  # no cleanup, nothing to pull
