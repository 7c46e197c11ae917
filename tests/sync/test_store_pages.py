"""Pull and snapshot pages built as JSON by the database say what the decoded rows say.

The sync API sends each change as the JSON text the database builds (`page_texts`);
the reference comparisons use the decoded rows (`page_rows`). Both must give the same
changes, cursors and `more` for any stored value, scope and page size.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from forms.unicode import unstorable_path
from sync import hlc
from sync.messages import Change
from sync.ops import Op
from sync.protocol import PageReply
from sync.store import reading
from sync.store.server import SqlServer
from sync.wire_check import NAME
from tests.sync.backends import clear_store

DEVICE = "00000000-0000-4000-a000-0000000000d1"
RECORDS = [f"00000000-0000-4000-8000-{n:012x}" for n in range(1, 5)]
TRICKY = [
    None,
    True,
    False,
    0,
    -5,
    2**53 - 1,
    1.5,
    -0.25,
    1e16,
    "",
    "plain",
    'quote " and \\ backslash',
    "王芳 ✓ Ölçü",
    "line\nbreak\ttab\u0001",
    ["a", "b"],
    {"sha256": "0" * 64, "size": 3, "content_type": "image/jpeg"},
    {"latitude": 1.5, "longitude": -2.25},
    [1, [2, {"x": None}]],
]
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False, width=32)
    | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=6,
)


def any_field(_op: Op) -> None:
    """Every value is valid: these tests are about how stored values are served."""


def server_for(database) -> SqlServer:
    clear_store(database.engine)
    return SqlServer(database.engine, lambda form_id: {1}, any_field, wall=lambda: 1 << 40)


def push_values(server: SqlServer, values: list) -> None:
    ops = [
        Op(
            DEVICE,
            seq,
            RECORDS[seq % len(RECORDS)],
            "any",
            1,
            1 + seq % 3,
            f"f{seq % 7}",
            "set",
            value,
            hlc.pack(1 << 30, seq),
            0,
        )
        for seq, value in enumerate(values, start=1)
    ]
    result = server.push(DEVICE, ops)
    assert result.applied == len(ops)


def walk(server: SqlServer, scope, limit: int, *, whole: bool) -> list:
    """Every page from cursor 0 both ways, as (changes, cursor, more) pairs."""
    read = reading.snapshot_rows if whole else reading.pull_rows
    pages = []
    cursor = 0
    while True:
        with server.engine.begin() as connection:
            rows, next_rows, more_rows, _ = read(connection, scope, cursor, limit)
            texts, next_texts, more_texts, server_hlc = read(
                connection, scope, cursor, limit, fetch=reading.page_texts
            )
        decoded = [Change(*row).to_wire() for row in rows]
        reply = PageReply([text for _position, text in texts], next_texts, more_texts, server_hlc)
        sent = json.loads(reply.encode())
        pages.append(
            ((decoded, next_rows, more_rows), (sent["changes"], sent["cursor"], sent["more"]))
        )
        cursor = next_rows
        if not more_rows:
            return pages


@pytest.mark.parametrize("whole", [False, True])
def test_json_pages_match_decoded_rows(database, whole):
    server = server_for(database)
    push_values(server, TRICKY)
    for scope in (None, {1}, {2, 3}, set()):
        for limit in (1, 4, 1000):
            for from_rows, from_texts in walk(server, scope, limit, whole=whole):
                assert from_texts == from_rows


# Each example is a push and a walk through the pages on a real database: the profile's
# count, at most 200.
@settings(
    max_examples=min(200, settings.default.max_examples),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(values=st.lists(json_values, min_size=1, max_size=12))
def test_any_stored_value_is_served_alike(database, values):
    server = server_for(database)
    push_values(server, values)
    for from_rows, from_texts in walk(server, None, 5, whole=False):
        assert from_texts == from_rows


# Names as the protocol admits them (PostgreSQL's pages put them between quotes as they
# are), without the lone surrogates a request body may not hold.
names = st.from_regex(NAME, fullmatch=True).filter(lambda name: unstorable_path(name) is None)


@settings(
    max_examples=min(100, settings.default.max_examples),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
# A field name starting with "_" is a reserved field, which only takes its own values.
@given(
    form_id=names,
    fields=st.lists(
        names.filter(lambda name: not name.startswith("_")), min_size=1, max_size=5, unique=True
    ),
)
def test_any_protocol_name_is_served_alike(database, form_id, fields):
    server = server_for(database)
    ops = [
        Op(DEVICE, seq, RECORDS[0], form_id, 1, 1, field, "set", seq, hlc.pack(1 << 30, seq), 0)
        for seq, field in enumerate(fields, start=1)
    ]
    assert server.push(DEVICE, ops).applied == len(ops)
    for from_rows, from_texts in walk(server, None, 3, whole=False):
        assert from_texts == from_rows
        assert {change["field"] for change in from_texts[0]} <= set(fields)
