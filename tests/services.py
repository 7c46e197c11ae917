"""Reaching the real services the suite uses; skip locally, fail under CI=true."""

from __future__ import annotations

import os
import shutil
import socket

import pytest

POSTGRES_URL = os.environ.get(
    "FIELDSYNC_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("FIELDSYNC_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
CHROMIUM = os.environ.get("FIELDSYNC_TEST_CHROMIUM", "/usr/bin/chromium")


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def unavailable(service: str, reason: str) -> None:
    """Skip with the reason, or fail under CI where every service must be there."""
    message = f"{service} unavailable: {reason}"
    if in_ci():
        pytest.fail(f"{message} (CI=true: tests must not skip)")
    pytest.skip(message)


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def require_postgres() -> str:
    from sqlalchemy.engine import make_url

    url = make_url(POSTGRES_URL)
    if not port_open(url.host or "127.0.0.1", url.port or 5432):
        unavailable("PostgreSQL", f"nothing listens on {url.host}:{url.port or 5432}")
    return POSTGRES_URL


def require_redis() -> str:
    from urllib.parse import urlparse

    url = urlparse(REDIS_URL)
    if not port_open(url.hostname or "127.0.0.1", url.port or 6379):
        unavailable("Redis", f"nothing listens on {url.hostname}:{url.port or 6379}")
    return REDIS_URL


def require_chromium() -> str:
    if not shutil.which(CHROMIUM) and not os.path.exists(CHROMIUM):
        unavailable("Chromium", f"{CHROMIUM} is not installed")
    return CHROMIUM
