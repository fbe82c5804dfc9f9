"""Fixtures for the chart tests: the real Helm 3 and Helm 4 binaries, and a cache of their renderings."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from helm import HELM_VERSIONS, Helm, HelmMissingError, Render, RenderResult, helm_binary


@pytest.fixture(scope="session", params=[v for v, _ in HELM_VERSIONS], ids=[f"helm-{v}" for v, _ in HELM_VERSIONS])
def helm(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Helm:
    """Each real Helm binary in turn. Missing binaries FAIL the tests: the chart must be checked with both."""
    version: str = request.param
    env_var = dict(HELM_VERSIONS)[version]
    return Helm(version=version, path=_binary_or_fail(version, env_var),
                home=tmp_path_factory.mktemp(f"helm-home-{version}"))


def _binary_or_fail(version: str, env_var: str) -> Path:
    try:
        return helm_binary(version, env_var)
    except HelmMissingError as exc:
        message = str(exc)
    pytest.fail(message, pytrace=False)


@pytest.fixture(scope="session")
def _render_cache() -> dict[str, RenderResult]:
    return {}


@pytest.fixture(scope="session")
def render(_render_cache: dict[str, RenderResult]) -> Render:
    """render(helm, values_file=None, set_values=None, **template_kwargs): `helm template`, memoised per session.

    Each (Helm version, values file, --set values, options) renders once however many tests look at it.
    """

    def _render(helm: Helm, values_file: Path | None = None, set_values: Mapping[str, Any] | None = None,
                **kwargs: Any) -> RenderResult:
        key = json.dumps([helm.version, str(values_file), set_values or {}, kwargs], sort_keys=True)
        if key not in _render_cache:
            files = [values_file] if values_file is not None else []
            _render_cache[key] = helm.template(files, set_values, **kwargs)
        return _render_cache[key]

    return _render


@pytest.fixture(scope="session")
def all_helms(tmp_path_factory: pytest.TempPathFactory) -> list[Helm]:
    """Both Helm binaries at once, for tests that compare them."""
    out = []
    for version, env_var in HELM_VERSIONS:
        out.append(Helm(version=version, path=_binary_or_fail(version, env_var),
                        home=tmp_path_factory.mktemp(f"helm-home-all-{version}")))
    return out
