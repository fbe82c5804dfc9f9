"""Every request the emulator served, in Kubernetes authorization terms, and an RBAC evaluator.

A record carries the RBAC attributes the real authorizer sees (verb, apiGroup, resource,
subresource, namespace, name; or the non-resource path), so a test can prove that every call a
component made is allowed by the rules of a rendered ClusterRole/Role.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass
class RequestRecord:
    verb: str  # get list watch create update patch delete deletecollection (RBAC verbs)
    api_group: str | None  # None for a non-resource request
    resource: str | None
    subresource: str | None
    namespace: str | None
    name: str | None
    method: str
    path: str
    query: Mapping[str, str] = field(default_factory=dict)
    user_agent: str = ""
    status: int = 0  # set when the response is ready (0 = still streaming; -1 = connection cut by a fault)
    fault: str | None = None  # the fault rule that answered it, if any
    at: float = field(default_factory=time.monotonic)

    @property
    def resource_request(self) -> bool:
        return self.resource is not None

    @property
    def full_resource(self) -> str | None:
        """``pods``, ``pods/log``: the resource string RBAC rules name."""
        if self.resource is None:
            return None
        return f"{self.resource}/{self.subresource}" if self.subresource else self.resource

    def describe(self) -> str:
        if self.resource is None:
            return f"{self.verb} {self.path}"
        where = f" in {self.namespace}" if self.namespace else ""
        name = f" {self.name}" if self.name else ""
        group = self.api_group or "core"
        return f"{self.verb} {self.full_resource}.{group}{name}{where}"


class RequestLog:
    def __init__(self) -> None:
        self._records: list[RequestRecord] = []
        self._lock = threading.Lock()

    def append(self, record: RequestRecord) -> None:
        with self._lock:
            self._records.append(record)

    def clear(self) -> None:
        with self._lock:
            self._records.clear()

    def records(self, **filters: Any) -> list[RequestRecord]:
        """Records whose attributes equal every given filter, e.g. ``records(verb="create", resource="pods")``."""
        with self._lock:
            snapshot = list(self._records)
        return [r for r in snapshot if all(getattr(r, k) == v for k, v in filters.items())]

    def __len__(self) -> int:
        return len(self._records)

    def count(self, **filters: Any) -> int:
        return len(self.records(**filters))

    def by_verb(self, **filters: Any) -> collections.Counter[str]:
        return collections.Counter(r.verb for r in self.records(**filters))

    def by_resource_verb(self, **filters: Any) -> collections.Counter[tuple[str, str]]:
        return collections.Counter((r.full_resource or r.path, r.verb) for r in self.records(**filters))

    def user_agents(self) -> set[str]:
        return {r.user_agent for r in self.records()}


def _matches(values: Iterable[str] | None, wanted: str) -> bool:
    values = list(values or [])
    return "*" in values or wanted in values


def _resource_matches(resources: Iterable[str] | None, record: RequestRecord) -> bool:
    for res in resources or []:
        if res == "*":
            return True
        if record.subresource:
            if res in (f"{record.resource}/{record.subresource}", f"*/{record.subresource}", f"{record.resource}/*"):
                return True
        elif res == record.resource:
            return True
    return False


def rule_allows(rule: Mapping[str, Any], record: RequestRecord) -> bool:
    if not _matches(rule.get("verbs"), record.verb):
        return False
    if record.resource is None:
        for url in rule.get("nonResourceURLs") or []:
            if url == "*" or url == record.path or (url.endswith("*") and record.path.startswith(url[:-1])):
                return True
        return False
    if not _matches(rule.get("apiGroups"), record.api_group or ""):
        return False
    if not _resource_matches(rule.get("resources"), record):
        return False
    names = rule.get("resourceNames") or []
    return not names or (record.name is not None and record.name in names)


@dataclass
class RbacPolicy:
    """What one subject may do: cluster-wide rules (ClusterRoleBindings) and per-namespace rules
    (RoleBindings, to a Role or a ClusterRole)."""

    cluster_rules: list[Mapping[str, Any]] = field(default_factory=list)
    namespace_rules: dict[str, list[Mapping[str, Any]]] = field(default_factory=dict)

    def allows(self, record: RequestRecord) -> bool:
        if any(rule_allows(rule, record) for rule in self.cluster_rules):
            return True
        if record.namespace is None:
            return False
        return any(rule_allows(rule, record) for rule in self.namespace_rules.get(record.namespace, []))

    def violations(self, records: Iterable[RequestRecord]) -> list[RequestRecord]:
        return [r for r in records if not self.allows(r)]

    @classmethod
    def from_manifests(cls, documents: Iterable[Mapping[str, Any] | None], service_account: str,
                       namespace: str) -> RbacPolicy:
        """Resolve the (Cluster)RoleBindings of ``system:serviceaccount:<namespace>:<service_account>``
        among rendered manifests. A binding to a role that is not in the manifests grants nothing."""
        docs = [d for d in documents if d]
        roles = {(d["kind"], (d.get("metadata") or {}).get("namespace"), d["metadata"]["name"]): d.get("rules") or []
                 for d in docs if d.get("kind") in ("Role", "ClusterRole")}
        policy = cls()

        def bound(binding: Mapping[str, Any]) -> bool:
            for subject in binding.get("subjects") or []:
                if subject.get("kind") == "ServiceAccount" and subject.get("name") == service_account and \
                        (subject.get("namespace") or binding["metadata"].get("namespace")) == namespace:
                    return True
                if subject.get("kind") == "User" and \
                        subject.get("name") == f"system:serviceaccount:{namespace}:{service_account}":
                    return True
            return False

        for doc in docs:
            if doc.get("kind") not in ("RoleBinding", "ClusterRoleBinding") or not bound(doc):
                continue
            ref = doc.get("roleRef") or {}
            binding_ns = (doc.get("metadata") or {}).get("namespace") or namespace
            if ref.get("kind") == "ClusterRole":
                rules = roles.get(("ClusterRole", None, ref.get("name")), [])
            else:
                rules = roles.get(("Role", binding_ns, ref.get("name")), [])
            if doc["kind"] == "ClusterRoleBinding":
                policy.cluster_rules.extend(rules)
            else:
                policy.namespace_rules.setdefault(binding_ns, []).extend(rules)
        return policy
