"""Quarantined ops: the list an admin or supervisor inspects, filtered by scope in SQL."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from server.errors import ApiError, ErrorCode
from server.records import hlc_time
from server.scope import Scope
from sync.store import tables as t

o, released = t.ops, t.op_releases


def quarantined_query(scope: Scope, filters: Mapping[str, Any]):
    """SELECT of quarantined, unreleased ops in scope, oldest first, one page."""
    query = (
        select(o)
        .where(o.c.reason.is_not(None))
        .where(~exists().where(released.c.op_position == o.c.position))
        .where(scope.grid_filter(o.c.grid_id) | (o.c.user_id == scope.user_id))
    )
    for name in ("reason", "device_id", "user_id", "record_id", "form_id"):
        if name in filters:
            query = query.where(o.c[name] == filters[name])
    if "after" in filters:
        query = query.where(o.c.position > filters["after"])
    return query.order_by(o.c.position).limit(filters.get("limit", 100) + 1)


def op_view(row: Any) -> dict[str, Any]:
    return {
        "position": row.position,
        "device_id": row.device_id,
        "seq": row.seq,
        "user_id": row.user_id,
        "record_id": row.record_id,
        "form_id": row.form_id,
        "form_version": row.form_version,
        "grid_id": row.grid_id,
        "field": row.field,
        "kind": row.kind,
        "value": row.value,
        "device_time": hlc_time(row.hlc),
        "base": row.base,
        "reason": row.reason,
        "detail": row.detail,
        "received_at": row.received_at,
    }


def list_quarantined(session: Session, scope: Scope, filters: Mapping[str, Any]) -> dict:
    rows = session.execute(quarantined_query(scope, filters)).all()
    limit = filters.get("limit", 100)
    more = len(rows) > limit
    rows = rows[:limit]
    return {
        "items": [op_view(row) for row in rows],
        "next": str(rows[-1].position) if more else None,
    }


def quarantined_op(session: Session, position: int) -> dict[str, Any]:
    """The op quarantined at this position (released or not); an op that applied at once
    was never in quarantine and is not found here."""
    row = session.execute(select(o).where(o.c.position == position)).one()
    if row.reason is None:
        raise ApiError(ErrorCode.NOT_FOUND, f"op {position} was never quarantined")
    view = op_view(row)
    view["released"] = (
        session.scalar(select(released.c.op_position).where(released.c.op_position == position))
        is not None
    )
    return view
