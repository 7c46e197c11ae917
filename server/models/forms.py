"""Forms and their versions: draft, then published (immutable), then retired."""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import ForeignKey, Index, Integer, String, UniqueConstraint, func
from sqlalchemy.orm import Mapped, mapped_column

from server.models.base import Base, utcnow


class VersionStatus(enum.StrEnum):
    DRAFT = "draft"
    PUBLISHED = "published"
    RETIRED = "retired"


class StoredForm(Base):
    """A form: its id and its title in each language (those of its newest version)."""

    __tablename__ = "forms"

    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    title: Mapped[dict]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow, server_default=func.now())


class StoredFormVersion(Base):
    """One version's JSON definition; `digest` is the SHA-256 of its canonical JSON."""

    __tablename__ = "form_versions"
    __table_args__ = (
        UniqueConstraint("form_id", "version"),
        Index("ix_form_versions_status", "status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    form_id: Mapped[str] = mapped_column(ForeignKey("forms.id"))
    version: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default=VersionStatus.DRAFT)
    definition: Mapped[dict]
    digest: Mapped[str] = mapped_column(String(64))
    source_format: Mapped[str] = mapped_column(String(16))
    source_name: Mapped[str] = mapped_column(String(300), default="")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow, server_default=func.now())
    published_at: Mapped[dt.datetime | None]
    retired_at: Mapped[dt.datetime | None]
