"""The inbox: items for a user's devices about their records, added in bulk, read in order.

A conflict's item stores only the conflict's id: reading the inbox describes it as it
is then (`conflict_rows.describe`), so a device sees whether it is still open and the
push that found it writes a few bytes per conflict instead of both sides' values.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, select

from sync.store.conflict_rows import describe
from sync.store.sql import bulk_insert, now, stored_time, timestamp
from sync.store.tables import inbox

KINDS = ("conflict", "quarantine", "review", "comment", "reminder")
# Payloads are our own dicts: no cycle check, compact text.
_encode_payload = json.JSONEncoder(check_circular=False, separators=(",", ":")).encode


@dataclass(frozen=True, slots=True)
class Item:
    """One inbox item for one user; `payload` is the kind's JSON object."""

    user_id: int
    kind: str
    record_id: str | None
    payload: dict[str, Any]


def add_items(
    connection: Connection, items: Iterable[Item], moment: dt.datetime | None = None
) -> int:
    """Append items in one statement; how many. Unknown kinds raise ValueError."""
    stamp = stored_time(connection, moment or now())
    rows = []
    encoded: dict[int, str] = {}  # one payload often goes to both sides' users
    for item in items:
        if item.kind not in KINDS:
            raise ValueError(f"unknown inbox kind {item.kind!r}")
        text = encoded.get(id(item.payload))
        if text is None:
            text = encoded[id(item.payload)] = _encode_payload(item.payload)
        rows.append((item.user_id, item.kind, item.record_id, text, stamp))
    if rows:
        bulk_insert(
            connection, inbox, ("user_id", "kind", "record_id", "payload", "created_at"), rows
        )
    return len(rows)


def conflict_items(described: Iterable[dict[str, Any]]) -> list[Item]:
    """An item per conflict (in wire form) for each user whose op is a side of it."""
    items = []
    for conflict in described:
        users = sorted({side["user_id"] for side in conflict["values"] if side["user_id"]})
        named = {"conflict_id": conflict["conflict_id"]}
        items.extend(Item(user, "conflict", conflict["record_id"], named) for user in users)
    return items


def read_items(
    connection: Connection, user_id: int, after: int = 0, limit: int = 100
) -> tuple[list[dict[str, Any]], bool]:
    """The user's items with id above `after`, oldest first, and whether more follow."""
    rows = connection.execute(
        select(inbox)
        .where(inbox.c.user_id == user_id, inbox.c.id > after)
        .order_by(inbox.c.id)
        .limit(limit + 1)
    ).all()
    more = len(rows) > limit
    rows = rows[:limit]
    named = [row.payload["conflict_id"] for row in rows if row.kind == "conflict"]
    conflicts = {conflict["conflict_id"]: conflict for conflict in describe(connection, named)}
    items = [
        {
            "id": row.id,
            "kind": row.kind,
            "record_id": row.record_id,
            "created_at": timestamp(row.created_at),
            "payload": (
                conflicts[row.payload["conflict_id"]] if row.kind == "conflict" else row.payload
            ),
        }
        for row in rows
    ]
    return items, more
