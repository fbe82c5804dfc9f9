"""The real cluster every test of this level runs on: `devcluster` (tools/cluster) with two real nodes, the
first with the control-plane taint, stood up once per session and torn down at its end.

Each test starts from nodes as the cluster made them (the `clean_cluster` fixture checks it, and puts them
back if a failed test left Multus behind) and ends by uninstalling what it installed."""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from clusterkit import ClusterKit, helm_binaries
from devcluster import __main__ as tool
from devcluster import cluster as devcluster
from devcluster import images

pytestmark = pytest.mark.cluster

REPO = Path(__file__).resolve().parents[2]


def _bins() -> Path:
    proc = subprocess.run([str(REPO / "tools" / "build-real"), "--print-dir", "kubernetes"], capture_output=True,
                          text=True, check=True)
    bins = Path(proc.stdout.strip()).parent / "bin"
    missing = [b for b in ("kube-apiserver", "kubelet", "etcd", "kubectl", "helm", "multus")
               if not (bins / b).exists()]
    if missing:
        pytest.fail(f"{bins} lacks {', '.join(missing)}: run tools/install-deps (it runs tools/build-real)")
    return bins


@pytest.fixture(scope="session")
def kit() -> Iterator[ClusterKit]:
    if missing := devcluster.missing_prerequisites():
        pytest.fail("the cluster tests need: " + "; ".join(missing) + " (tools/install-deps installs them)")
    hook = tool.hook_image_archive()
    if hook is None:
        pytest.fail("the cleanup image is not built: run tools/build-image (tools/test does)")
    bins = _bins()
    archives = [*images.build_images(bins, REPO / ".cache" / "cluster-images").values(), hook]
    directory = Path(tempfile.mkdtemp(prefix="multus-cleanup-cluster-", dir=os.environ.get("CLUSTER_TEST_TMP")))
    c = devcluster.up(directory / "cluster", bins, nodes=2, images=archives, pause_image=images.PAUSE_IMAGE,
                      image_tags=tool.HOOK_IMAGE_TAGS)
    try:
        yield ClusterKit(c, helm_binaries(bins))
    finally:
        left = devcluster.down(directory / "cluster", remove=True)
        os.rmdir(directory)
        assert not left, f"processes of the test cluster still alive after down: {left}"


@pytest.fixture
def clean_cluster(kit: ClusterKit) -> Iterator[ClusterKit]:
    """The cluster with no release, no test pods and every node as `up` made it; restored after the test."""
    kit.reset()
    yield kit
    kit.reset()
