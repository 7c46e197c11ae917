"""Records, conflicts and quarantined ops made through the server's real push path."""

from __future__ import annotations

import itertools
import time
import uuid
from typing import Any

from sqlalchemy import select

from server.devices import register_device
from server.form_store import install_builtin
from server.models import Device, User
from sync.store import tables as t
from tests.api.factories import World

FORM = "hazard_check"
_counter = itertools.count(1)


def install_forms(world: World) -> None:
    with world.database.session() as session:
        install_builtin(session)


def _hlc() -> str:
    return f"{(int(time.time() * 1000) << 16) + next(_counter):016x}"


def wire_ops(
    world: World,
    device_id: str,
    edits: list[tuple[str, str, int, Any]],
    base=0,
    kind="set",
) -> list[dict[str, Any]]:
    """(record_id, field, grid_id, value) edits as the device's next ops, in wire form."""
    with world.database.session() as session:
        acked = session.get(Device, device_id).acked_seq
    return [
        {
            "seq": n,
            "record_id": record_id,
            "form_id": FORM,
            "form_version": 1,
            "grid_id": grid_id,
            "field": field,
            "kind": kind,
            "value": value,
            "hlc": _hlc(),
            "base": base,
        }
        for n, (record_id, field, grid_id, value) in enumerate(edits, start=acked + 1)
    ]


def push(
    world: World,
    settings,
    device_id: str,
    edits: list[tuple[str, str, int, Any]],
    base=0,
    kind="set",
):
    """Push (record_id, field, grid_id, value) ops of one kind from a device; the reply."""
    from server.sync_service import push as push_ops
    from server.sync_service import rules_for, warm

    known = warm(world.database, {(FORM, 1)})
    ops = wire_ops(world, device_id, edits, base, kind)
    with world.database.session() as session:
        device = session.get(Device, device_id)
        rules = rules_for(session, settings, known)
        return push_ops(session, device, {"ops": ops}, rules).to_wire()


def add_record(world: World, settings, who: str, grid_code: str, **values) -> str:
    """A hazard check record pushed by `who`'s device in that grid; its id."""
    record_id = str(uuid.uuid4())
    values = {"address": "1 Main St", "severity": "low", **values}
    grid_id = world.grids[grid_code]
    push(
        world,
        settings,
        world.devices[who],
        [(record_id, field, grid_id, value) for field, value in values.items()],
    )
    return record_id


def add_photo_rows(world: World, settings, record_id: str, grids: dict[str, str]) -> dict[str, str]:
    """One photo row of the record per user, pushed by that user's device in the grid
    given for them (which may be outside the record's grid); row ids by user."""
    rows = {}
    for who, grid_code in grids.items():
        row_id, grid_id = str(uuid.uuid4()), world.grids[grid_code]
        values = {"_parent": record_id, "_group": "photos", "_order": 1, "caption": who}
        push(
            world,
            settings,
            world.devices[who],
            [(row_id, f, grid_id, v) for f, v in values.items()],
        )
        rows[who] = row_id
    return rows


def second_device(world: World, who: str) -> str:
    with world.database.session() as session:
        user = session.get(User, world.users[who])
        device, _token = register_device(session, user, "second phone")
        return device.id


def add_conflict(world: World, settings, who: str, grid_code: str) -> tuple[str, int]:
    """A record whose severity two devices set concurrently: (record id, conflict id)."""
    record_id = add_record(world, settings, who, grid_code)
    grid_id = world.grids[grid_code]
    other = second_device(world, who)
    push(world, settings, world.devices[who], [(record_id, "severity", grid_id, "high")], base=0)
    push(world, settings, other, [(record_id, "severity", grid_id, "medium")], base=0)
    with world.database.session() as session:
        conflict_id = session.scalar(
            select(t.conflicts.c.id)
            .where(t.conflicts.c.record_id == record_id, t.conflicts.c.status == "open")
            .order_by(t.conflicts.c.id.desc())
        )
    assert conflict_id is not None
    return record_id, conflict_id


def add_quarantined(world: World, settings, who: str, grid_code: str) -> int:
    """An op quarantined for naming a field its form lacks: its position."""
    record_id = add_record(world, settings, who, grid_code)
    reply = push(
        world,
        settings,
        world.devices[who],
        [(record_id, "no_such_field", world.grids[grid_code], 1)],
    )
    assert reply["quarantined"], reply
    with world.database.session() as session:
        return session.scalar(
            select(t.ops.c.position).where(
                t.ops.c.record_id == record_id, t.ops.c.reason.is_not(None)
            )
        )
