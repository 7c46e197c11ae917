"""OpenAPI declarations for endpoints written as plain Flask views (health, sync, forms, web).

Views built with `operation` carry their own declaration; the others are declared
here, keyed by endpoint name, so that every route in the app is documented.
"""

from __future__ import annotations

from server.api.operation import Operation
from server.errors import ErrorCode

SYNC = ("sync",)
HEALTH = ("health",)
DOCS = ("documentation",)
WEB = ("web",)
HTML = "text/html"
FORM = "application/x-www-form-urlencoded"

EXTERNAL_DOCS: dict[str, Operation] = {
    "health.healthz": Operation("The process is up", tags=HEALTH),
    "health.readyz": Operation(
        "The database answers and its migrations are current",
        tags=HEALTH,
        errors=(ErrorCode.SERVICE_UNAVAILABLE,),
    ),
    "health.metrics_view": Operation("Prometheus metrics", tags=HEALTH, response_type="text/plain"),
    "openapi.spec": Operation("This OpenAPI 3.1 document", tags=DOCS),
    "openapi.docs": Operation("The API reference as a web page", tags=DOCS, response_type=HTML),
    "sync.push": Operation(
        "Push a batch of ops: one transaction, idempotent on retry",
        tags=SYNC,
        description="At most 5,000 ops and 4 MiB after gzip decompression. The ops continue "
        "from the acknowledged seq; see docs/protocol.md.",
        body_json_schema="push_request",
        response_json_schema="push_response",
        errors=(
            ErrorCode.SCHEMA_VIOLATION,
            ErrorCode.SEQ_GAP,
            ErrorCode.SEQ_REUSE,
            ErrorCode.PAYLOAD_TOO_LARGE,
            ErrorCode.BAD_REQUEST,
        ),
    ),
    "sync.pull": Operation(
        "Changes in the device's scope after a cursor, oldest first, in pages",
        tags=SYNC,
        query_json_schema="pull_request",
        response_json_schema="pull_response",
        errors=(ErrorCode.SCHEMA_VIOLATION, ErrorCode.CURSOR_EXPIRED),
    ),
    "sync.snapshot": Operation(
        "The whole scope's state at one position, in pages",
        tags=SYNC,
        query_json_schema="snapshot_request",
        response_json_schema="snapshot_response",
        errors=(ErrorCode.SCHEMA_VIOLATION,),
    ),
    "sync.inbox": Operation(
        "Inbox items for the device's user after an id: reviews, comments, conflicts",
        tags=SYNC,
        query_json_schema="inbox_request",
        response_json_schema="inbox_response",
        errors=(ErrorCode.SCHEMA_VIOLATION,),
    ),
    "web.signin_form": Operation("The web sign-in form", tags=WEB, response_type=HTML),
    "web.signin": Operation(
        "Sign in on the web: sets the session cookie and redirects (303)",
        tags=WEB,
        description="A form post (username, password, csrf_token, next). Wrong credentials "
        "show the form again with 401; too many failures with 429.",
        body_type=FORM,
        status=303,
        response_type=HTML,
        errors=(ErrorCode.CSRF_FAILED, ErrorCode.INVALID_CREDENTIALS, ErrorCode.TOO_MANY_REQUESTS),
    ),
    "web.signout": Operation(
        "Sign out on the web (a form post with csrf_token)",
        tags=WEB,
        body_type=FORM,
        status=303,
        response_type=HTML,
        errors=(ErrorCode.CSRF_FAILED,),
    ),
    "web.home": Operation("The signed-in user's start page", tags=WEB, response_type=HTML),
}
