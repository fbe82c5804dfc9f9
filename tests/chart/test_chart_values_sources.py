"""A value's default and description are written once, and every other place that holds them agrees:
- descriptions: `## @param` comments in values.yaml (the chart README is generated from them, the schema's
  descriptions are written from them by tools/sync-schema-descriptions);
- defaults: values.yaml for the chart, the config model (hook/multus_cleanup/config) for `multus-cleanup`
  run without a chart. The chart's rendered cleanup config must equal the model's own defaults, except where
  the chart knows better, listed in CHART_DECIDES with the reason."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from typing import Any

import yaml
from helm import REPO_ROOT, Helm, Render

from multus_cleanup.config import parse_config

# config fields whose chart value differs from the model's default on purpose
CHART_DECIDES = {
    "cluster.multus_daemonsets": "the chart stops its own DaemonSet; run alone, the model stops upstream's",
    "cluster.node_pod.image": "the chart's image follows the chart version",
    "cluster.node_pod.labels": "the chart's node pods carry the release's labels",
    "cluster.deadline_seconds": "the chart derives it from cleanup.job.activeDeadlineSeconds (30 s earlier)",
    "cluster.node_pod.service_account_name": "the chart makes the node pods a ServiceAccount of their own",
}


def _flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        out: dict[str, Any] = {}
        for f in dataclasses.fields(obj):
            out.update(_flatten(getattr(obj, f.name), f"{prefix}{f.name}."))
        return out
    return {prefix.rstrip("."): obj}


def test_schema_descriptions_are_the_values_comments() -> None:
    proc = subprocess.run([sys.executable, str(REPO_ROOT / "tools" / "sync-schema-descriptions"), "--check"],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, ("values.schema.json's descriptions differ from values.yaml's comments; run "
                                  f"tools/sync-schema-descriptions:\n{proc.stderr}")


def test_the_charts_default_cleanup_config_is_the_models_default(helm: Helm, render: Render) -> None:
    result = render(helm)
    assert result.ok, result.stderr
    configmap = next(d for d in result.objects() if d["kind"] == "ConfigMap"
                     and d["metadata"]["name"].endswith("-cleanup"))
    chart = _flatten(parse_config(yaml.safe_load(configmap["data"]["config.yaml"])))
    model = _flatten(parse_config({}))
    differ = {k: (chart[k], model[k]) for k in chart if chart[k] != model[k] and k not in CHART_DECIDES}
    assert differ == {}, ("defaults differ between values.yaml (chart) and the config model (hook/multus_cleanup/"
                          f"config); make them one, or list the field in CHART_DECIDES with the reason: {differ}")
    assert set(CHART_DECIDES) <= set(chart), "CHART_DECIDES names a field the config model no longer has"


def _documented_defaults(section: str) -> dict[str, str]:
    """`key` -> `default` of a table in docs/configuration.md: `node`, `cluster` or `cluster.nodePod`."""
    text = (REPO_ROOT / "docs" / "configuration.md").read_text()
    top = section.split(".")[0]
    body = text.split(f"## `{top}:`", 1)[1].split("\n## ", 1)[0]
    if top == "cluster":
        before, _, after = body.partition("`nodePod:` keys")
        body = after if section == "cluster.nodePod" else before
    rows = {}
    for line in body.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 2 and cells[0].startswith("`") and cells[1].startswith("`") and cells[1].endswith("`"):
            rows[cells[0].strip("`")] = cells[1][1:-1]
    return rows


def test_the_documented_defaults_are_the_models() -> None:
    """Setting a key to the default docs/configuration.md gives must change nothing."""
    default = parse_config({})
    checked = 0
    for section in ("node", "cluster", "cluster.nodePod"):
        for key, value in _documented_defaults(section).items():
            if "<" in value:  # `<cniConfDir>/multus.d`: derived from another key, not a literal
                continue
            raw: dict[str, Any] = {key: yaml.safe_load(value)}
            for part in reversed(section.split(".")):
                raw = {part: raw}
            given = parse_config(raw)
            assert given == default, f"docs/configuration.md: {section}.{key} defaults to {value}, the model disagrees"
            checked += 1
    assert checked >= 20, f"only {checked} documented defaults found: did the tables' layout change?"
