"""Planner statistics: a pull takes them once `field_state` has grown enough since they
were last taken (SQLite never takes them itself), and its page then walks the position
index instead of sorting the whole scope."""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, event

from server.db import make_engine
from sync import hlc
from sync.ops import Op
from sync.store import statistics
from sync.store.server import SqlServer
from sync.store.tables import metadata as store_metadata
from tests.conftest import create_schema, drop_schema, postgres_schema_url
from tests.services import require_postgres
from tests.sync.backends import clear_store

DEVICE = "00000000-0000-4000-a000-0000000000a1"
FIELDS = 20


def households(first: int, count: int, seq: int) -> list[Op]:
    """`count` records of FIELDS fields each, in grid 1, from seq `seq` on."""
    ops = []
    for n in range(first, first + count):
        record_id = f"00000000-0000-4000-8000-{n:012x}"
        for f in range(FIELDS):
            stamp = hlc.pack(1 << 30, seq)
            ops.append(Op(DEVICE, seq, record_id, "any", 1, 1, f"f{f}", "set", n, stamp, 0))
            seq += 1
    return ops


def page_plan(engine, server: SqlServer) -> str:
    """The query plan SQLite picks for a pull page's statement, as one text."""
    seen: list[tuple] = []

    def keep(_conn, _cursor, statement, parameters, _context, _many):
        if "FROM field_state" in statement and "ORDER BY" in statement:
            seen.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", keep)
    try:
        server.pull([1], 0, 100)
    finally:
        event.remove(engine, "before_cursor_execute", keep)
    statement, parameters = seen[-1]
    with engine.connect() as connection:
        plan = connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters).all()
    return " / ".join(row[-1] for row in plan)


@pytest.mark.parametrize("db_backend", ["sqlite"])
def test_a_pull_takes_statistics_once_the_states_have_grown(database):
    engine = database.engine
    clear_store(engine)
    server = SqlServer(engine, lambda form_id: {1}, lambda op: None, wall=lambda: 1 << 40)
    server.push(DEVICE, households(0, 40, 1))  # 800 states: too few to bother
    assert "TEMP B-TREE" in page_plan(engine, server)
    with engine.begin() as connection:
        assert statistics._analyzed_rows(connection) == 0

    server.push(DEVICE, households(40, 40, 801))  # 1,600 states
    assert "USING INDEX ix_field_state_position" in page_plan(engine, server)
    with engine.begin() as connection:
        assert 800 < statistics._analyzed_rows(connection) <= 3200
        assert not statistics.keep_current(connection)  # current: nothing to do

    server.push(DEVICE, households(80, 100, 1601))  # 3,600 states: more than doubled
    server.pull([1], 0, 100)
    with engine.begin() as connection:
        assert statistics._analyzed_rows(connection) > 3200


def settled(engine, live: int) -> tuple[int, int]:
    """PostgreSQL's (live rows, rows changed since analysis) of `field_state` once its
    statistics system counts `live` rows: backends report their counts a moment after
    they commit (asked to flush here, and waited for)."""
    statement = (
        "SELECT n_live_tup, n_mod_since_analyze FROM pg_stat_user_tables"
        " WHERE relid = 'field_state'::regclass"
    )
    deadline = time.monotonic() + 20
    while True:
        with engine.begin() as connection:
            connection.exec_driver_sql("SELECT pg_stat_force_next_flush()")
        with engine.begin() as connection:
            counted = tuple(connection.exec_driver_sql(statement).one())
        if counted[0] == live or time.monotonic() > deadline:
            return counted
        time.sleep(0.05)


def analyses(engine) -> int:
    with engine.begin() as connection:
        return connection.exec_driver_sql(
            "SELECT analyze_count FROM pg_stat_user_tables WHERE relid = 'field_state'::regclass"
        ).scalar_one()


@pytest.fixture
def own_schema() -> Iterator[Engine]:
    """An engine on a PostgreSQL schema of its own holding the sync store's tables: no
    other test's rows, or counts reported late, reach its statistics."""
    base_url = require_postgres()
    schema = f"fs_stats_{os.getpid()}_{secrets.token_hex(3)}"
    create_schema(base_url, schema)
    engine = make_engine(postgres_schema_url(base_url, schema))
    store_metadata.create_all(engine)
    with engine.begin() as connection:
        # Autovacuum stays out of the counts this test reads.
        connection.exec_driver_sql("ALTER TABLE field_state SET (autovacuum_enabled = false)")
    yield engine
    engine.dispose()
    drop_schema(base_url, schema)


def test_postgresql_analyzes_when_most_of_the_states_are_new_since_the_last_time(own_schema):
    engine = own_schema
    server = SqlServer(engine, lambda form_id: {1}, lambda op: None, wall=lambda: 1 << 40)
    server.push(DEVICE, households(0, 40, 1))  # 800 states: too few to bother
    assert settled(engine, 800)[0] == 800
    before = analyses(engine)
    server.pull([1], 0, 100)
    assert analyses(engine) == before

    server.push(DEVICE, households(40, 40, 801))  # 1,600 states, all new since
    assert settled(engine, 1600) == (1600, 1600)
    server.pull([1], 0, 100)
    assert analyses(engine) == before + 1
    with engine.begin() as connection:
        assert not statistics.keep_current(connection)  # current: nothing to do

    server.push(DEVICE, households(80, 10, 1601))  # 1,800: a ninth of them new
    assert settled(engine, 1800)[0] == 1800
    server.pull([1], 0, 100)
    assert analyses(engine) == before + 1
