"""Run the real Helm binaries against chart/ and parse what they render."""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
CHART_DIR = REPO_ROOT / "chart"
CI_VALUES = tuple(sorted((CHART_DIR / "ci").glob("*-values.yaml")))
UPSTREAM_DIR = Path(os.environ.get("MULTUS_UPSTREAM_DIR", "/work/shared/reference/upstream-multus-v4.3.0"))

RELEASE = "multus"
MULTUS_COMPONENT = "cni"  # app.kubernetes.io/component of the Multus DaemonSet and its objects
NAMESPACE = "kube-system"

# (version, env override, cache path relative to the repo)
HELM_VERSIONS: tuple[tuple[str, str], ...] = (("v3.17.2", "HELM3_BIN"), ("v4.3.1", "HELM4_BIN"))

Doc = dict[str, Any]


class HelmMissingError(RuntimeError):
    pass


class RealPartMissingError(RuntimeError):
    pass


def real_part(part: str) -> Path:
    """The directory `tools/build-real` built PART into (ct, helm-unittest, helm3, ...). Raises if not built.

    The directory comes from `tools/build-real --print-dir PART` (a hash of the part's pinned inputs), so a
    build for other inputs never passes for this one.
    """
    proc = subprocess.run([str(REPO_ROOT / "tools" / "build-real"), "--print-dir", part], capture_output=True,
                          text=True, check=False, timeout=60)
    if proc.returncode != 0:
        raise RealPartMissingError(f"tools/build-real --print-dir {part} failed: {proc.stdout}{proc.stderr}")
    path = Path(proc.stdout.strip())
    if not (path / ".done").is_file():
        raise RealPartMissingError(f"{part} is not built for the pinned inputs ({path} missing). "
                                   f"Build it with: tools/build-real {part} (tools/install-deps does)")
    return path


@dataclass(frozen=True)
class RenderResult:
    """Outcome of one `helm template`: the documents with the template each came from, or the error."""

    returncode: int
    stdout: str
    stderr: str
    docs: tuple[tuple[str, Doc], ...] = field(default=())

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def objects(self) -> list[Doc]:
        return [doc for _, doc in self.docs]

    def from_template(self, template: str) -> list[Doc]:
        """Documents rendered by `templates/<name>` (crds/ files are `crds/<name>`)."""
        return [doc for source, doc in self.docs if source == template]

    def kind(self, kind: str) -> list[Doc]:
        """Multus's own objects of `kind`: the CRD and everything labelled app.kubernetes.io/component=cni.

        Objects of other components (the cleanup hook's Job, ServiceAccount, RBAC, ...) are left out.
        """
        return [doc for _, doc in self.docs if doc.get("kind") == kind and is_multus_object(doc)]

    def one(self, kind: str) -> Doc:
        found = self.kind(kind)
        assert len(found) == 1, f"expected one {kind}, got {len(found)}: {[d['metadata']['name'] for d in found]}"
        return found[0]


# The `render` fixture: render(helm, values_file=None, set_values=None, **Helm.template kwargs) -> RenderResult
Render = Callable[..., RenderResult]


def is_multus_object(doc: Doc) -> bool:
    component = (doc.get("metadata", {}).get("labels") or {}).get("app.kubernetes.io/component")
    return component in (None, MULTUS_COMPONENT)


def helm_binary(version: str, env_var: str) -> Path:
    """The Helm binary of `version`: $<env_var> or .cache/helm/<version>/helm. Raises if it is missing."""
    override = os.environ.get(env_var)
    path = Path(override) if override else REPO_ROOT / ".cache" / "helm" / version / "helm"
    if not (path.is_file() and os.access(path, os.X_OK)):
        raise HelmMissingError(
            f"Helm {version} not found at {path} (set {env_var} to override). "
            "Fetch the pinned binaries with: python3 tools/fetch_helm.py"
        )
    return path


_SOURCE = re.compile(r"^# Source: [^/\n]+/(\S+)\s*$", re.MULTILINE)


def split_documents(stdout: str) -> tuple[tuple[str, Doc], ...]:
    """Split `helm template` output into (source template, object), skipping empty documents."""
    out: list[tuple[str, Doc]] = []
    for chunk in re.split(r"^---\s*$", stdout, flags=re.MULTILINE):
        match = _SOURCE.search(chunk)
        doc = yaml.safe_load(chunk)
        if doc is None:
            continue
        assert isinstance(doc, dict), f"non-mapping document:\n{chunk}"
        out.append((match.group(1) if match else "", doc))
    return tuple(out)


@dataclass(frozen=True)
class Helm:
    version: str
    path: Path
    home: Path  # isolated HELM_*_HOME so the tests never read or write the user's Helm config
    plugins: Path | None = None  # HELM_PLUGINS (default: the isolated home's own, empty)

    @property
    def major(self) -> int:
        return int(self.version.lstrip("v").split(".")[0])

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("HELM_")}
        env.update(
            HELM_CACHE_HOME=str(self.home / "cache"),
            HELM_CONFIG_HOME=str(self.home / "config"),
            HELM_DATA_HOME=str(self.home / "data"),
            KUBECONFIG=str(self.home / "no-kubeconfig"),
        )
        if self.plugins is not None:
            env["HELM_PLUGINS"] = str(self.plugins)
        return env

    def run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(self.path), *args], capture_output=True, text=True, env=self.env(),
                              timeout=timeout, check=False, cwd=REPO_ROOT)

    def template(
        self,
        values_files: Iterable[Path] = (),
        set_values: Mapping[str, Any] | None = None,
        *,
        release: str = RELEASE,
        namespace: str = NAMESPACE,
        include_crds: bool = False,
        kube_version: str | None = None,
        api_versions: Iterable[str] = (),
    ) -> RenderResult:
        args = ["template", release, str(CHART_DIR), "--namespace", namespace]
        for api in api_versions:  # what discovery would report on a cluster (helm install does that)
            args += ["--api-versions", api]
        for f in values_files:
            args += ["--values", str(f)]
        for key, value in (set_values or {}).items():
            args += ["--set-json", f"{key}={json.dumps(value)}"]
        if include_crds:
            args.append("--include-crds")
        if kube_version:
            args += ["--kube-version", kube_version]
        proc = self.run(*args)
        docs = split_documents(proc.stdout) if proc.returncode == 0 else ()
        return RenderResult(proc.returncode, proc.stdout, proc.stderr, docs)

    def lint(self, values_file: Path | None = None) -> subprocess.CompletedProcess[str]:
        args = ["lint", "--strict", str(CHART_DIR)]
        if values_file is not None:
            args += ["--values", str(values_file)]
        return self.run(*args)


def load_upstream(name: str) -> list[Doc]:
    """The objects of an upstream Multus v4.3.0 manifest (thick or thin)."""
    path = UPSTREAM_DIR / name
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def containers(daemonset: Doc, init: bool = False) -> dict[str, Doc]:
    spec = daemonset["spec"]["template"]["spec"]
    return {c["name"]: c for c in spec.get("initContainers" if init else "containers", [])}


def volumes(daemonset: Doc) -> dict[str, Doc]:
    return {v["name"]: v for v in daemonset["spec"]["template"]["spec"].get("volumes", [])}


def mounts(container: Doc) -> dict[str, Doc]:
    return {m["name"]: m for m in container.get("volumeMounts", [])}


def host_path(volume: Doc) -> str:
    return str(volume["hostPath"]["path"]).rstrip("/") or "/"


def daemon_config(result: RenderResult) -> dict[str, Any]:
    cm = result.one("ConfigMap")
    parsed: dict[str, Any] = json.loads(cm["data"]["daemon-config.json"])
    return parsed


def normalise_rules(rules: Iterable[Mapping[str, Any]]) -> set[tuple[frozenset[str], ...]]:
    """RBAC rules as comparable sets (order inside a rule does not change what it grants)."""
    return {
        (frozenset(r.get("apiGroups", [])), frozenset(r.get("resources", [])), frozenset(r.get("verbs", [])),
         frozenset(r.get("resourceNames", [])), frozenset(r.get("nonResourceURLs", [])))
        for r in rules
    }
