"""The values a sync server hands back (push results, pull pages) and its refusals.

Both the reference replica and the SQL store's handlers speak these, so tests and the
device client can drive either one.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from sync import hlc
from sync.conflicts import Conflict
from sync.ops import StoredOp


class SyncRefused(Exception):
    """A request refused as a whole; nothing of it is stored."""


class SeqGap(SyncRefused):
    """The ops do not continue from the acknowledged seq."""

    def __init__(self, expected_seq: int) -> None:
        super().__init__(f"expected seq {expected_seq}")
        self.expected_seq = expected_seq


class SeqReuse(SyncRefused):
    """A seq was sent again with other content."""

    def __init__(self, seq: int) -> None:
        super().__init__(f"seq {seq} was already used for another op")
        self.seq = seq


class CursorExpired(SyncRefused):
    """The pull cursor is not honoured: the device starts over from a snapshot.

    The cursor is ahead of the newest position (the server lost data), or since it a
    record the device may hold left its scope, or the scope itself changed (`why`).
    """

    def __init__(self, cursor: int, newest: int, why: str = "") -> None:
        super().__init__(why or f"cursor {cursor} is ahead of the newest position {newest}")
        self.cursor = cursor
        self.newest = newest


def left_scope_message(cursor: int) -> str:
    """Why a cursor after which a record left the scope is refused."""
    return f"a record left your scope after cursor {cursor}: start over from a snapshot"


class ReleaseRefused(SyncRefused):
    """An op asked to be released is not a releasable quarantined op."""

    def __init__(self, op_id: tuple[str, int], why: str) -> None:
        super().__init__(f"op {op_id[0]}#{op_id[1]}: {why}")
        self.op_id = op_id
        self.why = why


@dataclass(frozen=True, slots=True)
class QuarantinedOp:
    """An op stored without effect, and why."""

    seq: int
    record_id: str
    field: str
    reason: str
    detail: str

    def to_wire(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "record_id": self.record_id,
            "field": self.field,
            "reason": self.reason,
            "detail": self.detail,
        }


@dataclass(frozen=True, slots=True)
class Change:
    """A field's current winning state at the position it last changed."""

    record_id: str
    form_id: str
    form_version: int
    grid_id: int
    field: str
    value: Any
    hlc: int
    device_id: str
    position: int

    def to_wire(self) -> dict[str, Any]:
        return {
            "record_id": self.record_id,
            "form_id": self.form_id,
            "form_version": self.form_version,
            "grid_id": self.grid_id,
            "field": self.field,
            "value": self.value,
            "hlc": hlc.to_wire(self.hlc),
            "device_id": self.device_id,
            "position": self.position,
        }

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> Change:
        return cls(
            record_id=data["record_id"],
            form_id=data["form_id"],
            form_version=data["form_version"],
            grid_id=data["grid_id"],
            field=data["field"],
            value=data["value"],
            hlc=hlc.from_wire(data["hlc"]),
            device_id=data["device_id"],
            position=data["position"],
        )


@dataclass(frozen=True, slots=True)
class PushResult:
    """What a push did: the acknowledged seq, the counts, quarantine and conflicts."""

    acked_seq: int
    applied: int
    duplicate: int
    quarantined: list[QuarantinedOp]
    conflicts: list[Conflict]
    server_hlc: int
    stored: list[StoredOp] = field(default_factory=list)  # newly stored, position order
    received_at: dt.datetime | None = None  # when `stored` arrived (their `received_at`)


@dataclass(frozen=True, slots=True)
class Page:
    """A page of pull or snapshot: changes oldest first, the next cursor, and `more`."""

    changes: list[Change]
    cursor: int
    more: bool
    server_hlc: int


@dataclass(frozen=True, slots=True)
class ReleaseResult:
    """What releasing quarantined ops did: the ops now applied and new conflicts."""

    released: list[StoredOp]
    conflicts: list[Conflict]
