"""Why a node's cleanup pod never reported, in the words Kubernetes already wrote about it: the Warning Events
of that one pod (`FailedMount` from the kubelet, `FailedScheduling`, `FailedCreatePodSandBox`, `Failed` image
pulls, ...). A node that times out then reads `no report within 120s: FailedMount: MountVolume.SetUp failed
for volume "cni-bin" ...` instead of a bare timeout.

One list of Events by field selector per stuck pod (never per node of a healthy run); RBAC: `list events` in
the release namespace. Like the Job's Events, this is a report, never a step: any API error gives "" and the
caller keeps its own message."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import UTC, datetime

from .events import EVENTS
from .kube import JSON, ApiError, Kube

log = logging.getLogger(__name__)

MAX_CHARS = 300  # the whole sentence: it ends up in a node's line of the summary and in an Event
MAX_MESSAGE = 200  # one event's message, so that one long sandbox error leaves room for another reason
_EPOCH = datetime.min.replace(tzinfo=UTC)


def why_stuck(kube: Kube, namespace: str, pod_name: str) -> str:
    """The latest Warning Events of pod `namespace/pod_name` as one short sentence, latest first, each reason
    and message once, at most MAX_CHARS: `FailedMount: MountVolume.SetUp failed for volume "cni-bin" : ...`.
    "" when there are none, or when they cannot be read (any API error, a 403 included: logged at debug)."""
    query = {"fieldSelector": f"involvedObject.kind=Pod,involvedObject.name={pod_name}"}
    try:
        items, _ = kube.list_all(EVENTS, namespace=namespace, query=query)
    except ApiError as err:
        log.debug("cannot read the events of pod %s/%s (%s)", namespace, pod_name, err)
        return ""
    return describe_warnings(items)


def describe_warnings(events: Iterable[JSON]) -> str:
    """The sentence why_stuck returns, from Event objects (core/v1, as `kubectl get events` lists them)."""
    warnings = sorted((e for e in events if e.get("type") == "Warning"), key=_last_seen, reverse=True)
    parts: list[str] = []
    seen: set[tuple[str, str]] = set()
    for event in warnings:
        reason = str(event.get("reason") or "Warning")
        message = " ".join(str(event.get("message") or "").split())  # one line: runtimes' errors hold newlines
        if (reason, message) in seen:
            continue
        seen.add((reason, message))
        parts.append(f"{reason}: {_shorten(message, MAX_MESSAGE)}" if message else reason)
    return _shorten("; ".join(parts), MAX_CHARS)


def _last_seen(event: JSON) -> tuple[datetime, int]:
    """When the event last happened: series.lastObservedTime (events.k8s.io), lastTimestamp (core/v1),
    eventTime, firstTimestamp, its creation; then its resourceVersion, for events of the same second."""
    series = event.get("series") or {}
    meta = event.get("metadata") or {}
    stamp = _parse(series.get("lastObservedTime")) or _parse(event.get("lastTimestamp")) \
        or _parse(event.get("eventTime")) or _parse(event.get("firstTimestamp")) \
        or _parse(meta.get("creationTimestamp")) or _EPOCH
    version = str(meta.get("resourceVersion") or "")
    return stamp, int(version) if version.isdigit() else 0


def _parse(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 3].rstrip() + "..."
