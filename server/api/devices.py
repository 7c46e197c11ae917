"""Device registration: username and password in, device id and bearer token out."""

from __future__ import annotations

from flask import Blueprint, jsonify, request
from sqlalchemy import select

from server.db import db_session
from server.devices import register_device
from server.errors import ApiError, ErrorCode
from server.models import User
from server.passwords import verify_password
from server.scope import scope_grid_ids

bp = Blueprint("devices", __name__, url_prefix="/api/v1/devices")


@bp.post("/register")
def register():
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ApiError(ErrorCode.INVALID_JSON, "send a JSON object with username and password")
    username, password = body.get("username"), body.get("password")
    if not isinstance(username, str) or not isinstance(password, str):
        raise ApiError(ErrorCode.VALIDATION_FAILED, "username and password are required")
    session = db_session()
    user = session.scalar(select(User).where(User.username == username))
    if user is None or user.disabled or not verify_password(password, user.password_hash):
        raise ApiError(ErrorCode.INVALID_CREDENTIALS)
    device, token = register_device(session, user, str(body.get("device_name") or ""))
    grids = scope_grid_ids(session, user)
    session.commit()
    response = {
        "device_id": device.id,
        "token": token,
        "user": {"id": user.id, "username": user.username, "role": user.role},
        "grid_ids": grids,
    }
    return jsonify(response), 201
