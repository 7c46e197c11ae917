"""SQLite's planner statistics: a pull takes them once `field_state` has grown enough,
and its page then walks the position index instead of sorting the whole scope."""

from __future__ import annotations

import pytest
from sqlalchemy import event

from sync import hlc
from sync.ops import Op
from sync.store import statistics
from sync.store.server import SqlServer
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


def analyzed_rows(connection) -> int:
    return statistics._analyzed_rows(connection)


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
        assert analyzed_rows(connection) == 0

    server.push(DEVICE, households(40, 40, 801))  # 1,600 states
    assert "USING INDEX ix_field_state_position" in page_plan(engine, server)
    with engine.begin() as connection:
        assert 800 < analyzed_rows(connection) <= 3200
        assert not statistics.keep_current(connection)  # current: nothing to do

    server.push(DEVICE, households(80, 100, 1601))  # 3,600 states: more than doubled
    server.pull([1], 0, 100)
    with engine.begin() as connection:
        assert analyzed_rows(connection) > 3200


@pytest.mark.parametrize("db_backend", ["postgresql"])
def test_postgresql_is_left_to_autovacuum(database):
    with database.engine.begin() as connection:
        assert not statistics.keep_current(connection)
