"""Push through the real app on both backends: counts, retries, refusals, limits, gzip."""

from __future__ import annotations

import gzip
import json
from urllib.parse import quote

import pytest
from sqlalchemy import func, select

from sync.store.tables import ops as ops_table
from tests.sync.http_support import checked, make_world, phone, record_id


@pytest.fixture
def world(database):
    return make_world(database)


def stored_count(database) -> int:
    with database.engine.connect() as connection:
        return connection.scalar(select(func.count()).select_from(ops_table))


def test_push_applies_and_a_retry_is_a_duplicate(client, world, database):
    worker = phone(client, world, "worker")
    grid = world.grids["S-C1-R1-G1"]
    rid = record_id()
    ops = [
        worker.op(rid, "people_met", "王芳", grid=grid),
        worker.op(rid, "people_met_count", 3, grid=grid),
        worker.op(rid, "needs", "medical", kind="add", grid=grid),
    ]
    reply = worker.push(ops)
    assert (reply["acked_seq"], reply["applied"], reply["duplicate"]) == (3, 3, 0)
    assert reply["quarantined"] == []
    assert reply["conflicts"] == []
    again = worker.push(ops)
    assert (again["acked_seq"], again["applied"], again["duplicate"]) == (3, 0, 3)
    assert stored_count(database) == 3
    # a retry that overlaps new ops stores only the new ones
    more = [*ops[1:], worker.op(rid, "needs", "dispute", kind="add", grid=grid)]
    mixed = worker.push(more)
    assert (mixed["acked_seq"], mixed["applied"], mixed["duplicate"]) == (4, 1, 2)
    changes = {c["field"]: c["value"] for c in worker.pull_all()}
    assert changes == {
        "people_met": "王芳",
        "people_met_count": 3,
        "needs": ["dispute", "medical"],
    }


def test_gap_and_reuse_are_refused_and_store_nothing(client, world, database):
    worker = phone(client, world, "worker")
    grid = world.grids["S-C1-R1-G1"]
    rid = record_id()
    first = worker.op(rid, "people_met", "a", grid=grid)
    worker.push([first])
    skipped = worker.op(rid, "people_met", "b", grid=grid)
    worker.seq += 1
    gap = worker.op(rid, "people_met", "c", grid=grid)
    problem = worker.push([gap], status=409)
    assert problem["code"] == "seq_gap"
    assert problem["expected_seq"] == 2
    reused = {**first, "value": "changed"}
    problem = worker.push([reused, skipped], status=409)
    assert problem["code"] == "seq_reuse"
    assert problem["seq"] == 1
    assert stored_count(database) == 1


def test_limits_answer_413_and_store_nothing(client, world, database, settings):
    worker = phone(client, world, "worker")
    grid = world.grids["S-C1-R1-G1"]
    rid = record_id()
    too_many = [worker.op(rid, "people_met", "x", grid=grid) for _ in range(5001)]
    assert worker.push(too_many, status=413)["code"] == "payload_too_large"
    # a small gzip body that inflates past 4 MiB
    worker.seq = 0
    padded = [worker.op(rid, "services_given", "x" * 60000, grid=grid) for _ in range(80)]
    body = gzip.compress(json.dumps({"ops": padded}).encode())
    assert len(body) < 1024 * 1024
    response = client.post(
        "/api/v1/sync/push",
        data=body,
        headers={**worker.headers, "Content-Encoding": "gzip", "Content-Type": "application/json"},
    )
    assert checked(response, 413, "problem")["code"] == "payload_too_large"
    assert stored_count(database) == 0


@pytest.mark.parametrize(
    ("change", "path"),
    [
        ({"hlc": "XYZ"}, "/ops/0/hlc"),
        ({"seq": 0}, "/ops/0/seq"),
        ({"record_id": "not-a-uuid"}, "/ops/0/record_id"),
        ({"kind": "replace"}, "/ops/0/kind"),
        ({"extra": 1}, "/ops/0"),
        ({"hlc": "8000000000000000"}, "/ops/0/hlc"),
        ({"grid_id": 2**31}, "/ops/0/grid_id"),
        ({"form_version": 2**31}, "/ops/0/form_version"),
    ],
)
def test_malformed_ops_get_422_naming_the_path(client, world, database, change, path):
    worker = phone(client, world, "worker")
    op = {**worker.op(record_id(), "people_met", "x", grid=world.grids["S-C1-R1-G1"]), **change}
    problem = worker.push([op], status=422)
    assert problem["code"] == "schema_violation"
    assert any(error["path"].startswith(path) for error in problem["errors"]), problem
    assert stored_count(database) == 0


def test_bad_json_bad_gzip_and_no_token(client, world):
    worker = phone(client, world, "worker")
    for body, headers in [
        (b"{not json", {}),
        (b'{"ops": [NaN]}', {}),
        (b"not gzip at all", {"Content-Encoding": "gzip"}),
    ]:
        response = client.post(
            "/api/v1/sync/push", data=body, headers={**worker.headers, **headers}
        )
        assert checked(response, 400, "problem")["code"] in {"invalid_json", "bad_request"}
    response = client.post("/api/v1/sync/push", json={"ops": []})
    assert checked(response, 401, "problem")["code"] == "unauthenticated"
    response = client.post("/api/v1/sync/push", json={"ops": []}, headers=worker.headers)
    assert checked(response, 422, "problem")["code"] == "schema_violation"


def _post_text(client, worker, text: str):
    """POST a push body written out by hand (json.dumps would escape it its own way)."""
    return client.post(
        "/api/v1/sync/push",
        data=text.encode("utf-8", "surrogatepass"),
        headers={**worker.headers, "Content-Type": "application/json"},
    )


@pytest.mark.parametrize(
    ("where", "written", "path"),
    [
        ("field", '"people_\\ud800met"', "/ops/0/field"),  # escaped, high half alone
        ("form_id", '"household_\\udc00visit"', "/ops/0/form_id"),  # low half alone
        ("value", '"a\\ude00\\ud83d"', "/ops/0/value"),  # both halves, wrong order
        ("value", '"a\ud800b"', "/ops/0/value"),  # a surrogate's own UTF-8 bytes
        ("value", '"a\\u0000b"', "/ops/0/value"),  # NUL, which PostgreSQL's text refuses
    ],
)
def test_nul_or_a_lone_surrogate_is_refused_with_its_path(
    client, world, database, where, written, path
):
    worker = phone(client, world, "worker")
    op = worker.op(record_id(), "people_met", "x", grid=world.grids["S-C1-R1-G1"])
    op[where] = "placeholder"
    text = json.dumps({"ops": [op]}).replace('"placeholder"', written)
    problem = checked(_post_text(client, worker, text), 400, "problem")
    assert problem["code"] == "invalid_json"
    assert [error["path"] for error in problem["errors"]] == [path]
    assert stored_count(database) == 0


def test_escaped_pairs_and_backslashes_are_text(client, world):
    worker = phone(client, world, "worker")
    grid = world.grids["S-C1-R1-G1"]
    rid = record_id()
    texts = ["😀 \\ud800", "王芳 😀"]  # an emoji, then a backslash before "ud800"
    ops = [worker.op(rid, "people_met", texts[0], grid=grid)]
    ops.append(worker.op(rid, "services_given", texts[1], grid=grid))
    reply = _post_text(client, worker, json.dumps({"ops": ops}))  # escapes as \ud83d\ude00
    assert checked(reply, 200, "push_response")["applied"] == 2
    values = {change["field"]: change["value"] for change in worker.pull_all()}
    assert values == {"people_met": texts[0], "services_given": texts[1]}


def test_gzip_both_ways(client, world):
    worker = phone(client, world, "worker")
    grid = world.grids["S-C1-R1-G1"]
    rid = record_id()
    reply = worker.push([worker.op(rid, "services_given", "服务" * 300, grid=grid)], compress=True)
    assert reply["applied"] == 1
    response = client.get(
        "/api/v1/sync/pull?cursor=0", headers={**worker.headers, "Accept-Encoding": "gzip"}
    )
    assert response.headers["Content-Encoding"] == "gzip"
    page = json.loads(gzip.decompress(response.get_data()))
    assert page["changes"][0]["value"] == "服务" * 300


def test_quarantine_reasons_and_inbox(client, world):
    worker = phone(client, world, "worker")
    mine, other = world.grids["S-C1-R1-G1"], world.grids["S-C2-R1-G1"]
    rid = record_id()
    ops = [
        worker.op(rid, "people_met_count", 99, grid=mine),
        worker.op(rid, "visit_type", "party", grid=mine),
        worker.op(record_id(), "people_met", "x", grid=other),
        worker.op(record_id(), "people_met", "x", grid=mine, form="no_such_form"),
        worker.op(rid, "people_met", "ok", grid=mine),
    ]
    reply = worker.push(ops)
    reasons = [(q["seq"], q["reason"]) for q in reply["quarantined"]]
    assert reasons == [
        (1, "out_of_range"),
        (2, "unknown_choice"),
        (3, "grid_out_of_scope"),
        (4, "unknown_form"),
    ]
    assert (reply["applied"], reply["acked_seq"]) == (1, 5)
    response = client.get("/api/v1/sync/inbox", headers=worker.headers)
    inbox = checked(response, 200, "inbox_response")
    assert [item["kind"] for item in inbox["items"]] == ["quarantine"] * 4
    assert [item["payload"]["seq"] for item in inbox["items"]] == [1, 2, 3, 4]
    after = inbox["items"][1]["id"]
    rest = checked(
        client.get(f"/api/v1/sync/inbox?after={after}&limit=1", headers=worker.headers),
        200,
        "inbox_response",
    )
    assert [item["payload"]["seq"] for item in rest["items"]] == [3]
    assert rest["more"] is True


def test_metrics_count_outcomes(client, world):
    worker = phone(client, world, "worker")
    grid = world.grids["S-C1-R1-G1"]

    def sample(name: str) -> float:
        text = client.get("/metrics").get_data(as_text=True)
        for line in text.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[-1])
        return 0.0

    applied = 'fieldsync_sync_ops_total{outcome="applied"}'
    out_of_range = 'fieldsync_sync_quarantined_total{reason="out_of_range"}'
    before = sample(applied), sample(out_of_range)
    rid = record_id()
    worker.push(
        [
            worker.op(rid, "people_met", "a", grid=grid),
            worker.op(rid, "people_met_count", 51, grid=grid),
        ]
    )
    assert sample(applied) == before[0] + 1
    assert sample(out_of_range) == before[1] + 1
    assert "fieldsync_sync_duration_seconds_count" in client.get("/metrics").get_data(as_text=True)


def _gzip_push(client, worker, body: bytes):
    return client.post(
        "/api/v1/sync/push",
        data=body,
        headers={**worker.headers, "Content-Encoding": "gzip", "Content-Type": "application/json"},
    )


def test_every_gzip_member_is_read_and_trailing_bytes_are_refused(client, world, database):
    worker = phone(client, world, "worker")
    op = worker.op(record_id(), "people_met", "x", grid=world.grids["S-C1-R1-G1"])
    text = json.dumps({"ops": [op]}).encode()
    half = len(text) // 2
    garbage = _gzip_push(client, worker, gzip.compress(text) + b"tail")
    assert checked(garbage, 400, "problem")["code"] == "bad_request"
    assert stored_count(database) == 0
    members = gzip.compress(text[:half]) + gzip.compress(text[half:])
    assert checked(_gzip_push(client, worker, members), 200, "push_response")["applied"] == 1


def test_the_limit_holds_across_gzip_members(client, world, database, settings):
    worker = phone(client, world, "worker")
    member = gzip.compress(b" " * (settings.max_request_bytes // 2 + 1))
    response = _gzip_push(client, worker, member + member)
    assert checked(response, 413, "problem")["code"] == "payload_too_large"


@pytest.mark.parametrize(
    ("accept", "zipped"),
    [
        ("gzip", True),
        ("GZIP", True),
        ("*", True),
        ("gzip;q=0", False),
        ("identity", False),
        ("notgzip", False),
        ("identity, gzip;q=0", False),
    ],
)
def test_a_reply_is_gzipped_only_when_gzip_is_accepted(client, world, accept, zipped):
    worker = phone(client, world, "worker")
    grid = world.grids["S-C1-R1-G1"]
    worker.push([worker.op(record_id(), "services_given", "服务" * 300, grid=grid)])
    response = client.get(
        "/api/v1/sync/pull?cursor=0", headers={**worker.headers, "Accept-Encoding": accept}
    )
    assert (response.headers.get("Content-Encoding") == "gzip") is zipped


@pytest.mark.parametrize("digits", ["²", "١", "1²", "+1", " 1", "1_0"])
@pytest.mark.parametrize("name", ["cursor", "limit"])
def test_only_ascii_digits_make_a_number(client, world, name, digits):
    worker = phone(client, world, "worker")
    response = client.get(f"/api/v1/sync/pull?{name}={quote(digits)}", headers=worker.headers)
    problem = checked(response, 422, "problem")
    assert problem["errors"][0]["path"] == f"/{name}"


def test_refused_pushes_are_timed_too(client, world):
    worker = phone(client, world, "worker")
    name = 'fieldsync_sync_duration_seconds_count{operation="push"}'
    before = _sample(client, name)
    op = worker.op(record_id(), "people_met", "x", grid=world.grids["S-C1-R1-G1"])
    worker.push([{**op, "seq": 5}], status=409)
    worker.push([{**op, "seq": 0}], status=422)
    assert _sample(client, name) == before + 2


def _sample(client, name: str) -> float:
    for line in client.get("/metrics").get_data(as_text=True).splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return 0.0


def test_metrics_count_duplicates_conflicts_and_pulls(client, world):
    worker = phone(client, world, "worker")
    grid = world.grids["S-C1-R1-G1"]
    duplicate = 'fieldsync_sync_ops_total{outcome="duplicate"}'
    conflicts = "fieldsync_sync_conflicts_total"
    pulls = 'fieldsync_sync_duration_seconds_count{operation="pull"}'
    served = 'fieldsync_sync_changes_served_total{operation="pull"}'
    before = {name: _sample(client, name) for name in (duplicate, conflicts, pulls, served)}
    rid = record_id()
    ops = [worker.op(rid, "people_met", "a", grid=grid)]
    worker.push(ops)
    worker.push(ops)  # a retry after a lost reply
    rival = phone(client, world, "leader")  # blind to the worker's edit: a conflict
    assert len(rival.push([rival.op(rid, "people_met", "b", grid=grid)])["conflicts"]) == 1
    assert _sample(client, conflicts) == before[conflicts] + 1
    page = client.get("/api/v1/sync/pull?cursor=0", headers=worker.headers)
    changes = checked(page, 200, "pull_response")["changes"]
    assert _sample(client, duplicate) == before[duplicate] + 1
    assert _sample(client, pulls) == before[pulls] + 1
    assert _sample(client, served) == before[served] + len(changes)
