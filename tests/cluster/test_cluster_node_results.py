"""Reading node results on the real cluster, where the real kubelet writes them.

- A sidecar injected into every pod of the release namespace (by a mutating admission webhook of this
  test's own, running as a pod on a node: kube-apiserver v1.35 serves MutatingAdmissionPolicy only with
  `--runtime-config=admissionregistration.k8s.io/v1beta1=true` and `--feature-gates=MutatingAdmissionPolicy=true`,
  which devcluster does not set) keeps each node pod Running after its `cleanup` container ended, and sorts
  before it in the container statuses: `helm uninstall` still succeeds.
- A node report far larger than the 4096 bytes the kubelet keeps of a termination message still parses:
  the node writes it capped, and the uninstall succeeds.
"""

from __future__ import annotations

import base64
import json
import subprocess
import tempfile
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from clusterkit import HELM4, IMAGE_VALUES, NAMESPACE, ClusterKit, wait_for
from devcluster import __main__ as tool
from devcluster import images

pytestmark = pytest.mark.cluster

CHART = Path(__file__).resolve().parents[2] / "chart"
SIDECAR = "aaa-proxy"  # sorts before `cleanup`, as the kubelet lists container statuses by name
WEBHOOK_PORT = 18443
NODE_PODS = "app.kubernetes.io/component=node-cleanup"

WEBHOOK_SERVER = textwrap.dedent('''
    """Inject a sidecar into every pod, unless it opts out as Istio's injector allows."""
    import base64, json, ssl, sys
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    SIDECAR = json.loads(sys.argv[3])

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            review = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            request = review["request"]
            meta = request["object"].get("metadata") or {}
            response = {"uid": request["uid"], "allowed": True}
            if (meta.get("annotations") or {}).get("sidecar.istio.io/inject") != "false":
                patch = [{"op": "add", "path": "/spec/containers/0", "value": SIDECAR}]
                response.update(patchType="JSONPatch", patch=base64.b64encode(json.dumps(patch).encode()).decode())
                print("injected", request.get("namespace"), meta.get("name") or meta.get("generateName"),
                      "dry-run" if request.get("dryRun") else "", flush=True)
            body = json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                               "response": response}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("0.0.0.0", int(sys.argv[1])), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(sys.argv[2] + "/tls.crt", sys.argv[2] + "/tls.key")
    server.socket = context.wrap_socket(server.socket, server_side=True)
    print("serving", flush=True)
    server.serve_forever()
''')


def kubectl_json(kit: ClusterKit, *args: str, stdin: str = "") -> dict[str, Any]:
    r = subprocess.run([str(kit.cluster.bins / "kubectl"), "--kubeconfig", str(kit.cluster.kubeconfig), *args,
                        "-o", "json"], input=stdin, capture_output=True, text=True, timeout=60, check=False)
    assert r.returncode == 0, f"kubectl {' '.join(args)}: {r.stderr}"
    return dict(json.loads(r.stdout))


def apply(kit: ClusterKit, obj: dict[str, Any]) -> None:
    kubectl_json(kit, "apply", "-f", "-", stdin=json.dumps(obj))


def install(kit: ClusterKit, *args: str) -> None:
    sets = [a for v in IMAGE_VALUES for a in ("--set", v)]
    kit.helm(HELM4, "install", "multus", str(CHART), "-n", NAMESPACE, "--set", "mode=thick", *sets, *args,
             "--wait", "--timeout", "3m")
    kit.multus_pods_running()


@contextmanager
def node_pod_watch(kit: ClusterKit) -> Iterator[list[dict[str, Any]]]:
    """Every version of the node pods the API server sends during the block (kubectl get -w)."""
    seen: list[dict[str, Any]] = []
    with tempfile.TemporaryFile("w+") as out:
        proc = subprocess.Popen([str(kit.cluster.bins / "kubectl"), "--kubeconfig", str(kit.cluster.kubeconfig),
                                 "get", "pods", "-n", NAMESPACE, "-l", NODE_PODS, "--watch", "-o", "json"],
                                stdout=out, stderr=subprocess.DEVNULL, text=True)
        try:
            yield seen
        finally:
            proc.terminate()
            proc.wait(timeout=10)
            out.seek(0)
            text, decoder, at = out.read(), json.JSONDecoder(), 0
            while at < len(text):
                while at < len(text) and text[at].isspace():
                    at += 1
                if at < len(text):
                    obj, at = decoder.raw_decode(text, at)
                    seen.append(obj)


def statuses(pod: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c.get("state") or {} for c in (pod.get("status") or {}).get("containerStatuses") or []}


@contextmanager
def sidecar_injector(kit: ClusterKit, node: str) -> Iterator[str]:
    """A mutating webhook (a pod with the host network on `node`) injecting SIDECAR into every pod of the
    release namespace that does not carry `sidecar.istio.io/inject: "false"`. Yields the name of its pod."""
    ip = kit.cluster.node(node).ip
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                        "/CN=sidecar-injector", "-keyout", f"{tmp}/tls.key", "-out", f"{tmp}/tls.crt",
                        "-addext", f"subjectAltName=IP:{ip}", "-addext", "extendedKeyUsage=serverAuth"],
                       check=True, capture_output=True)
        cert, key = Path(tmp, "tls.crt").read_text(), Path(tmp, "tls.key").read_text()
    sidecar = {"name": SIDECAR, "image": images.BUSYBOX_IMAGE, "imagePullPolicy": "Never",
               "command": ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"]}
    apply(kit, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "sidecar-injector",
                                                                       "namespace": "default"},
                "data": {"server.py": WEBHOOK_SERVER, "tls.crt": cert, "tls.key": key}})
    apply(kit, {"apiVersion": "v1", "kind": "Pod", "metadata": {
        "name": "sidecar-injector", "namespace": "default", "labels": {"multus-cleanup-test": "1"}}, "spec": {
        "nodeName": node, "hostNetwork": True, "terminationGracePeriodSeconds": 1,
        "tolerations": [{"operator": "Exists"}],
        "containers": [{"name": "webhook", "image": tool.HOOK_IMAGE, "imagePullPolicy": "Never",
                        "command": ["python3", "/webhook/server.py", str(WEBHOOK_PORT), "/webhook",
                                    json.dumps(sidecar)],
                        "volumeMounts": [{"name": "webhook", "mountPath": "/webhook"}]}],
        "volumes": [{"name": "webhook", "configMap": {"name": "sidecar-injector"}}]}})
    wait_for("the sidecar injector serving", lambda: "serving" in kit.kubectl(
        "logs", "-n", "default", "sidecar-injector", check=False).stdout, timeout=90)
    config = {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
              "metadata": {"name": "multus-cleanup-test-sidecar"},
              "webhooks": [{"name": "sidecar.multus-cleanup-test.example",
                            "clientConfig": {"url": f"https://{ip}:{WEBHOOK_PORT}/mutate",
                                             "caBundle": base64.b64encode(cert.encode()).decode()},
                            "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"],
                                       "resources": ["pods"]}],
                            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": NAMESPACE}},
                            # Ignore: a test that dies never leaves the namespace unable to create pods;
                            # the probe below proves the webhook answers.
                            "failurePolicy": "Ignore", "sideEffects": "None", "admissionReviewVersions": ["v1"],
                            "timeoutSeconds": 5}]}
    try:
        apply(kit, config)
        probe = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "probe", "namespace": NAMESPACE},
                 "spec": {"containers": [{"name": "c", "image": images.BUSYBOX_IMAGE}]}}

        def injected() -> bool:
            created = kubectl_json(kit, "create", "--dry-run=server", "-f", "-", stdin=json.dumps(probe))
            return [c["name"] for c in created["spec"]["containers"]] == [SIDECAR, "c"]
        wait_for("the webhook injecting into a dry-run pod", injected, timeout=60, interval=2)
        yield "sidecar-injector"
    finally:
        kit.kubectl("delete", "mutatingwebhookconfiguration", "multus-cleanup-test-sidecar", "--ignore-not-found",
                    check=False)
        kit.kubectl("delete", "pod,configmap", "-n", "default", "sidecar-injector", "--ignore-not-found",
                    "--grace-period=1", check=False)


def test_a_sidecar_injected_into_every_pod_does_not_stop_the_uninstall(clean_cluster: ClusterKit) -> None:
    kit = clean_cluster
    served = kit.kubectl("api-resources", "--api-group=admissionregistration.k8s.io", "-o", "name").stdout
    print("admissionregistration.k8s.io serves:", " ".join(served.split()))
    # The node pods do not opt out (as with a mesh that injects regardless); the hook Job's pod does, as
    # docs/uninstall.md says to: a Job whose pod holds a sidecar never completes.
    install(kit, "--set-string", r"cleanup.nodePod.annotations.sidecar\.istio\.io/inject=true",
            "--set-string", r"cleanup.job.podAnnotations.sidecar\.istio\.io/inject=false")
    with sidecar_injector(kit, kit.nodes[-1]) as injector:
        with node_pod_watch(kit) as seen:
            result = kit.uninstall(HELM4)
        webhook_log = kit.kubectl("logs", "-n", "default", injector, check=False).stdout

    output = result.stdout + result.stderr
    assert result.returncode == 0, f"helm uninstall failed with a sidecar in every node pod:\n{output}"
    injected = [line for line in webhook_log.splitlines() if line.startswith(f"injected {NAMESPACE} multus-cleanup-")]
    assert [line for line in injected if "dry-run" not in line], f"no node pod got the sidecar:\n{webhook_log}"
    held = {p["spec"]["nodeName"] for p in seen
            if p["status"].get("phase") == "Running" and "terminated" in statuses(p).get("cleanup", {})
            and "running" in statuses(p).get(SIDECAR, {})}
    assert held == set(kit.nodes), f"node pods held Running by the sidecar after cleanup ended: {held}"
    order = {tuple(c["name"] for c in p["status"]["containerStatuses"]) for p in seen
             if p["status"].get("containerStatuses")}
    assert order == {(SIDECAR, "cleanup")}, f"container statuses as the kubelet lists them: {order}"
    for node in kit.nodes:
        assert kit.multus_leftovers(node) == [], f"{node}: Multus files left after the uninstall"
    kit.pod_on_every_node("after")


def test_a_report_larger_than_a_termination_message_still_parses(clean_cluster: ClusterKit) -> None:
    kit = clean_cluster
    leftovers = [f"/var/lib/cni/multus-test-leftovers/{'x' * 60}-{i:04d}.json" for i in range(150)]
    install(kit, "--set-json", f"cleanup.extraFiles={json.dumps(leftovers)}")
    for node in kit.nodes:
        for path in leftovers:
            target = kit.cluster.node_root(node) / path.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text("{}")

    try:
        with node_pod_watch(kit) as seen:
            result = kit.uninstall(HELM4)
    finally:
        for node in kit.nodes:
            subprocess.run(["rm", "-rf", str(kit.cluster.node_root(node) / "var/lib/cni/multus-test-leftovers")],
                           check=False)

    assert result.returncode == 0, f"helm uninstall failed:\n{result.stdout}\n{result.stderr}"
    messages = {p["spec"]["nodeName"]: statuses(p)["cleanup"]["terminated"].get("message", "") for p in seen
                if "terminated" in statuses(p).get("cleanup", {})}
    assert set(messages) == set(kit.nodes), f"no terminated cleanup container seen on {set(kit.nodes) - set(messages)}"
    for node, message in messages.items():
        report = json.loads(message)  # the whole message is one JSON document: nothing was cut off its start
        assert len(message.encode()) <= 4096 and report["truncated"] is True, (node, len(message))
        assert report["node"] == node and report["clean"] is True, report
        assert report["omitted"]["removed"] > 0, report["omitted"]
    for node in kit.nodes:
        assert kit.multus_leftovers(node) == [], f"{node}: Multus files left after the uninstall"
