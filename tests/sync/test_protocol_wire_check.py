"""`plainly_valid` may skip the JSON Schema only for ops the schema accepts."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mobile_schema.schemas import validate
from sync.protocol import MalformedRequest, parse_ops
from sync.wire_check import plainly_valid

GOOD = {
    "seq": 1,
    "record_id": "5b0c6a4e-8f1e-4b8e-9c53-1f0f6f3f2a10",
    "form_id": "household_visit",
    "form_version": 2,
    "grid_id": 14,
    "field": "people_met",
    "kind": "set",
    "value": "王芳",
    "hlc": "0000018c2f3a4b5c",
    "base": 1200,
}

odd_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**60), 2**60),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.lists(st.one_of(st.text(max_size=5), st.integers(), st.booleans(), st.none()), max_size=4),
    st.dictionaries(st.text(max_size=4), st.integers(), max_size=3),
)
names = st.one_of(
    st.sampled_from(["f", "_x", "people_met", "a.b-c", "名字", "9bad", "", "a\n", "x" * 129]),
    st.text(max_size=8),
)
changes = st.fixed_dictionaries(
    {},
    optional={
        "seq": st.one_of(st.integers(-2, 2**54), st.booleans(), st.floats(0, 3)),
        "record_id": st.sampled_from(["5B0C6A4E-8F1E-4B8E-9C53-1F0F6F3F2A10", "x", ""]),
        "form_id": names,
        "form_version": st.integers(-1, 2**32),
        "grid_id": st.one_of(st.integers(-1, 2**54), st.text(max_size=2)),
        "field": names,
        "kind": st.sampled_from(["set", "add", "remove", "SET", "", 1]),
        "value": odd_values,
        "hlc": st.sampled_from(["0000018c2f3a4b5c", "ffffffffffffffff", "0000018C2F3A4B5C", "1"]),
        "base": st.integers(-1, 2**54),
        "extra": st.integers(),
    },
)


@given(changes, st.lists(st.sampled_from(sorted(GOOD)), max_size=2))
def test_plainly_valid_implies_schema_valid(change, dropped):
    op = {**GOOD, **change}
    for key in dropped:
        op.pop(key, None)
    if plainly_valid(op):
        assert validate("op", op) == [], op


def test_everyday_ops_take_the_fast_path():
    everyday = [
        GOOD,
        {**GOOD, "value": 3},
        {**GOOD, "value": 2.5},
        {**GOOD, "value": None},
        {**GOOD, "value": True},
        {**GOOD, "kind": "add", "value": "medical"},
        {**GOOD, "value": ["a", "b"]},
    ]
    assert all(plainly_valid(op) for op in everyday)
    assert not plainly_valid({**GOOD, "value": {"sha256": "0" * 64, "size": 1}})
    assert not plainly_valid({**GOOD, "hlc": "XYZ"})
    # ten keys, one of them unknown in place of `base`
    swapped = {key: value for key, value in GOOD.items() if key != "base"} | {"bse": 1}
    assert not plainly_valid(swapped)


def test_parse_ops_reports_each_bad_op_by_path():
    ops = [GOOD, {**GOOD, "seq": True}, {**GOOD, "hlc": "8000000000000000"}]
    with pytest.raises(MalformedRequest) as refused:
        parse_ops("5b0c6a4e-8f1e-4b8e-9c53-1f0f6f3f2a11", ops)
    assert [e["path"] for e in refused.value.errors] == ["/ops/1/seq", "/ops/2/hlc"]
    (op,) = parse_ops("5b0c6a4e-8f1e-4b8e-9c53-1f0f6f3f2a11", [GOOD])
    assert (op.hlc, op.seq, op.value) == (0x0000018C2F3A4B5C, 1, "王芳")
