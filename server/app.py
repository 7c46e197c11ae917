"""The application factory."""

from __future__ import annotations

import secrets
from pathlib import Path

from flask import Flask, Response

from server import errors, health, logs, metrics
from server.api import CONVERTERS, blueprints
from server.audit.tasks import BEAT_SCHEDULE as AUDIT_SCHEDULE
from server.db import Database
from server.record_flags import BEAT_SCHEDULE as FLAGS_SCHEDULE
from server.request_text import refuse_nul
from server.settings import Settings, from_env
from server.tasks import celery_init_app

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
}


def _secret_key(settings: Settings) -> str:
    """The configured key, or one generated once and kept under var_dir."""
    if settings.secret_key:
        return settings.secret_key
    path = Path(settings.var_dir) / "secret_key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    return path.read_text().strip()


def _security_headers(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def create_app(settings: Settings | None = None, database: Database | None = None) -> Flask:
    """Build the fieldsync app; `database` lets tests share one engine across apps."""
    settings = settings or from_env()
    app = Flask("fieldsync")
    app.config.update(
        SECRET_KEY=_secret_key(settings),
        MAX_CONTENT_LENGTH=settings.max_request_bytes,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.session_cookie_secure,
        JSON_SORT_KEYS=False,
    )
    app.extensions["fieldsync.settings"] = settings

    logs.configure(settings.log_level)
    (database or Database(settings.resolved_database_url)).init_app(app)
    errors.init_app(app)
    logs.init_app(app)
    metrics.init_app(app)
    app.before_request(refuse_nul)
    app.after_request(_security_headers)
    celery_app = celery_init_app(app, settings)
    # Periodic work for `celery -A server.worker beat`.
    celery_app.conf.beat_schedule = {**AUDIT_SCHEDULE, **FLAGS_SCHEDULE}

    app.url_map.converters.update(CONVERTERS)
    app.register_blueprint(health.bp)
    for blueprint in blueprints():
        app.register_blueprint(blueprint)
    return app


def get_settings(app: Flask | None = None) -> Settings:
    """The settings the (current) app was built with."""
    from flask import current_app

    return (app or current_app).extensions["fieldsync.settings"]
