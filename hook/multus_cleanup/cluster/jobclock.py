"""The run's budget counts from the hook Job's start, not this process's: a pod that Kubernetes started again
(after an eviction) has only what is left of the Job's activeDeadlineSeconds, and must plan for that."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from ..config import CleanupConfig
from .kube import ApiError, Kube, Resource
from .nodepod import Owner

log = logging.getLogger(__name__)

JOBS = Resource("batch", "v1", "jobs", namespaced=True)


def job_elapsed(kube: Kube, config: CleanupConfig, owner: Owner | None) -> float:
    """Seconds since the hook Job's status.startTime (0 with no Job: a run from a workstation)."""
    if owner is None:
        return 0.0
    try:
        job = kube.request("get", JOBS, namespace=config.cluster.namespace, name=owner.name)
        started = datetime.strptime(job["status"]["startTime"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except (ApiError, KeyError, ValueError) as err:
        log.info("the hook Job's start time is unknown (%s): the run's budget counts from now", err)
        return 0.0
    return max(0.0, (datetime.now(UTC) - started).total_seconds())
