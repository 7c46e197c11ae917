"""The few places where SQLite and PostgreSQL need different SQL, behind small helpers."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from psycopg import pq
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    ColumnElement,
    Connection,
    DateTime,
    Integer,
    Table,
    Text,
    bindparam,
    cast,
    func,
    select,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.sql import literal_column


def is_postgres(connection: Connection) -> bool:
    return connection.dialect.name == "postgresql"


def plan_with_parameters(connection: Connection) -> None:
    """On PostgreSQL, plan this transaction's statements with their parameters.

    The driver prepares a statement run five times, and PostgreSQL may then keep one
    generic plan for it. The store's tables grow from empty: a plan cached while a
    table was small scans it whole once it is large (conflict lookups grew by 20 ms
    per push that way). Planning anew costs a fraction of a millisecond.
    """
    if is_postgres(connection):
        connection.exec_driver_sql(f"SELECT {PLAN_WITH_PARAMETERS}")


# The setting `plan_with_parameters` makes, as an expression that a statement the
# transaction runs first anyway can carry, saving a round trip.
PLAN_WITH_PARAMETERS = "set_config('plan_cache_mode', 'force_custom_plan', true)"


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


_encode_text = json.encoder.encode_basestring_ascii  # what json.dumps does for a str


def timestamp(moment: dt.datetime) -> str:
    """RFC 3339 in UTC; SQLite hands back UTC without its offset."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def encode_json(value: Any) -> str:
    """The JSON text stored for a value: exactly `json.dumps(value)`, which SQLAlchemy's
    JSON type also uses (audit hashes this text), with the common scalars done directly."""
    kind = type(value)
    if kind is str:
        return _encode_text(value)
    if kind is int:
        return int.__repr__(value)
    if value is None:
        return "null"
    if kind is bool:
        return "true" if value else "false"
    if kind is list and all(type(item) is str for item in value):  # a multi-select's choices
        return "[" + ", ".join(map(_encode_text, value)) + "]"
    return json.dumps(value)


def decode_json(text: str | None) -> Any:
    """A value from its stored JSON text.

    A string without escapes is its own text between the quotes: that everyday case
    skips the decoder.
    """
    if text is None:
        return None
    if text[:1] == '"' and "\\" not in text:
        return text[1:-1]
    return json.loads(text)


def sqlite_value(raw: Any) -> Any:
    """A JSON column's value as SQLite hands it back when read without conversion.

    Values are JSON text, but rows stored before migration 0010, when the column had
    numeric affinity, hold a number as an INTEGER or REAL (exactly: a REAL is the
    double itself). Reading the value as text instead would print a REAL with 15
    significant digits.
    """
    return decode_json(raw) if type(raw) is str else raw


def marks(connection: Connection) -> str:
    """The driver's positional parameter marker."""
    return "%s" if is_postgres(connection) else "?"


def driver_rows(connection: Connection, statement: str, parameters: Sequence[Any]) -> list[tuple]:
    """Every row of a raw statement (driver markers) as the driver's own tuples.

    For result sets of thousands of rows: SQLAlchemy's per-row result processing costs
    more there than the query. Runs in the connection's current transaction.
    """
    cursor = connection.connection.driver_connection.cursor()
    try:
        cursor.execute(statement, parameters)
        return cursor.fetchall()
    finally:
        cursor.close()


def driver_sql(connection: Connection, statement: str) -> str:
    """A raw statement written with `?` markers, in the driver's paramstyle."""
    return statement.replace("?", "%s") if is_postgres(connection) else statement


def in_param(connection: Connection, values: Collection[Any], kind: str) -> tuple[str, Any]:
    """`IN values` for raw SQL, as one parameter however many values: (SQL, parameter).

    `kind` is the PostgreSQL element type (`text`, `bigint`); an array parameter plans
    an index scan there even before the table's statistics exist.
    """
    if is_postgres(connection):
        return f"= ANY(%s::{kind}[])", pg_array(values, kind)
    return "IN (SELECT value FROM json_each(?))", json.dumps(list(values))


def in_set(connection: Connection, values: Collection[Any], kind: str) -> tuple[str, Any]:
    """`IN (subquery)` over values for raw SQL with `?` markers: (SQL, parameter).

    Unlike `in_param`'s `= ANY(array)`, which PostgreSQL tests element by element, a
    subquery is hashed once, so `NOT IN` it stays cheap however many values there are.
    """
    if is_postgres(connection):
        return f"IN (SELECT unnest(?::{kind}[]))", pg_array(values, kind)
    return "IN (SELECT value FROM json_each(?))", json.dumps(list(values))


def wins_over(new: str, old: str) -> str:
    """`key_greater` for raw SQL: the row `new`'s (hlc, device_id, seq) above `old`'s."""
    return (
        f"({new}.hlc > {old}.hlc OR ({new}.hlc = {old}.hlc AND ({new}.device_id > "
        f"{old}.device_id OR ({new}.device_id = {old}.device_id AND {new}.seq > {old}.seq))))"
    )


APPLIED = "({t}.reason IS NULL OR {t}.position IN (SELECT op_position FROM op_releases))"
"""An op counts as applied unless it was quarantined and never released (raw SQL;
format with the table's alias as `t`)."""


def in_ids(connection: Connection, column: Column, ids: Collection[int]) -> ColumnElement[bool]:
    """`column IN ids` with one bound parameter, however many ids there are."""
    return in_values(connection, column, sorted(set(ids)), "bigint")


def in_values(
    connection: Connection, column: Column, values: list, kind: str
) -> ColumnElement[bool]:
    """`column IN values` as one parameter: an array literal (`pg_array`) on PostgreSQL,
    which plans an index scan even before the table's statistics exist."""
    # One name per column, so that a statement's compiled form is cached across calls.
    name = f"in_{column.table.name}_{column.name}"
    if is_postgres(connection):
        array = postgresql.ARRAY(BigInteger if kind == "bigint" else Text)
        return column == func.any(cast(bindparam(name, pg_array(values, kind), Text), array))
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
    happens here. PostgreSQL stores the rows as they come from an iterator.
    """
    names = ", ".join(columns)
    if is_postgres(connection):
        raw = connection.connection.driver_connection
        if raw.pgconn.pipeline_status != pq.PipelineStatus.OFF:
            # COPY cannot run in a pipeline: the rows go as one array per column.
            typed = [(name, _pg_type(table.c[name])) for name in columns]
            insert_rows(connection, table.name, typed, list(rows))
            return
        with raw.cursor() as cursor, cursor.copy(f"COPY {table.name} ({names}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        return
    # SQLite gains nothing from streaming (it all runs in this thread), and inserting
    # the rows in one tight run keeps its pages in the processor's caches.
    rows = list(rows)
    if rows:
        marks = ", ".join("?" for _ in columns)
        # Table and column names come from our own Table objects, never from input.
        statement = f"INSERT INTO {table.name} ({names}) VALUES ({marks})"  # noqa: S608
        connection.exec_driver_sql(statement, rows)


@contextmanager
def pipelined(connection: Connection) -> Iterator[None]:
    """Send the block's statements without waiting for each to finish (PostgreSQL's
    pipeline mode), so that the server runs one while Python prepares the next.

    The block's end waits for them all and raises the first error, which leaves the
    transaction failed. Inside the block, rows are read only through `driver_rows` (it
    waits for the statements sent before), and `bulk_insert` sends one INSERT of arrays
    instead of COPY. On SQLite the block runs as it is.
    """
    if not is_postgres(connection):
        yield
        return
    with connection.connection.driver_connection.pipeline():
        yield


def _pg_type(column: Column) -> str:
    """A column's type as `insert_rows` names it."""
    kind = column.type
    if isinstance(kind, BigInteger):
        return "bigint"
    if isinstance(kind, Integer):
        return "integer"
    if isinstance(kind, Boolean):
        return "boolean"
    if isinstance(kind, DateTime):
        return "timestamptz"
    if isinstance(kind, JSON):
        return "json"
    return "text"


Typed = Sequence[tuple[str, str]]
"""Columns as (name, PostgreSQL type): text, bigint, integer, boolean, json, timestamptz."""


def insert_rows(
    connection: Connection,
    table: str,
    columns: Typed,
    rows: Sequence[Sequence[Any]],
    tail: str = "",
) -> None:
    """One INSERT of many rows, with an optional ON CONFLICT `tail` (same on both backends).

    PostgreSQL gets one array per column and one statement (`unnest`), SQLite one
    prepared statement run over the rows. Rows hold driver-ready values, JSON as text.
    Table and column names and the tail come from our own code, never from input.
    """
    if not rows:
        return
    names = ", ".join(name for name, _ in columns)
    if is_postgres(connection):
        arrays, picked = _unnest(columns)
        statement = f"INSERT INTO {table} ({names}) SELECT {picked} FROM {arrays} {tail}"  # noqa: S608
        connection.exec_driver_sql(statement, _arrays(columns, rows))
        return
    marks = ", ".join("?" for _ in columns)
    statement = f"INSERT INTO {table} ({names}) VALUES ({marks}) {tail}"  # noqa: S608
    connection.exec_driver_sql(statement, list(rows))


def update_rows(
    connection: Connection, table: str, keys: Typed, values: Typed, rows: Sequence[Sequence[Any]]
) -> None:
    """One UPDATE of many rows by key; each row holds the keys, then the new values."""
    if not rows:
        return
    if is_postgres(connection):
        arrays, _picked = _unnest((*keys, *values))
        assigned = ", ".join(f"{name} = {_cast('u', name, kind)}" for name, kind in values)
        matched = " AND ".join(f"{table}.{name} = u.{name}" for name, _ in keys)
        statement = f"UPDATE {table} SET {assigned} FROM {arrays} WHERE {matched}"  # noqa: S608
        connection.exec_driver_sql(statement, _arrays((*keys, *values), rows))
        return
    assigned = ", ".join(f"{name} = ?" for name, _ in values)
    matched = " AND ".join(f"{name} = ?" for name, _ in keys)
    statement = f"UPDATE {table} SET {assigned} WHERE {matched}"  # noqa: S608
    width = len(keys)
    connection.exec_driver_sql(statement, [(*row[width:], *row[:width]) for row in rows])


def _unnest(columns: Typed) -> tuple[str, str]:
    """`unnest(%s::t[], ...) AS u(names)` and the select list casting JSON back."""
    # JSON travels as text: a text[] parameter, cast per element once unnested.
    arrays = ", ".join(f"%s::{'text' if kind == 'json' else kind}[]" for _, kind in columns)
    names = ", ".join(name for name, _ in columns)
    picked = ", ".join(_cast("u", name, kind) for name, kind in columns)
    return f"unnest({arrays}) AS u({names})", picked


def _cast(alias: str, name: str, kind: str) -> str:
    return f"{alias}.{name}::json" if kind == "json" else f"{alias}.{name}"


def _arrays(columns: Typed, rows: Sequence[Sequence[Any]]) -> tuple[str, ...]:
    """One array literal per column of the rows."""
    return tuple(
        pg_array(values, kind)
        for (_, kind), values in zip(columns, zip(*rows, strict=True), strict=True)
    )


def pg_array(values: Iterable[Any], kind: str) -> str:
    """A PostgreSQL array literal of these values, to pass as one text parameter.

    The driver adapts a Python list element by element, which costs about 2 µs per
    element; PostgreSQL parses the literal in a fraction of that. Every text element
    is quoted, so no content can break out of it.
    """
    if kind in ("bigint", "integer"):
        return "{" + ",".join("NULL" if v is None else str(int(v)) for v in values) + "}"
    if kind == "boolean":
        return "{" + ",".join("NULL" if v is None else ("t" if v else "f") for v in values) + "}"
    if kind == "timestamptz":
        values = (None if v is None else v.isoformat() for v in values)
    return "{" + ",".join("NULL" if v is None else _quoted(v) for v in values) + "}"


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def stored_time(connection: Connection, moment: dt.datetime) -> Any:
    """A timestamp as the driver takes it in `bulk_insert` rows."""
    if is_postgres(connection):
        return moment
    # SQLAlchemy's SQLite DateTime storage format, UTC.
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def by_keys(
    connection: Connection, table: str, columns: str, column: str, keys: Collection[str]
) -> list[tuple]:
    """Rows of `table` whose text `column` is one of `keys`, each key looked up on an
    index that starts with the column (see `by_slots`, the same for slots)."""
    listed = sorted(keys)
    if is_postgres(connection):
        statement = (
            f"SELECT t.* FROM unnest(%s::text[]) AS k(key) CROSS JOIN LATERAL"  # noqa: S608
            f" (SELECT {columns} FROM {table} WHERE {column} = k.key OFFSET 0) t"
        )
        return driver_rows(connection, statement, (pg_array(listed, "text"),))
    statement = (
        f"SELECT {columns} FROM (SELECT value AS key FROM json_each(?)) AS k"  # noqa: S608
        f" CROSS JOIN {table} WHERE {column} = k.key"
    )
    return driver_rows(connection, statement, (json.dumps(listed),))


def by_slots(
    connection: Connection,
    table: str,
    columns: str,
    slots: Sequence[tuple[str, str]],
    condition: str = "TRUE",
) -> list[tuple]:
    """Rows of `table` on these (record_id, field) slots, each looked up on the table's
    (record_id, field) index; `columns` and `condition` may name the table's columns
    unqualified. Raw SQL from our own constants; the slots are one parameter.

    SQLite is told to start from the slots by CROSS JOIN; PostgreSQL by a LATERAL
    subquery behind OFFSET 0 (a row-value IN list or a plain join is planned as a scan
    of the whole table while it has no statistics).
    """
    if is_postgres(connection):
        statement = (
            f"SELECT t.* FROM unnest(%s::text[], %s::text[]) AS s(r, f) CROSS JOIN LATERAL"  # noqa: S608
            f" (SELECT {columns} FROM {table} WHERE record_id = s.r AND field = s.f"
            f" AND {condition} OFFSET 0) t"
        )
        parameters: tuple = (
            pg_array([r for r, _ in slots], "text"),
            pg_array([f for _, f in slots], "text"),
        )
        return driver_rows(connection, statement, parameters)
    statement = (
        f"SELECT {columns} FROM json_each(?) AS s CROSS JOIN {table}"  # noqa: S608
        f" WHERE record_id = json_extract(s.value, '$[0]')"
        f" AND field = json_extract(s.value, '$[1]') AND {condition}"
    )
    return driver_rows(connection, statement, (json.dumps([list(slot) for slot in slots]),))
