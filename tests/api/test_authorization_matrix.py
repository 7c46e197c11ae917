"""The authorization matrix, generated from the route table.

For every endpoint × every role × an object inside and outside the caller's scope,
the answer must follow the endpoint's access rule: 401 without credentials, 403
for a role the rule does not admit, 404 for an object outside the scope (exactly
like a missing one), and neither for an admitted role on an object in scope. An
endpoint without a rule, or an object kind without a factory here, fails.
"""

from __future__ import annotations

import re
import secrets
import tempfile
import uuid

import pytest

from server import create_app
from server.api.access import RULES, Auth
from server.devices import register_device
from server.grids import create_grid
from server.models import Attachment, AttachmentUploader, Grid, Role, User
from server.settings import Settings
from server.users import create_user
from tests.api.factories import PASSWORD, World
from tests.api.records_world import add_conflict, add_quarantined, add_record, install_forms

ROLE_USERS = {
    Role.ADMIN: "admin",
    Role.SUPERVISOR: "supervisor",
    Role.GRID_LEADER: "leader",
    Role.WORKER: "worker",
}
# Grids each role works in (the first is where their in-scope objects are made).
HOME = {"admin": "S-C1-R1-G1", "supervisor": "S-C1", "leader": "S-C1-R1", "worker": "S-C1-R1-G1"}
OUTSIDE = "S-C2-R1-G1"  # worker2's grid: outside everyone's scope but the admin's
# Values for URL arguments that do not name a scoped object.
PLAIN_ARGUMENTS = {"form_id": "hazard_check", "version": 1}


def _route_table() -> list[tuple[str, str, str]]:
    with tempfile.TemporaryDirectory() as folder:
        app = create_app(Settings(var_dir=folder, secret_key="matrix", log_level="error"))
        table = [
            (rule.endpoint, method, rule.rule)
            for rule in app.url_map.iter_rules()
            if rule.endpoint != "static"
            for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"})
        ]
        from server.db import database

        database(app).dispose()
    return sorted(table)


ROUTES = _route_table()


def _fresh_user(world: World, grid_code: str) -> User:
    with world.database.session() as session:
        grid = session.get(Grid, world.grids[grid_code])
        user = create_user(session, f"u{secrets.token_hex(4)}", PASSWORD, "worker", grids=[grid])
        return user.id


def _make(kind: str, world: World, settings, who: str, inside: bool) -> dict:
    """View arguments naming a fresh object of `kind`, inside or outside `who`'s scope."""
    home = HOME[who] if inside else OUTSIDE
    owner = who if inside else "worker2"
    if kind == "grid":
        with world.database.session() as session:
            parent = session.get(Grid, world.grids[home])
            grid = create_grid(session, f"g{secrets.token_hex(4)}", "fresh", "enterprise", parent)
            return {"grid_id": grid.id}
    if kind == "user":
        return {"user_id": _fresh_user(world, home)}
    if kind == "device":
        # Field staff reach only their own devices; staff reach those in their grids.
        own = who in ("leader", "worker") or not inside
        user_id = world.users[owner] if own else _fresh_user(world, home)
        with world.database.session() as session:
            device, _token = register_device(session, session.get(User, user_id), "fresh")
            return {"device_id": device.id}
    if kind == "attachment":
        sha = secrets.token_hex(32)
        with world.database.session() as session:
            session.add(Attachment(sha256=sha, size=10, content_type="image/png", created_by=1))
            session.flush()
            session.add(AttachmentUploader(sha256=sha, user_id=world.users[owner]))
        return {"sha256": sha}
    grid = "S-C1-R1-G1" if inside else OUTSIDE
    pusher = "worker" if inside else "worker2"
    if kind == "record":
        return {"record_id": add_record(world, settings, pusher, grid)}
    if kind == "conflict":
        return {"conflict_id": add_conflict(world, settings, pusher, grid)[1]}
    if kind == "op":
        return {"position": add_quarantined(world, settings, pusher, grid)}
    raise AssertionError(f"no factory for object kind {kind!r}: add one to this test")


def _url(rule_text: str, arguments: dict) -> str:
    def fill(match: re.Match) -> str:
        name = match["name"]
        if name in arguments:
            return str(arguments[name])
        if name in PLAIN_ARGUMENTS:
            return str(PLAIN_ARGUMENTS[name])
        raise AssertionError(f"no value for URL argument {name!r}: add it to PLAIN_ARGUMENTS")

    return re.sub(r"<(?:\w+(?:\([^)]*\))?:)?(?P<name>\w+)>", fill, rule_text)


def _call(client, method: str, url: str, headers: dict):
    body = {} if method in ("POST", "PUT", "PATCH") else None
    return client.open(url, method=method, json=body, headers=headers)


def _signed_in_client(app, username: str):
    client = app.test_client()
    page = client.get("/web/signin").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    client.post(
        "/web/signin", data={"username": username, "password": PASSWORD, "csrf_token": token}
    )
    return client


@pytest.mark.parametrize(("endpoint", "method", "rule_text"), ROUTES, ids=lambda v: str(v))
def test_access_follows_the_rule(endpoint, method, rule_text, app, world, settings):
    rule = RULES.get(endpoint)
    assert rule is not None, f"{endpoint} has no access rule in server/api/access.py"
    if rule.obj in ("record", "conflict", "op"):
        install_forms(world)
    client = app.test_client()
    if rule.auth is Auth.PUBLIC:
        arguments = _make(rule.obj, world, settings, "admin", True) if rule.obj else {}
        reply = _call(client, method, _url(rule_text, arguments), {})
        # Public: nothing gates the caller (a form may still want its CSRF token).
        code = (reply.get_json(silent=True) or {}).get("code")
        gates = ("unauthenticated", "token_revoked", "device_unknown", "forbidden")
        assert code not in gates, (endpoint, code)
        return

    def arguments_for(who: str, inside: bool) -> dict:
        return _make(rule.obj, world, settings, who, inside) if rule.obj else {}

    anonymous = _call(client, method, _url(rule_text, arguments_for("admin", True)), {})
    if rule.auth is Auth.PAGE:
        assert anonymous.status_code == 302, endpoint
    else:
        assert anonymous.status_code == 401, (endpoint, anonymous.get_json())

    for role, who in ROLE_USERS.items():
        if rule.auth is Auth.PAGE:
            caller, headers = _signed_in_client(app, who), {}
        else:
            caller, headers = client, world.headers(who)
        scopes = [True] if role == Role.ADMIN or not rule.obj else [False, True]
        for inside in scopes:
            url = _url(rule_text, arguments_for(who, inside))
            reply = _call(caller, method, url, headers)
            seen = (endpoint, method, who, "inside" if inside else "outside", reply.status_code)
            if role not in rule.roles:
                assert reply.status_code == 403, seen
                assert reply.get_json()["code"] == "forbidden", seen
            elif not inside:
                assert reply.status_code == 404, seen
                assert reply.get_json()["code"] == "not_found", seen
            else:
                assert reply.status_code not in (401, 403), (seen, reply.get_data(as_text=True))
                if rule.obj:
                    assert reply.status_code != 404, (seen, reply.get_data(as_text=True))


def test_a_missing_object_is_404_like_an_out_of_scope_one(app, world):
    client = app.test_client()
    for url in (
        f"/api/v1/grids/{10**6}",
        f"/api/v1/users/{10**6}",
        f"/api/v1/devices/{uuid.uuid4()}",
        f"/api/v1/records/{uuid.uuid4()}",
        f"/api/v1/attachments/{'0' * 64}",
        f"/api/v1/quarantine/{10**6}",
    ):
        reply = client.get(url, headers=world.headers("admin"))
        assert reply.status_code == 404, url
        assert reply.get_json()["code"] == "not_found"


def test_an_endpoint_without_a_rule_is_refused(app, world):
    from flask import Blueprint

    extra = Blueprint("unruled", __name__)
    extra.add_url_rule("/api/v1/unruled", "hidden", lambda: "secret")
    app.register_blueprint(extra)
    reply = app.test_client().get("/api/v1/unruled", headers=world.headers("admin"))
    assert reply.status_code == 403
    assert "secret" not in reply.get_data(as_text=True)
