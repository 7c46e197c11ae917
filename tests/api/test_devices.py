"""Device registration, listing and revocation through the real app."""

from __future__ import annotations

import gzip
import json

from sqlalchemy import select

from server.devices import hash_token
from server.models import Device
from server.users import MAX_USERNAME
from tests.api.factories import PASSWORD
from tests.api.problems import assert_problem


def register(client, username, password=PASSWORD, **extra):
    body = {"username": username, "password": password, **extra}
    return client.post("/api/v1/devices/register", json=body)


def test_register_returns_a_token_once_and_stores_only_its_hash(client, world, database):
    response = register(client, "worker", device_name="Redmi 12")
    assert response.status_code == 201
    body = response.get_json()
    assert set(body) == {"device_id", "token", "user", "grid_ids"}
    assert body["user"] == {"id": world.users["worker"], "username": "worker", "role": "worker"}
    assert body["grid_ids"] == [world.grids["S-C1-R1-G1"]]
    with database.session() as session:
        device = session.get(Device, body["device_id"])
        assert device.name == "Redmi 12"
        assert device.token_hash == hash_token(body["token"])
        assert body["token"] not in device.token_hash
    me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {body['token']}"})
    assert me.get_json()["username"] == "worker"


def test_register_takes_a_gzipped_body_as_devices_send_it(client, world):
    small = {"username": "worker", "password": PASSWORD, "device_name": "phone"}
    response = client.post(
        "/api/v1/devices/register",
        data=gzip.compress(json.dumps(small).encode()),
        headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
    )
    assert response.status_code == 201, response.get_json()


def test_a_bomb_in_a_gzipped_api_body_is_too_large(client, world, settings):
    response = client.post(
        "/api/v1/devices/register",
        data=gzip.compress(b" " * (settings.max_request_bytes + 1)),
        headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
    )
    assert_problem(response, 413, "payload_too_large")


def test_register_for_admin_gives_every_grid(client, world):
    assert register(client, "admin").get_json()["grid_ids"] is None


def test_wrong_password_and_unknown_user_look_the_same(client, world):
    code = "invalid_credentials"
    wrong = assert_problem(register(client, "worker", "wrong password!"), 401, code)
    unknown = assert_problem(register(client, "nobody", "wrong password!"), 401, code)
    assert wrong["detail"] == unknown["detail"]


def test_register_checks_its_body_against_register_request_json(client, world, database):
    with database.session() as session:
        devices_before = session.scalars(select(Device.id)).all()
    body = assert_problem(
        client.post("/api/v1/devices/register", json={"username": "worker"}),
        422,
        "schema_violation",
    )
    assert body["errors"] == [{"path": "", "message": "'password' is required"}]
    refused = {
        "/username": {"username": "w" * (MAX_USERNAME + 1)},
        "/device_name": {"device_name": "d" * 201},
        "/password": {"password": ""},
        "": {"serial": "x"},
    }
    for path, change in refused.items():
        sent = {"username": "worker", "password": PASSWORD, **change}
        reply = client.post("/api/v1/devices/register", json=sent)
        body = assert_problem(reply, 422, "schema_violation")
        assert [error["path"] for error in body["errors"]] == [path], body
    with database.session() as session:
        assert session.scalars(select(Device.id)).all() == devices_before
    assert_problem(
        client.post("/api/v1/devices/register", data="username=x", content_type="text/plain"),
        415,
        "unsupported_media_type",
    )
    assert_problem(
        client.post("/api/v1/devices/register", data="{", content_type="application/json"),
        400,
        "invalid_json",
    )


def test_revocation_refuses_the_token_at_once(client, world):
    headers = world.headers("worker")
    assert client.get("/api/v1/me", headers=headers).status_code == 200
    device_id = world.devices["worker"]
    reply = client.post(f"/api/v1/devices/{device_id}/revoke", headers=headers)
    assert reply.status_code == 200
    assert reply.get_json()["revoked_at"] is not None
    assert_problem(client.get("/api/v1/me", headers=headers), 401, "token_revoked")


def test_an_unknown_token_is_told_apart_from_a_revoked_device(client, world):
    unknown = assert_problem(
        client.get("/api/v1/me", headers={"Authorization": "Bearer never-issued"}),
        401,
        "device_unknown",
    )
    headers = world.headers("worker")
    client.post(f"/api/v1/devices/{world.devices['worker']}/revoke", headers=headers)
    revoked = assert_problem(client.get("/api/v1/me", headers=headers), 401, "token_revoked")
    for body in (unknown, revoked):
        assert "never-issued" not in body["detail"]
        assert world.devices["worker"] not in body["detail"]


def test_device_list_by_role(client, world):
    def ids(who):
        reply = client.get("/api/v1/devices", headers=world.headers(who))
        assert reply.status_code == 200
        return {item["user"]["username"] for item in reply.get_json()["items"]}

    assert ids("admin") == {"admin", "supervisor", "leader", "worker", "worker2"}
    assert ids("supervisor") == {"supervisor", "leader", "worker"}
    assert ids("worker") == {"worker"}
    assert ids("worker2") == {"worker2"}


def test_device_list_shows_last_seen_and_acked_seq(client, world, database):
    client.get("/api/v1/me", headers=world.headers("worker"))
    reply = client.get(f"/api/v1/devices/{world.devices['worker']}", headers=world.headers("admin"))
    body = reply.get_json()
    assert body["last_seen_at"] is not None
    assert body["acked_seq"] == 0
    assert body["last_sync_at"] is None


def test_a_worker_cannot_see_or_revoke_a_colleagues_device(client, world, database):
    world.add_user("colleague", "worker", ["S-C1-R1-G1"])
    target = world.devices["colleague"]
    assert_problem(
        client.get(f"/api/v1/devices/{target}", headers=world.headers("worker")), 404, "not_found"
    )
    assert_problem(
        client.post(f"/api/v1/devices/{target}/revoke", headers=world.headers("worker")),
        404,
        "not_found",
    )
    with database.session() as session:
        assert session.scalar(select(Device.revoked_at).where(Device.id == target)) is None


def test_device_pages(client, world):
    first = client.get("/api/v1/devices?limit=2", headers=world.headers("admin")).get_json()
    assert len(first["items"]) == 2
    second = client.get(
        f"/api/v1/devices?limit=2&after={first['next']}", headers=world.headers("admin")
    ).get_json()
    third = client.get(
        f"/api/v1/devices?limit=2&after={second['next']}", headers=world.headers("admin")
    ).get_json()
    seen = [item["id"] for page in (first, second, third) for item in page["items"]]
    assert len(seen) == len(set(seen)) == 5
    assert third["next"] is None
