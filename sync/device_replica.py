"""A device held in memory: local edits stamped with its HLC and base, the queue of
unsent ops, and the server's state as pulled.

What the user sees (`view`) is the pulled state with the device's own not-yet-pulled
ops laid over it by the same winner rule. Everything here is the device's local store,
so a restart loses nothing but a reply that had not been applied yet.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sync import hlc
from sync.conflicts import Conflict
from sync.messages import Change, Page, PushResult, QuarantinedOp
from sync.ops import ADD, REMOVE, Op

Slot = tuple[str, str]


class DeviceReplica:
    """One device: its seqs, clock, cursor, pending ops and pulled state."""

    def __init__(self, device_id: str, wall: Callable[[], int] = hlc.wall_millis) -> None:
        self.device_id = device_id
        self.clock = hlc.Clock(wall)
        self.cursor = 0
        self.last_seq = 0
        self.confirmed: dict[Slot, Change] = {}
        self.pending: list[Op] = []
        # Acknowledged, applied ops whose effect a complete pull has not brought back yet.
        self.unconfirmed: list[Op] = []
        self.quarantine_notices: list[QuarantinedOp] = []
        self.conflicts: dict[tuple, Conflict] = {}

    def edit(
        self,
        record_id: str,
        form_id: str,
        form_version: int,
        grid_id: int,
        field: str,
        kind: str,
        value: Any,
    ) -> Op:
        """Make one local edit: the next seq, a fresh HLC, and the current cursor as base."""
        self.last_seq += 1
        op = Op(
            device_id=self.device_id,
            seq=self.last_seq,
            record_id=record_id,
            form_id=form_id,
            form_version=form_version,
            grid_id=grid_id,
            field=field,
            kind=kind,
            value=value,
            hlc=self.clock.now(),
            base=self.cursor,
        )
        self.pending.append(op)
        return op

    def outbox(self, limit: int = 5000) -> list[Op]:
        """The oldest unsent ops, at most `limit` (a push's worth)."""
        return self.pending[:limit]

    def on_pushed(self, result: PushResult) -> None:
        """Apply a push reply: drop what the server holds, remember what it quarantined."""
        self.clock.observe(result.server_hlc)
        refused = {notice.seq for notice in result.quarantined}
        self.quarantine_notices.extend(result.quarantined)
        for conflict in result.conflicts:
            self.conflicts[conflict.ident] = conflict
        done = [op for op in self.pending if op.seq <= result.acked_seq]
        self.pending = [op for op in self.pending if op.seq > result.acked_seq]
        self.unconfirmed.extend(op for op in done if op.seq not in refused)

    def apply_page(self, page: Page) -> None:
        """Apply one pull or snapshot page and its cursor (one local transaction)."""
        for change in page.changes:
            self.confirmed[(change.record_id, change.field)] = change
            self.clock.observe(change.hlc)
        self.clock.observe(page.server_hlc)
        self.cursor = page.cursor
        if not page.more:
            # A complete pull has brought back every acknowledged op's effect.
            self.unconfirmed.clear()

    def start_snapshot(self) -> None:
        """Drop the pulled state before a snapshot; unsent ops stay queued."""
        self.confirmed.clear()
        self.cursor = 0

    def restarted(self, wall: Callable[[], int] = hlc.wall_millis) -> DeviceReplica:
        """The device after its app restarts: what its local store holds, read back.

        That is all of it (mobile_schema/store.sql): the HLC, next seq and cursor of the
        `device` row, the journal's unsent and not yet reflected ops, the pulled state,
        the quarantine reports and the conflicts. It shares no container with this one.
        """
        fresh = DeviceReplica(self.device_id, wall)
        fresh.clock = hlc.Clock(wall, self.clock.peek())
        fresh.cursor = self.cursor
        fresh.last_seq = self.last_seq
        fresh.confirmed = dict(self.confirmed)
        fresh.pending = list(self.pending)
        fresh.unconfirmed = list(self.unconfirmed)
        fresh.quarantine_notices = list(self.quarantine_notices)
        fresh.conflicts = dict(self.conflicts)
        return fresh

    def view(self) -> dict[Slot, Any]:
        """What the user sees: pulled values with the device's own later ops over them."""
        values: dict[Slot, Any] = {}
        keys: dict[Slot, tuple[int, str]] = {}
        for slot, change in self.confirmed.items():
            values[slot] = change.value
            keys[slot] = (change.hlc, change.device_id)
        for op in [*self.unconfirmed, *self.pending]:
            slot = (op.record_id, op.field)
            if op.kind in (ADD, REMOVE):
                current = values.get(slot)
                choices = set(current) if isinstance(current, list) else set()
                if op.kind == ADD:
                    choices.add(op.value)
                else:
                    choices.discard(op.value)
                values[slot] = sorted(choices)
            elif slot not in keys or (op.hlc, op.device_id) >= keys[slot]:
                values[slot] = op.value
                keys[slot] = (op.hlc, op.device_id)
        return values
