"""Conflicts in the store: found by a join on positions and bases, confirmed by the core.

The join narrows each new applied `set` to the other devices' applied sets on the same
field that it had not seen; `sync.conflicts.collide` then decides (it also compares
the canonical values), so the store and the reference replica agree by construction.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import ColumnElement, Connection, and_, bindparam, func, select, tuple_, update
from sqlalchemy.sql.util import ClauseAdapter

from sync import hlc as hlc_mod
from sync.conflicts import Conflict, collide
from sync.ops import SET, Op, OpStatus, StoredOp
from sync.store.inbox import timestamp
from sync.store.sql import (
    bulk_insert,
    effective_base,
    in_ids,
    is_applied,
    slot_in,
    stored_time,
)
from sync.store.tables import conflicts, ops

OPEN = "open"
RESOLVED = "resolved"


def stored_op(row: Any, applied: bool = True) -> StoredOp:
    """A StoredOp from an `ops` row."""
    op = Op(
        device_id=row.device_id,
        seq=row.seq,
        record_id=row.record_id,
        form_id=row.form_id,
        form_version=row.form_version,
        grid_id=row.grid_id,
        field=row.field,
        kind=row.kind,
        value=row.value,
        hlc=row.hlc,
        base=row.base,
    )
    if applied:
        return StoredOp(op, row.position)
    return StoredOp(op, row.position, OpStatus.QUARANTINED, row.reason, row.detail or "")


def detect(
    connection: Connection,
    applied: list[StoredOp],
    batch: ColumnElement[bool],
    moment: dt.datetime,
    users: dict[int, int],
    *,
    may_exist: bool = False,
) -> tuple[list[Conflict], list[dict[str, Any]]]:
    """Record the conflicts the batch's applied sets take part in; resolve what they settle.

    The new conflicts, and their wire form (built from what is in hand, without reading
    them back). `users` maps the batch's op positions to their users. `may_exist` is
    for a release: a pair of two released ops may have been recorded already.
    """
    edits = {stored.position: stored for stored in applied if stored.op.kind == SET}
    if not edits:
        return [], []
    sides = {position: (stored, users.get(position, 0)) for position, stored in edits.items()}
    found = _new_conflicts(connection, edits, batch, may_exist, sides)
    described = _insert(connection, found, moment, sides) if found else []
    _resolve(connection, batch, moment)
    return found, described


def _new_conflicts(
    connection: Connection,
    edits: dict[int, StoredOp],
    batch: ColumnElement[bool],
    may_exist: bool,
    sides: dict[int, tuple[StoredOp, int]],
) -> list[Conflict]:
    mine = ops.alias("mine")
    other = ops.alias("other")
    query = (
        select(mine.c.position.label("mine_position"), other)
        .join(
            other,
            and_(
                other.c.record_id == mine.c.record_id,
                other.c.field == mine.c.field,
                other.c.device_id != mine.c.device_id,
                other.c.kind == SET,
                other.c.position > effective_base(mine),
                mine.c.position > effective_base(other),
            ),
        )
        .where(_on(batch, mine), mine.c.kind == SET, is_applied(other))
    )
    found: dict[tuple, Conflict] = {}
    for row in connection.execute(query):
        mine_op = edits.get(row.mine_position)
        if mine_op is None:
            continue
        theirs = stored_op(row)
        if collide(mine_op, theirs):
            conflict = Conflict.of(mine_op, theirs)
            found.setdefault(conflict.ident, conflict)
            sides.setdefault(theirs.position, (theirs, row.user_id))
    if not found:
        return []
    if not may_exist:
        return sorted(found.values(), key=lambda c: (c.second_position, c.first_position))
    existing = set(
        connection.execute(
            select(conflicts.c.first_position, conflicts.c.second_position).where(
                tuple_(conflicts.c.first_position, conflicts.c.second_position).in_(
                    [(c.first_position, c.second_position) for c in found.values()]
                )
            )
        ).tuples()
    )
    return sorted(
        (c for c in found.values() if (c.first_position, c.second_position) not in existing),
        key=lambda c: (c.second_position, c.first_position),
    )


def _on(batch: ColumnElement[bool], alias) -> ColumnElement[bool]:
    """The batch filter, re-targeted from `ops` to an alias of it."""
    return ClauseAdapter(alias).traverse(batch)


CONFLICT_COLUMNS = (
    "record_id",
    "field",
    "first_position",
    "second_position",
    "winner_position",
    "status",
    "created_at",
    "resolved_at",
)


def _insert(
    connection: Connection,
    found: list[Conflict],
    moment: dt.datetime,
    sides: dict[int, tuple[StoredOp, int]],
) -> list[dict[str, Any]]:
    """Append the new conflicts in one go; their wire form, in the order of `found`."""
    slots = sorted({(c.record_id, c.field) for c in found})
    seen = _max_bases(connection, slots)
    stamp = stored_time(connection, moment)
    rows = []
    for conflict in found:
        settled = seen.get((conflict.record_id, conflict.field), 0) >= conflict.second_position
        winner = conflict.first if conflict.winner == conflict.first else conflict.second
        rows.append(
            (
                conflict.record_id,
                conflict.field,
                conflict.first_position,
                conflict.second_position,
                conflict.first_position if winner == conflict.first else conflict.second_position,
                RESOLVED if settled else OPEN,
                stamp,
                stamp if settled else None,
            )
        )
    bulk_insert(connection, conflicts, CONFLICT_COLUMNS, rows)
    seconds = [c.second_position for c in found]
    ids = {
        (first, second): cid
        for cid, first, second in connection.execute(
            select(conflicts.c.id, conflicts.c.first_position, conflicts.c.second_position).where(
                conflicts.c.second_position.between(min(seconds), max(seconds))
            )
        )
    }
    created = timestamp(moment)
    described = []
    for conflict, row in zip(found, rows, strict=True):
        values = []
        for position in (conflict.first_position, conflict.second_position):
            stored, user_id = sides[position]
            values.append(_side(stored, user_id, position == row[4]))
        described.append(
            {
                "conflict_id": ids[(conflict.first_position, conflict.second_position)],
                "record_id": conflict.record_id,
                "form_id": sides[conflict.first_position][0].op.form_id,
                "field": conflict.field,
                "values": values,
                "status": row[5],
                "created_at": created,
                "resolved_at": created if row[5] == RESOLVED else None,
            }
        )
    return described


def _side(stored: StoredOp, user_id: int | None, winner: bool) -> dict[str, Any]:
    """One side of a conflict on the wire."""
    op = stored.op
    return {
        "device_id": op.device_id,
        "user_id": user_id or None,
        "seq": op.seq,
        "hlc": hlc_mod.to_wire(op.hlc),
        "position": stored.position,
        "kind": op.kind,
        "value": op.value,
        "winner": winner,
    }


def _max_bases(connection: Connection, slots: list[tuple[str, str]]) -> dict[tuple[str, str], int]:
    """Per field, the highest effective base among its applied sets."""
    rows = connection.execute(
        select(ops.c.record_id, ops.c.field, func.max(effective_base()))
        .where(
            slot_in(connection, ops.c.record_id, ops.c.field, slots),
            ops.c.kind == SET,
            is_applied(),
        )
        .group_by(ops.c.record_id, ops.c.field)
    )
    return {(record_id, field): base for record_id, field, base in rows}


def _resolve(connection: Connection, batch: ColumnElement[bool], moment: dt.datetime) -> None:
    """Close the open conflicts that one of the batch's sets was made having seen."""
    edit = ops.alias("edit")
    query = (
        select(conflicts.c.id, func.min(edit.c.position))
        .join(
            edit, and_(edit.c.record_id == conflicts.c.record_id, edit.c.field == conflicts.c.field)
        )
        .where(
            conflicts.c.status == OPEN,
            _on(batch, edit),
            edit.c.kind == SET,
            effective_base(edit) >= conflicts.c.second_position,
        )
        .group_by(conflicts.c.id)
    )
    settled = [{"cid": cid, "p": position} for cid, position in connection.execute(query)]
    if settled:
        connection.execute(
            update(conflicts)
            .where(conflicts.c.id == bindparam("cid"))
            .values(status=RESOLVED, resolved_position=bindparam("p"), resolved_at=moment),
            settled,
        )


def describe(connection: Connection, conflict_ids: list[int]) -> list[dict[str, Any]]:
    """The wire form of these conflicts (docs/protocol.md, Conflicts)."""
    if not conflict_ids:
        return []
    rows = connection.execute(
        select(conflicts).where(in_ids(connection, conflicts.c.id, conflict_ids))
    ).all()
    return wire(connection, rows)


def wire(connection: Connection, rows: list[Any]) -> list[dict[str, Any]]:
    """Conflict rows with both sides' ops, as the protocol shows them."""
    positions = {p for row in rows for p in (row.first_position, row.second_position)}
    sides = {
        row.position: row
        for row in connection.execute(
            select(ops).where(in_ids(connection, ops.c.position, positions))
        )
    }
    out = []
    for row in sorted(rows, key=lambda r: r.id):
        values = [
            _side(
                stored_op(sides[position]), sides[position].user_id, position == row.winner_position
            )
            for position in (row.first_position, row.second_position)
        ]
        out.append(
            {
                "conflict_id": row.id,
                "record_id": row.record_id,
                "form_id": sides[row.first_position].form_id,
                "field": row.field,
                "values": values,
                "status": row.status,
                "created_at": timestamp(row.created_at),
                "resolved_at": timestamp(row.resolved_at) if row.resolved_at else None,
            }
        )
    return out
