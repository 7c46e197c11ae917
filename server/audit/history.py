"""A record's history and its state at any past moment, computed from the stored ops.

Both replay the record's ops through the merge rules of `sync.merge` (the same
code the replicas use), so what the audit shows is what the merge did. An op takes
effect at its arrival, or at its release when it was quarantined and later released.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, select

from server.audit.chain import format_time
from server.audit.events import Action
from server.models import AuditEvent, Device, User
from server.scope import Scope
from sync import hlc
from sync.conflicts import find_conflicts, resolves
from sync.merge import Merged, fold
from sync.ops import Op, OpStatus, StoredOp
from sync.store.tables import op_releases, ops, records

# Events about a record that target something else (a conflict, an op) and carry
# the record's id in their details.
RECORD_LINKED = (Action.CONFLICT_RESOLVED, Action.QUARANTINE_RELEASED)


@dataclass(frozen=True)
class OpRow:
    """One stored op of the record, with its release if it had one."""

    stored: StoredOp  # with its status today
    user_id: int
    received_at: dt.datetime
    quarantine_reason: str | None
    quarantine_detail: str | None
    released_at: dt.datetime | None
    released_by: int | None

    def applied_at(self, moment: dt.datetime) -> bool:
        """Whether the op was in force at `moment`."""
        if self.received_at > moment:
            return False
        if self.quarantine_reason is None:
            return True
        return self.released_at is not None and self.released_at <= moment


def _utc(value: dt.datetime) -> dt.datetime:
    # SQLite hands back naive UTC times; PostgreSQL aware ones.
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def load_ops(connection: Connection, record_id: str) -> list[OpRow]:
    """The record's stored ops in arrival order."""
    statement = (
        select(ops, op_releases.c.released_at, op_releases.c.released_by)
        .outerjoin(op_releases, op_releases.c.op_position == ops.c.position)
        .where(ops.c.record_id == record_id)
        .order_by(ops.c.position)
    )
    found = []
    for row in connection.execute(statement):
        m = row._mapping
        op = Op(
            m[ops.c.device_id],
            m[ops.c.seq],
            m[ops.c.record_id],
            m[ops.c.form_id],
            m[ops.c.form_version],
            m[ops.c.grid_id],
            m[ops.c.field],
            m[ops.c.kind],
            m[ops.c.value],
            m[ops.c.hlc],
            m[ops.c.base],
        )
        released_at = m[op_releases.c.released_at]
        applied = m[ops.c.reason] is None or released_at is not None
        status = OpStatus.APPLIED if applied else OpStatus.QUARANTINED
        found.append(
            OpRow(
                stored=StoredOp(op, m[ops.c.position], status, m[ops.c.reason]),
                user_id=m[ops.c.user_id],
                received_at=_utc(m[ops.c.received_at]),
                quarantine_reason=m[ops.c.reason],
                quarantine_detail=m[ops.c.detail],
                released_at=None if released_at is None else _utc(released_at),
                released_by=m[op_releases.c.released_by],
            )
        )
    return found


def field_value(merged: Merged, record_id: str, field: str) -> Any:
    """A field's merged value (None when nothing applied set it)."""
    choices = merged.choice_sets.get((record_id, field))
    if choices is not None:
        return choices.value()
    winner = merged.registers.get((record_id, field))
    return None if winner is None else winner.value


def state_at(rows: Iterable[OpRow], record_id: str, moment: dt.datetime) -> dict[str, Any] | None:
    """The record as it was at `moment`; None when no op of it was in force yet."""
    moment = _utc(moment)
    in_force = [
        StoredOp(row.stored.op, row.stored.position) for row in rows if row.applied_at(moment)
    ]
    merged = fold(in_force)
    head = merged.records.get(record_id)
    if head is None:
        return None
    fields = {
        field: field_value(merged, record_id, field)
        for rid, field in sorted({*merged.registers, *merged.choice_sets})
        if rid == record_id
    }
    return {
        "record_id": record_id,
        "as_of": format_time(moment),
        "form_id": head.form_id,
        "form_version": head.form_version,
        "grid_id": head.grid_id,
        "deleted": merged.deleted(record_id),
        "position": max(entry.position for entry in in_force),
        "fields": fields,
    }


def _device_time(stamp: int) -> str:
    return format_time(dt.datetime.fromtimestamp(hlc.millis_of(stamp) / 1000, dt.UTC))


def changes(rows: list[OpRow], record_id: str) -> list[dict[str, Any]]:
    """Every arrival and release, in time order, with each field's old and new value."""
    steps: list[tuple[dt.datetime, int, int, str, OpRow]] = [
        (row.received_at, 0, row.stored.position, "arrival", row) for row in rows
    ]
    steps += [
        (row.released_at, 1, row.stored.position, "release", row)
        for row in rows
        if row.released_at is not None
    ]
    # Arrivals of one push share a time; their positions order them.
    steps.sort(key=lambda step: step[:3])
    merged = Merged()
    out = []
    for _time, _order, position, kind, row in steps:
        op = row.stored.op
        old = field_value(merged, record_id, op.field)
        takes_effect = kind == "release" or row.quarantine_reason is None
        if takes_effect:
            merged.apply(StoredOp(op, row.stored.position))
        new = field_value(merged, record_id, op.field)
        entry = {
            "kind": kind,
            "position": position,
            "server_time": format_time(row.received_at if kind == "arrival" else row.released_at),
            "device_time": _device_time(op.hlc),
            "hlc": hlc.to_wire(op.hlc),
            "device_id": op.device_id,
            "seq": op.seq,
            "user_id": row.user_id,
            "field": op.field,
            "op": op.kind,
            "value": op.value,
            "base": op.base,
            "old": old,
            "new": new,
            "status": "applied" if takes_effect else "quarantined",
            "reason": row.quarantine_reason,
            "detail": row.quarantine_detail,
        }
        if kind == "release":
            entry["released_by"] = row.released_by
        out.append(entry)
    return out


def conflicts(rows: list[OpRow]) -> list[dict[str, Any]]:
    """The record's conflicts (by the rules of `sync.conflicts`) and what resolved each."""
    current = [row.stored for row in rows]
    users = {(row.stored.op.device_id, row.stored.op.seq): row.user_id for row in rows}
    by_id = {entry.op.op_id: entry for entry in current}
    found = []
    for conflict, resolved in find_conflicts(current).items():
        first, second = by_id[conflict.first], by_id[conflict.second]
        resolver = None
        if resolved:
            resolver = min(
                (
                    entry
                    for entry in current
                    if entry.applied
                    and entry.op.field == conflict.field
                    and resolves(entry, conflict.first_position, conflict.second_position)
                ),
                key=lambda entry: entry.position,
            )
        found.append(
            {
                "field": conflict.field,
                "status": "resolved" if resolved else "open",
                "values": [
                    {
                        "device_id": side.op.device_id,
                        "user_id": users[side.op.op_id],
                        "seq": side.op.seq,
                        "position": side.position,
                        "hlc": hlc.to_wire(side.op.hlc),
                        "value": side.op.value,
                        "winner": side.op.op_id == conflict.winner,
                    }
                    for side in (first, second)
                ],
                "resolved_by": None
                if resolver is None
                else {
                    "device_id": resolver.op.device_id,
                    "user_id": users[resolver.op.op_id],
                    "seq": resolver.op.seq,
                    "position": resolver.position,
                    "value": resolver.op.value,
                },
            }
        )
    found.sort(key=lambda item: (item["values"][0]["position"], item["values"][1]["position"]))
    return found


def record_events(connection: Connection, record_id: str) -> list[dict[str, Any]]:
    """Audit events about the record: review decisions, comments, resolutions, releases.

    Resolutions and releases target a conflict or an op and name the record in their
    details; the action index narrows those before the text match.
    """
    named = f'"record_id":{json.dumps(record_id, ensure_ascii=False)}'
    statement = (
        select(AuditEvent)
        .where(
            ((AuditEvent.target_type == "record") & (AuditEvent.target_id == record_id))
            | (
                AuditEvent.action.in_([str(action) for action in RECORD_LINKED])
                & AuditEvent.details.contains(named, autoescape=True)
            )
        )
        .order_by(AuditEvent.id)
    )
    return [
        {
            "event_id": row.id,
            "server_time": format_time(row.occurred_at),
            "action": row.action,
            "user_id": row.user_id,
            "device_id": row.device_id,
            "details": json.loads(row.details),
        }
        for row in connection.execute(statement)
    ]


def record_history(connection: Connection, record_id: str, scope: Scope) -> dict[str, Any] | None:
    """Everything that happened to a record, its child rows in the scope (a row in a grid
    outside it is not shown); None when the server never heard of the record."""
    rows = load_ops(connection, record_id)
    events = record_events(connection, record_id)
    if not rows and not events:
        return None
    history_changes = changes(rows, record_id)
    _name_people(connection, history_changes, events)
    children = connection.scalars(
        select(records.c.record_id)
        .where(records.c.parent_id == record_id, scope.grid_filter(records.c.grid_id))
        .order_by(records.c.record_id)
    )
    return {
        "record_id": record_id,
        "changes": history_changes,
        "conflicts": conflicts(rows),
        "events": events,
        "children": list(children),
    }


def _name_people(connection: Connection, *lists: list[dict[str, Any]]) -> None:
    """Add usernames and device names: one query for each, whatever the history's length."""
    user_ids = {e["user_id"] for items in lists for e in items if e.get("user_id") is not None}
    device_ids = {e["device_id"] for items in lists for e in items if e.get("device_id")}
    usernames = dict(
        connection.execute(select(User.id, User.username).where(User.id.in_(user_ids))).all()
    )
    device_names = dict(
        connection.execute(select(Device.id, Device.name).where(Device.id.in_(device_ids))).all()
    )
    for items in lists:
        for entry in items:
            entry["username"] = usernames.get(entry.get("user_id"))
            entry["device_name"] = device_names.get(entry.get("device_id"))
