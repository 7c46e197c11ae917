"""Reading the store: pull and snapshot pages, the merged state, the op log.

A page is one indexed range scan of `field_state` by position, joined to `records`
for the record's current form, version and grid (which also applies the scope).
Pages are read without the counter lock: positions commit in order (see
`positions`), so a page never passes a position that is still uncommitted.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Iterator
from typing import Any, NamedTuple

from sqlalchemy import Connection, Select, select

from sync import hlc as hlc_mod
from sync.merge import FieldValue
from sync.messages import Change, CursorExpired, Page, left_scope_message
from sync.ops import StoredOp
from sync.store import positions, statistics
from sync.store.conflict_rows import stored_op
from sync.store.sql import (
    driver_rows,
    in_ids,
    in_param,
    is_postgres,
    marks,
    plan_with_parameters,
)
from sync.store.tables import field_state, op_releases, ops, records

Slot = tuple[str, str]
CHANGE_COLUMNS = (
    field_state.c.record_id,
    records.c.form_id,
    records.c.form_version,
    records.c.grid_id,
    field_state.c.field,
    field_state.c.value,
    field_state.c.hlc,
    field_state.c.device_id,
    field_state.c.position,
)


def _changes(connection: Connection, scope: Collection[int] | None) -> Select:
    query = select(*CHANGE_COLUMNS).join(records, records.c.record_id == field_state.c.record_id)
    if scope is not None:
        query = query.where(in_ids(connection, records.c.grid_id, scope))
    return query


def page_rows(
    connection: Connection, scope: Collection[int] | None, cursor: int, limit: int
) -> tuple[list[Any], bool]:
    """Rows of the in-scope field states changed after `cursor`, and whether more follow."""
    query = (
        _changes(connection, scope)
        .where(field_state.c.position > cursor)
        .order_by(field_state.c.position)
        .limit(limit + 1)
    )
    rows = connection.execute(query).all()
    return rows[:limit], len(rows) > limit


# One change in wire form, built by the database: the page's JSON is then the rows'
# texts joined, with no value decoded and encoded again on the way (docs/protocol.md,
# Change). The value is stored JSON; on SQLite strings go through json_object's quoting.
_CHANGE_SQLITE = (
    "json_object('record_id', fs.record_id, 'form_id', r.form_id,"
    " 'form_version', r.form_version, 'grid_id', r.grid_id, 'field', fs.field,"
    " 'value', json(fs.value), 'hlc', printf('%016x', fs.hlc),"
    " 'device_id', fs.device_id, 'position', fs.position)"
)
# PostgreSQL: ids and names go between quotes as they are. Record and device ids are
# UUIDs, form and field names match the protocol's patterns (`sync.wire_check.NAME` and
# `FIELD`, which every pushed op and every server edit is held to): none holds a
# character JSON escapes. Quoting them with to_json took 40% of the statement's time.
_CHANGE_POSTGRES = (
    """'{"record_id":"' || fs.record_id || '","form_id":"' || r.form_id"""
    """ || '","form_version":' || r.form_version || ',"grid_id":' || r.grid_id"""
    """ || ',"field":"' || fs.field || '","value":' || coalesce(fs.value::text, 'null')"""
    """ || ',"hlc":"' || lpad(to_hex(fs.hlc), 16, '0')"""
    """ || '","device_id":"' || fs.device_id || '","position":' || fs.position || '}'"""
)


class TextRow(NamedTuple):
    """A change's position and its wire JSON text."""

    position: int
    text: str


def page_texts(
    connection: Connection, scope: Collection[int] | None, cursor: int, limit: int
) -> tuple[list[TextRow], bool]:
    """Like `page_rows`, as (position, change JSON text) rows."""
    postgres = is_postgres(connection)
    # SQLite prints a REAL with 15 significant digits: such values (a number stored
    # before migration 0010, when the column had numeric affinity, and not an integer)
    # are read as well, and their changes rebuilt exactly below.
    change = _CHANGE_POSTGRES if postgres else _CHANGE_SQLITE
    real = "NULL" if postgres else "CASE WHEN typeof(fs.value) = 'real' THEN fs.value END"
    mark = "%s" if postgres else "?"
    parameters: list[Any] = [cursor]
    scoped = ""
    if scope is not None:
        where, parameter = in_param(connection, sorted(set(scope)), "bigint")
        scoped = f" AND r.grid_id {where}"
        parameters.append(parameter)
    parameters.append(limit + 1)
    statement = (
        f"SELECT fs.position, {change}, {real} FROM field_state fs"  # noqa: S608 (constants)
        " JOIN records r ON r.record_id = fs.record_id"
        f" WHERE fs.position > {mark}{scoped} ORDER BY fs.position LIMIT {mark}"
    )
    rows = [
        TextRow(position, text if number is None else _with_value(text, number))
        for position, text, number in driver_rows(connection, statement, parameters)
    ]
    return rows[:limit], len(rows) > limit


def _with_value(text: str, value: Any) -> str:
    change = json.loads(text)
    change["value"] = value
    return json.dumps(change, ensure_ascii=False, separators=(",", ":"))


def pull_rows(
    connection: Connection,
    scope: Collection[int] | None,
    cursor: int,
    limit: int,
    wall: Callable[[], int] = hlc_mod.wall_millis,
    *,
    fetch: Callable[..., tuple[list[Any], bool]] = page_rows,
) -> tuple[list[Any], int, bool, int]:
    """One pull page as rows: (rows, next cursor, more, server HLC); raises CursorExpired.

    `fetch` is `page_rows` (decoded columns) or `page_texts` (wire JSON per change).
    """
    plan_with_parameters(connection)
    statistics.keep_current(connection)
    counter = positions.read(connection)
    if cursor > counter.position:
        raise CursorExpired(cursor, counter.position)
    if cursor > 0 and left_scope_since(connection, scope, cursor):
        raise CursorExpired(cursor, counter.position, left_scope_message(cursor))
    return _page(connection, scope, cursor, limit, counter, wall, fetch)


def snapshot_rows(
    connection: Connection,
    scope: Collection[int] | None,
    cursor: int,
    limit: int,
    wall: Callable[[], int] = hlc_mod.wall_millis,
    *,
    fetch: Callable[..., tuple[list[Any], bool]] = page_rows,
) -> tuple[list[Any], int, bool, int]:
    """One snapshot page as rows; like pull, but a cursor past the end is never refused."""
    plan_with_parameters(connection)
    statistics.keep_current(connection)
    counter = positions.read(connection)
    return _page(connection, scope, min(cursor, counter.position), limit, counter, wall, fetch)


def left_scope_since(connection: Connection, scope: Collection[int] | None, position: int) -> bool:
    """Whether a record moved out of the scope after `position` and is still out of it:
    a device that read the scope up to there may hold it, and only a snapshot drops
    it. One indexed range scan of `record_moves` after the position (moves are rare)."""
    if scope is None:
        return False
    grids = sorted(set(scope))
    before, before_parameter = in_param(connection, grids, "bigint")
    now, now_parameter = in_param(connection, grids, "bigint")
    mark = marks(connection)
    statement = (
        "SELECT 1 FROM record_moves m JOIN records r ON r.record_id = m.record_id"  # noqa: S608
        f" WHERE m.position > {mark} AND m.from_grid {before} AND NOT (r.grid_id {now})"
        " LIMIT 1"
    )
    found = connection.exec_driver_sql(statement, (position, before_parameter, now_parameter))
    return found.first() is not None


def _page(
    connection, scope, cursor, limit, counter, wall, fetch
) -> tuple[list[Any], int, bool, int]:
    rows, more = fetch(connection, scope, cursor, limit)
    last = rows[-1].position if rows else cursor
    # The last page brings the device up to the newest position, so that later ops that
    # changed nothing in its scope do not look unseen to its next edits. Rows committed
    # after the counter was read may be in the page: positions commit in order, so
    # everything below them is committed too.
    next_cursor = last if more else max(counter.position, last)
    # The server's HLC is read, not ticked: it already covers every stored winner.
    return rows, next_cursor, more, hlc_mod.Clock(wall, counter.hlc).now()


def as_page(rows: list[Any], cursor: int, more: bool, server_hlc: int) -> Page:
    """The rows as the core's Page of Change values."""
    return Page([Change(*row) for row in rows], cursor, more, server_hlc)


def state(connection: Connection, scope: Collection[int] | None = None) -> dict[Slot, FieldValue]:
    """Every in-scope field's merged value (what convergence compares)."""
    return {
        (row.record_id, row.field): FieldValue(row.value, row.hlc, row.device_id)
        for row in connection.execute(_changes(connection, scope))
    }


def iter_log(connection: Connection, batch: int = 5000) -> Iterator[StoredOp]:
    """Every stored op in arrival order, streamed in batches."""
    released = set(connection.scalars(select(op_releases.c.op_position)))
    after = 0
    while True:
        rows = connection.execute(
            select(ops).where(ops.c.position > after).order_by(ops.c.position).limit(batch)
        ).all()
        for row in rows:
            yield stored_op(row, applied=row.reason is None or row.position in released)
        if len(rows) < batch:
            return
        after = rows[-1].position
