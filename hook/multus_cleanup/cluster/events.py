"""Kubernetes Events on the hook Job, so that `kubectl describe job`, `kubectl get events`, Argo CD and
Palette show the cleanup's progress: started, Multus stopped, "17/40 nodes clean", each node that failed, the
result. Their count stays bounded whatever the cluster's size (progress at most every PROGRESS_SECONDS, at
most MAX_NODE_EVENTS failed nodes), so they cost a few requests per run, not one per node.

An Event is a report, never a step: one that cannot be written is logged and the cleanup goes on. A run with
no Job to attach them to (from a workstation) writes none."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime

from .kube import ApiError, Kube, Resource
from .nodepod import Owner

log = logging.getLogger(__name__)

EVENTS = Resource("", "v1", "events", namespaced=True)
COMPONENT = "multus-cleanup"
MAX_NODE_EVENTS = 20
PROGRESS_SECONDS = 10.0
MAX_MESSAGE = 1024  # the API server refuses longer Event messages


class JobEvents:
    def __init__(self, kube: Kube, owner: Owner | None, namespace: str, run_id: str) -> None:
        self.kube, self.owner, self.namespace, self.run_id = kube, owner, namespace, run_id
        self.node_events = 0
        self._last_progress: float | None = None

    def normal(self, reason: str, message: str) -> None:
        self._emit("Normal", reason, message)

    def warning(self, reason: str, message: str) -> None:
        self._emit("Warning", reason, message)

    def progress(self, line: str) -> None:
        """'17/40 nodes clean': at most one Event per PROGRESS_SECONDS, so a long run costs a few dozen."""
        now = time.monotonic()
        if self._last_progress is None or now - self._last_progress >= PROGRESS_SECONDS:
            self._last_progress = now
            self.normal("Progress", line)

    def node_failed(self, node: str, status: str, detail: str) -> None:
        self.node_events += 1
        if self.node_events <= MAX_NODE_EVENTS:
            self.warning("NodeNotClean", f"node {node}: {status}: {detail}")
        elif self.node_events == MAX_NODE_EVENTS + 1:
            self.warning("NodeNotClean", "more nodes are not clean: the Job's log has every one")

    def _emit(self, kind: str, reason: str, message: str) -> None:
        if self.owner is None:
            return
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        if len(message) > MAX_MESSAGE:
            message = message[:MAX_MESSAGE - 3] + "..."
        body = {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"generateName": f"{self.owner.name}.", "namespace": self.namespace},
            "involvedObject": {"apiVersion": "batch/v1", "kind": "Job", "name": self.owner.name,
                               "namespace": self.namespace, "uid": self.owner.uid},
            "type": kind, "reason": reason, "message": message, "count": 1,
            "firstTimestamp": now, "lastTimestamp": now,
            "source": {"component": COMPONENT}, "reportingComponent": COMPONENT, "reportingInstance": self.run_id,
        }
        try:
            self.kube.request("create", EVENTS, namespace=self.namespace, body=body)
        except ApiError as err:
            log.info("could not record the event %s (%s); the cleanup goes on", reason, err)
