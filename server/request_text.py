"""The text a request carries, refused at the door when no database could store it.

JSON bodies (`parse_body`): Python's decoder lets through `NaN` and `Infinity`, NUL
(`"\\u0000"`, which PostgreSQL's text refuses while SQLite keeps it) and lone UTF-16
surrogates (`"\\ud800"` escaped, or its three UTF-8 bytes, which it decodes with
`surrogatepass`). The path, the query and form fields (`refuse_nul`): Werkzeug
decodes `%00` to NUL (and invalid UTF-8 to U+FFFD, so no surrogate comes that way).
Such a string would fail only where it is stored or looked up, as a 500, and again
each time a device sent it; the request is refused here instead, naming the string.
"""

from __future__ import annotations

import json
import re
from typing import Any, NoReturn

from flask import request

from forms.unicode import unstorable_path
from server.errors import ApiError, ErrorCode

FORM = "application/x-www-form-urlencoded"

# An escaped NUL, a surrogate escape not part of a pair (a pair is how JSON escapes a
# character beyond U+FFFF, such as an emoji), or a surrogate's UTF-8 bytes. Each pattern
# opens with a literal, which the regex engine scans for quickly; the text after an
# escaped backslash (`\\ud800`) matches too, so the parsed strings decide.
_HEX = rb"[0-9a-fA-F]{2}"
_SUSPECT_ESCAPE = re.compile(
    rb"\\u(?:0000|[dD](?:[89abAB]" + _HEX + rb"(?!\\u[dD][c-fC-F]" + _HEX + rb")"
    rb"|[c-fC-F]" + _HEX + rb"(?<!\\u[dD][89abAB]" + _HEX + rb"\\u[dD][c-fC-F]" + _HEX + rb")))"
)
_ENCODED_SURROGATE = re.compile(rb"\xed[\xa0-\xbf]")


def _may_be_unstorable(raw: bytes) -> bool:
    """Whether the body may hold NUL or a lone surrogate. Most bodies hold neither a
    backslash nor an 0xED byte (clients send UTF-8 unescaped): then this is two memchr
    calls."""
    return bool(
        (b"\\" in raw and _SUSPECT_ESCAPE.search(raw))
        or (b"\xed" in raw and _ENCODED_SURROGATE.search(raw))
    )


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not JSON")


def parse_body(raw: bytes) -> Any:
    """The body's JSON value; 400 `invalid_json` when it is not JSON text to store."""
    try:
        value = json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise ApiError(ErrorCode.INVALID_JSON, "the body is not valid JSON") from None
    if _may_be_unstorable(raw):
        path = unstorable_path(value)
        if path is not None:
            raise ApiError(
                ErrorCode.INVALID_JSON,
                "a string holds NUL or a lone UTF-16 surrogate, which is not text",
                errors=[{"path": path, "message": "U+0000, or U+D800 to U+DFFF alone"}],
            )
    return value


def refuse_nul() -> None:
    """Before every request: 400 when its path, a query parameter or a field of a
    URL-encoded form holds NUL (multipart bodies are files, read by their views)."""
    fields = [("path", request.path)]
    fields += [(f"query {name!r}", value) for name, value in request.args.items(multi=True)]
    fields += [(f"query {name!r}", name) for name in request.args]
    if request.mimetype == FORM:
        fields += [(f"form {name!r}", value) for name, value in request.form.items(multi=True)]
        fields += [(f"form {name!r}", name) for name in request.form]
    for where, text in fields:
        if "\x00" in text:
            raise ApiError(ErrorCode.BAD_REQUEST, f"the {where} holds NUL, which is not text")
