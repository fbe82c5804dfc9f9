"""A Kubernetes API server and kubelet stand-in for tests, over real HTTP (a thin layer over kmock 0.8).

Usage (the fixtures in ``tests/api/conftest.py`` do this)::

    server = EmulatedApiServer().start()           # 127.0.0.1, random port, background thread
    api = kubernetes.client.ApiClient(server.configuration())   # or server.kubeconfig() for a file
    add_nodes(server.store, 50, control_planes=3, cordoned=2, not_ready=1)
    kubelet = SimulatedKubelet(server.store, run_pod=engine).start()   # engine(pod, node) -> (exit, msg[, logs])
    server.faults.throttle(verb="create", resource="pods", count=2)   # 429 + Retry-After: 1, twice
    ...
    assert RbacPolicy.from_manifests(rendered, "sa", "ns").violations(server.log.records()) == []
    kubelet.stop(); server.stop()

What it emulates
----------------
* Serving: kmock's aiohttp server on 127.0.0.1 (random port), run in a background thread with its own
  event loop (``EmulatedApiServer.start()/stop()``); stop closes open watches first, so it is quick.
* Resources: namespaces, nodes, pods (+ ``status``, ``log``, ``eviction``), configmaps, secrets,
  serviceaccounts, events, daemonsets, deployments (stored only), jobs, customresourcedefinitions,
  RBAC roles/bindings (stored only), and any resource a created CRD declares (e.g.
  ``k8s.cni.cncf.io/v1 network-attachment-definitions``), served at once and removed with its CRD.
* Discovery: ``/api``, ``/api/v1``, ``/apis``, ``/apis/<group>``, ``/apis/<group>/<version>``, ``/version``
  (kmock's scaffold, fed from the live resource table).
* Server-side metadata: uid, a cluster-wide increasing resourceVersion, creationTimestamp, generation
  (bumped on spec changes), deletionTimestamp; generateName; no-op writes keep the resourceVersion.
* Defaulting so objects are complete for the ``kubernetes`` 37 client's strict models (Node
  ``status.nodeInfo``/conditions/addresses, Pod ``status.phase``/qosClass and spec defaults, DaemonSet
  status counters, Job selector + controller-uid labels, CRD status/acceptedNames, Namespace phase).
* Validation (422 ``Invalid`` with causes): DNS-1123 names, label keys/values, pod containers, Job
  restartPolicy, DaemonSet selector-vs-template, CRD name; immutable pod spec / Job template / DS selector.
* Reads: get; list with label selectors (full set-based grammar) and field selectors (``metadata.name``,
  ``metadata.namespace``; pods ``spec.nodeName``, ``status.phase`` and more; an unsupported field is a 400
  as upstream); ``limit``/``continue`` pagination with ``remainingItemCount``.
* Watch: initial ADDED events (no resourceVersion or "0") or a replay from a given ``resourceVersion``
  (410 ``Expired`` ERROR event once compacted: ``store.compact()`` or ``history_limit``), live events for
  cluster-scoped and namespaced objects, selectors honoured (an object leaving the selector is a DELETED
  event), ``timeoutSeconds`` honoured (default 1800 s), a final BOOKMARK when ``allowWatchBookmarks``, a
  watch on one named object; a client that disconnects is noticed within a second.
* Cost: lists scan only the namespace's key range (sorted keys cached), pod ``spec.nodeName`` field
  selectors use an index, watches never re-list (events fan out to per-watch queues), kmock's
  request-history scan is bypassed for resource paths. 5,000 nodes + a DaemonSet settle in ~2 s.
* Writes: create (201, 409 AlreadyExists, 404 for a missing namespace, 403 in a terminating one), PUT
  replace with optimistic concurrency (409 Conflict on a stale resourceVersion), PATCH (JSON merge,
  strategic merge for the common list merge keys, JSON patch), the ``status`` subresource (main-resource
  writes keep the old status, status writes change only status), ``dryRun``.
* Deletion: finalizers, ``propagationPolicy`` Orphan/Background/Foreground with ownerReference garbage
  collection (Jobs orphan by default, as upstream), graceful pod deletion when a kubelet is attached
  (pods stay with deletionTimestamp until it confirms), namespace deletion removing its contents,
  ``deletecollection``, ``preconditions``. Deleting a pod returns the Pod; other kinds return a Status.
* Fault injection (``server.faults``), rules matched by method, path regex, RBAC attributes and a count,
  answered before the state is touched: 500/503/504, 429 with ``Retry-After``, 409 Conflict, 403 with
  upstream's message (user, verb, resource, API group, namespace), 404, 410, added latency, a cut
  connection; watches closed or cut after N events, or ended with a 410 ``Expired`` ERROR event.
* A request log in RBAC terms (``server.log``: verb, apiGroup, resource, subresource, namespace, name,
  status, fault) and an RBAC evaluator (``RbacPolicy``, ``rule_allows``) for proving a component's
  calls are allowed by rendered (Cluster)Roles and RoleBindings.
* ``kubelet.SimulatedKubelet``: a DaemonSet controller and a kubelet per node, in a thread (see its
  module docstring): daemon pods per eligible node, cleanup pods run through a pluggable ``run_pod``,
  terminated statuses as the kubelet writes them (message truncated to 4096 bytes), NotReady nodes,
  graceful-deletion delays, per-node failures and delays. It writes to the store directly, so its
  traffic is not in the request log.

What it does not emulate
------------------------
* Watch bookmarks other than the final one; ``sendInitialEvents``; watch-list streaming.
* Authentication/authorization (every request is allowed unless a fault rule says otherwise), admission
  webhooks, quotas, LimitRanges, PodSecurity, server-side apply (``application/apply-patch+yaml`` is a 415),
  field managers/managedFields, protobuf/CBOR, table output, aggregated discovery (v2), OpenAPI.
* Schedulers and controllers other than the simulated DaemonSet controller/kubelet: Jobs are stored but
  never run pods, Deployments never get ReplicaSets.
* Consistent list snapshots: a paginated list serves the current state after the continue key, not the
  state at the first page's resourceVersion; ``resourceVersion``/``resourceVersionMatch`` on list are
  ignored; a continue token never expires.
* Garbage collection is synchronous (upstream's is asynchronous); dependents whose owner never existed are
  not collected; a terminating namespace is removed as soon as it is empty (no finalizer dance).
* Strategic merge knows merge keys by field name only (not by schema path); ``$retainKeys`` is ignored.
* Validation is a subset; defaulting is a subset; CRD schemas are not validated or pruned; objects keep
  the apiVersion they were created with (no conversion between the versions of a multi-version CRD).
* Pod subresources other than ``status``/``log``/``eviction`` (exec, attach, portforward, binding); log
  options other than ``tailLines`` (no ``follow``, ``previous``, ``container``); pods carry no
  ``metadata.generation``.
* Node heartbeats and Leases; taint-based eviction of pods from NotReady nodes; the scheduler.
* kmock DSL reactions (``server.handler[...] << ...``) reach only non-resource paths (discovery,
  ``/version``, anything else unknown): resource paths are served by the store; use ``server.faults``
  to make them misbehave.
"""

from .faults import FaultRule, Faults
from .requestlog import RbacPolicy, RequestLog, RequestRecord, rule_allows
from .resources import BUILTIN_TYPES, Defaults, ResourceType
from .server import ApiHandler, EmulatedApiServer, parse_resource_path
from .store import ApiError, Event, Store

__all__ = [
    "BUILTIN_TYPES",
    "ApiError",
    "ApiHandler",
    "Defaults",
    "EmulatedApiServer",
    "Event",
    "FaultRule",
    "Faults",
    "RbacPolicy",
    "RequestLog",
    "RequestRecord",
    "ResourceType",
    "Store",
    "parse_resource_path",
    "rule_allows",
]
