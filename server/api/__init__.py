"""HTTP API blueprints, registered by the app factory in this order."""

from __future__ import annotations

from flask import Blueprint

from server.api import devices


def blueprints() -> list[Blueprint]:
    """Every API blueprint; add a module's `bp` here to serve it."""
    return [devices.bp]
