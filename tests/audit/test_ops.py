"""Ops covered by push events: recording, verifying, and tampering with stored ops."""

import datetime as dt
import json

import pytest
from sqlalchemy import select

from server.audit import AuditError, record_push
from server.models import AuditEvent, AuditEventGrid
from tests.audit.factories import device, op_rows, store_push
from tests.audit.helpers import event_row, execute, rechain, verify

A, B = device(1), device(2)


@pytest.fixture
def pushes(database):
    """Three pushes: A 1..4, B 1..3, A 5..9 (events 1, 2, 3)."""
    store_push(database, op_rows(A, range(1, 5)))
    store_push(database, op_rows(B, range(1, 4), user_id=2))
    store_push(database, op_rows(A, range(5, 10)))
    report = verify(database)
    assert report.ok, report.broken
    assert (report.events, report.ops) == (3, 12)
    return database


def push_hash(database, event_id):
    return json.loads(event_row(database, event_id)["details"])["ops_hash"]


def test_a_push_event_carries_its_range_count_hash_and_grids(pushes):
    row = event_row(pushes, 3)
    details = json.loads(row["details"])
    assert (row["action"], row["target_type"], row["target_id"]) == ("sync.push", "device", A)
    assert (row["device_id"], row["user_id"]) == (A, 1)
    assert (details["seq_from"], details["seq_to"], details["count"]) == (5, 9, 5)
    assert len(details["ops_hash"]) == 64
    assert details["grid_ids"] == [1, 2, 3]
    with pushes.session() as session:
        grids = session.scalars(select(AuditEventGrid.grid_id).where(AuditEventGrid.event_id == 3))
        assert sorted(grids) == [1, 2, 3]


def test_a_push_that_stored_nothing_appends_nothing(database):
    with database.session() as session:
        assert record_push(session, A, 1, []) is None
        assert session.scalar(select(AuditEvent.id)) is None


def test_a_push_must_be_recorded_after_its_ops_are_stored(database):
    with pytest.raises(AuditError, match="stored"), database.session() as session:
        record_push(session, A, 1, [{"seq": 1}, {"seq": 2}])


def test_a_push_is_one_unbroken_run_of_seqs(database):
    with pytest.raises(AuditError, match="unbroken"), database.session() as session:
        record_push(session, A, 1, [{"seq": 1}, {"seq": 3}])


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("value", '"forged"'),
        ("field", "f9"),
        ("grid_id", 77),
        ("hlc", 1),
        ("base", 3),
        ("reason", "clock_ahead"),
        ("user_id", 9),
        ("record_id", "00000000-0000-0000-0000-00000000abcd"),
    ],
)
def test_an_edited_op_is_reported_at_its_push(pushes, column, value):
    recorded = push_hash(pushes, 3)
    execute(pushes, f"UPDATE ops SET {column} = :v WHERE device_id = :d AND seq = 6", v=value, d=A)
    broken = verify(pushes).broken
    assert (broken.kind, broken.event_id, broken.expected) == ("ops", 3, recorded)
    assert broken.found != recorded


def test_an_edited_arrival_time_is_reported(pushes):
    earlier = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
    execute(
        pushes, "UPDATE ops SET received_at = :t WHERE device_id = :d AND seq = 2", t=earlier, d=A
    )
    broken = verify(pushes).broken
    assert (broken.kind, broken.event_id) == ("ops", 1)


def test_a_deleted_op_is_reported_at_its_push(pushes):
    execute(pushes, "DELETE FROM ops WHERE device_id = :d AND seq = 2", d=B)
    broken = verify(pushes).broken
    assert (broken.kind, broken.event_id) == ("ops", 2)
    assert "3 claimed, 2 stored" in broken.detail


def test_reordered_ops_are_reported_at_their_push(pushes):
    execute(pushes, "UPDATE ops SET seq = 100 WHERE device_id = :d AND seq = 6", d=A)
    execute(pushes, "UPDATE ops SET seq = 6 WHERE device_id = :d AND seq = 7", d=A)
    execute(pushes, "UPDATE ops SET seq = 7 WHERE device_id = :d AND seq = 100", d=A)
    broken = verify(pushes).broken
    assert (broken.kind, broken.event_id) == ("ops", 3)


def test_an_op_inserted_inside_a_push_is_reported_at_that_push(pushes):
    # Make room at seq 3 of B by shifting the later seqs, then insert a forged op.
    execute(pushes, "UPDATE ops SET seq = seq + 100 WHERE device_id = :d AND seq >= 3", d=B)
    execute(pushes, "UPDATE ops SET seq = seq - 99 WHERE device_id = :d AND seq >= 100", d=B)
    forged = op_rows(B, [3], user_id=2)[0]
    execute(
        pushes,
        "INSERT INTO ops (position, device_id, seq, user_id, record_id, form_id, form_version,"
        " grid_id, field, kind, value, hlc, base) VALUES (100, :device_id, :seq, :user_id,"
        " :record_id, :form_id, :form_version, :grid_id, :field, :kind, '\"forged\"', :hlc, :base)",
        **forged,
    )
    broken = verify(pushes).broken
    assert (broken.kind, broken.event_id) == ("ops", 2)


def test_an_op_appended_after_the_fact_is_reported_as_uncovered(pushes):
    forged = op_rows(B, [4], user_id=2)[0]
    execute(
        pushes,
        "INSERT INTO ops (position, device_id, seq, user_id, record_id, form_id, form_version,"
        " grid_id, field, kind, value, hlc, base) VALUES (100, :device_id, :seq, :user_id,"
        " :record_id, :form_id, :form_version, :grid_id, :field, :kind, '\"forged\"', :hlc, :base)",
        **forged,
    )
    broken = verify(pushes).broken
    assert broken.kind == "uncovered_op"
    assert f"op seq 4 of device {B} (position 100)" in broken.detail


def test_the_first_tampered_push_is_the_one_reported(pushes):
    execute(pushes, "UPDATE ops SET value = '1' WHERE device_id = :d AND seq = 9", d=A)
    execute(pushes, "UPDATE ops SET value = '1' WHERE device_id = :d AND seq = 1", d=B)
    assert verify(pushes).broken.event_id == 2


def test_an_ops_break_before_an_event_break_is_reported_first(pushes):
    execute(pushes, "UPDATE ops SET value = '1' WHERE device_id = :d AND seq = 1", d=A)
    execute(pushes, "UPDATE audit_events SET details = '{}' WHERE id = 3")
    broken = verify(pushes).broken
    assert (broken.kind, broken.event_id) == ("ops", 1)


@pytest.mark.parametrize(
    "details",
    ['{"note":"x"}', "[]", '{"count":3,"ops_hash":"h","seq_from":"1","seq_to":3}'],
)
def test_a_rechained_push_event_with_malformed_details_is_reported(pushes, details):
    execute(pushes, "UPDATE audit_events SET details = :d WHERE id = 2", d=details)
    prev = rechain(pushes, [1, 2, 3])
    execute(pushes, "UPDATE audit_chain_head SET head_hash = :h", h=prev)
    broken = verify(pushes).broken
    assert (broken.kind, broken.event_id) == ("ops", 2)
    assert "do not give seq_from, seq_to, count, ops_hash" in broken.detail


def test_a_removed_push_event_shows_even_when_the_chain_is_rebuilt(pushes):
    # Whoever deletes event 2 and re-hashes the chain after it still leaves B's ops
    # outside every push.
    execute(pushes, "DELETE FROM audit_event_grids WHERE event_id = 2")
    execute(pushes, "DELETE FROM audit_events WHERE id = 2")
    execute(pushes, "UPDATE audit_events SET id = 2 WHERE id = 3")
    prev = rechain(pushes, [1, 2])
    execute(pushes, "UPDATE audit_chain_head SET last_event_id = 2, head_hash = :h", h=prev)
    broken = verify(pushes).broken
    assert broken.kind == "uncovered_op"
    assert f"op seq 1 of device {B}" in broken.detail


def test_the_database_builds_the_reference_line_of_each_op(database):
    from sqlalchemy import Text, cast

    from server.audit.chain import op_line
    from server.audit.covered_ops import COVERED, op_lines
    from sync.store.tables import ops

    rows = op_rows(A, range(1, 9))
    rows[1]["detail"] = "naïve | 王 ~ 1:x"
    rows[2]["field"] = "f|2"
    store_push(database, rows[:4], received_at=dt.datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=dt.UTC))
    store_push(database, rows[4:])  # the table's own default time: no fraction on SQLite
    columns = [cast(ops.c.value, Text) if n == "value" else ops.c[n] for n, _kind in COVERED]
    with database.engine.connect() as connection:
        stored = connection.execute(select(*columns).order_by(ops.c.seq)).all()
        lines = op_lines(connection)
    assert len(stored) == len(lines) == 8
    for values, line in zip(stored, lines, strict=True):
        values = list(values)
        at = values[-1]
        values[-1] = at if at.tzinfo else at.replace(tzinfo=dt.UTC)
        assert line == op_line(values)
    assert "|2026-01-02T03:04:05.000006Z|" in lines[0]


@pytest.mark.parametrize("db_backend", ["sqlite"], indirect=True)
@pytest.mark.parametrize("column", ["record_id", "form_id", "field", "kind", "value", "detail"])
def test_a_nul_and_text_after_it_are_reported_on_sqlite(pushes, column):
    # printf('%s') and length() stop at a NUL: the appended text must count all the same.
    recorded = push_hash(pushes, 3)
    tampered = f"{column} || char(0) || 'x'"
    execute(pushes, f"UPDATE ops SET {column} = {tampered} WHERE device_id = :d AND seq = 5", d=A)
    broken = verify(pushes).broken
    assert (broken.kind, broken.event_id, broken.expected) == ("ops", 3, recorded)


@pytest.mark.parametrize("db_backend", ["sqlite"], indirect=True)
def test_sqlite_builds_the_reference_line_of_text_holding_a_nul(database):
    from sqlalchemy import Text, cast

    from server.audit.chain import op_line
    from server.audit.covered_ops import COVERED, op_lines
    from sync.store.tables import ops

    rows = op_rows(A, range(1, 3))
    rows[0]["field"] = "f\x00王"
    rows[1]["detail"] = "a\x00|b"
    at = dt.datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=dt.UTC)
    store_push(database, rows, received_at=at)
    with database.engine.connect() as connection:
        columns = [cast(ops.c.value, Text) if n == "value" else ops.c[n] for n, _ in COVERED]
        stored = connection.execute(select(*columns[:-1]).order_by(ops.c.seq)).all()
        lines = op_lines(connection)
    assert lines == [op_line([*values, at]) for values in stored]
    assert verify(database).ok


def test_verify_from_a_date_after_the_last_event_is_ok(pushes):
    report = verify(pushes, since=dt.datetime(2999, 1, 1, tzinfo=dt.UTC))
    assert report.ok, report.broken
    assert (report.events, report.last_id) == (0, 3)


def test_the_range_digest_is_sha256_of_the_lines_in_seq_order(pushes):
    import hashlib

    from server.audit.covered_ops import OpRange, digest_range, digest_ranges, op_lines
    from sync.store.tables import ops

    ranges = [OpRange(A, 1, 4), OpRange(B, 1, 3), OpRange(A, 5, 9), OpRange(B, 50, 60)]
    with pushes.engine.connect() as connection:
        found = digest_ranges(connection, ranges)
        lines = {
            device_id: op_lines(connection, ops.c.device_id == device_id) for device_id in (A, B)
        }
    a_first = "".join(lines[A][:4]).encode()
    assert found[ranges[0]].ops_hash == hashlib.sha256(a_first).hexdigest()
    assert found[ranges[0]].ops_hash == push_hash(pushes, 1)
    assert (found[ranges[1]].count, found[ranges[2]].count) == (3, 5)
    with pushes.engine.connect() as connection:
        one = digest_range(connection, ranges[2])
    assert (one.count, one.ops_hash, one.grid_ids) == (5, found[ranges[2]].ops_hash, {1, 2, 3})
    assert (found[ranges[3]].count, found[ranges[3]].ops_hash) == (
        0,
        hashlib.sha256(b"").hexdigest(),
    )
