"""Every rendered object, the CRD included, is valid for Kubernetes 1.29 through 1.35 (strict: no unknown fields)."""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import kubernetes_validate.utils as kv_utils  # type: ignore[import-untyped]
import pytest
from helm import CI_VALUES, Helm, Render

pytestmark = pytest.mark.helm

KUBERNETES_VERSIONS = ("1.29.0", "1.30.0", "1.31.0", "1.32.0", "1.33.0", "1.34.0", "1.35.0")
EXPECTED_KINDS = {"CustomResourceDefinition", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "DaemonSet"}


@pytest.fixture(scope="session", autouse=True)
def _cached_schemas() -> Iterator[None]:
    """kubernetes-validate re-reads its JSON schemas (1 MB of definitions) on every call: read each once."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(kv_utils, "schema_contents", functools.cache(kv_utils.schema_contents))
        yield


@pytest.fixture(scope="session")
def _validated() -> set[str]:
    """Digests of (object, version) pairs already validated: Helm 3 and 4 mostly render the same objects."""
    return set()


def _validate(doc: dict[str, Any], version: str, seen: set[str]) -> None:
    key = hashlib.sha256(json.dumps([doc, version], sort_keys=True).encode()).hexdigest()
    if key in seen:
        return
    name = f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
    try:
        used = kubernetes_validate.validate(doc, version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        path = "/".join(str(p) for p in exc.path)
        pytest.fail(f"{name} is invalid for Kubernetes {version} at {path or '<root>'}: {exc.message}")
    except kubernetes_validate.SchemaNotFoundError as exc:
        pytest.fail(f"{name}: {exc.message}")
    # the schema of the requested minor version was used, not an older fallback
    assert used == version.rsplit(".", 1)[0], f"validated {name} against {used}, wanted {version}"
    seen.add(key)


@pytest.mark.parametrize("values_file", CI_VALUES, ids=lambda p: p.name)
@pytest.mark.parametrize("kube_version", KUBERNETES_VERSIONS)
def test_rendered_objects_are_valid_kubernetes(
    helm: Helm, render: Render, values_file: Path, kube_version: str, _validated: set[str]
) -> None:
    result = render(helm, values_file, include_crds=True)
    assert result.ok, result.stderr
    docs = result.objects()
    assert {d["kind"] for d in docs} >= EXPECTED_KINDS
    for doc in docs:
        _validate(doc, kube_version, _validated)


def test_the_validator_rejects_an_unknown_field(_validated: set[str]) -> None:
    """Strict validation must catch a misplaced field, or the test above proves nothing."""
    bad = {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "x"},
           "spec": {"selector": {"matchLabels": {"a": "b"}},
                    "template": {"metadata": {"labels": {"a": "b"}},
                                 "spec": {"containers": [{"name": "c", "image": "i", "mountPath": "/x"}]}}}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, "1.29.0", strict=True)


# Renderings with every optional part switched on: their objects must be valid too.
SCENARIOS: dict[str, dict[str, Any]] = {
    "thick-everything": {
        "hostPaths": {"cniConfDir": "/etc/kubernetes/cni/net.d", "cniBinDir": "/var/lib/cni/bin",
                      "socketDir": "/var/run/multus", "cacheDir": "/var/cache/multus",
                      "kubeletDir": "/var/lib/k0s/kubelet"},
        "config": {"readinessIndicatorFile": "/run/flannel/subnet.env", "logFile": "/var/log/multus.log",
                   "namespaceIsolation": True, "globalNamespaces": ["default"],
                   "daemonExtraConfig": {"metricsPort": 9091}},
        "imagePullSecrets": [{"name": "regcred"}],
        "podSecurityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
        "podAnnotations": {"example.com/a": "b"},
        "extraEnv": [{"name": "A", "value": "b"}],
        "extraVolumes": [{"name": "extra", "emptyDir": {}}],
        "extraVolumeMounts": [{"name": "extra", "mountPath": "/extra"}],
        "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchExpressions": [{"key": "a", "operator": "Exists"}]}]}}},
        "serviceAccount": {"annotations": {"example.com/a": "b"}},
        "commonLabels": {"team": "net"},
    },
    "thin-everything": {
        "mode": "thin",
        "hostPaths": {"cniConfDir": "/var/lib/rancher/k3s/agent/etc/cni/net.d",
                      "cniBinDir": "/var/lib/rancher/k3s/data/cni", "multusConfDir": "/var/lib/multus/multus.d"},
        "config": {"renameConfFile": True, "cleanupConfigOnExit": False, "skipConfigWatch": True,
                   "additionalBinDir": "/opt/multus/bin", "logLevel": "debug"},
        "extraArgs": ["--skip-tls-verify=false"],
        "image": {"digest": "sha256:" + "0" * 64},
    },
}


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
@pytest.mark.parametrize("kube_version", [KUBERNETES_VERSIONS[0], KUBERNETES_VERSIONS[-1]])
def test_optional_parts_are_valid_kubernetes(
    helm: Helm, render: Render, scenario: str, kube_version: str, _validated: set[str]
) -> None:
    result = render(helm, set_values=SCENARIOS[scenario])
    assert result.ok, result.stderr
    for doc in result.objects():
        _validate(doc, kube_version, _validated)
