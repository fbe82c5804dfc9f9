"""How the sweep reads node results from real API answers: start errors that pass and ones that do not,
reports that do not fit a termination message, and a watch that fails."""

from __future__ import annotations

import time
from typing import Any

import pytest
from emulator.kubelet import SimulatedKubelet
from simcluster import SimCluster, cluster_fixture  # noqa: F401 - provides the `cluster` fixture

from multus_cleanup.cluster import sweep, watchbackoff

NS = "kube-system"
CONFIG: dict[str, Any] = {"cluster": {"nodeTimeoutSeconds": 30, "stopTimeoutSeconds": 30,
                                      "startErrorGraceSeconds": 3}}


def statuses(summary: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {name: (node["status"], node.get("detail", "")) for name, node in summary["nodes"].items()}


def test_transient_start_errors_get_their_grace_and_definitive_ones_fail_at_once(
        cluster: SimCluster, kubelet: SimulatedKubelet) -> None:
    passes, stays, never, unknown = cluster.add_nodes(4, "thick")
    kubelet.behaviour(passes).start_error = ("ErrImagePull", "dial tcp 10.0.0.9:443: i/o timeout")
    kubelet.behaviour(passes).start_error_seconds = 1.5  # the registry answers again before the grace ends
    kubelet.behaviour(stays).start_error = ("CreateContainerError", "context deadline exceeded")
    kubelet.behaviour(never).start_error = ("ErrImageNeverPull", 'Container image "x" is not present with pull '
                                                                 "policy of Never")
    kubelet.behaviour(unknown).start_error = ("ErrImagePull", 'failed to resolve reference "reg/x:1": not found')

    started = time.monotonic()
    code, summary, log = cluster.orchestrate("run", CONFIG)
    took = time.monotonic() - started

    assert code == 1, log
    got = statuses(summary)
    assert got[passes] == ("clean", ""), log
    assert got[stays] == ("failed", "its cleanup pod cannot start: CreateContainerError: context deadline "
                                    "exceeded (for 3s)")
    assert got[never][0] == "failed" and "ErrImageNeverPull" in got[never][1] and "(for" not in got[never][1]
    assert got[unknown][0] == "failed" and "not found" in got[unknown][1] and "(for" not in got[unknown][1]
    assert "cannot start yet (ErrImagePull: dial tcp" in log and "the kubelet retries, waiting up to 3s" in log
    assert took < 20, f"the grace (3 s) ended the wait, not the node timeout (30 s): {took:.1f}s"


def test_a_report_larger_than_a_termination_message_still_parses(cluster: SimCluster,
                                                                 kubelet: SimulatedKubelet) -> None:
    names = cluster.add_nodes(2, "thick")
    extra = [f"/var/lib/cni/multus-leftovers/{'a' * 60}-{i:04d}.json" for i in range(120)]
    for name in names:  # the report names each file it found and removed: ~20 KiB of JSON
        for path in extra:
            target = cluster.roots[name] / path.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text("{}")
    config = {**CONFIG, "node": {"extraFiles": extra}}

    code, summary, log = cluster.orchestrate("run", config)

    assert code == 0, log
    assert {s for s, _ in statuses(summary).values()} == {"clean"}
    messages = [message for _pod, _node, _code, message in kubelet.runs]
    assert len(messages) == len(names)
    assert all(len(m.encode()) <= 4096 and '"truncated":true' in m for m in messages), messages
    assert cluster.server.log.count(verb="get", resource="pods") == 0  # the capped message sufficed
    for name in names:
        assert not any((cluster.roots[name] / p.lstrip("/")).exists() for p in extra)


def test_an_unparsable_termination_message_is_read_from_the_pod_log(cluster: SimCluster,
                                                                     kubelet: SimulatedKubelet) -> None:
    names = cluster.add_nodes(2, "thin")
    kubelet.termination_message_limit = 120  # keeps a tail that is no JSON document (an older node command)

    code, summary, log = cluster.orchestrate("run", CONFIG)

    assert code == 0, log
    assert {s for s, _ in statuses(summary).values()} == {"clean"}
    assert all(cluster.restored(n) for n in names)
    assert cluster.server.log.count(verb="get", resource="pods") == len(names)  # GET pods/log, once a node
    assert "read its report from the pod's log" in log


def test_watch_errors_are_retried_with_backoff(cluster: SimCluster, kubelet: SimulatedKubelet) -> None:
    names = cluster.add_nodes(3, "thick")
    faults = cluster.server.faults
    faults.fail(400, count=2, verb="watch", resource="pods", namespace=NS, message="watch broke")
    faults.fail(503, count=1, verb="watch", resource="pods", namespace=NS)

    code, summary, log = cluster.orchestrate("run", CONFIG)

    assert code == 0, log
    assert {s for s, _ in statuses(summary).values()} == {"clean"}
    assert all(cluster.restored(n) for n in names)
    assert log.count("watching cleanup pods failed") == 2 and "watching again in" in log


def test_a_watch_that_keeps_failing_ends_the_run_with_its_error(cluster: SimCluster,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    cluster.add_nodes(2, "thick")
    monkeypatch.setattr(watchbackoff, "WATCH_GIVE_UP_SECONDS", 2.0)
    cluster.server.faults.fail(400, count=None, verb="watch", resource="pods", namespace=NS,
                               message="the watch cache is broken")

    started = time.monotonic()
    code, _summary, log = cluster.orchestrate("run", CONFIG)

    assert code == 1
    assert "the watch on the cleanup pods in namespace kube-system kept failing for 2s" in log, log
    assert "the watch cache is broken" in log
    assert time.monotonic() - started < 25, "the run waited for the node timeout instead"
    assert cluster.pods(NS, "app.kubernetes.io/component=node-cleanup") == [], "node pods left behind"


def test_a_watch_thread_that_crashes_ends_the_run_with_the_real_error(cluster: SimCluster,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    cluster.add_nodes(2, "thick")

    def broken(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError("unexpected event shape")
        yield  # a generator, like Kube.watch

    monkeypatch.setattr(sweep.Kube, "watch", broken)
    started = time.monotonic()
    code, _summary, log = cluster.orchestrate("run", CONFIG)

    assert code == 1
    assert "the watch on the cleanup pods in namespace kube-system failed: RuntimeError('unexpected event shape')" \
        in log, log
    assert time.monotonic() - started < 25


