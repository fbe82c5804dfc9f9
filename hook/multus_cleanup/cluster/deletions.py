"""The last step: delete from the API what the user asked for. Nothing of the user's data by default."""

from __future__ import annotations

import logging

from ..config.cluster import ClusterConfig, ExtraResource
from .kube import CRDS, NADS, Kube, NotFound, Resource

log = logging.getLogger(__name__)

NAD_CRD = "network-attachment-definitions.k8s.cni.cncf.io"


def delete_requested(kube: Kube, cluster: ClusterConfig) -> list[str]:
    """Returns what was deleted, in words."""
    done: list[str] = []
    if cluster.delete_network_attachment_definitions and not cluster.delete_crd:
        done += _delete_nads(kube)
    if cluster.delete_crd:
        # Deleting the CRD deletes every NetworkAttachmentDefinition with it.
        try:
            kube.request("delete", CRDS, name=NAD_CRD)
            done.append(f"CustomResourceDefinition {NAD_CRD} (and every NetworkAttachmentDefinition)")
        except NotFound:
            log.info("CustomResourceDefinition %s is already gone", NAD_CRD)
    for extra in cluster.extra_resources:
        if _delete_extra(kube, extra):
            done.append(extra.describe())
    for line in done:
        log.info("Deleted %s", line)
    return done


def _delete_nads(kube: Kube) -> list[str]:
    try:
        items, _ = kube.list_all(NADS)
    except NotFound:
        log.info("NetworkAttachmentDefinitions are not served (CRD gone): nothing to delete")
        return []
    namespaces = sorted({i["metadata"]["namespace"] for i in items})
    for namespace in namespaces:
        kube.request("deletecollection", NADS, namespace=namespace)
    return [f"{len(items)} NetworkAttachmentDefinition(s) in {len(namespaces)} namespace(s)"] if items else []


def _delete_extra(kube: Kube, extra: ExtraResource) -> bool:
    resource = Resource(extra.group, extra.version, extra.resource, namespaced=extra.namespace is not None)
    try:
        kube.request("delete", resource, namespace=extra.namespace, name=extra.name)
        return True
    except NotFound:
        log.info("%s is already gone", extra.describe())
        return False
