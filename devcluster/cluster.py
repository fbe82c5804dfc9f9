"""Stand up and tear down the throwaway cluster (tools/cluster up|down).

Layout, all under one directory DIR:
- DIR/kubeconfig: the admin's (system:masters) kubeconfig, server https://127.0.0.1:PORT (the forwarder);
- DIR/state.json: what `up` started (PIDs, namespaces, cgroup), so `down` stops exactly that;
- DIR/pki, DIR/control-plane (etcd data, configs), DIR/logs/*.log (one per process);
- DIR/nodes/NAME/root/...: the node's own /etc/cni/net.d, /opt/cni/bin, /var/lib/cni, /var/lib/kubelet,
  /var/lib/containerd, /var/log/pods: what a test inspects to see a node's files (/run is the node's own
  tmpfs, as on a real node: read it with Cluster.in_node).

Network: a hub network namespace holds a bridge (HUB_IP) and the control plane; each node has a namespace
of its own with `eth0` (a veth into the hub bridge), its pod bridge `cni0` and routes to the other nodes'
pod CIDRs. kube-proxy (iptables) on each node turns the `kubernetes` Service into the API server's address.
Processes: every process of the cluster, containers included, runs in one cgroup subtree
(`multus-cleanup-test-ID` in each hierarchy; the kubelets' `cgroupRoot` is below it), which is how `down`
finds the containerd shims and containers that no PID file names.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from . import pki

HUB_IP = "10.250.0.1"
NODE_PREFIX = 24
SERVICE_CIDR = "10.96.0.0/16"
KUBERNETES_SERVICE_IP = "10.96.0.1"
CLUSTER_CIDR = "10.244.0.0/16"
API_PORT = 6443
CONTROL_PLANE_TAINT = "node-role.kubernetes.io/control-plane"
PLUGINS = ("bridge", "host-local", "loopback", "portmap")
SYSTEM_CNI_DIR = Path("/usr/lib/cni")
NODE_DIRS = ("etc/cni/net.d", "opt/cni/bin", "var/lib/cni", "var/lib/kubelet", "var/lib/containerd",
             "var/log/pods", "var/log/containers")
# the node's view must not hide DIR: /run is a fresh tmpfs in every node's mount namespace
FORBIDDEN_DIR_PARENTS = ("/run", "/var/run", "/sys", "/proc", "/dev")
REQUIRED_COMMANDS = {"containerd": "containerd", "ctr": "containerd", "runc": "runc", "ip": "iproute2",
                     "nsenter": "util-linux", "unshare": "util-linux", "iptables": "iptables",
                     "openssl": "openssl", "mount": "mount"}
HERE = Path(__file__).resolve().parent


class ClusterError(RuntimeError):
    """The cluster could not be stood up or used; the message says which part and why."""


@dataclass
class NodeState:
    name: str
    index: int
    ip: str
    pod_cidr: str
    netns: str
    control_plane: bool
    holder_pid: int = 0


@dataclass
class State:
    id: str
    dir: str
    port: int = 0
    hub_netns: str = ""
    cgroup: str = ""
    nodes: list[NodeState] = field(default_factory=list)
    processes: dict[str, int] = field(default_factory=dict)  # "control-plane/etcd", "NODE/kubelet" -> PID

    def save(self) -> None:
        path = Path(self.dir, "state.json")
        path.with_suffix(".tmp").write_text(json.dumps(asdict(self), indent=2) + "\n")
        path.with_suffix(".tmp").replace(path)

    @classmethod
    def load(cls, directory: Path) -> State:
        raw = json.loads((directory / "state.json").read_text())
        raw["nodes"] = [NodeState(**n) for n in raw["nodes"]]
        return cls(**raw)


# ---------------------------------------------------------------------------------------------------------
# small helpers


def _run(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)
    if check and r.returncode != 0:
        raise ClusterError(f"{' '.join(args)}: {(r.stderr or r.stdout).strip() or r.returncode}")
    return r


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _wait(what: str, ok: Callable[[], bool], timeout: float, why: Callable[[], str] = lambda: "",
          interval: float = 0.5) -> None:
    deadline = time.monotonic() + timeout
    while not ok():
        if time.monotonic() > deadline:
            detail = why()
            raise ClusterError(f"{what} did not happen within {timeout:.0f} s" + (f": {detail}" if detail else ""))
        time.sleep(interval)


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def missing_prerequisites() -> list[str]:
    missing = [f"{cmd} (Debian package {pkg})" for cmd, pkg in REQUIRED_COMMANDS.items() if not shutil.which(cmd)]
    missing += [f"{SYSTEM_CNI_DIR / p} (Debian package containernetworking-plugins)" for p in PLUGINS
                if not (SYSTEM_CNI_DIR / p).exists()]
    if os.geteuid() != 0:
        missing.append("root (the cluster needs network and mount namespaces and cgroups)")
    return missing


# ---------------------------------------------------------------------------------------------------------
# cgroups: one subtree holds every process of the cluster


def _hierarchies() -> list[Path]:
    """The cgroup mount points: one per v1 hierarchy, or the single v2 one."""
    unified = Path("/sys/fs/cgroup")
    if (unified / "cgroup.controllers").exists():
        return [unified]
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, right = line.split(" - ", 1)
        if right.split()[0] == "cgroup":
            points.append(Path(left.split()[4]))
    return sorted(points)


def _make_cgroup(relative: str) -> None:
    for top in _hierarchies():
        path = top
        for part in Path(relative).parts:
            parent, path = path, path / part
            if not path.is_dir():
                path.mkdir()
                for key in ("cpuset.cpus", "cpuset.mems"):  # v1 cpuset children start empty
                    if (parent / key).exists() and (path / key).exists():
                        (path / key).write_text((parent / key).read_text())
            if (top / "cgroup.controllers").exists() and path != top / relative:
                with contextlib.suppress(OSError):  # v2: let the children use the controllers
                    wanted = (path / "cgroup.controllers").read_text().split()
                    (path / "cgroup.subtree_control").write_text(" ".join(f"+{c}" for c in wanted))


def _procs_files(relative: str) -> list[str]:
    return [str(top / relative / "cgroup.procs") for top in _hierarchies()]


def _cgroup_pids(relative: str) -> set[int]:
    pids: set[int] = set()
    for top in _hierarchies():
        root = top / relative
        if root.is_dir():
            for procs in root.rglob("cgroup.procs"):
                with contextlib.suppress(OSError):
                    pids.update(int(p) for p in procs.read_text().split())
    return pids


def _remove_cgroup(relative: str) -> None:
    for top in _hierarchies():
        root = top / relative
        if root.is_dir():
            for path in sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
                with contextlib.suppress(OSError):
                    path.rmdir()
            with contextlib.suppress(OSError):
                root.rmdir()


# ---------------------------------------------------------------------------------------------------------
# the cluster


class Cluster:
    """A running throwaway cluster, from its directory."""

    def __init__(self, directory: Path, bins: Path) -> None:
        self.dir = directory.resolve()
        self.bins = bins
        self.state = State.load(self.dir)

    # -- paths and commands -------------------------------------------------------------------------------
    @property
    def kubeconfig(self) -> Path:
        return self.dir / "kubeconfig"

    @property
    def hub_kubeconfig(self) -> Path:
        """The admin's kubeconfig for a process run with `hub_prefix()`, straight to the API server."""
        return self.dir / "kubeconfig.hub"

    def hub_prefix(self) -> list[str]:
        """Command prefix that runs a process in the control plane's network namespace."""
        return ["nsenter", f"--net=/run/netns/{self.state.hub_netns}", "--"]

    def node_root(self, node: str) -> Path:
        return self.dir / "nodes" / node / "root"

    def node(self, name: str) -> NodeState:
        for n in self.state.nodes:
            if n.name == name:
                return n
        raise ClusterError(f"no node {name} in this cluster ({', '.join(n.name for n in self.state.nodes)})")

    def kubectl(self, *args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
        return _run(str(self.bins / "kubectl"), "--kubeconfig", str(self.kubeconfig), *args, timeout=timeout,
                    check=check)

    def in_node(self, node: str, *argv: str, timeout: float = 120,
                check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run a command in the node's mount and network namespaces (as a process on that node)."""
        return _run("nsenter", "-t", str(self.node(node).holder_pid), "-m", "-n", "--", *argv, timeout=timeout,
                    check=check)

    def ctr(self, node: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return self.in_node(node, "ctr", "-a", "/run/containerd/containerd.sock", "-n", "k8s.io", *args,
                            timeout=timeout)

    # -- processes ----------------------------------------------------------------------------------------
    def _launch(self, key: str, argv: Sequence[str], prefix: Sequence[str], cgroup: str) -> int:
        procs = _procs_files(cgroup)

        def join_cgroup() -> None:
            for f in procs:
                Path(f).write_text(f"{os.getpid()}\n")

        log = self.dir / "logs" / (key.replace("/", "-") + ".log")
        with log.open("ab") as out:
            proc = subprocess.Popen([*prefix, *argv], stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                    start_new_session=True, preexec_fn=join_cgroup)
        self.state.processes[key] = proc.pid
        self.state.save()
        return proc.pid

    def _stop(self, key: str, timeout: float = 20) -> None:
        pid = self.state.processes.pop(key, 0)
        self.state.save()
        if pid and _alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            if _alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)

    def _node_prefix(self, node: NodeState) -> list[str]:
        return ["nsenter", "-t", str(node.holder_pid), "-m", "-n", "--"]

    def start_kubelet(self, node: str) -> None:
        n = self.node(node)
        config = self.dir / "nodes" / n.name / "config"
        self._launch(f"{n.name}/kubelet", [
            str(self.bins / "kubelet"), f"--config={config / 'kubelet.yaml'}",
            f"--kubeconfig={config / 'kubelet.kubeconfig'}", f"--hostname-override={n.name}",
            f"--node-ip={n.ip}", "--v=1"], self._node_prefix(n), f"{self.state.cgroup}/{n.name}-system")

    def stop_kubelet(self, node: str) -> None:
        """Stop the node's kubelet (its pods keep running, as when a real kubelet dies)."""
        self._stop(f"{self.node(node).name}/kubelet")

    def kubelet_running(self, node: str) -> bool:
        pid = self.state.processes.get(f"{node}/kubelet", 0)
        return bool(pid) and _alive(pid)

    # -- API ----------------------------------------------------------------------------------------------
    def get_json(self, *args: str) -> Any:
        return json.loads(self.kubectl("get", *args, "-o", "json").stdout)

    def ready_nodes(self) -> set[str]:
        r = self.kubectl("get", "nodes", "-o", "json", check=False)
        if r.returncode != 0:
            return set()
        ready = set()
        for item in json.loads(r.stdout)["items"]:
            for cond in item.get("status", {}).get("conditions", []):
                if cond["type"] == "Ready" and cond["status"] == "True":
                    ready.add(item["metadata"]["name"])
        return ready

    def wait_ready(self, nodes: Sequence[str] | None = None, timeout: float = 180) -> None:
        wanted = set(nodes if nodes is not None else (n.name for n in self.state.nodes))
        _wait(f"nodes {sorted(wanted)} Ready", lambda: wanted <= self.ready_nodes(), timeout,
              lambda: f"Ready: {sorted(self.ready_nodes())}; see {self.dir / 'logs'}")

    def import_images(self, archives: Sequence[Path], nodes: Sequence[str] | None = None,
                      tags: Sequence[tuple[str, str]] = ()) -> None:
        """Import OCI archives into the nodes' containerd (k8s.io namespace), the nodes in parallel; then add
        each (source, target) tag. An archive named `name:tag` is stored under that short name, which the CRI
        plugin only knows as docker.io/library/name:tag: tag it with that name too, or pods cannot use it."""
        errors: list[str] = []

        def one(node: str) -> None:
            try:
                for archive in archives:
                    self.ctr(node, "images", "import", str(archive))
                for source, target in tags:
                    self.ctr(node, "images", "tag", "--force", source, target)
            except ClusterError as exc:
                errors.append(f"{node}: {exc}")

        threads = [threading.Thread(target=one, args=(n,)) for n in (nodes or [n.name for n in self.state.nodes])]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise ClusterError("image import failed: " + "; ".join(errors))


# ---------------------------------------------------------------------------------------------------------
# up


def _node_states(cluster_id: str, count: int) -> list[NodeState]:
    names = (["control-plane"] + [f"worker-{i}" for i in range(1, count)])[:count]
    return [NodeState(name=name, index=i + 1, ip=f"10.250.0.{10 + i + 1}", pod_cidr=f"10.244.{i + 1}.0/24",
                      netns=f"mct-{cluster_id}-n{i + 1}", control_plane=(i == 0)) for i, name in enumerate(names)]


def _write_pki(d: Path, nodes: list[NodeState]) -> dict[str, pki.TokenUser]:
    p = d / "pki"
    p.mkdir()
    pki.make_ca(p)
    pki.issue(p, "apiserver", "kube-apiserver", server=True, sans=(
        KUBERNETES_SERVICE_IP, HUB_IP, "127.0.0.1", "localhost", "kubernetes", "kubernetes.default",
        "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"))
    pki.issue(p, "apiserver-kubelet-client", "kube-apiserver-kubelet-client", org="system:masters")
    pki.issue(p, "admin", "kubernetes-admin", org="system:masters")
    for n in nodes:
        pki.issue(p, f"kubelet-{n.name}", n.name, server=True, sans=(n.ip, n.name))
    pki.make_service_account_keys(p)
    users = {"kube-controller-manager": pki.new_token("system:kube-controller-manager"),
             "kube-scheduler": pki.new_token("system:kube-scheduler"),
             "kube-proxy": pki.new_token("system:kube-proxy")}
    for n in nodes:
        users[n.name] = pki.new_token(f"system:node:{n.name}", "system:nodes")
    pki.write_token_file(p / "tokens.csv", list(users.values()))
    return users


def _setup_network(state: State) -> None:
    hub = state.hub_netns
    _run("ip", "netns", "add", hub)
    _run("ip", "-n", hub, "link", "set", "lo", "up")
    _run("ip", "-n", hub, "link", "add", "br0", "type", "bridge")
    _run("ip", "-n", hub, "addr", "add", f"{HUB_IP}/{NODE_PREFIX}", "dev", "br0")
    _run("ip", "-n", hub, "link", "set", "br0", "up")
    for n in state.nodes:
        _run("ip", "netns", "add", n.netns)
        _run("ip", "-n", hub, "link", "add", f"veth{n.index}", "type", "veth", "peer", "name", "eth0",
             "netns", n.netns)
        _run("ip", "-n", hub, "link", "set", f"veth{n.index}", "master", "br0", "up")
        _run("ip", "-n", n.netns, "link", "set", "lo", "up")
        _run("ip", "-n", n.netns, "addr", "add", f"{n.ip}/{NODE_PREFIX}", "dev", "eth0")
        _run("ip", "-n", n.netns, "link", "set", "eth0", "up")
        _run("ip", "-n", n.netns, "route", "add", "default", "via", HUB_IP)
        # the API server reaches pods (webhooks, kubectl exec) and nodes reach each other's pods
        _run("ip", "-n", hub, "route", "add", n.pod_cidr, "via", n.ip)
        for other in state.nodes:
            if other is not n:
                _run("ip", "-n", n.netns, "route", "add", other.pod_cidr, "via", other.ip)


def _primary_cni_config(node: NodeState) -> dict[str, Any]:
    return {"cniVersion": "1.0.0", "name": "cluster-pods", "plugins": [
        {"type": "bridge", "bridge": "cni0", "isGateway": True, "ipMasq": True, "hairpinMode": True,
         "ipam": {"type": "host-local", "ranges": [[{"subnet": node.pod_cidr}]],
                  "routes": [{"dst": "0.0.0.0/0"}]}},
        {"type": "portmap", "capabilities": {"portMappings": True}}]}


def _can_lower_oom_score() -> bool:
    """Whether this process may lower an oom_score_adj (CAP_SYS_RESOURCE), as the kubelet asks for pods."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("CapEff:"):
            return bool(int(line.split()[1], 16) & (1 << 24))
    return False


def _write_node(state: State, n: NodeState, users: dict[str, pki.TokenUser], pause_image: str) -> None:
    d = Path(state.dir)
    base = d / "nodes" / n.name
    root, config = base / "root", base / "config"
    for sub in NODE_DIRS:
        (root / sub).mkdir(parents=True, exist_ok=True)
    config.mkdir(parents=True)
    (base / "nsfs").mkdir()
    for plugin in PLUGINS:
        shutil.copy2(SYSTEM_CNI_DIR / plugin, root / "opt/cni/bin" / plugin)
    (root / "etc/cni/net.d/10-cluster-pods.conflist").write_text(json.dumps(_primary_cni_config(n), indent=2) + "\n")
    server = f"https://{HUB_IP}:{API_PORT}"
    ca = d / "pki" / "ca.crt"
    (config / "kubelet.kubeconfig").write_text(pki.kubeconfig(server, ca, token=users[n.name].token, user=n.name))
    (config / "kube-proxy.kubeconfig").write_text(
        pki.kubeconfig(server, ca, token=users["kube-proxy"].token, user="kube-proxy"))
    (config / "resolv.conf").write_text("nameserver 127.0.0.1\n")
    restrict_oom = "true" if not _can_lower_oom_score() else "false"
    oom_note = ("this machine withholds CAP_SYS_RESOURCE: pods keep containerd's oom_score_adj"
                if restrict_oom == "true" else "pods get the kubelet's oom_score_adj")
    (config / "containerd.toml").write_text(f"""version = 2
root = "/var/lib/containerd"
state = "/run/containerd"
[grpc]
  address = "/run/containerd/containerd.sock"
[plugins."io.containerd.internal.v1.opt"]
  path = "/var/lib/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{pause_image}"
  enable_selinux = false
  # {oom_note}
  restrict_oom_score_adj = {restrict_oom}
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/opt/cni/bin"
    conf_dir = "/etc/cni/net.d"
""")
    kubelet: dict[str, Any] = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1", "kind": "KubeletConfiguration",
        "address": n.ip, "port": 10250, "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1", "healthzPort": 10248,
        "tlsCertFile": str(d / "pki" / f"kubelet-{n.name}.crt"),
        "tlsPrivateKeyFile": str(d / "pki" / f"kubelet-{n.name}.key"),
        "authentication": {"anonymous": {"enabled": False}, "webhook": {"enabled": True},
                           "x509": {"clientCAFile": str(ca)}},
        "authorization": {"mode": "Webhook"},
        "containerRuntimeEndpoint": "unix:///run/containerd/containerd.sock",
        "cgroupDriver": "cgroupfs", "cgroupRoot": f"/{state.cgroup}/{n.name}", "failCgroupV1": False,
        "failSwapOn": False, "resolvConf": str(config / "resolv.conf"), "clusterDomain": "cluster.local",
        # the machine's disk and memory are shared by every node: never evict or collect images for it
        "evictionHard": {"memory.available": "1Mi", "nodefs.available": "1%", "nodefs.inodesFree": "1%",
                         "imagefs.available": "1%"},
        "imageGCHighThresholdPercent": 100, "imageGCLowThresholdPercent": 99,
        "localStorageCapacityIsolation": False, "serializeImagePulls": False,
        "podCIDR": n.pod_cidr, "maxPods": 110,
        "registerWithTaints": ([{"key": CONTROL_PLANE_TAINT, "effect": "NoSchedule"}] if n.control_plane else []),
    }
    (config / "kubelet.yaml").write_text(json.dumps(kubelet, indent=2) + "\n")
    proxy = {"apiVersion": "kubeproxy.config.k8s.io/v1alpha1", "kind": "KubeProxyConfiguration",
             "mode": "iptables", "clientConnection": {"kubeconfig": str(config / "kube-proxy.kubeconfig")},
             "hostnameOverride": n.name, "bindAddress": n.ip, "clusterCIDR": CLUSTER_CIDR,
             "healthzBindAddress": "127.0.0.1:10256", "metricsBindAddress": "127.0.0.1:10249",
             "conntrack": {"maxPerCore": 0}}  # the conntrack table is the machine's: leave its size alone
    (config / "kube-proxy.yaml").write_text(json.dumps(proxy, indent=2) + "\n")
    holder_spec = {
        "nsfs": str(base / "nsfs"),
        "outer_mnt_ns": os.readlink("/proc/self/ns/mnt"), "outer_net_ns": os.readlink("/proc/self/ns/net"),
        "binds": {f"/{sub}": str(root / sub) for sub in NODE_DIRS},
        "sysctls": {"net.ipv4.ip_forward": 1, "net.bridge.bridge-nf-call-iptables": 1},
        "cgroup_procs": _procs_files(f"{state.cgroup}/{n.name}-system"),
    }
    (config / "holder.json").write_text(json.dumps(holder_spec, indent=2) + "\n")


def _start_holder(state: State, n: NodeState) -> None:
    config = Path(state.dir) / "nodes" / n.name / "config"
    log = Path(state.dir) / "logs" / f"{n.name}-holder.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(
            ["nsenter", f"--net=/run/netns/{n.netns}", "--", "unshare", "-m", "--propagation", "private", "--",
             sys.executable, str(HERE / "holder.py"), str(config / "holder.json")],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=out, start_new_session=True)
    assert proc.stdout is not None
    line = proc.stdout.readline().decode().strip()
    proc.stdout.close()
    if line != "READY":
        raise ClusterError(f"node {n.name}: namespace setup failed: {line or _tail(log)}")
    n.holder_pid = proc.pid
    state.processes[f"{n.name}/holder"] = proc.pid
    state.save()


def _control_plane_args(state: State, bins: Path, users: dict[str, pki.TokenUser],
                        node_monitor_grace_seconds: int | None) -> dict[str, list[str]]:
    d = Path(state.dir)
    p, cp = d / "pki", d / "control-plane"
    local = f"https://127.0.0.1:{API_PORT}"
    for name in ("kube-controller-manager", "kube-scheduler"):
        (cp / f"{name}.kubeconfig").write_text(
            pki.kubeconfig(local, p / "ca.crt", token=users[name].token, user=name))
    kcm = [str(bins / "kube-controller-manager"), f"--kubeconfig={cp / 'kube-controller-manager.kubeconfig'}",
           f"--service-account-private-key-file={p / 'sa.key'}", f"--root-ca-file={p / 'ca.crt'}",
           "--use-service-account-credentials=true", "--leader-elect=false", "--bind-address=127.0.0.1",
           f"--service-cluster-ip-range={SERVICE_CIDR}", "--cluster-name=multus-cleanup-test"]
    if node_monitor_grace_seconds:
        kcm.append(f"--node-monitor-grace-period={node_monitor_grace_seconds}s")
    return {
        "etcd": [str(bins / "etcd"), f"--data-dir={cp / 'etcd'}", "--name=default",
                 "--listen-client-urls=http://127.0.0.1:2379", "--advertise-client-urls=http://127.0.0.1:2379",
                 "--listen-peer-urls=http://127.0.0.1:2380",
                 "--initial-advertise-peer-urls=http://127.0.0.1:2380",
                 "--initial-cluster=default=http://127.0.0.1:2380",
                 # throwaway data: do not pay for fsync on a disk the whole machine shares
                 "--unsafe-no-fsync=true", "--log-level=warn"],
        "kube-apiserver": [
            str(bins / "kube-apiserver"), "--etcd-servers=http://127.0.0.1:2379",
            "--bind-address=0.0.0.0", f"--secure-port={API_PORT}", f"--advertise-address={HUB_IP}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            f"--tls-cert-file={p / 'apiserver.crt'}", f"--tls-private-key-file={p / 'apiserver.key'}",
            f"--client-ca-file={p / 'ca.crt'}", f"--token-auth-file={p / 'tokens.csv'}",
            "--authorization-mode=Node,RBAC", "--enable-admission-plugins=NodeRestriction",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={p / 'sa.pub'}", f"--service-account-signing-key-file={p / 'sa.key'}",
            f"--kubelet-client-certificate={p / 'apiserver-kubelet-client.crt'}",
            f"--kubelet-client-key={p / 'apiserver-kubelet-client.key'}",
            "--kubelet-preferred-address-types=InternalIP", "--allow-privileged=true", "--profiling=false"],
        "kube-controller-manager": kcm,
        "kube-scheduler": [str(bins / "kube-scheduler"), f"--kubeconfig={cp / 'kube-scheduler.kubeconfig'}",
                           "--leader-elect=false", "--bind-address=127.0.0.1"],
    }


def up(directory: Path, bins: Path, *, nodes: int = 2, images: Sequence[Path] = (), pause_image: str,
       image_tags: Sequence[tuple[str, str]] = (),
       node_monitor_grace_seconds: int | None = None, log: Callable[[str], None] = print) -> Cluster:
    """Stand up a cluster in DIR (which must not hold one) and return it with every node Ready."""
    if nodes < 0:
        raise ClusterError("--nodes must be 0 (the control plane alone, e.g. for fake nodes) or more")
    if missing := missing_prerequisites():
        raise ClusterError("missing: " + ", ".join(missing))
    d = directory.resolve()
    if any(d == Path(f) or Path(f) in d.parents for f in FORBIDDEN_DIR_PARENTS):
        raise ClusterError(f"--dir {d}: must not be under {', '.join(FORBIDDEN_DIR_PARENTS)}")
    if (d / "state.json").exists():
        raise ClusterError(f"--dir {d} already holds a cluster: `tools/cluster down --dir {d}` first")
    for b in ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy",
              "kubectl"):
        if not (bins / b).exists():
            raise ClusterError(f"{bins / b} missing: run tools/build-real")
    d.mkdir(parents=True, exist_ok=True)
    for sub in ("logs", "control-plane"):
        (d / sub).mkdir(exist_ok=True)
    cluster_id = secrets.token_hex(3)
    state = State(id=cluster_id, dir=str(d), hub_netns=f"mct-{cluster_id}-hub",
                  cgroup=f"multus-cleanup-test-{cluster_id}", nodes=_node_states(cluster_id, nodes))
    state.save()
    start = time.monotonic()

    def say(msg: str) -> None:
        log(f"[{time.monotonic() - start:5.1f}s] {msg}")

    try:
        say(f"cluster {cluster_id} in {d}: {nodes} node(s)")
        users = _write_pki(d, state.nodes)
        _make_cgroup(f"{state.cgroup}/control-plane")
        for n in state.nodes:
            _make_cgroup(f"{state.cgroup}/{n.name}-system")
            _make_cgroup(f"{state.cgroup}/{n.name}")
        _setup_network(state)
        state.save()
        cluster = Cluster(d, bins)
        hub = cluster.hub_prefix()
        cp_group = f"{state.cgroup}/control-plane"
        port_file = d / "control-plane" / "forward.port"
        cluster._launch("control-plane/forward", [sys.executable, str(HERE / "forward.py"),
                                                  f"/run/netns/{state.hub_netns}", HUB_IP, str(API_PORT),
                                                  str(port_file)], [], cp_group)
        _wait("the API forwarder", port_file.exists, 10)
        cluster.state.port = int(port_file.read_text())
        cluster.state.save()
        p = d / "pki"
        cluster.kubeconfig.write_text(pki.kubeconfig(f"https://127.0.0.1:{cluster.state.port}", p / "ca.crt",
                                                     cert=p / "admin.crt", key=p / "admin.key", user="admin"))
        # the same for a process in the hub namespace (Cluster.hub_prefix): no forwarder in between
        cluster.hub_kubeconfig.write_text(pki.kubeconfig(f"https://{HUB_IP}:{API_PORT}", p / "ca.crt",
                                                         cert=p / "admin.crt", key=p / "admin.key", user="admin"))
        args = _control_plane_args(cluster.state, bins, users, node_monitor_grace_seconds)
        for key in ("etcd", "kube-apiserver"):
            cluster._launch(f"control-plane/{key}", args[key], hub, cp_group)
        say("etcd and kube-apiserver started")
        _wait("kube-apiserver /readyz", lambda: cluster.kubectl("get", "--raw", "/readyz", check=False).returncode == 0,
              120, lambda: _tail(d / "logs" / "control-plane-kube-apiserver.log"))
        say("kube-apiserver ready")
        for key in ("kube-controller-manager", "kube-scheduler"):
            cluster._launch(f"control-plane/{key}", args[key], hub, cp_group)
        for n in cluster.state.nodes:
            _write_node(cluster.state, n, users, pause_image)
            _start_holder(cluster.state, n)
            cluster._launch(f"{n.name}/containerd", ["containerd", "--config",
                                                     str(d / "nodes" / n.name / "config" / "containerd.toml")],
                            cluster._node_prefix(n), f"{cluster.state.cgroup}/{n.name}-system")
        for n in cluster.state.nodes:
            _wait(f"containerd on {n.name}", lambda n=n: cluster.in_node(  # type: ignore[misc]
                n.name, "ctr", "-a", "/run/containerd/containerd.sock", "version", check=False).returncode == 0,
                  30, lambda n=n: _tail(d / "logs" / f"{n.name}-containerd.log"))  # type: ignore[misc]
        say("containerd running on every node")
        if images and cluster.state.nodes:
            cluster.import_images(images, tags=image_tags)
            say(f"{len(images)} image(s) imported into every node")
        for n in cluster.state.nodes:
            cluster.start_kubelet(n.name)
            cluster._launch(f"{n.name}/kube-proxy", [str(bins / "kube-proxy"),
                                                     f"--config={d / 'nodes' / n.name / 'config' / 'kube-proxy.yaml'}"],
                            cluster._node_prefix(n), f"{cluster.state.cgroup}/{n.name}-system")
        cluster.wait_ready(timeout=180)
        for n in cluster.state.nodes:
            if n.control_plane:
                cluster.kubectl("label", "node", n.name, f"{CONTROL_PLANE_TAINT}=", "--overwrite")
        say(f"{nodes} node(s) Ready")
        return cluster
    except BaseException:
        with contextlib.suppress(Exception):
            down(d, log=lambda _msg: None)
        raise


# ---------------------------------------------------------------------------------------------------------
# down


def down(directory: Path, *, log: Callable[[str], None] = print, remove: bool = False) -> list[int]:
    """Stop what `up` started in DIR, by PID and by cgroup; return the PIDs still alive (none, normally)."""
    d = directory.resolve()
    if not (d / "state.json").exists():
        raise ClusterError(f"--dir {d}: no cluster state (state.json) here")
    state = State.load(d)
    order = sorted(state.processes, key=lambda k: (
        k.startswith("control-plane/"), {"kubelet": 0, "kube-proxy": 1, "containerd": 2, "holder": 3}.get(
            k.split("/")[1], 9), k))
    for key in order:
        pid = state.processes[key]
        if _alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 10
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
    left: set[int] = set()
    if state.cgroup:
        deadline = time.monotonic() + 30
        while (left := {p for p in _cgroup_pids(state.cgroup) | set(state.processes.values()) if _alive(p)}) \
                and time.monotonic() < deadline:
            for pid in left:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.2)
        _remove_cgroup(state.cgroup)
    for ns in [n.netns for n in state.nodes] + [state.hub_netns]:
        if ns and Path("/run/netns", ns).exists():
            _run("ip", "netns", "del", ns, check=False)
    log(f"cluster {state.id} stopped" + (f"; still alive: {sorted(left)}" if left else ""))
    state.processes = {}
    state.save()
    (d / "state.json").rename(d / "state.stopped.json")
    if remove:
        shutil.rmtree(d, ignore_errors=True)
    else:
        for n in state.nodes:  # the bulk: image snapshots
            shutil.rmtree(d / "nodes" / n.name / "root" / "var/lib/containerd", ignore_errors=True)
    return sorted(left)
