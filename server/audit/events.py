"""Appending to the audit trail: `record_event` for server actions, `record_push` for ops.

An event is recorded in the caller's session and appended to the chain when that
session commits, as the transaction's very last statements (a `before_commit`
hook): it lands or vanishes with the change it describes. Appending locks the chain
head row (SELECT … FOR UPDATE on PostgreSQL; SQLite writers are serialised by
BEGIN IMMEDIATE) so two transactions never fork the chain. Because that lock is the
last one any transaction takes and is held only for a few inserts and the commit, it
can never close a deadlock cycle with the locks taken before it (the sync clock,
device rows), and concurrent pushes wait on it only for an instant.
"""

from __future__ import annotations

import datetime as dt
import enum
import operator
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from flask import g, has_request_context
from sqlalchemy import event as event_api
from sqlalchemy import exists, insert, select, update
from sqlalchemy.orm import Session

from server.audit.chain import GENESIS_HASH, canonical_json, chain_hash, event_bytes
from server.audit.covered_ops import OpRange, digest_range, digest_rows
from server.models import AuditChainHead, AuditEvent, AuditEventGrid, utcnow
from sync.ops import StoredOp
from sync.store.ingest import op_row

HEAD_ID = 1
_PENDING = "fieldsync.audit_pending"


class Action(enum.StrEnum):
    """What happened; the stable names stored in `audit_events.action`."""

    SIGN_IN = "auth.sign_in"
    SIGN_IN_FAILED = "auth.sign_in_failed"
    SIGN_OUT = "auth.sign_out"
    DEVICE_REGISTERED = "device.registered"
    DEVICE_REVOKED = "device.revoked"
    USER_CREATED = "user.created"
    USER_CHANGED = "user.changed"
    GRID_CREATED = "grid.created"
    GRID_CHANGED = "grid.changed"
    FORM_IMPORTED = "form.imported"
    FORM_PUBLISHED = "form.published"
    FORM_RETIRED = "form.retired"
    REVIEW_DECIDED = "review.decided"
    REVIEW_COMMENTED = "review.commented"
    CONFLICT_RESOLVED = "conflict.resolved"
    QUARANTINE_RELEASED = "quarantine.released"
    EXPORT_CREATED = "export.created"
    ATTACHMENT_UPLOADED = "attachment.uploaded"
    ADMIN_CHANGED = "admin.changed"
    SYNC_PUSH = "sync.push"
    AUDIT_ANCHORED = "audit.anchored"


class AuditError(RuntimeError):
    """The chain cannot be appended to safely (its head is gone, a push is not stored)."""


@dataclass
class AppendedEvent:
    """A recorded event; `id` and `hash` are its place in the chain once committed."""

    action: str
    target_type: str
    target_id: str | None
    details_json: str
    user_id: int | None
    device_id: str | None
    grid_ids: list[int]
    id: int | None = None
    hash: str | None = None
    transaction: Any = field(default=None, repr=False)


def record_event(
    session: Session,
    action: Action | str,
    target_type: str,
    target_id: str | int | None,
    details: Mapping[str, Any] | None = None,
    user_id: int | None = None,
    device_id: str | None = None,
    *,
    grid_ids: Iterable[int] = (),
) -> AppendedEvent:
    """Record one event in the session's transaction; it joins the chain at commit.

    Without `user_id` and `device_id`, the actor is the caller of the current request
    (none outside a request: the command line or a background task). `grid_ids` are
    the grids the event concerns (supervisors of those grids may read it); they are
    also written into the hashed details as `grid_ids`.
    """
    if user_id is None and device_id is None:
        user_id, device_id = _request_caller()
    grids = sorted({int(grid_id) for grid_id in grid_ids})
    body = dict(details or {})
    if grids:
        body["grid_ids"] = grids
    event = AppendedEvent(
        action=str(action),
        target_type=target_type,
        target_id=None if target_id is None else str(target_id),
        details_json=canonical_json(body),
        user_id=user_id,
        device_id=device_id,
        grid_ids=grids,
        transaction=_current_transaction(session),
    )
    session.info.setdefault(_PENDING, []).append(event)
    if not event_api.contains(session, "before_commit", _append_pending):
        event_api.listen(session, "before_commit", _append_pending)
        event_api.listen(session, "after_soft_rollback", _drop_rolled_back)
    return event


def _current_transaction(session: Session) -> Any:
    """The innermost transaction (savepoint or not), begun if none is yet."""
    if session.get_transaction() is None:
        session.connection()
    return session.get_nested_transaction() or session.get_transaction()


def _append_pending(session: Session) -> None:
    """Append the session's recorded events, last thing before COMMIT."""
    if session.in_nested_transaction():
        return  # a savepoint is being released; the real COMMIT comes later
    pending: list[AppendedEvent] = session.info.pop(_PENDING, [])
    if not pending:
        return
    # Take every other lock (flushing pending changes) before the chain head's.
    session.flush()
    last_id, prev_hash = _lock_head(session)
    occurred_at = utcnow()
    rows, grid_rows = [], []
    for event in pending:
        last_id += 1
        content = event_bytes(
            last_id,
            occurred_at,
            event.user_id,
            event.device_id,
            event.action,
            event.target_type,
            event.target_id,
            event.details_json,
        )
        event.id, event.hash = last_id, chain_hash(prev_hash, content)
        rows.append(
            {
                "id": event.id,
                "occurred_at": occurred_at,
                "user_id": event.user_id,
                "device_id": event.device_id,
                "action": event.action,
                "target_type": event.target_type,
                "target_id": event.target_id,
                "details": event.details_json,
                "prev_hash": prev_hash,
                "hash": event.hash,
            }
        )
        grid_rows += [{"grid_id": grid, "event_id": event.id} for grid in event.grid_ids]
        prev_hash = event.hash
    session.execute(insert(AuditEvent), rows)
    if grid_rows:
        session.execute(insert(AuditEventGrid), grid_rows)
    session.execute(
        update(AuditChainHead)
        .where(AuditChainHead.id == HEAD_ID)
        .values(last_event_id=last_id, head_hash=prev_hash, updated_at=occurred_at)
    )


def _drop_rolled_back(session: Session, previous_transaction: Any) -> None:
    """Forget the events recorded in a transaction (or savepoint) that rolled back."""
    pending: list[AppendedEvent] = session.info.get(_PENDING, [])
    session.info[_PENDING] = [
        event for event in pending if not _within(event.transaction, previous_transaction)
    ]


def _within(transaction: Any, ancestor: Any) -> bool:
    while transaction is not None:
        if transaction is ancestor:
            return True
        transaction = transaction.parent
    return False


def record_push(
    session: Session,
    device_id: str,
    user_id: int | None,
    ops: Iterable[Any],
    *,
    received_at: dt.datetime | None = None,
) -> AppendedEvent | None:
    """Append the one event covering the ops a push stored (call after inserting them).

    `ops` are the ops this push stored (mappings or objects with a `seq`): their seqs
    must be one unbroken run. The event's details carry the run (`seq_from`,
    `seq_to`, `count`) and `ops_hash`, a SHA-256 over the stored rows' canonical
    form in seq order, exactly what verify will recompute. A push that stored nothing
    (all duplicates) appends nothing.

    When `ops` are the store's `StoredOp`s and `received_at` their arrival time, their
    rows are rebuilt by `ingest.op_row`, the very function that wrote them, and hashed
    here: both backends hold them exactly as written (on SQLite since migration 0010,
    which took the value column's numeric affinity away). Otherwise the rows are read
    back.
    """
    ops = list(ops)
    seqs = _seqs(ops)
    if not seqs:
        return None
    low, high = min(seqs), max(seqs)
    if high - low + 1 != len(seqs) or len(set(seqs)) != len(seqs):
        raise AuditError("a push's stored ops must be one unbroken run of seqs")
    op_range = OpRange(device_id, low, high)
    connection = session.connection()
    if received_at is not None:
        rows = [op_row(entry, user_id, received_at) for entry in ops]
        if seqs != sorted(seqs):  # a push stores its ops in seq order already
            rows.sort(key=_seq_of)
        found = digest_rows(rows)
    else:
        found = digest_range(connection, op_range)
    if found.count != len(seqs):
        raise AuditError(
            f"the push claims {len(seqs)} ops but {found.count} are stored; "
            "record the push after inserting its ops"
        )
    details = {
        "seq_from": op_range.seq_from,
        "seq_to": op_range.seq_to,
        "count": found.count,
        "ops_hash": found.ops_hash,
    }
    return record_event(
        session,
        Action.SYNC_PUSH,
        "device",
        device_id,
        details,
        user_id=user_id,
        device_id=device_id,
        grid_ids=found.grid_ids,
    )


_seq_of = operator.itemgetter(2)  # an `ops` row's seq


def _request_caller() -> tuple[int | None, str | None]:
    """The user and device authenticated for the current request, if there is one."""
    if not has_request_context():
        return None, None
    return g.get("user_id"), g.get("device_id")


def _seqs(ops: list[Any]) -> list[int]:
    """The ops' seqs; they are all mappings, stored ops or ops (one check, not one per op)."""
    if not ops:
        return []
    if isinstance(ops[0], Mapping):
        return [int(op["seq"]) for op in ops]
    if isinstance(ops[0], StoredOp):
        return [entry.op.seq for entry in ops]
    return [int(op.seq) for op in ops]


def _lock_head(session: Session) -> tuple[int, str]:
    """The chain head, locked until commit; created on the very first append."""
    row = _select_head(session)
    if row is None:
        session.execute(_insert_head_if_missing(session))
        row = _select_head(session)
        # Checked under the lock: a head at zero with events stored means it was lost,
        # and appending would fork the chain.
        if row[0] == 0 and session.scalar(select(exists().where(AuditEvent.id > 0))):
            raise AuditError("the audit chain head is missing while events exist")
    return row[0], row[1]


def _select_head(session: Session):
    statement = (
        select(AuditChainHead.last_event_id, AuditChainHead.head_hash)
        .where(AuditChainHead.id == HEAD_ID)
        .with_for_update()
    )
    return session.execute(statement).one_or_none()


def _insert_head_if_missing(session: Session):
    # Two first appends may race; the loser's insert does nothing and it then waits
    # on the winner's row lock.
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    else:
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    values = {
        "id": HEAD_ID,
        "last_event_id": 0,
        "head_hash": GENESIS_HASH,
        "updated_at": utcnow(),
    }
    return dialect_insert(AuditChainHead).values(values).on_conflict_do_nothing()
