"""HTTP API blueprints, registered by the app factory in this order."""

from __future__ import annotations

from flask import Blueprint
from werkzeug.routing import BaseConverter, IntegerConverter

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
from server.api.schemas import MAX_POSITION, MAX_ROW_ID
from server.web import bp as web_bp


class RowIdConverter(IntegerConverter):
    """`<row_id:name>`: a user id, grid id or form version, 1 to 2^31 - 1. A larger
    number matches no route (404), as it matches no row."""

    def __init__(self, url_map) -> None:
        super().__init__(url_map, min=1, max=MAX_ROW_ID)


class BigIdConverter(IntegerConverter):
    """`<big_id:name>`: a position or a conflict id, 1 to 2^53 - 1."""

    def __init__(self, url_map) -> None:
        super().__init__(url_map, min=1, max=MAX_POSITION)


# Registered on the app's URL map before the blueprints (`server.app.create_app`).
CONVERTERS: dict[str, type[BaseConverter]] = {"row_id": RowIdConverter, "big_id": BigIdConverter}


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
