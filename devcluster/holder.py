"""A node's namespace holder: run by devcluster/cluster.py as a script, as
`nsenter --net=NODE_NETNS unshare -m --propagation private python3 holder.py SPEC.json`; never imported.
Standard library only.

In its private mount namespace it makes the node's view of the filesystem: a fresh /run and a sysfs of the
node's network namespace; the node's own directories (DIR/nodes/NAME/root/...) bound over /etc/cni/net.d,
/opt/cni/bin, /var/lib/kubelet, /var/lib/containerd, ... (a missing parent such as /etc/cni or /opt/cni is
shadowed by an overlay whose writable layer is namespace-private, so nothing is created on the machine's
disk); then it makes the tree shared *inside* this namespace only, as on a real node, so that the kubelet's
and Multus's Bidirectional and HostToContainer mounts work. It sets the node's sysctls, prints READY and
sleeps until SIGTERM. The node's processes (containerd, kubelet, kube-proxy) are started by cluster.py with
`nsenter -t <this pid> -m -n`; the namespace goes away with the last of them.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path


class HolderError(RuntimeError):
    pass


def _run(*args: str) -> None:
    r = subprocess.run(args, capture_output=True, text=True, check=False)
    if r.returncode != 0:
        raise HolderError(f"{' '.join(args)}: {r.stderr.strip() or r.returncode}")


def _inside(path: str, ancestor: str) -> bool:
    return path == ancestor or path.startswith(ancestor.rstrip("/") + "/")


def _join_cgroups(procs_files: list[str]) -> None:
    for procs in procs_files:
        Path(procs).write_text(f"{os.getpid()}\n")


def _prepare(spec: dict[str, object]) -> None:
    nsfs = str(spec["nsfs"])
    binds = dict(spec["binds"])  # type: ignore[call-overload]
    if os.readlink("/proc/self/ns/mnt") == spec["outer_mnt_ns"]:
        raise HolderError("refusing to run: not in a private mount namespace")
    if os.readlink("/proc/self/ns/net") == spec["outer_net_ns"]:
        raise HolderError("refusing to run: not in the node's network namespace")
    _run("mount", "-t", "tmpfs", "-o", "mode=0700", "tmpfs", nsfs)

    # /sys of this network namespace (so /sys/class/net shows the node's interfaces), keeping the cgroups
    os.makedirs(f"{nsfs}/cgroup")
    _run("mount", "--rbind", "/sys/fs/cgroup", f"{nsfs}/cgroup")
    _run("mount", "-t", "sysfs", "sysfs", "/sys")
    _run("mount", "--move", f"{nsfs}/cgroup", "/sys/fs/cgroup")
    _run("mount", "-t", "tmpfs", "-o", "mode=0755", "tmpfs", "/run")

    targets = sorted(binds)
    roots: list[str] = []
    for target in targets:
        if not Path(target).is_dir():
            ancestor = Path(target).parent
            while not ancestor.is_dir():
                ancestor = ancestor.parent
            if str(ancestor) == "/":
                raise HolderError(f"no parent of {target} exists to shadow")
            roots.append(str(ancestor))
    roots = sorted({r for r in roots if not any(r != o and _inside(r, o) for o in roots)})
    for i, root in enumerate(roots):
        upper, work = f"{nsfs}/ovl{i}/upper", f"{nsfs}/ovl{i}/work"
        os.makedirs(upper)
        os.makedirs(work)
        _run("mount", "-t", "overlay", "overlay", "-o", f"lowerdir={root},upperdir={upper},workdir={work}", root)
    for target in targets:
        if not Path(target).is_dir():
            if not any(_inside(target, r) for r in roots) and not _inside(target, "/run"):
                raise HolderError(f"refusing to create {target} outside a namespace-private mount")
            os.makedirs(target)
        _run("mount", "--bind", binds[target], target)
    _run("mount", "--make-rshared", "/")

    for key, value in dict(spec["sysctls"]).items():  # type: ignore[call-overload]
        Path("/proc/sys", *key.split(".")).write_text(f"{value}\n")


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: holder.py SPEC.json  (run by devcluster/cluster.py)", file=sys.stderr)
        return 2
    spec = json.loads(Path(argv[0]).read_text())
    try:
        _join_cgroups(spec["cgroup_procs"])
        _prepare(spec)
    except (HolderError, OSError) as exc:
        print(f"ERROR {exc}", flush=True)
        return 1
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print("READY", flush=True)
    os.close(1)
    while True:
        signal.pause()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
