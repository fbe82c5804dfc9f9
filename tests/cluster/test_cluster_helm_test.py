"""`helm test` on the real cluster: the chart's test hooks (templates/tests/) create a NetworkAttachmentDefinition
and a pod attached to it through the Multus the chart installed; the test passes when the pod has `net1`,
and fails (leaving the pod, with its events, for inspection) when Multus cannot attach it."""

from __future__ import annotations

import pytest
from clusterkit import CHART, HELM3, HELM4, IMAGE_VALUES, NAMESPACE, ClusterKit
from devcluster import images

pytestmark = pytest.mark.cluster

RELEASE = "multus"
TEST_NAME = f"{RELEASE}-test-net1"  # templates/tests/_helpers.tpl: <fullname>-test-net1
BUSYBOX_REPOSITORY, BUSYBOX_TAG = images.BUSYBOX_IMAGE.rsplit(":", 1)
# the nodes carry only local images: the test pod runs clusterkit's busybox, never pulled
TEST_VALUES = ("tests.enabled=true", f"tests.image.repository={BUSYBOX_REPOSITORY}", "tests.image.pullPolicy=Never")


def install(kit: ClusterKit, helm: str, *values: str) -> None:
    """kit.install, plus the busybox tag as a string (`--set` would make the tag `1` a number)."""
    sets = [a for v in (*IMAGE_VALUES, "mode=thick", *TEST_VALUES, *values) for a in ("--set", v)]
    kit.helm(helm, "install", RELEASE, str(CHART), "-n", NAMESPACE, *sets,
             "--set-string", f"tests.image.tag={BUSYBOX_TAG}", "--wait", "--timeout", "3m")


def hooks_present(kit: ClusterKit) -> list[str]:
    """The test hooks that exist now: Pod/<name> and NetworkAttachmentDefinition/<name>."""
    pods = [f"Pod/{p['metadata']['name']}" for p in kit.pods(NAMESPACE, "app.kubernetes.io/component=test")]
    nads = kit.cluster.get_json("network-attachment-definitions", "-n", NAMESPACE)["items"]
    return sorted(pods + [f"NetworkAttachmentDefinition/{n['metadata']['name']}" for n in nads])


@pytest.mark.parametrize("helm", [HELM3, HELM4])
def test_helm_test_passes_with_a_pod_on_a_secondary_network(clean_cluster: ClusterKit, helm: str) -> None:
    kit = clean_cluster
    install(kit, helm)
    kit.multus_pods_running()
    assert hooks_present(kit) == [], "install must not create the test hooks"

    result = kit.helm(helm, "test", RELEASE, "-n", NAMESPACE, "--timeout", "3m", check=False)
    assert result.returncode == 0, f"helm test failed:\n{result.stdout}\n{result.stderr}"
    assert f"TEST SUITE:     {TEST_NAME}" in result.stdout
    assert "Phase:          Succeeded" in result.stdout
    assert hooks_present(kit) == [], "hook-succeeded: a passing test leaves nothing behind"

    uninstall = kit.uninstall(helm)
    assert uninstall.returncode == 0, f"helm uninstall failed:\n{uninstall.stdout}\n{uninstall.stderr}"
    assert not kit.pods(NAMESPACE, f"app.kubernetes.io/instance={RELEASE}"), "Multus or test pods left"


def test_helm_test_fails_when_multus_cannot_attach_the_network(clean_cluster: ClusterKit) -> None:
    """Negative control: a network whose CNI plugin no node has never gives the pod `net1`; `helm test`
    fails and its pod stays for inspection (the network, a hook that succeeded, is deleted as hook-succeeded)."""
    kit = clean_cluster
    install(kit, HELM4, "tests.networkConfig.type=no-such-plugin")
    kit.multus_pods_running()
    result = kit.helm(HELM4, "test", RELEASE, "-n", NAMESPACE, "--timeout", "45s", check=False)
    assert result.returncode != 0, f"helm test passed without a working network:\n{result.stdout}"
    assert hooks_present(kit) == [f"Pod/{TEST_NAME}"]
    events = kit.cluster.get_json("events", "-n", NAMESPACE, "--field-selector",
                                  f"involvedObject.name={TEST_NAME}")["items"]
    assert any("no-such-plugin" in e.get("message", "") for e in events), [e.get("message") for e in events]

    kit.kubectl("delete", "-n", NAMESPACE, f"pod/{TEST_NAME}", "--wait", "--timeout", "60s")
    uninstall = kit.uninstall(HELM4)
    assert uninstall.returncode == 0, f"helm uninstall failed:\n{uninstall.stdout}\n{uninstall.stderr}"
