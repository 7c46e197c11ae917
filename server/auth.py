"""Who is calling: device bearer tokens for the sync API."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from flask import g, request

from server.db import db_session
from server.devices import device_for_token
from server.errors import ApiError, ErrorCode
from server.models import Device, User


def bearer_token() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def device_required(view: Callable[..., Any]) -> Callable[..., Any]:
    """Let the view run only for a live device token; sets g.device and g.user."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        token = bearer_token()
        if token is None:
            raise ApiError(
                ErrorCode.UNAUTHENTICATED,
                "send the device token as 'Authorization: Bearer <token>'",
                headers={"WWW-Authenticate": "Bearer"},
            )
        device = device_for_token(db_session(), token)
        if device is None:
            raise ApiError(
                ErrorCode.TOKEN_REVOKED,
                "this token is unknown or revoked; register the device again",
                headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )
        g.device, g.user = device, device.user
        g.device_id, g.user_id = device.id, device.user.id
        return view(*args, **kwargs)

    return wrapper


def current_device() -> Device:
    return g.device


def current_user() -> User:
    return g.user
