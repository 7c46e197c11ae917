"""Users through the API: sign-in throttle, create, change, disable, grids, passwords."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import update

from server import signin
from server.models import SignInThrottle
from tests.api.factories import PASSWORD
from tests.api.problems import assert_problem

REGISTER = "/api/v1/devices/register"


def sign_in(client, password=PASSWORD, username="worker"):
    return client.post(REGISTER, json={"username": username, "password": password})


def test_sign_in_locks_after_repeated_failures_then_unlocks(client, world, database):
    for _ in range(signin.MAX_USER_FAILURES):
        reply = client.post(REGISTER, json={"username": "worker", "password": "wrong-wrong"})
        assert_problem(reply, 401, "invalid_credentials")
    locked = client.post(REGISTER, json={"username": "worker", "password": PASSWORD})
    assert_problem(locked, 429, "too_many_requests")
    assert int(locked.headers["Retry-After"]) > 0
    # Unknown names lock the same way, so a lock tells nothing about existence.
    for _ in range(signin.MAX_USER_FAILURES):
        client.post(REGISTER, json={"username": "ghost", "password": "wrong-wrong"})
    ghost = client.post(REGISTER, json={"username": "ghost", "password": "wrong-wrong"})
    assert_problem(ghost, 429, "too_many_requests")
    with database.session() as session:
        past = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
        session.execute(update(SignInThrottle).values(locked_until=past))
    assert sign_in(client).status_code == 201


def test_a_good_sign_in_clears_the_failure_count(client, world):
    for _ in range(signin.MAX_USER_FAILURES - 1):
        client.post(REGISTER, json={"username": "worker", "password": "wrong-wrong"})
    assert sign_in(client).status_code == 201
    for _ in range(signin.MAX_USER_FAILURES - 1):
        client.post(REGISTER, json={"username": "worker", "password": "wrong-wrong"})
    assert sign_in(client).status_code == 201


def test_admin_creates_a_user_with_grids(client, world):
    grid = world.grids["S-C2-R1-G1"]
    body = {"username": "new", "password": "long enough pw", "role": "worker", "grid_ids": [grid]}
    reply = client.post("/api/v1/users", json=body, headers=world.headers("admin"))
    assert reply.status_code == 201, reply.get_json()
    created = reply.get_json()
    assert created["role"] == "worker"
    assert [g["id"] for g in created["grids"]] == [grid]
    assert "password" not in created
    assert "password_hash" not in created
    again = client.post("/api/v1/users", json=body, headers=world.headers("admin"))
    assert_problem(again, 409, "conflict")
    login = client.post(REGISTER, json={"username": "new", "password": "long enough pw"})
    assert login.get_json()["grid_ids"] == [grid]


@pytest.mark.parametrize(
    ("change", "path"),
    [
        ({"password": "short"}, "/password"),
        ({"role": "king"}, "/role"),
        ({"grid_ids": [999999]}, "/grid_ids"),
        ({"surprise": 1}, "/surprise"),
    ],
)
def test_bad_user_bodies_name_the_field(client, world, change, path):
    body = {"username": "new", "password": "long enough pw", "role": "worker", **change}
    reply = client.post("/api/v1/users", json=body, headers=world.headers("admin"))
    problem = assert_problem(reply, 422, "validation_failed")
    assert path in [error["path"] for error in problem["errors"]]


def test_disabling_a_user_revokes_their_devices(client, world):
    worker = world.users["worker"]
    reply = client.patch(
        f"/api/v1/users/{worker}", json={"disabled": True}, headers=world.headers("admin")
    )
    assert reply.get_json()["disabled"] is True
    assert_problem(client.get("/api/v1/me", headers=world.headers("worker")), 401, "token_revoked")
    login = client.post(REGISTER, json={"username": "worker", "password": PASSWORD})
    assert_problem(login, 401, "invalid_credentials")


def test_an_admin_cannot_disable_themself(client, world):
    reply = client.patch(
        f"/api/v1/users/{world.users['admin']}",
        json={"disabled": True},
        headers=world.headers("admin"),
    )
    assert_problem(reply, 409, "conflict")


def test_reset_password(client, world):
    worker = world.users["worker"]
    reply = client.post(
        f"/api/v1/users/{worker}/password",
        json={"password": "a brand new one"},
        headers=world.headers("admin"),
    )
    assert reply.status_code == 204
    assert sign_in(client).status_code == 401
    fresh = client.post(REGISTER, json={"username": "worker", "password": "a brand new one"})
    assert fresh.status_code == 201


def test_supervisor_assigns_field_staff_within_their_scope_only(client, world):
    worker = world.users["worker"]
    inside, outside = world.grids["S-C1-R1-G2"], world.grids["S-C2-R1-G1"]
    url = f"/api/v1/users/{worker}/grids"
    ok = client.put(url, json={"grid_ids": [inside]}, headers=world.headers("supervisor"))
    assert [g["id"] for g in ok.get_json()["grids"]] == [inside]
    refused = client.put(url, json={"grid_ids": [outside]}, headers=world.headers("supervisor"))
    assert_problem(refused, 422, "validation_failed")
    other_supervisor = world.add_user("sup2", "supervisor", ["S-C1"])
    staff = client.put(
        f"/api/v1/users/{other_supervisor}/grids",
        json={"grid_ids": [inside]},
        headers=world.headers("supervisor"),
    )
    assert_problem(staff, 403, "forbidden")


def test_supervisor_changes_only_the_part_of_an_assignment_in_their_scope(client, world):
    shared = world.add_user("shared_worker", "worker", ["S-C1-R1-G1", "S-C2-R1-G1"])
    theirs, foreign = world.grids["S-C1-R1-G2"], world.grids["S-C2-R1-G1"]
    url = f"/api/v1/users/{shared}/grids"
    moved = client.put(url, json={"grid_ids": [theirs]}, headers=world.headers("supervisor"))
    assert sorted(g["id"] for g in moved.get_json()["grids"]) == sorted([theirs, foreign])
    emptied = client.put(url, json={"grid_ids": []}, headers=world.headers("supervisor"))
    assert [g["id"] for g in emptied.get_json()["grids"]] == [foreign]
    admin = client.put(url, json={"grid_ids": []}, headers=world.headers("admin"))
    assert admin.get_json()["grids"] == []


def test_user_lists_follow_scope(client, world):
    def names(who, query=""):
        reply = client.get(f"/api/v1/users{query}", headers=world.headers(who))
        return {item["username"] for item in reply.get_json()["items"]}

    assert names("admin") == {"admin", "supervisor", "leader", "worker", "worker2"}
    assert names("supervisor") == {"supervisor", "leader", "worker"}
    assert names("supervisor", "?role=worker") == {"worker"}
    assert_problem(client.get("/api/v1/users", headers=world.headers("worker")), 403, "forbidden")
    reply = client.get("/api/v1/users?limit=0", headers=world.headers("admin"))
    assert_problem(reply, 422, "validation_failed")


def test_a_body_over_the_request_limit_is_413_and_changes_nothing(client, world):
    big = {"username": "huge", "password": "x" * (5 * 1024 * 1024), "role": "worker"}
    reply = client.post("/api/v1/users", json=big, headers=world.headers("admin"))
    assert_problem(reply, 413, "payload_too_large")
    listed = client.get("/api/v1/users", headers=world.headers("admin")).get_json()
    assert "huge" not in {item["username"] for item in listed["items"]}


def test_errors_never_leak_internals(client, world):
    reply = client.post(
        "/api/v1/users",
        data=b'{"username": "x", "password": ',
        content_type="application/json",
        headers=world.headers("admin"),
    )
    body = assert_problem(reply, 400, "invalid_json")
    text = reply.get_data(as_text=True)
    for secret in ("Traceback", "/work/", "SELECT", "sqlalchemy", ".py"):
        assert secret not in text
    assert body["detail"]


def test_nul_a_lone_surrogate_or_nan_is_refused_before_anything_is_stored(client, world):
    bodies = [
        (b'{"username": "a\\ud800", "password": "long enough 1", "role": "worker"}', "/username"),
        (b'{"username": "b", "password": "long \\u0000 1", "role": "worker"}', "/password"),
        (b'{"username": "nan", "password": "long enough 1", "role": "worker", "x": NaN}', None),
    ]
    for body, path in bodies:
        reply = client.post(
            "/api/v1/users",
            data=body,
            content_type="application/json",
            headers=world.headers("admin"),
        )
        problem = assert_problem(reply, 400, "invalid_json")
        assert [error["path"] for error in problem.get("errors", [])] == ([path] if path else [])
    listed = client.get("/api/v1/users", headers=world.headers("admin")).get_json()
    assert not {"a\ud800", "b", "nan"} & {item["username"] for item in listed["items"]}
