"""tools/build-palette-pack: the Spectro Cloud Palette pack built from chart/ (see docs/palette.md).

The pack is built once per session with the real Helm 3 binary; its packaged chart is then rendered with the
pack's chart values by both real Helm versions, as Palette does on install, and must carry the pre-delete hook
that Palette's `helm uninstall` runs when the pack is removed.
"""

from __future__ import annotations

import json
import re
import struct
import subprocess
import sys
import tarfile
import zlib
from pathlib import Path
from typing import Any

import pytest
import yaml
from helm import CHART_DIR, HELM_VERSIONS, REPO_ROOT, Helm, RenderResult, helm_binary, split_documents
from yamllint import linter  # type: ignore[import-untyped]
from yamllint.config import YamlLintConfig  # type: ignore[import-untyped]

pytestmark = pytest.mark.helm

TOOL = REPO_ROOT / "tools" / "build-palette-pack"
CHART = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())
CHART_VALUES_TEXT = (CHART_DIR / "values.yaml").read_text()
TGZ_NAME = f"{CHART['name']}-{CHART['version']}.tgz"
PACK_JSON_KEYS = {"name", "displayName", "version", "layer", "charts", "cloudTypes", "annotations", "constraints",
                  "addonType"}


def build(outdir: Path, *args: str, helm_path: Path | None = None) -> subprocess.CompletedProcess[str]:
    helm_path = helm_path or helm_binary(*HELM_VERSIONS[0])
    return subprocess.run([sys.executable, str(TOOL), "--helm", str(helm_path), *args, str(outdir)],
                          capture_output=True, text=True, timeout=300, check=False, cwd=REPO_ROOT)


@pytest.fixture(scope="module")
def pack(tmp_path_factory: pytest.TempPathFactory) -> Path:
    outdir = tmp_path_factory.mktemp("palette") / "multus-pack"
    proc = build(outdir)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    return outdir


def pack_json(pack: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((pack / "pack.json").read_text())
    return data


def pack_values(pack: Path) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((pack / "values.yaml").read_text())
    return data


def template_tgz(helm: Helm, tgz: Path, values: Path, *extra: str) -> RenderResult:
    release = "multus"  # pack.releaseNameOverride
    proc = helm.run("template", release, str(tgz), "--namespace", "kube-system", "--values", str(values),
                    "--include-crds", *extra)
    return RenderResult(proc.returncode, proc.stdout, proc.stderr,
                        split_documents(proc.stdout) if proc.returncode == 0 else ())


def images_of(node: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("containers", "initContainers") and isinstance(value, list):
                found |= {c["image"] for c in value}
            found |= images_of(value)
    elif isinstance(node, list):
        for item in node:
            found |= images_of(item)
    return found


# --- layout and pack.json ---------------------------------------------------------------------------

def test_pack_directory_layout(pack: Path) -> None:
    assert sorted(str(p.relative_to(pack)) for p in pack.rglob("*")) == sorted(
        ["README.md", "charts", f"charts/{TGZ_NAME}", "logo.png", "pack.json", "values.yaml"])


def test_pack_json_fields_and_types(pack: Path) -> None:
    data = pack_json(pack)
    assert set(data) <= PACK_JSON_KEYS, f"unexpected keys {set(data) - PACK_JSON_KEYS}"
    assert data["name"] == "multus"
    assert re.fullmatch(r"[a-z0-9][a-z0-9-]*", data["name"])
    assert isinstance(data["displayName"], str) and data["displayName"].strip()
    assert data["version"] == CHART["version"] == "0.1.0"
    # Multus is a meta-plugin over the profile's primary CNI: an add-on layer by default (docs/palette.md)
    assert data["layer"] == "addon" and data["addonType"] == "system app"
    assert data["charts"] == [f"charts/{TGZ_NAME}"]
    assert all((pack / c).is_file() for c in data["charts"])
    assert data["cloudTypes"] == ["all"]
    assert isinstance(data["annotations"], dict) and data["annotations"]
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in data["annotations"].items())
    assert data["annotations"]["appVersion"] == CHART["appVersion"]


def test_pack_json_constraint_is_the_charts_minimum_kubernetes(pack: Path) -> None:
    deps = pack_json(pack)["constraints"]["dependencies"]
    assert isinstance(deps, list) and len(deps) == 1
    dep = deps[0]
    assert set(dep) == {"packName", "layer", "minVersion", "maxVersion", "type"}
    assert all(isinstance(v, str) for v in dep.values())
    assert (dep["packName"], dep["layer"], dep["type"]) == ("kubernetes", "k8s", "optional")
    assert CHART["kubeVersion"] == ">=1.29.0-0" and dep["minVersion"] == "1.29.0" and dep["maxVersion"] == ""


def test_cni_layer_on_request(tmp_path: Path) -> None:
    proc = build(tmp_path / "cni-pack", "--layer", "cni", "--install-priority", "-5")
    assert proc.returncode == 0, proc.stderr
    data = pack_json(tmp_path / "cni-pack")
    assert data["layer"] == "cni" and "addonType" not in data
    assert pack_values(tmp_path / "cni-pack")["pack"]["spectrocloud.com/install-priority"] == "-5"


def test_refuses_a_non_empty_output_directory(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("mine")
    proc = build(tmp_path)
    assert proc.returncode == 1
    assert "not an empty directory" in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"]


def test_runs_as_a_command(tmp_path: Path) -> None:
    """As the docs show it: the script itself (its shebang), no interpreter named."""
    helm_path = helm_binary(*HELM_VERSIONS[0])
    proc = subprocess.run([str(TOOL), "--helm", str(helm_path), str(tmp_path / "pack")],
                          capture_output=True, text=True, timeout=300, check=False, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"pack multus {CHART['version']} (addon layer) written to {tmp_path / 'pack'}"
    assert (tmp_path / "pack" / "charts" / TGZ_NAME).is_file()


def test_fails_clearly_without_helm(tmp_path: Path) -> None:
    proc = build(tmp_path / "out", helm_path=tmp_path / "no-helm")
    assert proc.returncode == 1 and "is not an executable file" in proc.stderr


# --- values.yaml ------------------------------------------------------------------------------------

def test_values_pack_section(pack: Path) -> None:
    section = pack_values(pack)["pack"]
    assert set(section) == {"namespace", "releaseNameOverride", "spectrocloud.com/install-priority", "content"}
    assert section["namespace"] == "kube-system"
    assert section["releaseNameOverride"] == {"multus": "multus"}
    priority = section["spectrocloud.com/install-priority"]
    assert isinstance(priority, str) and int(priority) == 0
    images = section["content"]["images"]
    assert isinstance(images, list) and all(set(i) == {"image"} and isinstance(i["image"], str) for i in images)
    assert [i["image"] for i in images] == [
        "ghcr.io/k8snetworkplumbingwg/multus-cni:v4.3.0",
        "ghcr.io/k8snetworkplumbingwg/multus-cni:v4.3.0-thick",
        f"ghcr.io/multus-cleanup/multus-cleanup:{CHART['version']}",
    ]


def test_values_images_are_every_image_the_chart_pulls(pack: Path, helm: Helm, tmp_path: Path) -> None:
    """content.images (what an air-gapped mirror must hold) = the images of the thick and thin renderings."""
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump(pack_values(pack)["charts"]["multus"]))
    rendered: set[str] = set()
    for mode in ("thick", "thin"):
        result = template_tgz(helm, pack / "charts" / TGZ_NAME, values, "--set", f"mode={mode}")
        assert result.ok, result.stderr
        rendered |= images_of(result.objects())
        config = yaml.safe_load(next(d for d in result.objects() if d["kind"] == "ConfigMap" and
                                     d["metadata"]["name"] == "multus-cleanup")["data"]["config.yaml"])
        rendered.add(config["cluster"]["nodePod"]["image"])  # the node pods' image, from the hook's config
    assert {i["image"] for i in pack_values(pack)["pack"]["content"]["images"]} == rendered


def test_values_carry_the_chart_values_with_their_comments(pack: Path) -> None:
    text = (pack / "values.yaml").read_text()
    assert pack_values(pack)["charts"]["multus"] == yaml.safe_load(CHART_VALUES_TEXT)
    assert list(pack_values(pack)) == ["pack", "charts"]
    comments = [line.strip() for line in CHART_VALUES_TEXT.splitlines() if line.strip().startswith("#")]
    assert len(comments) > 100
    body = text.split("\ncharts:\n  multus:\n", 1)[1]
    assert [line.strip() for line in body.splitlines() if line.strip().startswith("#")] == comments
    assert "## @param cleanup.enabled" in body


def test_values_pass_yamllint_with_cts_rules(pack: Path) -> None:
    conf = YamlLintConfig(file=str(REPO_ROOT / ".yamllint"))
    problems = list(linter.run((pack / "values.yaml").read_text(), conf, "values.yaml"))
    assert not problems, "\n".join(f"{p.line}:{p.column} {p.message}" for p in problems)


# --- the packaged chart -----------------------------------------------------------------------------

def test_tgz_is_the_chart_packaged_by_helm(pack: Path) -> None:
    with tarfile.open(pack / "charts" / TGZ_NAME, "r:gz") as tar:
        names = tar.getnames()
        assert all(n.startswith("multus/") for n in names)
        packaged_chart = yaml.safe_load(tar.extractfile("multus/Chart.yaml").read())  # type: ignore[union-attr]
        packaged_values = tar.extractfile("multus/values.yaml").read().decode()  # type: ignore[union-attr]
        schema = tar.extractfile("multus/values.schema.json").read()  # type: ignore[union-attr]
    assert packaged_chart == CHART
    assert packaged_values == CHART_VALUES_TEXT
    assert schema == (CHART_DIR / "values.schema.json").read_bytes()
    templates = {str(p.relative_to(CHART_DIR / "templates")) for p in (CHART_DIR / "templates").rglob("*")
                 if p.is_file()}
    assert {n.split("/", 2)[2] for n in names if n.startswith("multus/templates/")} == templates
    assert "multus/crds/network-attachment-definitions.yaml" in names
    assert not [n for n in names if n.startswith("multus/tests/")], ".helmignore keeps the unittest suites out"


def test_tgz_passes_helm_lint(pack: Path, helm: Helm) -> None:
    proc = helm.run("lint", "--strict", str(pack / "charts" / TGZ_NAME))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 chart(s) linted, 0 chart(s) failed" in proc.stdout


def test_the_packaged_chart_renders_the_pre_delete_hook_with_the_pack_values(
        pack: Path, helm: Helm, tmp_path: Path) -> None:
    """What Palette installs (and, on removal, uninstalls): the tgz with charts.multus as values."""
    values = tmp_path / "pack-chart-values.yaml"
    values.write_text(yaml.safe_dump(pack_values(pack)["charts"]["multus"]))
    result = template_tgz(helm, pack / "charts" / TGZ_NAME, values)
    assert result.ok, result.stderr
    hooks = [d for d in result.objects() if "helm.sh/hook" in (d["metadata"].get("annotations") or {})]
    assert [(d["kind"], d["metadata"]["name"]) for d in hooks] == [("Job", "multus-cleanup")]
    job = hooks[0]
    annotations = job["metadata"]["annotations"]
    assert annotations["helm.sh/hook"] == "pre-delete"
    assert set(annotations["helm.sh/hook-delete-policy"].split(",")) == {"before-hook-creation", "hook-succeeded"}
    assert job["metadata"]["namespace"] == "kube-system"
    pod = job["spec"]["template"]["spec"]
    assert pod["containers"][0]["image"] == f"ghcr.io/multus-cleanup/multus-cleanup:{CHART['version']}"
    assert pod["containers"][0]["args"][0] == "run"
    # what the hook needs is an ordinary release resource, present while the hook runs
    present = {(d["kind"], d["metadata"]["name"]) for d in result.objects() if d not in hooks}
    assert {("ServiceAccount", pod["serviceAccountName"]),
            ("ConfigMap", pod["volumes"][0]["configMap"]["name"]),
            ("ClusterRole", "multus-cleanup"), ("ClusterRoleBinding", "multus-cleanup"),
            ("Role", "multus-cleanup"), ("RoleBinding", "multus-cleanup"),
            ("DaemonSet", "multus"), ("CustomResourceDefinition", "network-attachment-definitions.k8s.cni.cncf.io"),
            } <= present


def test_pack_values_edited_in_a_profile_still_render(pack: Path, helm: Helm, tmp_path: Path) -> None:
    """A profile typically edits charts.multus: thin mode, k3s paths, a mirrored cleanup image."""
    chart_values = pack_values(pack)["charts"]["multus"]
    chart_values["mode"] = "thin"
    chart_values["hostPaths"]["cniConfDir"] = "/var/lib/rancher/k3s/agent/etc/cni/net.d"
    chart_values["cleanup"]["image"]["repository"] = "registry.example.internal/mirror/multus-cleanup"
    chart_values["cleanup"]["nodes"]["unreachable"] = "skip"
    values = tmp_path / "edited.yaml"
    values.write_text(yaml.safe_dump(chart_values))
    result = template_tgz(helm, pack / "charts" / TGZ_NAME, values)
    assert result.ok, result.stderr
    job = next(d for d in result.objects() if d["kind"] == "Job")
    assert job["spec"]["template"]["spec"]["containers"][0]["image"].startswith("registry.example.internal/")


def test_builds_with_either_helm(helm: Helm, tmp_path: Path) -> None:
    proc = build(tmp_path / "pack", helm_path=helm.path)
    assert proc.returncode == 0, proc.stderr
    with tarfile.open(tmp_path / "pack" / "charts" / TGZ_NAME, "r:gz") as tar:
        assert yaml.safe_load(tar.extractfile("multus/Chart.yaml").read()) == CHART  # type: ignore[union-attr]


# --- logo.png ---------------------------------------------------------------------------------------

def png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "PNG signature"
    chunks, pos = [], 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, payload = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
        assert crc == zlib.crc32(kind + payload), f"bad CRC in {kind!r}"
        chunks.append((kind, payload))
        pos += 12 + length
    return chunks


def test_logo_is_a_valid_png(pack: Path) -> None:
    chunks = png_chunks((pack / "logo.png").read_bytes())
    assert chunks[0][0] == b"IHDR" and chunks[-1][0] == b"IEND"
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", chunks[0][1])
    assert (width, height, depth, colour, interlace) == (128, 128, 8, 6, 0)
    raw = zlib.decompress(b"".join(p for k, p in chunks if k == b"IDAT"))
    assert len(raw) == height * (1 + 4 * width)
    rows = [raw[y * (1 + 4 * width):(y + 1) * (1 + 4 * width)] for y in range(height)]
    assert all(row[0] == 0 for row in rows)
    pixels = {bytes(row[1 + 4 * x:5 + 4 * x]) for row in rows for x in range(width)}
    assert len(pixels) >= 3, "a picture, not a blank square"

