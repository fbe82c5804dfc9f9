"""The cleanup pod for one node: rendered from the config with jinja2, validated as a Pod before use."""

from __future__ import annotations

import hashlib
import json
import posixpath
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import jinja2
import yaml

from ..config import CleanupConfig, ConfigError
from ..config.node import NodeConfig

HOST_ROOT = "/host"
COMPONENT_LABEL = "app.kubernetes.io/component"
RUN_LABEL = "multus-cleanup.k8s.cni.cncf.io/run"
NODE_ANNOTATION = "multus-cleanup.k8s.cni.cncf.io/node"
# The API server deletes a collection one object after the other: a run's pods carry one of SHARDS values
# here, so that several deletecollections delete them in parallel (Sweep._delete_run_pods).
SHARD_LABEL = "multus-cleanup.k8s.cni.cncf.io/shard"
SHARDS = 8
# libyaml's parser when PyYAML has it (same SafeConstructor, same result): the pure-Python one took ~4 ms
# per node pod, most of the orchestrator's CPU time per node (docs/performance.md).
_YAML_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
BASE_LABELS = {"app.kubernetes.io/name": "multus-cleanup", COMPONENT_LABEL: "node-cleanup",
               "app.kubernetes.io/managed-by": "multus-cleanup"}
MANAGED_SELECTOR = ",".join(f"{k}={v}" for k, v in BASE_LABELS.items())


@dataclass(frozen=True)
class Mount:
    volume: str
    host_path: str
    type: str

    @property
    def mount_path(self) -> str:
        return HOST_ROOT + self.host_path


@dataclass(frozen=True)
class Owner:
    """The hook Job: node pods are owned by it, so they go when it goes."""

    name: str
    uid: str


def host_mounts(node: NodeConfig, backup_dir: str | None) -> list[Mount]:
    """Only the host paths the engine needs, each once.

    Multus's own directories are reached through their parents (/run, /var/lib/cni): a directory that is
    itself a hostPath mount cannot be removed from inside the pod, and a missing one would be created on the
    node by the runtime just to mount it.
    """
    wanted = [node.cni_conf_dir, node.cni_bin_dir, posixpath.dirname(node.socket_dir),
              posixpath.dirname(node.cache_dir), posixpath.dirname(node.multus_conf_dir)]
    if node.log_file:
        wanted.append(posixpath.dirname(node.log_file))
    wanted += [posixpath.dirname(p) for p in node.extra_files]
    paths = sorted({p for p in wanted if p != "/"})
    # Drop paths inside another mounted path: one bind mount already shows them.
    kept = [p for p in paths if not any(p != q and p.startswith(q + "/") for q in paths)]
    # DirectoryOrCreate: a node lacking one of them (no /var/lib/cni yet) must still run its cleanup.
    mounts = [Mount(f"host-{i}", p, "DirectoryOrCreate") for i, p in enumerate(kept)]
    if backup_dir:
        mounts.append(Mount("backup", backup_dir, "DirectoryOrCreate"))
    return mounts


def container_security_context(wanted: Mapping[str, Any]) -> dict[str, Any]:
    """The cleanup container's securityContext. A privileged container always may escalate: the API server
    refuses `privileged: true` with `allowPrivilegeEscalation: false` (422), so a privileged node pod (OpenShift,
    SELinux hosts) drops the latter instead of failing on every node."""
    context = dict(wanted)
    if context.get("privileged") is True and context.get("allowPrivilegeEscalation") is False:
        del context["allowPrivilegeEscalation"]
    return context


class NodePodFactory:
    def __init__(self, config: CleanupConfig, run_id: str, owner: Owner | None, *, dry_run: bool = False) -> None:
        self.config = config
        self.run_id = run_id
        self.owner = owner
        self.dry_run = dry_run  # `check`: the node engine only reports
        env = jinja2.Environment(loader=jinja2.PackageLoader("multus_cleanup.cluster", "templates"),
                                 undefined=jinja2.StrictUndefined, autoescape=False)  # noqa: S701 - YAML, not HTML
        self._template = env.get_template("node-pod.yaml.j2")

    @cached_property
    def _static(self) -> dict[str, Any]:
        cluster, pod = self.config.cluster, self.config.cluster.node_pod
        command = ["multus-cleanup", "node", "--host-root", HOST_ROOT, "--output", "text",
                   "--report-file", "/dev/termination-log"]
        if self.dry_run:
            command.append("--dry-run")
        elif pod.backup_dir:
            command += ["--backup-dir", pod.backup_dir]
        return {
            "namespace": cluster.namespace,
            "labels": {**pod.labels, **BASE_LABELS, RUN_LABEL: self.run_id},
            "owner": self.owner,
            "pod": pod,
            "pull_secrets": [{"name": s} for s in pod.image_pull_secrets],
            "security_context": container_security_context(pod.security_context),
            "command": command,
            "node_config": json.dumps({"node": self.config.node.to_raw()}, separators=(",", ":")),
            "mounts": host_mounts(self.config.node, pod.backup_dir),
            # A backstop for pods whose orchestrator died: normally the node timeout fires first.
            "deadline_seconds": cluster.node_timeout_seconds + 30,
        }

    def pod_name(self, node: str, attempt: int) -> str:
        digest = hashlib.sha256(node.encode()).hexdigest()[:10]
        return f"multus-cleanup-{self.run_id}{attempt}-{digest}"

    def render(self, node: str, attempt: int = 0) -> dict[str, Any]:
        name = self.pod_name(node, attempt)
        annotations = {**self.config.cluster.node_pod.annotations, NODE_ANNOTATION: node}
        if self._skeleton is None:
            manifest = self._render(name, node, annotations)
        else:
            # The same manifest as _render's, at a tenth of the cost: one pod per node adds up at 5,000 nodes.
            manifest = json.loads(self._skeleton)
            manifest["metadata"]["name"] = name
            manifest["metadata"]["annotations"] = annotations
            manifest["spec"]["nodeName"] = node
        manifest["metadata"]["labels"][SHARD_LABEL] = str(int(name[-2:], 16) % SHARDS)
        return manifest

    def _render(self, name: str, node: str, annotations: dict[str, str]) -> dict[str, Any]:
        text = self._template.render(**self._static, name=name, node=node, annotations=annotations)
        manifest: dict[str, Any] = yaml.load(text, Loader=_YAML_LOADER)  # noqa: S506 - a safe loader
        return manifest

    @cached_property
    def _skeleton(self) -> str | None:
        """The manifest as JSON, rendered once with markers for the per-node values, if the template puts
        them only at metadata.name, metadata.annotations and spec.nodeName (as node-pod.yaml.j2 does).
        None otherwise: then every node's pod is rendered in full."""
        name, node, note = (f"multus-cleanup-skeleton-{what}-8d1f0c" for what in ("name", "node", "note"))
        manifest = self._render(name, node, {"note": note})
        text = json.dumps(manifest)
        meta, spec = manifest.get("metadata") or {}, manifest.get("spec") or {}
        in_place = meta.get("name") == name and meta.get("annotations") == {"note": note} \
            and spec.get("nodeName") == node
        once = all(text.count(marker) == 1 for marker in (name, node, note))
        return text if in_place and once else None


def validate_pod(manifest: dict[str, Any]) -> None:
    """Reject a node pod that is not a valid Pod, or that breaks the rules node pods live by."""
    from kubernetes.client import V1Pod

    try:
        V1Pod.from_dict(manifest)
    except Exception as err:  # pydantic's ValidationError names the field
        raise ConfigError("cluster.nodePod", f"the node pod is not a valid Pod: {err}") from err
    spec = manifest["spec"]
    rules = {
        "spec.hostNetwork must be true (pod networking may be broken)": spec.get("hostNetwork") is True,
        "spec.automountServiceAccountToken must be false (no API credentials on nodes)":
            spec.get("automountServiceAccountToken") is False,
        "spec.nodeName must be set": bool(spec.get("nodeName")),
        "spec.restartPolicy must be Never": spec.get("restartPolicy") == "Never",
        "every volume must be a hostPath of the configured paths": all(
            set(v) == {"name", "hostPath"} for v in spec.get("volumes", [])),
        "one container named cleanup": [c.get("name") for c in spec.get("containers", [])] == ["cleanup"],
    }
    for rule, holds in rules.items():
        if not holds:
            raise ConfigError("cluster.nodePod", f"the node pod breaks a rule: {rule}")
    for container in spec["containers"]:
        for key, value in (container.get("resources") or {}).items():
            if key not in ("requests", "limits", "claims"):
                raise ConfigError("cluster.nodePod.resources", f"unknown key {key!r} (requests, limits)")
            if not isinstance(value, dict | list):
                raise ConfigError(f"cluster.nodePod.resources.{key}", f"must be a mapping, got {value!r}")
