"""The cleanup values regrouped under cleanup.job, cleanup.nodePod and cleanup.nodes: each deprecated name still
works until chart 0.2.0 and renders exactly what its new name renders; the schema accepts it, marked deprecated;
nothing but the deprecated names themselves is left at the old places."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import yaml
from helm import CHART_DIR, Helm, Render

pytestmark = pytest.mark.helm

SCHEMA = json.loads((CHART_DIR / "values.schema.json").read_text())


def renamed() -> dict[str, str]:
    """old name -> new path below cleanup, from the one mapping the templates use (_helpers.tpl)."""
    text = (CHART_DIR / "templates" / "_helpers.tpl").read_text()
    body = re.search(r'define "multus\.cleanupRenamed" -}}\n(.*?)\n{{- end -}}', text, re.S)
    assert body, "multus.cleanupRenamed not found in _helpers.tpl"
    mapping: dict[str, str] = yaml.safe_load(body.group(1))
    return mapping


# A value for each renamed key that differs from its default, so the rendering shows whether it was read.
SAMPLES: dict[str, Any] = {
    "nodes.selector": {"disk": "ssd"},
    "nodes.selectorExpressions": [{"key": "pool", "operator": "In", "values": ["a"]}],
    "nodes.unreachable": "skip",
    "job.activeDeadlineSeconds": 600,
    "job.backoffLimit": 2,
    "job.nodeSelector": {"disk": "ssd"},
    "job.affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 1, "preference": {"matchExpressions": [{"key": "pool", "operator": "In", "values": ["a"]}]}}]}},
    "job.tolerations": [{"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}],
    "job.podAnnotations": {"team": "net"},
    "job.resources": {"limits": {"memory": "1Gi"}},
    "job.podSecurityContext": {"runAsUser": 1000},
    "job.securityContext": {"readOnlyRootFilesystem": False},
    "nodePod.timeoutSeconds": 33,
    "nodePod.retries": 3,
    "nodePod.startErrorGraceSeconds": 7,
    "nodePod.annotations": {"team": "net"},
    "nodePod.resources": {"limits": {"memory": "1Gi"}},
    "nodePod.securityContext": {"privileged": True},
}


def test_every_renamed_value_has_a_sample_and_a_deprecated_schema_entry() -> None:
    mapping = renamed()
    assert sorted(mapping.values()) == sorted(SAMPLES)
    cleanup = SCHEMA["properties"]["cleanup"]["properties"]
    for old, new in mapping.items():
        group, leaf = new.split(".")
        assert leaf in cleanup[group]["properties"], f"cleanup.{new} is not in the schema"
        entry = cleanup[old]
        assert entry.get("deprecated") is True and f"cleanup.{new}" in entry["description"], old
        # the old name accepts what the new one accepts
        assert {k: v for k, v in entry.items() if k not in ("deprecated", "description")} == {
            k: v for k, v in cleanup[group]["properties"][leaf].items() if k != "description"}, old
    values = yaml.safe_load((CHART_DIR / "values.yaml").read_text())["cleanup"]
    assert not set(mapping) & set(values), "values.yaml must not set a deprecated name (it would always win)"


@pytest.mark.parametrize("old", sorted(renamed()))
def test_a_deprecated_name_renders_what_its_new_name_renders(helm: Helm, render: Render, old: str) -> None:
    new = renamed()[old]
    sample = SAMPLES[new]
    by_old = render(helm, set_values={f"cleanup.{old}": sample})
    by_new = render(helm, set_values={f"cleanup.{new}": sample})
    default = render(helm)
    assert by_old.ok and by_new.ok, by_old.stderr + by_new.stderr
    assert by_new.stdout != default.stdout, f"cleanup.{new}={sample!r} changed nothing in the rendering"
    assert by_old.stdout == by_new.stdout, f"cleanup.{old} does not render as cleanup.{new}"
