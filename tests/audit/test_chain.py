"""Canonical serialisation and hashing, without a database."""

import datetime as dt
import hashlib
import json
import math
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.audit.chain import (
    GENESIS_HASH,
    canonical_json,
    chain_hash,
    event_bytes,
    format_time,
    op_line,
)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
times = st.datetimes(
    min_value=dt.datetime(2000, 1, 1), max_value=dt.datetime(2100, 1, 1), timezones=st.just(dt.UTC)
)


def test_canonical_json_sorts_keys_drops_whitespace_and_keeps_utf8():
    text = canonical_json({"b": [1, 2.5], "a": {"z": None, "y": "王芳"}})
    assert text == '{"a":{"y":"王芳","z":null},"b":[1,2.5]}'
    assert "王芳".encode() in text.encode()


def test_times_are_explicit_utc_strings_whatever_their_zone():
    east = dt.timezone(dt.timedelta(hours=8))
    moment = dt.datetime(2026, 5, 1, 16, 30, 0, 5, tzinfo=east)
    assert format_time(moment) == "2026-05-01T08:30:00.000005Z"
    assert format_time(moment.astimezone(dt.UTC).replace(tzinfo=None)) == format_time(moment)
    assert canonical_json({"at": moment}) == '{"at":"2026-05-01T08:30:00.000005Z"}'


def test_uuids_dates_and_sets_have_one_form():
    value = {"id": uuid.UUID(int=1), "on": dt.date(2026, 1, 2), "tags": {"b", "a"}}
    assert json.loads(canonical_json(value)) == {
        "id": "00000000-0000-0000-0000-000000000001",
        "on": "2026-01-02",
        "tags": ["a", "b"],
    }


@pytest.mark.parametrize("bad", [math.nan, math.inf, object(), b"bytes"])
def test_values_without_one_canonical_form_are_refused(bad):
    with pytest.raises((TypeError, ValueError)):
        canonical_json({"x": bad})


@given(json_values)
def test_canonical_json_is_a_fixed_point(value):
    text = canonical_json(value)
    assert canonical_json(json.loads(text)) == text


@given(
    st.integers(min_value=1, max_value=2**62),
    times,
    st.none() | st.integers(min_value=0, max_value=2**31),
    st.none() | st.uuids().map(str),
    st.text(min_size=1),
    st.text(min_size=1),
    st.none() | st.text(),
    st.dictionaries(st.text(), json_values, max_size=4),
)
def test_the_fast_event_form_equals_the_canonical_json_of_the_event(
    event_id, occurred_at, user_id, device_id, action, target_type, target_id, details
):
    details_json = canonical_json(details)
    fast = event_bytes(
        event_id, occurred_at, user_id, device_id, action, target_type, target_id, details_json
    )
    slow = canonical_json(
        {
            "id": event_id,
            "occurred_at": occurred_at,
            "user_id": user_id,
            "device_id": device_id,
            "action": action,
            "target_type": target_type,
            "target_id": target_id,
            "details": details,
        }
    ).encode()
    assert fast == slow


def test_the_hash_chains_the_previous_hash_and_the_event():
    content = b'{"id":1}'
    expected = hashlib.sha256(GENESIS_HASH.encode() + content).hexdigest()
    assert chain_hash(GENESIS_HASH, content) == expected
    assert chain_hash(expected, content) != expected


def test_an_op_line_frames_text_by_length():
    at = dt.datetime(2026, 5, 1, 8, 30, tzinfo=dt.UTC)
    line = op_line([7, "dev|1", None, '{"a":"|"}', at])
    assert line == '7|5:dev|1|~|9:{"a":"|"}|2026-05-01T08:30:00.000000Z|\n'
    assert op_line(["ab", "c"]) != op_line(["a", "bc"])
    assert op_line([None]) != op_line(["null"]) != op_line([""])
    with pytest.raises(TypeError):
        op_line([1.5])
