"""Exporting records as CSV: columns, values, repeats, scope, paging, and the audit event."""

from __future__ import annotations

import csv
import io
import json
import uuid

import pytest
from sqlalchemy import select

from server import export
from server.models import AuditEvent
from tests.api.problems import assert_problem
from tests.api.records_world import add_record, install_forms, push

URL = "/api/v1/records/export"
PHOTO = {"sha256": "ab" * 32, "size": 10, "content_type": "image/jpeg"}


@pytest.fixture
def forms_world(world):
    install_forms(world)
    return world


def table(reply) -> list[dict[str, str]]:
    assert reply.status_code == 200, reply.get_data(as_text=True)
    assert reply.mimetype == "text/csv"
    text = reply.get_data(as_text=True)
    assert text.startswith("\ufeff")
    return list(csv.DictReader(io.StringIO(text[1:])))


def test_one_row_per_record_and_one_column_per_field(client, forms_world, settings):
    w = forms_world
    rid = add_record(
        w,
        settings,
        "worker",
        "S-C1-R1-G1",
        address='王芳家, "12号"',
        location={"latitude": 39.9, "longitude": 116.4, "accuracy": 5},
    )
    grid_id = w.grids["S-C1-R1-G1"]
    push(w, settings, w.devices["worker"], [(rid, "categories", grid_id, "gas")], kind="add")
    reply = client.get(f"{URL}?form=hazard_check", headers=w.headers("supervisor"))
    assert reply.headers["Content-Disposition"] == 'attachment; filename="hazard_check-v1.csv"'
    (row,) = table(reply)
    assert (row["record_id"], row["grid_id"], row["form_version"]) == (rid, str(grid_id), "1")
    assert row["address"] == '王芳家, "12号"'
    assert row["severity"] == "low"
    assert row["location"] == "39.9 116.4 0 5"
    assert row["categories"] == "gas"
    assert row["description"] == ""
    assert row["review_status"] == "pending"
    assert "photo" not in row  # a repeat's fields are its own export
    assert list(row)[:6] == list(export.RECORD_COLUMNS)


def test_text_a_spreadsheet_would_run_as_a_formula_is_written_as_text(
    client, forms_world, settings
):
    w = forms_world
    formulas = ['=HYPERLINK("http://evil.example")', "+1+cmd|'/C calc'!A0", "-2+3", "@SUM(1)"]
    formulas += ["\t=1+1", "\r=1+1"]
    for text in formulas:
        add_record(w, settings, "worker", "S-C1-R1-G1", address=text)
    rows = table(client.get(f"{URL}?form=hazard_check", headers=w.headers("supervisor")))
    assert sorted(row["address"] for row in rows) == sorted("'" + text for text in formulas)
    assert export.cell(["-a", "b"]) == "'-a b"
    assert (export.cell(-2), export.cell(-0.5), export.cell("a=b")) == ("-2", "-0.5", "a=b")


def test_each_part_of_a_point_keeps_its_place():
    point = {"latitude": 39.9, "longitude": 116.4}
    assert export.cell(point) == "39.9 116.4"
    assert export.cell({**point, "altitude": 5}) == "39.9 116.4 5"
    assert export.cell({**point, "accuracy": 5}) == "39.9 116.4 0 5"
    assert export.cell({**point, "altitude": 50, "accuracy": 5}) == "39.9 116.4 50 5"
    assert export.cell({"latitude": -33.9, "longitude": 18.4}) == "-33.9 18.4"


def test_a_repeat_exports_its_rows_with_their_parent(client, forms_world, settings):
    w = forms_world
    rid = add_record(w, settings, "worker", "S-C1-R1-G1")
    grid_id, row_id = w.grids["S-C1-R1-G1"], str(uuid.uuid4())
    values = {"_parent": rid, "_group": "photos", "_order": 1, "photo": PHOTO, "caption": "东门"}
    push(w, settings, w.devices["worker"], [(row_id, f, grid_id, v) for f, v in values.items()])
    reply = client.get(f"{URL}?form=hazard_check&group=photos", headers=w.headers("admin"))
    (row,) = table(reply)
    assert (row["record_id"], row["parent_id"]) == (row_id, rid)
    assert (row["photo"], row["caption"]) == ("ab" * 32, "东门")
    assert [
        r["record_id"]
        for r in table(client.get(f"{URL}?form=hazard_check", headers=w.headers("admin")))
    ] == [rid]
    bad = client.get(f"{URL}?form=hazard_check&group=address", headers=w.headers("admin"))
    assert_problem(bad, 422, "validation_failed")


def test_the_export_follows_scope_and_filters_and_pages(client, forms_world, settings, monkeypatch):
    w = forms_world
    mine = [add_record(w, settings, "worker", "S-C1-R1-G1", severity=s) for s in ["low", "high"]]
    theirs = add_record(w, settings, "worker2", "S-C2-R1-G1")
    monkeypatch.setattr(export, "PAGE", 1)  # every record on a page of its own
    everything = table(client.get(f"{URL}?form=hazard_check", headers=w.headers("admin")))
    assert sorted(r["record_id"] for r in everything) == sorted([*mine, theirs])
    supervisor = w.headers("supervisor")
    assert sorted(
        r["record_id"] for r in table(client.get(f"{URL}?form=hazard_check", headers=supervisor))
    ) == sorted(mine)
    grid = w.grids["S-C2"]
    out_of_scope = client.get(f"{URL}?form=hazard_check&grid={grid}", headers=supervisor)
    assert_problem(out_of_scope, 404, "not_found")
    assert table(client.get(f"{URL}?form=household", headers=supervisor)) == []
    assert_problem(client.get(f"{URL}?form=no_such", headers=supervisor), 404, "not_found")
    assert_problem(
        client.get(f"{URL}?form=hazard_check", headers=w.headers("worker")), 403, "forbidden"
    )


def test_every_export_is_on_the_audit_trail(client, forms_world, settings, database):
    w = forms_world
    add_record(w, settings, "worker", "S-C1-R1-G1")
    grid = w.grids["S-C1-R1"]
    reply = client.get(
        f"{URL}?form=hazard_check&grid={grid}&review=pending", headers=w.headers("supervisor")
    )
    assert len(table(reply)) == 1
    with database.session() as session:
        event = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "export.created")
        ).one()
    details = json.loads(event.details)
    assert (event.target_type, event.target_id, event.user_id) == (
        "form",
        "hazard_check",
        w.users["supervisor"],
    )
    assert details["form_version"] == 1
    assert (details["grid"], details["review"], details["grid_ids"]) == (grid, "pending", [grid])


def test_rows_of_a_deleted_record_leave_with_it(client, forms_world, settings):
    w = forms_world
    kept, gone = (add_record(w, settings, "worker", "S-C1-R1-G1") for _ in range(2))
    grid_id = w.grids["S-C1-R1-G1"]
    rows = {}
    for parent in (kept, gone):
        rows[parent] = str(uuid.uuid4())
        values = {"_parent": parent, "_group": "photos", "_order": 1, "caption": parent}
        push(
            w,
            settings,
            w.devices["worker"],
            [(rows[parent], f, grid_id, v) for f, v in values.items()],
        )
    # A row under a row of the deleted record is gone too, however deep.
    nested = str(uuid.uuid4())
    values = {"_parent": rows[gone], "_group": "photos", "_order": 1, "caption": "nested"}
    push(w, settings, w.devices["worker"], [(nested, f, grid_id, v) for f, v in values.items()])
    push(w, settings, w.devices["worker"], [(gone, "_deleted", grid_id, True)])
    admin = w.headers("admin")

    exported = table(client.get(f"{URL}?form=hazard_check&group=photos", headers=admin))
    assert [row["record_id"] for row in exported] == [rows[kept]]
    everything = client.get(
        f"{URL}?form=hazard_check&group=photos&include_deleted=true", headers=admin
    )
    assert {row["record_id"] for row in table(everything)} == {*rows.values(), nested}

    def listed(query):
        reply = client.get(f"/api/v1/records?{query}", headers=admin)
        assert reply.status_code == 200, reply.get_json()
        return {item["record_id"] for item in reply.get_json()["items"]}

    assert listed("include_children=true") == {kept, rows[kept]}
    assert listed(f"parent={gone}") == set()
    assert listed(f"parent={rows[gone]}") == set()
    assert listed(f"parent={gone}&include_deleted=true") == {rows[gone]}
    assert listed(f"parent={kept}") == {rows[kept]}
