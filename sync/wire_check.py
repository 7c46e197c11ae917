"""A fast acceptance test for wire ops, so that a push need not run the JSON Schema per op.

`plainly_valid(op)` is True only for ops that `mobile_schema/schemas/op.json` accepts
(a property test holds it to that), and it is True for the ops devices send every
day: scalar values and lists of choices. Anything else, including every op the schema
refuses, goes to the JSON Schema validator, which names the failing paths. The
general validator spends most of a millisecond per op; this spends a microsecond.
"""

from __future__ import annotations

import math
import re
from typing import Any

from sync.ops import KINDS, WIRE_KEYS

MAX_SAFE_INT = 2**53 - 1
MAX_INT32 = 2**31 - 1  # form versions and grid ids: the server keeps them in INTEGER columns
MAX_TEXT = 65536
MAX_LIST = 1000
MAX_ITEM_TEXT = 1000
_KEY_COUNT = len(frozenset(WIRE_KEYS))
_KINDS = frozenset(KINDS)
# The schema's name and field patterns, anchored at both ends (the schema's `$` would also
# allow a trailing newline, which this refuses: refusing more is safe here). No name
# holds a character JSON must escape, which pull pages on PostgreSQL rely on.
NAME = re.compile("[A-Za-z_\u00c0-\uffff][A-Za-z0-9_.\\-\u00b7\u00c0-\uffff]{0,127}")
# A field's name, or the path a question whose name repeats in several groups is keyed by.
FIELD = re.compile("[A-Za-z_\u00c0-\uffff][A-Za-z0-9_.\\-/\u00b7\u00c0-\uffff]{0,127}")
_UUID = re.compile("[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_HLC = re.compile("[0-9a-f]{16}")


def _int_in(value: Any, low: int, high: int) -> bool:
    return type(value) is int and low <= value <= high


def _plain_value(value: Any) -> bool:
    kind = type(value)
    if value is None or kind is bool or kind is int:
        return True
    if kind is float:
        return math.isfinite(value)
    if kind is str:
        return len(value) <= MAX_TEXT
    if kind is list:
        if len(value) > MAX_LIST:
            return False
        for item in value:
            item_kind = type(item)
            if item_kind is str:
                if len(item) > MAX_ITEM_TEXT:
                    return False
            elif item_kind is not int and not (item_kind is float and math.isfinite(item)):
                return False
        return True
    return False  # objects (attachments, points) take the full schema


def plainly_valid(op: Any) -> bool:
    """True only if the schema accepts this op; False means 'ask the schema'."""
    return plain_fields(op) is not None


def plain_fields(op: Any) -> tuple | None:
    """The op's content in `Op` field order after the device (the HLC as an int) when
    it is plainly valid, else None: one pass both checks the op and reads it."""
    # Ten entries holding the ten keys are exactly the ten keys: cheaper than comparing
    # the key sets.
    if type(op) is not dict or len(op) != _KEY_COUNT:
        return None
    try:
        seq, base, grid_id, version = op["seq"], op["base"], op["grid_id"], op["form_version"]
        record_id, form_id, field, kind = op["record_id"], op["form_id"], op["field"], op["kind"]
        hlc, value = op["hlc"], op["value"]
    except KeyError:
        return None
    if (
        type(seq) is not int
        or type(base) is not int
        or type(grid_id) is not int
        or type(version) is not int
        or not (1 <= seq <= MAX_SAFE_INT and 0 <= base <= MAX_SAFE_INT)
        or not (1 <= grid_id <= MAX_INT32 and 1 <= version <= MAX_INT32)
        or type(record_id) is not str
        or type(form_id) is not str
        or type(field) is not str
        or type(hlc) is not str
        or type(kind) is not str
        or kind not in _KINDS
        or _HLC.fullmatch(hlc) is None
        # the set lookups inline: a push repeats its record ids and names
        or not (record_id in _uuids or _learn(_uuids, _UUID, record_id))
        or not (form_id in _names or _learn(_names, NAME, form_id))
        or not (field in _fields or _learn(_fields, FIELD, field))
        or not _plain_value(value)
    ):
        return None
    return (seq, record_id, form_id, version, grid_id, field, kind, value, int(hlc, 16), base)


# Texts already found to match, so that the names and record ids a push repeats are
# matched once. Bounded: cleared when full (a miss only costs the regular expression).
_names: set[str] = set()
_fields: set[str] = set()
_uuids: set[str] = set()
_KNOWN_MAX = 4096


def _learn(seen: set[str], pattern: re.Pattern, text: str) -> bool:
    """Whether a text not seen yet matches; remembered if it does."""
    if pattern.fullmatch(text) is None:
        return False
    if len(seen) >= _KNOWN_MAX:
        seen.clear()
    seen.add(text)
    return True
