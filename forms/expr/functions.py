"""The functions expressions may call: name -> (least args, most args, implementation).

Implementations take the evaluation context and the evaluated arguments and never
raise: a bad argument gives NaN, '' or false, as XPath does. `if`, `coalesce`, `and`
and `or` are compiled lazily in `evaluate.py` and are not listed here.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from datetime import date, datetime
from functools import lru_cache
from typing import Any

from forms.expr.values import (
    NAN,
    NodeSet,
    date_to_days,
    to_boolean,
    to_date,
    to_datetime,
    to_number,
    to_string,
)

MANY = 10_000


def _items(value: Any) -> list:
    if type(value) is NodeSet:
        return value.items
    if type(value) is list:
        return value
    return [] if value is None or value == "" else [value]


def _choices(value: Any) -> list[str]:
    if type(value) is list:
        return [to_string(item) for item in value]
    return to_string(value).split()


def _int(value: Any) -> float:
    number = to_number(value)
    return float(math.trunc(number)) if math.isfinite(number) else NAN


def _round(value: Any, digits: Any = 0.0) -> float:
    number, places = to_number(value), to_number(digits)
    if not math.isfinite(number) or not math.isfinite(places) or abs(places) > 300:
        return NAN if number != number else number
    scale = 10.0 ** int(places)
    scaled = number * scale
    if not math.isfinite(scaled):
        return number  # too large to have any digit past `places`: it is already round
    # XPath rounds halves up (towards positive infinity), not to even.
    return math.floor(scaled + 0.5) / scale


@lru_cache(maxsize=512)
def pattern(text: str) -> re.Pattern | None:
    """The compiled regular expression, or None when the text is not one."""
    try:
        return re.compile(text)
    except (re.error, OverflowError, RecursionError):
        return None


def _regex(value: Any, expression: Any) -> bool:
    compiled = pattern(to_string(expression))
    return compiled is not None and compiled.search(to_string(value)) is not None


def _substr(value: Any, start: Any, end: Any = None) -> str:
    text = to_string(value)
    first = to_number(start)
    if first != first:
        return ""
    low = max(0, int(max(min(first, len(text)), -len(text) - 1)))
    if end is None:
        return text[low:]
    last = to_number(end)
    if last != last:
        return ""
    return text[low : max(low, int(max(min(last, len(text)), 0)))]


def _split(value: Any, separator: Any) -> tuple[str, str, str]:
    text, mark = to_string(value), to_string(separator)
    if not mark:
        return "", "", text  # XPath finds the empty string at the start
    return text.partition(mark) if mark in text else ("", "", "")


def _flat_strings(args: tuple) -> list[str]:
    items = [item for arg in args for item in (arg.items if type(arg) is NodeSet else [arg])]
    return [to_string(item) for item in items]


def wanted_choice(choice: Any) -> str:
    """The choice name selected() looks for: trimmed, as JavaRosa trims it."""
    return to_string(choice).strip()


def _selected_at(value: Any, index: Any) -> str:
    choices, position = _choices(value), to_number(index)
    if not math.isfinite(position) or not 0 <= position < len(choices):
        return ""
    return choices[int(position)]


def _sum(value: Any) -> float:
    numbers = [to_number(item) for item in _items(value)]
    try:
        return math.fsum(numbers)
    except (OverflowError, ValueError):
        # fsum refuses what plain addition gives: ±inf past the float range, NaN for inf - inf.
        return float(sum(numbers))


def _extreme(pick: Callable, args: tuple) -> float:
    numbers = [to_number(item) for arg in args for item in _items(arg)]
    if not numbers or any(number != number for number in numbers):
        return NAN
    return pick(numbers)


def _date(value: Any) -> date | str:
    if type(value) is str and value.strip() == "":
        return ""
    day = to_date(value)
    return "" if day is None else day


def _date_time(value: Any) -> datetime | str:
    moment = to_datetime(value)
    return "" if moment is None else moment


def _decimal_date_time(value: Any) -> float:
    moment = to_datetime(value)
    return NAN if moment is None else date_to_days(moment)


def _decimal_time(value: Any) -> float:
    text = to_string(value)
    parts = text.split(":")
    try:
        hours, minutes = int(parts[0]), int(parts[1])
        seconds = float(parts[2][:6]) if len(parts) > 2 else 0.0
        return (hours * 3600 + minutes * 60 + seconds) / 86400
    except (ValueError, IndexError, OverflowError):
        return NAN


FORMAT_CODES = {
    "%Y": "%Y",
    "%y": "%y",
    "%m": "%m",
    "%n": "%-m",
    "%b": "%b",
    "%d": "%d",
    "%e": "%-d",
    "%a": "%a",
    "%H": "%H",
    "%h": "%-H",
    "%M": "%M",
    "%S": "%S",
    "%3": "%f",
}


def _format_date(value: Any, fmt: Any) -> str:
    moment = to_datetime(value)
    if moment is None:
        return ""
    out = []
    text = to_string(fmt)
    index = 0
    while index < len(text):
        code = text[index : index + 2]
        if code in FORMAT_CODES:
            if code == "%3":
                out.append(f"{moment.microsecond // 1000:03d}")
            elif code in ("%n", "%e", "%h"):
                out.append(str({"%n": moment.month, "%e": moment.day, "%h": moment.hour}[code]))
            else:
                out.append(moment.strftime(FORMAT_CODES[code]))
            index += 2
        else:
            out.append(text[index])
            index += 1
    return "".join(out)


def _translate(value: Any, source: Any, target: Any) -> str:
    text, old, new = to_string(value), to_string(source), to_string(target)
    table: dict[int, int | None] = {}
    for index, char in enumerate(old):
        table.setdefault(ord(char), ord(new[index]) if index < len(new) else None)
    return text.translate(table)


def _pow(base: Any, exponent: Any) -> float:
    try:
        return math.pow(to_number(base), to_number(exponent))
    except (OverflowError, ValueError):
        return NAN


def _unary_math(function: Callable[[float], float]) -> Callable[..., float]:
    def apply(_context: Any, value: Any) -> float:
        try:
            return function(to_number(value))
        except (OverflowError, ValueError):
            return NAN

    return apply


def _pure(function: Callable[..., Any]) -> Callable[..., Any]:
    """A function of its arguments alone (it ignores the evaluation context).

    The compiler calls `__wrapped__` directly and so skips this wrapper.
    """

    def call(_context: Any, *args: Any) -> Any:
        return function(*args)

    call.__wrapped__ = function  # type: ignore[attr-defined]
    return call


FUNCTIONS: dict[str, tuple[int, int, Callable[..., Any]]] = {
    "selected": (2, 2, _pure(lambda value, choice: wanted_choice(choice) in _choices(value))),
    "count-selected": (1, 1, _pure(lambda value: float(len(_choices(value))))),
    "selected-at": (2, 2, _pure(_selected_at)),
    "string-length": (0, 1, lambda c, *a: float(len(to_string(a[0] if a else c.current)))),
    "substr": (2, 3, _pure(_substr)),
    "substring": (
        2,
        3,
        _pure(
            lambda v, s, n=None: (
                _substr(v, to_number(s) - 1)
                if n is None
                else _substr(v, to_number(s) - 1, to_number(s) - 1 + to_number(n))
            )
        ),
    ),
    "substring-before": (2, 2, _pure(lambda v, s: _split(v, s)[0])),
    "substring-after": (2, 2, _pure(lambda v, s: _split(v, s)[2])),
    "concat": (0, MANY, _pure(lambda *args: "".join(_flat_strings(args)))),
    "join": (1, MANY, _pure(lambda sep, *args: to_string(sep).join(_flat_strings(args)))),
    "contains": (2, 2, _pure(lambda v, s: to_string(s) in to_string(v))),
    "starts-with": (2, 2, _pure(lambda v, s: to_string(v).startswith(to_string(s)))),
    "ends-with": (2, 2, _pure(lambda v, s: to_string(v).endswith(to_string(s)))),
    "regex": (2, 2, _pure(_regex)),
    "normalize-space": (0, 1, lambda c, *a: " ".join(to_string(a[0] if a else c.current).split())),
    "translate": (3, 3, _pure(_translate)),
    "string": (0, 1, lambda c, *a: to_string(a[0] if a else c.current)),
    "today": (0, 0, lambda c: c.now.date()),
    "now": (0, 0, lambda c: c.now),
    "date": (1, 1, _pure(_date)),
    "date-time": (1, 1, _pure(_date_time)),
    "decimal-date-time": (1, 1, _pure(_decimal_date_time)),
    "decimal-date": (1, 1, _pure(_decimal_date_time)),
    "decimal-time": (1, 1, _pure(_decimal_time)),
    "format-date": (2, 2, _pure(_format_date)),
    "format-date-time": (2, 2, _pure(_format_date)),
    "int": (1, 1, _pure(_int)),
    "number": (0, 1, lambda c, *a: to_number(a[0] if a else c.current)),
    "round": (1, 2, _pure(_round)),
    "floor": (1, 1, _unary_math(lambda x: float(math.floor(x)) if math.isfinite(x) else x)),
    "ceiling": (1, 1, _unary_math(lambda x: float(math.ceil(x)) if math.isfinite(x) else x)),
    "abs": (1, 1, _unary_math(abs)),
    "sqrt": (1, 1, _unary_math(math.sqrt)),
    "exp": (1, 1, _unary_math(math.exp)),
    "log": (1, 1, _unary_math(math.log)),
    "log10": (1, 1, _unary_math(math.log10)),
    "pow": (2, 2, _pure(_pow)),
    "min": (1, MANY, lambda c, *a: _extreme(min, a)),
    "max": (1, MANY, lambda c, *a: _extreme(max, a)),
    "count": (1, 1, _pure(lambda value: float(len(_items(value))))),
    "sum": (1, 1, _pure(_sum)),
    "not": (1, 1, _pure(lambda value: not to_boolean(value))),
    "true": (0, 0, lambda c: True),
    "false": (0, 0, lambda c: False),
    "boolean": (1, 1, _pure(to_boolean)),
    "boolean-from-string": (1, 1, _pure(lambda v: to_string(v).strip() in ("true", "1"))),
    "once": (1, 1, _pure(lambda value: value)),
}
