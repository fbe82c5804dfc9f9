"""The orchestrator against an API server that misbehaves the way real ones do."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml
from emulator.kubelet import SimulatedKubelet
from simcluster import SimCluster, cluster_fixture  # noqa: F401 - provides the `cluster` fixture

NS = "kube-system"
CONFIG: dict[str, Any] = {"cluster": {"nodeTimeoutSeconds": 30, "stopTimeoutSeconds": 30}}


def test_500_and_429_with_retry_after_are_retried(cluster: SimCluster) -> None:
    names = cluster.add_nodes(4, "thick")
    faults = cluster.server.faults
    faults.fail(500, count=2, verb="create", resource="pods", dry_run=False)
    faults.throttle(count=1, retry_after=1, verb="list", resource="nodes")

    started = time.monotonic()
    code, summary, log = cluster.orchestrate("run", CONFIG)

    assert code == 0, log
    assert all(cluster.restored(n) for n in names)
    assert "HTTP 429" in log and "retrying in 1." in log and "HTTP 500" in log
    assert time.monotonic() - started >= 1.0  # Retry-After was honoured
    assert cluster.server.log.count(verb="create", resource="pods") == 1 + len(names) + 2  # the dry run first
    events = cluster.server.log.count(verb="create", resource="events")  # progress and result on the Job
    assert summary["api_requests"]["create"] == 1 + len(names) + 2 + events


def test_409_on_create_is_checked_and_the_pod_created(cluster: SimCluster) -> None:
    names = cluster.add_nodes(2, "thin")
    cluster.server.faults.conflict(count=1, verb="create", resource="pods", dry_run=False)

    code, _summary, log = cluster.orchestrate("run", CONFIG)

    assert code == 0, log
    assert all(cluster.restored(n) for n in names)
    # the dry run, one create per node, one create again
    assert cluster.server.log.count(verb="create", resource="pods") == 1 + len(names) + 1


def test_dropped_and_expired_watches_are_resumed(cluster: SimCluster, kubelet: SimulatedKubelet) -> None:
    names = cluster.add_nodes(6, "thick")
    for name in names:
        kubelet.behaviour(name).delay = 0.2
    faults = cluster.server.faults
    faults.drop_watch(after_events=1, reset=True, count=1, resource="pods", namespace=NS)
    faults.expire_watch(after_events=2, count=1, resource="pods", namespace=NS)

    code, summary, log = cluster.orchestrate("run", CONFIG)

    assert code == 0, log
    assert {s["status"] for s in summary["nodes"].values()} == {"clean"}
    assert all(cluster.restored(n) for n in names)
    assert cluster.server.log.count(verb="watch", resource="pods") >= 3


def test_403_names_the_missing_permission_and_changes_no_node(cluster: SimCluster) -> None:
    names = cluster.add_nodes(2, "thick")
    cluster.server.faults.forbid(verb="create", resource="pods")

    code, _summary, log = cluster.orchestrate("run", CONFIG)

    assert code == 1
    assert ("permission denied: the cleanup's ServiceAccount may not create pods in namespace kube-system"
            in log)
    assert 'Grant it `{apiGroups: [""], resources: [pods], verbs: [create]}`' in log
    assert not any(cluster.restored(n) for n in names)
    assert cluster.pods(NS, "app.kubernetes.io/component=node-cleanup") == []


def test_killed_midway_then_rerun_finishes(cluster: SimCluster, kubelet: SimulatedKubelet, tmp_path: Path) -> None:
    names = cluster.add_nodes(12, "thick")
    cluster.add_multus_daemonset()
    kubelet.wait_idle()
    for name in names:
        kubelet.behaviour(name).delay = 0.3
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"cluster": {"concurrency": 3, "nodeTimeoutSeconds": 30}}))
    script = Path(sys.executable).with_name("multus-cleanup")
    first = subprocess.Popen([str(script), "run", "--kubeconfig", str(cluster.kubeconfig), "--config", str(config)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             env={k: v for k, v in os.environ.items() if not k.startswith("MULTUS_CLEANUP_JOB")})
    deadline = time.monotonic() + 30
    while cluster.server.log.count(verb="create", resource="pods") < 4 and time.monotonic() < deadline:
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)
    first.wait()
    done_before = sum(cluster.restored(n) for n in names)
    assert done_before < len(names)  # it really was killed midway

    code, summary, log = cluster.orchestrate("run", {"cluster": {"concurrency": 3, "nodeTimeoutSeconds": 30}})

    assert code == 0, log
    assert all(cluster.restored(n) for n in names)
    assert cluster.pods(NS, "app.kubernetes.io/component=node-cleanup") == []  # the first run's pods too
    assert summary["success"] is True


def test_sigterm_ends_the_run_with_its_summary_and_without_its_node_pods(cluster: SimCluster,
                                                                        kubelet: SimulatedKubelet,
                                                                        tmp_path: Path) -> None:
    """As at the hook Job's deadline: the kubelet sends SIGTERM to PID 1 and kills it after the grace period."""
    names = cluster.add_nodes(4, "thick")
    cluster.add_multus_daemonset()
    kubelet.wait_idle()
    kubelet.behaviour(names[-1]).hang = True  # one node never reports
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"cluster": {"nodeTimeoutSeconds": 120}}))
    script = Path(sys.executable).with_name("multus-cleanup")
    run = subprocess.Popen([str(script), "run", "--kubeconfig", str(cluster.kubeconfig), "--config", str(config)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while sum(cluster.restored(n) for n in names[:-1]) < len(names) - 1 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert cluster.pods(NS, "app.kubernetes.io/component=node-cleanup"), "the hanging node's pod is not there"
    run.send_signal(signal.SIGTERM)
    stopped = time.monotonic()
    out, err = run.communicate(timeout=25)
    assert time.monotonic() - stopped < 10, "the run took longer than a kubelet's grace period allows"
    assert run.returncode == 1, err
    assert "the cleanup was stopped (SIGTERM" in out, out
    # the nodes whose results it had read count as clean (how many it read before the signal is a race)
    clean = re.search(rf"with (\d) of {len(names)} node\(s\) clean", out)
    assert clean is not None and int(clean.group(1)) <= len(names) - 1, out  # 0 when the signal came first
    assert f"{names[-1]}: unreachable: not cleaned: the cleanup was stopped (SIGTERM)" in out, out
    assert "result: FAILED" in out
    assert cluster.pods(NS, "app.kubernetes.io/component=node-cleanup") == []  # its node pods went with it
