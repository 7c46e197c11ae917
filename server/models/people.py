"""People, their devices and the grid tree they work in."""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, String, func
from sqlalchemy.orm import Mapped, mapped_column, relationship

from server.models.base import Base, utcnow


class Role(enum.StrEnum):
    ADMIN = "admin"
    SUPERVISOR = "supervisor"
    GRID_LEADER = "grid_leader"
    WORKER = "worker"


class GridLevel(enum.StrEnum):
    STREET = "street"
    COMMUNITY = "community"
    COMPOUND = "compound"
    HOUSEHOLD_GRID = "household_grid"
    ENTERPRISE = "enterprise"
    INSTITUTION = "institution"


class Grid(Base):
    """A node of the grid tree; `path` is the materialised path '/1/4/9/'."""

    __tablename__ = "grids"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    level: Mapped[str] = mapped_column(String(32))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("grids.id"))
    path: Mapped[str] = mapped_column(String(1000), index=True)
    retired_at: Mapped[dt.datetime | None]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow, server_default=func.now())

    parent: Mapped[Grid | None] = relationship(remote_side=[id])


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(100), unique=True)
    display_name: Mapped[str] = mapped_column(String(200), default="")
    role: Mapped[str] = mapped_column(String(32))
    password_hash: Mapped[str] = mapped_column(String(300))
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[dt.datetime | None]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow, server_default=func.now())

    grids: Mapped[list[Grid]] = relationship(secondary="user_grids")


class UserGrid(Base):
    """A user's assignment to a grid; their scope is these grids and all below them."""

    __tablename__ = "user_grids"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    grid_id: Mapped[int] = mapped_column(ForeignKey("grids.id"), primary_key=True)


class Device(Base):
    """A phone registered by a user; the bearer token is stored hashed."""

    __tablename__ = "devices"
    __table_args__ = (Index("ix_devices_token_hash", "token_hash", unique=True),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    token_hash: Mapped[str] = mapped_column(String(64))
    acked_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    # The user's scope when the device last pulled from the start (sync_service.scope_key):
    # a pull cursor only holds for the scope it was built in. `snapshot_from` is the
    # newest position when the device's last snapshot began.
    pulled_scope: Mapped[str | None] = mapped_column(String(64))
    snapshot_from: Mapped[int | None] = mapped_column(BigInteger)
    registered_at: Mapped[dt.datetime] = mapped_column(default=utcnow, server_default=func.now())
    last_seen_at: Mapped[dt.datetime | None]
    last_sync_at: Mapped[dt.datetime | None]
    revoked_at: Mapped[dt.datetime | None]

    user: Mapped[User] = relationship()
