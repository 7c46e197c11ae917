"""The `operation` decorator: one declaration that parses, validates, serialises and documents.

A view declares its query and body schemas (marshmallow, or for a message a device
sends, its mobile_schema JSON Schema), its response schema and status, and the error
codes it may answer; the decorator enforces the media type (415), parses JSON (400),
validates (422 with one entry per bad field), dumps the result, and keeps the
declaration on the view for the OpenAPI document.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from flask import Response, current_app, jsonify, request
from marshmallow import RAISE, Schema, ValidationError

from mobile_schema.schemas import validate
from server.errors import ApiError, ErrorCode
from server.request_body import body_bytes
from server.request_text import parse_body

JSON = "application/json"
DOC_ATTRIBUTE = "__apidoc__"


@dataclass(frozen=True)
class Operation:
    """What the OpenAPI document says about one endpoint."""

    summary: str
    tags: tuple[str, ...] = ()
    description: str = ""
    query: type[Schema] | None = None
    body: type[Schema] | None = None
    body_type: str | None = None  # a non-JSON body's media type ("text/csv", "*/*")
    body_json_schema: str | None = None  # a mobile_schema message name
    query_json_schema: str | None = None  # a mobile_schema message whose fields are the query
    response: type[Schema] | None = None
    response_json_schema: str | None = None
    response_type: str = JSON
    status: int = 200
    errors: tuple[ErrorCode, ...] = ()
    headers: Mapping[str, str] = field(default_factory=dict)


def errors_from_marshmallow(messages: Any, prefix: str = "") -> list[dict[str, str]]:
    """marshmallow's nested messages as [{"path": "/a/0/b", "message": "..."}]."""
    found: list[dict[str, str]] = []
    if isinstance(messages, Mapping):
        for key, value in messages.items():
            found.extend(errors_from_marshmallow(value, f"{prefix}/{key}"))
    elif isinstance(messages, list) and all(isinstance(item, str) for item in messages):
        found.extend({"path": prefix or "/", "message": item} for item in messages)
    elif isinstance(messages, list):
        for item in messages:
            found.extend(errors_from_marshmallow(item, prefix))
    else:
        found.append({"path": prefix or "/", "message": str(messages)})
    return found


def _validation_error(exc: ValidationError, where: str) -> ApiError:
    errors = errors_from_marshmallow(exc.messages)
    return ApiError(
        ErrorCode.VALIDATION_FAILED, f"the {where} has {len(errors)} bad field(s)", errors=errors
    )


def require_media_type(*accepted: str) -> None:
    """415 unless the request body is declared as one of `accepted`."""
    if request.mimetype not in accepted:
        raise ApiError(
            ErrorCode.UNSUPPORTED_MEDIA_TYPE, f"send the body as {' or '.join(accepted)}"
        )


def json_body() -> Any:
    """The parsed JSON body, gunzipped when sent so; 415 when it is not JSON, 400 when
    it does not parse, 413 past the request limit once decompressed."""
    require_media_type(JSON)
    limit = current_app.extensions["fieldsync.settings"].max_request_bytes
    return parse_body(body_bytes(limit))


def load_body(schema: type[Schema]) -> Any:
    """The JSON body validated by `schema`."""
    data = json_body()
    if not isinstance(data, dict):
        raise ApiError(ErrorCode.VALIDATION_FAILED, "the body must be a JSON object")
    try:
        return schema(unknown=RAISE).load(data)
    except ValidationError as exc:
        raise _validation_error(exc, "body") from None


def checked_body(message: str) -> Any:
    """The JSON body, checked against the mobile_schema message `message` (a 422
    `schema_violation` naming each failing JSON-pointer path)."""
    data = json_body()
    errors = [error.as_dict() for error in validate(message, data)]
    if errors:
        raise ApiError(
            ErrorCode.SCHEMA_VIOLATION, f"the body does not match {message}.json", errors=errors
        )
    return data


def load_query(schema: type[Schema]) -> Any:
    """The query string validated by `schema` (each parameter given once)."""
    flat = {}
    for key, values in request.args.lists():
        if len(values) != 1:
            raise ApiError(
                ErrorCode.VALIDATION_FAILED,
                f"the parameter {key!r} is given more than once",
                errors=[{"path": f"/{key}", "message": "give this parameter once"}],
            )
        flat[key] = values[0]
    try:
        return schema(unknown=RAISE).load(flat)
    except ValidationError as exc:
        raise _validation_error(exc, "query") from None


def operation(
    summary: str,
    *,
    tags: Iterable[str] = (),
    description: str = "",
    query: type[Schema] | None = None,
    body: type[Schema] | None = None,
    body_json_schema: str | None = None,
    body_type: str | None = None,
    response: type[Schema] | None = None,
    response_type: str = JSON,
    status: int = 200,
    errors: Iterable[ErrorCode] = (),
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Declare, validate and document one endpoint (see the module docstring)."""
    doc = Operation(
        summary=summary,
        tags=tuple(tags),
        description=description,
        query=query,
        body=body,
        body_json_schema=body_json_schema,
        body_type=body_type,
        response=response,
        response_type=response_type,
        status=status,
        errors=tuple(errors),
    )

    def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(view)
        def wrapper(**kwargs: Any) -> Any:
            if query is not None:
                kwargs["query"] = load_query(query)
            if body is not None:
                kwargs["body"] = load_body(body)
            elif body_json_schema is not None:
                kwargs["body"] = checked_body(body_json_schema)
            elif body_type is not None and body_type != "*/*":
                require_media_type(body_type)
            result = view(**kwargs)
            if isinstance(result, Response):
                return result
            if status == 204:
                return Response(status=204)
            payload = response().dump(result) if response is not None else result
            return jsonify(payload), status

        setattr(wrapper, DOC_ATTRIBUTE, doc)
        return wrapper

    return decorate


def documented(view: Callable[..., Any]) -> Operation | None:
    """The declaration kept on a view, if it has one."""
    return getattr(view, DOC_ATTRIBUTE, None)
