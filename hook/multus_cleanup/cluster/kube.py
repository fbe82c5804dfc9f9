"""The thin API-client layer: every request the orchestrator makes goes through `Kube.request`.

It uses the real `kubernetes` client for configuration, authentication, TLS and HTTP, but reads raw JSON
(no model deserialisation: 5,000 pods' events stay cheap). It retries what is worth retrying (429 with
Retry-After, 5xx, dropped connections, a ResourceQuota with no room yet) with capped exponential backoff, turns
an RBAC 403 into an error naming the missing permission, and counts requests by RBAC verb. No decision about
Multus lives here.
"""

from __future__ import annotations

import json
import logging
import random
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeVar
from urllib.parse import quote

import urllib3
from kubernetes import client as k8s
from kubernetes import config as k8s_config

log = logging.getLogger(__name__)

JSON = dict[str, Any]
# the API verbs the cleanup uses (RBAC is granted per verb: tests/api/test_rbac.py)
Verb = Literal["get", "list", "watch", "create", "patch", "update", "delete", "deletecollection"]
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
# How the authorizer words a denial (`User "x" cannot create resource "pods" ...`). Admission also answers 403
# (PodSecurity, ResourceQuota, webhooks), and granting RBAC fixes none of those.
_RBAC_DENIAL = re.compile(r'\bcannot [a-z]+ (resource|path) "')
# ResourceQuota admission: room may come back (pods finish, an admin raises it), so it is worth waiting for.
QUOTA_EXCEEDED = "exceeded quota"
# HTTP connections kept open to the API server: the sweep's creators, the watches and the Events in parallel.
CONNECTION_POOL_SIZE = 32
T = TypeVar("T")


class ApiError(Exception):
    def __init__(self, status: int, reason: str, message: str, verb: str, what: str) -> None:
        self.status, self.reason, self.verb, self.what = status, reason, verb, what
        super().__init__(f"{verb} {what}: {status} {reason}: {message}")


class NotFound(ApiError):
    pass


class Conflict(ApiError):
    pass


class Gone(ApiError):
    """410: a watch's resourceVersion is too old; list again."""


class Forbidden(ApiError):
    def __init__(self, status: int, reason: str, message: str, verb: str, what: str, rule: str) -> None:
        super().__init__(status, reason, message, verb, what)
        self.rule = rule

    def __str__(self) -> str:
        return (f"permission denied: the cleanup's ServiceAccount may not {self.verb} {self.what} "
                f"(the API said: {self.args[0].split(': ', 2)[-1]}). Grant it `{self.rule}`: the chart's "
                "cleanup RBAC does; see docs/uninstall.md#permissions")


@dataclass(frozen=True)
class Resource:
    """A resource endpoint: group '' is the core API."""

    group: str
    version: str
    plural: str
    namespaced: bool

    def path(self, namespace: str | None = None, name: str | None = None, subresource: str | None = None) -> str:
        base = f"/api/{self.version}" if not self.group else f"/apis/{self.group}/{self.version}"
        if self.namespaced and namespace is not None:
            base += f"/namespaces/{quote(namespace, safe='')}"
        base += f"/{self.plural}"
        if name is not None:
            base += f"/{quote(name, safe='')}"
        if subresource:
            base += f"/{subresource}"
        return base

    def rule(self, verb: str) -> str:
        group = self.group or '""'
        return f"{{apiGroups: [{group}], resources: [{self.plural}], verbs: [{verb}]}}"


NODES = Resource("", "v1", "nodes", namespaced=False)
PODS = Resource("", "v1", "pods", namespaced=True)
DAEMONSETS = Resource("apps", "v1", "daemonsets", namespaced=True)
NADS = Resource("k8s.cni.cncf.io", "v1", "network-attachment-definitions", namespaced=True)
CRDS = Resource("apiextensions.k8s.io", "v1", "customresourcedefinitions", namespaced=False)


def connect(kubeconfig: str | None = None, context: str | None = None) -> Kube:
    """In-cluster config when running in a pod, else the kubeconfig (file, $KUBECONFIG, ~/.kube/config)."""
    configuration = k8s.Configuration()
    # urllib3 would otherwise retry some answers (429, 503) silently; retries belong to Kube, counted and logged.
    configuration.retries = False
    # read when the ApiClient builds its urllib3 pool: setting it later changes nothing
    configuration.connection_pool_maxsize = CONNECTION_POOL_SIZE
    if kubeconfig is None and context is None:
        try:
            k8s_config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
            return Kube(k8s.ApiClient(configuration))
        except k8s_config.ConfigException:
            pass
    k8s_config.load_kube_config(  # type: ignore[no-untyped-call]
        config_file=kubeconfig, context=context, client_configuration=configuration)
    return Kube(k8s.ApiClient(configuration))


class Kube:
    def __init__(self, api_client: k8s.ApiClient, *, max_attempts: int = 6, max_backoff: float = 8.0,
                 request_timeout: float = 30.0, quota_attempts: int = 14) -> None:
        self.api = api_client
        self.max_attempts = max_attempts
        self.quota_attempts = quota_attempts  # about a minute at the capped backoff
        self.max_backoff = max_backoff
        self.request_timeout = request_timeout
        self.requests: Counter[str] = Counter()
        self.throttled = 0  # 429 answers (API Priority and Fairness, or a rate limit): the sweep slows down on them
        self._lock = threading.Lock()

    # -- the one request path -------------------------------------------------------------------------
    def request(self, verb: Verb, resource: Resource, *, namespace: str | None = None, name: str | None = None,
                subresource: str | None = None, query: Mapping[str, Any] | None = None,
                body: Any = None, content_type: str = "application/json") -> JSON:
        method = {"get": "GET", "list": "GET", "create": "POST", "patch": "PATCH", "update": "PUT",
                  "delete": "DELETE", "deletecollection": "DELETE"}[verb]
        attempt = 0
        while True:
            attempt += 1
            response = self._send(verb, method, resource, namespace, name, subresource, query, body, content_type,
                                  stream=False)
            status, data = response.status, response.read()
            if 200 <= status < 300:
                return json.loads(data) if data else {}
            self._retry_or_raise(verb, resource, namespace, name, status, data, response, attempt)

    def request_discarding(self, verb: Verb, resource: Resource, *, namespace: str | None = None,
                           query: Mapping[str, Any] | None = None) -> None:
        """A request whose answer is not needed and may be large: a deletecollection answers with every object
        it deleted (tens of MB for thousands of pods), which is read in chunks and dropped, never parsed."""
        method = "DELETE" if verb in ("delete", "deletecollection") else "GET"
        attempt = 0
        while True:
            attempt += 1
            response = self._send(verb, method, resource, namespace, None, None, query, None, "application/json",
                                  stream=True, read_timeout=self.request_timeout * 4)
            status = response.status
            if 200 <= status < 300:
                raw = response.response
                try:
                    for _ in raw.stream(1 << 16, decode_content=False):
                        pass
                finally:
                    raw.release_conn()
                return
            self._retry_or_raise(verb, resource, namespace, None, status, response.read(), response, attempt)

    def read_log(self, namespace: str, name: str, *, container: str) -> str:
        """A pod container's log as text (GET pods/log: RBAC verb get on pods/log)."""
        attempt = 0
        while True:
            attempt += 1
            response = self._send("get", "GET", PODS, namespace, name, "log", {"container": container}, None,
                                  "application/json", stream=False)
            status, data = response.status, response.read()
            if 200 <= status < 300:
                return bytes(data).decode(errors="replace")
            try:
                self._retry_or_raise("get", PODS, namespace, name, status, data, response, attempt)
            except Forbidden as err:
                err.rule = '{apiGroups: [""], resources: [pods/log], verbs: [get]}'
                raise

    def watch(self, resource: Resource, *, namespace: str | None, query: Mapping[str, Any],
              timeout_seconds: int) -> Iterator[JSON]:
        """One watch request: yields events {type, object} until the server ends it. Raises Gone on 410."""
        params = {**query, "watch": "true", "timeoutSeconds": str(timeout_seconds),
                  "allowWatchBookmarks": "true"}
        attempt = 0
        while True:
            attempt += 1
            response = self._send("watch", "GET", resource, namespace, None, None, params, None,
                                  "application/json", stream=True, read_timeout=timeout_seconds + 15)
            if response.status == 200:
                break
            self._retry_or_raise("watch", resource, namespace, None, response.status, response.read(), response,
                                 attempt)
        raw = response.response
        try:
            buffer = b""
            for chunk in raw.stream(8192, decode_content=True):
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    if not line.strip():
                        continue
                    event = json.loads(line)
                    if event.get("type") == "ERROR":
                        obj = event.get("object", {})
                        code = int(obj.get("code", 500))
                        err_cls = Gone if code == 410 else ApiError
                        raise err_cls(code, str(obj.get("reason", "")), str(obj.get("message", "")), "watch",
                                      self._what(resource, namespace, None))
                    yield event
        except (urllib3.exceptions.ProtocolError, urllib3.exceptions.ReadTimeoutError) as err:
            log.debug("watch on %s ended early: %s", resource.plural, err)
        finally:
            raw.release_conn()

    def list_all(self, resource: Resource, *, namespace: str | None = None, query: Mapping[str, Any] | None = None,
                 page_size: int = 500) -> tuple[list[JSON], str]:
        """All items, page by page; returns (items, resourceVersion of the list)."""
        return self.list_reduced(resource, lambda item: item, namespace=namespace, query=query, page_size=page_size)

    def list_reduced(self, resource: Resource, keep: Callable[[JSON], T | None], *, namespace: str | None = None,
                     query: Mapping[str, Any] | None = None, page_size: int = 500) -> tuple[list[T], str]:
        """`keep(item)` of every item that it does not map to None, page by page: only one page of full
        objects is in memory at a time (5,000 pods are about 300 MB as Python objects, their names 1 MB)."""
        kept: list[T] = []
        params = {**(query or {}), "limit": str(page_size)}
        while True:
            page = self.request("list", resource, namespace=namespace, query=params)
            kept += [k for k in map(keep, page.get("items") or []) if k is not None]
            meta = page.get("metadata") or {}
            token = meta.get("continue")
            if not token:
                return kept, str(meta.get("resourceVersion", ""))
            params = {**params, "continue": token}
            del page

    # -- plumbing ------------------------------------------------------------------------------------
    def _send(self, verb: Verb, method: str, resource: Resource, namespace: str | None, name: str | None,
              subresource: str | None, query: Mapping[str, Any] | None, body: Any, content_type: str, *,
              stream: bool, read_timeout: float | None = None) -> Any:
        with self._lock:
            self.requests[verb] += 1
        headers = {"Accept": "application/json", "Content-Type": content_type}
        params = self.api.param_serialize(
            method=method, resource_path=resource.path(namespace, name, subresource),
            query_params=list((query or {}).items()), header_params=headers,
            body=body, auth_settings=["BearerToken"])
        timeout = (5.0, read_timeout) if stream else self.request_timeout
        try:
            return self.api.call_api(*params, _request_timeout=timeout)
        except (urllib3.exceptions.HTTPError, OSError) as err:
            return _ConnectionFailure(err)

    def _retry_or_raise(self, verb: str, resource: Resource, namespace: str | None, name: str | None,
                        status: int, data: bytes, response: Any, attempt: int) -> None:
        what = self._what(resource, namespace, name)
        status_body = _status(data)
        reason, message = str(status_body.get("reason", "")), str(status_body.get("message", data[:200]))
        if status == 429:
            with self._lock:
                self.throttled += 1
        if status == 403 and QUOTA_EXCEEDED in message and attempt < self.quota_attempts:
            delay = min(self.max_backoff, 0.5 * 2 ** (attempt - 1)) * random.uniform(1.0, 1.2)  # noqa: S311
            log.warning("%s %s: a ResourceQuota has no room (%s); waiting %.1fs for room (attempt %d of %d)",
                        verb, what, message, delay, attempt, self.quota_attempts)
            time.sleep(delay)
            return
        if (status == 0 or status in RETRY_STATUSES) and attempt < self.max_attempts:
            delay = _retry_after(response) or min(self.max_backoff, 0.25 * 2 ** (attempt - 1))
            delay *= random.uniform(1.0, 1.2)  # noqa: S311 - jitter, not crypto
            log.warning("%s %s: %s; retrying in %.1fs (attempt %d of %d)", verb, what,
                        _describe_failure(status, data), delay, attempt, self.max_attempts)
            time.sleep(delay)
            return
        if status == 403 and _RBAC_DENIAL.search(message):
            raise Forbidden(status, reason, message, verb, what, resource.rule(verb))
        if status == 404:
            raise NotFound(status, reason, message, verb, what)
        if status == 409:
            raise Conflict(status, reason, message, verb, what)
        if status == 410:
            raise Gone(status, reason, message, verb, what)
        raise ApiError(status, reason or _describe_failure(status, data), message, verb, what)

    @staticmethod
    def _what(resource: Resource, namespace: str | None, name: str | None) -> str:
        what = resource.plural if not resource.group else f"{resource.plural}.{resource.group}"
        if name:
            what += f"/{name}"
        if namespace:
            what += f" in namespace {namespace}"
        return what


class _ConnectionFailure:
    """A request that never got an HTTP answer: retried like a 503."""

    status = 0

    def __init__(self, err: BaseException) -> None:
        self.err = err
        self.response = None

    def read(self) -> bytes:
        return f"connection failed: {self.err}".encode()


def _retry_after(response: Any) -> float | None:
    headers = getattr(response, "headers", None) or {}
    value = headers.get("Retry-After") if hasattr(headers, "get") else None
    try:
        return min(float(value), 60.0) if value is not None else None
    except ValueError:
        return None


def _status(data: bytes) -> JSON:
    try:
        parsed = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _describe_failure(status: int, data: bytes) -> str:
    if status == 0:
        return data.decode(errors="replace")
    return f"HTTP {status} {_status(data).get('reason', '')}".strip()
