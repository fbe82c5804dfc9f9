"""Fault injection: rules matched against each request before it reaches the emulated state.

A matching rule answers instead of the emulator (so a 403/409/500 never mutates anything), or, for
watches, lets the watch start and then breaks it. Rules match on any mix of HTTP method, a path
regular expression (``re.fullmatch``), and the RBAC attributes of the request; ``count`` limits how
many requests a rule answers (``None`` = every matching request).
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from typing import Any

from .requestlog import RequestRecord
from .store import ApiError

DEFAULT_USER = "system:serviceaccount:default:default"


@dataclass
class FaultRule:
    status: int | None = None  # an HTTP error status to answer with (None for watch-only faults)
    watch: str | None = None  # "close" | "reset" | "gone": break a watch after `after_events` events
    latency: float = 0.0  # seconds to wait before answering (alone: then serve the request normally)
    reset: bool = False  # cut the connection without any answer (after `latency`), nothing is changed
    after_events: int = 0
    method: str | None = None
    path: str | re.Pattern[str] | None = None
    verb: str | None = None
    api_group: str | None = None
    resource: str | None = None
    subresource: str | None = None
    namespace: str | None = None
    name: str | None = None
    dry_run: bool | None = None  # match only dry-run requests (True) or only real ones (False)
    count: int | None = 1
    message: str | None = None
    retry_after: int = 1
    user: str = DEFAULT_USER
    hits: int = 0
    label: str = ""
    _pattern: re.Pattern[str] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.path is not None:
            self._pattern = self.path if isinstance(self.path, re.Pattern) else re.compile(self.path)
        if self.status is None and self.watch is None and not self.latency and not self.reset:
            raise ValueError("a fault rule needs a status, a watch behaviour, a latency or reset")
        if self.watch not in (None, "close", "reset", "gone"):
            raise ValueError(f"unknown watch fault: {self.watch!r}")
        if not self.label:
            self.label = str(self.status or self.watch or ("reset" if self.reset else f"latency {self.latency}s"))

    @property
    def exhausted(self) -> bool:
        return self.count is not None and self.hits >= self.count

    def matches(self, record: RequestRecord) -> bool:
        if self.watch is not None and record.verb != "watch":
            return False
        checks: list[tuple[Any, Any]] = [
            (self.verb, record.verb), (self.api_group, record.api_group),
            (self.resource, record.resource), (self.subresource, record.subresource),
            (self.namespace, record.namespace), (self.name, record.name),
        ]
        if any(want is not None and want != got for want, got in checks):
            return False
        if self.dry_run is not None and self.dry_run != bool(record.query.get("dryRun")):
            return False
        if self.method is not None and self.method.upper() != record.method:
            return False
        return self._pattern is None or self._pattern.fullmatch(record.path) is not None

    def error(self, record: RequestRecord) -> ApiError:
        """The Status the real API server sends for this kind of failure."""
        res = record.full_resource or record.path
        group = record.api_group or ""
        details: dict[str, Any] = {"kind": record.resource or ""}
        if record.name:
            details["name"] = record.name
        if group:
            details["group"] = group
        qualified = f"{record.resource}.{group}" if group else (record.resource or "")
        status = self.status or 500
        if status == 403:
            subject = f'{qualified} "{record.name}"' if record.name else qualified
            scope = f'in the namespace "{record.namespace}"' if record.namespace else "at the cluster scope"
            if record.resource is None:
                msg = f'forbidden: User "{self.user}" cannot {record.verb} path "{record.path}"'
            else:
                msg = (f'{subject} is forbidden: User "{self.user}" cannot {record.verb} resource "{res}" '
                       f'in API group "{group}" {scope}')
            return ApiError(403, "Forbidden", self.message or msg, details)
        if status == 429:
            return ApiError(429, "TooManyRequests", self.message or "Too many requests, please try again later.",
                            dict(details, retryAfterSeconds=self.retry_after),
                            headers={"Retry-After": str(self.retry_after)})
        if status == 409:
            msg = (f'Operation cannot be fulfilled on {qualified} "{record.name or ""}": the object has been '
                   "modified; please apply your changes to the latest version and try again")
            return ApiError(409, "Conflict", self.message or msg, details)
        if status == 404:
            return ApiError(404, "NotFound", self.message or f'{qualified} "{record.name or ""}" not found', details)
        if status == 410:
            return ApiError(410, "Expired", self.message or "too old resource version: 1 (2)", details)
        if status == 503:
            return ApiError(503, "ServiceUnavailable", self.message or "the server is currently unable to handle "
                            "the request", details, headers={"Retry-After": str(self.retry_after)})
        if status == 504:
            return ApiError(504, "Timeout", self.message or "the server was unable to return a response in the "
                            "time allotted, but may still be processing the request", details)
        return ApiError(status, "InternalError", self.message or "Internal error occurred: injected fault", details)


class Faults:
    """The rule set (thread-safe). The first matching, non-exhausted rule wins."""

    def __init__(self, user: str = DEFAULT_USER) -> None:
        self.user = user
        self._rules: list[FaultRule] = []
        self._lock = threading.Lock()

    def add(self, rule: FaultRule) -> FaultRule:
        with self._lock:
            self._rules.append(rule)
        return rule

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    @property
    def rules(self) -> list[FaultRule]:
        with self._lock:
            return list(self._rules)

    def take(self, record: RequestRecord) -> FaultRule | None:
        """The rule that answers this request (its hit is counted), if any."""
        if not self._rules:
            return None
        with self._lock:
            for rule in self._rules:
                if not rule.exhausted and rule.matches(record):
                    rule.hits += 1
                    return rule
        return None

    # Conveniences. `where` takes FaultRule's matching fields: method, path, verb, api_group, resource,
    # subresource, namespace, name.
    def fail(self, status: int, *, count: int | None = 1, message: str | None = None, **where: Any) -> FaultRule:
        return self.add(FaultRule(status=status, count=count, message=message, **where))

    def throttle(self, *, count: int | None = 1, retry_after: int = 1, **where: Any) -> FaultRule:
        return self.add(FaultRule(status=429, count=count, retry_after=retry_after, **where))

    def conflict(self, *, count: int | None = 1, **where: Any) -> FaultRule:
        return self.add(FaultRule(status=409, count=count, **where))

    def forbid(self, *, count: int | None = None, user: str | None = None, **where: Any) -> FaultRule:
        return self.add(FaultRule(status=403, count=count, user=user or self.user, **where))

    def slow(self, seconds: float, *, count: int | None = 1, **where: Any) -> FaultRule:
        """Answer normally, but only after `seconds` (for client read timeouts)."""
        return self.add(FaultRule(latency=seconds, count=count, **where))

    def reset_connection(self, *, count: int | None = 1, **where: Any) -> FaultRule:
        """Close the TCP connection without answering; the request is not served."""
        return self.add(FaultRule(reset=True, count=count, **where))

    def drop_watch(self, after_events: int = 0, *, reset: bool = False, count: int | None = 1,
                   **where: Any) -> FaultRule:
        """End a watch after N events: cleanly (as an API server timeout does) or by cutting the connection."""
        return self.add(FaultRule(watch="reset" if reset else "close", after_events=after_events, count=count,
                                  **where))

    def expire_watch(self, after_events: int = 0, *, count: int | None = 1, **where: Any) -> FaultRule:
        """After N events, send an ERROR event with a 410 "too old resource version" Status and end the watch."""
        return self.add(FaultRule(watch="gone", after_events=after_events, count=count, **where))
