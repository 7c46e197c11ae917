"""Anchors in blob storage (local files and S3): a rewrite of the whole database shows."""

import json

import pytest
from sqlalchemy import select

from server.audit.anchors import PREFIX, AnchorError, read_anchors, write_anchor
from server.audit.verify import Anchor
from server.blobs import LocalBlobStore, S3BlobStore
from server.models import AuditEvent
from tests.audit.helpers import append_events, event_row, execute, rechain, verify


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path):
    if request.param == "local":
        yield LocalBlobStore(tmp_path / "blobs")
        return
    endpoint = request.getfixturevalue("moto_endpoint")
    blobs = S3BlobStore(request.getfixturevalue("s3_bucket"), "us-east-1", endpoint)
    yield blobs
    blobs.close()


def anchor(database, store):
    with database.session() as session:
        return write_anchor(session, store)


def rewrite_everything(database) -> None:
    """Edit event 2 and recompute every hash after it, and the head: a perfect forgery."""
    execute(database, "UPDATE audit_events SET details = :d WHERE id = 2", d='{"forged":true}')
    with database.engine.connect() as connection:
        ids = list(connection.scalars(select(AuditEvent.id).order_by(AuditEvent.id)))
    prev = rechain(database, ids)
    execute(database, "UPDATE audit_chain_head SET head_hash = :h", h=prev)


def test_an_anchor_names_the_head_and_is_itself_recorded(database, store):
    assert anchor(database, store) is None  # nothing to anchor yet
    append_events(database, 3)
    written = anchor(database, store)
    assert (written.event_id, written.hash) == (3, event_row(database, 3)["hash"])
    assert written.name.startswith(PREFIX)
    body = json.loads(store.read(written.name))
    assert (body["event_id"], body["hash"]) == (3, written.hash)
    recorded = event_row(database, 4)
    assert recorded["action"] == "audit.anchored"
    assert json.loads(recorded["details"])["key"] == written.name
    assert [a.event_id for a in read_anchors(store)] == [3]


def test_a_rewritten_database_passes_alone_but_not_against_its_anchors(database, store):
    append_events(database, 3)
    anchor(database, store)
    append_events(database, 2, start=3)
    anchor(database, store)
    report = verify(database, anchors=read_anchors(store))
    assert report.ok, report.broken
    assert report.anchors == 2
    rewrite_everything(database)
    assert verify(database).ok  # the chain alone cannot tell
    broken = verify(database, anchors=read_anchors(store)).broken
    assert (broken.kind, broken.event_id) == ("anchor", 3)
    assert broken.found == event_row(database, 3)["hash"]


def test_a_truncated_chain_is_shorter_than_its_anchor(database, store):
    append_events(database, 3)
    written = anchor(database, store)
    execute(database, "DELETE FROM audit_events WHERE id >= 3")
    execute(database, "UPDATE audit_chain_head SET last_event_id = 2, head_hash = :h",
            h=event_row(database, 2)["hash"])  # fmt: skip
    assert verify(database).ok
    broken = verify(database, anchors=read_anchors(store)).broken
    assert (broken.kind, broken.event_id, broken.expected, broken.found) == (
        "anchor",
        3,
        written.hash,
        None,
    )


def test_anchors_before_a_from_date_are_checked_too(database, store):
    import datetime as dt

    append_events(database, 3)
    anchor(database, store)
    rewrite_everything(database)
    since = dt.datetime(2999, 1, 1, tzinfo=dt.UTC)
    broken = verify(database, since=since, anchors=read_anchors(store)).broken
    assert (broken.kind, broken.event_id) == ("anchor", 3)


def test_several_anchors_of_one_event_must_all_match(database):
    """A retried anchoring (its first transaction lost) anchors the same head twice."""
    append_events(database, 3)
    stored = event_row(database, 2)["hash"]
    twice = [Anchor(2, stored, "first"), Anchor(2, stored, "retry")]
    report = verify(database, anchors=twice)
    assert report.ok, report.broken
    assert report.anchors == 2
    broken = verify(database, anchors=[*twice, Anchor(2, "f" * 64, "forged")]).broken
    assert (broken.kind, broken.event_id, broken.expected) == ("anchor", 2, "f" * 64)
    assert "(forged)" in broken.detail


def test_an_unreadable_anchor_is_refused(store):
    store.put(f"{PREFIX}bad.json", b"not json", content_type="application/json")
    with pytest.raises(AnchorError, match=r"bad\.json"):
        read_anchors(store)


def test_the_daily_task_anchors_through_the_app(app, database):
    from server.audit import anchor_chain
    from server.blobs import blob_store

    append_events(database, 2)
    with app.app_context():
        result = anchor_chain.delay().get()
        assert result["event_id"] == 2
        assert [a.event_id for a in read_anchors(blob_store())] == [2]
