"""Releasing quarantined ops: they apply with their original arrival positions.

Because every rule reads positions and bases only, merging a released op now gives
the state it would have given on arrival; the fields whose state changed take fresh
positions so that devices pull them again.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, select, tuple_

from sync.messages import ReleaseRefused, ReleaseResult
from sync.reasons import NOT_RELEASABLE
from sync.store import conflict_rows, positions
from sync.store.batch import Batch
from sync.store.inbox import add_items, conflict_items
from sync.store.merging import (
    fields_of,
    merge_batch,
    note_moves,
    prepare_batch,
    restamp,
)
from sync.store.sql import now, plan_with_parameters
from sync.store.tables import op_releases, ops

OpId = tuple[str, int]


def release(
    connection: Connection, op_ids: Iterable[OpId], released_by: int
) -> tuple[ReleaseResult, list[dict[str, Any]]]:
    """Release these quarantined ops, all or none; the result and its conflicts' wire form."""
    wanted = list(dict.fromkeys(op_ids))
    if not wanted:
        return ReleaseResult([], []), []
    plan_with_parameters(connection)
    counter = positions.lock(connection)
    rows = {
        (row.device_id, row.seq): row
        for row in connection.execute(
            select(ops).where(tuple_(ops.c.device_id, ops.c.seq).in_(wanted))
        )
    }
    done = set(
        connection.scalars(
            select(op_releases.c.op_position).where(
                op_releases.c.op_position.in_([row.position for row in rows.values()])
            )
        )
    )
    for op_id in wanted:
        row = rows.get(op_id)
        if row is None:
            raise ReleaseRefused(op_id, "no such op")
        if row.reason is None or row.position in done:
            raise ReleaseRefused(op_id, "not quarantined")
        if row.reason in NOT_RELEASABLE:
            raise ReleaseRefused(op_id, f"{row.reason} ops cannot be released")
    moment = now()
    chosen = sorted((rows[op_id] for op_id in wanted), key=lambda row: row.position)
    connection.execute(
        op_releases.insert(),
        [
            {"op_position": row.position, "released_by": released_by, "released_at": moment}
            for row in chosen
        ],
    )
    released = [conflict_rows.stored_op(row) for row in chosen]
    batch = Batch(positions=tuple(entry.position for entry in released))
    prepared = prepare_batch(connection, released)
    effect = merge_batch(connection, prepared, batch, moment, report_registers=True)
    slots = effect.registers | set(effect.sets) | set(fields_of(connection, effect.moved))
    restamp(connection, sorted(slots), counter)
    note_moves(connection, effect.moved, counter)
    users = {row.position: row.user_id for row in chosen}
    found, described = conflict_rows.detect(connection, released, moment, users, may_exist=True)
    counter.note_applied(effect.highest_hlc)
    positions.save(connection, counter)
    add_items(connection, conflict_items(described), moment)
    return ReleaseResult(released, found), described
