"""Liveness, readiness and metrics endpoints."""

from __future__ import annotations

from flask import Blueprint, jsonify
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from server import metrics
from server.db import database
from server.migrate import current_revisions, head_revisions

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    """The process is up and answering."""
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz():
    """The database answers and carries the newest migrations."""
    engine = database().engine
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        current = current_revisions(engine)
    except SQLAlchemyError:
        body = {"status": "unavailable", "database": "unreachable", "migrations": "unknown"}
        return jsonify(body), 503
    heads = head_revisions()
    if current != heads:
        body = {
            "status": "unavailable",
            "database": "ok",
            "migrations": "behind",
            "current": sorted(current),
            "expected": sorted(heads),
        }
        return jsonify(body), 503
    return jsonify(status="ok", database="ok", migrations="current", revisions=sorted(heads))


@bp.get("/metrics")
def metrics_view():
    return metrics.exposition()
