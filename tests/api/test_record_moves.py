"""Who may move a record to another grid: a push or a server edit needs both grids.

An op names a grid, and the record follows its highest-keyed op; so without a check of
the record's own grid, anyone who knew a record's id could take it into a grid of
theirs, out of sight of its supervisor (docs/sync.md, reason 4 `grid_out_of_scope`).
"""

from __future__ import annotations

import pytest

from server.models import User
from server.sync_service import Edit, rules_for, submit_edits, warm
from tests.api.problems import assert_problem
from tests.api.records_world import FORM, add_record, install_forms, wire_ops


@pytest.fixture
def forms_world(world):
    install_forms(world)
    return world


def device_push(client, world, who: str, edits, base=0):
    """A push through the sync endpoint from `who`'s phone: the reply's body."""
    ops = wire_ops(world, world.devices[who], edits, base)
    reply = client.post("/api/v1/sync/push", json={"ops": ops}, headers=world.headers(who))
    assert reply.status_code == 200, reply.get_json()
    return reply.get_json()


def record(client, world, record_id: str, who: str = "admin"):
    reply = client.get(f"/api/v1/records/{record_id}", headers=world.headers(who))
    assert reply.status_code == 200, reply.get_json()
    return reply.get_json()


def server_edit(world, settings, who: str, record_id: str, grid_code: str, value: str):
    """A server-side edit of the record's severity for `who`, naming that grid."""
    known = warm(world.database, {(FORM, 1)})
    with world.database.session() as session:
        user = session.get(User, world.users[who])
        rules = rules_for(session, settings, known)
        edit = Edit(record_id, FORM, 1, world.grids[grid_code], "severity", "set", value)
        return submit_edits(session, user, [edit], rules).to_wire()


def test_a_worker_cannot_take_a_record_of_another_community(client, forms_world, settings):
    w = forms_world
    home = w.grids["S-C1-R1-G1"]
    record_id = add_record(w, settings, "worker", "S-C1-R1-G1", description="C1-only note")
    # worker2 (community 2) knows the id and names a grid of their own
    body = device_push(
        client, w, "worker2", [(record_id, "severity", w.grids["S-C2-R1-G1"], "high")], base=100
    )
    assert body["applied"] == 0
    assert body["quarantined"] == [
        {
            "seq": 1,
            "record_id": record_id,
            "field": "severity",
            "reason": "grid_out_of_scope",
            "detail": f"record {record_id} is in a grid outside your grids",
        }
    ]
    kept = record(client, w, record_id, "supervisor")
    assert kept["grid_id"] == home
    assert kept["fields"]["severity"]["value"] == "low"
    assert_problem(
        client.get(f"/api/v1/records/{record_id}", headers=w.headers("worker2")), 404, "not_found"
    )
    pulled = client.get("/api/v1/sync/pull?cursor=0", headers=w.headers("worker2")).get_json()
    assert [c for c in pulled["changes"] if c["record_id"] == record_id] == []
    # the op is held for the admin, whose decision a release is: it then applies as if
    # it had from the start, and being the record's newest op it moves the record
    held = client.get("/api/v1/quarantine", headers=w.headers("admin")).get_json()["items"]
    [position] = [item["position"] for item in held if item["record_id"] == record_id]
    released = client.post(f"/api/v1/quarantine/{position}/release", headers=w.headers("admin"))
    assert released.status_code == 200, released.get_json()
    assert record(client, w, record_id)["grid_id"] == w.grids["S-C2-R1-G1"]


def test_a_record_moves_for_a_scope_holding_both_grids(client, forms_world, settings):
    w = forms_world
    record_id = add_record(w, settings, "worker", "S-C1-R1-G1")
    # the grid leader holds both household grids of the compound
    moved = device_push(
        client, w, "leader", [(record_id, "severity", w.grids["S-C1-R1-G2"], "high")]
    )
    assert (moved["applied"], moved["quarantined"]) == (1, [])
    assert record(client, w, record_id, "supervisor")["grid_id"] == w.grids["S-C1-R1-G2"]
    # the worker of grid 1 no longer holds it: a later edit is held, not a move back
    back = device_push(client, w, "worker", [(record_id, "severity", w.grids["S-C1-R1-G1"], "low")])
    assert [q["reason"] for q in back["quarantined"]] == ["grid_out_of_scope"]
    after = record(client, w, record_id, "supervisor")
    assert after["grid_id"] == w.grids["S-C1-R1-G2"]
    assert after["fields"]["severity"]["value"] == "high"
    assert_problem(
        client.get(f"/api/v1/records/{record_id}", headers=w.headers("worker")), 404, "not_found"
    )


def test_a_supervisor_edit_cannot_take_a_record_of_another_community(client, forms_world, settings):
    w = forms_world
    record_id = add_record(w, settings, "worker2", "S-C2-R1-G1")
    reply = server_edit(w, settings, "supervisor", record_id, "S-C1-R1-G1", "high")
    assert reply["applied"] == 0
    assert [q["reason"] for q in reply["quarantined"]] == ["grid_out_of_scope"]
    kept = record(client, w, record_id)
    assert kept["grid_id"] == w.grids["S-C2-R1-G1"]
    assert kept["fields"]["severity"]["value"] == "low"
    # within the supervisor's subtree a server edit moves the record; the admin's anywhere
    inside = add_record(w, settings, "worker", "S-C1-R1-G1")
    assert server_edit(w, settings, "supervisor", inside, "S-C1-R1-G2", "high")["applied"] == 1
    assert record(client, w, inside)["grid_id"] == w.grids["S-C1-R1-G2"]
    assert server_edit(w, settings, "admin", record_id, "S-C1-R1-G1", "medium")["applied"] == 1
    assert record(client, w, record_id, "supervisor")["grid_id"] == w.grids["S-C1-R1-G1"]
