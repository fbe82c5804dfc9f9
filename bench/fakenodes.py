"""Fake nodes for the real-control-plane bench: a small pod runner that plays N kubelets through the real API.

`python -m bench.fakenodes --kubeconfig FILE --nodes N [--pod-seconds S] [--lease-interval L]` (run it next to
the API server: `Cluster.hub_prefix()` and `Cluster.hub_kubeconfig`). One asyncio loop, one aiohttp session
(at most `--connections` requests in flight), and through the API only:

1. **Nodes.** Creates N Node objects `fake-node-NNNNN`, each Ready, with capacity (4 CPUs, 16 GiB, 110 pods),
   an InternalIP and the labels kubernetes.io/os=linux, kubernetes.io/arch=amd64, kubernetes.io/hostname
   (the API server keeps a Node's status on create, as when a kubelet registers), and a Lease per node in
   kube-node-lease (owned by its Node, as the kubelet's is).
2. **Heartbeats.** Renews every Lease once per `--lease-interval` seconds (default 30), spread evenly over
   the interval, with a merge patch of `spec.renewTime`. kube-controller-manager's node lifecycle
   controller marks a node Unknown when neither its Lease nor its Ready condition changed for
   `--node-monitor-grace-period` (default 50 s, checked every 5 s); a kubelet renews every 10 s, 30 s
   leaves 20 s of margin at a third of the cost. The cost is N / interval requests per second; the stats
   report the requests made and the longest gap between two renewals of one Lease. The Node's status is
   not rewritten (a kubelet also writes it every 5 minutes when nothing changed; the controller does not
   need it while the Lease is renewed).
3. **Pods.** One watch on every bound pod (`fieldSelector=spec.nodeName!=`); pods on other nodes are
   ignored. A pod of ours that is not a cleanup pod (the Multus DaemonSet's, created by the real DaemonSet
   controller and bound by the real scheduler) gets one status write: Running, Ready, its init
   containers terminated with exit code 0, its containers running. No container runs anywhere.
4. **Cleanup pods** (label app.kubernetes.io/component=node-cleanup, what `multus-cleanup run` creates with
   `spec.nodeName` set): the runner waits `--pod-seconds` (default 5: the whole time a real node takes to
   start the pod and run `multus-cleanup node`), then writes Running and at once Terminated (phase
   Succeeded, container `cleanup` exit code 0, reason Completed) with the node's report as the
   termination message: a real report, built by the real node engine (`clean_node`) on a thick Multus
   footprint from tests/footprints.py once at start, with the node's name and host root `/host`, capped
   by `NodeReport.to_termination_message` as `multus-cleanup node --report-file` writes it. Two status
   writes per cleanup pod, as a kubelet whose status manager sees both states.
5. **Deletion.** A pod of ours with a deletionTimestamp is deleted with gracePeriodSeconds 0 (preconditioned
   on its UID), as a kubelet does once the pod's containers have stopped; here at once, since nothing runs.
   (The API server removes a cleanup pod that is already Succeeded by itself, right after its deletionTimestamp
   shows in the watch: the runner's delete then gets a 404, counted as expected.)

Stdout is a JSON-lines log for the bench: `{"event": "nodes", ...}` once the Nodes and Leases exist,
`{"event": "deleting"|"deleted", "kind": "cleanup"|"other", "t": ...}` per pod (time.time(), comparable across
processes), `{"event": "started"|"terminated", ...}` per cleanup pod seen and answered, and
`{"event": "stats", ...}` every 5 s, on SIGUSR1 and at exit (SIGTERM/SIGINT): requests by kind, errors, the
Running non-cleanup pods, the cleanup pods in flight and the longest Lease renewal gap.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import signal
import ssl
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from .common import ROOT

NODE_PREFIX = "fake-node-"
LEASE_NAMESPACE = "kube-node-lease"
CLEANUP_COMPONENT = "node-cleanup"
JSON = dict[str, Any]
LEASES = f"/apis/coordination.k8s.io/v1/namespaces/{LEASE_NAMESPACE}/leases"


def now_rfc3339(micro: bool = False) -> str:
    stamp = datetime.now(UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.%fZ") if micro else stamp.strftime("%Y-%m-%dT%H:%M:%SZ")


def node_ip(index: int) -> str:
    return f"10.{100 + index // 65024}.{(index // 254) % 256}.{index % 254 + 1}"


def clean_report_template() -> Any:
    """The report `multus-cleanup node` writes after cleaning a thick Multus footprint: the real engine on a
    throwaway tree, once. multus_cleanup comes from PYTHONPATH (the bench's pinned copy) or the venv; the
    footprint builders from tests/, read-only."""
    from multus_cleanup.config import CleanupConfig
    from multus_cleanup.node.engine import NodeRun, clean_node

    for path in (ROOT, ROOT / "tests"):
        if str(path) not in sys.path:
            sys.path.append(str(path))
    import footprints as fp

    with tempfile.TemporaryDirectory(prefix="fakenodes-") as tmp:
        root = Path(tmp) / "root"
        root.mkdir()
        fp.install_thick(root, fp.node_before_multus(root))
        report = clean_node(CleanupConfig().node, NodeRun(host_root=str(root), node_name="template"))
    if not report.clean:
        raise RuntimeError(f"the node engine did not clean the thick footprint: {report.errors}")
    return dataclasses.replace(report, host_root="/host")


def ssl_context(kubeconfig: dict[str, Any]) -> tuple[str, ssl.SSLContext]:
    cluster = kubeconfig["clusters"][0]["cluster"]
    user = kubeconfig["users"][0]["user"]
    context = ssl.create_default_context(cafile=cluster["certificate-authority"])
    context.load_cert_chain(user["client-certificate"], user["client-key"])
    return cluster["server"], context


class Runner:
    def __init__(self, server: str, context: ssl.SSLContext, nodes: int, *, pod_seconds: float,
                 lease_interval: float, connections: int) -> None:
        self.server = server
        self.context = context
        self.names = [f"{NODE_PREFIX}{i:05d}" for i in range(nodes)]
        self.ips = {name: node_ip(i) for i, name in enumerate(self.names)}
        self.pod_seconds = pod_seconds
        self.lease_interval = lease_interval
        self.connections = connections
        self.requests: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.last_renew: dict[str, float] = {}
        self.max_renew_gap = 0.0
        self.handled: set[str] = set()  # pod UIDs given their status (or whose cleanup is under way)
        self.deleting: set[str] = set()
        self.running_other: set[str] = set()
        self.cleanup_in_flight = 0
        self.cleanup_in_flight_max = 0
        self.cleanup_done = 0
        self.report = clean_report_template()
        self.session: aiohttp.ClientSession | None = None
        self.tasks: set[asyncio.Task[None]] = set()
        self.stopping = asyncio.Event()

    # -- output -----------------------------------------------------------------------------------------
    def emit(self, event: str, **fields: Any) -> None:
        sys.stdout.write(json.dumps({"event": event, "t": time.time(), **fields}) + "\n")
        sys.stdout.flush()

    def stats(self) -> None:
        now = time.monotonic()
        gap = max([self.max_renew_gap, *(now - t for t in self.last_renew.values())]) if self.last_renew else 0.0
        self.emit("stats", requests=dict(self.requests), errors=dict(self.errors),
                  running_other=len(self.running_other), cleanup_in_flight=self.cleanup_in_flight,
                  cleanup_in_flight_max=self.cleanup_in_flight_max, cleanup_done=self.cleanup_done,
                  max_renew_gap=round(gap, 2))

    # -- HTTP -------------------------------------------------------------------------------------------
    async def call(self, kind: str, method: str, path: str, body: Any = None,
                   content_type: str = "application/json", ok: tuple[int, ...] = ()) -> JSON | None:
        assert self.session is not None
        for attempt in range(6):
            self.requests[kind] += 1
            try:
                async with self.session.request(method, self.server + path, data=None if body is None else
                                                json.dumps(body), headers={"Content-Type": content_type}) as resp:
                    data = await resp.read()
                    if 200 <= resp.status < 300:
                        return json.loads(data) if data else {}
                    if resp.status in ok:  # e.g. 404: already gone; counted, not retried
                        self.errors[f"{kind} {resp.status} (expected)"] += 1
                        return None
                    self.errors[f"{kind} {resp.status}"] += 1
                    if resp.status not in (429, 500, 502, 503, 504):
                        print(f"{kind} {method} {path}: {resp.status} {data[:300]!r}", file=sys.stderr)
                        return None
            except (aiohttp.ClientError, TimeoutError) as err:
                self.errors[f"{kind} {type(err).__name__}"] += 1
            await asyncio.sleep(min(4.0, 0.2 * 2 ** attempt))
        return None

    def spawn(self, coro: Any) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    # -- nodes and leases ---------------------------------------------------------------------------------
    async def create_node(self, name: str, limit: asyncio.Semaphore) -> None:
        async with limit:
            stamp = now_rfc3339()
            node = await self.call("node-create", "POST", "/api/v1/nodes", {
                "apiVersion": "v1", "kind": "Node",
                "metadata": {"name": name, "labels": {"kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
                                                      "kubernetes.io/hostname": name, "bench/fake-node": "true"}},
                "status": {
                    "capacity": {"cpu": "4", "memory": "16Gi", "pods": "110", "ephemeral-storage": "100Gi"},
                    "allocatable": {"cpu": "4", "memory": "16Gi", "pods": "110", "ephemeral-storage": "100Gi"},
                    "conditions": [
                        *({"type": t, "status": "False", "reason": r, "lastHeartbeatTime": stamp,
                           "lastTransitionTime": stamp} for t, r in (
                            ("MemoryPressure", "KubeletHasSufficientMemory"),
                            ("DiskPressure", "KubeletHasNoDiskPressure"),
                            ("PIDPressure", "KubeletHasSufficientPID"))),
                        {"type": "Ready", "status": "True", "reason": "KubeletReady",
                         "message": "fake node of bench/fakenodes.py", "lastHeartbeatTime": stamp,
                         "lastTransitionTime": stamp}],
                    "addresses": [{"type": "InternalIP", "address": self.ips[name]},
                                  {"type": "Hostname", "address": name}],
                    "nodeInfo": {"machineID": "", "systemUUID": "", "bootID": "", "kernelVersion": "fake",
                                 "osImage": "fake", "containerRuntimeVersion": "fake://0",
                                 "kubeletVersion": "v1.35.4", "kubeProxyVersion": "", "operatingSystem": "linux",
                                 "architecture": "amd64"}}}, ok=(409,))
            if node is None:  # already there (a second runner on the same cluster): read its UID
                node = await self.call("node-get", "GET", f"/api/v1/nodes/{name}")
            if node is None:
                raise RuntimeError(f"cannot create node {name}")
            await self.call("lease-create", "POST", LEASES, {
                "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": name, "namespace": LEASE_NAMESPACE, "ownerReferences": [{
                    "apiVersion": "v1", "kind": "Node", "name": name, "uid": node["metadata"]["uid"]}]},
                "spec": {"holderIdentity": name, "leaseDurationSeconds": 40, "renewTime": now_rfc3339(micro=True)},
            }, ok=(409,))
            self.last_renew[name] = time.monotonic()

    async def renew_leases(self) -> None:
        """Every Lease once per interval, spread evenly: in ticks of 0.25 s, each tick renews the Leases that
        fell due since the last (renewal k of the run is due at k * interval / N)."""
        tick, count = 0.25, len(self.names)
        start = time.monotonic()
        done = 0
        while not self.stopping.is_set():
            due = int((time.monotonic() - start) * count / self.lease_interval)
            for k in range(done, due):
                self.spawn(self.renew(self.names[k % count]))
            done = max(done, due)
            await asyncio.sleep(tick)

    async def renew(self, name: str) -> None:
        patch = {"spec": {"renewTime": now_rfc3339(micro=True)}}
        answer = await self.call("lease-renew", "PATCH", f"{LEASES}/{name}", patch, "application/merge-patch+json")
        if answer is not None:
            now = time.monotonic()
            self.max_renew_gap = max(self.max_renew_gap, now - self.last_renew.get(name, now))
            self.last_renew[name] = now

    # -- pods ---------------------------------------------------------------------------------------------
    async def watch_pods(self) -> None:
        assert self.session is not None
        version = ""
        while not self.stopping.is_set():
            if not version:
                listed = await self.call("pod-list", "GET", "/api/v1/pods?fieldSelector=spec.nodeName%21%3D")
                if listed is None:
                    await asyncio.sleep(1)
                    continue
                version = listed["metadata"]["resourceVersion"]
                for pod in listed["items"]:
                    self.on_pod("ADDED", pod)
            self.requests["pod-watch"] += 1
            url = (f"{self.server}/api/v1/pods?watch=1&allowWatchBookmarks=true&timeoutSeconds=300"
                   f"&fieldSelector=spec.nodeName%21%3D&resourceVersion={version}")
            try:
                async with self.session.get(url, timeout=aiohttp.ClientTimeout(total=None, sock_read=330)) as resp:
                    if resp.status == 410:
                        version = ""
                        continue
                    if resp.status != 200:
                        self.errors[f"pod-watch {resp.status}"] += 1
                        await asyncio.sleep(1)
                        continue
                    async for line in resp.content:
                        event = json.loads(line)
                        obj = event["object"]
                        if event["type"] == "ERROR":
                            version = "" if obj.get("code") == 410 else version
                            break
                        version = obj["metadata"]["resourceVersion"]
                        if event["type"] != "BOOKMARK":
                            self.on_pod(event["type"], obj)
            except (aiohttp.ClientError, TimeoutError) as err:
                self.errors[f"pod-watch {type(err).__name__}"] += 1
                await asyncio.sleep(0.5)

    def on_pod(self, kind: str, pod: JSON) -> None:
        spec, meta = pod.get("spec") or {}, pod["metadata"]
        node = spec.get("nodeName")
        if node not in self.ips:
            return
        uid = meta["uid"]
        cleanup = (meta.get("labels") or {}).get("app.kubernetes.io/component") == CLEANUP_COMPONENT
        what = "cleanup" if cleanup else "other"
        if kind == "DELETED":
            self.running_other.discard(uid)
            self.deleting.discard(uid)
            self.handled.discard(uid)
            self.emit("deleted", kind=what, node=node)
            return
        if meta.get("deletionTimestamp"):
            self.running_other.discard(uid)
            if uid not in self.deleting:
                self.deleting.add(uid)
                self.emit("deleting", kind=what, node=node)
                self.spawn(self.call("pod-delete", "DELETE", f"/api/v1/namespaces/{meta['namespace']}/pods/"
                                     f"{meta['name']}", {"gracePeriodSeconds": 0, "preconditions": {"uid": uid}},
                                     ok=(404, 409)))
            return
        if uid in self.handled:
            return
        phase = (pod.get("status") or {}).get("phase")
        if phase in ("Succeeded", "Failed"):
            return
        self.handled.add(uid)
        if cleanup:
            self.spawn(self.run_cleanup(pod))
        else:
            self.spawn(self.set_running(pod))

    def _status_path(self, pod: JSON) -> str:
        meta = pod["metadata"]
        return f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}/status"

    def _running_status(self, pod: JSON, started: str) -> JSON:
        spec = pod["spec"]
        ip = self.ips[spec["nodeName"]]
        uid = pod["metadata"]["uid"]

        def container(c: JSON, state: JSON, ready: bool, started_: bool) -> JSON:
            return {"name": c["name"], "image": c["image"], "imageID": f"fake://{c['image']}",
                    "containerID": f"fake://{uid}/{c['name']}", "ready": ready, "started": started_,
                    "restartCount": 0, "state": state}

        condition = {"status": "True", "lastProbeTime": None, "lastTransitionTime": started}
        return {
            "phase": "Running", "hostIP": ip, "hostIPs": [{"ip": ip}], "podIP": ip, "podIPs": [{"ip": ip}],
            "startTime": started,
            "conditions": [{"type": t, **condition} for t in (
                "PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled")],
            "initContainerStatuses": [container(c, {"terminated": {
                "exitCode": 0, "reason": "Completed", "startedAt": started, "finishedAt": started}}, True, False)
                for c in spec.get("initContainers") or []],
            "containerStatuses": [container(c, {"running": {"startedAt": started}}, True, True)
                                  for c in spec["containers"]],
        }

    async def set_running(self, pod: JSON) -> None:
        body = {"status": self._running_status(pod, now_rfc3339())}
        if await self.call("pod-status", "PATCH", self._status_path(pod), body, "application/merge-patch+json",
                           ok=(404,)) is not None:
            self.running_other.add(pod["metadata"]["uid"])

    async def run_cleanup(self, pod: JSON) -> None:
        self.cleanup_in_flight += 1
        self.cleanup_in_flight_max = max(self.cleanup_in_flight_max, self.cleanup_in_flight)
        try:
            started = now_rfc3339()
            self.emit("started", kind="cleanup", node=pod["spec"]["nodeName"])
            await asyncio.sleep(self.pod_seconds)
            path = self._status_path(pod)
            running = self._running_status(pod, started)
            if await self.call("pod-status", "PATCH", path, {"status": running}, "application/merge-patch+json",
                               ok=(404,)) is None:
                return
            finished = now_rfc3339()
            node = pod["spec"]["nodeName"]
            message = dataclasses.replace(self.report, node=node).to_termination_message()
            done = {**running, "phase": "Succeeded",
                    "conditions": [{**c, "status": "False", "reason": "PodCompleted", "lastTransitionTime": finished}
                                   if c["type"] in ("Ready", "ContainersReady") else c for c in running["conditions"]],
                    "containerStatuses": [{**c, "ready": False, "started": False, "state": {"terminated": {
                        "exitCode": 0, "reason": "Completed", "message": message, "startedAt": started,
                        "finishedAt": finished, "containerID": c["containerID"]}}}
                        for c in running["containerStatuses"]]}
            if await self.call("pod-status", "PATCH", path, {"status": done}, "application/merge-patch+json",
                               ok=(404,)) is not None:
                self.cleanup_done += 1
                self.emit("terminated", kind="cleanup", node=node)
        finally:
            self.cleanup_in_flight -= 1

    # -- main -----------------------------------------------------------------------------------------------
    async def main(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stopping.set)
        loop.add_signal_handler(signal.SIGUSR1, self.stats)
        connector = aiohttp.TCPConnector(limit=self.connections, ssl=self.context)
        async with aiohttp.ClientSession(connector=connector, read_bufsize=2 ** 20,
                                         timeout=aiohttp.ClientTimeout(total=60)) as session:
            self.session = session
            started = time.monotonic()
            limit = asyncio.Semaphore(self.connections)
            await asyncio.gather(*(self.create_node(name, limit) for name in self.names))
            self.emit("nodes", count=len(self.names), seconds=round(time.monotonic() - started, 2))
            watcher = asyncio.ensure_future(self.watch_pods())
            renewer = asyncio.ensure_future(self.renew_leases())

            async def periodic() -> None:
                while not self.stopping.is_set():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self.stopping.wait(), 5)
                    self.stats()

            stats = asyncio.ensure_future(periodic())
            await self.stopping.wait()
            for task in (watcher, renewer, stats, *self.tasks):
                task.cancel()
            await asyncio.gather(watcher, renewer, stats, return_exceptions=True)
        self.stats()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fakenodes", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kubeconfig", required=True, type=Path)
    parser.add_argument("--nodes", required=True, type=int)
    parser.add_argument("--pod-seconds", type=float, default=5.0)
    parser.add_argument("--lease-interval", type=float, default=30.0)
    parser.add_argument("--connections", type=int, default=64, help="requests in flight at most (default 64)")
    args = parser.parse_args(argv)
    server, context = ssl_context(yaml.safe_load(args.kubeconfig.read_text()))
    runner = Runner(server, context, args.nodes, pod_seconds=args.pod_seconds, lease_interval=args.lease_interval,
                    connections=args.connections)
    asyncio.run(runner.main())
    return 0


if __name__ == "__main__":
    sys.exit(main())
