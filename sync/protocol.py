"""The sync protocol's handlers: request objects in, response objects out.

They know nothing of HTTP: the server authenticates, validates the JSON Schema,
opens the transaction and turns `SyncRefused` / `MalformedRequest` into problem+json.
What they need of the world (the caller's scope, the forms, the clock) comes in as
values and callables.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection

from sync import hlc as hlc_mod
from sync.messages import CursorExpired, PushResult
from sync.ops import MalformedOp, Op
from sync.store import ingest, reading
from sync.store.inbox import read_items
from sync.store.ingest import GridFilter, Rules
from sync.store.seqs import content_of
from sync.wire_check import plain_fields

__all__ = [
    "Caller",
    "CursorExpired",
    "InboxReply",
    "MalformedRequest",
    "PageReply",
    "PullRequest",
    "PushReply",
    "PushRequest",
    "Rules",
    "inbox",
    "pull",
    "push",
    "snapshot",
]


class MalformedRequest(ValueError):
    """A request whose content cannot be taken; `errors` name JSON pointer paths."""

    def __init__(self, errors: list[dict[str, str]]) -> None:
        super().__init__("; ".join(f"{e['path']}: {e['message']}" for e in errors))
        self.errors = errors


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is syncing: the device (from its token), its user, and the user's scope."""

    device_id: str
    user_id: int
    scope: Collection[int] | None  # the user's grids with sub-grids; None: every grid


@dataclass(frozen=True, slots=True)
class PushRequest:
    """A push body's ops, already checked against push_request.json; `plain` holds each
    op's `wire_check.plain_fields` when the caller computed them on the way."""

    ops: list[dict[str, Any]]
    plain: list[tuple | None] | None = None


@dataclass(frozen=True, slots=True)
class PushReply:
    """What a push did, and the ops it stored (for the audit event)."""

    result: PushResult
    conflicts: list[dict[str, Any]]

    def to_wire(self) -> dict[str, Any]:
        result = self.result
        return {
            "acked_seq": result.acked_seq,
            "applied": result.applied,
            "duplicate": result.duplicate,
            "quarantined": [q.to_wire() for q in result.quarantined],
            "conflicts": self.conflicts,
            "server_hlc": hlc_mod.to_wire(result.server_hlc),
        }


@dataclass(frozen=True, slots=True)
class PullRequest:
    """A pull or snapshot page request: the cursor and the most changes wanted."""

    cursor: int
    limit: int


@dataclass(frozen=True, slots=True)
class PageReply:
    """One pull or snapshot page; each change is its wire JSON text, as the store built it."""

    changes: list[str]
    cursor: int
    more: bool
    server_hlc: int

    def to_wire(self) -> dict[str, Any]:
        return {
            "changes": [json.loads(change) for change in self.changes],
            "cursor": self.cursor,
            "more": self.more,
            "server_hlc": hlc_mod.to_wire(self.server_hlc),
        }

    def encode(self) -> bytes:
        """The reply body: the change texts joined, never decoded on the way."""
        more = "true" if self.more else "false"
        tail = f'"cursor":{self.cursor},"more":{more},"server_hlc":"{self.server_hlc:016x}"}}'
        return ('{"changes":[' + ",".join(self.changes) + "]," + tail).encode()


@dataclass(frozen=True, slots=True)
class InboxReply:
    items: list[dict[str, Any]] = field(default_factory=list)
    more: bool = False

    def to_wire(self) -> dict[str, Any]:
        return {"items": self.items, "more": self.more}


def parse_ops(device_id: str, wire_ops: list[dict[str, Any]]) -> list[Op]:
    """The request's ops as `Op` values; every problem is reported with its path."""
    return ops_of(device_id, parse_contents(device_id, wire_ops))


def ops_of(device_id: str, contents: list[tuple]) -> list[Op]:
    """`Op` values of a device's content tuples, which hold every field after the device.

    `tuple.__new__` builds each in C: the named tuple's own constructor (and `_make`)
    run Python code per op, which costs as much again on a 5,000-op push.
    """
    new = tuple.__new__
    return [new(Op, (device_id, *content)) for content in contents]


def parse_contents(
    device_id: str, wire_ops: list[dict[str, Any]], plain: list[tuple | None] | None = None
) -> list[tuple]:
    """The request's ops as content tuples in `Op` field order after the device (the HLC
    as an int); every problem is reported with its path. `plain` are the ops'
    `plain_fields` if already computed."""
    parsed: list[tuple] = []
    errors: list[dict[str, str]] = []
    for index, data in enumerate(wire_ops):
        # A plainly valid op holds everything `Op.from_wire` checks: read it in one pass.
        content = plain_fields(data) if plain is None else plain[index]
        if content is None:
            try:
                content = content_of(Op.from_wire(data, device_id))
            except MalformedOp as error:
                path = f"/ops/{index}/{error.key}".rstrip("/")
                errors.append({"path": path, "message": str(error)})
                continue
        if content[8] > ingest.MAX_STORED_HLC:
            # 48 bits of milliseconds reach past the year 6000 with the top bit clear.
            errors.append(
                {"path": f"/ops/{index}/hlc", "message": "the first hex digit must be 0-7"}
            )
            continue
        parsed.append(content)
    if errors:
        raise MalformedRequest(errors[:100])
    return parsed


def push(
    connection: Connection,
    caller: Caller,
    request: PushRequest,
    rules: Rules,
    writable_grids: GridFilter,
) -> PushReply:
    """Store a push in the caller's transaction; raises SeqGap, SeqReuse, MalformedRequest."""
    contents = parse_contents(caller.device_id, request.ops, request.plain)
    # A retry after a lost reply is compared as it came, before any op object is built.
    acked = ingest.acked_seq(connection, caller.device_id, plan=True)
    pushed = ingest.resend(connection, caller.device_id, contents, rules, acked)
    if pushed is None:
        sent = ops_of(caller.device_id, contents)
        pushed = ingest.push(
            connection, caller.device_id, caller.user_id, sent, writable_grids, rules, acked=acked
        )
    return PushReply(pushed.result, pushed.conflicts)


def pull(connection: Connection, caller: Caller, request: PullRequest, rules: Rules) -> PageReply:
    """The in-scope changes after the cursor; raises CursorExpired (410: start over)."""
    rows, cursor, more, server_hlc = reading.pull_rows(
        connection,
        caller.scope,
        request.cursor,
        request.limit,
        rules.wall,
        fetch=reading.page_texts,
    )
    return PageReply([text for _position, text in rows], cursor, more, server_hlc)


def snapshot(
    connection: Connection, caller: Caller, request: PullRequest, rules: Rules
) -> PageReply:
    """A page of the whole scope's current state; continue with the reply's cursor."""
    rows, cursor, more, server_hlc = reading.snapshot_rows(
        connection,
        caller.scope,
        request.cursor,
        request.limit,
        rules.wall,
        fetch=reading.page_texts,
    )
    return PageReply([text for _position, text in rows], cursor, more, server_hlc)


def inbox(connection: Connection, caller: Caller, after: int, limit: int) -> InboxReply:
    """The caller's user's inbox items after `after`, oldest first."""
    items, more = read_items(connection, caller.user_id, after, limit)
    return InboxReply(items, more)
