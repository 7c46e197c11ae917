"""State-machine tests: devices syncing against the reference replica and the SQL store."""

from __future__ import annotations

from hypothesis import settings
from hypothesis.stateful import run_state_machine_as_test

from tests.sync.backends import Agreeing, quick_engine
from tests.sync.machine import SyncMachine


class ReplicaMachine(SyncMachine):
    """Devices against the in-memory reference server."""


TestReplicaMachine = ReplicaMachine.TestCase
TestReplicaMachine.settings = settings(stateful_step_count=30)


def test_sql_store_machine(database) -> None:
    """The same machine with the SQL store as the server, held to the replica each step.

    Every example starts on one engine; a server restart opens a new one, and each
    example's backend disposes the engine it ends with.
    """
    engine = quick_engine(database)

    class StoreMachine(SyncMachine):
        backend_factory = staticmethod(
            lambda wall: Agreeing(engine, wall, reopen=lambda: quick_engine(database))
        )

    try:
        run_state_machine_as_test(StoreMachine, settings=settings(stateful_step_count=15))
    finally:
        engine.dispose()
