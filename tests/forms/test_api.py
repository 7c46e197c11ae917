"""The forms HTTP API: bundle with ETag and 304, publish and retire for admins only."""

import json

import pytest

from forms.builtin import source_path
from server.devices import register_device
from server.errors import ApiError, ErrorCode
from server.form_store import install_builtin, sendable_definition
from server.models import StoredFormVersion, User
from server.passwords import hash_password
from tests.forms.files import HEADER, malformed_sheet, xlsx


def token_for(database, role):
    with database.session() as session:
        user = User(username=role, role=role, password_hash=hash_password("pw-123456789"))
        session.add(user)
        session.flush()
        _, token = register_device(session, user, "phone")
    return {"Authorization": f"Bearer {token}"}


def test_bundle_etag_and_admin_changes(client, database):
    with database.session() as session:
        install_builtin(session)
    worker, admin = token_for(database, "worker"), token_for(database, "admin")
    first = client.get("/api/v1/forms/bundle", headers=worker)
    assert first.status_code == 200
    assert {f["form_id"] for f in first.json["forms"]} >= {"household", "hazard_check"}
    etag = first.headers["ETag"]
    cached = client.get("/api/v1/forms/bundle", headers={**worker, "If-None-Match": etag})
    assert cached.status_code == 304
    refused = client.post("/api/v1/forms/hazard_check/versions/1/retire", headers=worker)
    assert refused.status_code == 403
    body = source_path("hazard_check").read_bytes()
    imported = client.post(
        "/api/v1/forms/import?name=hazard.json&publish=true",
        data=body,
        headers={**admin, "Content-Type": "application/json"},
    )
    assert imported.status_code == 201, imported.json
    assert imported.json["version"] == 2
    retired = client.post("/api/v1/forms/hazard_check/versions/1/retire", headers=admin)
    assert retired.json["status"] == "retired"
    changed = client.get("/api/v1/forms/bundle", headers={**worker, "If-None-Match": etag})
    assert changed.status_code == 200
    assert changed.headers["ETag"] != etag
    bad = client.post(
        "/api/v1/forms/import?name=bad.json",
        data=b"[1]",
        headers={**admin, "Content-Type": "application/json"},
    )
    assert bad.status_code == 422
    assert bad.json["code"] == "invalid_form"


def test_a_json_form_with_a_lone_surrogate_is_refused(client, database):
    admin = token_for(database, "admin")
    definition = json.loads(source_path("hazard_check").read_text())
    definition["title"]["en"] += "\ud800"  # json.dumps writes it as a lone escape
    reply = client.post(
        "/api/v1/forms/import?name=hazard.json&publish=true",
        data=json.dumps(definition).encode(),
        headers={**admin, "Content-Type": "application/json"},
    )
    assert reply.status_code == 422
    assert reply.json["code"] == "invalid_form"
    assert "lone surrogate at /title/en" in reply.json["detail"]
    assert client.get("/api/v1/forms/bundle", headers=admin).json["forms"] == []


def test_an_xlsform_with_a_bad_fs_number_answers_invalid_form(client, database):
    admin = token_for(database, "admin")
    data = xlsx([[*HEADER, "bind::fs:max_length"], ["text", "a", "A", "abc"]])
    reply = client.post("/api/v1/forms/import?name=f.xlsx", data=data, headers=admin)
    assert reply.status_code == 422
    assert reply.json["code"] == "invalid_form"
    assert "question 'a': bind::fs:max_length must be a finite number" in reply.json["detail"]
    assert client.get("/api/v1/forms", headers=admin).json["items"] == []


def no_constants(name):
    raise ValueError(f"{name} is not JSON")


def test_nan_bounds_are_refused_and_the_bundle_stays_json(client, database):
    admin, worker = token_for(database, "admin"), token_for(database, "worker")
    body = b"""{"form_id": "nanform", "fields": [
        {"name": "a", "type": "decimal", "label": "A", "min": NaN, "max": Infinity}]}"""
    reply = client.post(
        "/api/v1/forms/import?name=f.json&publish=true",
        data=body,
        headers={**admin, "Content-Type": "application/json"},
    )
    assert reply.status_code == 422
    assert reply.json["code"] == "invalid_form"
    bundle = client.get("/api/v1/forms/bundle", headers=worker)
    assert json.loads(bundle.get_data(as_text=True), parse_constant=no_constants) == {"forms": []}


def test_a_stored_definition_holding_nan_is_refused_not_sent():
    fields = [{"name": "a", "type": "decimal", "min": float("nan")}]
    row = StoredFormVersion(
        form_id="old", version=3, definition={"form_id": "old", "fields": fields}
    )
    with pytest.raises(ApiError) as raised:
        sendable_definition(row)
    assert raised.value.code is ErrorCode.INVALID_FORM
    assert "form 'old' version 3" in raised.value.detail


def import_json(client, headers, definition):
    return client.post(
        "/api/v1/forms/import?name=f.json",
        data=json.dumps(definition).encode(),
        headers={**headers, "Content-Type": "application/json"},
    )


def test_a_select_naming_its_list_with_a_list_answers_invalid_form(client, database):
    admin = token_for(database, "admin")
    field = {"name": "a", "type": "select_one", "choices": ["l"]}
    reply = import_json(
        client, admin, {"form_id": "c1", "fields": [field], "choices": {"l": [{"name": "x"}]}}
    )
    assert reply.status_code == 422
    assert reply.json["detail"] == "f.json: field 'a': choices must be text"


def test_a_version_exports_as_xform_or_answers_invalid_form(client, database):
    admin = token_for(database, "admin")
    unlabelled = {"form_id": "nolabel", "fields": [{"name": "a", "type": "text"}]}
    assert import_json(client, admin, unlabelled).status_code == 201
    exported = client.get("/api/v1/forms/nolabel/versions/1/export?format=xform", headers=admin)
    assert exported.status_code == 200
    assert b"<label>a</label>" in exported.data
    odd_media = {"name": "a", "type": "text", "label": "A", "media": {"smell": "x.txt"}}
    assert import_json(client, admin, {"form_id": "m", "fields": [odd_media]}).status_code == 201
    refused = client.get("/api/v1/forms/m/versions/1/export?format=xform", headers=admin)
    assert refused.status_code == 422
    assert refused.json["code"] == "invalid_form"
    assert "form 'm' version 1 cannot be written as xform: " in refused.json["detail"]


def test_an_xlsx_with_a_malformed_sheet_answers_invalid_form(client, database):
    admin = token_for(database, "admin")
    data = malformed_sheet(xlsx([HEADER, ["text", "a", "A"]]))
    reply = client.post("/api/v1/forms/import?name=f.xlsx", data=data, headers=admin)
    assert reply.status_code == 422
    assert reply.json["detail"].startswith("f.xlsx: not a readable XLSForm (ParseError: ")


def test_xlsforms_without_form_id_are_stored_under_their_file_names(client, database):
    admin = token_for(database, "admin")
    for name, question in (("tutorial.xlsx", "a"), ("widgets.xlsx", "b")):
        data = xlsx([HEADER, ["text", question, "Q"]], settings=None)
        reply = client.post(f"/api/v1/forms/import?name={name}", data=data, headers=admin)
        assert reply.status_code == 201, reply.json
    stored = client.get("/api/v1/forms", headers=admin).json["items"]
    assert [(item["form_id"], item["version"]) for item in stored] == [
        ("tutorial", 1),
        ("widgets", 1),
    ]
