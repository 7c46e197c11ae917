"""The audit endpoints through the real app: scope, history, as_of, the event list."""

import datetime as dt

import pytest
from sqlalchemy import func, select

from server.audit import record_event
from server.models import AuditEvent
from sync import hlc
from sync.ops import Op
from sync.store.server import SqlServer
from tests.api.factories import build_world
from tests.sync.world import check_field, lookup_form

NEAR = "00000000-0000-4000-8000-0000000000a1"  # in grid S-C1-R1-G1 (supervisor's)
FAR = "00000000-0000-4000-8000-0000000000b2"  # in grid S-C2-R1-G1 (not the supervisor's)


@pytest.fixture
def world(database):
    world = build_world(database)
    store = SqlServer(
        database.engine,
        lookup_form,
        check_field,
        user_of=lambda device: world.users["worker"],
    )
    device = world.devices["worker"]
    wall = hlc.wall_millis()
    grid_near, grid_far = world.grids["S-C1-R1-G1"], world.grids["S-C2-R1-G1"]
    ops = [
        Op(device, 1, NEAR, "household", 1, grid_near, "head_name", "set", "wang", wall << 16, 0),
        Op(device, 2, FAR, "household", 1, grid_far, "head_name", "set", "li", (wall << 16) + 1, 0),
    ]
    store.push(device, ops)
    store.push(
        device,
        [Op(device, 3, NEAR, "household", 1, grid_near, "size", "set", 4, (wall << 16) + 2, 1)],
    )
    with database.session() as session:
        world.mark = session.scalar(select(func.max(AuditEvent.id)))
        record_event(session, "grid.changed", "grid", grid_near, {}, grid_ids=[grid_near])
        record_event(session, "grid.changed", "grid", grid_far, {}, grid_ids=[grid_far])
        record_event(session, "user.created", "user", 99, {"username": "new"})
    return world


def get(client, world, who, path):
    return client.get(path, headers=world.headers(who))


def test_staff_read_a_record_history_within_their_scope(client, world):
    response = get(client, world, "supervisor", f"/api/v1/audit/records/{NEAR}/history")
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert [(c["field"], c["old"], c["new"]) for c in body["changes"]] == [
        ("head_name", None, "wang"),
        ("size", None, 4),
    ]
    assert body["changes"][0]["username"] == "worker"
    assert body["changes"][0]["device_name"] == "worker's phone"
    assert get(client, world, "admin", f"/api/v1/audit/records/{FAR}/history").status_code == 200


def test_a_record_outside_the_scope_is_not_found(client, world):
    response = get(client, world, "supervisor", f"/api/v1/audit/records/{FAR}/history")
    assert response.status_code == 404
    assert response.get_json()["code"] == "not_found"


def test_field_workers_may_not_read_the_audit(client, world):
    for path in (f"/api/v1/audit/records/{NEAR}/history", "/api/v1/audit/events"):
        response = get(client, world, "worker", path)
        assert response.status_code == 403
        assert response.mimetype == "application/problem+json"


def test_as_of_answers_the_past_state_or_404(client, world):
    later = (dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1)).isoformat()
    path = f"/api/v1/audit/records/{NEAR}"
    response = client.get(path, query_string={"as_of": later}, headers=world.headers("admin"))
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["fields"] == {"head_name": "wang", "size": 4}
    response = client.get(
        path, query_string={"as_of": "2001-01-01T00:00:00Z"}, headers=world.headers("admin")
    )
    assert response.status_code == 404
    response = client.get(path, query_string={"as_of": "never"}, headers=world.headers("admin"))
    assert response.status_code == 422
    assert response.get_json()["errors"][0]["path"] == "/as_of"


def test_the_event_list_is_scoped_filtered_and_paged(client, world):
    near, far, mark = world.grids["S-C1-R1-G1"], world.grids["S-C2-R1-G1"], world.mark
    recent = f"/api/v1/audit/events?after={mark}"
    everything = get(client, world, "admin", recent).get_json()
    assert [e["action"] for e in everything["items"]] == [
        "grid.changed",
        "grid.changed",
        "user.created",
    ]
    assert everything["next"] is None
    mine = get(client, world, "supervisor", recent).get_json()["items"]
    assert [e["target_id"] for e in mine] == [str(near)]
    assert mine[0]["details"] == {"grid_ids": [near]}
    first = get(client, world, "admin", f"{recent}&limit=2").get_json()
    assert (len(first["items"]), first["next"]) == (2, str(mark + 2))
    rest = get(client, world, "admin", f"/api/v1/audit/events?after={first['next']}").get_json()
    assert [e["id"] for e in rest["items"]] == [mark + 3]
    by_grid = get(client, world, "admin", f"{recent}&grid_id={far}").get_json()
    assert [e["target_id"] for e in by_grid["items"]] == [str(far)]
    users = get(client, world, "admin", f"{recent}&target_type=user").get_json()
    assert [e["details"] for e in users["items"]] == [{"username": "new"}]
    bad = get(client, world, "admin", "/api/v1/audit/events?limit=0")
    assert bad.status_code == 422


def test_a_supervisor_sees_only_events_of_grids_in_scope(client, world):
    scope = {world.grids[code] for code in ("S-C1", "S-C1-R1", "S-C1-R1-G1", "S-C1-R1-G2")}
    seen = get(client, world, "supervisor", "/api/v1/audit/events?limit=500").get_json()["items"]
    every = get(client, world, "admin", "/api/v1/audit/events?limit=500").get_json()["items"]
    assert seen
    assert all(scope & set(e["details"]["grid_ids"]) for e in seen)
    hidden = [e for e in every if not scope & set(e["details"].get("grid_ids", []))]
    assert {e["id"] for e in hidden}.isdisjoint(e["id"] for e in seen)
    assert any(e["target_id"] == str(world.users["worker2"]) for e in hidden)


def test_the_event_list_takes_time_bounds_in_any_zone(client, world):
    mark = world.mark
    with world.database.session() as session:
        last = session.get(AuditEvent, mark + 1).occurred_at
    moment = last if last.tzinfo else last.replace(tzinfo=dt.UTC)
    east = dt.timezone(dt.timedelta(hours=8))
    headers = world.headers("admin")
    since = moment.astimezone(east).isoformat()
    found = client.get(
        "/api/v1/audit/events", query_string={"since": since, "after": mark}, headers=headers
    ).get_json()
    assert [e["id"] for e in found["items"]] == [mark + 1, mark + 2, mark + 3]
    before = client.get(
        "/api/v1/audit/events", query_string={"until": since, "after": mark}, headers=headers
    ).get_json()
    assert before["items"] == []
