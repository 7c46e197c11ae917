"""`sql.pipelined`: writes sent without waiting store exactly what they store one by one,
reads inside see them, and an error fails the whole transaction.

On SQLite the block runs as it is; the same tests hold there.
"""

from __future__ import annotations

import datetime as dt

import psycopg
import pytest
from sqlalchemy import exc, select

from sync.store.batch import Batch
from sync.store.conflict_rows import CONFLICT_COLUMNS
from sync.store.sql import bulk_insert, driver_rows, pipelined, stored_time
from sync.store.tables import conflicts, inbox, record_moves
from tests.sync.backends import clear_store

MOMENT = dt.datetime(2026, 11, 26, 10, 30, 15, 123456, tzinfo=dt.UTC)
RECORD = "00000000-0000-4000-8000-0000000000e1"


def conflict_rows(connection, first: int) -> list[tuple]:
    stamp = stored_time(connection, MOMENT)
    return [
        (RECORD, "f01", first, first + 1, first, "open", stamp, None),
        (RECORD, 'f"2\\', first + 2, first + 3, first + 3, "resolved", stamp, stamp),
    ]


def stored_conflicts(connection, low: int, high: int) -> list[tuple]:
    rows = connection.execute(
        select(*(conflicts.c[name] for name in CONFLICT_COLUMNS))
        .where(conflicts.c.first_position.between(low, high))
        .order_by(conflicts.c.first_position)
    )
    return [(*row[:2], *(p - low for p in row[2:5]), *row[5:]) for row in rows]


def test_bulk_insert_in_a_pipeline_stores_what_copy_stores(database):
    clear_store(database.engine)
    with database.engine.begin() as connection:
        bulk_insert(connection, conflicts, CONFLICT_COLUMNS, conflict_rows(connection, 10))
        with pipelined(connection):
            bulk_insert(connection, conflicts, CONFLICT_COLUMNS, conflict_rows(connection, 20))
            payloads = [
                (7, "conflict", RECORD, '{"conflict_id":1}', MOMENT),
                (8, "x", None, "[]", MOMENT),
            ]
            bulk_insert(
                connection,
                inbox,
                ("user_id", "kind", "record_id", "payload", "created_at"),
                payloads,
            )
            bulk_insert(
                connection, record_moves, ("position", "record_id", "from_grid", "to_grid"), []
            )
    with database.engine.connect() as connection:
        alone, pipelined_rows = (
            stored_conflicts(connection, 10, 13),
            stored_conflicts(connection, 20, 23),
        )
        stored_inbox = connection.execute(
            select(inbox.c.user_id, inbox.c.record_id, inbox.c.payload).order_by(inbox.c.id)
        ).all()
    assert pipelined_rows == alone
    assert len(alone) == 2
    assert alone[1][1] == 'f"2\\'
    assert alone[1][6] == alone[1][7]
    assert alone[0][7] is None
    created = alone[0][6]
    if created.tzinfo is None:  # SQLite hands back a naive UTC time
        created = created.replace(tzinfo=dt.UTC)
    assert created == MOMENT
    assert [tuple(row) for row in stored_inbox] == [(7, RECORD, {"conflict_id": 1}), (8, None, [])]


def test_a_read_inside_a_pipeline_sees_the_writes_sent_before_it(database):
    clear_store(database.engine)
    with database.engine.begin() as connection, pipelined(connection):
        if connection.dialect.name == "postgresql":
            status = connection.connection.driver_connection.pgconn.pipeline_status
            assert status == psycopg.pq.PipelineStatus.ON
        bulk_insert(connection, conflicts, CONFLICT_COLUMNS, conflict_rows(connection, 30))
        marks = "%s" if connection.dialect.name == "postgresql" else "?"
        rows = driver_rows(
            connection,
            f"SELECT first_position FROM conflicts WHERE first_position >= {marks}"
            " ORDER BY first_position",
            (30,),
        )
    assert [row[0] for row in rows] == [30, 32]


def insert_twice_in_a_pipeline(connection) -> None:
    with pipelined(connection):
        bulk_insert(connection, inbox, ("user_id", "kind", "payload"), [(1, "x", "{}")])
        bulk_insert(connection, conflicts, CONFLICT_COLUMNS, conflict_rows(connection, 40))


def test_an_error_in_a_pipeline_fails_the_whole_transaction(database):
    clear_store(database.engine)
    with database.engine.connect() as connection:
        transaction = connection.begin()
        bulk_insert(connection, conflicts, CONFLICT_COLUMNS, conflict_rows(connection, 40))
        # The same (second_position, first_position) pair again breaks a unique index.
        with pytest.raises((exc.IntegrityError, psycopg.errors.UniqueViolation)):
            insert_twice_in_a_pipeline(connection)
        transaction.rollback()
    with database.engine.connect() as connection:
        assert connection.execute(select(conflicts.c.id)).all() == []
        assert connection.execute(select(inbox.c.id)).all() == []


def test_a_list_of_positions_is_bounded_by_its_range(database):
    """The lookup stays on the primary key even where a planner's statistics are stale."""
    with database.engine.connect() as connection:
        where, parameters = Batch(positions=(9, 4, 7)).sql(connection)
    assert where.startswith("position BETWEEN ? AND ? AND ")
    assert parameters[:2] == (4, 9)
