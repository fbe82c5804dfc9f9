"""A simulated cluster for uninstall tests: the API emulator, the simulated kubelet, and one temp host
root per node holding a real Multus footprint. The kubelet runs the REAL `multus-cleanup node` command of
each cleanup pod (its argv and env, in-process) against that node's host root, and checks the engine
changed nothing outside the host paths the pod mounts."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from emulator import EmulatedApiServer
from emulator.kubelet import SimulatedKubelet
from emulator.objects import add_nodes, make_daemonset
from emulator.selectors import LabelSelector

import footprints as fp
from multus_cleanup.cli import main


class SimCluster:
    def __init__(self, server: EmulatedApiServer, kubelet: SimulatedKubelet, tmp: Path) -> None:
        self.server, self.kubelet, self.tmp = server, kubelet, tmp
        self.roots: dict[str, Path] = {}
        self.before: dict[str, fp.Snapshot] = {}
        self.violations: list[str] = []
        kubelet.run_pod = self.run_pod
        self.kubeconfig = tmp / "kubeconfig"
        self.kubeconfig.write_text(yaml.safe_dump(server.kubeconfig()))

    # -- building the cluster ---------------------------------------------------------------------------
    def add_nodes(self, count: int, flavour: str = "thick", **kwargs: Any) -> list[str]:
        names = add_nodes(self.server.store, count, **kwargs)
        for name in names:
            root = self.tmp / "nodes" / name
            root.mkdir(parents=True)
            primary = fp.node_before_multus(root)
            self.before[name] = fp.snapshot(root)
            if flavour == "thick":
                fp.install_thick(root, primary)
            elif flavour == "thin":
                fp.install_thin(root, primary, rename_conf_file=True)
            self.roots[name] = root
        return names

    def add_multus_daemonset(self, name: str = "kube-multus-ds", namespace: str = "kube-system") -> None:
        store = self.server.store
        store.create(store.rt("daemonsets", "apps"), namespace, make_daemonset(name, namespace))

    def create(self, resource: str, namespace: str | None, obj: dict[str, Any], group: str = "") -> dict[str, Any]:
        store = self.server.store
        created: dict[str, Any] = store.create(store.rt(resource, group), namespace, obj)
        return created

    def write_config(self, config: dict[str, Any]) -> Path:
        path = self.tmp / f"config-{len(list(self.tmp.glob('config-*')))}.yaml"
        path.write_text(yaml.safe_dump(config))
        return path

    # -- running --------------------------------------------------------------------------------------
    def orchestrate(self, command: str, config: dict[str, Any] | None = None, *extra: str
                    ) -> tuple[int, dict[str, Any], str]:
        """`multus-cleanup <command> --output json` in-process against the emulator: (exit, summary, stderr)."""
        argv = [command, "--kubeconfig", str(self.kubeconfig), "--output", "json", *extra]
        if config is not None:
            argv += ["--config", str(self.write_config(config))]
        out, err = io.StringIO(), io.StringIO()
        handler = logging.StreamHandler(err)  # pytest owns the root logger: catch the operator's log here
        handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
        logger = logging.getLogger("multus_cleanup")
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        try:
            code = main(argv, stdout=out, stderr=err)
        finally:
            logger.removeHandler(handler)
        return code, (json.loads(out.getvalue()) if out.getvalue().strip() else {}), err.getvalue()

    def run_pod(self, pod: dict[str, Any], node: str) -> tuple[int, str, str]:
        """What the container would do: run its command with its env, host root = this node's root."""
        container = pod["spec"]["containers"][0]
        env = {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}
        env["NODE_NAME"] = node
        argv = list(container["command"][1:])
        root = self.roots[node]
        argv[argv.index("--host-root") + 1] = str(root)
        report_file = self.tmp / f"termination-{pod['metadata']['name']}"
        argv[argv.index("--report-file") + 1] = str(report_file)
        mounted = [v["hostPath"]["path"] for v in pod["spec"]["volumes"]]
        before = fp.snapshot(root)
        out = io.StringIO()
        code = main(argv, environ=env, stdout=out, stderr=out)
        after = fp.snapshot(root)
        changed = {p for p in set(before) | set(after) if before.get(p) != after.get(p)}
        for path in sorted(changed):
            if not any(path == m or path.startswith(m.rstrip("/") + "/") for m in mounted):
                self.violations.append(f"{node}: {path} changed but is not under a mounted host path {mounted}")
        message = report_file.read_text() if report_file.exists() else ""
        return code, message, out.getvalue()

    def restored(self, name: str) -> bool:
        try:
            return fp.snapshot(self.roots[name]) == self.before[name]
        except FileNotFoundError:  # polled while the node is being cleaned: a file went between list and read
            return False

    def pods(self, namespace: str, selector: str = "") -> list[dict[str, Any]]:
        store = self.server.store
        items, *_ = store.list(store.rt("pods"), namespace, labels=LabelSelector.parse(selector))
        return list(items)


def owner_env(cluster: SimCluster, namespace: str = "kube-system", name: str = "multus-cleanup") -> dict[str, str]:
    """Create the hook Job the way Helm would and give the orchestrator its identity (downward API)."""
    job = cluster.create("jobs", namespace, {
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name, "namespace": namespace},
        "spec": {"template": {"spec": {"restartPolicy": "Never",
                                       "containers": [{"name": "cleanup", "image": "multus-cleanup"}]}}}},
        group="batch")
    return {"MULTUS_CLEANUP_JOB_NAME": name, "MULTUS_CLEANUP_JOB_UID": job["metadata"]["uid"]}


@pytest.fixture(name="cluster")
def cluster_fixture(api_server: EmulatedApiServer, kubelet: SimulatedKubelet, tmp_path: Path,
            monkeypatch: pytest.MonkeyPatch) -> Iterator[SimCluster]:
    """A simulated cluster whose hook Job exists (node pods are owned by it)."""
    sim = SimCluster(api_server, kubelet, tmp_path)
    for key, value in owner_env(sim).items():
        monkeypatch.setenv(key, value)
    yield sim
    assert sim.violations == []  # the engine never touched a path its pod does not mount
    assert kubelet.errors == []


NAD_CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": "network-attachment-definitions.k8s.cni.cncf.io"},
    "spec": {"group": "k8s.cni.cncf.io", "scope": "Namespaced",
             "names": {"plural": "network-attachment-definitions", "singular": "network-attachment-definition",
                       "kind": "NetworkAttachmentDefinition", "shortNames": ["net-attach-def"]},
             "versions": [{"name": "v1", "served": True, "storage": True,
                           "schema": {"openAPIV3Schema": {"type": "object",
                                                          "x-kubernetes-preserve-unknown-fields": True}}}]},
}


def nad(name: str, namespace: str = "default") -> dict[str, Any]:
    """A NetworkAttachmentDefinition, as users create them."""
    return {"apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"config": '{"cniVersion": "0.3.1", "type": "macvlan"}'}}
