"""The stored ops a push event covers: their canonical lines, built in SQL, and digests.

The sync store's `ops` table is append-only, so every column of a stored op is
covered. PostgreSQL builds each op's canonical line itself (the format of
`chain.op_line`: length-prefixed text, the value's JSON text exactly as stored, the
arrival time as explicit UTC text) and hashes it. SQLite's `printf` and `length`
stop at a NUL, so there the columns come to Python (the value as its text, the time
as UTC text) and their lines are written out by `_line_texts`, the function that
hashes the rows a push has just written (`digest_rows`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Connection,
    Integer,
    Text,
    and_,
    bindparam,
    cast,
    column,
    distinct,
    func,
    literal_column,
    select,
    values,
)
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.engine import Dialect

from server.audit.chain import NULL_FIELD, format_time, new_ops_digest
from server.audit.driver import BATCH, stream
from sync.store.tables import ops

# Order and kinds are part of the canonical form: never change them.
COVERED = (
    ("position", "int"),
    ("device_id", "text"),
    ("seq", "int"),
    ("user_id", "int"),
    ("record_id", "text"),
    ("form_id", "text"),
    ("form_version", "int"),
    ("grid_id", "int"),
    ("field", "text"),
    ("kind", "text"),
    ("value", "text"),
    ("hlc", "int"),
    ("base", "int"),
    ("reason", "text"),
    ("detail", "text"),
    ("received_at", "time"),
)


@dataclass(frozen=True)
class OpRange:
    """A device's ops `seq_from`..`seq_to` as one push event claims them."""

    device_id: str
    seq_from: int
    seq_to: int


@dataclass
class RangeDigest:
    """What the stored ops of one range hash to, and what they hold."""

    count: int
    ops_hash: str
    grid_ids: set[int]


def _sql_text(value: str) -> ColumnElement:
    return literal_column("'" + value.replace("'", "''") + "'", Text)


def _sql_int(value: int) -> ColumnElement:
    return literal_column(str(int(value)))


def utc_text(column: ColumnElement, dialect: str) -> ColumnElement:
    """A stored time as `format_time` text, computed by the database."""
    if dialect == "postgresql":
        utc = func.timezone(_sql_text("UTC"), column)
        return func.to_char(utc, _sql_text('YYYY-MM-DD"T"HH24:MI:SS.US"Z"'))
    return func.printf(_sql_text("%sT%s.%.6sZ"), *_sqlite_time_parts(column))


def _sqlite_time_parts(column: ColumnElement) -> list[ColumnElement]:
    # SQLite holds 'YYYY-MM-DD HH:MM:SS[.ffffff]' in UTC; a missing fraction is zeros.
    return [
        func.substr(column, _sql_int(1), _sql_int(10)),
        func.substr(column, _sql_int(12), _sql_int(8)),
        func.substr(column, _sql_int(21)).concat(_sql_text("000000")),
    ]


def op_line_sql() -> ColumnElement:
    """PostgreSQL's expression of an op's canonical line (see `chain.op_line`).

    One `format` call with `%s` for every piece: it prints integers in decimal and
    text as is, NUL-free on PostgreSQL.
    """
    pattern, arguments = [], []
    for name, kind in COVERED:
        column = ops.c[name]
        if kind == "int":
            pattern.append("%s|")
            arguments.append(column)
        elif kind == "time":
            pattern.append("%s|")
            arguments.append(utc_text(column, "postgresql"))
        elif not column.nullable:
            pattern.append("%s:%s|")
            arguments += [func.length(column), column]
        else:
            content = cast(column, Text)
            framed = cast(func.length(content), Text).concat(_sql_text(":")).concat(content)
            pattern.append("%s|")
            arguments.append(func.coalesce(framed, _sql_text(NULL_FIELD)))
    return func.format(_sql_text("".join(pattern) + "\n"), *arguments)


def line_columns(dialect: str) -> list[ColumnElement]:
    """The covered columns in order, as a line prints them: the value as its stored
    text (a number kept by SQLite before migration 0010 as SQLite prints it), the
    time as `format_time` text."""
    columns = []
    for name, kind in COVERED:
        column = ops.c[name]
        if kind == "time":
            column = utc_text(column, dialect)
        elif name == "value":
            column = cast(column, Text)
        columns.append(column)
    return columns


def op_lines(connection: Connection, *criteria: ColumnElement) -> list[str]:
    """The canonical lines of the ops matching `criteria`, by device and seq, as verify
    hashes them."""
    order = (ops.c.device_id, ops.c.seq)
    if connection.dialect.name == "postgresql":
        statement = select(op_line_sql()).where(*criteria).order_by(*order)
        return list(connection.scalars(statement))
    statement = select(*line_columns("sqlite")).where(*criteria).order_by(*order)
    return list(_line_texts(stream(connection, statement), set()))


def digest_rows(rows: Iterable[Sequence[Any]]) -> RangeDigest:
    """Hash `ops` rows (COVERED order, in seq order) without reading them back.

    For the rows a push has just written, where a backend keeps them verbatim:
    PostgreSQL's json column holds each value's text as sent, and its timestamps hold
    the microseconds `format_time` prints; SQLite keeps a value's text since 0010.
    Also for SQLite's rows read back by `line_columns`.
    """
    digest, count, grids = new_ops_digest(), 0, set()
    lines: list[str] = []
    for line in _line_texts(rows, grids):
        lines.append(line)
        count += 1
        if len(lines) >= BATCH:
            digest.update("".join(lines).encode())
            lines.clear()
    digest.update("".join(lines).encode())
    return RangeDigest(count, digest.hexdigest(), grids)


def _line_texts(rows: Iterable[Sequence[Any]], grids: set[int]) -> Iterator[str]:
    """Each row's `chain.op_line`, noting its grid in `grids`.

    Written out here because this runs for every op of every push and every op
    verify reads on SQLite (a test holds the two to the same text); the texts a push
    repeats (device, form, record, field, kind, time) are framed once.
    """
    framed, times = _Framed(), _Times()
    for row in rows:
        (position, device, seq, user, record, form, version, grid, field, kind) = row[:10]
        value, hlc, base, reason, detail, received = row[10:]
        grids.add(grid)
        yield (
            f"{position}|{framed[device]}|{seq}|{user}|{framed[record]}|{framed[form]}|"
            f"{version}|{grid}|{framed[field]}|{framed[kind]}|{_framed(value)}|{hlc}|{base}|"
            f"{framed[reason]}|{framed[detail]}|{times[received]}|\n"
        )


class _Framed(dict):
    """Each text's `_framed` form, made on first use."""

    def __missing__(self, text: str | None) -> str:
        self[text] = made = _framed(text)
        return made


class _Times(dict):
    """Each time's `format_time` text, made on first use (text is that already)."""

    def __missing__(self, moment: Any) -> str:
        self[moment] = made = moment if isinstance(moment, str) else format_time(moment)
        return made


def _framed(text: str | None) -> str:
    return NULL_FIELD if text is None else f"{len(text)}:{text}"


def digest_range(connection: Connection, op_range: OpRange) -> RangeDigest:
    """Hash the stored ops of one range, in seq order, with their grids (the push path)."""
    return _digest_one(connection, op_range)


def _digest_one(connection: Connection, op_range: OpRange) -> RangeDigest:
    """One range through SQL compiled once: hashed by PostgreSQL, or rows for Python."""
    sql, names = _one_range_sql(connection.dialect)
    given = {
        "device_id": op_range.device_id,
        "seq_from": op_range.seq_from,
        "seq_to": op_range.seq_to,
    }
    if connection.dialect.name == "postgresql":
        result = connection.exec_driver_sql(sql, {name: given[name] for name in names})
        count, ops_hash, grid_ids = result.one()
        return RangeDigest(count, ops_hash, set(grid_ids or ()))
    cursor = connection.connection.driver_connection.cursor()
    try:
        cursor.execute(sql, tuple(given[name] for name in names))
        return digest_rows(_fetched(cursor))
    finally:
        cursor.close()


def _fetched(cursor: Any) -> Iterator[Sequence[Any]]:
    """A driver cursor's rows, fetched a batch at a time."""
    while batch := cursor.fetchmany(BATCH):
        yield from batch


_ONE_RANGE_SQL: dict[tuple[str, str, str], tuple[str, tuple[str, ...]]] = {}


def _one_range_sql(dialect: Dialect) -> tuple[str, tuple[str, ...]]:
    """The SQL text of one range's digest and its parameter names, compiled once."""
    key = (dialect.name, dialect.driver, dialect.paramstyle)
    if key not in _ONE_RANGE_SQL:
        _ONE_RANGE_SQL[key] = _compile_one_range(dialect)
    return _ONE_RANGE_SQL[key]


def _compile_one_range(dialect: Dialect) -> tuple[str, tuple[str, ...]]:
    dialect_name = dialect.name
    device, low, high = (
        bindparam("device_id", type_=Text),
        bindparam("seq_from", type_=BigInteger),
        bindparam("seq_to", type_=BigInteger),
    )
    where = and_(ops.c.device_id == device, ops.c.seq.between(low, high))
    if dialect_name == "postgresql":
        joined = func.string_agg(op_line_sql(), aggregate_order_by(_sql_text(""), ops.c.seq))
        statement = select(
            func.count(),
            _hex_sha256(joined),
            func.array_agg(distinct(ops.c.grid_id)),
        ).where(where)
    else:
        statement = select(*line_columns(dialect_name)).where(where).order_by(ops.c.seq)
    compiled = statement.compile(dialect=dialect)
    names = tuple(compiled.positiontup or compiled.params)
    if set(names) != {"device_id", "seq_from", "seq_to"}:
        raise RuntimeError(f"the range digest SQL must bind only the range, not {names}")
    return str(compiled), names


def _hex_sha256(text: ColumnElement) -> ColumnElement:
    """SHA-256 in hex of UTF-8 text (NULL, from no rows, hashes as empty)."""
    as_bytes = func.convert_to(func.coalesce(text, _sql_text("")), _sql_text("UTF8"))
    return func.encode(func.sha256(as_bytes), _sql_text("hex"))


def digest_ranges(connection: Connection, ranges: list[OpRange]) -> dict[OpRange, RangeDigest]:
    """Hash the stored ops of each range (ranges of one device must not overlap).

    PostgreSQL hashes in the database: one statement joins the ranges to their ops and
    gives, per range, SHA-256 over its lines concatenated in seq order (the very bytes
    Python would hash), the count and the grids. SQLite has no SHA-256 (and no exact
    `printf` of a text holding a NUL): each range's rows come to Python in batches
    (an in-process query costs next to nothing) and their lines are written there.
    """
    if not ranges:
        return {}
    if connection.dialect.name == "postgresql":
        return _digest_in_postgres(connection, ranges)
    return {r: _digest_one(connection, r) for r in ranges}


def _digest_in_postgres(
    connection: Connection, ranges: list[OpRange]
) -> dict[OpRange, RangeDigest]:
    wanted = values(
        column("idx", Integer),
        column("device_id", Text),
        column("seq_from", BigInteger),
        column("seq_to", BigInteger),
        name="wanted",
    ).data([(n, r.device_id, r.seq_from, r.seq_to) for n, r in enumerate(ranges)])
    line = op_line_sql()
    present = ops.c.seq.is_not(None)  # the outer join's empty row is no op
    joined = func.string_agg(line, aggregate_order_by(_sql_text(""), ops.c.seq)).filter(present)
    digest = _hex_sha256(joined)
    grids = func.array_agg(distinct(ops.c.grid_id)).filter(present)
    statement = (
        select(wanted.c.idx, func.count(ops.c.seq), digest, grids)
        .select_from(
            wanted.outerjoin(
                ops,
                and_(
                    ops.c.device_id == wanted.c.device_id,
                    ops.c.seq.between(wanted.c.seq_from, wanted.c.seq_to),
                ),
            )
        )
        .group_by(wanted.c.idx)
    )
    found = {}
    for idx, count, ops_hash, grid_ids in connection.execute(statement):
        found[ranges[idx]] = RangeDigest(count, ops_hash, set(grid_ids or ()))
    return found
