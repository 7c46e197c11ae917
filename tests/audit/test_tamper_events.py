"""Changing, removing, reordering or inserting events behind the application's back."""

import datetime as dt

import pytest

from tests.audit.helpers import append_events, event_row, execute, row_hash, verify

EVENTS = 8


@pytest.fixture
def trail(database):
    append_events(database, EVENTS)
    assert verify(database).ok
    return database


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("details", '{"field":"display_name","new":"forged","old":"n3"}'),
        ("action", "user.created"),
        ("user_id", 2),
        ("target_id", "99"),
        ("device_id", "00000000-0000-0000-0000-000000000000"),
        ("occurred_at", dt.datetime(2020, 1, 1, tzinfo=dt.UTC)),
    ],
)
def test_an_edited_event_is_reported_at_that_event(trail, column, value):
    stored = event_row(trail, 4)["hash"]
    execute(trail, f"UPDATE audit_events SET {column} = :value WHERE id = 4", value=value)
    broken = verify(trail).broken
    assert (broken.kind, broken.event_id, broken.found) == ("hash", 4, stored)
    assert broken.expected != stored


def test_an_edited_and_rehashed_event_breaks_the_link_to_the_next(trail):
    row = event_row(trail, 4)
    row["details"] = '{"field":"display_name","new":"forged","old":"n3"}'
    forged = row_hash(row, row["prev_hash"])
    execute(
        trail,
        "UPDATE audit_events SET details = :details, hash = :hash WHERE id = 4",
        details=row["details"],
        hash=forged,
    )
    broken = verify(trail).broken
    assert (broken.kind, broken.event_id) == ("link", 5)
    assert (broken.expected, broken.found) == (forged, event_row(trail, 5)["prev_hash"])


def test_an_edited_prev_hash_is_reported_at_that_event(trail):
    execute(trail, "UPDATE audit_events SET prev_hash = :h WHERE id = 6", h="f" * 64)
    broken = verify(trail).broken
    assert (broken.kind, broken.event_id, broken.found) == ("link", 6, "f" * 64)
    assert broken.expected == event_row(trail, 5)["hash"]


def test_a_deleted_event_is_reported_as_missing(trail):
    expected = event_row(trail, 3)["hash"]
    execute(trail, "DELETE FROM audit_events WHERE id = 4")
    broken = verify(trail).broken
    assert (broken.kind, broken.event_id, broken.expected) == ("missing", 4, expected)


def test_a_deleted_last_event_is_caught_by_the_head(trail):
    last = event_row(trail, EVENTS)["hash"]
    execute(trail, "DELETE FROM audit_events WHERE id = :id", id=EVENTS)
    broken = verify(trail).broken
    assert (broken.kind, broken.event_id, broken.expected) == ("missing", EVENTS, last)


def test_swapped_events_are_reported_where_the_order_breaks(trail):
    execute(trail, "UPDATE audit_events SET id = 1000 WHERE id = 4")
    execute(trail, "UPDATE audit_events SET id = 4 WHERE id = 5")
    execute(trail, "UPDATE audit_events SET id = 5 WHERE id = 1000")
    broken = verify(trail).broken
    assert (broken.kind, broken.event_id) == ("link", 4)
    assert broken.expected == event_row(trail, 3)["hash"]


def _make_room_at(database, event_id: int) -> None:
    # Two steps so no unique check sees two rows with one id on the way.
    execute(database, "UPDATE audit_events SET id = id + 1000 WHERE id >= :id", id=event_id)
    execute(database, "UPDATE audit_events SET id = id - 999 WHERE id >= 1000")


def _insert(database, row: dict) -> None:
    execute(
        database,
        "INSERT INTO audit_events (id, occurred_at, user_id, device_id, action, target_type,"
        " target_id, details, prev_hash, hash) VALUES (:id, :occurred_at, :user_id,"
        " :device_id, :action, :target_type, :target_id, :details, :prev_hash, :hash)",
        **row,
    )


def test_an_inserted_event_with_a_made_up_hash_is_reported_at_itself(trail):
    previous = event_row(trail, 5)
    _make_room_at(trail, 6)
    forged = dict(previous, id=6, prev_hash=previous["hash"], hash="a" * 64)
    _insert(trail, forged)
    broken = verify(trail).broken
    assert (broken.kind, broken.event_id, broken.found) == ("hash", 6, "a" * 64)


def test_a_well_forged_inserted_event_breaks_the_link_after_it(trail):
    previous = event_row(trail, 5)
    _make_room_at(trail, 6)
    forged = dict(previous, id=6, prev_hash=previous["hash"], details='{"forged":true}')
    forged["hash"] = row_hash(forged, previous["hash"])
    _insert(trail, forged)
    broken = verify(trail).broken
    assert (broken.kind, broken.event_id, broken.expected) == ("link", 7, forged["hash"])


def test_an_event_appended_outside_the_chain_lock_is_caught_by_the_head(trail):
    last = event_row(trail, EVENTS)
    forged = dict(last, id=EVENTS + 1, prev_hash=last["hash"], details='{"forged":true}')
    forged["hash"] = row_hash(forged, last["hash"])
    _insert(trail, forged)
    broken = verify(trail).broken
    assert (broken.kind, broken.event_id) == ("head", EVENTS + 1)
    assert (broken.expected, broken.found) == (last["hash"], forged["hash"])


def test_verify_from_a_date_checks_only_the_events_since(trail):
    execute(trail, "UPDATE audit_events SET details = '{}' WHERE id = 2")
    since = event_row(trail, 5)["occurred_at"]
    if since.tzinfo is None:
        since = since.replace(tzinfo=dt.UTC)
    report = verify(trail, since=since)
    assert report.ok, report.broken
    assert (report.first_id, report.events) == (5, EVENTS - 4)
    execute(trail, "UPDATE audit_events SET details = '{}' WHERE id = 7")
    broken = verify(trail, since=since).broken
    assert (broken.kind, broken.event_id) == ("hash", 7)
    assert verify(trail).broken.event_id == 2


def test_verify_from_a_time_in_another_zone_means_the_same_moment(trail):
    moment = event_row(trail, 5)["occurred_at"]
    moment = moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
    east = moment.astimezone(dt.timezone(dt.timedelta(hours=8)))
    report = verify(trail, since=east)
    assert (report.first_id, report.events) == (5, EVENTS - 4)
