"""Storing ops the way a push does (rows in `ops`, then `record_push`), for audit tests."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import func, insert, select

from server.audit import Action, record_event, record_push
from server.db import Database
from sync.ops import StoredOp
from sync.store.tables import op_releases, ops

RECORD = "5b0c6a4e-8f1e-4b8e-9c53-1f0f6f3f2a10"
VALUES = ["王芳", 42, 3.5, None, ["a", "b"], {"lat": 40.1, "lon": 116.3}, True, "x\ty"]


def device(number: int) -> str:
    return str(uuid.UUID(int=number))


def op_rows(device_id: str, seqs: Iterable[int], user_id: int = 1) -> list[dict[str, Any]]:
    """Plausible ops, one per seq, with values of every JSON kind."""
    return [
        {
            "device_id": device_id,
            "seq": seq,
            "user_id": user_id,
            "record_id": RECORD,
            "form_id": "household",
            "form_version": 1,
            "grid_id": 1 + seq % 3,
            "field": f"f{seq % 4}",
            "kind": "set",
            "value": VALUES[seq % len(VALUES)],
            "hlc": (1_760_000_000_000 + seq) << 16,
            "base": 0,
            "reason": "out_of_range" if seq % 5 == 0 else None,
            "detail": "too big" if seq % 5 == 0 else None,
        }
        for seq in seqs
    ]


def store_push(
    database: Database,
    rows: Sequence[dict[str, Any]],
    received_at: dt.datetime | None = None,
) -> None:
    """Insert the rows with the next positions and record the push, in one transaction."""
    with database.session() as session:
        top = session.scalar(select(func.coalesce(func.max(ops.c.position), 0)))
        stamped = []
        for offset, row in enumerate(rows, start=1):
            stamped.append(dict(row, position=top + offset))
            if received_at is not None:
                stamped[-1]["received_at"] = received_at
        session.execute(insert(ops), stamped)
        record_push(session, rows[0]["device_id"], rows[0]["user_id"], rows)


def store_replica_push(
    database: Database, stored: Sequence[StoredOp], user_of: dict[str, int], at: dt.datetime
) -> None:
    """Write the ops a ServerReplica push stored into `ops`, as the SQL store would."""
    if not stored:
        return
    rows = [
        {
            "position": entry.position,
            "device_id": entry.op.device_id,
            "seq": entry.op.seq,
            "user_id": user_of[entry.op.device_id],
            "record_id": entry.op.record_id,
            "form_id": entry.op.form_id,
            "form_version": entry.op.form_version,
            "grid_id": entry.op.grid_id,
            "field": entry.op.field,
            "kind": entry.op.kind,
            "value": entry.op.value,
            "hlc": entry.op.hlc,
            "base": entry.op.base,
            "reason": entry.reason,
            "detail": entry.detail or None,
            "received_at": at,
        }
        for entry in stored
    ]
    with database.session() as session:
        session.execute(insert(ops), rows)
        record_push(session, rows[0]["device_id"], rows[0]["user_id"], rows)


def store_release(database: Database, op_positions: Iterable[int], at: dt.datetime) -> None:
    """Release the ops at these positions as user 1, with the events verify expects."""
    rows = [{"op_position": p, "released_by": 1, "released_at": at} for p in op_positions]
    with database.session() as session:
        session.execute(insert(op_releases), rows)
        for row in rows:
            details = {"position": row["op_position"], "released_at": at}
            record_event(session, Action.QUARANTINE_RELEASED, "op", row["op_position"], details, 1)
