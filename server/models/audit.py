"""The audit trail: a hash chain of events, its head, and the grids each event concerns."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from server.models.base import Base

# On SQLite an INTEGER primary key is the rowid itself: no second index to keep.
EventId = BigInteger().with_variant(Integer(), "sqlite")


class AuditEvent(Base):
    """One link of the chain; the application only ever inserts these rows.

    `details` holds canonical JSON text (see server.audit.chain), so verify hashes
    the stored bytes as they are. `id` is 1, 2, 3… with no gaps, handed out under
    the chain-head lock.
    """

    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_events_target", "target_type", "target_id"),)

    id: Mapped[int] = mapped_column(EventId, primary_key=True, autoincrement=False)
    occurred_at: Mapped[dt.datetime] = mapped_column(index=True)
    user_id: Mapped[int | None] = mapped_column(Integer, index=True)
    device_id: Mapped[str | None] = mapped_column(String(36), index=True)
    action: Mapped[str] = mapped_column(String(64), index=True)
    target_type: Mapped[str] = mapped_column(String(32))
    target_id: Mapped[str | None] = mapped_column(String(100))
    details: Mapped[str] = mapped_column(Text)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditChainHead(Base):
    """The one row (id 1) holding the newest event; appenders lock it to never fork."""

    __tablename__ = "audit_chain_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last_event_id: Mapped[int] = mapped_column(BigInteger)
    head_hash: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[dt.datetime]


class AuditEventGrid(Base):
    """Which grids an event concerns: the index supervisors' scope is checked against.

    Derived from each event's details (`grid_ids`) when it is appended; it decides
    who may read an event, never whether the chain is intact.
    """

    __tablename__ = "audit_event_grids"

    grid_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    event_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
