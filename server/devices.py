"""Device registration and bearer tokens (shown once, stored as a SHA-256 hash)."""

from __future__ import annotations

import hashlib
import secrets
import uuid

from sqlalchemy import Select, exists, select
from sqlalchemy.orm import Session

from server.audit.events import Action, record_event
from server.models import Device, User, UserGrid, utcnow
from server.scope import Scope

TOKEN_BYTES = 32


def hash_token(token: str) -> str:
    """The stored form of a bearer token; tokens are random, so one SHA-256 suffices."""
    return hashlib.sha256(token.encode()).hexdigest()


def register_device(session: Session, user: User, name: str = "") -> tuple[Device, str]:
    """A new device for `user` and its bearer token (returned once, never stored)."""
    token = secrets.token_urlsafe(TOKEN_BYTES)
    device = Device(
        id=str(uuid.uuid4()),
        user=user,
        name=name,
        token_hash=hash_token(token),
        acked_seq=0,
    )
    session.add(device)
    session.flush()
    record_event(
        session,
        Action.DEVICE_REGISTERED,
        "device",
        device.id,
        {"name": name},
        user_id=user.id,
        device_id=device.id,
        grid_ids=[grid.id for grid in user.grids],
    )
    return device, token


def device_for_token(session: Session, token: str) -> Device | None:
    """The device `token` was issued to, revoked or not; None when no device holds it."""
    return session.scalar(select(Device).where(Device.token_hash == hash_token(token)))


def is_live(device: Device) -> bool:
    """Whether the device may sync: not revoked, its user not disabled."""
    return device.revoked_at is None and not device.user.disabled


def revoke_device(session: Session, device: Device) -> None:
    """Revoke the device; its token is refused from the next request on."""
    if device.revoked_at is None:
        device.revoked_at = utcnow()
        session.flush()
        record_event(
            session,
            Action.DEVICE_REVOKED,
            "device",
            device.id,
            {"owner_id": device.user_id, "name": device.name},
            grid_ids=[grid.id for grid in device.user.grids],
        )


def devices_query(
    scope: Scope, owner_id: int | None = None, include_revoked: bool = False
) -> Select:
    """Devices of users in the scope (or of one owner), by id."""
    query = select(Device).order_by(Device.id)
    if owner_id is not None:
        query = query.where(Device.user_id == owner_id)
    if not scope.everything:
        in_scope = (
            exists()
            .where(UserGrid.user_id == Device.user_id)
            .where(scope.grid_filter(UserGrid.grid_id))
        )
        query = query.where(in_scope | (Device.user_id == scope.user_id))
    if not include_revoked:
        query = query.where(Device.revoked_at.is_(None))
    return query
