"""Canonical serialisation and hashing of audit events and of the ops they cover.

Everything that is hashed goes through this module, so the bytes hashed when an
event is appended are the bytes hashed when the chain is verified:

- JSON with sorted keys, no whitespace, UTF-8 (no ASCII escaping), no NaN/Infinity;
- times as explicit UTC strings with microseconds, `2026-11-26T03:41:21.123456Z`;
- `hash = sha256(prev_hash_hex || canonical_event)`, the first event chaining to
  `GENESIS_HASH`.
"""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
import json
import uuid
from typing import Any

GENESIS_HASH = "0" * 64

_ENCODER = json.JSONEncoder(
    ensure_ascii=False, separators=(",", ":"), sort_keys=True, allow_nan=False
)
_encode_string = json.encoder.py_encode_basestring
if json.encoder.c_encode_basestring is not None:  # the C version is several times faster
    _encode_string = json.encoder.c_encode_basestring


def format_time(value: dt.datetime) -> str:
    """A time as an explicit UTC string; naive times (SQLite) are UTC already."""
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC).replace(tzinfo=None)
    return value.isoformat(timespec="microseconds") + "Z"


def _json_safe(value: Any) -> Any:
    """Turn the non-JSON values callers may hand us into their explicit text forms."""
    if isinstance(value, dict):
        return {str(key): _json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(item) for item in value]
    if isinstance(value, set | frozenset):
        return sorted(_json_safe(item) for item in value)
    if isinstance(value, enum.Enum):
        return _json_safe(value.value)
    if isinstance(value, dt.datetime):
        return format_time(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if value is None or isinstance(value, str | int | float):
        return value
    raise TypeError(f"cannot put a {type(value).__name__} into an audit event")


def canonical_json(value: Any) -> str:
    """The one canonical JSON text of `value` (raises on NaN and unknown types)."""
    return _ENCODER.encode(_json_safe(value))


def _text_or_null(value: str | None) -> str:
    return "null" if value is None else _encode_string(value)


def event_bytes(
    event_id: int,
    occurred_at: dt.datetime | str,
    user_id: int | None,
    device_id: str | None,
    action: str,
    target_type: str,
    target_id: str | None,
    details_json: str,
) -> bytes:
    """The canonical form of one event; `details_json` is already canonical JSON text.

    `occurred_at` is a time or its `format_time` text (verify reads it so from the
    database). Written out by hand with the keys in sorted order because verify runs
    it for every event; `canonical_json` of the same fields gives the same text (tested).
    """
    at = occurred_at if isinstance(occurred_at, str) else format_time(occurred_at)
    return (
        f'{{"action":{_encode_string(action)},"details":{details_json},'
        f'"device_id":{_text_or_null(device_id)},"id":{int(event_id)},'
        f'"occurred_at":"{at}",'
        f'"target_id":{_text_or_null(target_id)},"target_type":{_encode_string(target_type)},'
        f'"user_id":{"null" if user_id is None else int(user_id)}}}'
    ).encode()


def chain_hash(prev_hash: str, content: bytes) -> str:
    """The hash of an event: SHA-256 over the previous hash (hex) and its canonical form."""
    digest = hashlib.sha256(prev_hash.encode("ascii"))
    digest.update(content)
    return digest.hexdigest()


NULL_FIELD = "~"


def op_line(values: list[Any]) -> str:
    """The canonical form of one stored op (the reference; SQL builds the same text).

    Each covered column in order, each followed by `|`: integers in decimal, text
    and JSON text as `<length>:<text>` (so no content can shift the framing), times
    as `format_time` text, NULL as `~`; then a newline. The op's JSON value is the
    exact text the database holds, never decoded and re-encoded.
    """
    parts = []
    for value in values:
        if value is None:
            parts.append(NULL_FIELD)
        elif isinstance(value, str):
            parts.append(f"{len(value)}:{value}")
        elif isinstance(value, dt.datetime):
            parts.append(format_time(value))
        elif isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"an op column holds {type(value).__name__}")
        else:
            parts.append(str(value))
    return "|".join(parts) + "|\n"


def new_ops_digest() -> Any:
    """A running SHA-256 over op lines, fed in seq order."""
    return hashlib.sha256()
