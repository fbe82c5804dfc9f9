"""kube.connect: the HTTP pool is sized before the client builds it (setting the size later changes nothing)."""

from __future__ import annotations

from pathlib import Path

import yaml

from multus_cleanup.cluster.kube import CONNECTION_POOL_SIZE, connect


def test_the_connection_pool_has_its_size_from_the_start(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:6443", "insecure-skip-tls-verify": True}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}]}))
    kube = connect(str(kubeconfig))
    pool = kube.api.rest_client.pool_manager
    assert pool.connection_pool_kw["maxsize"] == CONNECTION_POOL_SIZE
    assert kube.api.configuration.retries is False  # retries are Kube's, counted and logged
