"""XPath value conversions over the JSON values records hold; every one is total.

Records hold typed JSON (numbers, text, lists of choices, geopoint objects); XPath
compares and computes on strings, numbers, booleans and node-sets. These functions
convert any value without raising, so an expression over any record evaluates.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

NAN = float("nan")
EPOCH = date(1970, 1, 1)
EPOCH_ORDINAL = EPOCH.toordinal()
EPOCH_DATETIME = datetime(1970, 1, 1, tzinfo=UTC)
NUMBER_RE = re.compile(r"\s*-?(\d+(\.\d*)?|\.\d+)\s*\Z", re.ASCII)
DATE_PREFIX_RE = re.compile(r"\s*(\d{4})-(\d{2})-(\d{2})", re.ASCII)


class NodeSet:
    """The values of a field across repeat rows (or the rows of a repeat)."""

    __slots__ = ("items",)

    def __init__(self, items: list) -> None:
        self.items = items

    def __repr__(self) -> str:
        return f"NodeSet({self.items!r})"


def format_number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    if value == int(value) and abs(value) < 1e16:
        return str(int(value))
    # XPath spells numbers without exponents; the shortest repr keeps every digit.
    return format(Decimal(repr(value)), "f")


def _point(value: dict) -> str:
    parts = [value.get(key) for key in ("latitude", "longitude", "altitude", "accuracy")]
    return " ".join(format_number(to_number(part)) if part is not None else "0" for part in parts)


def to_string(value: object) -> str:
    """The XPath string of a value ('' for empty)."""
    kind = type(value)
    if kind is str:
        return value
    if value is None:
        return ""
    if kind is bool:
        return "true" if value else "false"
    if kind is int:
        return str(value)
    if kind is float:
        return format_number(value)
    if kind is date:
        return value.isoformat()
    if kind is datetime:
        return value.isoformat(timespec="milliseconds")
    if kind is NodeSet:
        return to_string(value.items[0]) if value.items else ""
    if kind is list:
        if value and all(type(item) is dict for item in value):
            return ";".join(_point(item) for item in value)
        return " ".join(to_string(item) for item in value)
    if kind is dict:
        if "latitude" in value:
            return _point(value)
        digest = value.get("sha256")
        return digest if type(digest) is str else ""
    return ""


def parse_date(text: str) -> date | None:
    """The date at the start of an ISO text, or None."""
    match = DATE_PREFIX_RE.match(text)
    if match is None:
        return None
    try:
        return date(int(match[1]), int(match[2]), int(match[3]))
    except ValueError:
        return None


def parse_datetime(text: str) -> datetime | None:
    """An ISO date-time (UTC when it names no offset), or None."""
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def date_to_days(value: date | datetime) -> float:
    if type(value) is datetime:
        aware = value if value.tzinfo else value.replace(tzinfo=UTC)
        return (aware - EPOCH_DATETIME).total_seconds() / 86400
    return float((value - EPOCH).days)


def days_to_date(days: float) -> date | None:
    if not math.isfinite(days) or abs(days) > 2_900_000:
        return None
    try:
        return EPOCH + timedelta(days=math.floor(days))
    except OverflowError:
        return None


def days_to_datetime(days: float) -> datetime | None:
    if not math.isfinite(days) or abs(days) > 2_900_000:
        return None
    try:
        return EPOCH_DATETIME + timedelta(days=days)
    except OverflowError:
        return None


def _float(value: int) -> float:
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf


def to_number(value: object) -> float:
    """The XPath number of a value (NaN when it has none); dates count days since 1970."""
    kind = type(value)
    if kind is float:
        return value
    if kind is int:
        return _float(value)
    if kind is bool:
        return 1.0 if value else 0.0
    if kind is str:
        # A text that starts as a date is never a number, so dates (the common case in
        # constraints) are tried first and their match is used once.
        match = DATE_PREFIX_RE.match(value) if len(value) >= 10 else None
        if match is not None:
            moment = parse_datetime(value) if len(value) > 10 else None
            if moment is not None:
                return date_to_days(moment)
            try:
                # Ten characters that match are exactly YYYY-MM-DD in ASCII digits.
                if len(value) == 10:
                    day = date.fromisoformat(value)
                else:
                    day = date(int(match[1]), int(match[2]), int(match[3]))
            except ValueError:
                return NAN
            return float(day.toordinal() - EPOCH_ORDINAL)
        if NUMBER_RE.match(value):
            return float(value)
        return NAN
    if kind is date or kind is datetime:
        return date_to_days(value)
    if kind is NodeSet:
        return to_number(value.items[0]) if value.items else NAN
    return NAN


def to_boolean(value: object) -> bool:
    """The XPath boolean of a value."""
    kind = type(value)
    if kind is bool:
        return value
    if kind is str:
        return value != ""
    if kind is int or kind is float:
        return value != 0 and value == value
    if value is None:
        return False
    if kind is NodeSet:
        return bool(value.items)
    if kind is list or kind is dict:
        return bool(value)
    return kind is date or kind is datetime


def to_date(value: object) -> date | None:
    kind = type(value)
    if kind is date:
        return value
    if kind is datetime:
        return value.date()
    if kind is str:
        return parse_date(value)
    if kind is int or kind is float:
        return days_to_date(to_number(value))
    if kind is NodeSet and value.items:
        return to_date(value.items[0])
    return None


def to_datetime(value: object) -> datetime | None:
    kind = type(value)
    if kind is datetime:
        return value
    if kind is date:
        return datetime.combine(value, time(), tzinfo=UTC)
    if kind is str:
        parsed = parse_datetime(value)
        if parsed is None:
            day = parse_date(value)
            return None if day is None else datetime.combine(day, time(), tzinfo=UTC)
        return parsed
    if kind is int or kind is float:
        return days_to_datetime(to_number(value))
    if kind is NodeSet and value.items:
        return to_datetime(value.items[0])
    return None


def _is_number(value: object) -> bool:
    kind = type(value)
    return kind is int or kind is float


def _compare_one(op: str, left: object, right: object) -> bool:
    if op == "=" or op == "!=":
        if type(left) is bool or type(right) is bool:
            equal = to_boolean(left) == to_boolean(right)
        elif (
            _is_number(left)
            or _is_number(right)
            or type(left) in (date, datetime)
            or type(right) in (date, datetime)
        ):
            equal = to_number(left) == to_number(right)
        else:
            equal = to_string(left) == to_string(right)
        return equal if op == "=" else not equal
    a, b = to_number(left), to_number(right)
    if op == "<":
        return a < b
    if op == "<=":
        return a <= b
    if op == ">":
        return a > b
    return a >= b


def compare(op: str, left: object, right: object) -> bool:
    """An XPath comparison; a node-set compares true when any of its values does."""
    if type(left) is NodeSet:
        return any(compare(op, item, right) for item in left.items)
    if type(right) is NodeSet:
        return any(compare(op, left, item) for item in right.items)
    return _compare_one(op, left, right)


def arithmetic(op: str, left: object, right: object) -> float:
    """+ - * div mod over XPath numbers; never raises (IEEE results for 0 and overflow)."""
    a, b = to_number(left), to_number(right)
    try:
        if op == "+":
            return a + b
        if op == "-":
            return a - b
        if op == "*":
            return a * b
        if op == "div":
            if b == 0:
                if a == 0 or a != a:
                    return NAN
                return math.copysign(math.inf, a) * math.copysign(1.0, b)
            return a / b
        if b == 0 or math.isinf(a) or a != a or b != b:
            return NAN
        return math.fmod(a, b)
    except OverflowError:
        return NAN
