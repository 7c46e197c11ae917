"""The OpenAPI document covers every route, validates as OpenAPI 3.1, and the docs page serves."""

from __future__ import annotations

from openapi_spec_validator import validate

from server.api.access import RULES
from server.api.openapi import build_spec, openapi_path, undocumented
from server.errors import ErrorCode


def test_every_route_has_a_rule_and_a_declaration(app):
    assert undocumented(app) == []
    endpoints = {rule.endpoint for rule in app.url_map.iter_rules()}
    stale = sorted(set(RULES) - endpoints)
    assert stale == [], f"access rules for endpoints that do not exist: {stale}"


def test_the_document_is_valid_openapi_31_and_complete(client, app):
    reply = client.get("/api/v1/openapi.json")
    assert reply.status_code == 200
    spec = reply.get_json()
    assert spec["openapi"] == "3.1.0"
    validate(spec)
    operations = {
        op["operationId"]: (path, method, op)
        for path, item in spec["paths"].items()
        for method, op in item.items()
    }
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        assert rule.endpoint in operations, rule.endpoint
        path, _method, op = operations[rule.endpoint]
        assert path == openapi_path(rule.rule)[0]
        for argument in rule.arguments:
            assert argument in [p["name"] for p in op["parameters"] if p["in"] == "path"]
        assert "500" in op["responses"]
        if RULES[rule.endpoint].obj:
            assert "404" in op["responses"]
    assert spec == build_spec(app)


def test_query_parameters_and_error_codes_are_described(client):
    spec = client.get("/api/v1/openapi.json").get_json()
    records = spec["paths"]["/api/v1/records"]["get"]
    names = {p["name"] for p in records["parameters"]}
    assert {"form", "grid", "review", "q", "after", "limit", "sort"} <= names
    register = spec["paths"]["/api/v1/devices/register"]["post"]
    assert register["security"] == []
    examples = register["responses"]["401"]["content"]["application/problem+json"]["examples"]
    assert ErrorCode.INVALID_CREDENTIALS.slug in examples
    revoke = spec["paths"]["/api/v1/devices/{device_id}/revoke"]["post"]
    assert revoke["x-object"] == "device"


def test_the_docs_page(client):
    reply = client.get("/api/v1/docs")
    assert reply.status_code == 200
    text = reply.get_data(as_text=True)
    assert "/api/v1/devices/register" in text
    assert "openapi.json" in text
    policy = reply.headers["Content-Security-Policy"]
    assert "style-src 'self' 'unsafe-inline'" in policy
    assert "script-src" not in policy
    assert "unsafe-inline" not in client.get("/healthz").headers["Content-Security-Policy"]
