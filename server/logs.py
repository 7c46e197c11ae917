"""Structured logging: one JSON object per line, one line per request."""

from __future__ import annotations

import json
import logging
import sys
import time

from flask import Flask, Response, g, request

REDACTED_KEYS = ("password", "token", "secret", "authorization", "cookie")


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON line, with the `fields` it was given."""

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        line.update(redact(getattr(record, "fields", {})))
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def redact(fields: dict) -> dict:
    """Drop the values of keys that could carry a password or token."""
    return {
        key: ("[redacted]" if any(word in key.lower() for word in REDACTED_KEYS) else value)
        for key, value in fields.items()
    }


def configure(level: str) -> None:
    """Send fieldsync's logs to stderr as JSON lines."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger("fieldsync")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False


request_log = logging.getLogger("fieldsync.request")


def _start_timer() -> None:
    g.request_started = time.perf_counter()


def _log_request(response: Response) -> Response:
    started = g.get("request_started")
    duration_ms = round((time.perf_counter() - started) * 1000, 2) if started else None
    fields = {
        "method": request.method,
        # The path only: query strings may carry cursors or other data not meant for logs.
        "path": request.path,
        "status": response.status_code,
        "duration_ms": duration_ms,
    }
    if g.get("user_id") is not None:
        fields["user"] = g.user_id
    if g.get("device_id") is not None:
        fields["device"] = g.device_id
    request_log.info("request", extra={"fields": fields})
    return response


def init_app(app: Flask) -> None:
    app.before_request(_start_timer)
    app.after_request(_log_request)
