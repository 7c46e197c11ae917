"""State-machine tests: devices syncing against the reference replica and the SQL store."""

from __future__ import annotations

from hypothesis import settings

from tests.sync.machine import SyncMachine


class ReplicaMachine(SyncMachine):
    """Devices against the in-memory reference server."""


TestReplicaMachine = ReplicaMachine.TestCase
TestReplicaMachine.settings = settings(stateful_step_count=30)
