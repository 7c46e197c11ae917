"""The sync API: push, pull, snapshot and inbox for devices holding a bearer token.

Views only unwrap HTTP (gzip, size limits, JSON, JSON Schema), call
`server.sync_service`, commit, and wrap the reply (gzip when the device accepts it).
"""

from __future__ import annotations

import functools
import gzip
import json
import re
import time
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Response, current_app, g, request

from mobile_schema.schemas import validate
from server import sync_metrics, sync_service
from server.auth import device_required
from server.db import database, db_session
from server.errors import ApiError, ErrorCode
from server.request_body import body_bytes
from server.request_text import parse_body
from server.settings import Settings
from sync.messages import CursorExpired, SeqGap, SeqReuse
from sync.protocol import MalformedRequest, PullRequest
from sync.wire_check import plain_fields

bp = Blueprint("sync", __name__, url_prefix="/api/v1/sync")

GZIP_MIN_BYTES = 1024
GZIP_LEVEL = 1  # pages are large and repetitive: the fastest level already shrinks them ~10x


def get_settings() -> Settings:
    return current_app.extensions["fieldsync.settings"]


def _body(limit: int) -> Any:
    """The request's JSON, gunzipped when sent so; at most `limit` bytes decompressed."""
    return parse_body(body_bytes(limit))


def _schema_errors(body: Any) -> tuple[list[dict[str, str]], list[tuple | None] | None]:
    """The push body's JSON Schema errors; ops of the everyday shapes skip the validator.

    With them, each op's `plain_fields` (None for those the validator looked at), which
    the push reads instead of checking the ops again.
    """
    ops = body.get("ops") if type(body) is dict else None
    if type(ops) is not list or body.keys() != {"ops"} or not 1 <= len(ops) <= 5000:
        return [error.as_dict() for error in validate("push_request", body)], None
    errors = []
    plain = [plain_fields(op) for op in ops]
    for index, op in enumerate(ops):
        if plain[index] is None:
            for error in validate("op", op):
                errors.append({"path": f"/ops/{index}{error.path}", "message": error.message})
    return errors, plain


def _reply(payload: dict[str, Any], status: int = 200) -> Response:
    return _send(json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode(), status)


def _send(data: bytes, status: int = 200) -> Response:
    """A JSON body, gzipped when the device accepts gzip and the body is not tiny."""
    response = Response(data, status=status, mimetype="application/json")
    response.vary.add("Accept-Encoding")
    if len(data) >= GZIP_MIN_BYTES and request.accept_encodings.quality("gzip") > 0:
        response.set_data(gzip.compress(data, GZIP_LEVEL))
        response.headers["Content-Encoding"] = "gzip"
    return response


_DECIMAL = re.compile("[0-9]{1,16}")


def _int_param(name: str, default: int | None = None) -> int | None:
    raw = request.args.get(name)
    if raw is None:
        return default
    # ASCII digits only: str.isdigit() also takes "²" (which int() refuses) and "١".
    if not _DECIMAL.fullmatch(raw):
        raise ApiError(
            ErrorCode.SCHEMA_VIOLATION,
            f"{name} must be a whole number",
            errors=[{"path": f"/{name}", "message": "must be a non-negative integer"}],
        )
    return int(raw)


def _checked(schema: str, instance: dict[str, Any]) -> None:
    errors = [error.as_dict() for error in validate(schema, instance)]
    if errors:
        raise ApiError(
            ErrorCode.SCHEMA_VIOLATION, "the request does not match its schema", errors=errors
        )


def _rules(session):
    return sync_service.rules_for(session, get_settings())


def _timed(operation: str) -> Callable[[Callable[..., Response]], Callable[..., Response]]:
    """Observe a view's whole time in the sync latency histogram, refusals included."""

    def wrap(view: Callable[..., Response]) -> Callable[..., Response]:
        @functools.wraps(view)
        def timed(*args: Any, **kwargs: Any) -> Response:
            started = time.perf_counter()
            try:
                return view(*args, **kwargs)
            finally:
                sync_metrics.observe(operation, time.perf_counter() - started)

        return timed

    return wrap


@bp.post("/push")
@_timed("push")
@device_required
def push():
    settings = get_settings()
    body = _body(settings.max_request_bytes)
    ops = body.get("ops") if isinstance(body, dict) else None
    if isinstance(ops, list) and len(ops) > settings.max_push_ops:
        raise ApiError(ErrorCode.PAYLOAD_TOO_LARGE, f"at most {settings.max_push_ops} ops per push")
    errors, plain = _schema_errors(body)
    if errors:
        raise ApiError(
            ErrorCode.SCHEMA_VIOLATION,
            "the push does not match push_request.json",
            errors=errors[:100],
        )
    session = db_session()
    # End the token check's read before the forms catalog reads on its own connection:
    # SQLite has one writer, and every transaction there takes the write lock.
    session.commit()
    known = sync_service.warm(
        database(), {(op["form_id"], op["form_version"]) for op in body["ops"]}
    )
    rules = sync_service.rules_for(session, get_settings(), known)
    try:
        reply = sync_service.push(session, g.device, body, rules, plain)
    except SeqGap as refusal:
        raise ApiError(
            ErrorCode.SEQ_GAP, str(refusal), extra={"expected_seq": refusal.expected_seq}
        ) from None
    except SeqReuse as refusal:
        raise ApiError(ErrorCode.SEQ_REUSE, str(refusal), extra={"seq": refusal.seq}) from None
    except MalformedRequest as refusal:
        raise ApiError(
            ErrorCode.SCHEMA_VIOLATION, "some ops cannot be read", errors=refusal.errors
        ) from None
    session.commit()
    return _reply(reply.to_wire())


def _page(whole: bool) -> Response:
    settings = get_settings()
    cursor = _int_param("cursor", None if not whole else 0)
    limit = _int_param("limit", settings.pull_page_size)
    wanted = {"cursor": cursor, "limit": limit} if cursor is not None else {"limit": limit}
    _checked("snapshot_request" if whole else "pull_request", wanted)
    page_request = PullRequest(cursor, min(limit, settings.pull_page_size))
    session = db_session()
    try:
        reply = sync_service.pull(session, g.device, page_request, _rules(session), whole=whole)
    except CursorExpired as refusal:
        raise ApiError(ErrorCode.CURSOR_EXPIRED, str(refusal)) from None
    session.commit()
    return _send(reply.encode())


@bp.get("/pull")
@_timed("pull")
@device_required
def pull():
    return _page(whole=False)


@bp.get("/snapshot")
@_timed("snapshot")
@device_required
def snapshot():
    return _page(whole=True)


@bp.get("/inbox")
@device_required
def inbox():
    after = _int_param("after", 0)
    limit = _int_param("limit", 100)
    _checked("inbox_request", {"after": after, "limit": limit})
    session = db_session()
    reply = sync_service.inbox(session, g.device, after, limit)
    session.commit()
    return _reply(reply.to_wire())
