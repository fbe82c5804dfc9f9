"""The cluster tests' vocabulary: devcluster.chartkit, which the demo shares (`python3 -m demo --cluster`)."""

from devcluster.chartkit import *  # noqa: F403
from devcluster.chartkit import (  # noqa: F401  (the names the tests use, for mypy and readers)
    CHART,
    HELM3,
    HELM4,
    IMAGE_VALUES,
    NAD_SUBNET,
    NAMESPACE,
    PRIMARY_CONFIG,
    ClusterKit,
    helm_binaries,
    wait_for,
)
