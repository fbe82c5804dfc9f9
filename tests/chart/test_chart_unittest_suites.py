"""Run the helm-unittest suites in chart/tests with the real Helm binaries.

The helm-unittest plugin cannot be installed here, so this evaluates the subset of its v1 syntax the suites
use (suite/test keys, `set`, `release`, `template`, `documentIndex`, `not`, and the assertion types below)
against `helm template` output. A suite that uses anything else fails here, so the suites stay within what is
checked, and CI elsewhere runs the same files with `helm unittest chart`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from helm import CHART_DIR, Doc, Helm, Render, RenderResult

pytestmark = pytest.mark.helm

SUITES = sorted((CHART_DIR / "tests").glob("*_test.yaml"))
SUITE_KEYS = {"suite", "templates", "release", "capabilities", "set", "values", "tests"}
TEST_KEYS = {"it", "set", "values", "template", "templates", "documentIndex", "release", "asserts"}
ASSERT_OPTIONS = {"not", "template", "documentIndex"}
ASSERTIONS = {"equal", "notEqual", "exists", "notExists", "isKind", "contains", "notContains", "isSubset",
              "lengthEqual", "matchRegex", "hasDocuments", "failedTemplate", "notFailedTemplate"}
_MISSING = object()


def _cases() -> Iterator[Any]:
    for suite_file in SUITES:
        suite = yaml.safe_load(suite_file.read_text())
        for index, test in enumerate(suite.get("tests", [])):
            yield pytest.param(suite_file, index, id=f"{suite_file.stem}: {test.get('it', index)}")


_TOKEN = re.compile(r"""\.?(?:([A-Za-z_$][\w$-]*)|\[(\d+)\]|\["([^"]+)"\]|\['([^']+)'\])""")


def lookup(doc: Any, path: str) -> Any:
    """Resolve a helm-unittest path such as spec.containers[0].image or metadata.labels["app.kubernetes.io/name"]."""
    pos, node = 0, doc
    while pos < len(path):
        match = _TOKEN.match(path, pos)
        assert match and match.end() > pos, f"unsupported path syntax {path!r} at {path[pos:]!r}"
        pos = match.end()
        name, index, quoted, single = match.groups()
        if index is not None:
            if not isinstance(node, list) or int(index) >= len(node):
                return _MISSING
            node = node[int(index)]
        else:
            key = name or quoted or single
            if not isinstance(node, dict) or key not in node:
                return _MISSING
            node = node[key]
    return node


def _template_source(name: str) -> str:
    return name if name.startswith("templates/") else f"templates/{name}"


def _check(kind: str, params: dict[str, Any], docs: list[Doc], result: RenderResult) -> tuple[bool, str]:
    """(passed, explanation) of one assertion before `not` is applied."""
    if kind == "failedTemplate":
        if result.ok:
            return False, "the chart rendered without error"
        expected = params.get("errorMessage")
        if expected is None:
            return True, ""
        errors = [line.split("): ", 1)[-1] for line in result.stderr.splitlines() if line.startswith("Error:")]
        return expected in errors, f"errors were {errors}"
    if kind == "notFailedTemplate":
        return result.ok, result.stderr
    assert result.ok, f"rendering failed:\n{result.stderr}"
    if kind == "hasDocuments":
        return len(docs) == params["count"], f"{len(docs)} documents"
    if not docs:
        return False, "no documents rendered by the selected templates"
    for doc in docs:
        ok, why = _check_doc(kind, params, doc)
        if not ok:
            return False, why
    return True, ""


def _check_doc(kind: str, params: dict[str, Any], doc: Doc) -> tuple[bool, str]:
    if kind == "isKind":
        return doc.get("kind") == params["of"], f"kind is {doc.get('kind')}"
    value = lookup(doc, params["path"])
    shown = "<missing>" if value is _MISSING else repr(value)
    if kind == "exists":
        return value is not _MISSING, f"{params['path']} is {shown}"
    if kind == "notExists":
        return value is _MISSING or value is None, f"{params['path']} is {shown}"
    if value is _MISSING:
        return False, f"{params['path']} does not exist"
    if kind == "equal":
        return value == params["value"], f"{params['path']} is {shown}"
    if kind == "notEqual":
        return value != params["value"], f"{params['path']} is {shown}"
    if kind in ("contains", "notContains"):
        assert isinstance(value, list), f"{params['path']} is not a list: {shown}"
        content = params["content"]
        if params.get("any"):
            hits = sum(1 for v in value if isinstance(v, dict) and content.items() <= v.items())
        else:
            hits = sum(1 for v in value if v == content)
        found = hits == params["count"] if "count" in params else hits > 0
        return found if kind == "contains" else not found, f"{params['path']} is {shown}"
    if kind == "isSubset":
        assert isinstance(value, dict), f"{params['path']} is not a mapping: {shown}"
        return params["content"].items() <= value.items(), f"{params['path']} is {shown}"
    if kind == "lengthEqual":
        return len(value) == params["count"], f"{params['path']} has {len(value)} items"
    if kind == "matchRegex":
        return re.search(params["pattern"], str(value)) is not None, f"{params['path']} is {shown}"
    raise AssertionError(f"unsupported assertion {kind}")


def _set_values(*sets: dict[str, Any] | None) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for s in sets:
        merged.update(s or {})
    return merged


@pytest.mark.parametrize(("suite_file", "index"), list(_cases()))
def test_unittest_case(helm: Helm, render: Render, suite_file: Path, index: int) -> None:
    suite = yaml.safe_load(suite_file.read_text())
    assert set(suite) <= SUITE_KEYS, f"unexpected suite keys {set(suite) - SUITE_KEYS}"
    test = suite["tests"][index]
    assert set(test) <= TEST_KEYS, f"unexpected test keys {set(test) - TEST_KEYS}"
    assert test.get("asserts"), "a test needs asserts"
    for name in suite.get("templates", []):
        assert (CHART_DIR / _template_source(name)).is_file(), f"suite lists missing template {name}"
    assert not suite.get("values") and not test.get("values"), "values files are not supported here"

    release = {**suite.get("release", {}), **test.get("release", {})}
    caps = suite.get("capabilities", {})
    assert set(caps) <= {"majorVersion", "minorVersion"}, f"unsupported capabilities {caps}"
    kube_version = f"{caps['majorVersion']}.{caps['minorVersion']}.0" if caps else None
    result = render(helm, set_values=_set_values(suite.get("set"), test.get("set")),
                    release=release.get("name", "release-name"), namespace=release.get("namespace", "namespace"),
                    kube_version=kube_version)

    default_templates = ([test["template"]] if "template" in test else test.get("templates")
                         or suite.get("templates", []))
    for number, assertion in enumerate(test["asserts"]):
        kinds = set(assertion) - ASSERT_OPTIONS
        assert len(kinds) == 1 and kinds <= ASSERTIONS, f"assertion {number}: unsupported keys {kinds}"
        (kind,) = kinds
        params = assertion[kind] or {}
        templates = [assertion["template"]] if "template" in assertion else default_templates
        docs = [doc for t in templates for doc in result.from_template(_template_source(t))] if result.ok else []
        index_ = assertion.get("documentIndex", test.get("documentIndex"))
        if index_ is not None and kind != "hasDocuments":
            docs = [docs[index_]] if index_ < len(docs) else []
        passed, why = _check(kind, params, docs, result)
        if assertion.get("not"):
            passed = not passed
        assert passed, f"{test['it']}: assertion {number} ({'not ' if assertion.get('not') else ''}{kind} " \
                       f"{params}) failed: {why}"


def test_lookup_paths() -> None:
    doc = {"metadata": {"labels": {"app.kubernetes.io/name": "multus"}}, "spec": {"c": [{"n": 1}]}}
    assert lookup(doc, 'metadata.labels["app.kubernetes.io/name"]') == "multus"
    assert lookup(doc, "spec.c[0].n") == 1
    assert lookup(doc, "spec.c[1]") is _MISSING
    assert lookup(doc, "spec.d") is _MISSING
