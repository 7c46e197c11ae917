"""The Flask app: settings, auth, HTTP API, supervisor pages, storage, tasks, audit, CLI."""

from server.app import create_app

__all__ = ["create_app"]
