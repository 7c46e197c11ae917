"""Validation flags are asked for in the transaction that changes a record, and computed
after it commits: by the app's task, or by whatever check runs next when that is lost."""

from __future__ import annotations

import time
import uuid

import pytest
from sqlalchemy import select, text

from server import record_flags
from server.models import FlagCheck
from sync.store import tables as t
from tests.api.records_world import add_record, install_forms, push, wire_ops
from tests.services import require_redis


@pytest.fixture
def forms(world):
    install_forms(world)
    return world


def marks(world) -> dict[str, str]:
    with world.database.session() as session:
        return dict(session.execute(select(FlagCheck.record_id, FlagCheck.mark)).all())


def flags(world, record_id: str) -> list[tuple[str, str]] | None:
    with world.database.session() as session:
        stored = session.scalar(
            select(t.records.c.validation_flags).where(t.records.c.record_id == record_id)
        )
    return None if stored is None else sorted((f["field"], f["code"]) for f in stored)


# hazard_check's required questions that add_record leaves empty
REQUIRED_LEFT = [
    ("assigned_team", "required"),
    ("categories", "required"),
    ("check_date", "required"),
    ("description", "required"),
    ("location", "required"),
    ("place_type", "required"),
    ("responsible_party", "required"),
    ("status", "required"),
]


def test_a_push_marks_its_records_and_a_check_flags_them(forms, settings):
    record_id = add_record(forms, settings, "worker", "S-C1-R1-G1")  # no app: marks only
    assert list(marks(forms)) == [record_id]
    assert flags(forms, record_id) is None
    assert record_flags.check_all(forms.database) == 1
    assert marks(forms) == {}
    assert flags(forms, record_id) == REQUIRED_LEFT


def test_the_app_checks_a_pushed_record_once_the_push_commits(forms, client):
    record_id = str(uuid.uuid4())
    grid_id = forms.grids["S-C1-R1-G1"]
    edits = [(record_id, "address", grid_id, "1 Main St"), (record_id, "severity", grid_id, "high")]
    ops = wire_ops(forms, forms.devices["worker"], edits)
    reply = client.post("/api/v1/sync/push", json={"ops": ops}, headers=forms.headers("worker"))
    assert reply.status_code == 200, reply.get_json()
    assert marks(forms) == {}
    # a high severity makes the deadline required
    assert flags(forms, record_id) == sorted([*REQUIRED_LEFT, ("deadline", "required")])


def test_a_check_that_cannot_be_sent_fails_nothing_and_its_mark_waits(forms, client, monkeypatch):
    def broker_down(*_args, **_kwargs):
        raise ConnectionError("broker unreachable")

    task = client.application.extensions["celery"].tasks[record_flags.FLAGS_TASK]
    monkeypatch.setattr(task, "delay", broker_down)
    record_id = str(uuid.uuid4())
    grid_id = forms.grids["S-C1-R1-G1"]
    ops = wire_ops(forms, forms.devices["worker"], [(record_id, "address", grid_id, "x")])
    reply = client.post("/api/v1/sync/push", json={"ops": ops}, headers=forms.headers("worker"))
    assert reply.status_code == 200, reply.get_json()
    assert reply.get_json()["acked_seq"] == ops[0]["seq"]
    assert list(marks(forms)) == [record_id]
    monkeypatch.undo()
    assert record_flags.check_all(forms.database) == 1
    assert ("severity", "required") in flags(forms, record_id)


def test_a_record_marked_again_during_a_check_is_checked_again(forms, settings, monkeypatch):
    record_id = add_record(forms, settings, "worker", "S-C1-R1-G1")
    computed = record_flags.refresh_flags

    def and_meanwhile(session, record_ids, now=None):
        computed(session, record_ids, now)
        # what a push committing during the check does to the mark
        session.execute(
            text("UPDATE flag_checks SET mark = 'later' WHERE record_id = :r"), {"r": record_id}
        )

    monkeypatch.setattr(record_flags, "refresh_flags", and_meanwhile)
    with forms.database.session() as session:
        assert record_flags.check_marked(session) == 1
    assert marks(forms) == {record_id: "later"}
    monkeypatch.undo()
    assert record_flags.check_all(forms.database) == 1
    assert marks(forms) == {}


def test_marks_roll_back_with_their_transaction(forms):
    record_id = str(uuid.uuid4())
    with forms.database.sessions() as session:
        record_flags.mark(session, {record_id})
        session.rollback()
    assert marks(forms) == {}


def test_a_check_works_through_every_mark_in_batches(forms, settings, monkeypatch):
    monkeypatch.setattr(record_flags, "BATCH", 2)
    records = [add_record(forms, settings, "worker", "S-C1-R1-G1") for _ in range(5)]
    assert sorted(marks(forms)) == sorted(records)
    assert record_flags.check_all(forms.database) == 5
    assert marks(forms) == {}
    assert all(flags(forms, record_id) == REQUIRED_LEFT for record_id in records)


def test_the_flag_check_is_scheduled_and_registered(app):
    celery_app = app.extensions["celery"]
    scheduled = {entry["task"] for entry in celery_app.conf.beat_schedule.values()}
    assert record_flags.FLAGS_TASK in scheduled
    assert record_flags.FLAGS_TASK in celery_app.tasks


@pytest.mark.redis
@pytest.mark.parametrize("db_backend", ["sqlite"], indirect=True)
def test_a_worker_checks_what_a_push_marked_through_redis(forms, settings):
    from celery.contrib.testing.worker import start_worker

    from server import create_app

    app = create_app(settings.replace(broker_url=require_redis()), forms.database)
    record_id = str(uuid.uuid4())
    grid_id = forms.grids["S-C1-R1-G1"]
    ops = wire_ops(forms, forms.devices["worker"], [(record_id, "address", grid_id, "x")])
    with start_worker(app.extensions["celery"], perform_ping_check=False, shutdown_timeout=10):
        reply = app.test_client().post(
            "/api/v1/sync/push", json={"ops": ops}, headers=forms.headers("worker")
        )
        assert reply.status_code == 200, reply.get_json()
        deadline = time.monotonic() + 20
        while marks(forms) and time.monotonic() < deadline:
            time.sleep(0.05)
    assert marks(forms) == {}, "the worker never checked the record"
    assert ("severity", "required") in flags(forms, record_id)


def test_rows_whose_parents_never_reach_a_record_are_left_alone(forms, settings):
    """A row pushed before its parent, and rows whose `_parent`s loop, belong to no
    filled-in form yet: the check passes over them, and still checks the rest."""
    grid_id = forms.grids["S-C1-R1-G1"]
    orphan, first, second = (str(uuid.uuid4()) for _ in range(3))
    missing = str(uuid.uuid4())
    rows = [(orphan, missing), (first, second), (second, first)]
    edits = [
        (row, field, grid_id, value)
        for row, parent in rows
        for field, value in (("_parent", parent), ("_group", "photos"), ("caption", "c"))
    ]
    push(forms, settings, forms.devices["worker"], edits)
    record_id = add_record(forms, settings, "worker", "S-C1-R1-G1")
    assert record_flags.check_all(forms.database) == 4
    assert marks(forms) == {}
    assert flags(forms, record_id) == REQUIRED_LEFT
    assert [flags(forms, row) for row, _parent in rows] == [None, None, None]
