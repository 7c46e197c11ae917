"""The few places where SQLite and PostgreSQL need different SQL, behind small helpers."""

from __future__ import annotations

import datetime as dt
import itertools
import json
from collections.abc import Collection, Iterable, Sequence
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    ColumnElement,
    Connection,
    Table,
    bindparam,
    case,
    column,
    func,
    select,
    text,
    tuple_,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql import literal_column

from sync.store.tables import op_releases, ops

_names = itertools.count()  # unique bind parameter names within a statement


def is_postgres(connection: Connection) -> bool:
    return connection.dialect.name == "postgresql"


def upsert(connection: Connection, table: Table) -> Any:
    """An INSERT that takes ON CONFLICT clauses on the connection's backend."""
    return (postgresql.insert if is_postgres(connection) else sqlite.insert)(table)


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def encode_json(value: Any) -> str:
    """The JSON text stored for a value; the same encoder SQLAlchemy's JSON type uses."""
    return json.dumps(value)


def effective_base(table=ops) -> ColumnElement[int]:
    """`StoredOp.base` in SQL: the sent base, never at or past the op's own position."""
    return case((table.c.base < table.c.position, table.c.base), else_=table.c.position - 1)


def is_applied(table=ops) -> ColumnElement[bool]:
    """An op counts as applied unless it was quarantined and never released."""
    return table.c.reason.is_(None) | table.c.position.in_(select(op_releases.c.op_position))


def key_greater(new: Sequence[Any], old: Sequence[Any]) -> ColumnElement[bool]:
    """`(hlc, device_id, seq)` of `new` above that of `old`: the winner rule, spelled out.

    Written without row values so that both backends use it in ON CONFLICT clauses.
    """
    new_hlc, new_device, new_seq = new
    old_hlc, old_device, old_seq = old
    return (new_hlc > old_hlc) | (
        (new_hlc == old_hlc)
        & ((new_device > old_device) | ((new_device == old_device) & (new_seq > old_seq)))
    )


def in_ids(connection: Connection, column: Column, ids: Collection[int]) -> ColumnElement[bool]:
    """`column IN ids` with one bound parameter, however many ids there are."""
    values = sorted(set(ids))
    name = f"ids{next(_names)}"
    if is_postgres(connection):
        return column == func.any(bindparam(name, values, type_=postgresql.ARRAY(BigInteger)))
    listed = select(literal_column("value")).select_from(
        func.json_each(bindparam(name, json.dumps(values)))
    )
    return column.in_(listed.scalar_subquery())


def bulk_insert(
    connection: Connection, table: Table, columns: Sequence[str], rows: Iterable[Sequence[Any]]
) -> None:
    """Insert many rows in one go: COPY on PostgreSQL, executemany on SQLite.

    Rows hold driver-ready values (JSON already encoded as text, times as the
    backend stores them); this is the ingest's hot path, so no per-row processing
    happens here.
    """
    names = ", ".join(columns)
    if is_postgres(connection):
        raw = connection.connection.driver_connection
        with raw.cursor() as cursor, cursor.copy(f"COPY {table.name} ({names}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        return
    rows = list(rows)
    if rows:
        marks = ", ".join("?" for _ in columns)
        # Table and column names come from our own Table objects, never from input.
        statement = f"INSERT INTO {table.name} ({names}) VALUES ({marks})"  # noqa: S608
        connection.exec_driver_sql(statement, rows)


def stored_time(connection: Connection, moment: dt.datetime) -> Any:
    """A timestamp as the driver takes it in `bulk_insert` rows."""
    if is_postgres(connection):
        return moment
    # SQLAlchemy's SQLite DateTime storage format, UTC.
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def slot_in(connection: Connection, record_column, field_column, slots: Sequence[tuple[str, str]]):
    """`(record_id, field) IN slots`; on PostgreSQL as two arrays, which plans far better
    than a long list of row values."""
    if not is_postgres(connection):
        return tuple_(record_column, field_column).in_(list(slots))
    n = next(_names)
    pairs = (
        # n is a counter: only bind parameter names are formatted in
        text(f"SELECT * FROM unnest(CAST(:sr{n} AS text[]), CAST(:sf{n} AS text[]))")  # noqa: S608
        .bindparams(**{f"sr{n}": [r for r, _ in slots], f"sf{n}": [f for _, f in slots]})
        .columns(column("r"), column("f"))
    )
    return tuple_(record_column, field_column).in_(pairs)
