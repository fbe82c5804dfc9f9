"""`multus-cleanup run` at scale: the real orchestrator (the console script, in a subprocess, so its wall
time, CPU time and peak RSS are its own) against the API emulator and the simulated kubelet (in this
process). Node pods do no filesystem work: the kubelet answers each with a small clean report after a
configurable delay."""

from __future__ import annotations

import itertools
import json
import os
import resource
import subprocess
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .common import CONSOLE_SCRIPT, PEAK_ENV, VENV_BIN, exponent, shim_argv, table, use_test_helpers

use_test_helpers()

from emulator import EmulatedApiServer  # noqa: E402
from emulator.kubelet import SimulatedKubelet  # noqa: E402
from emulator.objects import add_nodes, make_daemonset  # noqa: E402

from multus_cleanup.report import NodeReport  # noqa: E402

NAMESPACE = "kube-system"
VERBS = ("get", "list", "watch", "create", "patch", "delete", "deletecollection")


@dataclass
class ClusterResult:
    nodes: int
    concurrency: int
    delay: float
    exit_code: int
    wall: float  # spawn to exit of the orchestrator process
    startup: float  # spawn to its first API request (interpreter, imports, config, kubeconfig)
    stop_phase: float  # first request to first node-pod create (list nodes, stop Multus, wait for its pods)
    sweep: float  # first node-pod create to the deletecollection
    tail: float  # deletecollection to exit (summary)
    ideal_node_time: float  # what the simulated node delay alone costs: ceil(N / concurrency) * delay
    cpu_user: float
    cpu_sys: float
    peak_rss_mb: float
    emulator_cpu: float  # this process (API emulator + simulated kubelet) during the run
    requests: dict[str, int] = field(default_factory=dict)  # by RBAC verb, from the emulator's request log
    summary_requests: dict[str, int] = field(default_factory=dict)  # the orchestrator's own count
    clean: int = 0

    @property
    def cpu(self) -> float:
        return self.cpu_user + self.cpu_sys

    @property
    def overhead(self) -> float:
        """Wall time minus what the simulated nodes' delay alone would take."""
        return self.wall - self.ideal_node_time

    @property
    def total_requests(self) -> int:
        return sum(self.requests.values())


def _clean_report(pod: dict[str, Any], node: str) -> tuple[int, str]:
    report = NodeReport(node=node, host_root="/host", clean=True, primary_config="/etc/cni/net.d/10-x.conflist")
    return 0, report.to_termination_message()


def run_size(nodes: int, *, concurrency: int, delay: float, workdir: Path, profile: Path | None = None,
             kubelet_workers: int = 16) -> ClusterResult:
    server = EmulatedApiServer().start()
    kubelet = SimulatedKubelet(server.store, run_pod=_clean_report, termination_delay=0.0,
                               workers=kubelet_workers).start()
    try:
        store = server.store
        names = add_nodes(store, nodes)
        store.create(store.rt("daemonsets", "apps"), NAMESPACE, make_daemonset("kube-multus-ds", NAMESPACE))
        if not kubelet.wait_idle(timeout=300):
            raise RuntimeError("the simulated kubelet did not settle")
        for name in names:
            kubelet.behaviour(name).delay = delay
        job = store.create(store.rt("jobs", "batch"), NAMESPACE, {
            "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "multus-cleanup", "namespace": NAMESPACE},
            "spec": {"template": {"spec": {"restartPolicy": "Never",
                                           "containers": [{"name": "cleanup", "image": "multus-cleanup"}]}}}})
        kubeconfig = workdir / "kubeconfig"
        kubeconfig.write_text(yaml.safe_dump(server.kubeconfig()))
        config = workdir / "config.yaml"
        config.write_text(yaml.safe_dump({"cluster": {
            "concurrency": concurrency, "nodeTimeoutSeconds": 120, "stopTimeoutSeconds": 300,
            "deadlineSeconds": 3600}}))
        peak_file = workdir / "peak-rss-kb"
        peak_file.unlink(missing_ok=True)
        env = {**os.environ, "MULTUS_CLEANUP_JOB_NAME": "multus-cleanup",
               "MULTUS_CLEANUP_JOB_UID": job["metadata"]["uid"], PEAK_ENV: str(peak_file)}
        args = ["run", "--kubeconfig", str(kubeconfig), "--config", str(config), "--output", "json"]
        argv = shim_argv(*args)
        if profile is not None:  # sampled, every thread: py-spy's collapsed stacks (flamegraph.pl input)
            argv = [str(VENV_BIN / "py-spy"), "record", "--rate", "100", "--format", "raw", "--nonblocking", "--gil",
                    "--output", str(profile), "--", str(CONSOLE_SCRIPT), *args]
        server.log.clear()
        out_path, err_path = workdir / f"stdout-{nodes}.json", workdir / f"stderr-{nodes}.log"
        before = resource.getrusage(resource.RUSAGE_SELF)
        with out_path.open("wb") as out, err_path.open("wb") as err:
            start = time.monotonic()
            proc = subprocess.Popen(argv, stdout=out, stderr=err, env=env)
            _, status, usage = os.wait4(proc.pid, 0)
            end = time.monotonic()
            proc.returncode = os.waitstatus_to_exitcode(status)
        after = resource.getrusage(resource.RUSAGE_SELF)
        records = server.log.records()
    finally:
        kubelet.stop()
        server.stop()
    text = out_path.read_text()
    summary = json.loads(text[text.find("{"):] or "{}")  # py-spy prints a line of its own first
    peak_kb = int(peak_file.read_text()) if peak_file.exists() else usage.ru_maxrss  # ru_maxrss: an upper bound
    if proc.returncode != 0 or not summary.get("success"):
        raise RuntimeError(f"{nodes} nodes: exit {proc.returncode}; see {err_path}\n"
                           + err_path.read_text()[-3000:])
    creates = [r.at for r in records if r.verb == "create" and r.resource == "pods"]
    collection = [r.at for r in records if r.verb == "deletecollection"]
    first, first_create = records[0].at, min(creates)
    last_collection = collection[-1]
    return ClusterResult(
        nodes=nodes, concurrency=concurrency, delay=delay, exit_code=proc.returncode,
        wall=end - start, startup=first - start, stop_phase=first_create - first,
        sweep=last_collection - first_create, tail=end - last_collection,
        ideal_node_time=-(-nodes // concurrency) * delay,
        cpu_user=usage.ru_utime, cpu_sys=usage.ru_stime, peak_rss_mb=peak_kb / 1024,
        emulator_cpu=(after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime),
        requests=dict(Counter(r.verb for r in records)), summary_requests=summary.get("api_requests", {}),
        clean=sum(1 for n in summary["nodes"].values() if n["status"] == "clean"))


def run(sizes: list[int], *, concurrency: int, delay: float, profile_dir: Path | None = None,
        log: Any = print) -> list[ClusterResult]:
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-cluster-") as tmp:
        for nodes in sizes:
            profile = profile_dir / f"orchestrator-{nodes}.collapsed" if profile_dir else None
            result = run_size(nodes, concurrency=concurrency, delay=delay, workdir=Path(tmp), profile=profile)
            log(f"  {nodes:>5} nodes: {result.wall:6.2f} s wall, {result.cpu:6.2f} s CPU, "
                f"{result.peak_rss_mb:5.0f} MB peak RSS, {result.total_requests} requests")
            results.append(result)
    return results


def report(results: list[ClusterResult]) -> str:
    rows = []
    for r in results:
        per_node = (r.total_requests) / r.nodes
        verbs = ", ".join(f"{r.requests[v]} {v}" for v in VERBS if r.requests.get(v))
        rows.append([f"{r.nodes:,}", f"{r.overhead:.2f}", f"{r.startup:.2f}", f"{r.stop_phase:.2f}",
                     f"{r.sweep:.2f}", f"{r.tail:.2f}", f"{r.cpu:.2f}", f"{r.emulator_cpu:.2f}",
                     f"{r.peak_rss_mb:.0f}", f"{r.total_requests:,}", f"{per_node:.2f}", verbs])
    text = table(["nodes", "overhead s", "startup s", "stop s", "sweep s", "tail s", "orch CPU s",
                  "emul CPU s", "peak RSS MB", "requests", "req/node", "by verb"], rows)
    if len(results) >= 2:
        big = [r for r in results if r.nodes >= 100] or results
        small = [r for r in results if r.nodes < 100] or results[:1]
        lines = ["", "growth: fitted exponent k of value ~ nodes^k over sizes >= 100 (1.0 = linear); 'k above "
                 "constant' fits value minus its smallest value below 100 nodes (start-up and other fixed "
                 "costs), the part that grows with nodes:"]
        for label, get in (("overhead", lambda r: r.overhead), ("sweep", lambda r: r.sweep),
                           ("orchestrator CPU", lambda r: r.cpu), ("requests", lambda r: float(r.total_requests)),
                           ("peak RSS", lambda r: r.peak_rss_mb)):
            sizes = [r.nodes for r in big]
            whole = exponent(sizes, [get(r) for r in big])
            floor = min(get(r) for r in small)
            above = exponent(sizes, [get(r) - floor for r in big])
            lines.append(f"  {label:<17} k = {whole:.2f}   k above constant = {above:.2f}")
        ratios = []
        for a, b in itertools.pairwise(results):
            if a.nodes == b.nodes:
                continue
            ratios.append(f"  {a.nodes:>5} -> {b.nodes:<5} (x{b.nodes / a.nodes:g}): "
                          f"overhead x{b.overhead / a.overhead:.1f}, "
                          f"CPU x{b.cpu / a.cpu:.1f}, requests x{b.total_requests / a.total_requests:.1f}, "
                          f"RSS x{b.peak_rss_mb / a.peak_rss_mb:.2f}")
        marginal = _marginal(results)
        lines += ["ratios between sizes:", *ratios, *marginal]
        text += "\n" + "\n".join(lines)
    return text


def _marginal(results: list[ClusterResult]) -> list[str]:
    """Cost of one more node, from the two largest sizes (the constant part cancels)."""
    if len(results) < 2:
        return []
    a, b = results[-2], results[-1]
    dn = b.nodes - a.nodes
    if dn <= 0:
        return []
    return [f"per additional node ({a.nodes:,} -> {b.nodes:,}): "
            f"{(b.overhead - a.overhead) / dn * 1000:.2f} ms wall, {(b.cpu - a.cpu) / dn * 1000:.2f} ms orchestrator "
            f"CPU, {(b.total_requests - a.total_requests) / dn:.3f} requests, "
            f"{(b.peak_rss_mb - a.peak_rss_mb) / dn * 1024:.1f} KB RSS"]


def to_json(results: list[ClusterResult]) -> list[dict[str, Any]]:
    return [{**asdict(r), "overhead": r.overhead, "cpu": r.cpu, "total_requests": r.total_requests}
            for r in results]


def scaling_report(results: list[ClusterResult]) -> str:
    rows = [[str(r.concurrency), f"{r.wall:.2f}", f"{r.ideal_node_time:.2f}", f"{r.overhead:.2f}",
             f"{r.nodes / r.wall:.0f}", f"{r.cpu:.2f}", f"{r.peak_rss_mb:.0f}", f"{r.total_requests:,}"]
            for r in results]
    return table(["concurrency", "wall s", "ideal s", "overhead s", "nodes/s", "orch CPU s", "peak RSS MB",
                  "requests"], rows)
