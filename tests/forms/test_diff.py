"""Version diffs: the pure function, `fieldsync forms diff` and GET /api/v1/forms/<id>/diff."""

import json

from click.testing import CliRunner

from forms import builtin, diff_versions, from_dict
from server.cli import cli
from server.form_store import install_builtin, save_draft
from tests.forms.test_api import token_for

EXPECTED = {
    "added": ["inspector"],
    "removed": ["responsible_phone"],
    "retyped": [{"field": "assigned_team", "from": "select_one", "to": "select_multiple"}],
    "choices_added": {"severity": ["extreme"], "assigned_team": ["street_office"]},
    "choices_removed": {"severity": ["low"]},
}


def changed_hazard() -> dict:
    """hazard_check with one field added, one removed, one retyped and choices changed."""
    definition = builtin.definition("hazard_check")
    fields = [f for f in definition["fields"] if f["name"] != "responsible_phone"]
    fields.append({"name": "inspector", "type": "text", "label": {"zh": "检查人", "en": "By"}})
    for field in fields:
        if field["name"] == "assigned_team":
            field["type"] = "select_multiple"
    choices = definition["choices"]
    choices["severity"] = [c for c in choices["severity"] if c["name"] != "low"]
    choices["severity"].append({"name": "extreme", "label": {"zh": "特大", "en": "Extreme"}})
    choices["team"].append({"name": "street_office", "label": {"zh": "街道办", "en": "Street"}})
    return {**definition, "fields": fields}


def test_the_diff_of_two_versions_in_both_directions():
    old, new = builtin.hazard_check, from_dict(changed_hazard())
    forward = diff_versions(old, new)
    assert forward.as_dict() == EXPECTED
    backward = diff_versions(new, old).as_dict()
    assert backward["added"] == ["responsible_phone"]
    assert backward["removed"] == ["inspector"]
    assert backward["choices_added"] == {"severity": ["low"]}
    assert backward["choices_removed"] == {
        "severity": ["extreme"],
        "assigned_team": ["street_office"],
    }
    assert diff_versions(old, old).empty
    assert not forward.empty


def store_two_versions(database) -> None:
    """hazard_check v1 published (the built-in) and the changed v2 as a draft."""
    with database.session() as session:
        install_builtin(session)
        assert save_draft(session, changed_hazard(), "json").version == 2


def test_api_diff(client, database):
    store_two_versions(database)
    worker, admin = token_for(database, "worker"), token_for(database, "admin")
    url = "/api/v1/forms/hazard_check/diff"
    reply = client.get(f"{url}?from=1&to=2", headers=admin)
    assert reply.status_code == 200, reply.json
    body = reply.json
    assert {key: body[key] for key in EXPECTED} == EXPECTED
    assert body["from"]["version"] == 1
    assert body["from"]["status"] == "published"
    assert body["to"] == {**body["to"], "version": 2, "status": "draft"}
    assert body["form_id"] == "hazard_check"
    assert body["unchanged"] is False
    # Only admins see drafts; to anyone else a draft is missing.
    hidden = client.get(f"{url}?from=1&to=2", headers=worker)
    assert hidden.status_code == 404
    assert hidden.json["code"] == "not_found"
    same = client.get(f"{url}?from=1&to=1", headers=worker)
    assert same.status_code == 200
    assert same.json["unchanged"] is True
    assert same.json["added"] == []
    assert same.json["choices_added"] == {}
    published = client.post("/api/v1/forms/hazard_check/versions/2/publish", headers=admin)
    assert published.status_code == 200, published.json
    seen = client.get(f"{url}?from=2&to=1", headers=worker)
    assert seen.status_code == 200
    assert seen.json["added"] == ["responsible_phone"]
    for query, code in [
        ("", "validation_failed"),
        ("?from=1", "validation_failed"),
        ("?from=0&to=1", "validation_failed"),
        ("?from=one&to=2", "validation_failed"),
        ("?from=1&to=2&extra=1", "validation_failed"),
        ("?from=1&from=2&to=2", "validation_failed"),
        ("?from=1&to=3", "not_found"),
    ]:
        bad = client.get(url + query, headers=admin)
        assert bad.json["code"] == code, (query, bad.json)
        assert bad.headers["Content-Type"] == "application/problem+json"
    missing = client.get("/api/v1/forms/nope/diff?from=1&to=2", headers=admin)
    assert missing.status_code == 404
    assert client.get(f"{url}?from=1&to=2").status_code == 401


def run(args, database, tmp_path):
    env = {
        "FIELDSYNC_DATABASE_URL": database.engine.url.render_as_string(hide_password=False),
        "FIELDSYNC_VAR_DIR": str(tmp_path / "var"),
    }
    return CliRunner().invoke(cli, args, env=env)


def test_cli_diff(database, tmp_path):
    store_two_versions(database)
    result = run(["forms", "diff", "hazard_check", "1", "2"], database, tmp_path)
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        "hazard_check v1 (published) -> v2 (draft)",
        "+ field inspector (text)",
        "- field responsible_phone (text)",
        "~ field assigned_team: select_one -> select_multiple",
        "+ choice severity: extreme",
        "+ choice assigned_team: street_office",
        "- choice severity: low",
    ]
    as_json = run(["forms", "diff", "hazard_check", "1", "2", "--json"], database, tmp_path)
    assert as_json.exit_code == 0, as_json.output
    body = json.loads(as_json.output)
    assert {key: body[key] for key in EXPECTED} == EXPECTED
    same = run(["forms", "diff", "hazard_check", "2", "2"], database, tmp_path)
    assert same.output.splitlines()[-1] == "no changes to fields or choices"
    for args, problem in [
        (["hazard_check", "1", "9"], "has no version 9"),
        (["nope", "1", "2"], "has no version 1"),
    ]:
        failed = run(["forms", "diff", *args], database, tmp_path)
        assert failed.exit_code == 2, failed.output
        assert problem in failed.output
        assert len(failed.output.strip().splitlines()) == 1
    assert run(["forms", "diff", "hazard_check", "0", "1"], database, tmp_path).exit_code == 2
