"""The SQL store answers exactly as the reference replica on seeded random histories.

Devices edit, push (sometimes twice, sometimes in halves), pull in pages, and an
admin releases quarantined ops; after every step both servers must have given the
same reply, and at the end the same log, state, conflicts and pages. (The
Hypothesis state machine in test_state_machine.py explores histories further.)
"""

from __future__ import annotations

import random

import pytest

from sync.device_replica import DeviceReplica
from sync.messages import CursorExpired, ReleaseRefused
from sync.replica import ServerReplica
from sync.store.server import SqlServer
from tests.sync.world import BAD_EDITS, RECORDS, VALID_EDITS, check_field, lookup_form

START_MS = 1_700_000_000_000
DEVICES = [f"00000000-0000-4000-a000-00000000000{n}" for n in range(1, 4)]
SCOPES = [None, (1, 2), (2, 3)]


class Wall:
    def __init__(self) -> None:
        self.now = START_MS

    def __call__(self) -> int:
        return self.now


def same_push(a, b) -> None:
    assert (a.acked_seq, a.applied, a.duplicate) == (b.acked_seq, b.applied, b.duplicate)
    assert [q.to_wire() for q in a.quarantined] == [q.to_wire() for q in b.quarantined]
    assert a.conflicts == b.conflicts
    assert a.stored == b.stored


def same_page(a, b) -> None:
    assert (a.changes, a.cursor, a.more) == (b.changes, b.cursor, b.more)


def drive(sql: SqlServer, ref: ServerReplica, wall: Wall, seed: int, steps: int) -> None:
    rng = random.Random(seed)
    devices = [DeviceReplica(d, wall) for d in DEVICES]
    cursors = dict.fromkeys(DEVICES, 0)
    for _ in range(steps):
        wall.now += rng.randint(0, 5)
        index = rng.randrange(len(devices))
        device, scope = devices[index], SCOPES[index]
        action = rng.random()
        if action < 0.5:
            device.edit(*_edit(rng))
        elif action < 0.8:
            outbox = device.outbox()
            if not outbox:
                continue
            batches = [outbox] if rng.random() < 0.7 else [outbox[: len(outbox) // 2], outbox]
            for batch in batches:
                a, b = (
                    sql.push(device.device_id, batch, scope),
                    ref.push(device.device_id, batch, scope),
                )
                same_push(a, b)
            device.on_pushed(b)
        elif action < 0.95:
            limit = rng.randint(1, 4)
            cursor = cursors[device.device_id]
            try:
                b = ref.pull(scope, cursor, limit)
            except CursorExpired:  # a record left the scope: both refuse, then a snapshot
                with pytest.raises(CursorExpired):
                    sql.pull(scope, cursor, limit)
                device.start_snapshot()
                a, b = sql.snapshot(scope, 0, 1000), ref.snapshot(scope, 0, 1000)
            else:
                a = sql.pull(scope, cursor, limit)
            same_page(a, b)
            cursors[device.device_id] = b.cursor
            device.apply_page(b)
        else:
            held = ref.quarantined()
            if not held:
                continue
            chosen = [rng.choice(held).op.op_id]
            try:
                expected = ref.release(chosen)
            except ReleaseRefused:
                with pytest.raises(ReleaseRefused):
                    sql.release(chosen)
                continue
            got = sql.release(chosen)
            assert got.released == expected.released
            assert got.conflicts == expected.conflicts
    assert sql.log() == ref.log()
    assert sql.state() == ref.state()
    for scope in SCOPES:
        assert sql.state(scope) == ref.state(scope)
        same_page(sql.pull(scope, 0, 1000), ref.pull(scope, 0, 1000))
    assert sql.conflicts() == {row.conflict.ident: row.resolved for row in ref.conflicts.values()}
    assert sql.newest() == ref.position


def _edit(rng: random.Random) -> tuple:
    record = rng.randrange(len(RECORDS))
    record_id, form_id = RECORDS[record]
    grid = rng.choice([1, 2, 3])
    if form_id == "household" and rng.random() < 0.12:
        field, kind, value, version, _reason = rng.choice(BAD_EDITS)
        return (record_id, form_id, version, grid, field, kind, value)
    field, kind, values = rng.choice(VALID_EDITS[form_id])
    version = rng.choice([1, 2]) if form_id == "household" else 1
    return (record_id, form_id, version, grid, field, kind, rng.choice(values))


@pytest.mark.parametrize("seed", range(6))
def test_store_agrees_with_the_reference_replica(database, seed):
    wall = Wall()
    sql = SqlServer(database.engine, lookup_form, check_field, wall=wall)
    ref = ServerReplica(lookup_form, check_field, wall=wall)
    drive(sql, ref, wall, seed, steps=60)
