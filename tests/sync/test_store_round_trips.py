"""A push, a pull page and a snapshot page are each one transaction of a fixed number of
SQL statements, whatever their size (docs/sync_store.md, "A push in SQL": no per-op
round trips to the database).

What is counted is every statement the store asks the database to run, the
transaction's own BEGIN and COMMIT included, at the level that sees all of them:

- PostgreSQL: the wire protocol, from libpq's trace of the connection. Each simple
  `Query` message and each extended-protocol `Execute` is one statement. A `COPY … FROM
  STDIN` is one of them however many `CopyData` messages carry its rows; statements
  sent in pipeline mode count one each although they share a round trip; psycopg's
  `Parse` of a statement it prepares after five runs executes nothing and is not counted.
- SQLite, which runs in this process: each call into the driver. `execute` is one,
  `executemany` is one (one prepared statement run over every row), and so are a
  `commit` or `rollback` of an open transaction.

SQLAlchemy's `before_cursor_execute` sees only part of this: `sql.driver_rows` and
`sql.bulk_insert` talk to the driver's cursor directly, so the COPY and the bulk reads
never reach it. Its count is kept too, and must not grow with the push either.

Each push is measured on a fresh store holding the same shape of history, once with 10
ops and once with 1,000: the two must send the very same statements, and as many as the
table below says. A page of 5 changes and one of 150 likewise.
"""

from __future__ import annotations

import re
import sqlite3
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from psycopg import pq
from sqlalchemy import Engine, event

from server.db import Database, make_engine
from sync import hlc, protocol
from sync.ops import ADD, DELETED, REMOVE, SET, Op
from sync.store import ingest, positions, statistics
from sync.store.server import SqlServer
from sync.store.sql import bulk_insert, driver_rows
from sync.store.tables import record_forms
from tests.sync.backends import clear_store, quick_engine
from tests.sync.world import check_field, lookup_form

START_MS = 1_700_000_000_000
CREATOR, RIVAL, REVIEWER, NARROW = (f"00000000-0000-4000-c000-00000000000{n}" for n in (1, 2, 3, 4))
NARROW_SCOPE = frozenset({1})  # NARROW's grids: grid 3 is outside them
OPS_PER_RECORD = 5
SIZES = (10, 1000)
RULES = ingest.Rules(lookup_form, check_field, wall=lambda: START_MS)


# -- counting -----------------------------------------------------------------------


@dataclass
class Statements:
    """What one block asked of the database."""

    sent: list[str] = field(default_factory=list)  # the driver's statements, in order
    seen: int = 0  # the statements SQLAlchemy's before_cursor_execute saw
    transactions: Counter = field(default_factory=Counter)  # SQLAlchemy begin/commit/rollback

    def frame(self) -> tuple[str, str]:
        return self.sent[0], self.sent[-1]


class _LoggedCursor(sqlite3.Cursor):
    def execute(self, sql, parameters=(), /):
        self.connection.note(sql)
        return super().execute(sql, parameters)

    def executemany(self, sql, rows, /):
        self.connection.note(sql)
        return super().executemany(sql, rows)

    def executescript(self, script, /):
        self.connection.note(script)
        return super().executescript(script)


class LoggedConnection(sqlite3.Connection):
    """A SQLite connection that notes every statement run through it while `log` is set."""

    log: list[str] | None = None

    def note(self, sql: str) -> None:
        if self.log is not None:
            self.log.append(sql)

    def cursor(self, factory=_LoggedCursor):
        return super().cursor(factory)

    # The connection's own shortcuts do not go through `cursor()`.
    def execute(self, sql, parameters=(), /):
        return self.cursor().execute(sql, parameters)

    def executemany(self, sql, rows, /):
        return self.cursor().executemany(sql, rows)

    def commit(self):
        if self.in_transaction:
            self.note("COMMIT")
        super().commit()

    def rollback(self):
        if self.in_transaction:
            self.note("ROLLBACK")
        super().rollback()


_MESSAGE = re.compile(r"^([FB])\t\d+\t(\w+)\t?(.*)$")
_PARSE = re.compile(r'^ "([^"]*)" "(.*)" \d+', re.DOTALL)
_BIND = re.compile(r'^ "[^"]*" "([^"]*)"')


def frontend_statements(trace: str) -> list[str]:
    """The statements a libpq trace shows the client sending: the text of each `Query`
    and of the statement each `Execute` runs."""
    messages: list[list[str]] = []
    for line in trace.splitlines():
        found = _MESSAGE.match(line)
        if found:
            messages.append(list(found.groups()))
        elif messages:  # a statement's text went on over several lines
            messages[-1][2] += "\n" + line
    prepared: dict[str, str] = {}
    bound = ""
    sent = []
    for direction, kind, body in messages:
        if direction != "F":
            continue
        if kind == "Query":
            sent.append(body.strip()[1:-1])
        elif kind == "Parse":
            name, text = _PARSE.match(body).groups()
            prepared[name] = text
        elif kind == "Bind":
            bound = _BIND.match(body).group(1)
        elif kind == "Execute":
            sent.append(prepared[bound])
    return sent


class Watched:
    """An engine whose statements can be counted block by block (`count`)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.postgres = engine.dialect.name == "postgresql"
        self.current: Statements | None = None
        self._trace: Any = None
        event.listen(engine, "checkout", self._checkout)
        event.listen(engine, "checkin", self._checkin)
        event.listen(engine, "before_cursor_execute", self._before_cursor_execute)
        for name in ("begin", "commit", "rollback"):
            event.listen(engine, name, self._transaction(name))

    @contextmanager
    def count(self) -> Iterator[Statements]:
        """Count the statements of the connections checked out inside the block.

        The block starts on a new connection: the driver has prepared no statement on
        it yet, so the trace holds every `Parse` that an `Execute` refers to, and both
        sizes of a push meet the driver in the same state.
        """
        self.engine.dispose()
        self.current = statements = Statements()
        try:
            with tempfile.TemporaryFile() as self._trace:
                yield statements
                if self.postgres:
                    self._trace.seek(0)
                    statements.sent.extend(frontend_statements(self._trace.read().decode()))
        finally:
            self.current = self._trace = None

    def _checkout(self, dbapi_connection, _record, _proxy) -> None:
        if self.current is None:
            return
        if self.postgres:
            dbapi_connection.pgconn.trace(self._trace.fileno())
            dbapi_connection.pgconn.set_trace_flags(
                pq.Trace.SUPPRESS_TIMESTAMPS | pq.Trace.REGRESS_MODE
            )
        else:
            dbapi_connection.log = self.current.sent

    def _checkin(self, dbapi_connection, _record) -> None:
        if dbapi_connection is None:
            return
        if self.postgres:
            dbapi_connection.pgconn.untrace()
        else:
            dbapi_connection.log = None

    def _before_cursor_execute(self, *_args) -> None:
        if self.current is not None:
            self.current.seen += 1

    def _transaction(self, name: str) -> Callable[..., None]:
        def noted(*_args) -> None:
            if self.current is not None:
                self.current.transactions[name] += 1

        return noted


def counting_engine(database: Database) -> Engine:
    """An engine on the test database whose SQLite connections note their statements."""
    url = database.engine.url
    if url.get_backend_name() == "postgresql":
        return quick_engine(database)
    path = url.database

    def connect() -> sqlite3.Connection:
        return sqlite3.connect(path, factory=LoggedConnection, check_same_thread=False)

    return make_engine(url.render_as_string(hide_password=False), creator=connect)


@pytest.fixture
def watched(database) -> Iterator[Watched]:
    engine = counting_engine(database)
    yield Watched(engine)
    engine.dispose()


def one_transaction(statements: Statements, postgres: bool) -> list[str]:
    """Check that the block was one committed transaction; its statements inside."""
    assert statements.transactions == Counter(begin=1, commit=1)
    begin = "BEGIN" if postgres else "BEGIN IMMEDIATE"
    assert statements.frame() == (begin, "COMMIT")
    assert statements.sent.count(begin) == statements.sent.count("COMMIT") == 1
    return statements.sent[1:-1]


def same_statements(small: Statements, large: Statements) -> None:
    assert large.sent == small.sent, "\n".join(
        ["the larger one sent other statements:", *_first_difference(small.sent, large.sent)]
    )
    assert large.seen == small.seen


def _first_difference(small: list[str], large: list[str]) -> list[str]:
    for index, (a, b) in enumerate(zip(small, large, strict=False)):
        if a != b:
            return [f"statement {index}:", f"  small: {a[:200]}", f"  large: {b[:200]}"]
    return [f"{len(small)} statements against {len(large)}"]


# -- histories ----------------------------------------------------------------------


def record_id(index: int) -> str:
    return f"00000000-0000-4000-8000-{index:012x}"


Edit = tuple[int, str, str, Any]  # grid, field, kind, value
CREATE: list[Edit] = [
    (1, "head_name", SET, "wang"),
    (1, "size", SET, 2),
    (1, "tags", ADD, "a"),
    (1, "tags", ADD, "b"),
    (1, DELETED, SET, False),
]
# Made blind (base 0): two register conflicts, a remove that covers nothing, a new tag,
# a tombstone that conflicts with the creator's `false`.
RIVAL_EDITS: list[Edit] = [
    (1, "head_name", SET, "li"),
    (1, "size", SET, 3),
    (1, "tags", REMOVE, "a"),
    (1, "tags", ADD, "c"),
    (1, DELETED, SET, True),
]
# Made having seen both: resolves every open conflict, its remove covers the
# creator's add, and the record is revived.
REVIEW: list[Edit] = [
    (1, "head_name", SET, "zhao"),
    (1, "size", SET, 4),
    (1, "tags", REMOVE, "b"),
    (1, "tags", ADD, "a"),
    (1, DELETED, SET, False),
]
# Out of range, out of scope, unknown choice, clock ahead (`narrow`); one applies and
# conflicts with the creator's.
NARROW_EDITS: list[Edit] = [
    (1, "head_name", SET, "far-too-long"),
    (3, "size", SET, 5),
    (1, "tags", ADD, "zz"),
    (1, "size", SET, 6),
    (1, "head_name", SET, "wu"),
]
QUARANTINED_FOR = ("out_of_range", "grid_out_of_scope", "unknown_choice", "clock_ahead")
MOVE: list[Edit] = [(2, name, kind, value) for _grid, name, kind, value in REVIEW]


def made(
    device: str, first_seq: int, edits: list[Edit], records: int, *, ms: int, base: int = 0
) -> list[Op]:
    """Each edit on each record, with consecutive seqs and rising HLCs."""
    out = []
    for index in range(records):
        for grid, name, kind, value in edits:
            seq = first_seq + len(out)
            stamp = hlc.pack(ms, len(out))
            rid = record_id(index)
            out.append(Op(device, seq, rid, "household", 1, grid, name, kind, value, stamp, base))
    return out


@dataclass(frozen=True)
class Push:
    device: str
    ops: list[Op]
    scope: frozenset[int] | None = None


def created(records: int) -> Push:
    return Push(CREATOR, made(CREATOR, 1, CREATE, records, ms=START_MS - 50_000))


def rival(records: int) -> Push:
    return Push(RIVAL, made(RIVAL, 1, RIVAL_EDITS, records, ms=START_MS - 40_000))


def narrow(records: int) -> Push:
    ops = made(NARROW, 1, NARROW_EDITS, records, ms=START_MS - 30_000)
    ahead = hlc.pack(START_MS + 3_600_000)  # an hour ahead of the server's clock
    ops = [op.with_(hlc=ahead + op.seq) if op.seq % OPS_PER_RECORD == 4 else op for op in ops]
    return Push(NARROW, ops, NARROW_SCOPE)


def reviewed(records: int, newest: int) -> Push:
    return Push(REVIEWER, made(REVIEWER, 1, REVIEW, records, ms=START_MS - 20_000, base=newest))


def moved(records: int, newest: int) -> list[Op]:
    return made(
        CREATOR, records * OPS_PER_RECORD + 1, MOVE, records, ms=START_MS - 10_000, base=newest
    )


@dataclass(frozen=True)
class History:
    """The pushes before the one measured, for a number of records; the one measured,
    given also the newest position before it; and what that push must do per record:
    (applied, duplicate, quarantined, conflicts)."""

    before: Callable[[int], list[Push]]
    last: Callable[[int, int], Push]
    per_record: tuple[int, int, int, int]


HISTORIES = {
    "new records": History(lambda _n: [], lambda n, _newest: created(n), (5, 0, 0, 0)),
    "concurrent edits": History(lambda n: [created(n)], lambda n, _newest: rival(n), (5, 0, 0, 3)),
    "resolving edits": History(lambda n: [created(n), rival(n)], reviewed, (5, 0, 0, 0)),
    "quarantined ops": History(lambda n: [created(n)], lambda n, _newest: narrow(n), (1, 0, 4, 1)),
    "grid moves": History(
        lambda n: [created(n)], lambda n, newest: Push(CREATOR, moved(n, newest)), (5, 0, 0, 0)
    ),
    "retry with new ops": History(
        lambda n: [created(n)],
        lambda n, newest: Push(CREATOR, created(n).ops + moved(n, newest)),
        (5, 5, 0, 0),
    ),
    "retry only": History(lambda n: [created(n)], lambda n, _newest: created(n), (0, 5, 0, 0)),
}

# The statements each push sends, BEGIN and COMMIT included; the same on both backends.
# A change of the store that adds or saves a statement per push changes this table.
STATEMENTS = {
    "new records": 16,
    "concurrent edits": 24,
    "resolving edits": 23,
    "quarantined ops": 16,
    "grid moves": 25,
    "retry with new ops": 26,
    "retry only": 5,
}


def protocol_push(engine: Engine, push: Push) -> protocol.PushReply:
    """A push as the server makes it: `protocol.push` in one transaction."""
    caller = protocol.Caller(push.device, 1, push.scope)
    request = protocol.PushRequest([op.to_wire() for op in push.ops])
    with engine.begin() as connection:
        return protocol.push(connection, caller, request, RULES, ingest.within(push.scope))


def store_push(engine: Engine, push: Push) -> Any:
    server = SqlServer(engine, lookup_form, check_field, wall=RULES.wall)
    return server.push(push.device, push.ops, push.scope)


def newest(engine: Engine) -> int:
    with engine.begin() as connection:
        return positions.read(connection).position


def measure(watched: Watched, history: History, ops: int, via: Callable) -> Statements:
    """The statements of the history's last push, on a fresh store, with `ops` ops a
    part; checks that the push did what the history says."""
    engine = watched.engine
    clear_store(engine)
    records = ops // OPS_PER_RECORD
    for push in history.before(records):
        protocol_push(engine, push)
    push = history.last(records, newest(engine))
    with watched.count() as statements:
        reply = via(engine, push)
    result = reply.result if isinstance(reply, protocol.PushReply) else reply
    if result.quarantined:
        reasons = Counter(q.reason for q in result.quarantined)
        assert reasons == dict.fromkeys(QUARANTINED_FOR, records)
    done = (result.applied, result.duplicate, len(result.quarantined), len(result.conflicts))
    assert done == tuple(records * count for count in history.per_record)
    return statements


# -- the tests ----------------------------------------------------------------------


def test_the_count_takes_a_bulk_insert_as_one_statement_and_sees_the_driver(watched):
    """The instrument: a COPY (PostgreSQL) or an executemany (SQLite) is one statement
    whatever its rows, and statements run on the driver's own cursor are counted, which
    SQLAlchemy's before_cursor_execute never sees."""
    clear_store(watched.engine)
    columns = ("record_id", "form_id")
    if watched.postgres:
        copied = "COPY record_forms (record_id, form_id) FROM STDIN"
    else:
        copied = "INSERT INTO record_forms (record_id, form_id) VALUES (?, ?)"
    for rows in (3, 300):
        forms = [(record_id(rows * 1000 + n), "household") for n in range(rows)]
        with watched.count() as statements, watched.engine.begin() as connection:
            bulk_insert(connection, record_forms, columns, forms)
            driver_rows(connection, "SELECT count(*) FROM record_forms", ())
        inside = one_transaction(statements, watched.postgres)
        assert inside == [copied, "SELECT count(*) FROM record_forms"]
        # SQLAlchemy sees SQLite's BEGIN IMMEDIATE and executemany; on PostgreSQL it sees
        # nothing: psycopg sends BEGIN itself, and the COPY goes by the driver's cursor.
        assert statements.seen == (0 if watched.postgres else 2)


@pytest.mark.parametrize("via", [protocol_push, store_push], ids=["protocol", "SqlServer"])
@pytest.mark.parametrize("name", HISTORIES)
def test_a_push_is_a_fixed_number_of_statements_in_one_transaction(watched, db_backend, name, via):
    small, large = (measure(watched, HISTORIES[name], ops, via) for ops in SIZES)
    same_statements(small, large)
    inside = one_transaction(large, watched.postgres)
    assert len(large.sent) == STATEMENTS[name], "\n".join(inside)


# A page's statements, BEGIN and COMMIT included; a pull from a cursor in a scope also
# looks for records that left the scope since the cursor (`reading.left_scope_since`).
PAGE_STATEMENTS = {"sqlite": 5, "postgresql": 6}


@pytest.fixture
def filled(watched, monkeypatch) -> Watched:
    """A store of 100 records (400 field states), half of them moved to grid 2.

    Whether a page takes the planner's statistics depends on how far behind they are
    (on PostgreSQL, by counters its statistics system updates in the background), not on
    the page: the pages here all find them current, after the query that asks.
    """
    monkeypatch.setattr(statistics, "MIN_ROWS", 10**9)
    engine = watched.engine
    clear_store(engine)
    protocol_push(engine, created(100))
    moving = [op for op in moved(100, newest(engine)) if int(op.record_id[-12:], 16) % 2]
    protocol_push(engine, Push(CREATOR, [op.with_(seq=501 + n) for n, op in enumerate(moving)]))
    return watched


def read_page(watched: Watched, reader: Callable, scope, cursor: int, limit: int):
    caller = protocol.Caller(CREATOR, 1, scope)
    with watched.count() as statements, watched.engine.begin() as connection:
        page = reader(connection, caller, protocol.PullRequest(cursor, limit), RULES)
    return page, statements


@pytest.mark.parametrize("reader", [protocol.pull, protocol.snapshot], ids=["pull", "snapshot"])
@pytest.mark.parametrize("scope", [None, frozenset({2})], ids=["everything", "grid 2"])
@pytest.mark.parametrize("cursor", [0, 150])
def test_a_page_is_a_fixed_number_of_statements_whatever_its_size(
    filled, db_backend, reader, scope, cursor
):
    small_page, small = read_page(filled, reader, scope, cursor, 5)
    large_page, large = read_page(filled, reader, scope, cursor, 150)
    assert (len(small_page.changes), len(large_page.changes)) == (5, 150)
    assert small_page.more
    same_statements(small, large)
    inside = one_transaction(large, filled.postgres)
    left_scope = reader is protocol.pull and scope is not None and cursor > 0
    assert len(large.sent) == PAGE_STATEMENTS[db_backend] + left_scope, "\n".join(inside)
