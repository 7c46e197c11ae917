"""Times in queries: any zone means the same instant, and a time UTC cannot hold is a 422.

Stored times are UTC, and SQLite compares them as text, so every bound is moved to UTC
when the query is read (`server.api.schemas.Moment`).
"""

from __future__ import annotations

import datetime as dt
from urllib.parse import quote

import pytest
from marshmallow import Schema, fields

import server.api  # noqa: F401  (registers every API schema)
from tests.api.problems import assert_problem
from tests.api.records_world import add_record, install_forms

EAST = dt.timezone(dt.timedelta(hours=8))
WEST = dt.timezone(dt.timedelta(hours=-8))


def _around_now(zone: dt.tzinfo) -> tuple[str, str]:
    """A minute ago and a minute ahead, written in `zone`, for a query string."""
    now = dt.datetime.now(dt.UTC)
    return tuple(
        quote((now + dt.timedelta(minutes=minutes)).astimezone(zone).isoformat())
        for minutes in (-1, 1)
    )


@pytest.fixture
def record(world, settings):
    install_forms(world)
    return add_record(world, settings, "worker", "S-C1-R1-G1")


@pytest.mark.parametrize("zone", [dt.UTC, EAST, WEST], ids=["utc", "east", "west"])
def test_records_and_export_bounds_mean_the_same_instant_in_any_zone(client, world, record, zone):
    admin = world.headers("admin")
    before, after = _around_now(zone)
    listed = client.get(f"/api/v1/records?since={before}&until={after}", headers=admin)
    assert [item["record_id"] for item in listed.get_json()["items"]] == [record]
    assert client.get(f"/api/v1/records?since={after}", headers=admin).get_json()["items"] == []
    assert client.get(f"/api/v1/records?until={before}", headers=admin).get_json()["items"] == []
    exported = client.get(
        f"/api/v1/records/export?form=hazard_check&since={before}&until={after}", headers=admin
    )
    assert exported.status_code == 200
    assert record in exported.get_data(as_text=True)
    empty = client.get(f"/api/v1/records/export?form=hazard_check&since={after}", headers=admin)
    assert record not in empty.get_data(as_text=True)


@pytest.mark.parametrize("zone", [dt.UTC, EAST, WEST], ids=["utc", "east", "west"])
def test_audit_event_bounds_mean_the_same_instant_in_any_zone(client, world, record, zone):
    admin = world.headers("admin")
    before, after = _around_now(zone)
    url = f"/api/v1/audit/events?since={before}&until={after}"
    assert client.get(url, headers=admin).get_json()["items"]
    url = f"/api/v1/audit/events?since={after}"
    assert client.get(url, headers=admin).get_json()["items"] == []


EDGES = [quote("0001-01-01T00:00:00+01:00"), quote("9999-12-31T23:59:59-01:00")]


@pytest.mark.parametrize("edge", EDGES, ids=["year-0", "year-10000"])
@pytest.mark.parametrize(
    ("url", "name"),
    [
        ("/api/v1/records?since={t}", "since"),
        ("/api/v1/records?until={t}", "until"),
        ("/api/v1/records/export?form=hazard_check&since={t}", "since"),
        ("/api/v1/audit/events?since={t}", "since"),
        ("/api/v1/audit/events?until={t}", "until"),
        ("/api/v1/audit/records/{record}?as_of={t}", "as_of"),
    ],
)
def test_a_time_outside_the_years_utc_holds_is_refused(client, world, record, edge, url, name):
    reply = client.get(url.format(t=edge, record=record), headers=world.headers("admin"))
    problem = assert_problem(reply, 422, "validation_failed")
    assert problem["errors"][0]["path"] == f"/{name}"


def test_the_first_and_last_instants_utc_holds_are_accepted(client, world, record):
    admin = world.headers("admin")
    first, last = quote("0001-01-01T00:00:00+00:00"), quote("9999-12-31T23:59:59+00:00")
    reply = client.get(f"/api/v1/records?since={first}&until={last}", headers=admin)
    assert [item["record_id"] for item in reply.get_json()["items"]] == [record]
    reply = client.get(f"/api/v1/audit/records/{record}?as_of={last}", headers=admin)
    assert reply.status_code == 200, reply.get_json()


def _times(value, key=""):
    """Every `*_time` and `*_at` string in a reply, with its key."""
    if isinstance(value, dict):
        return [time for name, inner in value.items() for time in _times(inner, name)]
    if isinstance(value, list):
        return [time for inner in value for time in _times(inner, key)]
    if isinstance(value, str) and key.endswith(("_at", "_time")):
        return [(key, value)]
    return []


def test_every_time_in_a_reply_carries_its_zone(client, world, record):
    admin = world.headers("admin")
    client.post(f"/api/v1/grids/{world.grids['S-C2']}/retire", headers=admin)
    paths = [
        "/api/v1/users",
        "/api/v1/devices",
        "/api/v1/grids?include_retired=true",
        "/api/v1/records",
        f"/api/v1/records/{record}",
        "/api/v1/forms",
    ]
    times = []
    for path in paths:
        reply = client.get(path, headers=admin)
        assert reply.status_code == 200, (path, reply.get_json())
        times += _times(reply.get_json())
    keys = {key for key, _ in times}
    assert {"created_at", "registered_at", "retired_at", "updated_at", "server_time"} <= keys
    for key, text in times:
        assert dt.datetime.fromisoformat(text).utcoffset() == dt.timedelta(0), (key, text)


def _schemas(base=Schema):
    for schema in base.__subclasses__():
        yield schema
        yield from _schemas(schema)


def test_no_api_schema_writes_a_time_without_the_time_field():
    bare = [
        f"{schema.__module__}.{schema.__name__}.{name}"
        for schema in _schemas()
        if schema.__module__.startswith("server.")
        for name, field in schema._declared_fields.items()
        if type(field) is fields.DateTime
    ]
    assert bare == []
