"""Conflicts in the store: candidates read in one query, decided by the core.

One query reads, per field of the batch's sets, the applied sets that can pair with
them; `sync.conflicts.collide` decides each pair (it also compares the canonical
values) and `sync.conflicts.resolves` which open conflicts a batch set settles, so the
store and the reference replica agree by construction.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, select, tuple_

from sync import hlc as hlc_mod
from sync.conflicts import Conflict, collide, resolves
from sync.ops import SET, Op, OpStatus, StoredOp
from sync.store.sql import (
    APPLIED,
    bulk_insert,
    by_keys,
    decode_json,
    driver_rows,
    in_ids,
    is_postgres,
    marks,
    pg_array,
    sqlite_value,
    stored_time,
    timestamp,
    update_rows,
)
from sync.store.tables import conflicts, ops

Slot = tuple[str, str]
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


@dataclass(slots=True)
class Gathered:
    """What conflict detection reads for a batch, before the batch is merged."""

    edits: dict[Slot, list[StoredOp]]  # the batch's sets by field
    sides: dict[int, tuple[StoredOp, int]]  # op position: the op and its user
    rivals: dict[Slot, list[tuple[StoredOp, int]]]
    settling: list[tuple]  # the open conflicts on the batch's fields


def gather(
    connection: Connection,
    applied: list[StoredOp],
    users: dict[int, int],
    *,
    span: tuple[int, int] = (0, -1),
) -> Gathered | None:
    """Every read conflict detection needs for these applied ops; None without a set.

    It reads the stored ops and conflicts only, so it may run before the batch's merge
    writes. `users` maps the ops' positions to their users; `span` is a range of
    positions whose applied sets on these fields are all among `applied` (a push's
    range).
    """
    edits: dict[Slot, list[StoredOp]] = {}
    for stored in applied:
        if stored.op.kind == SET:
            edits.setdefault((stored.op.record_id, stored.op.field), []).append(stored)
    if not edits:
        return None
    sides = {s.position: (s, users.get(s.position, 0)) for slot in edits.values() for s in slot}
    rivals = _rivals(connection, edits, sides, span)
    return Gathered(edits, sides, rivals, _open_conflicts(connection, edits))


def record(
    connection: Connection,
    gathered: Gathered | None,
    moment: dt.datetime,
    *,
    may_exist: bool = False,
) -> tuple[list[Conflict], list[dict[str, Any]]]:
    """Record the conflicts the gathered sets take part in; resolve what they settle.

    The new conflicts, and their wire form (built from what is in hand, without reading
    them back). `may_exist` is for a release: a pair of two released ops may have been
    recorded already.
    """
    if gathered is None:
        return [], []
    found, seen = _pairs(gathered.edits, gathered.rivals, gathered.sides)
    if found and may_exist:
        found = _unrecorded(connection, found)
    described = _insert(connection, found, moment, gathered.sides, seen) if found else []
    _resolve(connection, gathered.edits, gathered.settling, moment)
    return found, described


def detect(
    connection: Connection,
    applied: list[StoredOp],
    moment: dt.datetime,
    users: dict[int, int],
    *,
    span: tuple[int, int] = (0, -1),
    may_exist: bool = False,
) -> tuple[list[Conflict], list[dict[str, Any]]]:
    """`gather` then `record`: the conflicts these applied ops' sets take part in."""
    gathered = gather(connection, applied, users, span=span)
    return record(connection, gathered, moment, may_exist=may_exist)


# Per field of the batch's sets, the applied sets on it after the lowest effective base
# among them: the only ones that can pair with a batch set (they must come after its
# base) or settle a new pair (their base must reach its later side). Raw SQL built from
# constants; the fields come as one parameter.
_RIVAL_COLUMNS = (
    "o.device_id, o.seq, o.record_id, o.form_id, o.form_version, o.grid_id, o.field,"
    " o.kind, {value}, o.hlc, o.base, o.position, o.user_id"
)
_RIVALS_SQLITE = (
    f"SELECT {_RIVAL_COLUMNS.format(value='o.value')}"  # noqa: S608
    " FROM json_each(?) AS s CROSS JOIN ops o"
    " WHERE o.record_id = json_extract(s.value, '$[0]')"
    " AND o.field = json_extract(s.value, '$[1]')"
    " AND o.position > json_extract(s.value, '$[2]') AND o.position NOT BETWEEN ? AND ?"
    f" AND o.kind = 'set' AND {APPLIED.format(t='o')}"
)
# PostgreSQL: a LATERAL subquery behind OFFSET 0 looks each field up on the
# (record_id, field, position) index; a plain join is planned as a hash join over the
# whole table while the table has no statistics.
_RIVALS_POSTGRES = (
    f"SELECT {_RIVAL_COLUMNS.format(value='o.value::text')}"  # noqa: S608
    " FROM unnest(%s::text[], %s::text[], %s::bigint[]) AS s(record_id, field, base)"
    " CROSS JOIN LATERAL (SELECT * FROM ops WHERE ops.record_id = s.record_id"
    " AND ops.field = s.field AND ops.position > s.base AND ops.position NOT BETWEEN %s AND %s"
    f" AND ops.kind = 'set' AND {APPLIED.format(t='ops')} OFFSET 0) o"
)


def _rivals(
    connection: Connection,
    edits: dict[Slot, list[StoredOp]],
    sides: dict[int, tuple[StoredOp, int]],
    span: tuple[int, int],
) -> dict[Slot, list[tuple[StoredOp, int]]]:
    """The applied sets that may pair with or settle the batch's, by field, with users.

    The batch's own sets come from memory (`sides`); the database skips the positions
    in `span` (a push's own, all in hand) and any others of the batch are skipped here.
    """
    slots = list(edits)
    bases = [min(s.base for s in edits[slot]) for slot in slots]
    if is_postgres(connection):
        parameters: tuple = (
            pg_array([r for r, _ in slots], "text"),
            pg_array([f for _, f in slots], "text"),
            pg_array(bases, "bigint"),
            *span,
        )
        rows = driver_rows(connection, _RIVALS_POSTGRES, parameters)
    else:
        listed = json.dumps([[r, f, b] for (r, f), b in zip(slots, bases, strict=True)])
        rows = driver_rows(connection, _RIVALS_SQLITE, (listed, *span))
    decode = decode_json if is_postgres(connection) else sqlite_value
    found = {slot: [sides[s.position] for s in mine] for slot, mine in edits.items()}
    for *content, position, user_id in rows:
        if position in sides:
            continue
        content[8] = decode(content[8])
        stored = StoredOp(tuple.__new__(Op, content), position)
        found[(stored.op.record_id, stored.op.field)].append((stored, user_id))
    return found


def _pairs(
    edits: dict[Slot, list[StoredOp]],
    rivals: dict[Slot, list[tuple[StoredOp, int]]],
    sides: dict[int, tuple[StoredOp, int]],
) -> tuple[list[Conflict], dict[Slot, int]]:
    """The conflicts of the batch's sets (`sync.conflicts.collide` decides), in order,
    and per field the highest effective base among its applied sets."""
    found: dict[tuple, Conflict] = {}
    seen: dict[Slot, int] = {}
    for slot, mine in edits.items():
        held = rivals.get(slot, ())
        if held:
            seen[slot] = max(theirs.base for theirs, _user in held)
        for edit in mine:
            for theirs, user_id in held:
                if theirs.position != edit.position and collide(edit, theirs):
                    conflict = Conflict.of(edit, theirs)
                    found.setdefault(conflict.ident, conflict)
                    sides.setdefault(theirs.position, (theirs, user_id))
    return sorted(found.values(), key=lambda c: (c.second_position, c.first_position)), seen


def _unrecorded(connection: Connection, found: list[Conflict]) -> list[Conflict]:
    """Those of these pairs not recorded yet (a release may meet recorded ones)."""
    existing = set(
        connection.execute(
            select(conflicts.c.first_position, conflicts.c.second_position).where(
                tuple_(conflicts.c.first_position, conflicts.c.second_position).in_(
                    [(c.first_position, c.second_position) for c in found]
                )
            )
        ).tuples()
    )
    return [c for c in found if (c.first_position, c.second_position) not in existing]


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
    seen: dict[Slot, int],
) -> list[dict[str, Any]]:
    """Append the new conflicts in one go; their wire form, in the order of `found`."""
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
    mark = marks(connection)
    ids = {
        (first, second): cid
        for cid, first, second in driver_rows(
            connection,
            "SELECT id, first_position, second_position FROM conflicts"  # noqa: S608
            f" WHERE second_position BETWEEN {mark} AND {mark}",
            (found[0].second_position, found[-1].second_position),
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


def _open_conflicts(connection: Connection, edits: dict[Slot, list[StoredOp]]) -> list[tuple]:
    """The open conflicts on the batch's fields, read before any new one is added."""
    records = {rid for rid, _ in edits}
    # By record on the (record_id, field) index: the status is tested here, since an index
    # on it would tempt a planner without statistics to read every open conflict.
    columns = "id, record_id, field, first_position, second_position, status"
    rows = by_keys(connection, "conflicts", columns, "record_id", records)
    return [row[:5] for row in rows if row[5] == OPEN and (row[1], row[2]) in edits]


def _resolve(
    connection: Connection,
    edits: dict[Slot, list[StoredOp]],
    settling: list[tuple],
    moment: dt.datetime,
) -> None:
    """Close the open conflicts that one of the batch's sets was made having seen both
    sides of (`sync.conflicts.resolves`), naming the first such set."""
    settled = []
    for cid, record_id, field, first, second in settling:
        seen_both = [s.position for s in edits[(record_id, field)] if resolves(s, first, second)]
        if seen_both:
            settled.append((cid, RESOLVED, min(seen_both), stored_time(connection, moment)))
    update_rows(
        connection,
        "conflicts",
        (("id", "bigint"),),
        (("status", "text"), ("resolved_position", "bigint"), ("resolved_at", "timestamptz")),
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
