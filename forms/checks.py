"""Per-field value checkers, compiled once per form version.

A checker takes `(kind, value)` of one op and returns None when the op may apply or a
`Rejection`. Checkers test types with `type(x) is ...` and never raise on any JSON
value (str, int, float, bool, None, list, dict, nested): the sync engine calls them on
untrusted input for every op, so they are also written to be fast.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any

from forms.model import Field
from forms.types import ATTACHMENT_TYPES, DEFAULT_MAX_TEXT, MAX_SAFE_INTEGER, MAX_VERTICES


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why an op may not apply: a quarantine reason code and a human detail."""

    reason: str
    detail: str


Checker = Callable[[str, Any], Rejection | None]

DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}\Z", re.ASCII)
# An offset is `Z`, `+hh:mm` or `+hh`: ISO 8601 allows hours alone, and JavaRosa
# wrote them so for years (`2014-01-09T11:52:02.906+03` in ODK and Ona instances).
DATETIME_RE = re.compile(
    r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}(:\d{2})?)\Z", re.ASCII
)
TIME_RE = re.compile(r"\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}(:\d{2})?)?\Z", re.ASCII)
UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\Z", re.ASCII)
SHA256_RE = re.compile(r"[0-9a-f]{64}\Z", re.ASCII)
GEOPOINT_KEYS = frozenset({"latitude", "longitude", "altitude", "accuracy"})
ATTACHMENT_KEYS = frozenset({"sha256", "size", "content_type"})
MEDIA_PREFIX = {"image": "image/", "audio": "audio/", "video": "video/"}


def _describe(value: Any) -> str:
    """A short description of a value for a rejection detail (never the whole value)."""
    kind = type(value).__name__
    if type(value) is str:
        return f"text of {len(value)} characters" if len(value) > 40 else repr(value)
    if type(value) in (int, float, bool) or value is None:
        return repr(value)
    return kind


def is_date(value: Any) -> bool:
    if type(value) is not str or DATE_RE.match(value) is None:
        return False
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return True


def is_datetime(value: Any) -> bool:
    if type(value) is not str or DATETIME_RE.match(value) is None:
        return False
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


def is_time(value: Any) -> bool:
    if type(value) is not str or TIME_RE.match(value) is None:
        return False
    try:
        time.fromisoformat(value)
    except ValueError:
        return False
    return True


def is_number(value: Any) -> bool:
    kind = type(value)
    return kind is int or (kind is float and math.isfinite(value))


def _coordinate(point: Any) -> str | None:
    """None when `point` is a geopoint object, else what is wrong with it."""
    if type(point) is not dict:
        return "a point is an object with latitude and longitude"
    if not GEOPOINT_KEYS.issuperset(point):
        return "a point holds only latitude, longitude, altitude and accuracy"
    lat, lon = point.get("latitude"), point.get("longitude")
    if not is_number(lat) or not is_number(lon):
        return "latitude and longitude are numbers"
    for key in ("altitude", "accuracy"):
        if key in point and point[key] is not None and not is_number(point[key]):
            return f"{key} is a number"
    return None


def _coordinate_range(point: dict) -> str | None:
    if not -90 <= point["latitude"] <= 90:
        return "latitude is between -90 and 90"
    if not -180 <= point["longitude"] <= 180:
        return "longitude is between -180 and 180"
    accuracy = point.get("accuracy")
    if accuracy is not None and accuracy < 0:
        return "accuracy is not negative"
    return None


def _set_only(field: Field, check: Callable[[Any], Rejection | None]) -> Checker:
    """A register field: `set` a value (or null to clear); add/remove are refused."""
    not_multi = Rejection(
        "not_multi_select", f"{field.name!r} is a {field.type}, not a multi-select"
    )

    def checker(kind: str, value: Any) -> Rejection | None:
        if kind == "set":
            return None if value is None else check(value)
        if kind == "add" or kind == "remove":
            return not_multi
        return Rejection("wrong_type", f"unknown op kind {_describe(kind)}")

    return checker


def _wrong(field: Field, expected: str) -> Callable[[Any], Rejection]:
    def rejection(value: Any) -> Rejection:
        return Rejection("wrong_type", f"{field.name!r} holds {expected}, not {_describe(value)}")

    return rejection


def _text_check(field: Field) -> Callable[[Any], Rejection | None]:
    limit = field.max_length or DEFAULT_MAX_TEXT
    wrong = _wrong(field, "text")

    def check(value: Any) -> Rejection | None:
        if type(value) is not str:
            return wrong(value)
        if len(value) > limit:
            return Rejection("out_of_range", f"{field.name!r} holds at most {limit} characters")
        return None

    return check


def _range_rejection(field: Field, value: Any) -> Rejection | None:
    if field.minimum is not None and value < field.minimum:
        return Rejection("out_of_range", f"{field.name!r} is at least {field.minimum:g}")
    if field.maximum is not None and value > field.maximum:
        return Rejection("out_of_range", f"{field.name!r} is at most {field.maximum:g}")
    return None


def _integer_check(field: Field) -> Callable[[Any], Rejection | None]:
    wrong = _wrong(field, "a whole number")
    bounded = field.minimum is not None or field.maximum is not None

    def check(value: Any) -> Rejection | None:
        if type(value) is not int:
            return wrong(value)
        if value > MAX_SAFE_INTEGER or value < -MAX_SAFE_INTEGER:
            return Rejection("out_of_range", f"{field.name!r} is beyond ±(2^53 - 1)")
        return _range_rejection(field, value) if bounded else None

    return check


def _decimal_check(field: Field) -> Callable[[Any], Rejection | None]:
    wrong = _wrong(field, "a finite number")
    bounded = field.minimum is not None or field.maximum is not None

    def check(value: Any) -> Rejection | None:
        kind = type(value)
        if kind is not int and (kind is not float or not math.isfinite(value)):
            return wrong(value)
        return _range_rejection(field, value) if bounded else None

    return check


def _date_check(field: Field, valid: Callable[[Any], bool], expected: str) -> Callable:
    wrong = _wrong(field, expected)
    low, high = field.min_date, field.max_date

    def check(value: Any) -> Rejection | None:
        if not valid(value):
            return wrong(value)
        # ISO dates and datetimes of one offset order as strings; the date part decides.
        day = value[:10]
        if low is not None and day < low:
            return Rejection("out_of_range", f"{field.name!r} is on or after {low}")
        if high is not None and day > high:
            return Rejection("out_of_range", f"{field.name!r} is on or before {high}")
        return None

    return check


def _time_check(field: Field) -> Callable[[Any], Rejection | None]:
    wrong = _wrong(field, "a time HH:MM[:SS[.fff]][offset]")
    return lambda value: None if is_time(value) else wrong(value)


def _unknown_choice(field: Field, value: Any) -> Rejection:
    return Rejection("unknown_choice", f"{_describe(value)} is not a choice of {field.name!r}")


def _choice_check(field: Field) -> Callable[[Any], Rejection | None]:
    names = frozenset(field.choices)
    wrong = _wrong(field, "a choice name")

    def check(value: Any) -> Rejection | None:
        if type(value) is not str:
            return wrong(value)
        if value not in names:
            return Rejection(
                "unknown_choice", f"{_describe(value)} is not a choice of {field.name!r}"
            )
        return None

    return check


def _multi_checker(field: Field) -> Checker:
    names = frozenset(field.choices)
    wrong = _wrong(field, "one choice name per add/remove")
    no_set = Rejection(
        "wrong_type",
        f"{field.name!r} is a select_multiple: change it with add/remove of one choice",
    )

    def checker(kind: str, value: Any) -> Rejection | None:
        if kind == "add" or kind == "remove":
            if type(value) is not str:
                return wrong(value)
            if value in names:
                return None
            # A remove of a choice the list no longer has still lets a device clean up.
            if kind == "remove":
                return None
            return Rejection(
                "unknown_choice", f"{_describe(value)} is not a choice of {field.name!r}"
            )
        if kind == "set":
            return no_set
        return Rejection("wrong_type", f"unknown op kind {_describe(kind)}")

    return checker


def _geopoint_check(field: Field) -> Callable[[Any], Rejection | None]:
    def check(value: Any) -> Rejection | None:
        problem = _coordinate(value)
        if problem is not None:
            return Rejection("wrong_type", f"{field.name!r}: {problem}")
        problem = _coordinate_range(value)
        return None if problem is None else Rejection("out_of_range", f"{field.name!r}: {problem}")

    return check


def _vertices_check(field: Field, least: int, closed: bool) -> Callable[[Any], Rejection | None]:
    def check(value: Any) -> Rejection | None:
        if type(value) is not list or len(value) < least:
            return Rejection(
                "wrong_type", f"{field.name!r} holds a list of at least {least} points"
            )
        if len(value) > MAX_VERTICES:
            return Rejection("out_of_range", f"{field.name!r} has at most {MAX_VERTICES} points")
        for point in value:
            problem = _coordinate(point)
            if problem is not None:
                return Rejection("wrong_type", f"{field.name!r}: {problem}")
            problem = _coordinate_range(point)
            if problem is not None:
                return Rejection("out_of_range", f"{field.name!r}: {problem}")
        first, last = value[0], value[-1]
        if closed and (first["latitude"], first["longitude"]) != (
            last["latitude"],
            last["longitude"],
        ):
            return Rejection("wrong_type", f"{field.name!r}: a shape ends where it starts")
        return None

    return check


def _attachment_check(field: Field) -> Callable[[Any], Rejection | None]:
    prefix = MEDIA_PREFIX.get(field.type)
    shape = "an attachment {sha256, size, content_type}"

    def check(value: Any) -> Rejection | None:
        if type(value) is not dict or value.keys() != ATTACHMENT_KEYS:
            return Rejection("wrong_type", f"{field.name!r} holds {shape}")
        digest, size, content_type = value["sha256"], value["size"], value["content_type"]
        if type(digest) is not str or SHA256_RE.match(digest) is None:
            return Rejection("wrong_type", f"{field.name!r}: sha256 is 64 lowercase hex digits")
        if type(size) is not int or size < 0 or size > MAX_SAFE_INTEGER:
            return Rejection("wrong_type", f"{field.name!r}: size is a whole number of bytes")
        if type(content_type) is not str or not 0 < len(content_type) <= 255:
            return Rejection("wrong_type", f"{field.name!r}: content_type is a media type")
        if prefix is not None and not content_type.startswith(prefix):
            return Rejection("wrong_type", f"{field.name!r} holds {prefix}* content")
        return None

    return check


def _calculated_check(field: Field) -> Callable[[Any], Rejection | None]:
    text = _text_check(field)
    wrong = _wrong(field, "a calculated text, number or boolean")

    def check(value: Any) -> Rejection | None:
        kind = type(value)
        if kind is str:
            return text(value)
        if kind is bool or kind is int or (kind is float and math.isfinite(value)):
            return None
        return wrong(value)

    return check


def _acknowledge_check(field: Field) -> Callable[[Any], Rejection | None]:
    wrong = _wrong(field, "true or false")
    return lambda value: None if type(value) is bool else wrong(value)


def _reference_check(field: Field) -> Callable[[Any], Rejection | None]:
    wrong = _wrong(field, f"the id (lowercase UUID) of a {field.reference or 'record'}")
    return lambda value: None if type(value) is str and UUID_RE.match(value) else wrong(value)


def _holds_nothing(field: Field) -> Checker:
    rejection = Rejection("read_only_field", f"{field.name!r} is a {field.type}; it holds no value")
    return lambda kind, value: rejection


def compile_checker(field: Field) -> Checker:
    """The op checker for one field."""
    kind = field.type
    if kind in ("group", "repeat", "note"):
        return _holds_nothing(field)
    if kind == "select_multiple":
        return _multi_checker(field)
    return _set_only(field, _value_check(field))


def _multi_value_check(field: Field) -> Callable[[Any], Rejection | None]:
    """A stored multi-select value: a list whose every item an `add` op would accept."""
    names = frozenset(field.choices)
    wrong = _wrong(field, "one choice name per add/remove")

    def check(value: Any) -> Rejection | None:
        if type(value) is not list:
            return Rejection("wrong_type", f"{field.name!r} holds a list of choices")
        for item in value:
            if type(item) is not str:
                return wrong(item)
            if item not in names:
                return _unknown_choice(field, item)
        return None

    return check


def compile_value_check(field: Field) -> Callable[[Any], Rejection | None]:
    """The check one non-empty stored value of a value field passes on a merged record."""
    if field.type == "select_multiple":
        return _multi_value_check(field)
    if field.type in ("group", "repeat", "note"):
        raise ValueError(f"a {field.type} holds no value")
    return _value_check(field)


def _value_check(field: Field) -> Callable[[Any], Rejection | None]:
    kind = field.type
    if kind in ("text", "barcode"):
        check = _text_check(field)
    elif kind == "integer":
        check = _integer_check(field)
    elif kind == "decimal":
        check = _decimal_check(field)
    elif kind == "date":
        check = _date_check(field, is_date, "a date YYYY-MM-DD")
    elif kind == "datetime":
        check = _date_check(field, is_datetime, "an ISO 8601 date-time with its offset")
    elif kind == "time":
        check = _time_check(field)
    elif kind == "select_one":
        check = _choice_check(field)
    elif kind == "geopoint":
        check = _geopoint_check(field)
    elif kind == "geotrace":
        check = _vertices_check(field, 2, closed=False)
    elif kind == "geoshape":
        check = _vertices_check(field, 4, closed=True)
    elif kind in ATTACHMENT_TYPES:
        check = _attachment_check(field)
    elif kind == "calculate":
        check = _calculated_check(field)
    elif kind == "acknowledge":
        check = _acknowledge_check(field)
    elif kind == "reference":
        check = _reference_check(field)
    else:
        raise ValueError(f"no checker for type {kind!r}")
    return check


def _meta_checkers(repeats: tuple[str, ...]) -> dict[str, Checker]:
    groups = frozenset(repeats)

    def parent(value: Any) -> Rejection | None:
        if type(value) is str and UUID_RE.match(value):
            return None
        return Rejection("wrong_type", "_parent holds the parent record's id (lowercase UUID)")

    def group(value: Any) -> Rejection | None:
        if type(value) is str and value in groups:
            return None
        return Rejection("wrong_type", f"_group names a repeat of the form, not {_describe(value)}")

    def order(value: Any) -> Rejection | None:
        return None if is_number(value) else Rejection("wrong_type", "_order is a finite number")

    def deleted(value: Any) -> Rejection | None:
        return None if type(value) is bool else Rejection("wrong_type", "_deleted is true or false")

    checks = {"_parent": parent, "_group": group, "_order": order, "_deleted": deleted}
    return {name: _set_only(Field(name=name, type="meta"), check) for name, check in checks.items()}


def compile_checkers(fields: dict[str, Field], repeats: tuple[str, ...]) -> dict[str, Checker]:
    """Checkers for every field of a version and for the record meta fields."""
    checkers = {name: compile_checker(field) for name, field in fields.items()}
    checkers.update(_meta_checkers(repeats))
    return checkers
