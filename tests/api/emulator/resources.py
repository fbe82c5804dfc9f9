"""Resource types served by the emulator, and what the API server does to objects on write:
defaulting (so the ``kubernetes`` client's strict models accept what is served) and a subset of
validation (names, labels, required pod/job/daemonset fields, immutable fields)."""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from typing import Any

_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
COMMON_FIELDS = frozenset({"metadata.name", "metadata.namespace"})


@dataclass(frozen=True)
class ResourceType:
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    singular: str = ""
    short_names: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()
    fields: frozenset[str] = COMMON_FIELDS
    verbs: tuple[str, ...] = ALL_VERBS

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def key(self) -> tuple[str, str]:
        """The storage key: one table per group+plural, whatever the version."""
        return (self.group, self.plural)

    @property
    def qualified(self) -> str:
        """``pods``, ``daemonsets.apps``: how API error messages name a resource."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def has_status(self) -> bool:
        return "status" in self.subresources


POD_FIELDS = COMMON_FIELDS | {
    "spec.nodeName", "spec.restartPolicy", "spec.schedulerName", "spec.serviceAccountName",
    "spec.hostNetwork", "status.phase", "status.podIP", "status.nominatedNodeName",
}

BUILTIN_TYPES: tuple[ResourceType, ...] = (
    ResourceType("", "v1", "namespaces", "Namespace", False, "namespace", ("ns",), ("status", "finalize"),
                 COMMON_FIELDS | {"status.phase"}),
    ResourceType("", "v1", "nodes", "Node", False, "node", ("no",), ("status",),
                 COMMON_FIELDS | {"spec.unschedulable"}),
    ResourceType("", "v1", "pods", "Pod", True, "pod", ("po",), ("status", "log", "eviction"), POD_FIELDS),
    ResourceType("", "v1", "configmaps", "ConfigMap", True, "configmap", ("cm",)),
    ResourceType("", "v1", "secrets", "Secret", True, "secret", (), (), COMMON_FIELDS | {"type"}),
    ResourceType("", "v1", "serviceaccounts", "ServiceAccount", True, "serviceaccount", ("sa",)),
    ResourceType("", "v1", "events", "Event", True, "event", ("ev",), (),
                 COMMON_FIELDS | {"involvedObject.kind", "involvedObject.name", "involvedObject.namespace",
                                  "involvedObject.uid", "reason", "type", "source"}),
    ResourceType("apps", "v1", "daemonsets", "DaemonSet", True, "daemonset", ("ds",), ("status",)),
    ResourceType("apps", "v1", "deployments", "Deployment", True, "deployment", ("deploy",), ("status", "scale")),
    ResourceType("batch", "v1", "jobs", "Job", True, "job", (), ("status",),
                 COMMON_FIELDS | {"status.successful"}),
    ResourceType("apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition", False,
                 "customresourcedefinition", ("crd", "crds"), ("status",)),
    ResourceType("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", False, "clusterrole"),
    ResourceType("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", False,
                 "clusterrolebinding"),
    ResourceType("rbac.authorization.k8s.io", "v1", "roles", "Role", True, "role"),
    ResourceType("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding", True, "rolebinding"),
)


def types_from_crd(crd: dict[str, Any]) -> list[ResourceType]:
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    subresources: tuple[str, ...] = ()
    result = []
    for version in spec.get("versions") or []:
        if not version.get("served", True):
            continue
        subresources = tuple(sorted((version.get("subresources") or {}).keys()))
        result.append(ResourceType(
            group=spec["group"], version=version["name"], plural=names["plural"], kind=names["kind"],
            namespaced=spec.get("scope", "Namespaced") == "Namespaced",
            singular=names.get("singular") or names["kind"].lower(),
            short_names=tuple(names.get("shortNames") or ()), subresources=subresources,
        ))
    return result


class InvalidError(Exception):
    """A 422 Invalid with its field causes."""

    def __init__(self, causes: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{f}: {m}" for f, m in causes))
        self.causes = causes


# ---------------------------------------------------------------------------------------------- defaults

@dataclass
class Defaults:
    """Values the emulated control plane fills in (tunable per emulator)."""

    kubelet_version: str = "v1.31.4"
    container_runtime: str = "containerd://1.7.24"
    kernel: str = "6.1.0-28-amd64"
    os_image: str = "Debian GNU/Linux 12 (bookworm)"
    extra: dict[str, Any] = field(default_factory=dict)


def _image_pull_policy(image: str) -> str:
    tail = image.rsplit("/", 1)[-1]
    if "@" in tail:
        return "IfNotPresent"
    if ":" not in tail or tail.endswith(":latest"):
        return "Always"
    return "IfNotPresent"


def default_pod_spec(spec: dict[str, Any]) -> None:
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("securityContext", {})
    spec.setdefault("enableServiceLinks", True)
    spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
    spec.setdefault("priority", 0)
    if spec.get("serviceAccountName") or spec.get("serviceAccount"):
        spec.setdefault("serviceAccountName", spec.get("serviceAccount"))
        spec.setdefault("serviceAccount", spec["serviceAccountName"])
    for kind in ("containers", "initContainers"):
        for container in spec.get(kind) or []:
            container.setdefault("terminationMessagePath", "/dev/termination-log")
            container.setdefault("terminationMessagePolicy", "File")
            container.setdefault("imagePullPolicy", _image_pull_policy(str(container.get("image", ""))))
            container.setdefault("resources", {})


def _pod_qos(spec: dict[str, Any]) -> str:
    resources = [c.get("resources") or {} for c in spec.get("containers") or []]
    if not any(r.get("requests") or r.get("limits") for r in resources):
        return "BestEffort"
    if all(r.get("limits") and r.get("limits") == (r.get("requests") or r.get("limits")) for r in resources):
        return "Guaranteed"
    return "Burstable"


def apply_defaults(rt: ResourceType, obj: dict[str, Any], defaults: Defaults) -> None:
    """Fill what the real API server (defaulting + admission) or its controllers fill on create."""
    meta = obj["metadata"]
    if rt.plural == "namespaces":
        obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
        obj.setdefault("status", {}).setdefault("phase", "Active")
        meta.setdefault("labels", {})["kubernetes.io/metadata.name"] = meta.get("name", "")
    elif rt.plural == "nodes":
        spec = obj.setdefault("spec", {})
        status = obj.setdefault("status", {})
        name = meta.get("name", "")
        info = status.setdefault("nodeInfo", {})
        for key, value in {
            "architecture": "amd64", "bootID": f"boot-{meta['uid']}", "containerRuntimeVersion":
            defaults.container_runtime, "kernelVersion": defaults.kernel, "kubeProxyVersion": "",
            "kubeletVersion": defaults.kubelet_version, "machineID": meta["uid"].replace("-", ""),
            "operatingSystem": "linux", "osImage": defaults.os_image, "systemUUID": meta["uid"],
        }.items():
            info.setdefault(key, value)
        capacity = {"cpu": "4", "memory": "16336056Ki", "pods": "110", "ephemeral-storage": "101430960Ki"}
        status.setdefault("capacity", dict(capacity))
        status.setdefault("allocatable", dict(capacity))
        status.setdefault("addresses", [{"type": "Hostname", "address": name}])
        status.setdefault("daemonEndpoints", {"kubeletEndpoint": {"Port": 10250}})
        if "conditions" not in status:
            now = meta["creationTimestamp"]
            status["conditions"] = [
                {"type": t, "status": "False", "reason": f"Kubelet{r}", "message": m,
                 "lastHeartbeatTime": now, "lastTransitionTime": now}
                for t, r, m in (("MemoryPressure", "HasSufficientMemory", "kubelet has sufficient memory"),
                                ("DiskPressure", "HasNoDiskPressure", "kubelet has no disk pressure"),
                                ("PIDPressure", "HasSufficientPID", "kubelet has sufficient PID available"))
            ] + [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                  "message": "kubelet is posting ready status", "lastHeartbeatTime": now,
                  "lastTransitionTime": now}]
        # The node lifecycle controller keeps the cordon taint in step with spec.unschedulable.
        taints = [t for t in spec.get("taints") or [] if t.get("key") != "node.kubernetes.io/unschedulable"]
        if spec.get("unschedulable"):
            taints.append({"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule",
                           "timeAdded": meta["creationTimestamp"]})
        if taints:
            spec["taints"] = taints
        else:
            spec.pop("taints", None)
    elif rt.plural == "pods":
        spec = obj.setdefault("spec", {})
        default_pod_spec(spec)
        spec.setdefault("serviceAccountName", "default")
        spec.setdefault("serviceAccount", spec["serviceAccountName"])
        tolerations = spec.setdefault("tolerations", [])
        for key in ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"):
            if not any(t.get("key") == key and t.get("effect") in (None, "NoExecute") for t in tolerations):
                tolerations.append({"key": key, "operator": "Exists", "effect": "NoExecute",
                                    "tolerationSeconds": 300})
        status = obj.setdefault("status", {})
        status.setdefault("phase", "Pending")
        status.setdefault("qosClass", _pod_qos(spec))
    elif rt.plural == "daemonsets":
        spec = obj.setdefault("spec", {})
        spec.setdefault("revisionHistoryLimit", 10)
        spec.setdefault("updateStrategy", {"type": "RollingUpdate",
                                           "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}})
        default_pod_spec(spec.setdefault("template", {}).setdefault("spec", {}))
        status = obj.setdefault("status", {})
        for key in ("currentNumberScheduled", "desiredNumberScheduled", "numberMisscheduled", "numberReady"):
            status.setdefault(key, 0)
    elif rt.plural == "jobs":
        spec = obj.setdefault("spec", {})
        spec.setdefault("backoffLimit", 6)
        spec.setdefault("completions", 1)
        spec.setdefault("parallelism", 1)
        spec.setdefault("completionMode", "NonIndexed")
        spec.setdefault("suspend", False)
        spec.setdefault("podReplacementPolicy", "TerminatingOrFailed")
        template = spec.setdefault("template", {})
        default_pod_spec(template.setdefault("spec", {}))
        if not spec.get("manualSelector"):
            uid = meta["uid"]
            labels = template.setdefault("metadata", {}).setdefault("labels", {})
            labels.update({"batch.kubernetes.io/controller-uid": uid, "controller-uid": uid,
                           "batch.kubernetes.io/job-name": meta.get("name", ""), "job-name": meta.get("name", "")})
            spec["selector"] = {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
        obj.setdefault("status", {})
    elif rt.plural == "customresourcedefinitions":
        spec = obj.get("spec") or {}
        names = dict(spec.get("names") or {})
        names.setdefault("singular", str(names.get("kind", "")).lower())
        names.setdefault("listKind", f"{names.get('kind', '')}List")
        storage = [v["name"] for v in spec.get("versions") or [] if v.get("storage")]
        now = meta["creationTimestamp"]
        obj["status"] = {
            "acceptedNames": names,
            "storedVersions": storage,
            "conditions": [
                {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts",
                 "message": "no conflicts found", "lastTransitionTime": now},
                {"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
                 "message": "the initial names have been accepted", "lastTransitionTime": now},
            ],
        }


# ---------------------------------------------------------------------------------------------- validation

def _validate_labels(labels: Any, causes: list[tuple[str, str]]) -> None:
    if labels is None:
        return
    if not isinstance(labels, dict):
        causes.append(("metadata.labels", "Invalid value: must be a map"))
        return
    for key, value in labels.items():
        prefix, _, name = str(key).rpartition("/")
        if (prefix and (len(prefix) > 253 or not _DNS1123_SUBDOMAIN.match(prefix))) or \
                not name or len(name) > 63 or not _LABEL_NAME.match(name):
            causes.append(("metadata.labels", f'Invalid value: "{key}": name part must consist of '
                                                f"alphanumeric characters, '-', '_' or '.'"))
        if not isinstance(value, str) or len(value) > 63 or not _LABEL_VALUE.match(value):
            causes.append(("metadata.labels", f'Invalid value: "{value}": a valid label must be an empty '
                                                "string or consist of alphanumeric characters, '-', '_' or '.'"))


def _validate_pod_spec(spec: Any, path: str, causes: list[tuple[str, str]]) -> None:
    if not isinstance(spec, dict):
        causes.append((path, "Required value"))
        return
    containers = spec.get("containers")
    if not containers:
        causes.append((f"{path}.containers", "Required value"))
        return
    seen: set[str] = set()
    for i, container in enumerate(containers):
        if not container.get("name"):
            causes.append((f"{path}.containers[{i}].name", "Required value"))
        elif container["name"] in seen:
            causes.append((f"{path}.containers[{i}].name", f'Duplicate value: "{container["name"]}"'))
        else:
            seen.add(container["name"])
        if not container.get("image"):
            causes.append((f"{path}.containers[{i}].image", "Required value"))


def validate(rt: ResourceType, obj: dict[str, Any]) -> None:
    causes: list[tuple[str, str]] = []
    meta = obj.get("metadata") or {}
    name = meta.get("name") or ""
    label_names = rt.plural in ("namespaces", "jobs")
    pattern, limit = (_DNS1123_LABEL, 63) if label_names else (_DNS1123_SUBDOMAIN, 253)
    if not name:
        causes.append(("metadata.name", "Required value: name or generateName is required"))
    elif len(name) > limit or not pattern.match(name):
        causes.append(("metadata.name", f'Invalid value: "{name}": a lowercase RFC 1123 '
                                        f"{'label' if label_names else 'subdomain'} must consist of lower case "
                                        "alphanumeric characters, '-' or '.'"))
    _validate_labels(meta.get("labels"), causes)
    spec = obj.get("spec") or {}
    if rt.plural == "pods":
        _validate_pod_spec(spec, "spec", causes)
    elif rt.plural == "jobs":
        template = spec.get("template") or {}
        _validate_pod_spec(template.get("spec"), "spec.template.spec", causes)
        if (template.get("spec") or {}).get("restartPolicy") not in ("Never", "OnFailure"):
            causes.append(("spec.template.spec.restartPolicy",
                           'Required value: valid values: "OnFailure", "Never"'))
        _validate_labels((template.get("metadata") or {}).get("labels"), causes)
    elif rt.plural == "daemonsets":
        template = spec.get("template") or {}
        _validate_pod_spec(template.get("spec"), "spec.template.spec", causes)
        selector = spec.get("selector")
        labels = (template.get("metadata") or {}).get("labels") or {}
        if not selector:
            causes.append(("spec.selector", "Required value"))
        else:
            from .selectors import LabelSelector  # local: avoid an import cycle at module load
            if not LabelSelector.from_dict(selector).matches(labels):
                causes.append(("spec.template.metadata.labels",
                               "Invalid value: `selector` does not match template `labels`"))
        if (template.get("spec") or {}).get("restartPolicy", "Always") != "Always":
            causes.append(("spec.template.spec.restartPolicy", 'Unsupported value: valid values: "Always"'))
    elif rt.plural == "customresourcedefinitions":
        names = spec.get("names") or {}
        if not spec.get("group") or not names.get("plural") or not names.get("kind"):
            causes.append(("spec", "Required value: group, names.plural and names.kind"))
        elif name != f"{names['plural']}.{spec['group']}":
            causes.append(("metadata.name", f'Invalid value: "{name}": must be spec.names.plural+"."+spec.group'))
        if not spec.get("versions"):
            causes.append(("spec.versions", "Required value"))
    if causes:
        raise InvalidError(causes)


def _strip(obj: Any, keys: tuple[str, ...]) -> Any:
    if not isinstance(obj, dict):
        return obj
    return {k: v for k, v in obj.items() if k not in keys}


def validate_update(rt: ResourceType, old: dict[str, Any], new: dict[str, Any]) -> None:
    """Immutable fields (a subset of upstream's rules)."""
    causes: list[tuple[str, str]] = []
    old_spec, new_spec = old.get("spec") or {}, new.get("spec") or {}
    if rt.plural == "pods":
        mutable = ("activeDeadlineSeconds", "tolerations", "containers", "initContainers",
                   "terminationGracePeriodSeconds")
        containers_changed = [dict(c, image=None) for c in old_spec.get("containers") or []] != \
                      [dict(c, image=None) for c in new_spec.get("containers") or []]
        if _strip(old_spec, mutable) != _strip(new_spec, mutable) or containers_changed:
            causes.append(("spec", "Forbidden: pod updates may not change fields other than `spec.containers[*].image`,"
                                   "`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,"
                                   "`spec.tolerations` (only additions to existing tolerations),"
                                   "`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was "
                                   "previously negative)"))
    elif rt.plural == "jobs":
        for key in ("selector", "template", "completionMode"):
            if old_spec.get(key) != new_spec.get(key):
                causes.append((f"spec.{key}", "Invalid value: field is immutable"))
    elif rt.plural == "daemonsets" and old_spec.get("selector") != new_spec.get("selector"):
        causes.append(("spec.selector", "Invalid value: field is immutable"))
    if causes:
        raise InvalidError(causes)


def copy_json(obj: Any) -> Any:
    return copy.deepcopy(obj)
