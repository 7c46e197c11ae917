"""Who is calling: device bearer tokens, or a web session cookie with a CSRF token.

A web session holds the user id and a fingerprint of the password hash, so a
password reset ends every session signed in with the old password. Requests that
change state under a session must carry the session's CSRF token (form field
`csrf_token` or header `X-CSRF-Token`); bearer-token requests need none, since a
browser never adds that header on its own.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets
from collections.abc import Callable
from typing import Any

from flask import g, request, session

from server.db import db_session
from server.devices import device_for_token, is_live
from server.errors import ApiError, ErrorCode
from server.models import Device, User, utcnow

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
_SESSION_USER = "user_id"
_SESSION_FINGERPRINT = "pw"
_SESSION_CSRF = "csrf"
LAST_SEEN_EVERY_SECONDS = 60


def bearer_token() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def _unauthenticated(detail: str) -> ApiError:
    return ApiError(ErrorCode.UNAUTHENTICATED, detail, headers={"WWW-Authenticate": "Bearer"})


def _invalid_token(code: ErrorCode, detail: str) -> ApiError:
    return ApiError(code, detail, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})


def _fingerprint(user: User) -> str:
    return hashlib.sha256(user.password_hash.encode()).hexdigest()[:16]


def authenticate_device() -> Device:
    """The live device whose bearer token came with the request; 401 otherwise."""
    if getattr(g, "device", None) is not None:
        return g.device
    token = bearer_token()
    if token is None:
        raise _unauthenticated("send the device token as 'Authorization: Bearer <token>'")
    device = device_for_token(db_session(), token)
    if device is None:
        # Told apart from a revoked device so that a device whose registration the
        # server lost (restored from an older backup) knows to send all its ops again.
        # Only a holder of a token ever issued learns more than "unknown".
        raise _invalid_token(
            ErrorCode.DEVICE_UNKNOWN,
            "no device holds this token (the server may have been restored from a backup);"
            " register the device again",
        )
    if not is_live(device):
        raise _invalid_token(
            ErrorCode.TOKEN_REVOKED,
            "this device was revoked or its user disabled; register the device again",
        )
    _touch(device)
    g.device, g.user = device, device.user
    g.device_id, g.user_id = device.id, device.user.id
    return device


def _touch(device: Device) -> None:
    # Write last_seen at most once a minute per device, not on every request.
    now = utcnow()
    seen = device.last_seen_at
    if seen is not None and seen.tzinfo is None:
        seen = seen.replace(tzinfo=now.tzinfo)
    if seen is None or (now - seen).total_seconds() >= LAST_SEEN_EVERY_SECONDS:
        device.last_seen_at = now
        db_session().commit()


def session_user() -> User | None:
    """The enabled user of the web session, if its password has not changed since."""
    user_id = session.get(_SESSION_USER)
    if user_id is None:
        return None
    user = db_session().get(User, user_id)
    if user is None or user.disabled or session.get(_SESSION_FINGERPRINT) != _fingerprint(user):
        session.clear()
        return None
    return user


def authenticate_user() -> User:
    """The caller: a device token's user, or the web session's user (CSRF checked)."""
    if getattr(g, "user", None) is not None:
        return g.user
    if bearer_token() is not None:
        return authenticate_device().user
    user = session_user()
    if user is None:
        raise _unauthenticated("sign in, or send a device token as a bearer token")
    if request.method not in SAFE_METHODS:
        check_csrf(request.headers.get(CSRF_HEADER) or request.form.get(CSRF_FIELD))
    g.user, g.user_id, g.device, g.device_id = user, user.id, None, None
    return user


def start_session(user: User) -> None:
    """Sign the user in on this browser, with a fresh session and CSRF token."""
    session.clear()
    session[_SESSION_USER] = user.id
    session[_SESSION_FINGERPRINT] = _fingerprint(user)
    session[_SESSION_CSRF] = secrets.token_urlsafe(32)
    session.permanent = False


def end_session() -> None:
    session.clear()


def csrf_token() -> str:
    """This session's CSRF token, made on first use."""
    token = session.get(_SESSION_CSRF)
    if token is None:
        token = session[_SESSION_CSRF] = secrets.token_urlsafe(32)
    return token


def check_csrf(sent: str | None) -> None:
    """403 unless `sent` is this session's CSRF token."""
    expected = session.get(_SESSION_CSRF)
    if not expected or not sent or not hmac.compare_digest(expected, sent):
        raise ApiError(ErrorCode.CSRF_FAILED)


def device_required(view: Callable[..., Any]) -> Callable[..., Any]:
    """Let the view run only for a live device token; sets g.device and g.user."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        authenticate_device()
        return view(*args, **kwargs)

    return wrapper
