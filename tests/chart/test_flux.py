"""The chart under Flux (examples/flux/helmrelease.yaml, docs/flux.md).

Flux's helm-controller renders and installs with Helm's library: the HelmRelease's `spec.values` become the
release's values, and deleting the HelmRelease is `helm uninstall` with `spec.uninstall`'s settings, hooks
included. Rendered that way, the example keeps the cleanup hook and gives it time to finish."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from helm import REPO_ROOT, Helm

pytestmark = pytest.mark.helm

EXAMPLE = REPO_ROOT / "examples" / "flux" / "helmrelease.yaml"


def helmrelease() -> dict[str, Any]:
    docs: list[dict[str, Any]] = [d for d in yaml.safe_load_all(EXAMPLE.read_text()) if d]
    (release,) = [d for d in docs if d["kind"] == "HelmRelease"]
    source = next(d for d in docs if d["kind"] == "GitRepository")
    assert release["spec"]["chart"]["spec"]["sourceRef"]["name"] == source["metadata"]["name"]
    return release


def _seconds(duration: str) -> int:
    units = {"s": 1, "m": 60, "h": 3600}
    return int(duration[:-1]) * units[duration[-1]]


def test_the_example_keeps_the_hooks_and_gives_them_more_time_than_the_job_takes() -> None:
    spec = helmrelease()["spec"]
    assert helmrelease()["apiVersion"] == "helm.toolkit.fluxcd.io/v2"
    assert spec["releaseName"] == "multus" and spec["chart"]["spec"]["chart"] == "./chart"
    assert spec["uninstall"]["disableHooks"] is False  # true would be `helm uninstall --no-hooks`
    assert "suspend" not in spec  # a suspended HelmRelease is deleted without any uninstall
    deadline = spec["values"]["cleanup"]["job"]["activeDeadlineSeconds"]
    assert _seconds(spec["uninstall"]["timeout"]) > deadline, "the hook would time out before its own deadline"
    assert spec["install"]["crds"] == "Create"


def test_the_helm_release_renders_one_pre_delete_hook_bounded_by_its_values(helm: Helm, tmp_path: Path) -> None:
    spec = helmrelease()["spec"]
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump(spec["values"]))
    result = helm.template([values], release=spec["releaseName"], namespace=spec["targetNamespace"])
    assert result.ok, result.stderr
    hooks = [d for d in result.objects() if "helm.sh/hook" in (d["metadata"].get("annotations") or {})]
    assert [(d["kind"], d["metadata"]["name"], d["metadata"]["annotations"]["helm.sh/hook"]) for d in hooks] == [
        ("Job", "multus-cleanup", "pre-delete")]
    assert hooks[0]["spec"]["activeDeadlineSeconds"] == spec["values"]["cleanup"]["job"]["activeDeadlineSeconds"]
    # helm-controller panics on this annotation and never finishes the uninstall (fluxcd/helm-controller#1562)
    assert "helm.sh/hook-output-log-policy" not in hooks[0]["metadata"]["annotations"]
