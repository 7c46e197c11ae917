"""The client's Transport over the real Flask app in-process, checking every reply.

Each reply is validated against the JSON Schema of its message (a problem reply
against problem.json) before the client sees it, so every end-to-end test is also a
contract test of the server's responses.
"""

from __future__ import annotations

from typing import Any

from flask import Flask

from mobile_schema.schemas import validate
from mobile_schema.transport import Reply, Request, decode_body, encode_body

REPLY_SCHEMAS = {
    ("POST", "/api/v1/devices/register"): "register_response",
    ("POST", "/api/v1/sync/push"): "push_response",
    ("GET", "/api/v1/sync/pull"): "pull_response",
    ("GET", "/api/v1/sync/snapshot"): "snapshot_response",
    ("GET", "/api/v1/sync/inbox"): "inbox_response",
    ("GET", "/api/v1/forms/bundle"): "forms_bundle",
    ("POST", "/api/v1/attachments"): "attachment_target",
}


class SchemaMismatch(AssertionError):
    """The server sent a reply its schema refuses."""


def check_reply(request: Request, status: int, body: Any) -> None:
    if status == 304:
        return
    name = "problem" if status >= 400 else REPLY_SCHEMAS[(request.method, request.path)]
    errors = validate(name, body)
    if errors:
        raise SchemaMismatch(f"{request.method} {request.path} {status} breaks {name}: {errors}")


class AppTransport:
    """Requests through `app.test_client()`, encoded as urllib would send them."""

    def __init__(self, app: Flask) -> None:
        self.client = app.test_client()
        self.replies: list[tuple[Request, Reply]] = []

    def send(self, request: Request) -> Reply:
        headers = request.all_headers()
        data = None
        if request.body is not None:
            data, body_headers = encode_body(request.body)
            headers.update(body_headers)
        response = self.client.open(
            request.url_path(), method=request.method, data=data, headers=headers
        )
        plain = dict(response.headers.items())
        reply = Reply(response.status_code, decode_body(response.get_data(), plain), plain)
        response.close()
        check_reply(request, reply.status, reply.body)
        self.replies.append((request, reply))
        return reply
