"""One record's life through the real push path and the review API, read back from the audit."""

import json

import pytest
from sqlalchemy import func, select

from server.models import AuditEvent
from sync.store import tables as t
from tests.api.factories import build_world
from tests.api.records_world import (
    FORM,
    add_conflict,
    add_photo_rows,
    add_quarantined,
    add_record,
    install_forms,
)
from tests.audit.helpers import verify


@pytest.fixture
def forms_world(database):
    world = build_world(database)
    install_forms(world)
    return world


def test_a_record_history_shows_edits_conflicts_reviews_and_releases(
    client, forms_world, settings, database
):
    w = forms_world
    record_id, conflict_id = add_conflict(w, settings, "worker", "S-C1-R1-G1")
    supervisor = w.headers("supervisor")
    base = f"/api/v1/records/{record_id}"
    resolved = client.post(
        f"/api/v1/conflicts/{conflict_id}/resolve", json={"value": "high"}, headers=supervisor
    )
    assert resolved.status_code == 200, resolved.get_json()
    reviewed = client.post(
        f"{base}/review", json={"decision": "approved", "comment": "ok"}, headers=supervisor
    )
    assert reviewed.status_code == 201, reviewed.get_json()
    commented = client.post(f"{base}/comments", json={"body": "看楼梯"}, headers=supervisor)
    assert commented.status_code == 201
    held = add_quarantined(w, settings, "worker", "S-C1-R1-G1")
    released = client.post(f"/api/v1/quarantine/{held}/release", headers=w.headers("admin"))
    assert released.status_code == 200, released.get_json()

    reply = client.get(f"/api/v1/audit/records/{record_id}/history", headers=supervisor)
    assert reply.status_code == 200, reply.get_json()
    history = reply.get_json()
    severity = [c for c in history["changes"] if c["field"] == "severity"]
    assert [(c["old"], c["new"]) for c in severity][-1] == (severity[-2]["new"], "high")
    assert severity[-1]["username"] == "supervisor"
    assert severity[-1]["device_name"] == "fieldsync server"
    # low/medium and high/medium: the second device had seen neither of the first's
    assert {tuple(sorted(v["value"] for v in c["values"])) for c in history["conflicts"]} == {
        ("low", "medium"),
        ("high", "medium"),
    }
    for conflict in history["conflicts"]:
        assert conflict["status"] == "resolved"
        assert conflict["resolved_by"]["user_id"] == w.users["supervisor"]
    actions = [e["action"] for e in history["events"]]
    assert actions == ["conflict.resolved", "review.decided", "review.commented"]
    assert history["events"][2]["details"]["body"] == "看楼梯"
    assert all(e["username"] == "supervisor" for e in history["events"])

    report = verify(database)
    assert report.ok, report.broken
    with database.session() as session:
        assert report.ops == session.scalar(select(func.count()).select_from(t.ops))


def test_the_release_shows_in_the_history_of_its_record(client, forms_world, settings):
    w = forms_world
    held = add_quarantined(w, settings, "worker", "S-C1-R1-G1")
    released = client.post(f"/api/v1/quarantine/{held}/release", headers=w.headers("admin"))
    assert released.status_code == 200, released.get_json()
    with w.database.session() as session:
        record_id = session.scalar(select(t.ops.c.record_id).where(t.ops.c.position == held))
    history = client.get(
        f"/api/v1/audit/records/{record_id}/history", headers=w.headers("admin")
    ).get_json()
    release = [c for c in history["changes"] if c["kind"] == "release"]
    assert [(r["field"], r["status"], r["released_by"]) for r in release] == [
        ("no_such_field", "applied", w.users["admin"])
    ]
    assert [e["action"] for e in history["events"]] == ["quarantine.released"]
    assert verify(w.database).ok


def test_the_history_lists_only_the_child_rows_in_the_callers_scope(client, forms_world, settings):
    w = forms_world
    record_id = add_record(w, settings, "worker", "S-C1-R1-G1")
    rows = add_photo_rows(w, settings, record_id, {"worker": "S-C1-R1-G1", "worker2": "S-C2-R1-G1"})
    url = f"/api/v1/audit/records/{record_id}/history"
    mine = client.get(url, headers=w.headers("supervisor")).get_json()
    everyone = client.get(url, headers=w.headers("admin")).get_json()
    detail = client.get(f"/api/v1/records/{record_id}", headers=w.headers("supervisor"))
    assert mine["children"] == [rows["worker"]]
    assert mine["children"] == [c["record_id"] for c in detail.get_json()["children"]]
    assert everyone["children"] == sorted(rows.values())


def test_a_retried_push_appends_no_second_event(forms_world, settings, database):
    from server.models import Device
    from server.sync_service import push as push_ops
    from server.sync_service import rules_for, warm

    w = forms_world
    grid = w.grids["S-C1-R1-G1"]
    record = "00000000-0000-4000-8000-00000000c0de"
    body = {
        "ops": [
            {
                "seq": 1,
                "record_id": record,
                "form_id": FORM,
                "form_version": 1,
                "grid_id": grid,
                "field": "address",
                "kind": "set",
                "value": "2 Main St",
                "hlc": "0000018c2f3a4b5c",
                "base": 0,
            }
        ]
    }
    known = warm(database, {(FORM, 1)})
    replies = []
    for _attempt in range(2):  # the second is a retry after a lost reply
        with database.session() as session:
            device = session.get(Device, w.devices["worker"])
            replies.append(push_ops(session, device, body, rules_for(session, settings, known)))
    assert [(r.result.applied, r.result.duplicate) for r in replies] == [(1, 0), (0, 1)]
    with database.session() as session:
        pushes = session.scalars(select(AuditEvent.details).where(AuditEvent.action == "sync.push"))
        assert [json.loads(d)["seq_to"] for d in pushes] == [1]
    report = verify(database)
    assert report.ok, report.broken
    assert report.ops == 1
