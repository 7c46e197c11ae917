"""Pull, snapshot, scope, conflicts and the server's own edits through the real app."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from server import sync_service
from server.grids import move_grid
from server.models import Grid, User
from server.users import assign_grids
from sync.messages import ReleaseRefused
from sync.store.tables import conflicts
from tests.sync.http_support import checked, make_world, phone, record_id


@pytest.fixture
def world(database):
    return make_world(database)


def test_pages_follow_the_cursor_and_never_repeat(client, world):
    worker = phone(client, world, "worker")
    grid = world.grids["S-C1-R1-G1"]
    rid = record_id()
    names = ["people_met", "people_met_count", "needs_other", "services_given", "escalate"]
    values = ["a", 2, "b", "c", "yes"]
    worker.push([worker.op(rid, n, v, grid=grid) for n, v in zip(names, values, strict=True)])
    reader = phone(client, world, "leader")
    first = reader.pull(limit=2)
    assert [c["field"] for c in first["changes"]] == names[:2]
    assert first["more"] is True
    rest = reader.pull_all(limit=2)
    assert [c["field"] for c in rest] == names[2:]
    positions = [c["position"] for c in first["changes"] + rest]
    assert positions == sorted(set(positions))
    assert reader.pull()["changes"] == []
    # a later edit comes back alone, with a higher position
    worker.push([worker.op(rid, "people_met", "z", grid=grid)])
    (change,) = reader.pull()["changes"]
    assert (change["field"], change["value"]) == ("people_met", "z")
    assert change["position"] > positions[-1]


def test_cursor_ahead_is_410_and_snapshot_starts_over(client, world):
    worker = phone(client, world, "worker")
    grid = world.grids["S-C1-R1-G1"]
    worker.push([worker.op(record_id(), "people_met", "a", grid=grid)])
    worker.cursor = 10_000
    assert worker.pull(status=410)["code"] == "cursor_expired"
    response = client.get("/api/v1/sync/snapshot?cursor=0&limit=1", headers=worker.headers)
    page = checked(response, 200, "snapshot_response")
    assert [c["value"] for c in page["changes"]] == ["a"]
    bad = client.get("/api/v1/sync/pull?cursor=-1", headers=worker.headers)
    assert checked(bad, 422, "problem")["errors"][0]["path"] == "/cursor"


def test_scope_filters_and_a_record_moving_in_is_sent_whole(client, world):
    worker, other = phone(client, world, "worker"), phone(client, world, "worker2")
    supervisor = phone(client, world, "supervisor")
    mine, theirs = world.grids["S-C1-R1-G1"], world.grids["S-C2-R1-G1"]
    rid = record_id()
    worker.push(
        [
            worker.op(rid, "people_met", "a", grid=mine),
            worker.op(rid, "people_met_count", 4, grid=mine),
            worker.op(rid, "needs", "medical", kind="add", grid=mine),
        ]
    )
    assert other.pull_all() == []
    assert len(supervisor.pull_all()) == 3
    # an admin's edit moves the record into worker2's grid: worker2 gets every field
    admin = phone(client, world, "admin")
    admin.push([admin.op(rid, "services_given", "moved", grid=theirs)])
    arrived = other.pull_all()
    assert {c["field"] for c in arrived} == {
        "people_met",
        "people_met_count",
        "needs",
        "services_given",
    }
    assert {c["grid_id"] for c in arrived} == {theirs}
    # out of the supervisor's community now: its cursor is refused, and the snapshot it
    # starts over from leaves the record out
    refused = supervisor.pull(status=410)
    assert refused["code"] == "cursor_expired"
    assert "left your scope" in refused["detail"]
    assert supervisor.snapshot_all() == []
    assert supervisor.pull_all() == []
    assert other.pull_all() == []  # worker2's scope only gained the record


def test_a_snapshot_page_after_a_record_it_sent_left_the_scope_is_410(client, world):
    worker, supervisor = phone(client, world, "worker"), phone(client, world, "supervisor")
    mine, theirs = world.grids["S-C1-R1-G1"], world.grids["S-C2-R1-G1"]
    first, second = record_id(), record_id()
    worker.push([worker.op(rid, "people_met", rid, grid=mine) for rid in (first, second)])

    def snapshot_page(cursor: int, status: int = 200) -> dict:
        response = client.get(
            f"/api/v1/sync/snapshot?cursor={cursor}&limit=1", headers=supervisor.headers
        )
        return checked(response, status, "snapshot_response" if status == 200 else "problem")

    page = snapshot_page(0)
    assert ([c["record_id"] for c in page["changes"]], page["more"]) == ([first], True)
    admin = phone(client, world, "admin")  # moves the record just sent out of the community
    admin.push([admin.op(first, "services_given", "moved", grid=theirs)])
    assert "left your scope" in snapshot_page(page["cursor"], 410)["detail"]
    again = snapshot_page(0)  # started over: the record is no longer sent
    assert [c["record_id"] for c in again["changes"]] == [second]
    assert snapshot_page(again["cursor"])["more"] is False


def test_a_change_of_grids_refuses_the_cursor(client, world, database):
    worker = phone(client, world, "worker")
    worker.push([worker.op(record_id(), "people_met", "a", grid=world.grids["S-C1-R1-G1"])])
    assert len(worker.pull_all()) == 1
    assert worker.pull()["changes"] == []
    with database.session() as session:
        user = session.scalar(select(User).where(User.username == "worker"))
        assign_grids(session, user, [session.get(Grid, world.grids["S-C2-R1-G1"])])
        session.commit()
    assert "grids changed" in worker.pull(status=410)["detail"]
    assert worker.snapshot_all() == []
    assert worker.pull()["changes"] == []  # the new scope's cursor holds


def test_a_grid_moved_under_a_supervisor_brings_its_records(client, world, database):
    worker2, supervisor = phone(client, world, "worker2"), phone(client, world, "supervisor")
    rid = record_id()
    worker2.push([worker2.op(rid, "people_met", "a", grid=world.grids["S-C2-R1-G1"])])
    assert supervisor.pull_all() == []  # community 2 is not the supervisor's
    with database.session() as session:  # compound 2 moves into community 1
        compound, community = (session.get(Grid, world.grids[c]) for c in ("S-C2-R1", "S-C1"))
        move_grid(session, compound, community)
        session.commit()
    assert "grids changed" in supervisor.pull(status=410)["detail"]
    assert [c["record_id"] for c in supervisor.snapshot_all()] == [rid]


def test_concurrent_edits_conflict_and_a_supervisor_resolves(client, world, database, settings):
    worker, leader = phone(client, world, "worker"), phone(client, world, "leader")
    grid = world.grids["S-C1-R1-G1"]
    rid = record_id()
    worker.push([worker.op(rid, "people_met", "王芳", grid=grid)])
    reply = leader.push([leader.op(rid, "people_met", "李娜", grid=grid)])  # had not pulled
    (conflict,) = reply["conflicts"]
    assert conflict["status"] == "open"
    assert sorted(v["value"] for v in conflict["values"]) == ["李娜", "王芳"]
    assert [v["winner"] for v in conflict["values"]].count(True) == 1
    for device in (worker, leader):
        items = checked(
            client.get("/api/v1/sync/inbox", headers=device.headers), 200, "inbox_response"
        )["items"]
        assert [item["kind"] for item in items] == ["conflict"]
        assert items[0]["payload"] == conflict
    with database.session() as session:
        user = session.scalar(select(User).where(User.username == "supervisor"))
        rules = sync_service.rules_for(session, settings)
        resolved = sync_service.resolve_conflict(
            session, user, conflict["conflict_id"], "王芳 (checked)", rules
        )
        assert resolved.result.applied == 1
        assert resolved.conflicts == []
    with database.engine.connect() as connection:
        assert connection.scalar(select(conflicts.c.status)) == "resolved"
    # The item names the conflict: the inbox shows it as it is now.
    (item,) = client.get("/api/v1/sync/inbox", headers=worker.headers).get_json()["items"]
    assert item["payload"]["conflict_id"] == conflict["conflict_id"]
    assert item["payload"]["status"] == "resolved"
    (change,) = [c for c in worker.pull_all() if c["field"] == "people_met"]
    assert change["value"] == "王芳 (checked)"


def test_release_applies_a_quarantined_op_as_if_from_the_start(client, world, database):
    worker = phone(client, world, "worker")
    grid = world.grids["S-C1-R1-G1"]
    rid = record_id()
    reply = worker.push(
        [
            worker.op(rid, "people_met_count", 60, grid=grid),  # above the form's 50
            worker.op(rid, "people_met", "a", grid=grid),
        ]
    )
    assert [q["reason"] for q in reply["quarantined"]] == ["out_of_range"]
    device_id = world.devices["worker"]
    with database.session() as session:
        admin = session.scalar(select(User).where(User.username == "admin"))
        result, _ = sync_service.release_quarantined(session, [(device_id, 1)], admin)
        assert [entry.op.seq for entry in result.released] == [1]
    values = {c["field"]: c["value"] for c in worker.pull_all()}
    assert values == {"people_met_count": 60, "people_met": "a"}
    with database.session() as session:
        admin = session.scalar(select(User).where(User.username == "admin"))
        with pytest.raises(ReleaseRefused):
            sync_service.release_quarantined(session, [(device_id, 1)], admin)
