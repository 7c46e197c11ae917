"""Fixtures of the device tests: an in-memory sync server and devices on disk."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from mobile_schema.client import DeviceClient
from server import demo as demo_data
from tests.device.harness import open_device
from tests.device.replica_server import ReplicaServer

GRID_A, GRID_B, GRID_C = 11, 12, 13
PASSWORDS = {login.username: login.password for login in demo_data.DEMO_LOGINS}


@pytest.fixture
def world(database):
    """The real server's store holding the demo grids, users and forms."""
    with database.session() as session:
        demo_data.load(session)
    return database


@pytest.fixture
def server() -> ReplicaServer:
    server = ReplicaServer()
    server.add_user("worker1", [GRID_A, GRID_B])
    server.add_user("worker2", [GRID_A, GRID_B])
    server.add_user("supervisor", [GRID_A, GRID_B, GRID_C], role="supervisor")
    return server


@pytest.fixture
def make_device(tmp_path, server) -> Iterator[Callable[..., DeviceClient]]:
    """A registered device that has synced once (so it holds the forms)."""
    opened: list[DeviceClient] = []

    def make(name: str, username: str = "worker1", **options) -> DeviceClient:
        password = server.users[username].password
        client = open_device(tmp_path / f"{name}.db", server, (username, password), **options)
        client.register(username, password, name)
        client.sync()
        opened.append(client)
        return client

    yield make
    for client in opened:
        client.close()
