"""Flux on the real cluster: the real source-controller and helm-controller (built by `tools/build-real flux`)
install the chart from a HelmRelease, and deleting the HelmRelease runs the chart's pre-delete hook Job under
the real Job controller, its node pods under the real kubelets, before helm-controller deletes the release.

The controllers run as processes on this machine with the cluster's admin kubeconfig, as they would in a pod
with cluster-admin rights. The chart comes from a Helm repository (`helm package` + `helm repo index`) served
over HTTP on 127.0.0.1: a HelmRepository is the plainest source a HelmRelease names, and needs nothing beyond
Helm and Python.

The HelmRelease is examples/flux/helmrelease.yaml's, with the image values the other cluster tests give `helm
install`. Its `cleanup.job.hookOutputLogs: false` matters: with the hook Job's `helm.sh/hook-output-log-policy`,
helm-controller v1.4.3 runs the hook, then panics (nil HookOutputFunc, fluxcd/helm-controller#1562) and never
deletes the HelmRelease; `wait_deleted` names such a panic (docs/flux.md)."""

from __future__ import annotations

import functools
import http.server
import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from clusterkit import CHART, HELM3, HELM4, IMAGE_VALUES, NAMESPACE, PRIMARY_CONFIG, ClusterKit, wait_for

pytestmark = pytest.mark.cluster

REPO = Path(__file__).resolve().parents[2]
SOURCE_NAMESPACE = "flux-system"
RELEASE = "multus"
CONTROLLERS = ("source-controller", "helm-controller")
# what test_cluster_uninstall.py checks on the hook Job: the cleanup ran to its end on every node
HOOK_EVENTS = ("CleanupStarted", "MultusStopped", "Progress", "CleanupSucceeded")


def flux_part() -> Path:
    """The directory `tools/build-real flux` built the controllers and their CRDs into; fails if not built."""
    proc = subprocess.run([str(REPO / "tools" / "build-real"), "--print-dir", "flux"], capture_output=True,
                          text=True, check=False, timeout=60)
    part = Path(proc.stdout.strip())
    missing = [str(part / "bin" / c) for c in CONTROLLERS if not (part / "bin" / c).is_file()]
    if proc.returncode != 0 or not (part / ".done").is_file() or missing or not list(part.glob("crds/*.yaml")):
        pytest.fail(f"the Flux controllers are not built for the pinned inputs ({part}: missing "
                    f"{', '.join(missing) or 'crds/*.yaml'}): run tools/build-real flux (tools/install-deps does)")
    return part


def example_helmrelease() -> dict[str, Any]:
    """The HelmRelease of examples/flux/helmrelease.yaml."""
    docs = yaml.safe_load_all((REPO / "examples" / "flux" / "helmrelease.yaml").read_text())
    release: dict[str, Any] = next(d for d in docs if d["kind"] == "HelmRelease")
    assert release["metadata"]["name"] == RELEASE and release["metadata"]["namespace"] == NAMESPACE
    return release


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def nested(assignments: tuple[str, ...]) -> dict[str, Any]:
    """`a.b=c` assignments (what the other cluster tests pass to `helm --set`) as a HelmRelease's values."""
    values: dict[str, Any] = {}
    for assignment in assignments:
        key, value = assignment.split("=", 1)
        *parents, leaf = key.split(".")
        node = values
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return values


@dataclass
class Controller:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


@contextmanager
def chart_repository(kit: ClusterKit, directory: Path) -> Iterator[str]:
    """The chart as a Helm repository (index.yaml and the .tgz) on http://127.0.0.1:PORT/, stopped afterwards."""
    directory.mkdir()
    kit.helm(HELM4, "package", str(CHART), "-d", str(directory))
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    kit.helm(HELM4, "repo", "index", str(directory), "--url", url)

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", port),
                                             functools.partial(Quiet, directory=str(directory)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield url
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def start_controller(kit: ClusterKit, part: Path, name: str, home: Path, *args: str) -> Controller:
    """One controller as a process on this machine: the admin kubeconfig, its own temp dir and home, metrics
    and health endpoints on free loopback ports, leader election off (the flag's default, said explicitly)."""
    for d in (home, home / "tmp", home / "storage"):
        d.mkdir()
    # controller-runtime reads KUBECONFIG; RUNTIME_NAMESPACE is the namespace a Flux controller runs in
    env = {**os.environ, "HOME": str(home), "TMPDIR": str(home / "tmp"), "KUBECONFIG": str(kit.cluster.kubeconfig),
           "RUNTIME_NAMESPACE": SOURCE_NAMESPACE}
    log = home / f"{name}.log"
    argv = [str(part / "bin" / name),
            f"--metrics-addr=127.0.0.1:{free_port()}", f"--health-addr=127.0.0.1:{free_port()}",
            "--enable-leader-election=false", "--log-level=debug", "--log-encoding=json", *args]
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=home,
                                start_new_session=True)
    return Controller(name, proc, log)


def stop(controller: Controller) -> None:
    if controller.proc.poll() is None:
        controller.proc.terminate()
        try:
            controller.proc.wait(30)
        except subprocess.TimeoutExpired:
            controller.proc.kill()
            controller.proc.wait(10)


def apply(kit: ClusterKit, obj: dict[str, Any]) -> None:
    r = subprocess.run([str(kit.cluster.bins / "kubectl"), "--kubeconfig", str(kit.cluster.kubeconfig), "apply",
                        "-f", "-"], input=json.dumps(obj), capture_output=True, text=True, timeout=60, check=False)
    if r.returncode != 0:
        raise AssertionError(f"kubectl apply {obj['kind']}: {r.stderr}")


def ready(kit: ClusterKit, kind: str, name: str, namespace: str) -> dict[str, Any]:
    """The Ready condition of a Flux object ({} while it has none)."""
    r = kit.kubectl("get", kind, name, "-n", namespace, "-o", "json", check=False)
    if r.returncode != 0:
        return {}
    conditions = json.loads(r.stdout).get("status", {}).get("conditions", [])
    return next((c for c in conditions if c.get("type") == "Ready"), {})


def wait_ready(kit: ClusterKit, kind: str, name: str, namespace: str, controllers: list[Controller],
               timeout: float) -> None:
    def done() -> bool:
        if exited := [c.name for c in controllers if c.proc.poll() is not None]:
            raise AssertionError(f"{', '.join(exited)} exited")
        return ready(kit, kind, name, namespace).get("status") == "True"
    try:
        wait_for(f"{kind} {namespace}/{name} Ready", done, timeout, interval=2)
    except AssertionError as err:
        logs = "\n".join(f"--- {c.name} (exit {c.proc.poll()}):\n{c.tail()}" for c in controllers)
        pytest.fail(f"{err}; its Ready condition: {ready(kit, kind, name, namespace)}\n{logs}")


def wait_deleted(kit: ClusterKit, helm_controller: Controller, timeout: float) -> None:
    """Until the HelmRelease is gone (helm-controller removed its finalizer after the uninstall); fails at once
    when helm-controller panics in the uninstall: it then retries it, and the hook with it, for ever."""
    def gone() -> bool:
        log = helm_controller.log.read_text(errors="replace")
        if "Observed a panic" in log:
            panic = next(json.loads(line) for line in log.splitlines() if '"Observed a panic"' in line)
            pytest.fail(f"helm-controller panicked in the uninstall of the HelmRelease ({panic.get('panic')}), "
                        f"so the HelmRelease is never deleted:\n{panic.get('stacktrace', '')[:3000]}")
        if helm_controller.proc.poll() is not None:
            pytest.fail(f"helm-controller exited {helm_controller.proc.returncode}:\n{helm_controller.tail(60)}")
        r = kit.kubectl("get", "helmrelease", RELEASE, "-n", NAMESPACE, "--ignore-not-found", "-o", "name")
        return not r.stdout.strip()
    try:
        wait_for(f"HelmRelease {NAMESPACE}/{RELEASE} deleted", gone, timeout, interval=2)
    except AssertionError as err:
        pytest.fail(f"{err}; its Ready condition: {ready(kit, 'helmrelease', RELEASE, NAMESPACE)}\n"
                    f"--- helm-controller:\n{helm_controller.tail(60)}")


def flux_crds(part: Path) -> list[Path]:
    return sorted(part.glob("crds/*.yaml"))


def remove_flux(kit: ClusterKit, part: Path) -> None:
    """What the test created in the cluster, once the controllers are stopped: finalizers no controller will
    remove any more, the Flux objects, their namespace, the CRDs."""
    for kind in ("helmreleases.helm.toolkit.fluxcd.io", "helmcharts.source.toolkit.fluxcd.io",
                 "helmrepositories.source.toolkit.fluxcd.io"):
        r = kit.kubectl("get", kind, "-A", "-o", "json", check=False)
        for item in json.loads(r.stdout)["items"] if r.returncode == 0 else []:
            meta = item["metadata"]
            kit.kubectl("patch", kind, meta["name"], "-n", meta["namespace"], "--type", "merge", "-p",
                        '{"metadata":{"finalizers":null}}', check=False)
            kit.kubectl("delete", kind, meta["name"], "-n", meta["namespace"], "--wait=true", check=False)
    kit.kubectl("delete", "namespace", SOURCE_NAMESPACE, "--ignore-not-found", "--wait=true", check=False,
                timeout=180)
    for crd in flux_crds(part):
        kit.kubectl("delete", "-f", str(crd), "--ignore-not-found", "--wait=true", check=False, timeout=120)


def test_deleting_the_helmrelease_runs_the_pre_delete_hook_under_flux(clean_cluster: ClusterKit) -> None:
    kit = clean_cluster
    part = flux_part()
    versions = (part / "VERSION").read_text().split("\n")
    work = Path(tempfile.mkdtemp(prefix="multus-cleanup-flux-"))
    controllers: list[Controller] = []
    try:
        for crd in flux_crds(part):
            kit.kubectl("apply", "--server-side", "-f", str(crd))
        kit.kubectl("wait", "--for=condition=Established", "--timeout=60s",
                    *[f"crd/{c.stem.split('_', 1)[1]}.{c.stem.split('_', 1)[0]}" for c in flux_crds(part)])
        with chart_repository(kit, work / "charts") as repo_url:
            storage_port = free_port()
            controllers.append(start_controller(
                kit, part, "source-controller", work / "source-controller",
                f"--storage-path={work / 'source-controller' / 'storage'}",  # made by start_controller
                f"--storage-addr=127.0.0.1:{storage_port}", f"--storage-adv-addr=127.0.0.1:{storage_port}"))
            controllers.append(start_controller(kit, part, "helm-controller", work / "helm-controller"))

            kit.kubectl("create", "namespace", SOURCE_NAMESPACE)
            apply(kit, {"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "HelmRepository",
                        "metadata": {"name": "multus-cleanup", "namespace": SOURCE_NAMESPACE},
                        "spec": {"url": repo_url, "interval": "1h"}})
            wait_ready(kit, "helmrepository", "multus-cleanup", SOURCE_NAMESPACE, controllers, 120)
            # examples/flux/helmrelease.yaml, its chart from the repository above, with the values the other
            # cluster tests give `helm install` for the images the nodes carry (imported, never pulled)
            example = example_helmrelease()
            values = example["spec"]["values"]
            for key, value in nested(IMAGE_VALUES).items():
                values[key] = {**values.get(key, {}), **value} if isinstance(value, dict) else value
            example["spec"]["chart"] = {"spec": {"chart": "multus", "sourceRef": {
                "kind": "HelmRepository", "name": "multus-cleanup", "namespace": SOURCE_NAMESPACE}}}
            apply(kit, example)
            wait_ready(kit, "helmrelease", RELEASE, NAMESPACE, controllers, 360)
            kit.multus_pods_running()
            for node in kit.nodes:
                assert kit.loaded_config(node).startswith("00-multus"), f"{node}: the runtime does not load Multus"
            listed = json.loads(kit.helm(HELM4, "list", "-n", NAMESPACE, "-o", "json").stdout)
            assert [r["name"] for r in listed] == [RELEASE], f"helm list after the HelmRelease is Ready: {listed}"

            started = time.monotonic()
            kit.kubectl("delete", "helmrelease", RELEASE, "-n", NAMESPACE, "--wait=false")
            wait_deleted(kit, controllers[1], 420)
            took = time.monotonic() - started
            hc_log = controllers[1].log.read_text(errors="replace")
            print(f"{' and '.join(v for v in versions if v)}: the HelmRelease was deleted in {took:.0f} s")

        # what an operator checks: the hook Job ran to its end, on every node, under helm-controller ...
        job_events = kit.kubectl("get", "events", "-n", NAMESPACE, "--field-selector",
                                 "involvedObject.kind=Job,involvedObject.name=multus-cleanup").stdout
        for reason in HOOK_EVENTS:
            assert reason in job_events, f"no {reason} event on the hook Job:\n{job_events}\n{hc_log[-4000:]}"
        assert kit.cleanup_pod_nodes() >= set(kit.nodes), "a node's cleanup pod never started under its kubelet"
        uninstalled = [json.loads(line) for line in hc_log.splitlines()
                       if line.startswith("{") and "uninstall" in line.lower()]
        assert any("succeeded" in str(e.get("msg", "")).lower() for e in uninstalled), \
            f"helm-controller never logged a successful uninstall:\n{hc_log[-4000:]}"
        # ... the release is gone ...
        assert json.loads(kit.helm(HELM3, "list", "-n", NAMESPACE, "--all", "-o", "json").stdout) == [], \
            "helm list still shows a release"
        assert not kit.pods(NAMESPACE, f"app.kubernetes.io/instance={RELEASE}"), "Multus or cleanup pods left"
        # ... no Multus file on any node, the primary config as it was, and every node starts pods
        for node in kit.nodes:
            assert kit.multus_leftovers(node) == [], f"{node}: Multus files left after the HelmRelease's deletion"
            assert kit.loaded_config(node) == PRIMARY_CONFIG, f"{node}: the runtime loads {kit.loaded_config(node)}"
            primary = kit.cluster.node_root(node) / "etc/cni/net.d" / PRIMARY_CONFIG
            assert primary.read_bytes() == kit.primary[node], f"{node}: the primary config changed"
        kit.pod_on_every_node("after-flux")
    finally:
        # a HelmRelease a failed test left behind loses its finalizer in remove_flux; the release itself goes
        # in the next test's kit.reset (helm uninstall --no-hooks)
        for controller in reversed(controllers):
            stop(controller)
        remove_flux(kit, part)
        shutil.rmtree(work, ignore_errors=True)
