"""Supervisors' review decisions and comments on records."""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text, func
from sqlalchemy.orm import Mapped, mapped_column

from server.models.base import Base, utcnow


class ReviewDecision(enum.StrEnum):
    APPROVED = "approved"
    NEEDS_REVISION = "needs_revision"
    REJECTED = "rejected"


class Review(Base):
    """One review decision on a record; the newest one is the record's review status."""

    __tablename__ = "reviews"
    __table_args__ = (Index("ix_reviews_record_id_id", "record_id", "id"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    record_id: Mapped[str] = mapped_column(String(36))
    decision: Mapped[str] = mapped_column(String(32))
    comment: Mapped[str] = mapped_column(Text, default="")
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow, server_default=func.now())


class Comment(Base):
    """A note on a record, or on one of its fields, that reaches its authors' inboxes."""

    __tablename__ = "comments"
    __table_args__ = (Index("ix_comments_record_id_id", "record_id", "id"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    record_id: Mapped[str] = mapped_column(String(36))
    field: Mapped[str | None] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow, server_default=func.now())


class FlagCheck(Base):
    """A record whose validation flags must be computed again (`server.record_flags`).

    Written in the transaction that changes the record; `mark` tells one request for a
    check from a later one, so a check that read the record before the later change
    leaves the later request in place.
    """

    __tablename__ = "flag_checks"

    record_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    mark: Mapped[str] = mapped_column(String(32))
