"""The cleanup's Role in the release namespace, rule by rule (real Helm 3 and Helm 4): least privilege is
what is pinned here, so a rule that is added or widened shows up as a change to this test."""

from __future__ import annotations

import pytest
from helm import Helm, Render

pytestmark = pytest.mark.helm


def test_the_release_namespace_role_grants_exactly_what_the_run_uses(helm: Helm, render: Render) -> None:
    result = render(helm)
    assert result.ok, result.stderr
    (role,) = [d for d in result.objects() if d["kind"] == "Role" and d["metadata"]["name"] == "multus-cleanup"
               and d["metadata"]["namespace"] == "kube-system"]
    assert role["rules"] == [
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["create", "list", "watch", "deletecollection"]},
        {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
        # create: the run's Events on the hook Job; list: a stuck node pod's own (podevents.why_stuck)
        {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "list"]},
        {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["get"], "resourceNames": ["multus-cleanup"]},
        {"apiGroups": ["apps"], "resources": ["daemonsets"], "verbs": ["get", "patch"], "resourceNames": ["multus"]},
    ]
