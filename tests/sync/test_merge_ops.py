"""Ops on the wire: parsing, the canonical content that tells a retry from a reuse."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mobile_schema.schemas import validate
from sync.ops import MalformedOp, Op, canonical_json

WIRE = {
    "seq": 17,
    "record_id": "5b0c6a4e-8f1e-4b8e-9c53-1f0f6f3f2a10",
    "form_id": "household",
    "form_version": 2,
    "grid_id": 14,
    "field": "head_name",
    "kind": "set",
    "value": "王芳",
    "hlc": "0000018c2f3a4b5c",
    "base": 1200,
}

values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=6,
)


def test_wire_round_trip_and_schema() -> None:
    op = Op.from_wire(WIRE, "dev")
    assert op.to_wire() == WIRE
    assert validate("op", op.to_wire()) == []
    assert op.hlc == 0x18C2F3A4B5C
    assert op.op_id == ("dev", 17)


@given(values)
def test_content_is_stable_and_tells_values_apart(value) -> None:
    op = Op.from_wire({**WIRE, "value": value}, "dev")
    again = Op.from_wire(dict(reversed(list({**WIRE, "value": value}.items()))), "dev")
    assert op.content() == again.content()
    assert op.digest() == again.digest()
    other = Op.from_wire({**WIRE, "value": [value, 1]}, "dev")
    assert other.digest() != op.digest()


def test_content_tells_every_key_apart() -> None:
    base = Op.from_wire(WIRE, "dev").digest()
    changes = {
        "seq": 18,
        "grid_id": 15,
        "base": 0,
        "hlc": "0000018c2f3a4b5d",
        "value": "王",
        "kind": "add",
        "field": "x",
        "form_version": 1,
        "form_id": "hazard",
    }
    for key, value in changes.items():
        assert Op.from_wire({**WIRE, key: value}, "dev").digest() != base, key
    # numbers keep their JSON spelling: 1 and 1.0 are different contents
    one = Op.from_wire({**WIRE, "value": 1}, "dev").content()
    assert one != Op.from_wire({**WIRE, "value": 1.0}, "dev").content()
    assert canonical_json({"b": 1, "a": "é"}) == '{"a":"é","b":1}'


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"seq": 0}, "seq"),
        ({"seq": True}, "seq"),
        ({"base": -1}, "base"),
        ({"grid_id": "14"}, "grid_id"),
        ({"record_id": "5B0C6A4E-8F1E-4B8E-9C53-1F0F6F3F2A10"}, "record_id"),
        ({"kind": "delete"}, "kind"),
        ({"hlc": "xyz"}, "hlc"),
        ({"value": float("nan")}, "value"),
        ({"extra": 1}, "extra"),
        ({"field": ""}, "field"),
    ],
)
def test_malformed_ops_name_their_key(change, key) -> None:
    with pytest.raises(MalformedOp) as caught:
        Op.from_wire({**WIRE, **change}, "dev")
    assert caught.value.key == key


def test_a_missing_key_is_named() -> None:
    data = dict(WIRE)
    del data["base"]
    with pytest.raises(MalformedOp) as caught:
        Op.from_wire(data, "dev")
    assert caught.value.key == "base"
