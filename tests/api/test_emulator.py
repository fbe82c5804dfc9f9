"""The API emulator itself, exercised with the real ``kubernetes`` 37 client over HTTP."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import kubernetes.client
import pytest
from emulator import EmulatedApiServer, RbacPolicy
from emulator.objects import NAD_CRD, AddNodes, make_daemonset, make_nad, wait_until
from kubernetes import watch
from kubernetes.client import ApiException


def _pod(name: str, node: str | None = None, labels: dict[str, str] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [{"name": "c", "image": "busybox:1.36"}], "restartPolicy": "Never"}
    if node:
        spec["nodeName"] = node
    return {"metadata": {"name": name, "labels": labels or {}}, "spec": spec}


def _cm(name: str, labels: dict[str, str] | None = None, data: dict[str, str] | None = None) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": labels or {}}, "data": data or {}}


def _status(exc: ApiException) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(exc.body)
    return body


def _collect(stream: Any, sink: list[tuple[str, str]]) -> threading.Thread:
    def run() -> None:
        for event in stream:
            obj = event["object"]
            name = obj["metadata"]["name"] if isinstance(obj, dict) else obj.metadata.name
            sink.append((event["type"], name))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


# ---------------------------------------------------------------------------------------------- CRUD + metadata

def test_crud_and_server_side_metadata(core_v1: kubernetes.client.CoreV1Api) -> None:
    created = core_v1.create_namespaced_config_map("default", _cm("one", data={"a": "1"}))
    meta = created.metadata
    assert meta.uid and meta.creation_timestamp is not None and meta.generation == 1
    assert meta.namespace == "default" and int(meta.resource_version) > 0

    read = core_v1.read_namespaced_config_map("one", "default")
    assert read.data == {"a": "1"} and read.metadata.resource_version == meta.resource_version

    read.data = {"a": "2"}
    replaced = core_v1.replace_namespaced_config_map("one", "default", read)
    assert int(replaced.metadata.resource_version) > int(meta.resource_version)
    assert replaced.metadata.uid == meta.uid and replaced.data == {"a": "2"}

    # A stale resourceVersion is a 409 Conflict, as upstream's optimistic concurrency.
    read.data = {"a": "3"}
    with pytest.raises(ApiException) as conflict:
        core_v1.replace_namespaced_config_map("one", "default", read)
    assert conflict.value.status == 409 and _status(conflict.value)["reason"] == "Conflict"

    patched = core_v1.patch_namespaced_config_map("one", "default", {"data": {"b": "x"}})
    assert patched.data == {"a": "2", "b": "x"}

    with pytest.raises(ApiException) as exists:
        core_v1.create_namespaced_config_map("default", _cm("one"))
    assert exists.value.status == 409 and _status(exists.value)["reason"] == "AlreadyExists"

    status = core_v1.delete_namespaced_config_map("one", "default")
    assert status["status"] == "Success" and status["details"]["name"] == "one"
    with pytest.raises(ApiException) as missing:
        core_v1.read_namespaced_config_map("one", "default")
    assert missing.value.status == 404
    assert _status(missing.value)["message"] == 'configmaps "one" not found'


def test_namespaces_create_and_delete_with_contents(core_v1: kubernetes.client.CoreV1Api) -> None:
    ns = core_v1.create_namespace({"metadata": {"name": "team"}})
    assert ns.status.phase == "Active" and ns.metadata.labels["kubernetes.io/metadata.name"] == "team"
    core_v1.create_namespaced_config_map("team", _cm("cfg"))

    with pytest.raises(ApiException) as no_ns:
        core_v1.create_namespaced_config_map("nowhere", _cm("cfg"))
    assert no_ns.value.status == 404 and _status(no_ns.value)["message"] == 'namespaces "nowhere" not found'

    core_v1.delete_namespace("team")
    assert core_v1.list_namespaced_config_map("team").items == []
    assert "team" not in [n.metadata.name for n in core_v1.list_namespace().items]


def test_generation_and_no_op_writes(api_client: kubernetes.client.ApiClient) -> None:
    apps = kubernetes.client.AppsV1Api(api_client)
    ds = apps.create_namespaced_daemon_set("default", make_daemonset("multus", "default"))
    assert ds.metadata.generation == 1 and ds.status.desired_number_scheduled == 0
    same = apps.patch_namespaced_daemon_set("multus", "default", {"metadata": {"labels": {}}})
    assert same.metadata.resource_version == ds.metadata.resource_version  # nothing changed: no new version
    labelled = apps.patch_namespaced_daemon_set("multus", "default", {"metadata": {"labels": {"x": "y"}}})
    assert labelled.metadata.generation == 1  # metadata changes do not bump the generation
    changed = apps.patch_namespaced_daemon_set(
        "multus", "default", {"spec": {"template": {"spec": {"nodeSelector": {"multus-cleanup": "gone"}}}}})
    assert changed.metadata.generation == 2
    assert changed.spec.template.spec.node_selector == {"multus-cleanup": "gone"}
    assert changed.spec.template.spec.containers[0].name == "kube-multus"  # strategic merge kept the list


def test_validation_is_422(core_v1: kubernetes.client.CoreV1Api) -> None:
    with pytest.raises(ApiException) as bad_name:
        core_v1.create_namespaced_config_map("default", _cm("Not_A_Name"))
    assert bad_name.value.status == 422 and _status(bad_name.value)["reason"] == "Invalid"
    with pytest.raises(ApiException) as no_containers:
        core_v1.create_namespaced_pod("default", {"metadata": {"name": "p"}, "spec": {"containers": []}})
    assert "spec.containers: Required value" in _status(no_containers.value)["message"]
    with pytest.raises(ApiException) as bad_label:
        core_v1.create_namespaced_config_map("default", _cm("ok", labels={"a": "x" * 64}))
    assert bad_label.value.status == 422


def test_complete_objects_deserialise(core_v1: kubernetes.client.CoreV1Api, nodes: AddNodes,
                                      api_client: kubernetes.client.ApiClient) -> None:
    nodes(3, control_planes=1, cordoned=1)
    listed = core_v1.list_node()
    assert [n.metadata.name for n in listed.items] == ["node-000", "node-001", "node-002"]
    control = listed.items[0]
    assert control.status.node_info.operating_system == "linux" and control.status.node_info.kubelet_version
    assert {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"} in [
        {"key": t.key, "effect": t.effect} for t in control.spec.taints]
    cordoned = listed.items[2]
    assert cordoned.spec.unschedulable is True
    assert "node.kubernetes.io/unschedulable" in [t.key for t in cordoned.spec.taints]
    assert [c.type for c in control.status.conditions][-1] == "Ready"

    pod = core_v1.create_namespaced_pod("default", _pod("p", "node-001"))
    assert pod.status.phase == "Pending" and pod.spec.containers[0].termination_message_policy == "File"
    batch = kubernetes.client.BatchV1Api(api_client)
    job = batch.create_namespaced_job("default", {
        "metadata": {"name": "hook"},
        "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "i"}]}}}})
    assert job.spec.selector.match_labels == {"batch.kubernetes.io/controller-uid": job.metadata.uid}
    assert job.spec.template.metadata.labels["job-name"] == "hook"
    assert batch.read_namespaced_job_status("hook", "default").status is not None


# ---------------------------------------------------------------------------------------------- selectors + paging

def test_label_and_field_selectors(core_v1: kubernetes.client.CoreV1Api, api_server: EmulatedApiServer,
                                   nodes: AddNodes) -> None:
    nodes(2)
    core_v1.create_namespaced_pod("default", _pod("a", "node-000", {"app": "x", "tier": "one"}))
    core_v1.create_namespaced_pod("default", _pod("b", "node-001", {"app": "x", "tier": "two"}))
    core_v1.create_namespaced_pod("default", _pod("c", "node-001", {"app": "y"}))

    def names(**kwargs: Any) -> list[str]:
        return [p.metadata.name for p in core_v1.list_namespaced_pod("default", **kwargs).items]

    assert names(label_selector="app=x") == ["a", "b"]
    assert names(label_selector="app=x,tier!=one") == ["b"]
    assert names(label_selector="tier in (one,three)") == ["a"]
    assert names(label_selector="!tier") == ["c"]
    assert names(label_selector="app notin (x)") == ["c"]
    assert names(field_selector="spec.nodeName=node-001") == ["b", "c"]
    assert names(field_selector="metadata.name=b") == ["b"]
    assert names(field_selector="status.phase=Pending,spec.nodeName!=node-001") == ["a"]
    assert [n.metadata.name for n in core_v1.list_node(label_selector="kubernetes.io/os=linux").items] == [
        "node-000", "node-001"]
    assert names(field_selector="status.phase=Running") == []
    with pytest.raises(ApiException) as unsupported:
        names(field_selector="spec.bogus=1")
    assert unsupported.value.status == 400
    assert "field label not supported" in _status(unsupported.value)["message"]


def test_pagination(core_v1: kubernetes.client.CoreV1Api) -> None:
    for i in range(25):
        core_v1.create_namespaced_config_map("default", _cm(f"cm-{i:02d}"))
    seen: list[str] = []
    token = None
    pages = 0
    while True:
        page = core_v1.list_namespaced_config_map("default", limit=10, _continue=token)
        pages += 1
        seen += [c.metadata.name for c in page.items]
        token = page.metadata._continue
        if pages == 1:
            assert page.metadata.remaining_item_count == 15
        if not token:
            break
    assert pages == 3 and seen == [f"cm-{i:02d}" for i in range(25)]


# ---------------------------------------------------------------------------------------------- watch

def test_watch_delivers_live_namespaced_events_with_selector(core_v1: kubernetes.client.CoreV1Api) -> None:
    core_v1.create_namespaced_pod("default", _pod("pre", labels={"app": "x"}))
    events: list[tuple[str, str]] = []
    thread = _collect(watch.Watch().stream(core_v1.list_namespaced_pod, "default", label_selector="app=x",
                                           timeout_seconds=3), events)
    wait_until(lambda: events == [("ADDED", "pre")])
    core_v1.create_namespaced_pod("default", _pod("other", labels={"app": "y"}))  # filtered out
    core_v1.create_namespaced_pod("default", _pod("new", labels={"app": "x"}))
    core_v1.patch_namespaced_pod("new", "default", {"metadata": {"annotations": {"k": "v"}}})
    core_v1.patch_namespaced_pod("pre", "default", {"metadata": {"labels": {"app": "z"}}})  # leaves selector
    core_v1.delete_namespaced_pod("new", "default")
    wait_until(lambda: len(events) == 5)
    assert events == [("ADDED", "pre"), ("ADDED", "new"), ("MODIFIED", "new"), ("DELETED", "pre"),
                      ("DELETED", "new")]
    assert thread.is_alive()  # still open: the fixture's stop() closes it


def test_watch_honours_timeout_seconds(core_v1: kubernetes.client.CoreV1Api) -> None:
    started = time.monotonic()
    events = list(watch.Watch().stream(core_v1.list_namespace, timeout_seconds=1))
    elapsed = time.monotonic() - started
    assert 0.9 <= elapsed < 3.0
    assert sorted(e["object"].metadata.name for e in events) == [
        "default", "kube-node-lease", "kube-public", "kube-system"]


def test_watch_ends_with_a_bookmark_when_asked(core_v1: kubernetes.client.CoreV1Api,
                                               api_server: EmulatedApiServer) -> None:
    core_v1.create_namespaced_config_map("default", _cm("one"))
    events = list(watch.Watch().stream(core_v1.list_namespaced_config_map, "default", timeout_seconds=1,
                                       allow_watch_bookmarks=True, deserialize=False))
    assert [e["type"] for e in events] == ["ADDED", "BOOKMARK"]
    assert events[-1]["object"]["metadata"]["resourceVersion"] == str(api_server.store.resource_version)


def test_watch_from_resource_version_and_410_after_compaction(core_v1: kubernetes.client.CoreV1Api,
                                                              api_server: EmulatedApiServer) -> None:
    first = core_v1.create_namespaced_config_map("default", _cm("one"))
    core_v1.create_namespaced_config_map("default", _cm("two"))
    core_v1.delete_namespaced_config_map("one", "default")
    events = list(watch.Watch().stream(core_v1.list_namespaced_config_map, "default", timeout_seconds=1,
                                       resource_version=first.metadata.resource_version))
    assert [(e["type"], e["object"].metadata.name) for e in events] == [("ADDED", "two"), ("DELETED", "one")]

    api_server.store.compact()
    with pytest.raises(ApiException) as expired:
        list(watch.Watch().stream(core_v1.list_namespaced_config_map, "default", timeout_seconds=1,
                                  resource_version=first.metadata.resource_version))
    assert expired.value.status == 410 and "too old resource version" in str(expired.value.reason)


def test_stop_with_open_watch_is_quick() -> None:
    server = EmulatedApiServer().start()
    core = kubernetes.client.CoreV1Api(server.api_client())
    events: list[tuple[str, str]] = []
    thread = _collect(watch.Watch().stream(core.list_namespaced_pod, "default", timeout_seconds=300), events)
    wait_until(lambda: server.store.open_watch_count() == 1)
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 2.0
    thread.join(5)
    assert not thread.is_alive()


# ---------------------------------------------------------------------------------------------- GC, patches, status

def _job_with_pods(api_client: kubernetes.client.ApiClient, name: str) -> Any:
    batch = kubernetes.client.BatchV1Api(api_client)
    core = kubernetes.client.CoreV1Api(api_client)
    job = batch.create_namespaced_job("default", {
        "metadata": {"name": name},
        "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "i"}]}}}})
    owner = {"apiVersion": "batch/v1", "kind": "Job", "name": name, "uid": job.metadata.uid, "controller": True,
             "blockOwnerDeletion": True}
    for i in range(2):
        pod = _pod(f"{name}-{i}", labels={"job-name": name})
        pod["metadata"]["ownerReferences"] = [owner]
        core.create_namespaced_pod("default", pod)
    return job


def test_garbage_collection_by_propagation_policy(api_client: kubernetes.client.ApiClient) -> None:
    batch = kubernetes.client.BatchV1Api(api_client)
    core = kubernetes.client.CoreV1Api(api_client)

    def pods(name: str) -> list[Any]:
        return core.list_namespaced_pod("default", label_selector=f"job-name={name}").items

    _job_with_pods(api_client, "bg")
    batch.delete_namespaced_job("bg", "default", propagation_policy="Background")
    assert pods("bg") == []

    _job_with_pods(api_client, "fg")
    batch.delete_namespaced_job("fg", "default", propagation_policy="Foreground")
    assert pods("fg") == []
    with pytest.raises(ApiException):
        batch.read_namespaced_job("fg", "default")

    # Upstream's default for batch/v1 Jobs is to orphan their pods.
    _job_with_pods(api_client, "orphan")
    batch.delete_namespaced_job("orphan", "default")
    left = pods("orphan")
    assert len(left) == 2 and all(not p.metadata.owner_references for p in left)


def test_patch_flavours_and_status_subresource(api_client: kubernetes.client.ApiClient) -> None:
    apps = kubernetes.client.AppsV1Api(api_client)
    apps.create_namespaced_deployment("default", {
        "metadata": {"name": "web"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "c", "image": "i"}]}}}})
    scaled = apps.patch_namespaced_deployment("web", "default", {"spec": {"replicas": 3}})
    assert scaled.spec.replicas == 3
    patched = apps.patch_namespaced_deployment("web", "default", [
        {"op": "replace", "path": "/spec/replicas", "value": 0},
        {"op": "add", "path": "/metadata/labels", "value": {"paused": "yes"}}])
    assert patched.spec.replicas == 0 and patched.metadata.labels == {"paused": "yes"}
    merged = apps.patch_namespaced_deployment(
        "web", "default", {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "j"}]}}}},
        _content_type="application/merge-patch+json")
    assert merged.spec.template.spec.containers[0].image == "j"

    # Writes to the main resource keep the status; the status subresource changes only the status.
    with_status = apps.patch_namespaced_deployment("web", "default", {"status": {"replicas": 7}})
    assert (with_status.status.replicas or 0) == 0
    status_only = apps.patch_namespaced_deployment_status(
        "web", "default", {"status": {"replicas": 7}, "spec": {"replicas": 9}})
    assert status_only.status.replicas == 7 and status_only.spec.replicas == 0


def test_crd_serves_network_attachment_definitions(api_client: kubernetes.client.ApiClient) -> None:
    ext = kubernetes.client.ApiextensionsV1Api(api_client)
    custom = kubernetes.client.CustomObjectsApi(api_client)
    args = ("k8s.cni.cncf.io", "v1")
    with pytest.raises(ApiException) as before:
        custom.list_namespaced_custom_object(*args, "default", "network-attachment-definitions")
    assert before.value.status == 404

    crd = ext.create_custom_resource_definition(NAD_CRD)
    assert [c.type for c in crd.status.conditions] == ["NamesAccepted", "Established"]
    custom.create_namespaced_custom_object(*args, "default", "network-attachment-definitions",
                                           make_nad("macvlan-conf", "default"))
    items = custom.list_cluster_custom_object(*args, "network-attachment-definitions")["items"]
    assert [i["metadata"]["name"] for i in items] == ["macvlan-conf"]
    assert items[0]["metadata"]["uid"] and items[0]["kind"] == "NetworkAttachmentDefinition"
    groups = [g.name for g in kubernetes.client.ApisApi(api_client).get_api_versions().groups]
    assert "k8s.cni.cncf.io" in groups

    ext.delete_custom_resource_definition("network-attachment-definitions.k8s.cni.cncf.io")
    with pytest.raises(ApiException) as after:
        custom.list_namespaced_custom_object(*args, "default", "network-attachment-definitions")
    assert after.value.status == 404


# ---------------------------------------------------------------------------------------------- faults

def test_throttled_then_success(core_v1: kubernetes.client.CoreV1Api, api_server: EmulatedApiServer) -> None:
    rule = api_server.faults.throttle(verb="create", resource="pods", count=1)
    with pytest.raises(ApiException) as throttled:
        core_v1.create_namespaced_pod("default", _pod("p"))
    assert throttled.value.status == 429 and throttled.value.headers["Retry-After"] == "1"
    assert _status(throttled.value)["details"]["retryAfterSeconds"] == 1
    assert core_v1.create_namespaced_pod("default", _pod("p")).metadata.name == "p"
    assert rule.hits == 1
    assert [r.status for r in api_server.log.records(verb="create", resource="pods")] == [429, 201]


def test_forbidden_names_the_verb_and_resource_and_changes_nothing(core_v1: kubernetes.client.CoreV1Api,
                                                                   api_server: EmulatedApiServer) -> None:
    core_v1.create_namespaced_pod("default", _pod("keep"))
    api_server.faults.forbid(verb="delete", resource="pods", user="system:serviceaccount:ns:sa")
    api_server.faults.forbid(verb="create", resource="pods", user="system:serviceaccount:ns:sa")
    with pytest.raises(ApiException) as denied:
        core_v1.delete_namespaced_pod("keep", "default")
    assert denied.value.status == 403
    assert _status(denied.value)["message"] == (
        'pods "keep" is forbidden: User "system:serviceaccount:ns:sa" cannot delete resource "pods" in API group '
        '"" in the namespace "default"')
    with pytest.raises(ApiException) as denied_create:
        core_v1.create_namespaced_pod("default", _pod("new"))
    assert _status(denied_create.value)["message"] == (
        'pods is forbidden: User "system:serviceaccount:ns:sa" cannot create resource "pods" in API group "" in '
        'the namespace "default"')
    assert [p.metadata.name for p in core_v1.list_namespaced_pod("default").items] == ["keep"]


def test_server_errors_and_conflicts(core_v1: kubernetes.client.CoreV1Api, api_server: EmulatedApiServer) -> None:
    api_server.faults.fail(500, method="GET", path=r"/api/v1/nodes", count=1)
    api_server.faults.conflict(verb="patch", resource="configmaps", count=1)
    with pytest.raises(ApiException) as err:
        core_v1.list_node()
    assert err.value.status == 500
    assert core_v1.list_node().items == []
    core_v1.create_namespaced_config_map("default", _cm("c"))
    with pytest.raises(ApiException) as conflict:
        core_v1.patch_namespaced_config_map("c", "default", {"data": {"a": "b"}})
    assert conflict.value.status == 409
    assert core_v1.read_namespaced_config_map("c", "default").data in ({}, None)


def test_slow_answers_and_cut_connections(api_server: EmulatedApiServer) -> None:
    configuration = api_server.configuration()
    configuration.retries = False  # urllib3 would otherwise retry both on its own
    core_v1 = kubernetes.client.CoreV1Api(kubernetes.client.ApiClient(configuration))
    api_server.faults.slow(1.0, verb="list", resource="nodes")
    with pytest.raises(Exception):  # noqa: B017 - urllib3's ReadTimeoutError
        core_v1.list_node(_request_timeout=0.3)
    started = time.monotonic()
    assert core_v1.list_node(_request_timeout=5).items == []
    assert time.monotonic() - started < 0.5
    api_server.faults.reset_connection(verb="create", resource="configmaps")
    with pytest.raises(Exception):  # noqa: B017 - urllib3's ProtocolError / MaxRetryError
        core_v1.create_namespaced_config_map("default", _cm("cut"))
    assert core_v1.list_namespaced_config_map("default").items == []  # nothing was created
    assert [r.status for r in api_server.log.records(resource="configmaps")] == [-1, 200]


def test_watch_dropped_after_events(core_v1: kubernetes.client.CoreV1Api, api_server: EmulatedApiServer) -> None:
    for name in ("a", "b", "c"):
        core_v1.create_namespaced_config_map("default", _cm(name))
    api_server.faults.drop_watch(after_events=2, resource="configmaps")
    events = list(watch.Watch().stream(core_v1.list_namespaced_config_map, "default", timeout_seconds=5))
    assert [e["object"].metadata.name for e in events] == ["a", "b"]

    api_server.faults.expire_watch(after_events=1, resource="configmaps")
    with pytest.raises(ApiException) as expired:
        list(watch.Watch().stream(core_v1.list_namespaced_config_map, "default", timeout_seconds=5))
    assert expired.value.status == 410

    api_server.faults.drop_watch(after_events=1, reset=True, resource="configmaps")
    with pytest.raises(Exception):  # noqa: B017 - urllib3's ProtocolError, whatever wraps it
        list(watch.Watch().stream(core_v1.list_namespaced_config_map, "default", timeout_seconds=5))


# ---------------------------------------------------------------------------------------------- request log + RBAC

def test_request_log_in_rbac_terms(api_client: kubernetes.client.ApiClient, api_server: EmulatedApiServer) -> None:
    core = kubernetes.client.CoreV1Api(api_client)
    core.create_namespaced_config_map("default", _cm("c"))
    core.read_namespaced_config_map("c", "default")
    core.list_namespaced_config_map("default")
    list(watch.Watch().stream(core.list_namespaced_config_map, "default", timeout_seconds=1))
    core.patch_namespaced_config_map("c", "default", {"data": {"a": "b"}})
    core.replace_namespaced_config_map("c", "default", _cm("c"))
    core.delete_namespaced_config_map("c", "default")
    core.delete_collection_namespaced_config_map("default")
    core.create_namespaced_pod("default", _pod("p", "n"))
    core.patch_namespaced_pod_status("p", "default", {"status": {"phase": "Running"}})
    core.read_namespaced_pod_log("p", "default")
    assert api_server.log.by_verb() == {"create": 2, "get": 2, "list": 1, "watch": 1, "patch": 2, "update": 1,
                                        "delete": 1, "deletecollection": 1}
    core.list_namespaced_config_map("default", field_selector="metadata.name=c")
    named = api_server.log.records()[-1]
    assert (named.verb, named.name) == ("list", "c")  # upstream authorizes it as a list of that name
    log_read = api_server.log.records(subresource="log")[0]
    assert (log_read.verb, log_read.api_group, log_read.full_resource, log_read.namespace, log_read.name) == (
        "get", "", "pods/log", "default", "p")

    role_rules = [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["*"]},
                  {"apiGroups": [""], "resources": ["pods", "pods/log"], "verbs": ["create", "get"]}]
    policy = RbacPolicy.from_manifests([
        {"kind": "Role", "metadata": {"name": "r", "namespace": "default"}, "rules": role_rules},
        {"kind": "RoleBinding", "metadata": {"name": "b", "namespace": "default"},
         "roleRef": {"kind": "Role", "name": "r"},
         "subjects": [{"kind": "ServiceAccount", "name": "sa", "namespace": "default"}]},
    ], service_account="sa", namespace="default")
    denied = policy.violations(api_server.log.records())
    assert [d.describe() for d in denied] == ["patch pods/status.core p in default"]


def test_a_50_node_cluster_is_fast(core_v1: kubernetes.client.CoreV1Api, nodes: AddNodes,
                                   api_server: EmulatedApiServer) -> None:
    started = time.monotonic()
    nodes(50, control_planes=3)
    for i in range(50):
        core_v1.create_namespaced_pod("default", _pod(f"p-{i}", f"node-{i:03d}", {"app": "cleanup"}))
    for i in range(50):
        selected = core_v1.list_namespaced_pod("default", label_selector="app=cleanup",
                                               field_selector=f"spec.nodeName=node-{i:03d}")
        assert [p.metadata.name for p in selected.items] == [f"p-{i}"]
    assert len(core_v1.list_node().items) == 50
    assert time.monotonic() - started < 5.0


# ---------------------------------------------------------------------------------------------- smaller semantics

def test_finalizers_generate_name_dry_run_and_delete_collection(core_v1: kubernetes.client.CoreV1Api) -> None:
    held = _cm("held")
    held["metadata"]["finalizers"] = ["example.com/hold"]
    core_v1.create_namespaced_config_map("default", held)
    core_v1.delete_namespaced_config_map("held", "default")
    pending = core_v1.read_namespaced_config_map("held", "default")
    assert pending.metadata.deletion_timestamp is not None
    core_v1.patch_namespaced_config_map("held", "default", {"metadata": {"finalizers": None}})
    assert [c.metadata.name for c in core_v1.list_namespaced_config_map("default").items] == []

    generated = core_v1.create_namespaced_config_map("default", {"metadata": {"generateName": "gen-"}})
    assert generated.metadata.name.startswith("gen-") and len(generated.metadata.name) == 9
    core_v1.create_namespaced_config_map("default", _cm("dry"), dry_run="All")
    assert [c.metadata.name for c in core_v1.list_namespaced_config_map("default").items] == [
        generated.metadata.name]

    for name in ("x1", "x2"):
        core_v1.create_namespaced_config_map("default", _cm(name, labels={"batch": "x"}))
    core_v1.delete_collection_namespaced_config_map("default", label_selector="batch=x")
    assert [c.metadata.name for c in core_v1.list_namespaced_config_map("default").items] == [
        generated.metadata.name]


def test_strategic_merge_lists_and_failed_json_patch(api_client: kubernetes.client.ApiClient) -> None:
    apps = kubernetes.client.AppsV1Api(api_client)
    ds = make_daemonset("multus", "kube-system")
    ds["spec"]["template"]["spec"]["containers"].append({"name": "sidecar", "image": "s:1"})
    apps.create_namespaced_daemon_set("kube-system", ds)
    patched = apps.patch_namespaced_daemon_set("multus", "kube-system", {"spec": {"template": {"spec": {
        "containers": [{"name": "sidecar", "image": "s:2"}]}}}})
    assert [(c.name, c.image) for c in patched.spec.template.spec.containers] == [
        ("kube-multus", "ghcr.io/k8snetworkplumbingwg/multus-cni:v4.2.2-thick"), ("sidecar", "s:2")]
    with pytest.raises(ApiException) as failed:
        apps.patch_namespaced_daemon_set("multus", "kube-system", [
            {"op": "test", "path": "/spec/template/spec/hostNetwork", "value": False}])
    assert failed.value.status == 422
    with pytest.raises(ApiException) as immutable:
        apps.patch_namespaced_daemon_set("multus", "kube-system", {"spec": {"selector": {"matchLabels": {"a": "b"}}}})
    assert immutable.value.status == 422 and "field is immutable" in _status(immutable.value)["message"]


def test_bad_label_selector_is_400(core_v1: kubernetes.client.CoreV1Api) -> None:
    with pytest.raises(ApiException) as bad:
        core_v1.list_namespaced_pod("default", label_selector="a in b")
    assert bad.value.status == 400


def test_terminating_namespace_refuses_new_objects(core_v1: kubernetes.client.CoreV1Api) -> None:
    core_v1.create_namespace({"metadata": {"name": "going"}})
    held = _cm("held")
    held["metadata"]["finalizers"] = ["example.com/hold"]
    core_v1.create_namespaced_config_map("going", held)
    core_v1.delete_namespace("going")
    assert core_v1.read_namespace("going").status.phase == "Terminating"
    with pytest.raises(ApiException) as refused:
        core_v1.create_namespaced_config_map("going", _cm("new"))
    assert refused.value.status == 403 and "being terminated" in _status(refused.value)["message"]
    core_v1.patch_namespaced_config_map("held", "going", {"metadata": {"finalizers": None}})
    assert "going" not in [n.metadata.name for n in core_v1.list_namespace().items]


def test_kubeconfig_discovery_and_dynamic_client(api_server: EmulatedApiServer, tmp_path: Any) -> None:
    import yaml
    from kubernetes import config, dynamic

    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(api_server.kubeconfig()))
    configuration = kubernetes.client.Configuration()
    config.load_kube_config(config_file=str(path), client_configuration=configuration)
    client = kubernetes.client.ApiClient(configuration)
    assert kubernetes.client.VersionApi(client).get_code().git_version.startswith("v1.")
    assert kubernetes.client.CoreV1Api(client).get_api_resources().group_version == "v1"
    api_server.store.create(api_server.store.rt("customresourcedefinitions"), None, NAD_CRD)
    dyn = dynamic.DynamicClient(client)
    nads = dyn.resources.get(api_version="k8s.cni.cncf.io/v1", kind="NetworkAttachmentDefinition")
    assert nads.namespaced and nads.name == "network-attachment-definitions"
    daemonsets = dyn.resources.get(api_version="apps/v1", kind="DaemonSet")
    assert daemonsets.get(namespace="kube-system").items == []


def test_paginated_list_then_watch_misses_nothing(core_v1: kubernetes.client.CoreV1Api) -> None:
    for i in range(5):
        core_v1.create_namespaced_config_map("default", _cm(f"cm-{i}"))
    first = core_v1.list_namespaced_config_map("default", limit=2)
    core_v1.create_namespaced_config_map("default", _cm("late"))  # between the pages
    rest = core_v1.list_namespaced_config_map("default", limit=10, _continue=first.metadata._continue)
    assert rest.metadata.resource_version == first.metadata.resource_version  # the list's version
    events = list(watch.Watch().stream(core_v1.list_namespaced_config_map, "default", timeout_seconds=1,
                                       resource_version=rest.metadata.resource_version))
    assert [(e["type"], e["object"].metadata.name) for e in events] == [("ADDED", "late")]
