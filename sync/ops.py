"""Operations: one field edit made on a device, as stored and as sent on the wire."""

from __future__ import annotations

import enum
import hashlib
import json
import math
import re
from typing import Any, NamedTuple

from sync import hlc as hlc_mod

SET = "set"
ADD = "add"
REMOVE = "remove"
KINDS = (SET, ADD, REMOVE)

# Fields every record may carry; repeat-group rows are records with a parent.
DELETED = "_deleted"
PARENT = "_parent"
GROUP = "_group"
ORDER = "_order"
RESERVED_FIELDS = (DELETED, PARENT, GROUP, ORDER)

WIRE_KEYS = (
    "seq",
    "record_id",
    "form_id",
    "form_version",
    "grid_id",
    "field",
    "kind",
    "value",
    "hlc",
    "base",
)
UUID_PATTERN = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
MAX_SAFE_INT = 2**53 - 1


class MalformedOp(ValueError):
    """A wire op whose shape is wrong; the JSON Schema normally catches it first."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}")
        self.key = key


def canonical_json(value: Any) -> str:
    """One text per JSON value: sorted keys, no spaces, UTF-8 kept, no NaN."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


class Op(NamedTuple):
    """One field edit: the device that made it, its seq, and the wire content.

    A named tuple rather than a frozen dataclass: a push builds one per op, and a
    tuple is built in a fifth of the time, immutable all the same.
    """

    device_id: str
    seq: int
    record_id: str
    form_id: str
    form_version: int
    grid_id: int
    field: str
    kind: str
    value: Any
    hlc: int
    base: int

    @classmethod
    def from_wire(cls, data: dict[str, Any], device_id: str) -> Op:
        """Build an op from its wire form; the device comes from the token, not the body."""
        if not isinstance(data, dict):
            raise MalformedOp("", "an op is a JSON object")
        missing = [key for key in WIRE_KEYS if key not in data]
        if missing:
            raise MalformedOp(missing[0], "is required")
        extra = sorted(set(data) - set(WIRE_KEYS))
        if extra:
            raise MalformedOp(extra[0], "is not an op key")
        for key, low in (("seq", 1), ("form_version", 1), ("grid_id", 1), ("base", 0)):
            _check_int(key, data[key], low)
        for key in ("record_id", "form_id", "field"):
            if not isinstance(data[key], str) or not data[key]:
                raise MalformedOp(key, "must be a non-empty string")
        if not UUID_PATTERN.fullmatch(data["record_id"]):
            raise MalformedOp("record_id", "must be a lowercase UUID")
        if data["kind"] not in KINDS:
            raise MalformedOp("kind", f"must be one of {', '.join(KINDS)}")
        _check_value(data["value"])
        try:
            stamp = hlc_mod.from_wire(data["hlc"])
        except hlc_mod.InvalidHlc as error:
            raise MalformedOp("hlc", str(error)) from None
        return cls(
            device_id=device_id,
            seq=data["seq"],
            record_id=data["record_id"],
            form_id=data["form_id"],
            form_version=data["form_version"],
            grid_id=data["grid_id"],
            field=data["field"],
            kind=data["kind"],
            value=data["value"],
            hlc=stamp,
            base=data["base"],
        )

    def to_wire(self) -> dict[str, Any]:
        """The wire form (without the device, which the token names)."""
        return {
            "seq": self.seq,
            "record_id": self.record_id,
            "form_id": self.form_id,
            "form_version": self.form_version,
            "grid_id": self.grid_id,
            "field": self.field,
            "kind": self.kind,
            "value": self.value,
            "hlc": hlc_mod.to_wire(self.hlc),
            "base": self.base,
        }

    def content(self) -> str:
        """Canonical text of everything a device sent for this seq: equal iff same op."""
        return canonical_json(self.to_wire())

    def digest(self) -> str:
        """SHA-256 of `content()`, to compare a re-sent seq with the stored one cheaply."""
        return hashlib.sha256(self.content().encode()).hexdigest()

    @property
    def op_id(self) -> tuple[str, int]:
        """The op's identity: (device_id, seq)."""
        return (self.device_id, self.seq)

    @property
    def key(self) -> tuple[int, str, int]:
        """The order of the winner rule: the highest (hlc, device_id) wins.

        A device's HLC strictly increases, so two of its ops never tie; the seq only
        makes the order total for a device that breaks that rule.
        """
        return (self.hlc, self.device_id, self.seq)

    def with_(self, **changes: Any) -> Op:
        """A copy with some fields changed."""
        return self._replace(**changes)


class OpStatus(enum.StrEnum):
    """What became of a stored op."""

    APPLIED = "applied"
    QUARANTINED = "quarantined"


class StoredOp(NamedTuple):
    """An op as the server holds it: its arrival position and what became of it
    (a named tuple, as `Op` is)."""

    op: Op
    position: int
    status: OpStatus = OpStatus.APPLIED
    reason: str | None = None
    detail: str = ""

    @property
    def base(self) -> int:
        """The base the merge uses: never at or past the op's own position.

        A device cannot have seen its own op, or anything after it, when it made the
        edit; clamping keeps a wrong or hostile base from claiming otherwise.
        """
        return min(self.op.base, self.position - 1)

    @property
    def applied(self) -> bool:
        return self.status is OpStatus.APPLIED


def _check_int(key: str, value: Any, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise MalformedOp(key, "must be an integer")
    if not low <= value <= MAX_SAFE_INT:
        raise MalformedOp(key, f"must be between {low} and {MAX_SAFE_INT}")


def _check_value(value: Any) -> None:
    """Only JSON values with finite numbers can be stored and compared canonically."""
    if isinstance(value, float) and not math.isfinite(value):
        raise MalformedOp("value", "numbers must be finite")
    if isinstance(value, list):
        for item in value:
            _check_value(item)
    elif isinstance(value, dict):
        for name, item in value.items():
            if not isinstance(name, str):
                raise MalformedOp("value", "object keys must be strings")
            _check_value(item)
    elif value is not None and not isinstance(value, str | int | float | bool):
        raise MalformedOp("value", f"{type(value).__name__} is not a JSON value")
