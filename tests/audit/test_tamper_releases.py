"""Forging, removing or changing a release (an `op_releases` row) behind the application's back."""

import datetime as dt

import pytest
from sqlalchemy import insert

from server.audit import Action, record_event
from server.audit.covered_releases import Release, first_mismatch
from sync.store.tables import op_releases
from tests.audit.factories import device, op_rows, store_push, store_release
from tests.audit.helpers import event_row, execute, rechain, verify

AT = dt.datetime(2026, 3, 1, 8, 20, 0, 5, tzinfo=dt.UTC)
LATER = dt.datetime(2026, 3, 1, 9, 0, tzinfo=dt.UTC)


@pytest.fixture
def trail(database):
    """Ops at positions 1..10 (5 and 10 quarantined); event 2 releases position 5."""
    store_push(database, op_rows(device(1), range(1, 11)))
    store_release(database, [5], AT)
    assert verify(database).ok
    return database


def test_a_forged_release_is_reported(trail):
    with trail.engine.begin() as connection:
        row = {"op_position": 10, "released_by": 1, "released_at": LATER}
        connection.execute(insert(op_releases), [row])
    broken = verify(trail).broken
    assert (broken.kind, broken.event_id, broken.expected) == ("release", None, None)
    assert broken.found == "position 10 by user 1 at 2026-03-01T09:00:00.000000Z"


def test_a_deleted_release_is_reported_at_its_event(trail):
    execute(trail, "DELETE FROM op_releases")
    broken = verify(trail).broken
    assert (broken.kind, broken.event_id, broken.found) == ("release", 2, None)
    assert broken.expected == "position 5 by user 1 at 2026-03-01T08:20:00.000005Z"


@pytest.mark.parametrize(
    ("column", "value"),
    [("op_position", 10), ("released_by", 2), ("released_at", LATER)],
)
def test_an_edited_release_is_reported_at_its_event(trail, column, value):
    execute(trail, f"UPDATE op_releases SET {column} = :value", value=value)
    broken = verify(trail).broken
    assert (broken.kind, broken.event_id) == ("release", 2)
    assert broken.expected == "position 5 by user 1 at 2026-03-01T08:20:00.000005Z"
    assert broken.found != broken.expected


def test_a_second_release_of_one_op_is_reported(trail):
    with trail.session() as session:
        record_event(session, Action.QUARANTINE_RELEASED, "op", "5", {"position": 5}, 1)
    broken = verify(trail).broken
    assert (broken.kind, broken.event_id) == ("release", 3)


def test_a_rechained_release_event_without_a_position_is_reported(trail):
    execute(trail, """UPDATE audit_events SET details = '{"note":"x"}' WHERE id = 2""")
    head = rechain(trail, [1, 2])
    execute(trail, "UPDATE audit_chain_head SET head_hash = :h", h=head)
    broken = verify(trail).broken
    assert (broken.kind, broken.event_id) == ("release", 2)


def test_releases_stated_without_a_time_are_checked_on_position_and_releaser(database):
    """Release events written before their details carried `released_at`."""
    store_push(database, op_rows(device(1), range(1, 11)))
    with database.session() as session:
        session.execute(
            insert(op_releases), [{"op_position": 5, "released_by": 1, "released_at": AT}]
        )
        details = {"record_id": "r", "field": "f0", "position": 5}
        record_event(session, Action.QUARANTINE_RELEASED, "op", "x#5", details, 1)
    assert verify(database).ok
    assert "released_at" not in event_row(database, 2)["details"]
    execute(database, "UPDATE op_releases SET released_by = 2")
    assert (verify(database).broken.kind, verify(database).broken.event_id) == ("release", 2)


def test_the_first_mismatch_is_the_lowest_position():
    stated = {p: Release(p, 1, "t", event_id=p) for p in (2, 4, 6)}
    assert first_mismatch(stated, [Release(p, 1, "t") for p in (2, 4, 6)]) is None
    assert first_mismatch(stated, [Release(2, 1, "t"), Release(6, 1, "t")]).stated.position == 4
    assert first_mismatch(stated, [Release(p, 1, "t") for p in (2, 3, 4, 6)]).stored.position == 3
    assert first_mismatch(stated, [Release(p, 1, "t") for p in (2, 4)]).stated.position == 6
    assert first_mismatch({}, [Release(9, 1, "t")]).stored.position == 9
    differs = first_mismatch(stated, [Release(2, 1, "t"), Release(4, 1, "u")])
    assert (differs.stated.event_id, differs.stored.released_at) == (4, "u")
