"""What the cluster tests and the demo do and check on the real cluster, in the words a user would: install
the chart, attach a pod to a second network, uninstall, look at each node's files and start a pod on every
node."""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devcluster import __main__ as tool
from devcluster import cluster as devcluster
from devcluster import images

REPO = Path(__file__).resolve().parents[1]
CHART = REPO / "chart"
NAMESPACE = "kube-system"
TEST_NAMESPACE = "default"
PRIMARY_CONFIG = "10-cluster-pods.conflist"
HELM3 = "v3.21.4"  # built by tools/build-real (hook-output-log-policy needs >= 3.18)
HELM4 = "v4.3.1"  # tools/fetch_helm.py
# what Multus v4 writes on a node, as paths under the node's root (the cleanup must leave none)
MULTUS_PATHS = ("etc/cni/net.d/00-multus.conf", "etc/cni/net.d/00-multus.conflist", "etc/cni/net.d/multus.d",
                "opt/cni/bin/multus", "opt/cni/bin/multus-shim", "opt/cni/bin/passthru", "var/lib/cni/multus")
# the chart's values that point it at the images the nodes carry (no registry is reachable)
IMAGE_VALUES = (f"image.repository={images.MULTUS_REPOSITORY}", f"cleanup.image.repository={tool.HOOK_REPOSITORY}",
                f"cleanup.image.tag={tool.HOOK_TAG}", "image.pullPolicy=Never", "cleanup.image.pullPolicy=Never")
NAD_NAME = "second"
NAD_SUBNET = "192.168.77.0/24"


def helm_binaries(bins: Path) -> dict[str, Path]:
    found = {HELM3: bins / "helm", HELM4: REPO / ".cache" / "helm" / HELM4 / "helm"}
    missing = [str(p) for p in found.values() if not p.exists()]
    if missing:
        raise AssertionError(f"missing {', '.join(missing)}: run tools/install-deps")
    return found


def wait_for(what: str, ok: Callable[[], Any], timeout: float = 120, interval: float = 1.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = ok()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:.0f} s")
        time.sleep(interval)


@dataclass
class PodState:
    name: str
    node: str
    phase: str
    ip: str
    waiting: str  # the runtime's message while it cannot start the pod (events), "" otherwise


class ClusterKit:
    def __init__(self, cluster: devcluster.Cluster, helm: Mapping[str, Path]) -> None:
        self.cluster = cluster
        self.helm_bins = dict(helm)
        self.nodes = [n.name for n in cluster.state.nodes]
        self.primary = {n: (cluster.node_root(n) / "etc/cni/net.d" / PRIMARY_CONFIG).read_bytes()
                        for n in self.nodes}

    # -- commands -----------------------------------------------------------------------------------------
    def kubectl(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return self.cluster.kubectl(*args, check=check, timeout=timeout)

    def helm_env(self) -> dict[str, str]:
        """Helm's environment: this cluster, and a Helm home of the cluster's own."""
        home = str(self._helm_home())
        return {**os.environ, "KUBECONFIG": str(self.cluster.kubeconfig), "HELM_CACHE_HOME": home,
                "HELM_CONFIG_HOME": home, "HELM_DATA_HOME": home}

    def helm(self, version: str, *args: str, check: bool = True,
             timeout: float = 400) -> subprocess.CompletedProcess[str]:
        r = subprocess.run([str(self.helm_bins[version]), *args], capture_output=True, text=True, env=self.helm_env(),
                           timeout=timeout, check=False)
        if check and r.returncode != 0:
            raise AssertionError(f"helm {version} {' '.join(args)} exited {r.returncode}:\n{r.stdout}\n{r.stderr}")
        return r

    def _helm_home(self) -> Path:
        home = self.cluster.dir / "helm-home"
        home.mkdir(exist_ok=True)
        return home

    def install(self, version: str, release: str = "multus", *values: str, wait: bool = True) -> None:
        sets = [a for v in (*IMAGE_VALUES, *values) for a in ("--set", v)]
        self.helm(version, "install", release, str(CHART), "-n", NAMESPACE, *sets,
                  *(["--wait", "--timeout", "3m"] if wait else []))

    def uninstall(self, version: str, release: str = "multus", *extra: str) -> subprocess.CompletedProcess[str]:
        return self.helm(version, "uninstall", release, "-n", NAMESPACE, "--wait", "--timeout", "4m", *extra,
                         check=False)

    # -- what a user looks at -----------------------------------------------------------------------------
    def pods(self, namespace: str, selector: str = "") -> list[dict[str, Any]]:
        args = ["pods", "-n", namespace] + (["-l", selector] if selector else [])
        return list(self.cluster.get_json(*args)["items"])

    def multus_pods_running(self, release: str = "multus") -> dict[str, str]:
        """node -> Multus pod name, once a Multus pod is Running and ready on every node and the runtime loads
        Multus's config there. Multus's containers have no readiness probe (thin's image has no shell), so
        "ready" comes a moment before the entrypoint has copied its binary and written its config."""
        def ready() -> dict[str, str]:
            pods = self.pods(NAMESPACE, f"app.kubernetes.io/instance={release},app.kubernetes.io/component=cni")
            running = {p["spec"]["nodeName"]: p["metadata"]["name"] for p in pods
                       if p["status"].get("phase") == "Running" and not p["metadata"].get("deletionTimestamp")
                       and all(c.get("ready") for c in p["status"].get("containerStatuses", []))}
            return running if set(running) == set(self.nodes) else {}
        try:
            running = dict(wait_for("a Running Multus pod on every node", ready, 180))
        except AssertionError as err:
            raise AssertionError(f"{err}; {self._multus_pods_state(release)}") from None

        def unconfigured() -> list[str]:
            return [n for n in self.nodes if not self.loaded_config(n).startswith("00-multus")]
        try:
            wait_for("Multus's config loaded on every node", lambda: not unconfigured(), 60)
        except AssertionError as err:
            logs = {n: self.kubectl("logs", "-n", NAMESPACE, running[n], "--all-containers", "--tail=20",
                                    check=False).stdout for n in unconfigured()}
            raise AssertionError(f"{err}; the Multus pods' logs: {logs}") from None
        return running

    def _multus_pods_state(self, release: str) -> str:
        """Each Multus pod's node, phase and container states, and the namespace's Warning Events: why a
        Multus pod is not Running, as `kubectl describe` would say it."""
        pods = self.pods(NAMESPACE, f"app.kubernetes.io/instance={release},app.kubernetes.io/component=cni")
        states = []
        for p in pods:
            containers = [f"{c['name']} ready={c.get('ready')} {json.dumps(c.get('state', {}))}"
                          for c in (*p["status"].get("initContainerStatuses", []),
                                    *p["status"].get("containerStatuses", []))]
            states.append(f"{p['metadata']['name']} on {p['spec'].get('nodeName', '(unscheduled)')}: "
                          f"{p['status'].get('phase')}{' (deleting)' if p['metadata'].get('deletionTimestamp') else ''}"
                          f" [{'; '.join(containers)}]")
        events = self.kubectl("get", "events", "-n", NAMESPACE, "--field-selector", "type=Warning",
                              "-o", "custom-columns=OBJECT:.involvedObject.name,REASON:.reason,MESSAGE:.message",
                              "--no-headers", check=False).stdout.strip().splitlines()[-10:]
        return f"the Multus pods: {states or 'none'}; Warning Events: {events or 'none'}"

    def multus_leftovers(self, node: str) -> list[str]:
        """The Multus files still on NODE (its /run/multus included, read on the node itself)."""
        root = self.cluster.node_root(node)
        left = [f"/{p}" for p in MULTUS_PATHS if (root / p).exists() or (root / p).is_symlink()]
        if self.cluster.in_node(node, "test", "-e", "/run/multus", check=False).returncode == 0:
            left.append("/run/multus")
        return left

    def loaded_config(self, node: str) -> str:
        """The config the runtime loads: the first *.conf, *.conflist, *.json in the config dir by name."""
        net_d = self.cluster.node_root(node) / "etc/cni/net.d"
        names = sorted(p.name for p in net_d.iterdir() if p.suffix in (".conf", ".conflist", ".json"))
        return names[0] if names else ""

    def pod_state(self, name: str, namespace: str = TEST_NAMESPACE) -> PodState:
        pod = self.cluster.get_json("pod", name, "-n", namespace)
        waiting = ""
        if pod["status"].get("phase") != "Running":
            events = self.cluster.get_json("events", "-n", namespace, "--field-selector",
                                           f"involvedObject.name={name}")["items"]
            failed = [e["message"] for e in events if e.get("reason") == "FailedCreatePodSandBox"]
            waiting = failed[-1] if failed else ""
        return PodState(name, pod["spec"].get("nodeName", ""), pod["status"].get("phase", ""),
                        pod["status"].get("podIP", ""), waiting)

    def start_pod(self, name: str, node: str, *, networks: str = "", command: str = "sleep 3600") -> None:
        meta: dict[str, Any] = {"name": name, "namespace": TEST_NAMESPACE, "labels": {"multus-cleanup-test": "1"}}
        if networks:
            meta["annotations"] = {"k8s.v1.cni.cncf.io/networks": networks}
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": {
            "nodeName": node, "terminationGracePeriodSeconds": 1,
            "containers": [{"name": "c", "image": images.BUSYBOX_IMAGE, "imagePullPolicy": "Never",
                            "command": ["sh", "-c", command]}]}}
        self._apply(pod)

    def _apply(self, obj: Mapping[str, Any]) -> None:
        r = subprocess.run([str(self.cluster.bins / "kubectl"), "--kubeconfig", str(self.cluster.kubeconfig),
                            "apply", "-f", "-"], input=json.dumps(obj), capture_output=True, text=True,
                           timeout=60, check=False)
        if r.returncode != 0:
            raise AssertionError(f"kubectl apply: {r.stderr}")

    def wait_running(self, name: str, timeout: float = 90) -> PodState:
        last: list[PodState] = []

        def running() -> bool:
            last[:] = [self.pod_state(name)]
            return last[0].phase == "Running"
        try:
            wait_for(f"pod {name} Running", running, timeout)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; last state {last[0] if last else None}") from None
        return last[0]

    def pod_on_every_node(self, prefix: str) -> dict[str, PodState]:
        """Start a pod on every node and wait until each is Running with an address from its node's pod CIDR."""
        for node in self.nodes:
            self.start_pod(f"{prefix}-{node}", node)
        states = {node: self.wait_running(f"{prefix}-{node}") for node in self.nodes}
        for node, state in states.items():
            cidr = ipaddress.ip_network(self.cluster.node(node).pod_cidr)
            assert ipaddress.ip_address(state.ip) in cidr, f"{node}: pod IP {state.ip} not from the primary CNI"
        return states

    def second_network(self) -> None:
        self._apply({"apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
                     "metadata": {"name": NAD_NAME, "namespace": TEST_NAMESPACE},
                     "spec": {"config": json.dumps({
                         "cniVersion": "0.3.1", "name": NAD_NAME, "type": "bridge", "bridge": "br-second",
                         "ipam": {"type": "host-local", "subnet": NAD_SUBNET}})}})

    def net1_address(self, pod: str) -> str:
        out = self.kubectl("exec", "-n", TEST_NAMESPACE, pod, "--", "ip", "-o", "-4", "addr", "show", "net1").stdout
        return out.split()[3].split("/")[0]

    def cleanup_pod_nodes(self) -> set[str]:
        """The nodes whose kubelet started a cleanup node pod (from the Events it wrote)."""
        events = self.cluster.get_json("events", "-n", NAMESPACE, "--field-selector",
                                       "involvedObject.kind=Pod,reason=Started")["items"]
        return {e.get("source", {}).get("host") or e.get("reportingInstance", "") for e in events
                if e["involvedObject"]["name"].startswith("multus-cleanup-") and
                e["involvedObject"]["name"].count("-") >= 3}

    # -- between tests ------------------------------------------------------------------------------------
    def reset(self) -> None:
        """No release, no test pods, every kubelet running and every node's files as `up` wrote them."""
        for node in self.nodes:
            if not self.cluster.kubelet_running(node):
                self.cluster.start_kubelet(node)
        self.cluster.wait_ready(timeout=120)
        releases = json.loads(self.helm(HELM3, "list", "--all-namespaces", "--all", "-o", "json").stdout or "[]")
        for rel in releases:
            self.helm(HELM3, "uninstall", rel["name"], "-n", rel["namespace"], "--no-hooks", "--wait",
                      "--timeout", "2m", check=False)
        self.kubectl("delete", "pods,network-attachment-definitions", "-n", TEST_NAMESPACE, "--all",
                     "--grace-period=1", "--wait=true", check=False, timeout=180)
        self.kubectl("delete", "jobs,pods,daemonsets", "-n", NAMESPACE, "-l", "app.kubernetes.io/name",
                     "--wait=true", "--grace-period=1", check=False, timeout=180)
        self.kubectl("delete", "events", "-n", NAMESPACE, "--all", check=False)  # each test sees its own
        for node in self.nodes:
            root = self.cluster.node_root(node)
            for p in MULTUS_PATHS:
                target = root / p
                if target.is_dir() and not target.is_symlink():
                    shutil.rmtree(target)
                elif target.exists() or target.is_symlink():
                    target.unlink()
            self.cluster.in_node(node, "rm", "-rf", "/run/multus", check=False)
            net_d = root / "etc/cni/net.d"
            for extra in net_d.iterdir():
                if extra.name != PRIMARY_CONFIG:
                    shutil.rmtree(extra) if extra.is_dir() else extra.unlink()
            (net_d / PRIMARY_CONFIG).write_bytes(self.primary[node])
