"""Real forms and their real submissions, entered on a device, synced, stored and exported.

Each real XLSForm is imported and published on the server; each OpenRosa instance made
with it is entered on the reference client as a user would (a record, its repeat rows
as child records, multi-selects, points, dates), synced, and read back from the
server's record API and CSV export. The files live in ../shared/realforms; the tests
skip when it is absent.
"""

from __future__ import annotations

import csv
import io

import pytest
from sqlalchemy import select

from mobile_schema.client import DeviceClient
from server.devices import register_device
from server.form_store import import_file
from server.models import User
from tests.device.app_transport import AppTransport
from tests.device.conftest import PASSWORDS
from tests.device.harness import open_device
from tests.device.submissions import FORMS, Row, form_file, read_submission, submission_file

CASES = {
    "tutorial.xlsx": [
        f"tutorial/instances/{name}.xml" for name in ("1", "2", "3", "nan_net_worth", "no_age")
    ],
    "nested_repeats.xlsx": ["nested_repeats_01.xml", "nested_repeats_02.xml"],
    "groups_in_repeats.xlsx": ["groups_in_repeats_01.xml", "groups_in_repeats_02.xml"],
    "good_eats_multilang.xlsx": ["good_eats_multilang/1.xml"],
    "gps_in_repeats.xlsx": ["gps_in_repeats_submission.xml"],
    "transportation.xlsx": ["transport_2011-07-25_19-05-36.xml"],
}

pytestmark = pytest.mark.skipif(not FORMS.exists(), reason="realforms are absent")


@pytest.fixture
def admin(world) -> dict[str, str]:
    with world.session() as session:
        user = session.scalar(select(User).where(User.username == "admin"))
        _, token = register_device(session, user, "desk")
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def phone(app, world, tmp_path):
    credentials = ("worker1", PASSWORDS["worker1"])
    client = open_device(tmp_path / "phone.db", AppTransport(app), credentials)
    client.register(*credentials, "phone")
    yield client
    client.close()


def publish(world, name: str) -> str:
    with world.session() as session:
        return import_file(session, form_file(name), publish=True).form_id


def enter(phone: DeviceClient, form_id: str, grid: int, values: dict, rows: list[Row]) -> str:
    """The record as a user enters it: the record, then each repeat row under it."""
    record_id = phone.create(form_id, grid, values)

    def add_rows(parent: str, rows: list[Row]) -> None:
        for order, row in enumerate(rows, 1):
            row_id = phone.create(
                form_id, grid, row.values, parent=parent, group=row.group, order=order
            )
            add_rows(row_id, row.rows)

    add_rows(record_id, rows)
    return record_id


def stored(app, admin, record_id: str) -> dict:
    reply = app.test_client().get(f"/api/v1/records/{record_id}", headers=admin)
    assert reply.status_code == 200, reply.json
    return reply.json


def values_of(fields: dict) -> dict:
    return {name: held["value"] for name, held in fields.items() if not name.startswith("_")}


def expected(values: dict) -> dict:
    """What the server holds: a select_multiple as its sorted list of choices."""
    return {k: sorted(v) if isinstance(v, list) else v for k, v in values.items()}


def rows_of(record: dict, children: list[dict]) -> list:
    """The record's rows as (group, values, rows under it), in their `_order`."""
    by_parent: dict[str, list[dict]] = {}
    for child in children:
        by_parent.setdefault(child["parent_id"], []).append(child)

    def under(parent: str) -> list:
        mine = sorted(by_parent.get(parent, []), key=lambda c: c["fields"]["_order"]["value"])
        return [(c["repeat_group"], values_of(c["fields"]), under(c["record_id"])) for c in mine]

    return under(record["record_id"])


def submitted_rows(rows: list[Row]) -> list:
    return [(row.group, expected(row.values), submitted_rows(row.rows)) for row in rows]


def all_children(app, admin, record: dict) -> list[dict]:
    """Child rows at every depth (the record API lists one level)."""
    found = []
    for child in record["children"]:
        found.append(child)
        found.extend(all_children(app, admin, stored(app, admin, child["record_id"])))
    return found


def export(app, admin, form_id: str, group: str | None = None) -> list[dict]:
    query = f"form={form_id}" + (f"&group={group}" if group else "")
    reply = app.test_client().get(f"/api/v1/records/export?{query}", headers=admin)
    assert reply.status_code == 200
    return list(csv.DictReader(io.StringIO(reply.get_data(as_text=True).lstrip("\ufeff"))))


@pytest.mark.parametrize("form", sorted(CASES))
def test_real_submissions_sync_and_export_as_entered(form, app, world, admin, phone):
    form_id = publish(world, form)
    phone.sync()
    version = phone.forms.version(form_id, phone.forms.latest_version(form_id))
    grid = phone.state().grid_ids[0]
    entered = {}
    for name in CASES[form]:
        submission = read_submission(version, submission_file(name))
        entered[name] = (
            enter(phone, form_id, grid, submission.values, submission.rows),
            submission,
        )
    report = phone.sync()
    assert report.quarantined == 0
    exported = {row["record_id"]: row for row in export(app, admin, form_id)}
    for name, (record_id, submission) in entered.items():
        record = stored(app, admin, record_id)
        assert values_of(record["fields"]) == expected(submission.values), name
        children = all_children(app, admin, record)
        assert rows_of(record, children) == submitted_rows(submission.rows), name
        row = exported[record_id]
        for field, value in submission.values.items():
            assert row[field] != "", (name, field, value)
    for group in version.repeats:
        exported_rows = export(app, admin, form_id, group)
        assert len(exported_rows) == sum(count_rows(s.rows, group) for _, s in entered.values())


def count_rows(rows: list[Row], group: str) -> int:
    return sum((row.group == group) + count_rows(row.rows, group) for row in rows)


def flags_of(app, admin, record_id: str) -> list[tuple]:
    flags = stored(app, admin, record_id)["validation_flags"] or []
    return [(f["field"], f["code"], f.get("repeat"), f.get("row")) for f in flags]


def test_flags_follow_required_and_constraints_as_fields_are_edited(app, world, admin, phone):
    form_id = publish(world, "tutorial.xlsx")
    phone.sync()
    version = phone.forms.version(form_id, 1)
    submission = read_submission(version, submission_file("tutorial/instances/1.xml"))
    record_id = enter(phone, form_id, phone.state().grid_ids[0], submission.values, [])
    phone.sync()
    assert flags_of(app, admin, record_id) == []
    phone.set(record_id, "age", None)  # "How old are you?" is required
    phone.sync()
    assert flags_of(app, admin, record_id) == [("age", "required", None, None)]
    phone.set(record_id, "age", 150)  # ${age} > 0 and ${age} < 120
    phone.sync()
    (flag,) = stored(app, admin, record_id)["validation_flags"]
    assert (flag["field"], flag["code"]) == ("age", "constraint")
    assert flag["messages"] == {"default": "That's not a valid age!"}
    flagged = app.test_client().get(f"/api/v1/records?form={form_id}&flagged=true", headers=admin)
    assert [item["record_id"] for item in flagged.json["items"]] == [record_id]
    phone.set(record_id, "age", 35)
    phone.sync()
    assert flags_of(app, admin, record_id) == []


def test_a_repeat_made_not_relevant_is_flagged_on_its_record(app, world, admin, phone):
    form_id = publish(world, "nested_repeats.xlsx")
    phone.sync()
    version = phone.forms.version(form_id, 1)
    submission = read_submission(version, submission_file("nested_repeats_01.xml"))
    record_id = enter(phone, form_id, phone.state().grid_ids[0], submission.values, submission.rows)
    phone.sync()
    assert flags_of(app, admin, record_id) == []
    phone.set(record_id, "has_kids", "0")  # the kids_details repeat is relevant for '1' only
    phone.sync()
    assert flags_of(app, admin, record_id) == [
        ("kids_details", "not_relevant", None, None),
    ]
