"""`sudo python3 -m demo --cluster`: the whole story on a throwaway Kubernetes cluster (devcluster): install
the chart, attach a pod to a second network, delete Multus the naive way and watch new pods fail, repair,
then install again and `helm uninstall` with the hook, after which every node starts pods.

The first run builds the real Kubernetes, etcd and Multus binaries from their pinned Go modules
(tools/build-real) and the cleanup image (tools/build-image): minutes, once; later runs reuse them.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from devcluster import __main__ as tool
from devcluster import cluster as devcluster
from devcluster import images
from devcluster.chartkit import HELM4, NAMESPACE, PRIMARY_CONFIG, ClusterKit, helm_binaries, wait_for

from .__main__ import REPO, VENV, DemoError, Steps, show

ATTACHED = "attached"


def prepare(step: Steps) -> None:
    step("Install what the cluster needs",
         "tools/install-deps: Debian packages, the Python environment, the Helm binaries and the real "
         "Kubernetes, etcd and Multus binaries built from their pinned Go modules; then the cleanup image "
         "(tools/build-image). Each is cached: the first run takes minutes, later ones seconds.")
    for command in (["tools/install-deps"], ["tools/build-image"]):
        started = time.monotonic()
        r = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False)
        if r.returncode != 0:
            raise DemoError(f"{command[0]} failed:\n{r.stdout[-2000:]}{r.stderr[-2000:]}")
        show(f"{command[0]}: done in {time.monotonic() - started:.0f} s")


def show_nodes(kit: ClusterKit) -> None:
    show(kit.kubectl("get", "nodes", "-o", "wide").stdout)


def show_net_d(kit: ClusterKit) -> None:
    for node in kit.nodes:
        files = sorted(p.name for p in (kit.cluster.node_root(node) / "etc/cni/net.d").iterdir())
        show(f"{node}: /etc/cni/net.d holds {', '.join(files)}; the runtime loads {kit.loaded_config(node)}")


def story(kit: ClusterKit, step: Steps) -> bool:
    ok = True
    step("Install Multus (thin) with the chart",
         "As upstream deploys it: thin mode without cleanup on exit. Multus writes its config first in "
         "/etc/cni/net.d on every node, so every pod sandbox now goes through Multus.")
    kit.install(HELM4, "multus", "mode=thin", "config.cleanupConfigOnExit=false")
    show(f"$ helm install multus ./chart -n {NAMESPACE} --set mode=thin ...")
    show(kit.kubectl("get", "pods", "-n", NAMESPACE, "-o", "wide").stdout)
    show_net_d(kit)

    step("A pod with a second network",
         "A NetworkAttachmentDefinition (a bridge with its own subnet) and a pod that asks for it: Multus gives "
         "it net1 next to eth0 from the primary CNI.")
    kit.second_network()
    kit.start_pod(ATTACHED, kit.nodes[-1], networks="second")
    kit.wait_running(ATTACHED)
    show(kit.kubectl("exec", ATTACHED, "--", "ip", "-o", "-4", "addr").stdout)
    kit.kubectl("delete", "pod", ATTACHED, "--grace-period=1", "--wait=true")

    step("Delete Multus the naive way",
         "`helm uninstall --no-hooks` deletes the DaemonSet, its ServiceAccount and RBAC, as `kubectl delete -f "
         "multus-daemonset.yml` does. Multus's files stay on every node, and its binary keeps being called "
         "with a token that no longer works.")
    kit.helm(HELM4, "uninstall", "multus", "-n", NAMESPACE, "--no-hooks", "--wait")
    show_net_d(kit)
    kit.start_pod("broken", kit.nodes[-1])
    message = wait_for("the runtime's error", lambda: kit.pod_state("broken").waiting, 90)
    show(["the new pod stays in ContainerCreating; the kubelet reports:", message[:400]])
    ok &= 'plugin type="multus"' in message  # Unauthorized, or forbidden while the token still authenticates

    step("Repair from a workstation: multus-cleanup run",
         "The same cleanup as the chart's hook: one short-lived pod per node on the host network.")
    config = kit.cluster.dir / "repair.yaml"
    # the nodes carry the image under a name of the cluster's own (JSON is YAML)
    config.write_text(json.dumps({"cluster": {"nodePod": {"image": tool.HOOK_IMAGE, "imagePullPolicy": "Never"}}}))
    r = subprocess.run([str(VENV / "bin" / "multus-cleanup"), "run", "--kubeconfig", str(kit.cluster.kubeconfig),
                        "--config", str(config)], capture_output=True, text=True, timeout=300, check=False)
    show(r.stdout)
    ok &= r.returncode == 0
    state = kit.wait_running("broken", timeout=120)
    show(f"the stuck pod started: {state.name} Running on {state.node} with {state.ip}")
    kit.kubectl("delete", "pod", "broken", "--grace-period=1", "--wait=true")

    step("Install again (thick), then helm uninstall with the hook",
         "The chart's pre-delete hook Job stops Multus, cleans and verifies every node, and only then lets "
         "Helm delete the rest.")
    kit.install(HELM4, "multus", "mode=thick")
    kit.multus_pods_running()
    show_net_d(kit)
    started = time.monotonic()
    r = kit.uninstall(HELM4)
    show(f"$ helm uninstall multus -n {NAMESPACE} --wait: exit {r.returncode} in {time.monotonic() - started:.0f} s")
    ok &= r.returncode == 0
    show_net_d(kit)
    for node in kit.nodes:
        left = kit.multus_leftovers(node)
        ok &= not left and kit.loaded_config(node) == PRIMARY_CONFIG
        show(f"{node}: {'Multus files left: ' + ', '.join(left) if left else 'no Multus file left'}")

    step("A new pod on every node", "Every node starts pods with an address from the primary CNI.")
    for node, pod in kit.pod_on_every_node("after").items():
        show(f"{node}: {pod.name} Running with {pod.ip}")
    return ok


def main() -> int:
    t0 = time.monotonic()
    step = Steps()
    print("Multus uninstall demo on a throwaway Kubernetes cluster")
    directory = Path(tempfile.mkdtemp(prefix="multus-cleanup-demo-"))
    ok = False
    try:
        prepare(step)
        bins = tool.real_bin_dir(quiet=True)
        step("Stand up the cluster",
             "etcd, kube-apiserver, kube-controller-manager and kube-scheduler, and two real nodes (kubelet, "
             "kube-proxy, containerd), each in network and mount namespaces of its own under a temp dir.")
        archives = tool.cluster_images(bins, REPO / ".cache" / "cluster-images")
        c = devcluster.up(directory / "cluster", bins, nodes=2, images=archives, pause_image=images.PAUSE_IMAGE,
                          image_tags=tool.HOOK_IMAGE_TAGS, log=show)
        try:
            kit = ClusterKit(c, helm_binaries(bins))
            show_nodes(kit)
            ok = story(kit, step)
        finally:
            step("Tear down", "tools/cluster down: every process of the cluster stopped, its namespaces gone.")
            ok = not devcluster.down(directory / "cluster", remove=True, log=show) and ok
    except (DemoError, devcluster.ClusterError, AssertionError) as exc:
        print(f"\ndemo failed: {exc}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    print(f"\n{'Done' if ok else 'Done, with UNEXPECTED results'} in {time.monotonic() - t0:.0f} s.")
    return 0 if ok else 1
