"""Records, review, comments, supervisor edits, conflicts and quarantine through the API."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from sync.store import tables as t
from tests.api.problems import assert_problem
from tests.api.records_world import (
    add_conflict,
    add_photo_rows,
    add_quarantined,
    add_record,
    install_forms,
)


@pytest.fixture
def forms_world(world):
    install_forms(world)
    return world


def items(reply):
    assert reply.status_code == 200, reply.get_json()
    return [item["record_id"] for item in reply.get_json()["items"]]


def test_lists_follow_scope_and_filters(client, forms_world, settings):
    w = forms_world
    mine = add_record(w, settings, "worker", "S-C1-R1-G1", address="王芳家 12号")
    other = add_record(w, settings, "worker2", "S-C2-R1-G1", severity="high")
    admin, sup, worker = w.headers("admin"), w.headers("supervisor"), w.headers("worker")
    assert set(items(client.get("/api/v1/records", headers=admin))) == {mine, other}
    assert items(client.get("/api/v1/records", headers=sup)) == [mine]
    assert items(client.get("/api/v1/records", headers=worker)) == [mine]
    assert items(client.get("/api/v1/records?q=王芳", headers=admin)) == [mine]
    assert items(client.get("/api/v1/records?q=%25", headers=admin)) == []
    grid = w.grids["S-C2"]
    assert items(client.get(f"/api/v1/records?grid={grid}", headers=admin)) == [other]
    assert_problem(client.get(f"/api/v1/records?grid={grid}", headers=sup), 404, "not_found")
    author = w.users["worker2"]
    assert items(client.get(f"/api/v1/records?author={author}", headers=admin)) == [other]
    assert items(client.get("/api/v1/records?form=household", headers=admin)) == []
    assert items(client.get("/api/v1/records?review=approved", headers=admin)) == []
    assert items(client.get("/api/v1/records?has_conflicts=true", headers=admin)) == []


def test_cursor_pages_cover_everything_once(client, forms_world, settings):
    made = {add_record(forms_world, settings, "worker", "S-C1-R1-G1") for _ in range(5)}
    seen, after = [], ""
    while True:
        reply = client.get(
            f"/api/v1/records?limit=2&sort=created{after}", headers=forms_world.headers("admin")
        )
        body = reply.get_json()
        seen += [item["record_id"] for item in body["items"]]
        if body["next"] is None:
            break
        after = f"&after={body['next']}"
    assert len(seen) == 5
    assert set(seen) == made
    assert_problem(
        client.get("/api/v1/records?after=garbage", headers=forms_world.headers("admin")),
        422,
        "validation_failed",
    )


def test_one_record_with_provenance_conflicts_and_out_of_scope_404(client, forms_world, settings):
    w = forms_world
    record_id, conflict_id = add_conflict(w, settings, "worker", "S-C1-R1-G1")
    reply = client.get(f"/api/v1/records/{record_id}", headers=w.headers("supervisor"))
    assert reply.status_code == 200, reply.get_json()
    body = reply.get_json()
    address = body["fields"]["address"]
    assert address["value"] == "1 Main St"
    assert address["user_id"] == w.users["worker"]
    assert address["device_id"] == w.devices["worker"]
    assert {"device_time", "server_time", "op_position", "seq"} <= set(address)
    [conflict] = [c for c in body["conflicts"] if c["conflict_id"] == conflict_id]
    assert conflict["status"] == "open"
    assert sorted(v["value"] for v in conflict["values"]) == ["high", "medium"]
    assert sum(v["winner"] for v in conflict["values"]) == 1
    assert_problem(
        client.get(f"/api/v1/records/{record_id}", headers=w.headers("worker2")), 404, "not_found"
    )
    assert_problem(
        client.get("/api/v1/records/no-such-record", headers=w.headers("admin")), 404, "not_found"
    )


def test_a_record_shows_only_its_child_rows_in_the_callers_scope(client, forms_world, settings):
    w = forms_world
    record_id = add_record(w, settings, "worker", "S-C1-R1-G1")
    rows = add_photo_rows(w, settings, record_id, {"worker": "S-C1-R1-G1", "worker2": "S-C2-R1-G1"})

    def children(who):
        detail = client.get(f"/api/v1/records/{record_id}", headers=w.headers(who)).get_json()
        return {child["record_id"] for child in detail["children"]}

    assert children("admin") == set(rows.values())
    assert children("supervisor") == {rows["worker"]}


def test_review_decisions_reach_the_inbox(client, forms_world, settings, database):
    w = forms_world
    record_id = add_record(w, settings, "worker", "S-C1-R1-G1")
    url = f"/api/v1/records/{record_id}/review"
    missing = client.post(url, json={"decision": "needs_revision"}, headers=w.headers("supervisor"))
    assert_problem(missing, 422, "validation_failed")
    reply = client.post(
        url,
        json={"decision": "needs_revision", "comment": "photo missing"},
        headers=w.headers("supervisor"),
    )
    assert reply.status_code == 201, reply.get_json()
    listed = client.get("/api/v1/records?review=needs_revision", headers=w.headers("admin"))
    assert items(listed) == [record_id]
    comment = client.post(
        f"/api/v1/records/{record_id}/comments",
        json={"body": "see the stairs", "field": "address"},
        headers=w.headers("leader"),
    )
    assert comment.status_code == 201
    with database.session() as session:
        inbox = session.execute(
            select(t.inbox).where(t.inbox.c.user_id == w.users["worker"]).order_by(t.inbox.c.id)
        ).all()
    kinds = [(row.kind, row.record_id) for row in inbox]
    assert ("review", record_id) in kinds
    assert ("comment", record_id) in kinds
    review = next(row for row in inbox if row.kind == "review")
    assert review.payload["comment"] == "photo missing"
    detail = client.get(f"/api/v1/records/{record_id}", headers=w.headers("admin")).get_json()
    assert detail["review_status"] == "needs_revision"
    assert [c["body"] for c in detail["comments"]] == ["see the stairs"]
    assert_problem(
        client.post(url, json={"decision": "approved"}, headers=w.headers("worker")),
        403,
        "forbidden",
    )


def test_a_comment_names_a_field_of_the_record(client, forms_world, settings):
    w = forms_world
    record_id = add_record(w, settings, "worker", "S-C1-R1-G1")
    url = f"/api/v1/records/{record_id}/comments"
    unknown = client.post(url, json={"body": "?", "field": "nosuch"}, headers=w.headers("leader"))
    problem = assert_problem(unknown, 422, "validation_failed")
    assert problem["errors"][0]["path"] == "/field"
    empty = client.post(
        url, json={"body": "fill it", "field": "description"}, headers=w.headers("leader")
    )
    assert empty.status_code == 201, empty.get_json()
    whole = client.post(url, json={"body": "all good"}, headers=w.headers("leader"))
    assert whole.status_code == 201, whole.get_json()
    detail = client.get(f"/api/v1/records/{record_id}", headers=w.headers("admin")).get_json()
    assert [c["field"] for c in detail["comments"]] == ["description", None]


def test_supervisor_edits_are_ops_that_devices_pull(client, forms_world, settings):
    w = forms_world
    record_id = add_record(w, settings, "worker", "S-C1-R1-G1")
    reply = client.post(
        f"/api/v1/records/{record_id}/edits",
        json={"edits": [{"field": "severity", "value": "high"}, {"field": "nope", "value": 1}]},
        headers=w.headers("supervisor"),
    )
    assert reply.status_code == 200, reply.get_json()
    body = reply.get_json()
    assert body["applied"] == 1
    assert [q["reason"] for q in body["quarantined"]] == ["unknown_field"]
    detail = client.get(f"/api/v1/records/{record_id}", headers=w.headers("admin")).get_json()
    assert detail["fields"]["severity"]["value"] == "high"
    assert detail["fields"]["severity"]["user_id"] == w.users["supervisor"]


def test_an_edit_names_its_field_as_the_protocol_does(client, forms_world, settings):
    w = forms_world
    record_id = add_record(w, settings, "worker", "S-C1-R1-G1")
    for name in ['say "hi"', "back\\slash", "two words", "", "9lives"]:
        reply = client.post(
            f"/api/v1/records/{record_id}/edits",
            json={"edits": [{"field": name, "value": 1}]},
            headers=w.headers("supervisor"),
        )
        problem = assert_problem(reply, 422, "validation_failed")
        assert [error["path"] for error in problem["errors"]] == ["/edits/0/field"], problem


def test_resolving_a_conflict(client, forms_world, settings):
    w = forms_world
    record_id, conflict_id = add_conflict(w, settings, "worker", "S-C1-R1-G1")
    url = f"/api/v1/conflicts/{conflict_id}/resolve"
    bad = client.post(url, json={"keep": 1, "value": "x"}, headers=w.headers("supervisor"))
    assert_problem(bad, 422, "validation_failed")
    wrong = client.post(url, json={"keep": 999999}, headers=w.headers("supervisor"))
    assert_problem(wrong, 422, "validation_failed")
    detail = client.get(f"/api/v1/records/{record_id}", headers=w.headers("admin")).get_json()
    [conflict] = [c for c in detail["conflicts"] if c["conflict_id"] == conflict_id]
    loser = next(v for v in conflict["values"] if not v["winner"])
    reply = client.post(url, json={"keep": loser["op_position"]}, headers=w.headers("supervisor"))
    assert reply.status_code == 200, reply.get_json()
    after = client.get(f"/api/v1/records/{record_id}", headers=w.headers("admin")).get_json()
    assert after["fields"]["severity"]["value"] == loser["value"]
    assert {c["status"] for c in after["conflicts"] if c["conflict_id"] == conflict_id} != {"open"}
    assert items(client.get("/api/v1/records?has_conflicts=true", headers=w.headers("admin"))) == []


def _resolved_events(client, world) -> list:
    reply = client.get(
        "/api/v1/audit/events?action=conflict.resolved", headers=world.headers("admin")
    )
    return reply.get_json()["items"]


def _quarantined_metric(client) -> float:
    """The ops counted as quarantined on /metrics: counted once their push commits."""
    name = 'fieldsync_sync_ops_total{outcome="quarantined"}'
    for line in client.get("/metrics").get_data(as_text=True).splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return 0.0


def _ops_count(world) -> int:
    with world.database.session() as session:
        return session.scalar(select(func.count()).select_from(t.ops))


def test_a_value_the_field_refuses_leaves_the_conflict_open_and_stores_nothing(
    client, forms_world, settings
):
    w = forms_world
    record_id, conflict_id = add_conflict(w, settings, "worker", "S-C1-R1-G1")
    stored, counted = _ops_count(w), _quarantined_metric(client)
    url = f"/api/v1/conflicts/{conflict_id}/resolve"
    reply = client.post(url, json={"value": "not a choice"}, headers=w.headers("supervisor"))
    problem = assert_problem(reply, 422, "validation_failed")
    assert problem["errors"][0]["path"] == "/value"
    assert "unknown_choice" in problem["detail"]
    assert _ops_count(w) == stored
    assert _resolved_events(client, w) == []
    assert _quarantined_metric(client) == counted
    detail = client.get(f"/api/v1/records/{record_id}", headers=w.headers("admin")).get_json()
    assert {c["status"] for c in detail["conflicts"] if c["conflict_id"] == conflict_id} == {"open"}


def test_a_resolved_conflict_cannot_be_resolved_again(client, forms_world, settings):
    w = forms_world
    record_id, conflict_id = add_conflict(w, settings, "worker", "S-C1-R1-G1")
    url = f"/api/v1/conflicts/{conflict_id}/resolve"
    first = client.post(url, json={"value": "high"}, headers=w.headers("supervisor"))
    assert first.status_code == 200, first.get_json()
    stored = _ops_count(w)
    again = client.post(url, json={"value": "medium"}, headers=w.headers("supervisor"))
    assert_problem(again, 409, "conflict")
    assert _ops_count(w) == stored
    assert len(_resolved_events(client, w)) == 1
    detail = client.get(f"/api/v1/records/{record_id}", headers=w.headers("admin")).get_json()
    assert detail["fields"]["severity"]["value"] == "high"


def test_quarantine_list_and_release(client, forms_world, settings):
    w = forms_world
    inside = add_quarantined(w, settings, "worker", "S-C1-R1-G1")
    outside = add_quarantined(w, settings, "worker2", "S-C2-R1-G1")
    listed = client.get("/api/v1/quarantine", headers=w.headers("supervisor")).get_json()
    assert [item["position"] for item in listed["items"]] == [inside]
    assert listed["items"][0]["reason"] == "unknown_field"
    everything = client.get("/api/v1/quarantine", headers=w.headers("admin")).get_json()
    assert {item["position"] for item in everything["items"]} == {inside, outside}
    assert_problem(
        client.get(f"/api/v1/quarantine/{outside}", headers=w.headers("supervisor")),
        404,
        "not_found",
    )
    released = client.post(f"/api/v1/quarantine/{inside}/release", headers=w.headers("admin"))
    assert released.status_code == 200, released.get_json()
    assert released.get_json()["released"] == 1
    again = client.post(f"/api/v1/quarantine/{inside}/release", headers=w.headers("admin"))
    assert_problem(again, 409, "conflict")
    left = client.get("/api/v1/quarantine", headers=w.headers("admin")).get_json()
    assert [item["position"] for item in left["items"]] == [outside]
    shown = client.get(f"/api/v1/quarantine/{inside}", headers=w.headers("admin")).get_json()
    assert (shown["position"], shown["released"]) == (inside, True)


def test_an_op_that_applied_at_once_is_not_in_quarantine(client, forms_world, settings):
    w = forms_world
    add_record(w, settings, "worker", "S-C1-R1-G1")
    with w.database.session() as session:
        applied = session.scalar(select(func.min(t.ops.c.position)))
    reply = client.get(f"/api/v1/quarantine/{applied}", headers=w.headers("admin"))
    assert_problem(reply, 404, "not_found")
    refused = client.post(f"/api/v1/quarantine/{applied}/release", headers=w.headers("admin"))
    assert_problem(refused, 409, "conflict")


def test_the_quarantine_filter_names_a_reason_code(client, forms_world, settings):
    w = forms_world
    position = add_quarantined(w, settings, "worker", "S-C1-R1-G1")
    listed = client.get("/api/v1/quarantine?reason=unknown_field", headers=w.headers("admin"))
    assert [item["position"] for item in listed.get_json()["items"]] == [position]
    for reason in ("unknown-field", "", "UNKNOWN_FIELD"):
        reply = client.get(f"/api/v1/quarantine?reason={reason}", headers=w.headers("admin"))
        problem = assert_problem(reply, 422, "validation_failed")
        assert [error["path"] for error in problem["errors"]] == ["/reason"]


def test_a_quarantined_op_does_not_make_its_sender_an_author(client, forms_world, settings):
    from tests.api.records_world import push

    w = forms_world
    record_id = add_record(w, settings, "worker", "S-C1-R1-G1")
    # worker2 names their own grid on a record outside it: quarantined, nothing applied.
    edit = [(record_id, "severity", w.grids["S-C2-R1-G1"], "high")]
    reply = push(w, settings, w.devices["worker2"], edit)
    assert [q["reason"] for q in reply["quarantined"]] == ["grid_out_of_scope"]
    url = f"/api/v1/records/{record_id}"
    decided = client.post(
        f"{url}/review",
        json={"decision": "needs_revision", "comment": "the tenant's phone is 138..."},
        headers=w.headers("supervisor"),
    )
    assert decided.status_code == 201, decided.get_json()
    body = {"body": "call the tenant"}
    commented = client.post(f"{url}/comments", json=body, headers=w.headers("leader"))
    assert commented.status_code == 201, commented.get_json()

    def inbox(who):
        with w.database.session() as session:
            rows = session.execute(select(t.inbox).where(t.inbox.c.user_id == w.users[who]))
            return {row.kind for row in rows if row.record_id == record_id}

    assert inbox("worker") == {"review", "comment"}
    assert inbox("worker2") <= {"quarantine"}


@pytest.mark.parametrize("db_backend", ["postgresql"], indirect=True)
def test_of_two_decisions_at_once_the_status_is_the_last_listed(app, forms_world, settings):
    """Two supervisors decide on one record at the same moment: whichever way their
    transactions interleave, the record's status is the decision its history lists last.
    (On SQLite one transaction holds the write lock and the other waits for all of it.)"""
    import threading

    from sqlalchemy import event
    from sqlalchemy.orm import Session

    from server.models import Review

    w = forms_world
    w.add_user("supervisor2", "supervisor", ["S-C1"])
    record_id = add_record(w, settings, "worker", "S-C1-R1-G1")
    url = f"/api/v1/records/{record_id}/review"
    first_stored, second_done = threading.Event(), threading.Event()

    def pause_after_the_first_review(session, _context):
        # The first decision waits between storing its review and setting the status,
        # while the second decision runs from start to end.
        if threading.current_thread().name == "first" and any(
            isinstance(item, Review) for item in session.new
        ):
            first_stored.set()
            second_done.wait(timeout=3)  # the second may be waiting for us: then go on

    replies = {}

    def decide(who, decision):
        client = app.test_client()
        replies[who] = client.post(url, json={"decision": decision}, headers=w.headers(who))
        if who == "supervisor2":
            second_done.set()

    event.listen(Session, "after_flush", pause_after_the_first_review)
    try:
        first = threading.Thread(target=decide, args=("supervisor", "approved"), name="first")
        first.start()
        assert first_stored.wait(timeout=10)
        second = threading.Thread(target=decide, args=("supervisor2", "rejected"))
        second.start()
        second.join(timeout=20)
        second_done.set()
        first.join(timeout=20)
    finally:
        event.remove(Session, "after_flush", pause_after_the_first_review)
    assert {who: reply.status_code for who, reply in replies.items()} == {
        "supervisor": 201,
        "supervisor2": 201,
    }
    detail = app.test_client().get(f"/api/v1/records/{record_id}", headers=w.headers("admin"))
    body = detail.get_json()
    assert body["review_status"] == body["reviews"][-1]["decision"], body["reviews"]
