"""Appending events: ids, links, the head, scope index, transactions, concurrency."""

import itertools
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import select

from server.audit import AuditError, record_event
from server.audit.chain import GENESIS_HASH
from server.models import AuditChainHead, AuditEvent, AuditEventGrid
from tests.audit.helpers import append_events, execute, verify


def test_an_empty_trail_verifies(database):
    report = verify(database)
    assert report.ok
    assert (report.events, report.ops, report.head_hash) == (0, 0, GENESIS_HASH)


def test_events_chain_one_after_another(database):
    append_events(database, 5)
    with database.session() as session:
        events = session.scalars(select(AuditEvent).order_by(AuditEvent.id)).all()
        head = session.get(AuditChainHead, 1)
    assert [event.id for event in events] == [1, 2, 3, 4, 5]
    assert events[0].prev_hash == GENESIS_HASH
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(events))
    assert (head.last_event_id, head.head_hash) == (5, events[-1].hash)
    report = verify(database)
    assert report.ok, report.broken
    assert (report.events, report.last_id, report.head_hash) == (5, 5, events[-1].hash)


def test_details_are_stored_as_canonical_json_and_grids_are_indexed(database):
    with database.session() as session:
        appended = record_event(
            session,
            "grid.changed",
            "grid",
            7,
            {"name": {"old": "甲", "new": "乙"}, "b": 1},
            user_id=3,
            device_id=None,
            grid_ids=[7, 2, 7],
        )
    with database.session() as session:
        event = session.get(AuditEvent, appended.id)
        grids = session.scalars(select(AuditEventGrid.grid_id).order_by(AuditEventGrid.grid_id))
        assert event.details == '{"b":1,"grid_ids":[2,7],"name":{"new":"乙","old":"甲"}}'
        assert (event.target_type, event.target_id, event.user_id) == ("grid", "7", 3)
        assert list(grids) == [2, 7]


def test_a_rolled_back_transaction_leaves_no_event(database):
    append_events(database, 1)

    def failing_action() -> None:
        with database.session() as session:
            record_event(session, "user.changed", "user", 1, {})
            raise RuntimeError("the action failed")

    with pytest.raises(RuntimeError):
        failing_action()
    append_events(database, 1, start=1)
    report = verify(database)
    assert report.ok
    assert report.events == 2


def test_appending_refuses_to_fork_when_the_head_row_is_gone(database):
    append_events(database, 2)
    execute(database, "DELETE FROM audit_chain_head")
    with pytest.raises(AuditError), database.session() as session:
        record_event(session, "user.changed", "user", 1, {})


def test_concurrent_appenders_never_fork_the_chain(database):
    threads, per_thread = 4, 5
    start = threading.Barrier(threads)

    def work(number: int) -> None:
        start.wait()
        for item in range(per_thread):
            with database.session() as session:
                record_event(session, "admin.changed", "setting", f"{number}-{item}", {})

    with ThreadPoolExecutor(threads) as pool:
        for future in [pool.submit(work, n) for n in range(threads)]:
            future.result()  # re-raises a worker's failure here
    report = verify(database)
    assert report.ok, report.broken
    assert report.events == threads * per_thread


def test_events_join_the_chain_only_when_the_transaction_commits(database):
    with database.session() as session:
        recorded = record_event(session, "admin.changed", "setting", "x", {})
        assert recorded.id is None
        assert session.scalar(select(AuditEvent.id)) is None
    assert (recorded.id, len(recorded.hash)) == (1, 64)


def test_an_event_in_a_rolled_back_savepoint_is_dropped(database):
    with database.session() as session:
        record_event(session, "admin.changed", "setting", "kept-before", {})
        savepoint = session.begin_nested()
        record_event(session, "admin.changed", "setting", "dropped", {})
        savepoint.rollback()
        with session.begin_nested():
            record_event(session, "admin.changed", "setting", "kept-after", {})
    with database.session() as session:
        targets = session.scalars(select(AuditEvent.target_id).order_by(AuditEvent.id))
        assert list(targets) == ["kept-before", "kept-after"]
    assert verify(database).ok


def test_the_chain_lock_closes_no_deadlock_with_row_locks(postgres_database):
    """One transaction locks a row, then records; another records, then wants that row.

    Were the chain head locked when an event is recorded, each would wait for the
    other. It is locked at commit, after every other lock, so both finish.
    """
    from sqlalchemy import update

    from server.models import User
    from tests.conftest import truncate_all

    database = postgres_database
    with database.session() as session:
        session.add(User(id=1, username="u", role="worker", password_hash="-"))
    row_locked, recorded = threading.Event(), threading.Event()

    def first() -> None:
        with database.session() as session:
            session.execute(update(User).where(User.id == 1).values(display_name="first"))
            row_locked.set()
            assert recorded.wait(10)
            record_event(session, "user.changed", "user", 1, {"by": "first"})

    def second() -> None:
        assert row_locked.wait(10)
        with database.session() as session:
            record_event(session, "user.changed", "user", 1, {"by": "second"})
            recorded.set()
            session.execute(update(User).where(User.id == 1).values(display_name="second"))

    try:
        with ThreadPoolExecutor(2) as pool:
            for future in [pool.submit(first), pool.submit(second)]:
                future.result(timeout=30)
        report = verify(database)
        assert report.ok, report.broken
        assert report.events == 2
    finally:
        truncate_all(database.engine)
