"""values.schema.json turns typos and wrong types into readable Helm errors; kubeVersion is enforced."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml
from helm import CHART_DIR, Helm, Render

SCHEMA = json.loads((CHART_DIR / "values.schema.json").read_text())
# Kubernetes objects passed through as they are (the API server validates them), and free-form config
FREE_FORM = {"resources", "initResources", "affinity", "podSecurityContext", "securityContext", "updateStrategy",
             "daemonExtraConfig", "global", "tolerations[]", "extraEnv[]", "extraVolumes[]", "extraVolumeMounts[]",
             "nodePodResources", "nodePodSecurityContext", "jobAffinity",  # cleanup's deprecated names
             "networkConfig"}  # tests.networkConfig: a CNI config, handed to the plugin as it is
EXTENSIBLE: set[str] = set()


def _walk_schema(node: dict[str, Any], path: str) -> list[str]:
    """Paths of object schemas that do not set additionalProperties: false (and are not meant to be open)."""
    open_objects = []
    name = path.rsplit(".", 1)[-1]
    if node.get("type") == "object" and "properties" in node:
        if node.get("additionalProperties") is not False and name not in EXTENSIBLE:
            open_objects.append(path)
        for key, child in node["properties"].items():
            open_objects += _walk_schema(child, f"{path}.{key}" if path else key)
    elif node.get("type") == "object" and name not in FREE_FORM and "additionalProperties" not in node:
        open_objects.append(path)
    if node.get("type") == "array":
        open_objects += _walk_schema(node.get("items", {}), f"{path}[]")
    return open_objects


def test_schema_closes_every_object_but_free_form_and_extensible_ones() -> None:
    assert SCHEMA["additionalProperties"] is False
    assert _walk_schema(SCHEMA, "") == []
    for section in EXTENSIBLE:
        assert SCHEMA["properties"][section]["additionalProperties"] is True


def _leaf_paths(values: dict[str, Any], prefix: str = "") -> list[str]:
    out = []
    for key, value in values.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value and key not in FREE_FORM | {"nodeSelector", "selector",
                                                                                 "annotations"}:
            out += _leaf_paths(value, f"{path}.")
        else:
            out.append(path)
    return out


def test_every_value_is_described_by_the_schema() -> None:
    values = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
    for path in _leaf_paths(values):
        node = SCHEMA
        for part in path.split("."):
            if part not in node.get("properties", {}) and node.get("additionalProperties") is True:
                break  # cleanup/repair: open for the hook's values until they are described
            assert part in node.get("properties", {}), f"{path} is in values.yaml but not in values.schema.json"
            node = node["properties"][part]
        else:
            assert node.get("description"), f"{path} has no description in the schema"
    # and nothing in the schema is missing from values.yaml (global is for parent charts)
    assert set(SCHEMA["properties"]) - {"global"} == set(values)


@pytest.mark.helm
@pytest.mark.parametrize(("set_args", "must_mention"), [
    (["--set", "imagee.tag=x"], ["imagee"]),
    (["--set", "hostPaths.cniConfdir=/etc/cni/net.d"], ["cniConfdir", "hostPaths"]),
    (["--set", "config.cleanupConfigOnExt=false"], ["cleanupConfigOnExt"]),
])
def test_schema_rejects_a_typo_naming_the_key(helm: Helm, set_args: list[str], must_mention: list[str]) -> None:
    proc = helm.run("template", "multus", str(CHART_DIR), *set_args)
    assert proc.returncode != 0
    assert proc.stdout == ""
    assert "values don't meet the specifications of the schema" in proc.stderr
    for word in must_mention:
        assert word in proc.stderr, proc.stderr
    assert "not allowed" in proc.stderr, proc.stderr
    assert len(proc.stderr.splitlines()) <= 6, f"the error should be short:\n{proc.stderr}"


@pytest.mark.helm
@pytest.mark.parametrize(("set_args", "key", "hint"), [
    (["--set", "config.namespaceIsolation=yes"], "namespaceIsolation", "boolean"),
    (["--set", "mode=thik"], "mode", "thick"),
    (["--set", "hostPaths.cniBinDir=opt/cni/bin"], "cniBinDir", "^/"),
    (["--set", "image.pullPolicy=Sometimes"], "pullPolicy", "IfNotPresent"),
    (["--set", "revisionHistoryLimit=-1"], "revisionHistoryLimit", "0"),
    (["--set", "config.logLevel=loud"], "logLevel", "verbose"),
    (["--set-json", 'tolerations={"operator":"Exists"}'], "tolerations", "array"),
])
def test_schema_rejects_a_wrong_value_naming_the_key(helm: Helm, set_args: list[str], key: str, hint: str) -> None:
    proc = helm.run("template", "multus", str(CHART_DIR), *set_args)
    assert proc.returncode != 0
    assert key in proc.stderr and hint in proc.stderr, proc.stderr


@pytest.mark.helm
def test_cleanup_and_repair_sections_are_closed(helm: Helm, render: Render) -> None:
    for values in ({"cleanup": {"unreachableNode": "skip"}}, {"repair": {"enable": True}}):
        result = render(helm, set_values=values)
        key = next(iter(next(iter(values.values()))))
        assert not result.ok and key in result.stderr


@pytest.mark.helm
@pytest.mark.parametrize("kube_version", ["1.29.0", "1.32.3", "1.35.0"])
def test_supported_kubernetes_versions_render(helm: Helm, render: Render, kube_version: str) -> None:
    assert render(helm, kube_version=kube_version).ok


@pytest.mark.helm
def test_older_kubernetes_is_refused(helm: Helm, render: Render) -> None:
    result = render(helm, kube_version="1.28.9")
    assert not result.ok
    assert ">=1.29.0-0" in result.stderr, result.stderr


@pytest.mark.helm
@pytest.mark.parametrize(("values", "message"), [
    ({"serviceAccount": {"create": False}}, "serviceAccount.name is required when serviceAccount.create is false"),
    ({"config": {"globalNamespaces": ["infra"]}}, "config.globalNamespaces has no effect unless"),
    ({"hostPaths": {"socketDir": "/multus"}}, 'hostPaths.socketDir "/multus"'),
])
def test_template_checks_explain_themselves(helm: Helm, render: Render, values: dict[str, Any], message: str) -> None:
    result = render(helm, set_values=values)
    assert not result.ok
    assert message in result.stderr, result.stderr
