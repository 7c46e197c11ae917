"""Server actions through the real API append the events the audit trail promises."""

import json

import pytest
from sqlalchemy import func, select

from server.models import AuditEvent
from tests.api.factories import PASSWORD, build_world
from tests.api.test_attachments import JPEG, announce, claim, upload
from tests.audit.helpers import verify


@pytest.fixture
def world(database):
    world = build_world(database)
    with database.session() as session:
        world.mark = session.scalar(select(func.max(AuditEvent.id)))
    return world


def events_since(world) -> list[dict]:
    with world.database.session() as session:
        rows = session.scalars(
            select(AuditEvent).where(AuditEvent.id > world.mark).order_by(AuditEvent.id)
        )
        return [
            {
                "action": row.action,
                "target": (row.target_type, row.target_id),
                "user_id": row.user_id,
                "device_id": row.device_id,
                "details": json.loads(row.details),
            }
            for row in rows
        ]


def test_signing_in_on_a_device_and_failing_to_are_recorded(client, world):
    bad = {"username": "worker", "password": "wrong", "device_name": "x"}
    assert client.post("/api/v1/devices/register", json=bad).status_code == 401
    good = {"username": "worker", "password": PASSWORD, "device_name": "Redmi 12"}
    reply = client.post("/api/v1/devices/register", json=good)
    assert reply.status_code == 201
    failed, signed_in, registered = events_since(world)
    worker = world.users["worker"]
    assert failed["action"] == "auth.sign_in_failed"
    assert failed["target"] == ("user", str(worker))
    assert failed["user_id"] is None
    assert failed["details"]["reason"] == "wrong_password"
    assert "wrong" not in json.dumps({k: v for k, v in failed["details"].items() if k != "reason"})
    assert (signed_in["action"], signed_in["user_id"]) == ("auth.sign_in", worker)
    assert registered["action"] == "device.registered"
    assert registered["target"] == ("device", reply.get_json()["device_id"])
    assert registered["details"]["name"] == "Redmi 12"
    assert registered["details"]["grid_ids"] == [world.grids["S-C1-R1-G1"]]
    assert verify(world.database).ok


def test_people_and_devices_changed_by_an_admin_name_the_admin(client, world):
    admin, headers = world.users["admin"], world.headers("admin")
    created = client.post(
        "/api/v1/users",
        json={"username": "zhao", "password": PASSWORD, "role": "worker"},
        headers=headers,
    ).get_json()
    user_path = f"/api/v1/users/{created['id']}"
    client.patch(user_path, json={"display_name": "Zhao Lei"}, headers=headers)
    client.put(f"{user_path}/grids", json={"grid_ids": [world.grids["S-C2"]]}, headers=headers)
    client.post(f"{user_path}/password", json={"password": "another long secret"}, headers=headers)
    client.post(f"/api/v1/devices/{world.devices['worker2']}/revoke", headers=headers)
    client.patch(user_path, json={"disabled": True}, headers=headers)
    events = events_since(world)
    assert [e["action"] for e in events] == [
        "user.created",
        "user.changed",
        "user.changed",
        "user.changed",
        "device.revoked",
        "user.changed",
    ]
    assert all(e["user_id"] == admin for e in events)
    assert all(e["device_id"] == world.devices["admin"] for e in events)
    assert events[1]["details"]["display_name"] == {"old": "zhao", "new": "Zhao Lei"}
    assert events[2]["details"]["grid_ids_assigned"] == {"old": [], "new": [world.grids["S-C2"]]}
    assert events[3]["details"] == {"password": "reset", "grid_ids": [world.grids["S-C2"]]}
    assert "another long secret" not in json.dumps(events)
    assert events[4]["target"] == ("device", world.devices["worker2"])
    assert events[5]["details"]["disabled"] == {"old": False, "new": True}
    assert verify(world.database).ok


def test_grid_changes_are_recorded(client, world):
    headers = world.headers("admin")
    parent = world.grids["S-C1-R1"]
    grid = client.post(
        "/api/v1/grids",
        json={
            "code": "S-C1-R1-G9",
            "name": "Grid 9",
            "level": "household_grid",
            "parent_id": parent,
        },
        headers=headers,
    ).get_json()
    client.patch(f"/api/v1/grids/{grid['id']}", json={"name": "Grid Nine"}, headers=headers)
    client.patch(
        f"/api/v1/grids/{grid['id']}",
        json={"parent_id": world.grids["S-C2-R1"]},
        headers=headers,
    )
    client.post(f"/api/v1/grids/{grid['id']}/retire", headers=headers)
    events = events_since(world)
    assert [(e["action"], e["target"]) for e in events] == [
        ("grid.created", ("grid", str(grid["id"])))
    ] + [("grid.changed", ("grid", str(grid["id"])))] * 3
    assert events[1]["details"]["name"] == {"old": "Grid 9", "new": "Grid Nine"}
    assert events[2]["details"]["parent_id"] == {"old": parent, "new": world.grids["S-C2-R1"]}
    assert events[3]["details"]["retired"] == 1


def test_an_attachment_upload_is_recorded(client, world):
    body = claim(JPEG)
    target = announce(client, world, "worker", body).get_json()
    assert upload(client, world, "worker", target, JPEG).status_code == 200
    [event] = events_since(world)
    assert event["action"] == "attachment.uploaded"
    assert event["target"] == ("attachment", body["sha256"])
    assert (event["user_id"], event["details"]["size"]) == (world.users["worker"], len(JPEG))
