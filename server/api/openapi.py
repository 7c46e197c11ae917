"""The OpenAPI 3.1 document, built from the route table, the access rules and the schemas.

Every route in `app.url_map` is described from its `operation` declaration (or
`catalog.EXTERNAL_DOCS`) and its access rule: parameters, body, responses, the
roles that may call it, and every error it may answer as problem+json.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Blueprint, Flask, current_app, jsonify, render_template_string

from server.api.access import ALL, RULES, Auth, Rule
from server.api.catalog import EXTERNAL_DOCS
from server.api.operation import JSON, Operation, documented
from server.api.schemas import MAX_POSITION, MAX_ROW_ID
from server.errors import PROBLEM_JSON, ErrorCode

bp = Blueprint("openapi", __name__, url_prefix="/api/v1")

_ARGUMENT = re.compile(r"<(?:(?P<converter>\w+)(?:\([^)]*\))?:)?(?P<name>\w+)>")
_IGNORED_METHODS = {"HEAD", "OPTIONS"}
# What each path converter accepts (`server.api.CONVERTERS`); any other is a string.
_PATH_SCHEMAS = {
    "int": {"type": "integer", "minimum": 0},
    "row_id": {"type": "integer", "minimum": 1, "maximum": MAX_ROW_ID},
    "big_id": {"type": "integer", "minimum": 1, "maximum": MAX_POSITION},
}

PROBLEM = {
    "type": "object",
    "required": ["type", "title", "status", "detail", "code", "errors"],
    "properties": {
        "type": {"type": "string", "format": "uri"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "code": {"type": "string", "enum": sorted(code.slug for code in ErrorCode)},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"path": {"type": "string"}, "message": {"type": "string"}},
            },
        },
    },
    "additionalProperties": True,
}


def operation_for(app: Flask, endpoint: str) -> Operation | None:
    """The declaration of an endpoint: on its view, or in the catalogue."""
    view = app.view_functions.get(endpoint)
    return (documented(view) if view else None) or EXTERNAL_DOCS.get(endpoint)


def undocumented(app: Flask) -> list[str]:
    """Endpoints that lack a declaration or an access rule."""
    missing = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        if operation_for(app, rule.endpoint) is None or rule.endpoint not in RULES:
            missing.add(rule.endpoint)
    return sorted(missing)


def openapi_path(rule_text: str) -> tuple[str, list[dict[str, Any]]]:
    """'/a/<int:id>' as '/a/{id}' and its path parameters."""
    parameters = []
    for match in _ARGUMENT.finditer(rule_text):
        schema = _PATH_SCHEMAS.get(match["converter"], {"type": "string"})
        parameters.append({"in": "path", "name": match["name"], "required": True, "schema": schema})
    return _ARGUMENT.sub(lambda m: "{" + m["name"] + "}", rule_text), parameters


def error_codes(doc: Operation, access: Rule) -> list[ErrorCode]:
    """Every catalogue code this endpoint may answer."""
    codes: list[ErrorCode] = []
    if access.auth is not Auth.PUBLIC:
        codes += [ErrorCode.UNAUTHENTICATED]
    if access.auth in (Auth.DEVICE, Auth.USER):
        codes += [ErrorCode.TOKEN_REVOKED, ErrorCode.DEVICE_UNKNOWN]
    if access.auth is Auth.USER:
        codes += [ErrorCode.CSRF_FAILED]
    if access.auth is not Auth.PUBLIC and access.roles != ALL:
        codes += [ErrorCode.FORBIDDEN]
    if access.obj:
        codes += [ErrorCode.NOT_FOUND]
    if doc.body or doc.body_json_schema or doc.body_type:
        codes += [ErrorCode.UNSUPPORTED_MEDIA_TYPE, ErrorCode.PAYLOAD_TOO_LARGE]
    if doc.body or doc.body_json_schema:
        codes += [ErrorCode.INVALID_JSON]
    if doc.body or doc.query or doc.body_type:
        codes += [ErrorCode.VALIDATION_FAILED]
    if doc.body_json_schema or doc.query_json_schema:
        codes += [ErrorCode.SCHEMA_VIOLATION]
    codes += [*doc.errors, ErrorCode.INTERNAL_ERROR]
    return list(dict.fromkeys(codes))


def _responses(doc: Operation, access: Rule) -> dict[str, Any]:
    responses: dict[str, Any] = {}
    if doc.status == 204:
        responses["204"] = {"description": "Done; no content."}
    else:
        if doc.response is not None:
            schema: Any = doc.response
        elif doc.response_json_schema:
            schema = {"$ref": f"#/components/schemas/{doc.response_json_schema}"}
        else:
            schema = {"type": "object"} if doc.response_type == JSON else {"type": "string"}
        content = {doc.response_type: {"schema": schema}}
        responses[str(doc.status)] = {"description": doc.summary, "content": content}
    by_status: dict[int, list[ErrorCode]] = {}
    for code in error_codes(doc, access):
        by_status.setdefault(code.status, []).append(code)
    for status, codes in sorted(by_status.items()):
        responses[str(status)] = {
            "description": "; ".join(f"`{code.slug}`: {code.title}" for code in codes),
            "content": {
                PROBLEM_JSON: {
                    "schema": {"$ref": "#/components/schemas/Problem"},
                    "examples": {
                        code.slug: {"value": {"code": code.slug, "status": status}}
                        for code in codes
                    },
                }
            },
        }
    return responses


def _request_body(doc: Operation) -> dict[str, Any] | None:
    if doc.body is not None:
        return {"required": True, "content": {JSON: {"schema": doc.body}}}
    if doc.body_json_schema:
        ref = {"$ref": f"#/components/schemas/{doc.body_json_schema}"}
        return {"required": True, "content": {JSON: {"schema": ref}}}
    if doc.body_type:
        binary = {"type": "string", "contentMediaType": doc.body_type}
        return {"required": True, "content": {doc.body_type: {"schema": binary}}}
    return None


def _security(access: Rule) -> list[dict[str, list]]:
    return {
        Auth.PUBLIC: [],
        Auth.DEVICE: [{"bearer": []}],
        Auth.USER: [{"bearer": []}, {"session": []}],
        Auth.PAGE: [{"session": []}],
    }[access.auth]


def _operation(endpoint: str, doc: Operation, access: Rule, path_params: list) -> dict:
    roles = sorted(str(role) for role in access.roles) if access.auth is not Auth.PUBLIC else []
    described = doc.description or doc.summary
    if roles:
        described += f"\n\nRoles: {', '.join(roles)}."
    if access.obj:
        described += f" The {access.obj} must lie in the caller's grid scope, else 404."
    operation: dict[str, Any] = {
        "operationId": endpoint,
        "summary": doc.summary,
        "description": described,
        "tags": list(doc.tags) or [endpoint.split(".")[0]],
        "parameters": list(path_params),
        "responses": _responses(doc, access),
        "security": _security(access),
        "x-roles": roles,
    }
    if access.obj:
        operation["x-object"] = access.obj
    if doc.query is not None:
        operation["parameters"].append({"in": "query", "schema": doc.query})
    if doc.query_json_schema:
        operation["parameters"].extend(_json_schema_parameters(doc.query_json_schema))
    body = _request_body(doc)
    if body:
        operation["requestBody"] = body
    return operation


def _json_schema_parameters(name: str) -> list[dict[str, Any]]:
    """Query parameters from the properties of a sync message's JSON Schema."""
    from mobile_schema.schemas import schema

    document = _message_components()[name]
    required = set(schema(name).get("required", []))
    return [
        {"in": "query", "name": key, "required": key in required, "schema": value}
        for key, value in document.get("properties", {}).items()
    ]


def _message_components() -> dict[str, Any]:
    """The sync messages' JSON Schemas as components, their $refs pointed inside the doc."""
    from mobile_schema.schemas import schema, schema_names

    names = [*schema_names(), "common"]

    def rewrite(node: Any, owner: str) -> Any:
        if isinstance(node, dict):
            out = {}
            for key, value in node.items():
                if key in ("$schema", "$id"):
                    continue
                if key == "$ref" and isinstance(value, str):
                    document, _, pointer = value.partition("#")
                    target = document.removesuffix(".json") if document else owner
                    out[key] = f"#/components/schemas/{target}{pointer}"
                else:
                    out[key] = rewrite(value, owner)
            return out
        if isinstance(node, list):
            return [rewrite(item, owner) for item in node]
        return node

    return {name: rewrite(copy.deepcopy(schema(name)), name) for name in names}


def _build(app: Flask) -> dict[str, Any]:
    spec = APISpec(
        title="fieldsync",
        version="1",
        openapi_version="3.1.0",
        plugins=[MarshmallowPlugin()],
        info={
            "description": "Offline-first field data-collection sync server. Every error is "
            "application/problem+json with a stable `code`."
        },
    )
    spec.components.security_scheme("bearer", {"type": "http", "scheme": "bearer"})
    spec.components.security_scheme(
        "session",
        {
            "type": "apiKey",
            "in": "cookie",
            "name": app.config.get("SESSION_COOKIE_NAME", "session"),
            "description": "Web sign-in; changes also need the X-CSRF-Token header.",
        },
    )
    spec.components.schema("Problem", PROBLEM)
    for name, document in _message_components().items():
        spec.components.schema(name, document)
    paths: dict[str, dict[str, Any]] = {}
    parameters: dict[str, list] = {}
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: (r.rule, r.endpoint)):
        doc, access = operation_for(app, rule.endpoint), RULES.get(rule.endpoint)
        if rule.endpoint == "static" or doc is None or access is None:
            continue
        path, path_params = openapi_path(rule.rule)
        parameters[path] = path_params
        for method in sorted((rule.methods or set()) - _IGNORED_METHODS):
            paths.setdefault(path, {})[method.lower()] = _operation(
                rule.endpoint, doc, access, path_params
            )
    for path, operations in paths.items():
        spec.path(path=path, operations=operations)
    return spec.to_dict()


def build_spec(app: Flask) -> dict[str, Any]:
    """The OpenAPI document of `app` (built fresh)."""
    return _build(app)


@bp.get("/openapi.json", endpoint="spec")
def spec_view():
    if "fieldsync.openapi" not in current_app.extensions:
        current_app.extensions["fieldsync.openapi"] = _build(current_app)
    return jsonify(current_app.extensions["fieldsync.openapi"])


DOCS_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>fieldsync API</title>
<style>
body{font-family:system-ui,sans-serif;max-width:70rem;margin:2rem auto;padding:0 1rem}
code{background:#f3f3f3;padding:0 .2em}.m{display:inline-block;width:4.5rem;font-weight:bold}
section{border-top:1px solid #ddd;padding:.6rem 0}small{color:#555}
</style></head><body>
<h1>fieldsync API {{ spec.info.version }}</h1>
<p>{{ spec.info.description }} Machine-readable: <a href="openapi.json">openapi.json</a>.</p>
{% for path, operations in spec.paths.items() %}{% for method, op in operations.items() %}
<section id="{{ op.operationId }}"><div><span class="m">{{ method|upper }}</span>
<code>{{ path }}</code> {{ op.summary }}</div>
<small>{% if op['x-roles'] %}roles: {{ op['x-roles']|join(', ') }}{% else %}public{% endif %}
{% if op['x-object'] %}; scoped {{ op['x-object'] }}{% endif %}
; parameters: {% for p in op.parameters %}<code>{{ p.name }}</code> ({{ p['in'] }})
{% else %}none{% endfor %}
; answers: {% for status in op.responses %}{{ status }} {% endfor %}</small></section>
{% endfor %}{% endfor %}
</body></html>"""


@bp.get("/docs", endpoint="docs")
def docs_view():
    if "fieldsync.openapi" not in current_app.extensions:
        current_app.extensions["fieldsync.openapi"] = _build(current_app)
    page = render_template_string(DOCS_PAGE, spec=current_app.extensions["fieldsync.openapi"])
    response = current_app.make_response(page)
    # The page's one inline stylesheet is ours and static; scripts stay forbidden.
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'"
    )
    return response
