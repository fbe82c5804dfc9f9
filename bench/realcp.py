"""`multus-cleanup run` against a real control plane: `python -m bench --real-control-plane`.

Per size, a fresh devcluster control plane (etcd, kube-apiserver, kube-controller-manager with its default
flags: client QPS 20, burst 30, node-monitor-grace-period 50 s; kube-scheduler) and:

1. the fake nodes of `bench/fakenodes.py` (a process next to the API server, in the hub namespace): N Ready
   Nodes with Leases renewed every `lease_interval` seconds, Multus pods marked Running, cleanup pods run for
   `pod_seconds` and answered with a real clean report, deleted pods removed with a zero-grace delete;
2. the chart rendered with its default values (`helm template multus chart -n kube-system --no-hooks`:
   the thick Multus DaemonSet, its ServiceAccount, RBAC and ConfigMaps, the cleanup's ConfigMap): the real
   DaemonSet controller creates one Multus pod per fake node and the real scheduler binds it; the run
   starts once all N are Running;
3. the hook: a suspended Job stands for the hook Job (the node pods' owner, so the garbage collector keeps
   them; suspended, so no pod of its own), and the real orchestrator runs as a subprocess in the hub
   namespace, exactly as the Job's container does: `multus-cleanup run --kubeconfig <hub kubeconfig>
   --config <the cleanup ConfigMap's config.yaml> --output json`.

Measured per run: wall time from spawning the orchestrator to its exit; its log lines, time-stamped as they
arrive (stop: the DaemonSet patch, "Stopping Multus", to "All Multus pods ... are gone"); the DaemonSet
controller's deletion time and rate from the fake nodes' view (the patch to the last Multus pod gone); the
orchestrator's API requests (its summary) and peak RSS (VmHWM); CPU seconds of every process of the
control plane, the fake nodes and the orchestrator, sampled every 0.5 s from /proc/PID/stat, and how busy
the whole machine was (/proc/stat).

devcluster's `--nodes 0` still starts one real node (`control-plane`: kubelet, kube-proxy, containerd);
its kubelet would get a Multus pod and a cleanup pod whose images no registry serves, so the bench stops
those three processes and deletes the Node before the fake nodes come.
"""

from __future__ import annotations

import bisect
import contextlib
import json
import os
import signal
import subprocess
import tempfile
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

import devcluster.cluster as devcluster
import yaml
from devcluster import images

from .common import PEAK_ENV, ROOT, VENV_BIN, shim_argv, table

NAMESPACE = "kube-system"
RELEASE = "multus"
JOB = "multus-cleanup"
MULTUS_SELECTOR = "app.kubernetes.io/instance=multus,app.kubernetes.io/component=cni"
CONTROL_PLANE = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler")
# Seconds the control plane and the fake nodes are watched, idle, before the hook: what the cluster costs
# without any cleanup (Lease renewals, controllers' resyncs), so the run's own CPU can be told apart.
BASELINE_SECONDS = 20.0
TICK = os.sysconf("SC_CLK_TCK")
DS_CONTROLLER_QPS = 20.0  # kube-controller-manager's default --kube-api-qps: the DaemonSet controller's delete rate


def export_source(rev: str, dest: Path) -> str:
    """hook/ and chart/ as committed at REV, into DEST: the orchestrator, the fake nodes' report and the
    chart come from there (PYTHONPATH=DEST/hook), not from a working tree others may be editing."""
    commit = subprocess.check_output(["git", "-C", str(ROOT), "rev-parse", "--verify", f"{rev}^{{commit}}"],
                                     text=True).strip()
    dest.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", commit, "hook", "chart"],
                             capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return commit


def real_bins() -> Path:
    out = subprocess.check_output([str(ROOT / "tools" / "build-real"), "--print-dir", "kubernetes"])
    return Path(out.decode().strip()).parent / "bin"


@dataclass
class RealRun:
    nodes: int
    pod_seconds: float
    hook_commit: str
    concurrency: int
    stop_timeout_seconds: int
    success: bool
    error: str | None
    exit_code: int
    wall_seconds: float  # spawn of the orchestrator to its exit
    to_patch_seconds: float | None  # spawn to the DaemonSet patch (start-up, node list, preflight)
    stop_seconds: float | None  # the patch to "All ... Multus pod(s) ... gone" (to the exit if they never all went)
    sweep_seconds: float | None  # the first cleanup pod a fake node saw to the exit (overlaps the stop)
    ds_deletion_seconds: float | None  # the patch to the last Multus pod gone (fake nodes' view); None: not all
    ds_deleted: int  # Multus pods deleted by the DaemonSet controller during the run
    ds_deletion_rate: float  # per second, first to last deletion
    ds_rate_profile: list[float]  # Multus pods deleted per second in each 10 s from the patch
    floor_seconds: float  # pod_seconds + the DaemonSet deletion time (estimated from the rate if not all went)
    floor_estimated: bool
    # the floor as issue 11 defines it: one pod time + the DaemonSet controller's deletion time at its default
    # client rate (20/s); the run deletes the Multus pods itself now, so it can beat this one
    controller_floor_seconds: float = 0.0
    requests: dict[str, int] = field(default_factory=dict)  # the orchestrator's, by verb (its summary)
    job_events: int = 0  # Events the orchestrator created on the hook Job (part of requests["create"])
    pod_cycle_seconds: float = 0.0  # mean, per node: the fake kubelet seeing its cleanup pod to the Terminated write
    peak_rss_mb: float = 0.0
    clean_nodes: int = 0
    cpu_seconds: dict[str, float] = field(default_factory=dict)  # per process, during the hook
    machine_busy: float = 0.0  # fraction of all CPUs busy during the hook (every process on the machine)
    runner: dict[str, Any] = field(default_factory=dict)  # the fake nodes' requests during the hook and more
    setup: dict[str, float] = field(default_factory=dict)
    phase_cpu: dict[str, dict[str, float]] = field(default_factory=dict)  # phase -> process -> CPU s, "seconds"
    timeline: list[dict[str, Any]] = field(default_factory=list)  # every 0.5 s: CPU seconds so far per process
    progress: list[list[float]] = field(default_factory=list)  # per s from spawn: [t, Multus pods left, nodes done]
    log_tail: str = ""
    # cores each process used while idle, just before the hook (BASELINE_SECONDS): the cluster's own load
    baseline_cores: dict[str, float] = field(default_factory=dict)

    @property
    def own_cpu_seconds(self) -> float:
        """CPU seconds the run itself caused, in every process: its total minus the idle load over its wall time."""
        return sum(cpu - self.baseline_cores.get(name, 0.0) * self.wall_seconds
                   for name, cpu in self.cpu_seconds.items())

    @property
    def cpu_floor_seconds(self) -> float:
        """The shortest this machine could do the run's work: its own CPU over the cores the idle load leaves."""
        spare = (os.cpu_count() or 1) - sum(self.baseline_cores.values())
        return self.own_cpu_seconds / spare if spare > 0 else float("nan")

    @property
    def sweep_ideal_seconds(self) -> float:
        """What the pods alone take at the configured concurrency: ceil(nodes / concurrency) waves."""
        return -(-self.nodes // self.concurrency) * self.pod_seconds

    @property
    def ratio(self) -> float:
        return self.wall_seconds / self.floor_seconds

    @property
    def controller_ratio(self) -> float:
        return self.wall_seconds / self.controller_floor_seconds if self.controller_floor_seconds else 0.0

    @property
    def total_requests(self) -> int:
        return sum(self.requests.values())


# -- the fake nodes' process ----------------------------------------------------------------------------------

class FakeNodes:
    """bench/fakenodes.py as a subprocess in the hub namespace; its JSON-lines stdout read by a thread."""

    def __init__(self, cluster: devcluster.Cluster, nodes: int, pod_seconds: float, lease_interval: float,
                 log_path: Path, env: dict[str, str]) -> None:
        self.events: list[dict[str, Any]] = []
        self.lock = threading.Condition()
        self._err = log_path.open("wb")
        self.proc = subprocess.Popen(
            [*cluster.hub_prefix(), str(VENV_BIN / "python"), "-m", "bench.fakenodes", "--kubeconfig",
             str(cluster.hub_kubeconfig), "--nodes", str(nodes), "--pod-seconds", str(pod_seconds),
             "--lease-interval", str(lease_interval)], cwd=ROOT, stdout=subprocess.PIPE, stderr=self._err, env=env)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            event = json.loads(line)
            with self.lock:
                self.events.append(event)
                self.lock.notify_all()

    def wait(self, what: str, ok: Any, timeout: float) -> dict[str, Any]:
        """The first event (from now on, or already seen) for which ok(event) holds."""
        deadline = time.monotonic() + timeout
        seen = 0
        with self.lock:
            while True:
                for event in self.events[seen:]:
                    if ok(event):
                        return event
                seen = len(self.events)
                if self.proc.poll() is not None:
                    raise RuntimeError(f"the fake nodes exited ({self.proc.returncode}) while waiting for {what}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{what}: not within {timeout:.0f} s")
                self.lock.wait(1.0)

    def stats_now(self) -> dict[str, Any]:
        after = time.time()
        self.proc.send_signal(signal.SIGUSR1)
        return self.wait("stats", lambda e: e["event"] == "stats" and e["t"] >= after, 30)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.reader.join(5)
        self._err.close()

    def save(self, path: Path) -> None:
        with self.lock, path.open("w") as out:
            out.writelines(json.dumps(e) + "\n" for e in self.events)


# -- CPU sampling -------------------------------------------------------------------------------------------

def cpu_of(pid: int) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


def machine_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]  # idle, iowait
    return sum(values) - idle, sum(values)


class Sampler(threading.Thread):
    """CPU seconds of each named process (cumulative since the start), every `interval` s, while the hook runs."""

    def __init__(self, pids: dict[str, int], interval: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.pids = dict(pids)
        self.interval = interval
        self.samples: list[dict[str, Any]] = []
        self.done = threading.Event()
        self.start_cpu = {name: cpu_of(pid) or 0.0 for name, pid in self.pids.items()}
        self.last: dict[str, float] = dict(self.start_cpu)
        self.jiffies_start = machine_jiffies()
        self.t0 = time.monotonic()
        self.samples.append({"t": 0.0, **dict.fromkeys(self.pids, 0.0)})

    def add(self, name: str, pid: int) -> None:
        self.pids[name] = pid
        self.start_cpu.setdefault(name, 0.0)

    def sample(self) -> None:
        for name, pid in list(self.pids.items()):
            value = cpu_of(pid)
            if value is not None:
                self.last[name] = value
        sample: dict[str, Any] = {"t": round(time.monotonic() - self.t0, 2),
                                  **{k: round(v - self.start_cpu.get(k, 0.0), 2) for k, v in self.last.items()}}
        if "orchestrator" in self.pids and (rss := rss_mb(self.pids["orchestrator"])) is not None:
            sample["rss_mb"] = rss  # the orchestrator's, not CPU
        self.samples.append(sample)

    def run(self) -> None:
        while not self.done.wait(self.interval):
            self.sample()

    def finish(self) -> tuple[dict[str, float], float]:
        self.done.set()
        self.join()
        self.sample()
        busy0, total0 = self.jiffies_start
        busy1, total1 = machine_jiffies()
        used = {k: round(v - self.start_cpu.get(k, 0.0), 2) for k, v in self.last.items()}
        return used, (busy1 - busy0) / max(1, total1 - total0)


def idle_cores(pids: dict[str, int], seconds: float) -> dict[str, float]:
    """Cores each process uses over `seconds` (the cluster left alone)."""
    before = {name: cpu_of(pid) or 0.0 for name, pid in pids.items()}
    time.sleep(seconds)
    return {name: round(((cpu_of(pid) or 0.0) - before[name]) / seconds, 3) for name, pid in pids.items()}


# -- one size ---------------------------------------------------------------------------------------------

def _without_real_node(cluster: devcluster.Cluster) -> None:
    """devcluster's --nodes 0 still starts the `control-plane` node: stop its kubelet, kube-proxy and
    containerd (by the PIDs devcluster recorded) and delete its Node and Lease."""
    for node in cluster.state.nodes:
        for process in ("kubelet", "kube-proxy", "containerd"):
            cluster._stop(f"{node.name}/{process}")
        cluster.kubectl("delete", "node", node.name, "--ignore-not-found", "--wait=false")
        cluster.kubectl("delete", "lease", "-n", "kube-node-lease", node.name, "--ignore-not-found")


def render_chart(bins: Path, chart: Path, out: Path) -> tuple[Path, Path]:
    """The chart with its default values: (every non-hook object, the cleanup's config.yaml)."""
    text = subprocess.check_output([str(bins / "helm"), "template", RELEASE, str(chart), "-n", NAMESPACE,
                                    "--no-hooks"], text=True)
    manifest = out / "chart.yaml"
    manifest.write_text(text)
    config = out / "config.yaml"
    for doc in yaml.safe_load_all(text):
        if doc and doc.get("kind") == "ConfigMap" and "config.yaml" in (doc.get("data") or {}):
            config.write_text(doc["data"]["config.yaml"])
            return manifest, config
    raise RuntimeError("helm template rendered no cleanup ConfigMap (cleanup.enabled?)")


class StampedLog(threading.Thread):
    """The orchestrator's stderr, each line with the time.time() it arrived, and a copy in a file."""

    def __init__(self, stream: IO[bytes], path: Path) -> None:
        super().__init__(daemon=True)
        self.stream, self.path = stream, path
        self.lines: list[tuple[float, str]] = []

    def run(self) -> None:
        with self.path.open("w") as out:
            for raw in self.stream:
                line = raw.decode(errors="replace").rstrip("\n")
                self.lines.append((time.time(), line))
                out.write(line + "\n")

    def first(self, needle: str) -> float | None:
        return next((t for t, line in self.lines if needle in line), None)


def run_size(nodes: int, *, pod_seconds: float, lease_interval: float, workdir: Path, bins: Path, source: Path,
             commit: str, log: Any = print) -> RealRun:
    directory = workdir / f"cluster-{nodes}"
    setup: dict[str, float] = {}
    t0 = time.monotonic()
    cluster = devcluster.up(directory, bins, nodes=0, pause_image=images.PAUSE_IMAGE, log=lambda _m: None)
    fake: FakeNodes | None = None
    try:
        _without_real_node(cluster)
        setup["control_plane_seconds"] = round(time.monotonic() - t0, 1)
        manifest, config = render_chart(bins, source / "chart", workdir)
        env = {**os.environ, "PYTHONPATH": str(source / "hook")}
        fake = FakeNodes(cluster, nodes, pod_seconds, lease_interval, workdir / f"fakenodes-{nodes}.log", env)
        made = fake.wait("the fake nodes", lambda e: e["event"] == "nodes", 60 + nodes / 20)
        setup["nodes_seconds"] = made["seconds"]
        t1 = time.monotonic()
        cluster.kubectl("create", "-f", str(manifest))
        fake.wait(f"{nodes} Running Multus pods", lambda e: e["event"] == "stats" and e["running_other"] >= nodes,
                  120 + nodes / 10)  # the DaemonSet controller creates about 20 per second
        setup["multus_pods_seconds"] = round(time.monotonic() - t1, 1)
        log(f"  {nodes:>5} nodes: control plane {setup['control_plane_seconds']:.0f} s, nodes "
            f"{setup['nodes_seconds']:.0f} s, {nodes} Multus pods Running in {setup['multus_pods_seconds']:.0f} s")
        baseline = idle_cores({name: cluster.state.processes[f"control-plane/{name}"] for name in CONTROL_PLANE}
                              | {"fake nodes": fake.proc.pid}, BASELINE_SECONDS)
        job = _create_job(cluster)
        settings = yaml.safe_load(config.read_text())["cluster"]
        return _hook(cluster, fake, job, config, nodes=nodes, pod_seconds=pod_seconds, settings=settings,
                     workdir=workdir, setup=setup, env=env, commit=commit, baseline=baseline)
    finally:
        if fake is not None:
            fake.stop()
            fake.save(workdir / f"fakenodes-{nodes}.jsonl")
        devcluster.down(directory, remove=True, log=lambda _m: None)


def _create_job(cluster: devcluster.Cluster) -> str:
    """The stand-in for the hook Job, suspended: it owns the node pods and runs nothing."""
    body = json.dumps({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": JOB, "namespace": NAMESPACE},
                       "spec": {"suspend": True, "template": {"spec": {"restartPolicy": "Never", "containers": [
                           {"name": "cleanup", "image": "ghcr.io/multus-cleanup/multus-cleanup:0.1.0"}]}}}})
    r = subprocess.run([str(cluster.bins / "kubectl"), "--kubeconfig", str(cluster.kubeconfig), "create", "-o",
                        "json", "-f", "-"], input=body, capture_output=True, text=True, check=True, timeout=60)
    return r.stdout


def _hook(cluster: devcluster.Cluster, fake: FakeNodes, job_text: str, config: Path, *, nodes: int,
          pod_seconds: float, settings: dict[str, Any], workdir: Path, setup: dict[str, float],
          env: dict[str, str], commit: str, baseline: dict[str, float]) -> RealRun:
    job = json.loads(job_text)
    peak_file = workdir / f"peak-rss-{nodes}"
    peak_file.unlink(missing_ok=True)
    env = {**env, "MULTUS_CLEANUP_JOB_NAME": JOB, "MULTUS_CLEANUP_JOB_UID": job["metadata"]["uid"],
           PEAK_ENV: str(peak_file)}
    argv = [*cluster.hub_prefix(), *shim_argv("run", "--kubeconfig", str(cluster.hub_kubeconfig), "--config",
                                              str(config), "--output", "json")]
    pids = {name: cluster.state.processes[f"control-plane/{name}"] for name in CONTROL_PLANE}
    pids["fake nodes"] = fake.proc.pid
    before = fake.stats_now()
    sampler = Sampler(pids)
    out_path = workdir / f"summary-{nodes}.json"
    with out_path.open("wb") as out:
        start_wall, start = time.time(), time.monotonic()
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.PIPE, env=env)  # nsenter execs: same PID
        sampler.add("orchestrator", proc.pid)
        sampler.start()
        assert proc.stderr is not None
        stamped = StampedLog(proc.stderr, workdir / f"orchestrator-{nodes}.log")
        stamped.start()
        _, status, usage = os.wait4(proc.pid, 0)
        end_wall, end = time.time(), time.monotonic()
    cpu, busy = sampler.finish()
    events = cluster.kubectl("get", "events", "-n", NAMESPACE, "-o", "json", "--field-selector",
                             f"involvedObject.kind=Job,involvedObject.name={JOB}", check=False)
    job_events = sum(1 for e in json.loads(events.stdout)["items"]  # the Job controller's own ("Suspended") aside
                     if "job-controller" not in ((e.get("source") or {}).get("component", ""),
                                                 e.get("reportingComponent", ""))) if events.returncode == 0 else 0
    cpu["orchestrator"] = round(usage.ru_utime + usage.ru_stime, 2)
    stamped.join(10)
    after = fake.stats_now()
    exit_code = os.waitstatus_to_exitcode(status)
    text = out_path.read_text()
    summary: dict[str, Any] = json.loads(text[text.find("{"):]) if "{" in text else {}
    patch = stamped.first("Stopping Multus: DaemonSet")
    gone = stamped.first("Multus pod(s) on reachable nodes are gone")
    # The DaemonSet controller's deletions as the fake nodes saw them (its DELETE sets the deletionTimestamp;
    # the fake kubelet's zero-grace delete removes the pod).
    window = [e for e in fake.events if start_wall <= e["t"] <= end_wall and e.get("kind") == "other"]
    deleting = sorted(e["t"] for e in window if e["event"] == "deleting")
    deleted = sorted(e["t"] for e in window if e["event"] == "deleted")
    rate = (len(deleting) - 1) / (deleting[-1] - deleting[0]) if len(deleting) > 1 else 0.0
    all_gone = len(deleted) >= nodes
    ds_seconds = deleted[-1] - patch if all_gone and patch else None
    estimated = ds_seconds is None
    floor = pod_seconds + (ds_seconds if ds_seconds is not None else (nodes / rate if rate else float("nan")))
    wall = end - start
    profile = [round(sum(1 for t in deleting if patch + k <= t < patch + k + 10) / 10, 1)
               for k in range(0, int((deleting[-1] - patch) // 10 + 1) * 10, 10)] if patch and deleting else []
    terminated = sorted(e["t"] for e in fake.events if start_wall <= e["t"] <= end_wall
                        and e["event"] == "terminated")
    seen = {e["node"]: e["t"] for e in fake.events if start_wall <= e["t"] <= end_wall and e["event"] == "started"}
    first_pod = min(seen.values()) if seen else None
    last_report = terminated[-1] if terminated else None
    cycles = [e["t"] - seen[e["node"]] for e in fake.events if start_wall <= e["t"] <= end_wall
              and e["event"] == "terminated" and e["node"] in seen]
    progress = [[float(k), float(nodes - bisect.bisect_left(deleted, start_wall + k)),
                 float(bisect.bisect_left(terminated, start_wall + k))] for k in range(int(wall) + 2)]
    requests_before, requests_after = Counter(before["requests"]), Counter(after["requests"])
    runner_requests = dict(requests_after - requests_before)
    peak_kb = int(peak_file.read_text()) if peak_file.exists() else 0
    return RealRun(
        nodes=nodes, pod_seconds=pod_seconds, hook_commit=commit, concurrency=int(settings["concurrency"]),
        stop_timeout_seconds=int(settings["stopTimeoutSeconds"]),
        success=exit_code == 0 and bool(summary.get("success")),
        error=summary.get("error") or (None if exit_code == 0 else _last_error(stamped)), exit_code=exit_code,
        wall_seconds=round(wall, 2),
        to_patch_seconds=round(patch - start_wall, 2) if patch else None,
        stop_seconds=round((gone or end_wall) - patch, 2) if patch else None,
        sweep_seconds=round(end_wall - first_pod, 2) if first_pod else None,
        ds_deletion_seconds=round(ds_seconds, 2) if ds_seconds is not None else None,
        ds_deleted=len(deleting), ds_deletion_rate=round(rate, 2), ds_rate_profile=profile,
        floor_seconds=round(floor, 2),
        floor_estimated=estimated, controller_floor_seconds=round(pod_seconds + nodes / DS_CONTROLLER_QPS, 2),
        requests=summary.get("api_requests", {}), job_events=job_events,
        pod_cycle_seconds=round(sum(cycles) / len(cycles), 3) if cycles else 0.0,
        peak_rss_mb=round(peak_kb / 1024, 1),
        clean_nodes=sum(1 for n in (summary.get("nodes") or {}).values() if n["status"] == "clean"),
        cpu_seconds=cpu, machine_busy=round(busy, 3),
        runner={"requests": runner_requests, "requests_per_second": round(sum(runner_requests.values()) / wall, 1),
                "lease_renewals_per_second": round(runner_requests.get("lease-renew", 0) / wall, 1),
                "max_renew_gap_seconds": after["max_renew_gap"], "errors": after["errors"],
                "cleanup_in_flight_max": after["cleanup_in_flight_max"]},
        setup=setup, timeline=sampler.samples, progress=progress,
        # the stop and the sweep overlap: one phase from the patch to the last node's report, then the tail
        phase_cpu=_phase_cpu(sampler.samples, {"start-up": (0.0, patch - start_wall if patch else wall),
                                               "stop + sweep": (patch - start_wall if patch else wall,
                                                                (last_report or end_wall) - start_wall),
                                               "tail": ((last_report or end_wall) - start_wall, wall)}),
        log_tail="\n".join(line for _, line in stamped.lines[-8:]), baseline_cores=baseline)


def _phase_cpu(samples: list[dict[str, Any]], phases: dict[str, tuple[float, float]]) -> dict[str, dict[str, float]]:
    """CPU seconds per process in each phase, from the samples (the last sample at or before
    each boundary; the first sample stands for the start)."""
    def at(t: float) -> dict[str, Any]:
        before = [s for s in samples if s["t"] <= t]
        return before[-1] if before else {}

    out: dict[str, dict[str, float]] = {}
    for name, (a, b) in phases.items():
        if b - a < 0.5:
            continue
        first, last = at(a), at(b)
        used = {k: round(v - first.get(k, 0.0), 2) for k, v in last.items() if k not in ("t", "rss_mb")}
        out[name] = {**used, "seconds": round(b - a, 2), "cores": round(sum(used.values()) / (b - a), 2)}
    return out


def _last_error(stamped: StampedLog) -> str | None:
    lines = [line for _, line in stamped.lines if "ERROR" in line or line.startswith("multus-cleanup:")]
    return lines[-1] if lines else None


def run(sizes: list[int], *, pod_seconds: float, lease_interval: float, workdir: Path | None = None,
        hook_rev: str = "HEAD", log: Any = print) -> list[RealRun]:
    """Every size on a fresh control plane. With `workdir`, the logs of each run stay in a new directory there
    (the orchestrator's log and summary, the fake nodes' events); without, in a temporary one."""
    bins = real_bins()
    results = []
    with contextlib.ExitStack() as stack:
        if workdir is None:
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-rcp-")))
        else:
            workdir.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=time.strftime("run-%H%M%S-"), dir=workdir))
            log(f"  logs in {tmp}")
        commit = export_source(hook_rev, tmp / "source")
        log(f"  hook/ and chart/ of {commit[:12]} ({hook_rev})")
        for nodes in sizes:
            result = run_size(nodes, pod_seconds=pod_seconds, lease_interval=lease_interval, workdir=tmp,
                              bins=bins, source=tmp / "source", commit=commit, log=log)
            log(f"  {nodes:>5} nodes: {'success' if result.success else 'FAILED'} in {result.wall_seconds:.1f} s "
                f"(floor {result.floor_seconds:.1f} s{' est.' if result.floor_estimated else ''}), stop "
                f"{result.stop_seconds} s, {result.total_requests} requests, {result.peak_rss_mb:.0f} MB"
                + (f"; error: {result.error}" if result.error else ""))
            results.append(result)
    return results


def report(results: list[RealRun]) -> str:
    rows = []
    for r in results:
        verbs = ", ".join(f"{n} {v}" for v, n in sorted(r.requests.items()))
        verbs += f" ({r.job_events} Job Events)" if r.job_events else ""
        rows.append([f"{r.nodes:,}", "yes" if r.success else "NO", f"{r.wall_seconds:.1f}",
                     f"{r.to_patch_seconds or 0:.1f}", f"{r.stop_seconds or 0:.1f}",
                     f"{r.sweep_seconds:.1f}" if r.sweep_seconds is not None else "-",
                     f"{r.sweep_ideal_seconds:.0f}", f"{r.pod_cycle_seconds:.2f}",
                     f"{r.ds_deletion_rate:.1f}", f"{r.floor_seconds:.1f}" + ("*" if r.floor_estimated else ""),
                     f"{r.ratio:.2f}", f"{r.controller_floor_seconds:.1f}", f"{r.controller_ratio:.2f}",
                     f"{r.total_requests:,}", f"{r.total_requests / r.nodes:.2f}",
                     f"{r.peak_rss_mb:.0f}", verbs])
    text = table(["nodes", "ok", "wall s", "to stop s", "stop s", "sweep s", "sweep ideal s", "pod cycle s",
                  "Multus del/s", "floor s", "wall/floor", "DS-controller floor s", "wall/DS floor",
                  "requests", "req/node", "peak RSS MB", "by verb"], rows)
    lines = ["", "* estimated: the stop failed before every Multus pod was gone; floor = pod time + nodes / "
             "deletion rate", ""] if any(r.floor_estimated for r in results) else ["", ""]
    names = ["orchestrator", "kube-apiserver", "etcd", "kube-controller-manager", "kube-scheduler", "fake nodes"]
    cpu_rows = [[f"{r.nodes:,}", *(f"{r.cpu_seconds.get(n, 0):.1f}" for n in names),
                 f"{sum(r.cpu_seconds.values()) / r.wall_seconds:.2f}", f"{r.machine_busy * 100:.0f} %",
                 f"{r.runner['lease_renewals_per_second']:.1f}", f"{r.runner['requests_per_second']:.1f}",
                 f"{r.runner['max_renew_gap_seconds']:.1f}"] for r in results]
    text += "\n".join(lines) + "\n" + table(
        ["nodes", *(f"{n} CPU s" for n in names), "cores used", "machine busy", "lease renew/s", "fake req/s",
         "max lease gap s"], cpu_rows)
    phase_rows = [[f"{r.nodes:,}", phase, f"{c['seconds']:.1f}", *(f"{c.get(n, 0):.1f}" for n in names),
                   f"{c['cores']:.2f}"] for r in results for phase, c in r.phase_cpu.items()]
    text += "\n\nCPU seconds per phase (cores used: all of these processes together; the machine has " \
            f"{os.cpu_count()}):\n" + table(["nodes", "phase", "seconds", *names, "cores used"], phase_rows)
    text += "\n\nThe run's own CPU (every process's CPU minus its idle load before the hook times the wall time) " \
            "and the shortest this machine could do that work on the cores the idle load leaves:\n" + table(
                ["nodes", "idle cores (Leases, controllers)", "own CPU s", "own CPU ms per node", "CPU floor s",
                 "wall / CPU floor"],
                [[f"{r.nodes:,}", f"{sum(r.baseline_cores.values()):.2f}", f"{r.own_cpu_seconds:.1f}",
                  f"{r.own_cpu_seconds / r.nodes * 1000:.0f}", f"{r.cpu_floor_seconds:.1f}",
                  f"{r.wall_seconds / r.cpu_floor_seconds:.2f}"] for r in results if r.baseline_cores])
    for r in results:
        if r.error:
            text += f"\n{r.nodes:,} nodes: {r.error}"
    return text


def to_json(results: list[RealRun]) -> list[dict[str, Any]]:
    return [{**asdict(r), "ratio": r.ratio, "controller_ratio": r.controller_ratio,
             "total_requests": r.total_requests,
             "sweep_ideal_seconds": r.sweep_ideal_seconds, "own_cpu_seconds": round(r.own_cpu_seconds, 1),
             "cpu_floor_seconds": round(r.cpu_floor_seconds, 1)} for r in results]


def from_json(items: list[dict[str, Any]]) -> list[RealRun]:
    """RealRuns back from to_json's output (to render the report of an earlier run)."""
    names = set(RealRun.__dataclass_fields__)
    return [RealRun(**{k: v for k, v in item.items() if k in names}) for item in items]
