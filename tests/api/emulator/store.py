"""The emulated control plane's state: objects, resource versions, watches, garbage collection.

Thread-safe (one re-entrant lock): the HTTP server's event loop, the simulated kubelet's thread and
the test's own thread all read and write through it. Stored objects are never mutated in place (every
write stores a new dict), so they can be serialised or handed to watchers without copying; what the
Python API hands out to callers is a deep copy.
"""

from __future__ import annotations

import base64
import bisect
import collections
import copy
import datetime
import json
import random
import threading
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from .patching import PatchError, apply_patch
from .resources import (
    BUILTIN_TYPES,
    Defaults,
    InvalidError,
    ResourceType,
    apply_defaults,
    types_from_crd,
    validate,
    validate_update,
)
from .selectors import FieldSelector, LabelSelector, SelectorError

Obj = dict[str, Any]
Key = tuple[str, str]  # (namespace or "", name)
ObjList = list[Obj]  # (inside Store, `list` names its method)
EventList = list[tuple[str, Obj]]
DEFAULT_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


def now_iso() -> str:
    return datetime.datetime.now(tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class ApiError(Exception):
    """An error the API answers with a ``Status`` body."""

    def __init__(self, code: int, reason: str, message: str, details: dict[str, Any] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details
        self.headers = headers or {}

    def status(self) -> Obj:
        body: Obj = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                     "message": self.message, "reason": self.reason, "code": self.code}
        if self.details is not None:
            body["details"] = self.details
        return body


def _details(rt: ResourceType, name: str | None) -> dict[str, Any]:
    details: dict[str, Any] = {"kind": rt.plural}
    if name:
        details["name"] = name
    if rt.group:
        details["group"] = rt.group
    return details


def not_found(rt: ResourceType, name: str) -> ApiError:
    return ApiError(404, "NotFound", f'{rt.qualified} "{name}" not found', _details(rt, name))


def conflict(rt: ResourceType, name: str) -> ApiError:
    return ApiError(409, "Conflict", f'Operation cannot be fulfilled on {rt.qualified} "{name}": the object has '
                                     "been modified; please apply your changes to the latest version and try again",
                    _details(rt, name))


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def invalid(rt: ResourceType, name: str, causes: list[tuple[str, str]]) -> ApiError:
    text = ", ".join(f"{f}: {m}" for f, m in causes)
    details = dict(_details(rt, name), kind=rt.kind,
                   causes=[{"reason": "FieldValueInvalid", "message": m, "field": f} for f, m in causes])
    return ApiError(422, "Invalid", f'{rt.kind} "{name}" is invalid: {text}', details)


def gone(message: str) -> ApiError:
    return ApiError(410, "Expired", message)


@dataclass(frozen=True)
class Event:
    rv: int
    type: str  # ADDED, MODIFIED, DELETED
    obj: Obj
    old: Obj | None = None


class Watcher:
    """One open watch: its filter and a thread-safe ``push`` (``None`` closes the watch)."""

    def __init__(self, rt: ResourceType, namespace: str | None, labels: LabelSelector, fields: FieldSelector,
                 push: Callable[[tuple[str, Obj] | None], None]) -> None:
        self.rt = rt
        self.namespace = namespace
        self.labels = labels
        self.fields = fields
        self.push = push

    def matches(self, obj: Obj) -> bool:
        meta = obj["metadata"]
        if self.namespace is not None and meta.get("namespace") != self.namespace:
            return False
        return self.labels.matches(meta.get("labels")) and self.fields.matches(obj)

    def classify(self, ev: Event) -> str | None:
        """Which event this watcher sees: a change moving an object out of its selector is DELETED."""
        new_ok = self.matches(ev.obj)
        if ev.type != "MODIFIED":
            return ev.type if new_ok else None
        old_ok = ev.old is not None and self.matches(ev.old)
        if new_ok:
            return "MODIFIED" if old_ok else "ADDED"
        return "DELETED" if old_ok else None


@dataclass
class Table:
    rt: ResourceType
    history_limit: int
    objects: dict[Key, Obj] = field(default_factory=dict)
    history: collections.deque[Event] = field(default_factory=collections.deque)
    compacted_rv: int = 0  # events with rv <= this were dropped from history
    watchers: list[Watcher] = field(default_factory=list)
    by_node: dict[str, set[Key]] | None = None  # pods: spec.nodeName -> keys (field-selector index)
    _sorted: list[Key] | None = None

    def __post_init__(self) -> None:
        if self.rt.key == ("", "pods"):
            self.by_node = collections.defaultdict(set)

    def index(self, key: Key, old: Obj | None, new: Obj | None) -> None:
        if self.by_node is None:
            return
        old_node = ((old or {}).get("spec") or {}).get("nodeName") or ""
        new_node = ((new or {}).get("spec") or {}).get("nodeName") or ""
        if old is not None and (new is None or old_node != new_node):
            keys = self.by_node.get(old_node)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self.by_node[old_node]
        if new is not None:
            self.by_node[new_node].add(key)

    def sorted_keys(self) -> list[Key]:
        if self._sorted is None:
            self._sorted = sorted(self.objects)
        return self._sorted

    def key_added(self, key: Key) -> None:
        if self._sorted is not None:
            bisect.insort(self._sorted, key)

    def key_removed(self, key: Key) -> None:
        if self._sorted is not None:
            index = bisect.bisect_left(self._sorted, key)
            if index < len(self._sorted) and self._sorted[index] == key:
                del self._sorted[index]
            else:
                self._sorted = None

    def record(self, ev: Event) -> None:
        self.history.append(ev)
        while len(self.history) > self.history_limit:
            self.compacted_rv = self.history.popleft().rv


# A synchronous subscriber (the simulated kubelet): called under the store lock, must be quick.
Subscriber = Callable[[ResourceType, Event], None]
TypesListener = Callable[[list[ResourceType], list[ResourceType]], None]
GracefulDelete = Callable[[ResourceType, Obj], bool]

_NAME_CHARS = "bcdfghjklmnpqrstvwxz2456789"


def _default_propagation(rt: ResourceType) -> str:
    # Upstream: batch/v1 Jobs orphan their pods unless told otherwise (kubectl asks for Background).
    return "Orphan" if rt.key == ("batch", "jobs") else "Background"


class Store:
    def __init__(self, defaults: Defaults | None = None, history_limit: int = 200_000) -> None:
        self.defaults = defaults or Defaults()
        self.history_limit = history_limit
        self.lock = threading.RLock()
        self._rv = 0
        self._types: dict[tuple[str, str, str], ResourceType] = {}
        self._tables: dict[tuple[str, str], Table] = {}
        self._uids: dict[str, tuple[Table, Key]] = {}
        self._dependents: dict[str, set[tuple[tuple[str, str], Key]]] = collections.defaultdict(set)
        self._ns_counts: collections.Counter[str] = collections.Counter()
        self._terminating: set[str] = set()
        self._subscribers: list[Subscriber] = []
        self._types_listeners: list[TypesListener] = []
        self.graceful_delete: GracefulDelete | None = None
        self.pod_logs: dict[Key, str] = {}
        for rt in BUILTIN_TYPES:
            self._register(rt)
        for ns in DEFAULT_NAMESPACES:
            self.create(self.rt("namespaces"), None, {"metadata": {"name": ns}})

    # ------------------------------------------------------------------------------------------ types

    @property
    def resource_version(self) -> int:
        return self._rv

    def types(self) -> list[ResourceType]:
        with self.lock:
            return list(self._types.values())

    def find_type(self, group: str, version: str, plural: str) -> ResourceType | None:
        return self._types.get((group, version, plural))

    def rt(self, plural: str, group: str | None = None) -> ResourceType:
        """Look a served resource type up by plural (and group when ambiguous)."""
        with self.lock:
            for rt in self._types.values():
                if rt.plural == plural and (group is None or rt.group == group):
                    return rt
        raise KeyError(f"resource not served: {plural!r} (group {group!r})")

    def on_types_changed(self, listener: TypesListener) -> None:
        with self.lock:
            self._types_listeners.append(listener)
            listener(list(self._types.values()), [])

    def _register(self, rt: ResourceType) -> None:
        self._types[(rt.group, rt.version, rt.plural)] = rt
        if rt.key not in self._tables:
            self._tables[rt.key] = Table(rt, self.history_limit)
        for listener in self._types_listeners:
            listener([rt], [])

    def _unregister(self, key: tuple[str, str]) -> None:
        removed = [rt for rt in self._types.values() if rt.key == key]
        for rt in removed:
            del self._types[(rt.group, rt.version, rt.plural)]
        table = self._tables.pop(key, None)
        if table is not None:
            for watcher in table.watchers:
                watcher.push(None)
            table.watchers.clear()
        for listener in self._types_listeners:
            listener([], removed)

    def _table(self, rt: ResourceType) -> Table:
        table = self._tables.get(rt.key)
        if table is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        return table

    # ------------------------------------------------------------------------------------------ subscribers

    def subscribe(self, subscriber: Subscriber) -> None:
        with self.lock:
            self._subscribers.append(subscriber)

    def unsubscribe(self, subscriber: Subscriber) -> None:
        with self.lock:
            if subscriber in self._subscribers:
                self._subscribers.remove(subscriber)

    # ------------------------------------------------------------------------------------------ writes (internal)

    def _emit(self, table: Table, ev: Event) -> None:
        table.record(ev)
        for watcher in table.watchers:
            kind = watcher.classify(ev)
            if kind is not None:
                watcher.push((kind, ev.obj))
        for subscriber in self._subscribers:
            subscriber(table.rt, ev)

    def _index_owners(self, table: Table, key: Key, old: Obj | None, new: Obj | None) -> None:
        old_uids = {r.get("uid") for r in (old or {}).get("metadata", {}).get("ownerReferences") or []}
        new_uids = {r.get("uid") for r in (new or {}).get("metadata", {}).get("ownerReferences") or []}
        ref = (table.rt.key, key)
        for uid in old_uids - new_uids:
            deps = self._dependents.get(uid)
            if deps is not None:
                deps.discard(ref)
                if not deps:
                    del self._dependents[uid]
        for uid in new_uids - old_uids:
            if uid:
                self._dependents[uid].add(ref)

    def _put(self, table: Table, key: Key, obj: Obj, old: Obj | None) -> Obj:
        self._rv += 1
        obj["metadata"]["resourceVersion"] = str(self._rv)
        if old is None:
            table.key_added(key)
            self._uids[obj["metadata"]["uid"]] = (table, key)
            if key[0]:
                self._ns_counts[key[0]] += 1
        table.objects[key] = obj
        table.index(key, old, obj)
        self._index_owners(table, key, old, obj)
        self._emit(table, Event(self._rv, "MODIFIED" if old is not None else "ADDED", obj, old))
        return obj

    def _remove(self, table: Table, key: Key, policy: str = "Background") -> Obj | None:
        obj = table.objects.pop(key, None)
        if obj is None:
            return None
        table.key_removed(key)
        table.index(key, obj, None)
        meta = obj["metadata"]
        uid = meta["uid"]
        self._uids.pop(uid, None)
        self._index_owners(table, key, obj, None)
        if key[0]:
            self._ns_counts[key[0]] -= 1
        self._rv += 1
        final = dict(obj, metadata=dict(meta, resourceVersion=str(self._rv)))
        if table.rt.key == ("", "pods"):
            self.pod_logs.pop(key, None)
        self._emit(table, Event(self._rv, "DELETED", final, obj))
        # As an owner: collect the dependents (upstream does it asynchronously, this does it at once).
        for dep_table_key, dep_key in sorted(self._dependents.pop(uid, set())):
            dep_table = self._tables.get(dep_table_key)
            if dep_table is None or dep_key not in dep_table.objects:
                continue
            if policy == "Orphan":
                self._strip_owner(dep_table, dep_key, uid)
            else:
                self._delete(dep_table, dep_key, "Background", None)
        # As a dependent: release owners waiting in foreground deletion.
        for ref in meta.get("ownerReferences") or []:
            self._maybe_finish_foreground(ref.get("uid"))
        if table.rt.key == ("apiextensions.k8s.io", "customresourcedefinitions"):
            self._drop_crd(obj)
        if key[0] in self._terminating and self._ns_counts[key[0]] <= 0:
            self._finish_namespace(key[0])
        return final

    def _strip_owner(self, table: Table, key: Key, owner_uid: str) -> None:
        old = table.objects[key]
        new = copy.deepcopy(old)
        refs = [r for r in new["metadata"].get("ownerReferences") or [] if r.get("uid") != owner_uid]
        if refs:
            new["metadata"]["ownerReferences"] = refs
        else:
            new["metadata"].pop("ownerReferences", None)
        self._put(table, key, new, old)

    def _maybe_finish_foreground(self, owner_uid: str | None) -> None:
        if not owner_uid or owner_uid not in self._uids or self._dependents.get(owner_uid):
            return
        table, key = self._uids[owner_uid]
        owner = table.objects[key]
        finalizers = owner["metadata"].get("finalizers") or []
        if "foregroundDeletion" in finalizers:
            self._set_finalizers(table, key, [f for f in finalizers if f != "foregroundDeletion"])

    def _set_finalizers(self, table: Table, key: Key, finalizers: list[str]) -> None:
        old = table.objects[key]
        new = copy.deepcopy(old)
        new["metadata"]["finalizers"] = finalizers
        if not finalizers:
            new["metadata"].pop("finalizers")
        self._put(table, key, new, old)
        if not finalizers and new["metadata"].get("deletionTimestamp"):
            self._remove(table, key)

    def _drop_crd(self, crd: Obj) -> None:
        spec = crd.get("spec") or {}
        key = (spec.get("group", ""), (spec.get("names") or {}).get("plural", ""))
        table = self._tables.get(key)
        if table is None:
            return
        for obj_key in list(table.sorted_keys()):
            self._remove(table, obj_key)
        self._unregister(key)

    def _finish_namespace(self, ns: str) -> None:
        self._terminating.discard(ns)
        table = self._tables[("", "namespaces")]
        self._remove(table, ("", ns))

    def _delete(self, table: Table, key: Key, policy: str, grace: int | None) -> tuple[Obj, bool]:
        """Delete (or mark for deletion) one object. Returns (object, removed now?)."""
        rt = table.rt
        obj = table.objects[key]
        meta = obj["metadata"]
        uid = meta["uid"]
        if meta.get("deletionTimestamp"):
            if grace == 0 and rt.key == ("", "pods"):  # a forced delete of a terminating pod
                return self._remove(table, key, policy) or obj, True
            return obj, False
        if policy == "Orphan":
            for dep_table_key, dep_key in sorted(self._dependents.pop(uid, set())):
                dep_table = self._tables.get(dep_table_key)
                if dep_table is not None and dep_key in dep_table.objects:
                    self._strip_owner(dep_table, dep_key, uid)
        finalizers = list(meta.get("finalizers") or [])
        if policy == "Foreground" and self._dependents.get(uid):
            finalizers.append("foregroundDeletion")
        defer_seconds = 0
        if rt.key == ("", "pods"):
            terminal = (obj.get("status") or {}).get("phase") in ("Succeeded", "Failed")
            scheduled = bool((obj.get("spec") or {}).get("nodeName"))
            if scheduled and not terminal:
                spec_grace = (obj.get("spec") or {}).get("terminationGracePeriodSeconds", 30)
                wanted = grace if grace is not None else spec_grace
                if wanted and self.graceful_delete is not None and self.graceful_delete(rt, obj):
                    defer_seconds = int(wanted)
        is_namespace = rt.key == ("", "namespaces")
        if not (finalizers or defer_seconds or is_namespace):
            return self._remove(table, key, policy) or obj, True
        new = copy.deepcopy(obj)
        new["metadata"]["deletionTimestamp"] = now_iso()
        new["metadata"]["deletionGracePeriodSeconds"] = defer_seconds
        if finalizers:
            new["metadata"]["finalizers"] = finalizers
        if is_namespace:
            new.setdefault("status", {})["phase"] = "Terminating"
        self._put(table, key, new, obj)
        if "foregroundDeletion" in finalizers:
            for dep_table_key, dep_key in sorted(self._dependents.get(uid, set())):
                dep_table = self._tables.get(dep_table_key)
                if dep_table is not None and dep_key in dep_table.objects:
                    self._delete(dep_table, dep_key, "Background", None)
            self._maybe_finish_foreground(uid)
        if is_namespace:
            ns = key[1]
            self._terminating.add(ns)
            for other in list(self._tables.values()):
                if other.rt.namespaced:
                    for obj_key in self._ns_keys(other, ns):
                        if obj_key in other.objects:
                            self._delete(other, obj_key, "Background", None)
            if self._ns_counts[ns] <= 0 and ("", ns) in table.objects:
                self._finish_namespace(ns)
        current = table.objects.get(key)
        return (current if current is not None else new), current is None

    @staticmethod
    def _ns_keys(table: Table, ns: str | None) -> list[Key]:
        keys = table.sorted_keys()
        if ns is None:
            return list(keys)
        lo = bisect.bisect_left(keys, (ns, ""))
        hi = bisect.bisect_left(keys, (ns + "\x00", ""))
        return keys[lo:hi]

    # ------------------------------------------------------------------------------------------ public API

    def _namespace_of(self, rt: ResourceType, namespace: str | None, body: Obj) -> str:
        meta = body["metadata"]
        if not rt.namespaced:
            meta.pop("namespace", None)
            return ""
        given = meta.get("namespace")
        if namespace and given and given != namespace:
            raise bad_request("the namespace of the provided object does not match the namespace sent on the "
                              "request")
        ns = namespace or given
        if not ns:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        meta["namespace"] = ns
        return str(ns)

    def create(self, rt: ResourceType, namespace: str | None, body: Any, *, dry_run: bool = False) -> Obj:
        if not isinstance(body, dict):
            raise bad_request("the body of the request was in an unknown format")
        obj = copy.deepcopy(body)
        if not isinstance(obj.get("metadata"), dict):
            obj["metadata"] = {}
        meta = obj["metadata"]
        with self.lock:
            table = self._table(rt)
            ns = self._namespace_of(rt, namespace, obj)
            if ns:
                if ("", ns) not in self._tables[("", "namespaces")].objects:
                    raise not_found(self.rt("namespaces"), ns)
                if ns in self._terminating:
                    raise ApiError(403, "Forbidden", f'{rt.qualified} "{meta.get("name", "")}" is forbidden: unable '
                                   f"to create new content in namespace {ns} because it is being terminated",
                                   _details(rt, meta.get("name")))
            if not meta.get("name") and meta.get("generateName"):
                suffix = "".join(random.choice(_NAME_CHARS) for _ in range(5))  # noqa: S311
                meta["name"] = f"{meta['generateName']}{suffix}"
            name = str(meta.get("name") or "")
            if obj.get("kind") not in (None, rt.kind):
                raise bad_request(f"the kind of the provided object ({obj['kind']}) does not match {rt.kind}")
            obj["apiVersion"], obj["kind"] = rt.api_version, rt.kind
            if (ns, name) in table.objects:
                raise ApiError(409, "AlreadyExists", f'{rt.qualified} "{name}" already exists', _details(rt, name))
            for key in ("deletionTimestamp", "deletionGracePeriodSeconds", "managedFields", "selfLink",
                        "resourceVersion"):
                meta.pop(key, None)
            meta.update(uid=str(uuid.uuid4()), creationTimestamp=now_iso(), generation=1)
            if rt.key == ("", "pods"):
                meta.pop("generation")
            if rt.has_status:
                obj.setdefault("status", {})
            try:
                apply_defaults(rt, obj, self.defaults)  # upstream defaults on decode, before validation
                validate(rt, obj)
                self._validate_owner_refs(obj)
            except InvalidError as exc:
                raise invalid(rt, name, exc.causes) from exc
            if rt.key == ("apiextensions.k8s.io", "customresourcedefinitions"):
                new_types = types_from_crd(obj)
                if not new_types:
                    raise invalid(rt, name, [("spec.versions", "Required value: one version must be served")])
            if dry_run:
                return copy.deepcopy(obj)
            self._put(table, (ns, name), obj, None)
            if rt.key == ("apiextensions.k8s.io", "customresourcedefinitions"):
                for new_rt in types_from_crd(obj):
                    self._register(new_rt)
            return obj

    @staticmethod
    def _validate_owner_refs(obj: Obj) -> None:
        causes = []
        for i, ref in enumerate(obj["metadata"].get("ownerReferences") or []):
            for key in ("apiVersion", "kind", "name", "uid"):
                if not ref.get(key):
                    causes.append((f"metadata.ownerReferences[{i}].{key}", "Required value"))
        if causes:
            raise InvalidError(causes)

    def _require(self, rt: ResourceType, namespace: str | None, name: str) -> tuple[Table, Key, Obj]:
        table = self._table(rt)
        key = (namespace or "" if rt.namespaced else "", name)
        obj = table.objects.get(key)
        if obj is None:
            raise not_found(rt, name)
        return table, key, obj

    def get(self, rt: ResourceType, namespace: str | None, name: str) -> Obj:
        """The stored object itself (do not mutate it); see ``get_copy``."""
        with self.lock:
            return self._require(rt, namespace, name)[2]

    def list(self, rt: ResourceType, namespace: str | None = None, labels: LabelSelector | None = None,
             fields: FieldSelector | None = None, limit: int | None = None,
             continue_token: str | None = None) -> tuple[ObjList, str, str | None, int | None]:
        """(items, resourceVersion, continue token, remainingItemCount) — items are the stored dicts."""
        labels = labels or LabelSelector()
        fields = fields or FieldSelector()
        with self.lock:
            table = self._table(rt)
            node = fields.exact("spec.nodeName") if table.by_node is not None else None
            if node is not None and table.by_node is not None:
                ns = namespace if rt.namespaced else None
                keys = sorted(k for k in table.by_node.get(node, ()) if ns is None or k[0] == ns)
            else:
                keys = self._ns_keys(table, namespace if rt.namespaced else None)
            rv = str(self._rv)
            start = 0
            if continue_token:
                try:
                    token = json.loads(base64.urlsafe_b64decode(continue_token.encode()))
                    after = (token["start"][0], token["start"][1])
                    rv = str(token["rv"])
                except (ValueError, KeyError, TypeError, IndexError) as exc:
                    raise bad_request("continue key is not valid: incorrect encoded start resourceVersion "
                                      "(version meta.k8s.io/v1)") from exc
                start = bisect.bisect_right(keys, after)
            items: list[Obj] = []
            objects = table.objects
            index = start
            filtered = bool(labels or fields)
            while index < len(keys) and (limit is None or len(items) < limit):
                obj = objects[keys[index]]
                index += 1
                if not filtered or (labels.matches(obj["metadata"].get("labels")) and fields.matches(obj)):
                    items.append(obj)
            token_out: str | None = None
            remaining: int | None = None
            if limit is not None and index < len(keys):
                last = keys[index - 1]
                token_out = base64.urlsafe_b64encode(json.dumps({"rv": int(rv), "start": list(last)}).encode()).decode()
                if not filtered:
                    remaining = len(keys) - index
            return items, rv, token_out, remaining

    def _finish_update(self, rt: ResourceType, table: Table, key: Key, old: Obj, new: Obj,
                       subresource: str | None) -> Obj:
        name = key[1]
        if subresource == "status":
            merged = copy.deepcopy(old)
            merged["status"] = new.get("status") or {}
            # Status writes may also carry labels/annotations changes in upstream; not emulated.
            new = merged
        else:
            meta, old_meta = new["metadata"], old["metadata"]
            for field_name in ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds",
                               "namespace", "generation"):
                if field_name in old_meta:
                    meta[field_name] = old_meta[field_name]
                else:
                    meta.pop(field_name, None)
            meta.pop("resourceVersion", None)
            new["apiVersion"], new["kind"] = rt.api_version, rt.kind
            if rt.has_status:
                if "status" in old:
                    new["status"] = copy.deepcopy(old["status"])
                else:
                    new.pop("status", None)
            apply_defaults(rt, new, self.defaults)  # upstream defaults on decode, before validation
            causes: list[tuple[str, str]] = []
            checks: tuple[Callable[[], None], ...] = (
                lambda: validate(rt, new), lambda: self._validate_owner_refs(new),
                lambda: validate_update(rt, old, new))
            for check in checks:
                try:
                    check()
                except InvalidError as exc:
                    causes += exc.causes
            if causes:
                raise invalid(rt, name, causes)
            if meta.get("deletionTimestamp") and len(meta.get("finalizers") or []) > len(
                    old_meta.get("finalizers") or []):
                raise invalid(rt, name, [("metadata.finalizers", "Forbidden: no new finalizers can be added if the "
                                                                 "object is being deleted")])
            skip = ("metadata", "status", "apiVersion", "kind")
            if "generation" in old_meta and {k: v for k, v in old.items() if k not in skip} != \
                    {k: v for k, v in new.items() if k not in skip}:
                meta["generation"] = int(old_meta["generation"]) + 1
        old_cmp = dict(old, metadata={k: v for k, v in old["metadata"].items() if k != "resourceVersion"})
        new_cmp = dict(new, metadata={k: v for k, v in new["metadata"].items() if k != "resourceVersion"})
        if old_cmp == new_cmp:
            return old  # a no-op write does not bump the resourceVersion (as upstream)
        self._put(table, key, new, old)
        meta = new["metadata"]
        graceful_pod = rt.key == ("", "pods") and meta.get("deletionGracePeriodSeconds")
        if meta.get("deletionTimestamp") and not meta.get("finalizers") and not graceful_pod:
            self._remove(table, key)
        return new

    def replace(self, rt: ResourceType, namespace: str | None, name: str, body: Any, *,
                subresource: str | None = None, dry_run: bool = False) -> Obj:
        if not isinstance(body, dict) or not isinstance(body.get("metadata"), dict):
            raise bad_request("the body of the request was in an unknown format")
        with self.lock:
            table, key, old = self._require(rt, namespace, name)
            meta = body["metadata"]
            if meta.get("name") != name:
                raise bad_request(f"the name of the object ({meta.get('name')}) does not match the name on the URL "
                                  f"({name})")
            if rt.namespaced and meta.get("namespace") not in (None, key[0]):
                raise bad_request("the namespace of the provided object does not match the namespace sent on the "
                                  "request")
            if meta.get("resourceVersion") and meta["resourceVersion"] != old["metadata"]["resourceVersion"]:
                raise conflict(rt, name)
            if dry_run:
                return copy.deepcopy(old)
            return self._finish_update(rt, table, key, old, copy.deepcopy(body), subresource)

    def patch(self, rt: ResourceType, namespace: str | None, name: str, body: Any, content_type: str, *,
              subresource: str | None = None, dry_run: bool = False) -> Obj:
        with self.lock:
            table, key, old = self._require(rt, namespace, name)
            try:
                new = apply_patch(copy.deepcopy(old), body, content_type)
            except PatchError as exc:
                if "content type" in str(exc):
                    raise ApiError(415, "UnsupportedMediaType", str(exc)) from exc
                raise ApiError(422, "Invalid", f'{rt.kind} "{name}" is invalid: {exc}') from exc
            if not isinstance(new.get("metadata"), dict):
                raise bad_request("metadata must be an object")
            if new["metadata"].get("resourceVersion") != old["metadata"]["resourceVersion"]:
                raise conflict(rt, name)
            if new["metadata"].get("name") != name:
                raise bad_request("the name of the object does not match the name on the URL")
            if dry_run:
                return new
            return self._finish_update(rt, table, key, old, new, subresource)

    def delete(self, rt: ResourceType, namespace: str | None, name: str, *, propagation: str | None = None,
               grace: int | None = None, preconditions: dict[str, Any] | None = None,
               dry_run: bool = False) -> tuple[Obj, bool]:
        """Returns (the object as last stored, whether it is gone now)."""
        if propagation not in (None, "Orphan", "Background", "Foreground"):
            raise bad_request(f"Unsupported value: {propagation!r}: supported values: \"Foreground\", "
                              "\"Background\", \"Orphan\"")
        with self.lock:
            table, key, obj = self._require(rt, namespace, name)
            pre = preconditions or {}
            if (pre.get("uid") and pre["uid"] != obj["metadata"]["uid"]) or \
                    (pre.get("resourceVersion") and pre["resourceVersion"] != obj["metadata"]["resourceVersion"]):
                raise conflict(rt, name)
            if dry_run:
                return obj, False
            return self._delete(table, key, propagation or _default_propagation(rt), grace)

    def delete_collection(self, rt: ResourceType, namespace: str | None, labels: LabelSelector | None = None,
                          fields: FieldSelector | None = None, *, propagation: str | None = None,
                          grace: int | None = None) -> ObjList:
        with self.lock:
            items, *_ = self.list(rt, namespace, labels, fields)
            table = self._table(rt)
            result = []
            for obj in items:
                key = (obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
                if key in table.objects:
                    result.append(self._delete(table, key, propagation or _default_propagation(rt), grace)[0])
            return result

    def remove_now(self, rt: ResourceType, namespace: str | None, name: str) -> bool:
        """Remove an object at once (the kubelet confirming a graceful pod deletion)."""
        with self.lock:
            table = self._table(rt)
            return self._remove(table, (namespace or "" if rt.namespaced else "", name)) is not None

    def mutate(self, rt: ResourceType, namespace: str | None, name: str, fn: Callable[[Obj], None], *,
               subresource: str | None = None) -> Obj:
        """Read-modify-write under the lock (for controllers and tests): ``fn`` edits a copy in place."""
        with self.lock:
            table, key, old = self._require(rt, namespace, name)
            new = copy.deepcopy(old)
            fn(new)
            return self._finish_update(rt, table, key, old, new, subresource)

    def watch(self, rt: ResourceType, namespace: str | None, labels: LabelSelector, fields: FieldSelector,
              resource_version: str | None, push: Callable[[tuple[str, Obj] | None], None]
              ) -> tuple[Watcher, EventList]:
        """Register a watcher; returns it and the initial events (raises 410 if the rv is compacted)."""
        with self.lock:
            table = self._table(rt)
            watcher = Watcher(rt, namespace if rt.namespaced else None, labels, fields, push)
            initial: EventList = []
            if resource_version in (None, "", "0"):
                for key in self._ns_keys(table, watcher.namespace):
                    obj = table.objects[key]
                    if watcher.matches(obj):
                        initial.append(("ADDED", obj))
            else:
                try:
                    since = int(str(resource_version))
                except ValueError as exc:
                    raise bad_request(f'invalid resource version "{resource_version}"') from exc
                if since < table.compacted_rv:
                    raise gone(f"too old resource version: {since} ({table.compacted_rv + 1})")
                tail: list[Event] = []
                for ev in reversed(table.history):
                    if ev.rv <= since:
                        break
                    tail.append(ev)
                for ev in reversed(tail):
                    kind = watcher.classify(ev)
                    if kind is not None:
                        initial.append((kind, ev.obj))
            table.watchers.append(watcher)
            return watcher, initial

    def unwatch(self, watcher: Watcher) -> None:
        with self.lock:
            table = self._tables.get(watcher.rt.key)
            if table is not None and watcher in table.watchers:
                table.watchers.remove(watcher)

    def close_watches(self) -> None:
        with self.lock:
            for table in self._tables.values():
                for watcher in table.watchers:
                    watcher.push(None)
                table.watchers.clear()

    def compact(self) -> int:
        """Forget all event history (as etcd compaction does): older watch resourceVersions now get 410."""
        with self.lock:
            for table in self._tables.values():
                table.history.clear()
                table.compacted_rv = self._rv
            return self._rv

    def open_watch_count(self) -> int:
        with self.lock:
            return sum(len(t.watchers) for t in self._tables.values())

    def dependents(self, owner_uid: str) -> ObjList:
        """The stored objects whose ownerReferences name this uid (read-only dicts)."""
        with self.lock:
            result = []
            for table_key, key in self._dependents.get(owner_uid, ()):
                table = self._tables.get(table_key)
                obj = table.objects.get(key) if table is not None else None
                if obj is not None:
                    result.append(obj)
            return result

    def pods_on_node(self, node: str) -> ObjList:
        """The stored pods bound to a node (read-only dicts), via the spec.nodeName index."""
        with self.lock:
            table = self._tables[("", "pods")]
            assert table.by_node is not None
            return [table.objects[key] for key in sorted(table.by_node.get(node, ()))]

    def find(self, rt: ResourceType, namespace: str | None, name: str) -> Obj | None:
        """The stored object (read-only) or None."""
        with self.lock:
            table = self._tables.get(rt.key)
            if table is None:
                return None
            return table.objects.get((namespace or "" if rt.namespaced else "", name))

    # ------------------------------------------------------------------------------------------ conveniences

    def get_copy(self, plural: str, namespace: str | None, name: str, group: str | None = None) -> Obj | None:
        with self.lock:
            try:
                return copy.deepcopy(self.get(self.rt(plural, group), namespace, name))
            except ApiError:
                return None

    def objects(self, plural: str, namespace: str | None = None, group: str | None = None,
                label_selector: str | None = None, field_selector: str | None = None) -> ObjList:
        """Deep copies of the matching objects, sorted by namespace/name."""
        rt = self.rt(plural, group)
        try:
            fields = FieldSelector.parse(field_selector, rt.fields)
        except SelectorError as exc:
            raise ValueError(str(exc)) from exc
        with self.lock:
            items = self.list(rt, namespace, LabelSelector.parse(label_selector), fields)[0]
            return copy.deepcopy(items)

    def count(self, plural: str, group: str | None = None) -> int:
        with self.lock:
            return len(self._table(self.rt(plural, group)).objects)

    def apply_many(self, plural: str, bodies: Iterable[Obj], namespace: str | None = None,
                   group: str | None = None) -> ObjList:
        rt = self.rt(plural, group)
        return [self.create(rt, namespace, body) for body in bodies]
