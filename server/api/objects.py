"""How each kind of object's grids and owners are found, for the scope check.

A locator reads a request's view arguments and returns where the object lives:
the grids it belongs to and the users who own it. None means no such object (404).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.models import AttachmentUploader, Device, Grid, User, UserGrid
from sync.store import tables as t


@dataclass(frozen=True)
class Located:
    """The grids an object belongs to and the users who own it."""

    grid_ids: frozenset[int]
    owner_ids: frozenset[int] = frozenset()


Locator = Callable[[Session, Mapping[str, Any]], Located | None]


def _grid(session: Session, args: Mapping[str, Any]) -> Located | None:
    grid_id = session.scalar(select(Grid.id).where(Grid.id == args["grid_id"]))
    return None if grid_id is None else Located(frozenset({grid_id}))


def _user(session: Session, args: Mapping[str, Any]) -> Located | None:
    user_id = session.scalar(select(User.id).where(User.id == args["user_id"]))
    if user_id is None:
        return None
    grids = session.scalars(select(UserGrid.grid_id).where(UserGrid.user_id == user_id))
    return Located(frozenset(grids), frozenset({user_id}))


def _device(session: Session, args: Mapping[str, Any]) -> Located | None:
    user_id = session.scalar(select(Device.user_id).where(Device.id == args["device_id"]))
    if user_id is None:
        return None
    grids = session.scalars(select(UserGrid.grid_id).where(UserGrid.user_id == user_id))
    return Located(frozenset(grids), frozenset({user_id}))


def _record(session: Session, args: Mapping[str, Any]) -> Located | None:
    grid_id = session.scalar(
        select(t.records.c.grid_id).where(t.records.c.record_id == str(args["record_id"]))
    )
    return None if grid_id is None else Located(frozenset({grid_id}))


def _conflict(session: Session, args: Mapping[str, Any]) -> Located | None:
    grid_id = session.scalar(
        select(t.records.c.grid_id)
        .join(t.conflicts, t.conflicts.c.record_id == t.records.c.record_id)
        .where(t.conflicts.c.id == args["conflict_id"])
    )
    return None if grid_id is None else Located(frozenset({grid_id}))


def _op(session: Session, args: Mapping[str, Any]) -> Located | None:
    row = session.execute(
        select(t.ops.c.grid_id, t.ops.c.user_id).where(t.ops.c.position == args["position"])
    ).first()
    return None if row is None else Located(frozenset({row.grid_id}), frozenset({row.user_id}))


def _attachment(session: Session, args: Mapping[str, Any]) -> Located | None:
    from server.attachments import attachment_grid_ids

    sha256 = str(args["sha256"])
    owners = frozenset(
        session.scalars(
            select(AttachmentUploader.user_id).where(AttachmentUploader.sha256 == sha256)
        )
    )
    if not owners:
        return None
    return Located(frozenset(attachment_grid_ids(session, sha256)), owners)


LOCATORS: dict[str, Locator] = {
    "grid": _grid,
    "user": _user,
    "device": _device,
    "record": _record,
    "conflict": _conflict,
    "op": _op,
    "attachment": _attachment,
}
