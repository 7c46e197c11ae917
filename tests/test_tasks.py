"""Background tasks: sent only after commit, in-process by default, through Redis in production."""

import threading

import pytest
from flask import current_app

from server import create_app
from server.models import Grid
from server.tasks import send_after_commit
from tests.services import require_redis


def make_recorder(celery_app, name):
    seen: list[tuple[str, str]] = []
    done = threading.Event()

    @celery_app.task(name=name, shared=False)
    def record(value):
        seen.append((value, current_app.name))
        done.set()

    return record, seen, done


def test_eager_task_runs_only_after_commit(app, database):
    record, seen, _done = make_recorder(app.extensions["celery"], "tests.record_eager")
    with database.sessions() as session:
        session.add(Grid(code="T1", name="t", level="street", path="/"))
        send_after_commit(session, record, "committed")
        assert seen == []
        session.commit()
    assert seen == [("committed", "fieldsync")]


def test_task_is_dropped_when_the_transaction_rolls_back(app, database):
    record, seen, _done = make_recorder(app.extensions["celery"], "tests.record_rollback")
    with database.sessions() as session:
        session.add(Grid(code="T2", name="t", level="street", path="/"))
        send_after_commit(session, record, "rolled back")
        session.rollback()
        session.commit()
    assert seen == []


def test_a_rolled_back_savepoint_drops_only_what_it_queued(app, database):
    record, seen, _done = make_recorder(app.extensions["celery"], "tests.record_savepoint")
    with database.sessions() as session:
        session.add(Grid(code="T3", name="t", level="street", path="/"))
        send_after_commit(session, record, "before")
        savepoint = session.begin_nested()
        send_after_commit(session, record, "inside")
        savepoint.rollback()
        with session.begin_nested():
            send_after_commit(session, record, "released")
        session.commit()
    assert [value for value, _app in seen] == ["before", "released"]


@pytest.mark.redis
@pytest.mark.parametrize("db_backend", ["sqlite"], indirect=True)
def test_task_travels_through_redis_to_a_worker(settings, database):
    from celery.contrib.testing.worker import start_worker

    broker = require_redis()
    app = create_app(settings.replace(broker_url=broker), database)
    celery_app = app.extensions["celery"]
    assert celery_app.conf.task_always_eager is False
    record, seen, done = make_recorder(celery_app, "tests.record_redis")
    with start_worker(celery_app, perform_ping_check=False, shutdown_timeout=10):
        with database.sessions() as session:
            session.add(Grid(code="T3", name="t", level="street", path="/"))
            send_after_commit(session, record, "via redis")
            session.commit()
        assert done.wait(timeout=20), "the worker never ran the task"
    assert seen == [("via redis", "fieldsync")]


def test_the_daily_audit_anchor_is_scheduled_and_registered(app):
    from server.audit.tasks import ANCHOR_TASK

    celery_app = app.extensions["celery"]
    scheduled = {entry["task"] for entry in celery_app.conf.beat_schedule.values()}
    assert ANCHOR_TASK in scheduled
    assert ANCHOR_TASK in celery_app.tasks


def test_a_released_savepoint_sends_nothing_before_the_transaction_commits(app, database):
    record, seen, _done = make_recorder(app.extensions["celery"], "tests.record_released")
    with database.sessions() as session:
        session.add(Grid(code="T4", name="t", level="street", path="/"))
        send_after_commit(session, record, "outer")
        with session.begin_nested():
            send_after_commit(session, record, "inner")
        assert seen == []
        session.rollback()
        session.commit()
    assert seen == []


def test_a_session_closed_without_commit_drops_what_it_queued(app, database):
    record, seen, _done = make_recorder(app.extensions["celery"], "tests.record_closed")
    session = database.sessions()
    session.add(Grid(code="T5", name="t", level="street", path="/"))
    send_after_commit(session, record, "abandoned")
    session.close()
    session.add(Grid(code="T6", name="t", level="street", path="/"))
    session.commit()
    session.close()
    assert seen == []
