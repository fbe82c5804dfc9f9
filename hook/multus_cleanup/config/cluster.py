"""What the orchestrator does in the cluster (the `cluster:` section of the cleanup config)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from . import fields as f
from .errors import ConfigError

DEFAULT_IMAGE = "ghcr.io/multus-cleanup/multus-cleanup:0.1.0"
SIDECAR_OPT_OUTS = {"sidecar.istio.io/inject": "false", "linkerd.io/inject": "disabled",
                    "kuma.io/sidecar-injection": "disabled", "consul.hashicorp.com/connect-inject": "false"}
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
_GROUP = re.compile(r"^([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?)?$")
_VERSION = re.compile(r"^v[0-9]+((alpha|beta)[0-9]+)?$")


@dataclass(frozen=True)
class ObjectRef:
    namespace: str
    name: str


@dataclass(frozen=True)
class ExtraResource:
    """One API object to delete after the nodes are clean, named exactly (no wildcards)."""

    group: str  # "" for the core group
    version: str
    resource: str  # the plural resource name, as in RBAC rules
    name: str
    namespace: str | None = None  # None: cluster-scoped

    def describe(self) -> str:
        api = f"{self.resource}.{self.group}" if self.group else self.resource
        return f"{api}/{self.name}" + (f" in namespace {self.namespace}" if self.namespace else "")


def _default_security_context() -> dict[str, Any]:
    # Root owns Multus's files; no capability is needed to remove root-owned entries from root-owned dirs.
    return {"runAsUser": 0, "runAsNonRoot": False, "privileged": False, "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True, "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"}}


@dataclass(frozen=True)
class NodePodConfig:
    image: str = DEFAULT_IMAGE
    image_pull_policy: str = "IfNotPresent"
    image_pull_secrets: tuple[str, ...] = ()
    priority_class_name: str | None = "system-node-critical"
    tolerations: tuple[Mapping[str, Any], ...] = ({"operator": "Exists"},)
    resources: Mapping[str, Any] = field(default_factory=lambda: {
        "requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"memory": "128Mi"}})
    security_context: Mapping[str, Any] = field(default_factory=_default_security_context)
    pod_security_context: Mapping[str, Any] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    # Sidecar injectors skip pods with these: a sidecar on a node pod is not needed, may not start with
    # host networking, and the pod would stay Running after the cleanup (the sweep copes, but why pay).
    annotations: Mapping[str, str] = field(default_factory=lambda: dict(SIDECAR_OPT_OUTS))
    backup_dir: str | None = None  # a host path on every node: move instead of delete
    # The node pods' own ServiceAccount (the chart makes one, without a token); None: the namespace's default.
    # OpenShift admits host access per ServiceAccount, through its SCCs.
    service_account_name: str | None = None


@dataclass(frozen=True)
class ClusterConfig:
    namespace: str = "kube-system"  # where the node pods run (the hook Job's namespace)
    multus_daemonsets: tuple[ObjectRef, ...] = (ObjectRef("kube-system", "kube-multus-ds"),)
    node_selector: Mapping[str, str] = field(default_factory=lambda: {"kubernetes.io/os": "linux"})
    # Nodes that cannot run a cleanup pod and hold no Multus files: virtual-kubelet and EKS Fargate.
    node_selector_expressions: tuple[Mapping[str, Any], ...] = field(default_factory=lambda: (
        {"key": "type", "operator": "NotIn", "values": ["virtual-kubelet"]},
        {"key": "eks.amazonaws.com/compute-type", "operator": "NotIn", "values": ["fargate"]}))
    unreachable_nodes: str = "fail"  # or "skip": list them as needing a re-run
    attached_pods: str = "warn"  # or "fail": pods on secondary networks stop the run before any change
    concurrency: int = 500  # most node pods in flight (the run adapts below it: cluster/pacing.py)
    node_retries: int = 1
    node_timeout_seconds: int = 120
    # How long an image pull error or CreateContainerError may last before the node counts as failed:
    # the kubelet retries them, and a registry hiccup or a rate limit usually passes.
    start_error_grace_seconds: int = 60
    stop_timeout_seconds: int = 90  # the chart's cleanup.stopTimeoutSeconds (tests/chart/test_chart_values_sources.py)
    # The whole run's budget: keep it below the hook Job's activeDeadlineSeconds, so the run still ends
    # with a summary that names the nodes it could not finish.
    deadline_seconds: int = 600
    delete_network_attachment_definitions: bool = False
    delete_crd: bool = False
    extra_resources: tuple[ExtraResource, ...] = ()
    node_pod: NodePodConfig = field(default_factory=NodePodConfig)


_KEYS = {"namespace", "multusDaemonSets", "nodeSelector", "nodeSelectorExpressions", "unreachableNodes",
         "attachedPods", "concurrency", "nodeRetries", "nodeTimeoutSeconds", "startErrorGraceSeconds",
         "stopTimeoutSeconds", "deadlineSeconds", "deleteNetworkAttachmentDefinitions", "deleteCRD",
         "extraResources", "nodePod"}
_POD_KEYS = {"image", "imagePullPolicy", "imagePullSecrets", "priorityClassName", "tolerations", "resources",
             "securityContext", "podSecurityContext", "labels", "annotations", "backupDir", "serviceAccountName"}


def parse_cluster_config(raw_value: object, field_name: str = "cluster") -> ClusterConfig:
    raw: Mapping[str, Any] = f.section(raw_value, field_name)
    f.reject_unknown(raw, _KEYS, field_name)
    d = ClusterConfig()
    return ClusterConfig(
        namespace=_dns(raw.get("namespace", d.namespace), f"{field_name}.namespace", _DNS_LABEL),
        multus_daemonsets=tuple(_object_ref(item, f"{field_name}.multusDaemonSets[{i}]") for i, item in
                                enumerate(_list(raw, "multusDaemonSets", field_name,
                                                [{"namespace": r.namespace, "name": r.name}
                                                 for r in d.multus_daemonsets]))),
        node_selector=_string_map(raw, "nodeSelector", field_name, d.node_selector),
        node_selector_expressions=tuple(
            _expression(e, f"{field_name}.nodeSelectorExpressions[{i}]") for i, e in
            enumerate(_list(raw, "nodeSelectorExpressions", field_name, list(d.node_selector_expressions)))),
        unreachable_nodes=f.string(raw, "unreachableNodes", field_name, d.unreachable_nodes, ("fail", "skip")),
        attached_pods=f.string(raw, "attachedPods", field_name, d.attached_pods, ("warn", "fail")),
        concurrency=f.integer(raw, "concurrency", field_name, d.concurrency, 1, 5000),
        node_retries=f.integer(raw, "nodeRetries", field_name, d.node_retries, 0, 5),
        node_timeout_seconds=f.integer(raw, "nodeTimeoutSeconds", field_name, d.node_timeout_seconds, 5, 3600),
        start_error_grace_seconds=f.integer(raw, "startErrorGraceSeconds", field_name, d.start_error_grace_seconds,
                                            0, 3600),
        stop_timeout_seconds=f.integer(raw, "stopTimeoutSeconds", field_name, d.stop_timeout_seconds, 1, 3600),
        deadline_seconds=f.integer(raw, "deadlineSeconds", field_name, d.deadline_seconds, 10, 86400),
        delete_network_attachment_definitions=f.boolean(raw, "deleteNetworkAttachmentDefinitions", field_name,
                                                        d.delete_network_attachment_definitions),
        delete_crd=f.boolean(raw, "deleteCRD", field_name, d.delete_crd),
        extra_resources=tuple(_extra(item, f"{field_name}.extraResources[{i}]")
                              for i, item in enumerate(_list(raw, "extraResources", field_name, []))),
        node_pod=_node_pod(raw.get("nodePod"), f"{field_name}.nodePod"),
    )


def _node_pod(raw_value: object, field_name: str) -> NodePodConfig:
    raw: Mapping[str, Any] = f.section(raw_value, field_name)
    f.reject_unknown(raw, _POD_KEYS, field_name)
    d = NodePodConfig()
    image = f.string(raw, "image", field_name, d.image)
    if not image or any(ch.isspace() for ch in image):
        raise ConfigError(f"{field_name}.image", f"must be an image reference, got {image!r}")
    priority = raw.get("priorityClassName", d.priority_class_name)
    return NodePodConfig(
        image=image,
        image_pull_policy=f.string(raw, "imagePullPolicy", field_name, d.image_pull_policy,
                                   ("Always", "IfNotPresent", "Never")),
        image_pull_secrets=tuple(_dns(s, f"{field_name}.imagePullSecrets[{i}]", _DNS_SUBDOMAIN) for i, s in
                                 enumerate(f.string_list(raw, "imagePullSecrets", field_name, ()))),
        priority_class_name=None if priority in (None, "") else _dns(priority, f"{field_name}.priorityClassName",
                                                                    _DNS_SUBDOMAIN),
        tolerations=tuple(f.section(t, f"{field_name}.tolerations[{i}]") for i, t in
                          enumerate(_list(raw, "tolerations", field_name, list(d.tolerations)))),
        resources=f.section(raw.get("resources", d.resources), f"{field_name}.resources"),
        security_context=f.section(raw.get("securityContext", d.security_context), f"{field_name}.securityContext"),
        pod_security_context=f.section(raw.get("podSecurityContext", {}), f"{field_name}.podSecurityContext"),
        labels=_string_map(raw, "labels", field_name, {}),
        annotations=_string_map(raw, "annotations", field_name, d.annotations),
        backup_dir=f.optional_host_path(raw, "backupDir", field_name, None),
        service_account_name=None if raw.get("serviceAccountName") in (None, "") else _dns(
            raw["serviceAccountName"], f"{field_name}.serviceAccountName", _DNS_SUBDOMAIN),
    )


def _expression(raw_value: object, field_name: str) -> Mapping[str, Any]:
    """A node selector requirement, as in a LabelSelector's matchExpressions."""
    raw: Mapping[str, Any] = f.section(raw_value, field_name)
    f.reject_unknown(raw, {"key", "operator", "values"}, field_name)
    key = f.string(raw, "key", field_name, "")
    if not key:
        raise ConfigError(f"{field_name}.key", "must be a label key")
    operator = f.string(raw, "operator", field_name, "", ("In", "NotIn", "Exists", "DoesNotExist"))
    values = list(f.string_list(raw, "values", field_name, ()))
    if (operator in ("In", "NotIn")) != bool(values):
        raise ConfigError(f"{field_name}.values", f"{operator} needs values; Exists and DoesNotExist take none")
    return {"key": key, "operator": operator, "values": values} if values else {"key": key, "operator": operator}


def _list(raw: Mapping[str, Any], key: str, field_name: str, default: list[Any]) -> list[Any]:
    value = raw.get(key, default)
    if value is None:
        return []
    if not isinstance(value, list):
        raise ConfigError(f"{field_name}.{key}", f"must be a list, got {value!r}")
    return value


def _string_map(raw: Mapping[str, Any], key: str, field_name: str, default: Mapping[str, str]) -> dict[str, str]:
    value = f.section(raw.get(key, dict(default)), f"{field_name}.{key}")
    for k, v in value.items():
        if not isinstance(v, str):
            raise ConfigError(f"{field_name}.{key}.{k}", f"must be a string, got {v!r}")
    return dict(value)


def _dns(value: object, field_name: str, pattern: re.Pattern[str]) -> str:
    if not isinstance(value, str) or not pattern.match(value):
        raise ConfigError(field_name, f"must be a Kubernetes name (lower case letters, digits, '-'), got {value!r}")
    return value


def _object_ref(raw_value: object, field_name: str) -> ObjectRef:
    raw = f.section(raw_value, field_name)
    f.reject_unknown(raw, {"namespace", "name"}, field_name)
    return ObjectRef(_dns(raw.get("namespace"), f"{field_name}.namespace", _DNS_LABEL),
                     _dns(raw.get("name"), f"{field_name}.name", _DNS_SUBDOMAIN))


def _extra(raw_value: object, field_name: str) -> ExtraResource:
    raw = f.section(raw_value, field_name)
    f.reject_unknown(raw, {"group", "version", "resource", "namespace", "name"}, field_name)
    group = raw.get("group", "")
    if not isinstance(group, str) or not _GROUP.match(group):
        raise ConfigError(f"{field_name}.group", f"must be an API group such as apps or k8s.cni.cncf.io, got {group!r}")
    version = raw.get("version")
    if not isinstance(version, str) or not _VERSION.match(version):
        raise ConfigError(f"{field_name}.version", f"must be an API version such as v1, got {version!r}")
    namespace = raw.get("namespace")
    return ExtraResource(
        group=group, version=version,
        resource=_dns(raw.get("resource"), f"{field_name}.resource", _DNS_LABEL),
        name=_dns(raw.get("name"), f"{field_name}.name", _DNS_SUBDOMAIN),
        namespace=None if namespace in (None, "") else _dns(namespace, f"{field_name}.namespace", _DNS_LABEL),
    )
