"""The HTTP side: a kmock handler that serves the emulated state, and a runner for sync tests.

kmock provides the HTTP server (``kmock.Server``: aiohttp on 127.0.0.1, random port), the handler
life cycle, API discovery (``/api``, ``/apis``, ``/api/v1``, ``/apis/<group>/<version>``, ``/version``)
from ``kmock.resources``, and its DSL for any other path. Resource paths are routed here, before
kmock's reaction matching: kmock 0.8 mis-parses ``/api/v1/namespaces`` and re-scans its whole request
history on every request (quadratic over a long run), so its stateful ``KubernetesEmulator`` is not
used; ``Store`` keeps the state instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass
from typing import Any, Self, TypeVar

import aiohttp.web
import attrs
import kmock
from typing_extensions import override

from .faults import FaultRule, Faults
from .requestlog import RequestLog, RequestRecord
from .resources import Defaults, ResourceType
from .selectors import FieldSelector, LabelSelector, SelectorError
from .store import ApiError, Obj, Store, bad_request

T = TypeVar("T")
_JSON = "application/json"


@dataclass(frozen=True)
class ParsedPath:
    group: str
    version: str
    plural: str
    namespace: str | None
    name: str | None
    subresource: str | None


def parse_resource_path(path: str) -> ParsedPath | None:
    """``/api/v1/namespaces/ns/pods/name/log`` -> its parts; ``None`` for non-resource paths."""
    parts = [p for p in path.split("/") if p]
    if len(parts) >= 3 and parts[0] == "api":
        group, version, rest = "", parts[1], parts[2:]
    elif len(parts) >= 4 and parts[0] == "apis":
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return None
    namespace = None
    if rest[0] == "namespaces" and len(rest) >= 3 and not (
            group == "" and len(rest) == 3 and rest[2] in ("status", "finalize")):
        namespace, rest = rest[1], rest[2:]
    plural = rest[0]
    name = rest[1] if len(rest) > 1 else None
    subresource = "/".join(rest[2:]) or None
    return ParsedPath(group, version, plural, namespace, name, subresource)


def rbac_verb(method: str, parsed: ParsedPath | None, query: Mapping[str, str]) -> str:
    if parsed is None:
        return {"GET": "get", "HEAD": "get", "POST": "post", "PUT": "put", "PATCH": "patch",
                "DELETE": "delete"}.get(method, method.lower())
    if method in ("GET", "HEAD"):
        if query.get("watch") in ("true", "1", "True"):
            return "watch"
        return "get" if parsed.name else "list"
    if method == "POST":
        return "create"
    if method == "PUT":
        return "update"
    if method == "PATCH":
        return "patch"
    if method == "DELETE":
        return "delete" if parsed.name else "deletecollection"
    return method.lower()


def _exact_name(field_selector: str | None) -> str | None:
    for term in (field_selector or "").split(","):
        key, sep, value = term.partition("=")
        if sep and key.strip() == "metadata.name" and not key.endswith("!"):
            name = value.lstrip("=").strip()
            return name or None
    return None


def _json_response(body: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> aiohttp.web.Response:
    return aiohttp.web.Response(body=json.dumps(body, separators=(",", ":")).encode(), status=status,
                                content_type=_JSON, headers=dict(headers or {}))


def _error_response(exc: ApiError) -> aiohttp.web.Response:
    return _json_response(exc.status(), exc.code, exc.headers)


def _int_param(query: Mapping[str, str], name: str) -> int | None:
    value = query.get(name)
    if value in (None, ""):
        return None
    try:
        return int(str(value))
    except ValueError as exc:
        raise bad_request(f"invalid value for {name}: {value!r}") from exc


@attrs.define(kw_only=True)
class ApiHandler(kmock.KubernetesScaffold):
    """kmock's Kubernetes scaffold plus the emulated resource endpoints."""

    store: Store
    log: RequestLog
    faults: Faults
    watch_timeout: float = 1800.0  # when the client gives no timeoutSeconds
    _closing: bool = False

    def sync_discovery(self, added: list[ResourceType], removed: list[ResourceType]) -> None:
        for rt in removed:
            key = kmock.resource(rt.group, rt.version, rt.plural)
            if key in self.resources:
                del self.resources[key]
        for rt in added:
            self.resources[kmock.resource(rt.group, rt.version, rt.plural)] = kmock.ResourceInfo(
                kind=rt.kind, singular=rt.singular, namespaced=rt.namespaced, verbs=set(rt.verbs),
                shortnames=set(rt.short_names), subresources=set(rt.subresources))

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self.fallback["get /version/"] << self._serve_server_version

    @override
    async def _serve_server_version(self, request: kmock.Request) -> kmock.Payload:
        version = self.store.defaults.kubelet_version
        major, minor, *_ = version.lstrip("v").split(".")
        return {"major": major, "minor": minor, "gitVersion": version, "gitCommit": "0" * 40,
                "gitTreeState": "clean", "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.23.4",
                "compiler": "gc", "platform": "linux/amd64", "emulator": "tests/api/emulator (kmock)"}

    @override
    async def _serve_version(self, request: kmock.Request) -> kmock.Payload:
        payload = await super()._serve_version(request)
        if isinstance(payload, dict) and str(payload.get("groupVersion", "")).startswith("/"):
            payload["groupVersion"] = payload["groupVersion"][1:]  # kmock 0.8 says "/v1" for the core group
        return payload

    def begin_shutdown(self) -> None:
        self._closing = True
        self.store.close_watches()

    @override
    async def __call__(self, raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        body = await raw_request.read()
        query = dict(raw_request.query)
        parsed = parse_resource_path(raw_request.path)
        record = RequestRecord(
            verb=rbac_verb(raw_request.method, parsed, query),
            api_group=parsed.group if parsed else None, resource=parsed.plural if parsed else None,
            subresource=parsed.subresource if parsed else None, namespace=parsed.namespace if parsed else None,
            name=parsed.name if parsed else None, method=raw_request.method, path=raw_request.path, query=query,
            user_agent=raw_request.headers.get("User-Agent", ""),
        )
        if parsed and parsed.group == "" and parsed.plural == "namespaces" and parsed.name and not parsed.namespace:
            record.namespace = parsed.name  # upstream authorizes namespace gets/updates within that namespace
        if record.verb in ("list", "watch") and record.name is None:
            record.name = _exact_name(query.get("fieldSelector"))  # as upstream's RequestInfo does
        self.log.append(record)
        rule = self.faults.take(record)
        response: aiohttp.web.StreamResponse
        if rule is not None:
            record.fault = rule.label
            if rule.latency:
                await asyncio.sleep(rule.latency)
            if rule.reset and raw_request.transport is not None:
                raw_request.transport.abort()
                record.status = -1
                return aiohttp.web.Response(status=500)  # never reaches the client
        if rule is not None and rule.watch is None and rule.status is not None:
            response = _error_response(rule.error(record))
        elif parsed is not None:
            try:
                response = await self._serve(raw_request, parsed, record, body, query, rule)
            except ApiError as exc:
                response = _error_response(exc)
        else:
            if raw_request.path != "/" and raw_request.path.endswith("/"):  # the client asks for "/api/v1/"
                raw_request = raw_request.clone(rel_url=raw_request.rel_url.with_path(raw_request.path.rstrip("/")))
            response = await super().__call__(raw_request)  # discovery, /version, kmock DSL reactions
        record.status = response.status
        return response

    @override
    async def _render_error(self, exc: Exception) -> aiohttp.web.StreamResponse:
        if isinstance(exc, kmock.KubernetesError):
            return _json_response(ApiError(exc.status, "NotFound" if exc.status == 404 else "InternalError",
                                           "the server could not find the requested resource"
                                           if exc.status == 404 else str(exc.message)).status(), exc.status)
        return _json_response(ApiError(500, "InternalError", f"Internal error occurred: {exc!r}").status(), 500)

    async def _serve(self, raw: aiohttp.web.BaseRequest, parsed: ParsedPath, record: RequestRecord,
                     body: bytes, query: dict[str, str], rule: FaultRule | None) -> aiohttp.web.StreamResponse:
        store = self.store
        rt = store.find_type(parsed.group, parsed.version, parsed.plural)
        if rt is None or (parsed.namespace is not None and not rt.namespaced):
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if parsed.subresource is not None and parsed.subresource not in rt.subresources:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        verb = record.verb
        dry_run = bool(query.get("dryRun"))
        if verb in ("list", "watch", "deletecollection"):
            try:
                labels = LabelSelector.parse(query.get("labelSelector"))
                fields = FieldSelector.parse(query.get("fieldSelector"), rt.fields)
            except SelectorError as exc:
                raise bad_request(str(exc)) from exc
            if verb == "watch":
                return await self._watch(raw, rt, parsed, labels, fields, query, rule)
            if verb == "list":
                items, rv, token, remaining = store.list(rt, parsed.namespace, labels, fields,
                                                          _int_param(query, "limit") or None, query.get("continue"))
                meta: dict[str, Any] = {"resourceVersion": rv}
                if token:
                    meta["continue"] = token
                if remaining is not None:
                    meta["remainingItemCount"] = remaining
                return _json_response({"apiVersion": rt.api_version, "kind": f"{rt.kind}List", "metadata": meta,
                                       "items": items})
            options = self._delete_options(body, query)
            store.delete_collection(rt, parsed.namespace, labels, fields, propagation=options[0], grace=options[1])
            return _json_response(self._success(rt, None))
        name = parsed.name
        if verb == "create":
            data = self._body(body)
            if parsed.subresource == "eviction" and name:
                store.delete(rt, parsed.namespace, name)
                return _json_response(self._success(rt, name), 201)
            if name is not None:
                raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested "
                                                        "resource")
            return _json_response(store.create(rt, parsed.namespace, data, dry_run=dry_run), 201)
        assert name is not None
        if verb == "get":
            if parsed.subresource == "log":
                obj = store.get(rt, parsed.namespace, name)
                return aiohttp.web.Response(text=self._pod_log(obj, query), content_type="text/plain")
            return _json_response(store.get(rt, parsed.namespace, name))
        if verb == "update":
            return _json_response(store.replace(rt, parsed.namespace, name, self._body(body),
                                                subresource=parsed.subresource, dry_run=dry_run))
        if verb == "patch":
            content_type = raw.headers.get("Content-Type", _JSON)
            return _json_response(store.patch(rt, parsed.namespace, name, self._body(body), content_type,
                                              subresource=parsed.subresource, dry_run=dry_run))
        if verb == "delete":
            propagation, grace, preconditions = self._delete_options(body, query)
            obj, gone_now = store.delete(rt, parsed.namespace, name, propagation=propagation, grace=grace,
                                         preconditions=preconditions, dry_run=dry_run)
            if gone_now and rt.key != ("", "pods"):
                return _json_response(self._success(rt, name, obj))
            return _json_response(obj)
        raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")

    @staticmethod
    def _body(body: bytes) -> Any:
        if not body:
            raise bad_request("the body of the request was empty")
        try:
            return json.loads(body)
        except ValueError as exc:
            raise bad_request(f"the body of the request was in an unknown format: {exc}") from exc

    @staticmethod
    def _delete_options(body: bytes, query: Mapping[str, str]) -> tuple[str | None, int | None, dict[str, Any]]:
        options: dict[str, Any] = {}
        if body:
            try:
                loaded = json.loads(body)
            except ValueError as exc:
                raise bad_request(f"the body of the request was in an unknown format: {exc}") from exc
            options = loaded if isinstance(loaded, dict) else {}
        propagation = query.get("propagationPolicy") or options.get("propagationPolicy")
        if propagation is None and options.get("orphanDependents") is not None:
            propagation = "Orphan" if options["orphanDependents"] else "Background"
        grace = _int_param(query, "gracePeriodSeconds")
        if grace is None and options.get("gracePeriodSeconds") is not None:
            grace = int(options["gracePeriodSeconds"])
        return propagation, grace, dict(options.get("preconditions") or {})

    @staticmethod
    def _success(rt: ResourceType, name: str | None, obj: Obj | None = None) -> Obj:
        details: dict[str, Any] = {"kind": rt.plural}
        if name:
            details["name"] = name
        if rt.group:
            details["group"] = rt.group
        if obj is not None:
            details["uid"] = obj["metadata"]["uid"]
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details}

    def _pod_log(self, pod: Obj, query: Mapping[str, str]) -> str:
        key = (pod["metadata"].get("namespace", ""), pod["metadata"]["name"])
        text = self.store.pod_logs.get(key)
        if text is None:
            if (pod.get("status") or {}).get("phase", "Pending") == "Pending":
                container = ((pod.get("spec") or {}).get("containers") or [{}])[0].get("name", "")
                raise bad_request(f'container "{container}" in pod "{key[1]}" is waiting to start: '
                                  "ContainerCreating")
            text = ""
        tail = _int_param(query, "tailLines")
        if tail is not None:
            lines = text.splitlines(keepends=True)
            text = "".join(lines[-tail:]) if tail > 0 else ""
        return text

    async def _final_bookmark(self, response: aiohttp.web.StreamResponse, rt: ResourceType,
                              queue: asyncio.Queue[tuple[str, Obj] | None]) -> None:
        """Before a watch times out, tell the client how far it got (as the watch cache does)."""
        with self.store.lock:
            rv = self.store.resource_version
        await asyncio.sleep(0)  # deliver every event pushed up to `rv` first
        events = []
        while not queue.empty():
            item = queue.get_nowait()
            if item is not None:
                events.append({"type": item[0], "object": item[1]})
        events.append({"type": "BOOKMARK", "object": {"kind": rt.kind, "apiVersion": rt.api_version,
                                                      "metadata": {"resourceVersion": str(rv)}}})
        await response.write(b"".join(json.dumps(e, separators=(",", ":")).encode() + b"\n" for e in events))

    async def _watch(self, raw: aiohttp.web.BaseRequest, rt: ResourceType, parsed: ParsedPath,
                     labels: LabelSelector, fields: FieldSelector, query: Mapping[str, str],
                     rule: FaultRule | None) -> aiohttp.web.StreamResponse:
        if self._closing:
            raise ApiError(503, "ServiceUnavailable", "apiserver is shutting down")
        if parsed.name is not None:  # GET .../pods/NAME?watch=true: a watch on one object
            fields = FieldSelector((*fields.terms, ("metadata.name", True, parsed.name)))
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[str, Obj] | None] = asyncio.Queue()

        def push(item: tuple[str, Obj] | None) -> None:
            with contextlib.suppress(RuntimeError):  # RuntimeError: the loop is closed, the server is gone
                loop.call_soon_threadsafe(queue.put_nowait, item)

        timeout = _int_param(query, "timeoutSeconds")
        deadline = loop.time() + (timeout if timeout else self.watch_timeout)  # 0 means the server's default
        response = aiohttp.web.StreamResponse(status=200, headers={"Content-Type": _JSON})
        try:
            watcher, initial = self.store.watch(rt, parsed.namespace, labels, fields, query.get("resourceVersion"),
                                                push)
        except ApiError as exc:
            if exc.code != 410:
                raise
            await response.prepare(raw)
            await response.write(json.dumps({"type": "ERROR", "object": exc.status()}).encode() + b"\n")
            await response.write_eof()
            return response
        sent = 0
        limit = rule.after_events if rule is not None else None
        try:
            await response.prepare(raw)
            pending: list[tuple[str, Obj]] = list(initial)
            closed = False
            while True:
                if limit is not None:
                    pending = pending[: max(0, limit - sent)]
                if pending:
                    await response.write(b"".join(
                        json.dumps({"type": t, "object": o}, separators=(",", ":")).encode() + b"\n"
                        for t, o in pending))
                    sent += len(pending)
                    pending = []
                if closed or (limit is not None and sent >= limit):
                    break
                remaining = deadline - loop.time()
                if remaining <= 0:
                    if query.get("allowWatchBookmarks") in ("true", "1"):
                        await self._final_bookmark(response, rt, queue)
                    break
                try:
                    item = await asyncio.wait_for(queue.get(), min(remaining, 1.0))
                except TimeoutError:
                    if raw.transport is None or raw.transport.is_closing():
                        break  # the client went away
                    continue
                if item is None:
                    break
                pending.append(item)
                while not queue.empty():  # batch whatever else is queued into one write
                    more = queue.get_nowait()
                    if more is None:
                        closed = True
                        break
                    pending.append(more)
            if rule is not None and rule.watch == "reset" and raw.transport is not None:
                raw.transport.abort()
                return response
            if rule is not None and rule.watch == "gone":
                status = ApiError(410, "Expired", rule.message or f"too old resource version: 1 "
                                  f"({self.store.resource_version})").status()
                await response.write(json.dumps({"type": "ERROR", "object": status}).encode() + b"\n")
            await response.write_eof()
        except (ConnectionError, RuntimeError):
            pass  # the client disconnected mid-stream
        finally:
            self.store.unwatch(watcher)
        return response


class EmulatedApiServer:
    """A started-on-demand Kubernetes-like API on 127.0.0.1 for synchronous tests.

    The aiohttp server (via kmock) runs in a background thread with its own event loop.
    ``stop()`` closes every open watch first, so it never waits out aiohttp's shutdown timeout.
    """

    def __init__(self, *, defaults: Defaults | None = None, history_limit: int = 200_000,
                 watch_timeout: float = 1800.0, user: str = "system:serviceaccount:default:default",
                 host: str = "127.0.0.1") -> None:
        self.store = Store(defaults, history_limit)
        self.log = RequestLog()
        self.faults = Faults(user)
        self.handler = ApiHandler(store=self.store, log=self.log, faults=self.faults, watch_timeout=watch_timeout)
        self._host = host
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: kmock.Server | None = None

    # -------------------------------------------------------------------------------------------- life cycle

    def start(self) -> Self:
        if self._loop is not None:
            raise RuntimeError("already started")
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(target=loop.run_forever, name="api-emulator", daemon=True)
        self._thread.start()
        self.call(self._astart())
        return self

    async def _astart(self) -> None:
        await self.handler.__aenter__()
        self._server = kmock.Server(self.handler, host=self._host)
        await self._server.__aenter__()
        loop = asyncio.get_running_loop()

        def on_types(added: list[ResourceType], removed: list[ResourceType]) -> None:
            if threading.current_thread() is self._thread:
                self.handler.sync_discovery(added, removed)
            else:
                loop.call_soon_threadsafe(self.handler.sync_discovery, added, removed)

        self.store.on_types_changed(on_types)

    def stop(self, timeout: float = 15.0) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        try:
            self.call(self._astop(), timeout=timeout)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout)
            if not thread.is_alive():
                loop.close()
            self._loop = None
            self._thread = None

    async def _astop(self) -> None:
        self.handler.begin_shutdown()
        await asyncio.sleep(0)  # let the watch handlers see their close marker
        if self._server is not None:
            await self._server.__aexit__(None, None, None)
            self._server = None
        await self.handler.__aexit__(None, None, None)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def call(self, coro: Coroutine[Any, Any, T], timeout: float | None = 30.0) -> T:
        """Run a coroutine on the server's loop (e.g. to use kmock's DSL on ``self.handler``)."""
        if self._loop is None:
            coro.close()
            raise RuntimeError("the emulator is not running")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    # -------------------------------------------------------------------------------------------- clients

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the emulator is not running")
        return self._server.port

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self.port}"

    def configuration(self) -> Any:
        import kubernetes.client

        config = kubernetes.client.Configuration(host=self.url)
        config.verify_ssl = False
        return config

    def api_client(self) -> Any:
        import kubernetes.client

        return kubernetes.client.ApiClient(self.configuration())

    def kubeconfig(self, namespace: str = "default") -> dict[str, Any]:
        """A kubeconfig dict pointing at this server (for code that loads one)."""
        return {
            "apiVersion": "v1", "kind": "Config", "current-context": "emulator",
            "clusters": [{"name": "emulator", "cluster": {"server": self.url}}],
            "users": [{"name": "emulator", "user": {"token": "emulator"}}],
            "contexts": [{"name": "emulator", "context": {"cluster": "emulator", "user": "emulator",
                                                          "namespace": namespace}}],
        }
