"""Fixtures: a started API emulator, a ``kubernetes`` client pointed at it, the simulated kubelet, and
node seeding helpers. The emulator package lives next to this file (``tests/api/emulator``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import kubernetes.client
import pytest
from emulator import EmulatedApiServer
from emulator.kubelet import SimulatedKubelet
from emulator.objects import AddNodes, add_nodes


@pytest.fixture
def api_server() -> Iterator[EmulatedApiServer]:
    """A started emulator on 127.0.0.1 (random port); stopped (watches closed) after the test."""
    server = EmulatedApiServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def api_client(api_server: EmulatedApiServer) -> Iterator[kubernetes.client.ApiClient]:
    """A real ``kubernetes.client.ApiClient`` talking HTTP to ``api_server``."""
    client = kubernetes.client.ApiClient(api_server.configuration())
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def core_v1(api_client: kubernetes.client.ApiClient) -> kubernetes.client.CoreV1Api:
    return kubernetes.client.CoreV1Api(api_client)


@pytest.fixture
def kubelet(api_server: EmulatedApiServer) -> Iterator[SimulatedKubelet]:
    """The simulated DaemonSet controller + kubelets. Plug the node engine in with
    ``kubelet.run_pod = fn(pod_dict, node_name) -> (exit_code, termination_message[, logs])``;
    tune nodes with ``kubelet.behaviour(name)`` / ``kubelet.set_ready(name, False)``."""
    simulated = SimulatedKubelet(api_server.store, termination_delay=0.0)
    simulated.start()
    try:
        yield simulated
    finally:
        simulated.stop()


@pytest.fixture
def nodes(api_server: EmulatedApiServer) -> AddNodes:
    """``nodes(count, control_planes=0, cordoned=0, not_ready=0, prefix="node-", labels=None)``: create
    complete Linux nodes directly in the store (fast, not in the request log); returns their names."""

    def create(count: int, **kwargs: Any) -> list[str]:
        return add_nodes(api_server.store, count, **kwargs)

    return create
