"""Kill the device at one step: a store transaction or a request, before or after it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from mobile_schema.client import DeviceClient
from mobile_schema.local_store import LocalStore
from mobile_schema.transport import Reply, Request, Transport


class Killed(BaseException):
    """The app was killed (not an error the client may catch and handle)."""


@dataclass
class Faults:
    """Counts the device's steps once armed, and kills the one numbered `at`.

    `before`: a transaction is rolled back / a request never arrives.
    `after`: a transaction has committed / the server acted but the reply is lost.
    """

    at: int | None = None
    mode: str = "before"
    armed: bool = False
    count: int = 0
    steps: list[str] = field(default_factory=list)

    def tick(self, step: str) -> bool:
        if not self.armed:
            return False
        self.count += 1
        self.steps.append(step)
        return self.count == self.at


class FaultyStore(LocalStore):
    def __init__(self, path: Path, server_url: str, faults: Faults) -> None:
        self.faults = faults
        super().__init__(path, server_url, durable=False)

    @contextmanager
    def transaction(self, step: str) -> Iterator:
        kill = self.faults.tick(f"store:{step}")
        with super().transaction(step) as connection:
            yield connection
            if kill and self.faults.mode == "before":
                raise Killed(step)
        if kill and self.faults.mode == "after":
            raise Killed(step)


class FaultyTransport:
    def __init__(self, inner: Transport, faults: Faults) -> None:
        self.inner = inner
        self.faults = faults

    def send(self, request: Request) -> Reply:
        kill = self.faults.tick(f"http:{request.method} {request.path}")
        if kill and self.faults.mode == "before":
            raise Killed(request.path)
        reply = self.inner.send(request)
        if kill and self.faults.mode == "after":
            raise Killed(request.path)
        return reply


def open_faulty(
    path: Path, server: Transport, faults: Faults, credentials: tuple[str, str], **options
) -> DeviceClient:
    """The device as the app opens it after a restart, with the fault counter attached."""
    store = FaultyStore(path, "http://fieldsync.test", faults)
    return DeviceClient(
        store, FaultyTransport(server, faults), credentials=lambda: credentials, **options
    )
