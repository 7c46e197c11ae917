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
MAX_FORM_VERSION = 2**31 - 1
MAX_TEXT = 65536
MAX_LIST = 1000
MAX_ITEM_TEXT = 1000
_KEYS = frozenset(WIRE_KEYS)
_KINDS = frozenset(KINDS)
# The schema's name pattern, anchored at both ends (the schema's `$` would also
# allow a trailing newline, which this refuses: refusing more is safe here).
_NAME = re.compile("[A-Za-z_\u00c0-\uffff][A-Za-z0-9_.\\-\u00b7\u00c0-\uffff]{0,127}")
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
    if type(op) is not dict or op.keys() != _KEYS:
        return False
    form_id, field, record_id, hlc = op["form_id"], op["field"], op["record_id"], op["hlc"]
    return (
        _int_in(op["seq"], 1, MAX_SAFE_INT)
        and _int_in(op["base"], 0, MAX_SAFE_INT)
        and _int_in(op["grid_id"], 1, MAX_SAFE_INT)
        and _int_in(op["form_version"], 1, MAX_FORM_VERSION)
        and type(record_id) is str
        and _UUID.fullmatch(record_id) is not None
        and type(form_id) is str
        and _NAME.fullmatch(form_id) is not None
        and type(field) is str
        and _NAME.fullmatch(field) is not None
        and type(hlc) is str
        and _HLC.fullmatch(hlc) is not None
        and type(op["kind"]) is str
        and op["kind"] in _KINDS
        and _plain_value(op["value"])
    )
