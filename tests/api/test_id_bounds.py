"""Ids past their column's range: 404 in a path, 422 in a query or body, never a 500.

PostgreSQL refuses to compare an INTEGER column with 2^31 or a BIGINT one with 2^63
(SQLite just finds nothing), so every id the API is given is bounded first.
"""

import base64
import json

import pytest

from tests.api.problems import assert_problem

INT32 = 2**31  # one past an INTEGER id
HUGE = 10**20  # past BIGINT too

PATHS = [
    ("GET", f"/api/v1/grids/{INT32}"),
    ("POST", f"/api/v1/grids/{HUGE}/retire"),
    ("GET", f"/api/v1/users/{INT32}"),
    ("PUT", f"/api/v1/users/{HUGE}/grids"),
    ("GET", f"/api/v1/forms/household/versions/{INT32}"),
    ("GET", f"/api/v1/quarantine/{HUGE}"),
    ("POST", f"/api/v1/quarantine/{HUGE}/release"),
    ("POST", f"/api/v1/conflicts/{HUGE}/resolve"),
]
QUERIES = [
    f"/api/v1/audit/events?after={HUGE}",
    f"/api/v1/audit/events?user_id={INT32}",
    f"/api/v1/audit/events?grid_id={INT32}",
    f"/api/v1/devices?user_id={INT32}",
    f"/api/v1/grids?under={INT32}",
    f"/api/v1/grids?after={HUGE}",
    f"/api/v1/records?grid={INT32}",
    f"/api/v1/records?author={INT32}",
    f"/api/v1/records/export?form=household&version={INT32}",
    f"/api/v1/quarantine?user_id={INT32}",
    f"/api/v1/quarantine?after={HUGE}",
    f"/api/v1/forms/household/diff?from=1&to={INT32}",
    f"/api/v1/users?after={INT32}",
    f"/api/v1/users?after={HUGE}",
]
BODIES = [
    ("POST", "/api/v1/grids", {"code": "X", "name": "x", "level": "community", "parent_id": INT32}),
    ("PATCH", "/api/v1/grids/{grid}", {"parent_id": HUGE}),
    (
        "POST",
        "/api/v1/users",
        {"username": "u", "password": "long enough 1", "role": "worker", "grid_ids": [INT32]},
    ),
    ("PUT", "/api/v1/users/{user}/grids", {"grid_ids": [1, HUGE]}),
]


@pytest.mark.parametrize(("method", "path"), PATHS)
def test_a_path_id_out_of_range_is_not_found(client, world, method, path):
    reply = client.open(path, method=method, json={}, headers=world.headers("admin"))
    assert_problem(reply, 404, "not_found")


@pytest.mark.parametrize("path", QUERIES)
def test_a_query_id_out_of_range_is_refused(client, world, path):
    reply = client.get(path, headers=world.headers("admin"))
    problem = assert_problem(reply, 422, "validation_failed")
    assert problem["errors"], problem


@pytest.mark.parametrize(("method", "path", "body"), BODIES)
def test_a_body_id_out_of_range_is_refused(client, world, method, path, body):
    target = path.format(grid=world.grids["S-C1"], user=world.users["worker"])
    reply = client.open(target, method=method, json=body, headers=world.headers("admin"))
    assert_problem(reply, 422, "validation_failed")


def test_the_largest_ids_in_range_are_merely_absent(client, world):
    admin = world.headers("admin")
    assert_problem(client.get(f"/api/v1/users/{INT32 - 1}", headers=admin), 404, "not_found")
    reply = client.get(f"/api/v1/records?grid={INT32 - 1}", headers=admin)
    assert assert_problem(reply, 404, "not_found")["detail"] == "no such grid"
    reply = client.get(f"/api/v1/quarantine/{2**53 - 1}", headers=admin)
    assert_problem(reply, 404, "not_found")


def _cursor(value) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "forged",
    [[HUGE, "x"], [2**63, "x"], [-1, "x"], [True, "x"], [1.5, "x"], [1, "a\u0000b"], [1, "\ud800"]],
)
def test_a_forged_records_cursor_is_refused(client, world, forged):
    reply = client.get(f"/api/v1/records?after={_cursor(forged)}", headers=world.headers("admin"))
    problem = assert_problem(reply, 422, "validation_failed")
    assert problem["errors"][0]["path"] == "/after"
