"""Stored values keep their exact meaning on both backends: retries, conflicts, pages.

The value columns keep each value's JSON text as sent on both backends (on SQLite they
have no type affinity). Rows stored before that (migration 0010) hold a number as an
INTEGER or REAL, which SQLite prints with 15 significant digits: the store must never
compare or serve such a value by that print.
"""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sync import hlc
from sync.ops import Op
from sync.replica import ServerReplica
from sync.store import reading
from sync.store.server import SqlServer
from sync.store.sql import encode_json
from tests.sync.backends import clear_store

A = "00000000-0000-4000-a000-0000000000a1"
B = "00000000-0000-4000-a000-0000000000b2"
RECORD = "00000000-0000-4000-8000-0000000000e1"
# Each needs 16 or 17 significant digits, or is a float with an integral value.
FLOATS = [0.004999999888241291, 0.1 + 0.2, 123456789.12345678, 1.7976931348623157e308, 2.0]


def servers(database) -> tuple[SqlServer, ServerReplica]:
    clear_store(database.engine)
    wall = lambda: 1 << 40  # noqa: E731
    store = SqlServer(database.engine, lambda form_id: {1}, lambda op: None, wall=wall)
    return store, ServerReplica(lambda form_id: {1}, lambda op: None, wall=wall)


def op(device: str, seq: int, field: str, value, base: int = 0) -> Op:
    return Op(device, seq, RECORD, "any", 1, 1, field, "set", value, hlc.pack(1 << 30, seq), base)


def test_a_retry_with_precise_floats_is_a_duplicate(database):
    store, _model = servers(database)
    sent = [op(A, n, f"f{n}", value) for n, value in enumerate(FLOATS, start=1)]
    assert store.push(A, sent).applied == len(sent)
    again = store.push(A, sent)
    assert (again.applied, again.duplicate) == (0, len(sent))


@pytest.mark.parametrize("value", FLOATS[:4])
def test_floats_differing_past_15_digits_conflict_like_the_model(database, value):
    store, model = servers(database)
    nearby = math.nextafter(value, 0)  # the next float towards zero
    for server in (store, model):
        server.push(A, [op(A, 1, "same", value), op(A, 2, "close", value)])
        server.push(B, [op(B, 1, "same", value), op(B, 2, "close", nearby)])
    assert store.conflicts() == {
        row.conflict.ident: row.resolved for row in model.conflicts.values()
    }
    assert [ident[1] for ident in store.conflicts()] == ["close"]


def test_pages_serve_precise_floats(database):
    store, _model = servers(database)
    store.push(A, [op(A, n, f"f{n}", value) for n, value in enumerate(FLOATS, start=1)])
    with database.engine.begin() as connection:
        rows, _cursor, _more, _hlc = reading.pull_rows(
            connection, None, 0, 100, fetch=reading.page_texts
        )
    served = {json.loads(row.text)["field"]: json.loads(row.text)["value"] for row in rows}
    assert served == {f"f{n}": value for n, value in enumerate(FLOATS, start=1)}


# JSON numbers a column with numeric affinity would change: integral floats become
# integers, an integer beyond 64 bits a REAL (inexact past 2^53), -0.0 plain 0.
EXACT = [2.0, -0.0, 1e16, 12345678901234567891, -(2**70) - 1]


def test_numbers_come_back_as_sent(database):
    store, model = servers(database)
    sent = [op(A, n, f"f{n}", value) for n, value in enumerate(EXACT, start=1)]
    for server in (store, model):
        assert server.push(A, sent).applied == len(sent)
    with database.engine.begin() as connection:
        rows, _cursor, _more, _hlc = reading.pull_rows(
            connection, None, 0, 100, fetch=reading.page_texts
        )
    served = {json.loads(row.text)["field"]: row.text for row in rows}
    for n, value in enumerate(EXACT, start=1):
        assert f'"value":{json.dumps(value)},' in served[f"f{n}"]
    stored = {slot: json.dumps(state.value) for slot, state in store.state().items()}
    assert stored == {slot: json.dumps(state.value) for slot, state in model.state().items()}
    assert [json.dumps(entry.op.value) for entry in store.log()] == list(map(json.dumps, EXACT))


def test_one_and_one_point_zero_conflict_like_the_model(database):
    store, model = servers(database)
    for server in (store, model):
        server.push(A, [op(A, 1, "count", 1), op(A, 2, "same", 1.0)])
        server.push(B, [op(B, 1, "count", 1.0), op(B, 2, "same", 1.0)])
    assert store.conflicts() == {
        row.conflict.ident: row.resolved for row in model.conflicts.values()
    }
    assert [ident[1] for ident in store.conflicts()] == ["count"]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


@given(json_values | st.lists(st.text(), max_size=6))
def test_the_stored_json_text_is_exactly_json_dumps(value):
    assert encode_json(value) == json.dumps(value)
