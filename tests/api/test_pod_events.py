"""why_stuck over real HTTP: the Warning Events of one node pod, as the API server lists them by field
selector, turned into the sentence a node's failure line carries; any API error gives ""."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import kubernetes.client
import pytest
from emulator import EmulatedApiServer

from multus_cleanup.cluster.kube import Kube
from multus_cleanup.cluster.podevents import MAX_CHARS, why_stuck

NS = "kube-system"
POD = "multus-cleanup-abcde-worker-1-0"
MOUNT = ('MountVolume.SetUp failed for volume "cni-bin" : hostPath type check failed: /opt/cni/bin is not a '
         'directory')


@pytest.fixture
def kube(api_client: kubernetes.client.ApiClient) -> Iterator[Kube]:
    yield Kube(api_client, max_attempts=2, max_backoff=0.05)


def add_event(server: EmulatedApiServer, name: str, *, pod: str = POD, kind: str = "Pod", type_: str = "Warning",
              reason: str, message: str, last: str = "", **extra: Any) -> None:
    store = server.store
    store.create(store.rt("events"), NS, {
        "apiVersion": "v1", "kind": "Event", "metadata": {"name": name, "namespace": NS},
        "involvedObject": {"apiVersion": "v1", "kind": kind, "name": pod, "namespace": NS},
        "type": type_, "reason": reason, "message": message, "source": {"component": "kubelet"},
        **({"lastTimestamp": last, "firstTimestamp": last} if last else {}), **extra})


def test_the_latest_warnings_of_that_pod_once_each(api_server: EmulatedApiServer, kube: Kube) -> None:
    add_event(api_server, "a", reason="Scheduled", type_="Normal", message="Successfully assigned",
              last="2026-01-01T10:00:00Z")
    add_event(api_server, "b", reason="FailedMount", message=MOUNT, last="2026-01-01T10:00:02Z", count=1)
    add_event(api_server, "c", reason="FailedMount", message=MOUNT, last="2026-01-01T10:02:10Z", count=6)
    add_event(api_server, "d", reason="FailedCreatePodSandBox", last="2026-01-01T10:01:00Z",
              message="Failed to create pod sandbox: rpc error: code = Unknown desc = failed to setup network\n"
                      'for sandbox "0123": plugin type="multus-shim" failed (add): connection refused')
    # another pod's event, and an event of an object of another kind with the same name: not this pod's
    add_event(api_server, "e", pod="multus-cleanup-abcde-control-plane-0", reason="FailedMount", message="other")
    add_event(api_server, "f", kind="Job", reason="BackoffLimitExceeded", message="not the pod")
    api_server.log.clear()

    said = why_stuck(kube, NS, POD)

    assert said == (f"FailedMount: {MOUNT}; FailedCreatePodSandBox: Failed to create pod sandbox: rpc error: "
                    'code = Unknown desc = failed to setup network for sandbox "0123": plugin type="multus-shim" '
                    "failed (add): connection refused")[:MAX_CHARS - 3].rstrip() + "..."
    assert len(said) <= MAX_CHARS
    (request,) = [r for r in api_server.log.records() if r.resource_request]
    assert (request.verb, request.resource, request.namespace) == ("list", "events", NS)
    assert request.query["fieldSelector"] == f"involvedObject.kind=Pod,involvedObject.name={POD}"


def test_events_k8s_io_style_events_order_by_their_series(api_server: EmulatedApiServer, kube: Kube) -> None:
    """The scheduler writes events.k8s.io Events: no lastTimestamp, an eventTime and a series."""
    add_event(api_server, "a", reason="FailedScheduling", reportingComponent="default-scheduler",
              message="0/3 nodes are available: 1 node(s) had untolerated taint.",
              eventTime="2026-01-01T10:00:00.100000Z",
              series={"count": 4, "lastObservedTime": "2026-01-01T10:05:00.5Z"})
    add_event(api_server, "b", reason="Failed", message='Failed to pull image "x": not found',
              last="2026-01-01T10:04:59Z")

    assert why_stuck(kube, NS, POD) == ("FailedScheduling: 0/3 nodes are available: 1 node(s) had untolerated "
                                        'taint.; Failed: Failed to pull image "x": not found')


def test_no_warning_is_an_empty_answer(api_server: EmulatedApiServer, kube: Kube) -> None:
    add_event(api_server, "a", reason="Pulled", type_="Normal", message="Container image already present")
    assert why_stuck(kube, NS, POD) == ""
    assert why_stuck(kube, NS, "no-such-pod") == ""


@pytest.mark.parametrize("status", [403, 500, 404])
def test_an_api_error_is_an_empty_answer_logged_at_debug(api_server: EmulatedApiServer, kube: Kube, status: int,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    add_event(api_server, "a", reason="FailedMount", message=MOUNT)
    if status == 403:
        api_server.faults.forbid(verb="list", resource="events")
    else:
        api_server.faults.fail(status, count=None, verb="list", resource="events")
    with caplog.at_level(logging.DEBUG, logger="multus_cleanup.cluster.podevents"):
        assert why_stuck(kube, NS, POD) == ""
    (record,) = [r for r in caplog.records if r.name == "multus_cleanup.cluster.podevents"]
    assert record.levelno == logging.DEBUG and f"cannot read the events of pod {NS}/{POD}" in record.getMessage()
