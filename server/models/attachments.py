"""Attachments: content-addressed blobs (photos, signed documents) and who asked for them."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, ForeignKey, String, func
from sqlalchemy.orm import Mapped, mapped_column

from server.models.base import Base, utcnow


class Attachment(Base):
    """One blob, named by the SHA-256 of its bytes; `stored_at` is set once it is checked."""

    __tablename__ = "attachments"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    content_type: Mapped[str] = mapped_column(String(100))
    created_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow, server_default=func.now())
    stored_at: Mapped[dt.datetime | None]


class AttachmentUploader(Base):
    """A user who announced this blob; they may read it before any record refers to it."""

    __tablename__ = "attachment_uploaders"

    sha256: Mapped[str] = mapped_column(ForeignKey("attachments.sha256"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)


class AttachmentReference(Base):
    """A record one of whose ops named this blob: readers of the record's grid may read it.

    Written for every stored op whose value is an attachment (`sync_service`), whatever
    became of the op, and never deleted: a record's history shows its old values too.
    No foreign keys: a device may name a blob before uploading it.
    """

    __tablename__ = "attachment_references"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    record_id: Mapped[str] = mapped_column(String(36), primary_key=True)
