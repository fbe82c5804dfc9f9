"""The sandbox's namespace driver: run by `demo/sandbox.py` as a script under
`unshare -m -n --propagation private`, never imported by the rest. Standard library only, no package imports.

It prepares the private mount namespace (lo up, namespace-private overlays, hidden /usr/lib/cni), starts
containerd, prints `READY <containerd pid>`, and waits until its stdin says STOP or closes; then it stops
containerd by PID, kills by PID whatever else runs in its mount namespace, and lazily unmounts.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path


class DriverError(RuntimeError):
    pass


def _mountpoints() -> list[tuple[str, str]]:
    """(mount point, fs type) of this mount namespace, in mount order."""
    result = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        sep = fields.index("-")
        point = fields[4].encode().decode("unicode_escape")
        result.append((point, fields[sep + 1]))
    return result


def _run(*args: str) -> None:
    r = subprocess.run(args, capture_output=True, text=True, check=False)
    if r.returncode != 0:
        raise DriverError(f"{' '.join(args)}: {r.stderr.strip() or r.returncode}")


def _inside(path: str, ancestor: str) -> bool:
    return path == ancestor or path.startswith(ancestor.rstrip("/") + "/")


def _driver(spec_path: str) -> int:
    spec = json.loads(Path(spec_path).read_text())
    tmp, nsfs = spec["tmp"], spec["nsfs"]
    my_mnt_ns = os.readlink("/proc/self/ns/mnt")
    if my_mnt_ns == spec["outer_mnt_ns"]:
        raise DriverError("refusing to run: not in a private mount namespace")
    if os.readlink("/proc/self/ns/net") == spec["outer_net_ns"]:
        raise DriverError("refusing to run: not in a private network namespace")
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        if "shared:" in " ".join(fields[6:fields.index("-")]):
            raise DriverError(f"refusing to run: mount {fields[4]} propagates to the machine (shared)")
    _run("ip", "link", "set", "lo", "up")
    _run("mount", "-t", "tmpfs", "-o", "mode=0700", "tmpfs", nsfs)

    # Shadow missing parents (and /run, where containerd's shims keep sockets) with an overlay: the
    # writable layer is on the namespace-private tmpfs, so mkdir below never reaches the real disk.
    roots: list[str] = list(spec["overlay_always"])
    for target in spec["targets"]:
        if not Path(target).is_dir():
            ancestor = Path(target).parent
            while not ancestor.is_dir():
                ancestor = ancestor.parent
            if str(ancestor) == "/":
                raise DriverError(f"no parent of {target} exists to shadow")
            roots.append(str(ancestor))
    roots = sorted({r for r in roots if not any(r != o and _inside(r, o) for o in roots)})
    if any(_inside(tmp, r) for r in roots):
        raise DriverError(f"the temp dir {tmp} must not be under {roots}")
    for i, root in enumerate(roots):
        upper, work = f"{nsfs}/ovl{i}/upper", f"{nsfs}/ovl{i}/work"
        os.makedirs(upper)
        os.makedirs(work)
        _run("mount", "-t", "overlay", "overlay", "-o", f"lowerdir={root},upperdir={upper},workdir={work}", root)
        if (root, "overlay") not in _mountpoints():
            raise DriverError(f"overlay on {root} did not take")
    for target in spec["targets"]:
        if not Path(target).is_dir():
            if not any(_inside(target, r) for r in roots):
                raise DriverError(f"refusing to create {target} outside a namespace-private overlay")
            os.makedirs(target)
    for hidden in spec["hide"]:
        _run("mount", "--bind", "-o", "ro", spec["empty"], hidden)

    stopped = False
    with Path(spec["log"]).open("w") as log:
        containerd = subprocess.Popen(["containerd", "--config", spec["config"]], stdout=log, stderr=log,
                                      stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            if containerd.poll() is not None:
                raise DriverError(f"containerd exited with {containerd.returncode}; see {spec['log']}")
            r = subprocess.run(["ctr", "-a", spec["sock"], "version"], capture_output=True, check=False)
            if r.returncode == 0:
                break
            if time.monotonic() > deadline:
                raise DriverError(f"containerd did not answer on {spec['sock']} within 30 s")
            time.sleep(0.1)
        print(f"READY {containerd.pid}", flush=True)
        for line in sys.stdin:
            if line.strip() == "STOP":
                stopped = True
                break
    finally:
        if containerd.poll() is None and not stopped:
            # our parent went away mid-run: remove its pods while containerd can still do it
            ctr = ["ctr", "-a", spec["sock"], "-n", spec["namespace"]]
            with contextlib.suppress(Exception):
                tasks = subprocess.run([*ctr, "tasks", "ls", "-q"], capture_output=True, text=True,
                                       timeout=30, check=False).stdout.split()
                for task in tasks:
                    subprocess.run([*ctr, "tasks", "delete", "-f", task], capture_output=True, timeout=30,
                                   check=False)
        if containerd.poll() is None:
            containerd.terminate()
            try:
                containerd.wait(timeout=15)
            except subprocess.TimeoutExpired:
                containerd.kill()
                containerd.wait(timeout=10)
        # whatever else still lives in this private mount namespace (shims, ctr) was started by us
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit() and int(entry.name) != os.getpid():
                with contextlib.suppress(OSError):
                    if os.readlink(entry / "ns/mnt") == my_mnt_ns:
                        os.kill(int(entry.name), signal.SIGKILL)
        for point, _ in reversed(_mountpoints()):
            if _inside(point, tmp) or point in spec["targets"] or point in roots or point in spec["hide"]:
                subprocess.run(["umount", "-l", point], capture_output=True, check=False)
        if not stopped:  # our parent went away without closing the sandbox: remove its temp dir ourselves
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: nsdriver.py SPEC.json  (run by demo/sandbox.py under unshare)", file=sys.stderr)
        return 2
    try:
        return _driver(argv[0])
    except DriverError as exc:
        print(f"ERROR {exc}", flush=True)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
