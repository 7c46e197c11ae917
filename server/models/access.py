"""Sign-in throttling: failures counted per username and per source address."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from server.models.base import Base


class SignInThrottle(Base):
    """Failed sign-ins under one key ("user:NAME" or "ip:ADDRESS") within a window."""

    __tablename__ = "sign_in_throttle"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    window_started_at: Mapped[dt.datetime]
    locked_until: Mapped[dt.datetime | None]
