"""A push's ops hashed as the store wrote them: the same hash verify reads back."""

import datetime as dt
import hashlib
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select

from server.audit.chain import op_line
from server.audit.covered_ops import OpRange, digest_range, digest_rows
from server.models import AuditEvent
from tests.audit.helpers import verify
from tests.sync.http_support import make_world, phone, record_id

texts = st.text(st.characters(exclude_categories=["Cs"]), max_size=12)
rows = st.lists(
    st.tuples(
        st.integers(1, 2**62),
        texts,
        st.integers(1, 2**53),
        st.integers(1, 2**31),
        texts,
        texts,
        st.integers(1, 2**31),
        st.integers(1, 2**53),
        texts,
        st.sampled_from(["set", "add", "remove"]),
        texts,
        st.integers(0, 2**63 - 1),
        st.integers(0, 2**53),
        st.none() | texts,
        st.none() | texts,
        st.datetimes(timezones=st.just(dt.UTC)),
    ),
    max_size=8,
)


@given(rows)
def test_the_written_out_lines_are_op_line(rows):
    expected = hashlib.sha256("".join(op_line(list(row)) for row in rows).encode()).hexdigest()
    found = digest_rows(rows)
    assert (found.count, found.ops_hash) == (len(rows), expected)
    assert found.grid_ids == {row[7] for row in rows}


@pytest.fixture
def world(database):
    return make_world(database)


# Values whose stored text is easy to get wrong: a column with numeric affinity would
# keep the float and the integer beyond 64 bits as REALs, printed back differently.
TRICKY = ["王芳 😀", 'a|b:"c"\\d\n\te', "", 7, -(2**53), True, None, ["x", 1.5], {"k": "v"}]
NUMBERS = [0.1 + 0.2, 1e16, -0.0, 2.0, 2**64]


@pytest.mark.parametrize("extra", [[], NUMBERS], ids=["verbatim", "numbers"])
def test_a_push_hash_is_what_verify_reads_back(client, world, database, extra):
    worker = phone(client, world, "worker")
    grid = world.grids["S-C1-R1-G1"]
    rid = record_id()
    # Most of these are quarantined (wrong type, unknown field): stored and hashed all
    # the same, with their reasons and details.
    ops = [worker.op(rid, "people_met", value, grid=grid) for value in TRICKY + extra]
    ops.append(worker.op(rid, "名字", "x", grid=grid))  # text counted in characters
    reply = worker.push(ops)
    assert reply["acked_seq"] == len(ops)
    assert reply["applied"] >= 2
    assert reply["quarantined"]

    report = verify(database)
    assert report.ok, report.broken
    assert report.ops == len(ops)
    with database.engine.connect() as connection:
        event = connection.execute(
            select(AuditEvent.details, AuditEvent.device_id).where(AuditEvent.action == "sync.push")
        ).one()
        details, device_id = json.loads(event.details), event.device_id
        read_back = digest_range(connection, OpRange(device_id, 1, len(ops)))
    assert details["count"] == read_back.count == len(ops)
    assert details["ops_hash"] == read_back.ops_hash


def test_stored_ops_out_of_seq_order_hash_as_in_order(database):
    from server.audit import record_push
    from sync.ops import Op, StoredOp

    device = "00000000-0000-4000-a000-000000000001"
    record = "00000000-0000-4000-8000-000000000001"
    entries = [
        StoredOp(Op(device, seq, record, "household", 1, 1, "f", "set", seq, seq, 0), seq)
        for seq in range(1, 6)
    ]
    at = dt.datetime(2026, 11, 26, 6, 0, tzinfo=dt.UTC)
    with database.session() as session:
        events = [
            record_push(session, device, 1, ordered, received_at=at)
            for ordered in (entries, entries[::-1])
        ]
        hashes = {json.loads(event.details_json)["ops_hash"] for event in events}
        session.rollback()
    assert len(hashes) == 1
