"""`sudo python3 -m demo` (from the repo root): watch a naive Multus uninstall break a real node, and
`multus-cleanup node` fix it.

A throwaway node runs a real container runtime (containerd + runc + the standard CNI plugins) in private
namespaces under a temp dir; the machine's own CNI setup is never touched. Needs root and a Debian-like
system; missing Debian packages are installed with apt-get, and `multus-cleanup` into `.venv` if needed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from . import footprint, sandbox
from .sandbox import Node, PodResult, PrimaryKind, Sandbox

REPO = Path(__file__).resolve().parent.parent
VENV = REPO / ".venv"
SCENARIOS = ("thin", "rename-conf-file", "thick")


class DemoError(RuntimeError):
    pass


class Steps:
    def __init__(self) -> None:
        self.n = 0

    def __call__(self, title: str, explanation: str = "") -> None:
        self.n += 1
        print(f"\n{self.n}. {title}")
        if explanation:
            print(textwrap.fill(textwrap.dedent(explanation).strip(), width=100,
                                initial_indent="   ", subsequent_indent="   "))


def show(lines: list[str] | str, prefix: str = "   | ") -> None:
    if isinstance(lines, str):
        lines = lines.rstrip("\n").splitlines()
    for line in lines:
        print(prefix + line)
    sys.stdout.flush()


def run(cmd: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    show(["$ " + " ".join(cmd)], prefix="   ")
    return subprocess.run(cmd, text=True, check=False, **kw)  # type: ignore[call-overload, no-any-return]


# ---------------------------------------------------------------------------------------------------------
# preparation


def ensure_packages(step: Steps) -> None:
    step("Check the tools the throwaway node needs",
         f"A real container runtime does the work here: Debian packages {', '.join(sandbox.APT_PACKAGES)}.")
    missing = sandbox.missing_packages()
    if not missing:
        show("all present: " + ", ".join(shutil.which(c) or c for c in ("containerd", "ctr", "runc")))
        return
    if shutil.which("apt-get") is None:
        raise DemoError(f"missing packages {missing} and no apt-get here; install them, then run again")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    show(f"missing: {' '.join(missing)}; installing them with apt-get")
    if run(["apt-get", "update"], env=env).returncode != 0:
        raise DemoError("apt-get update failed")
    if run(["apt-get", "install", "-y", "--no-install-recommends", *sandbox.APT_PACKAGES], env=env).returncode:
        raise DemoError("apt-get install failed")
    sandbox.require_prerequisites()


def _works(script: Path) -> bool:
    if not script.is_file():
        return False
    r = subprocess.run([str(script), "node", "--help"], capture_output=True, check=False)
    return r.returncode == 0


def ensure_engine(step: Steps) -> Path:
    step("Find the multus-cleanup console script",
         f"The demo runs the real `multus-cleanup node`, installed from this checkout into {VENV}.")
    script = VENV / "bin/multus-cleanup"
    if _works(script):
        show(f"using {script}")
        return script
    if not (VENV / "bin/python").exists() and run([sys.executable, "-m", "venv", str(VENV)]).returncode != 0:
        # Debian's python3 makes venvs only with python3-venv (ensurepip) installed
        if shutil.which("apt-get") is None:
            raise DemoError("python3 -m venv failed (on Debian: apt-get install python3-venv)")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        run(["apt-get", "install", "-y", "--no-install-recommends", "python3-venv"], env=env)
        shutil.rmtree(VENV, ignore_errors=True)
        if run([sys.executable, "-m", "venv", str(VENV)]).returncode != 0:
            raise DemoError(f"could not create a virtualenv at {VENV}")
    if run([str(VENV / "bin/python"), "-m", "pip", "install", "--quiet", "-e", str(REPO)]).returncode != 0:
        raise DemoError(f"pip install -e {REPO} failed (it needs PyPI for the dependencies)")
    if not _works(script):
        raise DemoError(f"{script} does not run after installing")
    show(f"installed: {script}")
    return script


# ---------------------------------------------------------------------------------------------------------
# the story


def pod(sb: Sandbox, step: Steps, title: str, explanation: str, *, expect_ok: bool) -> bool:
    step(title, explanation)
    result: PodResult = sb.run_pod()
    show([f"$ ctr run --rm --cni {sandbox.IMAGE_REF} {result.container_id} sh -c 'ip -o -4 addr show dev eth0'"
          "   (abridged; inside the node's namespaces)"], "   ")
    if result.stdout.strip():
        show(result.stdout.replace("\\", "").split("valid_lft")[0].strip())
    if result.stderr.strip():
        show(result.stderr)
    if result.ok:
        print(f"   -> the pod started; its eth0 address is {result.ip}")
    else:
        print("   -> the pod did NOT start. The `ctr:` line is the runtime's own error for the pod's network "
              "setup (CNI ADD).")
        if "(delete)" in result.stderr:
            print("      The `network review` line is its teardown (CNI DEL) failing the same way: on a "
                  "cluster, old pods hang in Terminating for it.")
    if result.ok != expect_ok:
        print("   !! unexpected: the demo expected the pod to " + ("start" if expect_ok else "fail"))
    return result.ok == expect_ok


def cleanup(engine: Path, node: Node, step: Steps) -> bool:
    step("Run `multus-cleanup node` on the node",
         "The same command the chart's uninstall hook runs on every node (one short-lived pod per node), "
         "pointed at this node's root filesystem. It restores a renamed primary config first, then removes "
         "Multus's config, its kubeconfig dir, binaries, socket dir and caches, and verifies what the runtime "
         "will load.")
    report_file = node.root.parent / f"{node.name}-report.json"
    r = run([str(engine), "node", "--host-root", str(node.root), "--node-name", node.name,
             "--report-file", str(report_file)], capture_output=True)
    show(r.stdout + r.stderr)
    clean = False
    if report_file.is_file():
        clean = bool(json.loads(report_file.read_text()).get("clean"))
    print(f"   -> exit code {r.returncode}; the report says clean={clean}")
    return r.returncode == 0 and clean


def scenario(sb: Sandbox, engine: Path, step: Steps, kind: str) -> bool:
    primary: PrimaryKind = "conf" if kind == "rename-conf-file" else "conflist"
    node = sb.new_node(f"demo-{kind}", primary=primary)
    step(f"A fresh node ({kind} scenario)",
         f"Its root filesystem is {node.root}; the primary CNI is the standard bridge plugin with "
         "host-local IPAM, nothing else:")
    show(["the node:", *node.listing()])
    ok = pod(sb, step, "Start a pod", "containerd asks the CNI config it finds first in /etc/cni/net.d for "
             "the pod's network.", expect_ok=True)

    if kind == "thick":
        fp = node.install_multus("thick")
        step("Install Multus v4.3.0 (thick plugin), then uninstall it naively",
             "Its DaemonSet writes 00-multus.conf (type multus-shim, sorts first), copies multus-shim and "
             "passthru, and its daemon listens on /run/multus/multus.sock. Deleting the DaemonSet stops "
             "the daemon; when it is killed before its own cleanup, config, shim and a stale socket stay. "
             "(multus-shim here is a stand-in script that, like the real shim, dials the daemon's socket: "
             "the refusal comes from the kernel.)")
    else:
        rename = kind == "rename-conf-file"
        fp = node.install_multus("thin", rename_conf_file=rename)
        renamed = f"; it also renames the primary config to {Path(fp.renamed[1]).name}" if fp.renamed else ""
        step("Install Multus v4.3.0 (thin plugin)" + (" with --rename-conf-file" if rename else ""),
             f"Its DaemonSet writes {Path(fp.config).name} (sorts before the primary, so every pod now goes "
             "through Multus), a kubeconfig in multus.d/, and copies the multus and passthru binaries (small "
             f"stand-ins here, not Multus itself){renamed}:")
        show(["the node with Multus:", *node.listing()])
        config_lines = node.path(fp.config).read_text().splitlines()
        show([f"{fp.config} (abridged):", *(ln[:96] for ln in config_lines[:8]), "..."])
        if rename:
            step("Uninstall it naively: delete Multus's config file",
                 f"`rm {fp.config}` looks like the obvious cleanup. But the primary config is still "
                 "named *.old, which no runtime loads:")
            footprint.remove_config_only(node.root, fp)
        else:
            step("Uninstall it naively: the binary goes, the config stays",
                 "`kubectl delete -f multus-daemonset.yml` removes the pods, and the node's binaries are "
                 "deleted by hand (or the node's /opt/cni/bin is reprovisioned); nobody removes "
                 f"{fp.config}:")
            footprint.remove_binaries(node.root, fp)
    show(["the node now:", *node.listing()])
    ok &= pod(sb, step, "Start a pod on the broken node",
              "This is the outage: on a cluster, new pods on this node stay in ContainerCreating with "
              "an error like this one in their events.", expect_ok=False)
    ok &= cleanup(engine, node, step)
    show(["the node after the cleanup:", *node.listing()])
    ok &= pod(sb, step, "Start a new pod", "After the cleanup the runtime loads the primary CNI again.",
              expect_ok=True)
    return ok


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python3 -m demo", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenario", choices=[*SCENARIOS, "all"], default="thin",
                    help="thin: config left, binary gone (default); rename-conf-file: the primary was renamed "
                         "*.old and only Multus's config deleted; thick: stale daemon socket; all: each")
    ap.add_argument("--cluster", action="store_true",
                    help="the whole story on a throwaway Kubernetes cluster: install, a pod with a second network, "
                         "a naive delete that breaks pods and its repair, helm uninstall with the hook")
    args = ap.parse_args(argv)
    if args.cluster:
        if os.geteuid() != 0:
            print("run as root: sudo python3 -m demo --cluster   (it runs a cluster in namespaces of its own)",
                  file=sys.stderr)
            return 2
        from . import cluster_story
        return cluster_story.main()
    if os.geteuid() != 0:
        print("run as root: sudo python3 -m demo   (it creates namespaces and runs containerd)",
              file=sys.stderr)
        return 2
    t0 = time.monotonic()
    step = Steps()
    print("Multus uninstall demo: a real container runtime on a throwaway node")
    try:
        ensure_packages(step)
        engine = ensure_engine(step)
        before = sandbox.snapshot()
        step("Stand up the throwaway node",
             "containerd + runc in a private mount and network namespace, under a temp dir; the node's "
             "/etc/cni/net.d, /opt/cni/bin, /var/lib/cni and /run/multus are ordinary temp dirs mounted over "
             "those paths only inside that namespace.")
        ok = True
        with sandbox.sandbox() as sb:
            show([f"temp dir {sb.tmp}, containerd PID {sb.containerd_pid}, "
                  f"up in {sb.startup_seconds:.1f} s"])
            for kind in SCENARIOS if args.scenario == "all" else (args.scenario,):
                ok &= scenario(sb, engine, step, kind)
        step("Tear down", "containerd stopped, the namespace and temp dir are gone.")
        untouched = sandbox.snapshot() == before
        show(["this machine's own /etc/cni, /opt/cni, /var/lib/cni, /run/multus, /usr/lib/cni: "
              + ("unchanged" if untouched else "CHANGED (unexpected)")])
        ok &= untouched
    except (DemoError, sandbox.SandboxError) as exc:
        print(f"\ndemo failed: {exc}", file=sys.stderr)
        return 1
    print(f"\n{'Done' if ok else 'Done, with UNEXPECTED results (see !! above)'} "
          f"in {time.monotonic() - t0:.1f} s.")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
