"""HTTP API blueprints, registered by the app factory in this order."""

from __future__ import annotations

from flask import Blueprint

from server.api import (
    access,
    attachments,
    audit,
    devices,
    forms,
    grids,
    openapi,
    records,
    review,
    sync,
    users,
)
from server.web import bp as web_bp


def blueprints() -> list[Blueprint]:
    """Every API blueprint; add a module's `bp` here to serve it."""
    return [
        access.bp,
        users.bp,
        devices.bp,
        grids.bp,
        attachments.bp,
        records.bp,
        review.bp,
        forms.bp,
        audit.bp,
        openapi.bp,
        sync.bp,
        web_bp,
    ]
