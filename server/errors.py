"""The one error catalogue, and the problem+json (RFC 9457) responses built from it.

Domain code raises `ApiError(ErrorCode.X, detail)`; only the handlers registered
here turn errors into HTTP. Nothing internal (trace, SQL, path) reaches a client.
"""

from __future__ import annotations

import enum
import logging
from typing import Any

from flask import Flask, Response, json
from sqlalchemy.exc import IntegrityError
from werkzeug.exceptions import HTTPException

from server.blobs import BlobStoreUnavailable

PROBLEM_TYPE_BASE = "https://fieldsync.dev/problems/"
PROBLEM_JSON = "application/problem+json"
RETRY_AFTER_SECONDS = 30  # for a service this needs that is down (the blob store)

log = logging.getLogger("fieldsync.errors")


class ErrorCode(enum.Enum):
    """Stable error codes: (HTTP status, title). Codes are never renamed or reused."""

    BAD_REQUEST = (400, "The request could not be understood")
    INVALID_JSON = (400, "The body is not valid JSON")
    SCHEMA_VIOLATION = (422, "The message does not match its JSON Schema")
    VALIDATION_FAILED = (422, "Some fields are not valid")
    INVALID_FORM = (422, "The form definition is not valid")
    UNAUTHENTICATED = (401, "Authentication is required")
    INVALID_CREDENTIALS = (401, "Wrong username or password")
    TOKEN_REVOKED = (401, "This device token is no longer valid")
    DEVICE_UNKNOWN = (401, "This server knows no device with this token")
    FORBIDDEN = (403, "You may not do this")
    CSRF_FAILED = (403, "The form's CSRF token is missing or wrong")
    NOT_FOUND = (404, "Not found")
    METHOD_NOT_ALLOWED = (405, "Method not allowed")
    NOT_ACCEPTABLE = (406, "Cannot produce an acceptable response")
    CONFLICT = (409, "The request conflicts with the current state")
    SEQ_GAP = (409, "Ops do not continue from the acknowledged seq")
    SEQ_REUSE = (409, "A seq was reused with different content")
    CURSOR_EXPIRED = (410, "The pull cursor is no longer honoured; start over from a snapshot")
    PAYLOAD_TOO_LARGE = (413, "The request is too large")
    UNSUPPORTED_MEDIA_TYPE = (415, "The body is not of a type this endpoint accepts")
    PRECONDITION_FAILED = (412, "The resource changed since it was read")
    TOO_MANY_REQUESTS = (429, "Too many attempts; wait before trying again")
    ATTACHMENT_TOO_LARGE = (413, "The attachment is larger than the server accepts")
    CONTENT_TYPE_NOT_ALLOWED = (422, "This kind of file is not accepted")
    HASH_MISMATCH = (422, "The uploaded bytes do not have the announced SHA-256 or size")
    UPLOAD_INCOMPLETE = (409, "The attachment's bytes have not been uploaded and checked yet")
    INTERNAL_ERROR = (500, "Internal server error")
    SERVICE_UNAVAILABLE = (503, "A service this needs is unavailable")

    @property
    def status(self) -> int:
        return self.value[0]

    @property
    def title(self) -> str:
        return self.value[1]

    @property
    def slug(self) -> str:
        return self.name.lower()


_BY_STATUS = {
    400: ErrorCode.BAD_REQUEST,
    401: ErrorCode.UNAUTHENTICATED,
    403: ErrorCode.FORBIDDEN,
    404: ErrorCode.NOT_FOUND,
    405: ErrorCode.METHOD_NOT_ALLOWED,
    406: ErrorCode.NOT_ACCEPTABLE,
    409: ErrorCode.CONFLICT,
    410: ErrorCode.CURSOR_EXPIRED,
    412: ErrorCode.PRECONDITION_FAILED,
    413: ErrorCode.PAYLOAD_TOO_LARGE,
    415: ErrorCode.UNSUPPORTED_MEDIA_TYPE,
    422: ErrorCode.VALIDATION_FAILED,
    429: ErrorCode.TOO_MANY_REQUESTS,
    503: ErrorCode.SERVICE_UNAVAILABLE,
}


class ApiError(Exception):
    """A domain failure with a catalogue code, turned into problem+json at the edge."""

    def __init__(
        self,
        code: ErrorCode,
        detail: str | None = None,
        *,
        errors: list[dict[str, Any]] | None = None,
        extra: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail or code.title)
        self.code = code
        self.detail = detail or code.title
        self.errors = errors or []
        self.extra = extra or {}
        self.headers = headers or {}


def problem_body(
    code: ErrorCode,
    detail: str | None = None,
    errors: list[dict[str, Any]] | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The problem+json document for a catalogue code."""
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_BASE + code.slug,
        "title": code.title,
        "status": code.status,
        "detail": detail or code.title,
        "code": code.slug,
        "errors": errors or [],
    }
    body.update(extra or {})
    return body


def problem_response(
    code: ErrorCode,
    detail: str | None = None,
    errors: list[dict[str, Any]] | None = None,
    extra: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """A Flask response carrying the problem document."""
    response = Response(
        json.dumps(problem_body(code, detail, errors, extra)),
        status=code.status,
        mimetype=PROBLEM_JSON,
    )
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _handle_api_error(error: ApiError) -> Response:
    return problem_response(error.code, error.detail, error.errors, error.extra, error.headers)


def _handle_http_exception(error: HTTPException) -> Response:
    code = _BY_STATUS.get(error.code or 500, ErrorCode.INTERNAL_ERROR)
    # Werkzeug's descriptions are generic and safe; they never hold request data.
    detail = error.description if code is not ErrorCode.INTERNAL_ERROR else None
    headers = {}
    if error.code == 405 and error.valid_methods:
        headers["Allow"] = ", ".join(error.valid_methods)
    return problem_response(code, detail, headers=headers)


def _handle_blob_store_unavailable(error: BlobStoreUnavailable) -> Response:
    log.error("blob store unavailable: %s", error, exc_info=error)
    return problem_response(
        ErrorCode.SERVICE_UNAVAILABLE,
        "The file store cannot be reached; try again later.",
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


# A unique key refused the row: SQLite's extended result codes and PostgreSQL's SQLSTATE.
_UNIQUE_VIOLATIONS = frozenset(
    {"SQLITE_CONSTRAINT_UNIQUE", "SQLITE_CONSTRAINT_PRIMARYKEY", "23505"}
)


def _is_unique_violation(error: IntegrityError) -> bool:
    cause = error.orig
    return (
        getattr(cause, "sqlite_errorname", None) in _UNIQUE_VIOLATIONS
        or getattr(cause, "sqlstate", None) in _UNIQUE_VIOLATIONS
    )


def _handle_integrity_error(error: IntegrityError) -> Response:
    """A row another request stored first (a username or grid code taken between the
    check and the insert) is a 409, as the check would have answered; any other broken
    constraint is a fault of the server's."""
    if not _is_unique_violation(error):
        return _handle_unexpected(error)
    log.info("unique key taken concurrently: %s", error.orig)
    return problem_response(
        ErrorCode.CONFLICT,
        "Another request stored the same thing at the same time; nothing was changed.",
    )


def _handle_unexpected(error: Exception) -> Response:
    log.exception("unhandled error", exc_info=error)
    return problem_response(ErrorCode.INTERNAL_ERROR, "The server failed; the error was logged.")


def init_app(app: Flask) -> None:
    app.register_error_handler(ApiError, _handle_api_error)
    app.register_error_handler(HTTPException, _handle_http_exception)
    app.register_error_handler(BlobStoreUnavailable, _handle_blob_store_unavailable)
    app.register_error_handler(IntegrityError, _handle_integrity_error)
    app.register_error_handler(Exception, _handle_unexpected)
