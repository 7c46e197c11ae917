"""Devices: registration (username and password in, device id and token out), list, revoke."""

from __future__ import annotations

from flask import Blueprint, g, request
from marshmallow import Schema, fields
from sqlalchemy import select

from server.api.access import caller_scope
from server.api.operation import operation
from server.api.schemas import DeviceOut, PageQuery, UserRef, page_of, row_id
from server.db import db_session
from server.devices import devices_query, register_device, revoke_device
from server.errors import ErrorCode
from server.models import Device, Role
from server.scope import scope_grid_ids
from server.signin import authenticate

bp = Blueprint("devices", __name__, url_prefix="/api/v1/devices")
TAGS = ("devices",)


class RegisterOut(Schema):
    device_id = fields.String(required=True)
    token = fields.String(
        required=True, metadata={"description": "Shown once; send as 'Authorization: Bearer'."}
    )
    user = fields.Nested(UserRef, required=True)
    grid_ids = fields.List(
        fields.Integer(),
        allow_none=True,
        required=True,
        metadata={"description": "The grids in the user's scope; null means every grid."},
    )


class DevicesQuery(PageQuery):
    include_revoked = fields.Boolean(load_default=False)
    user_id = row_id()
    after = fields.String(metadata={"description": "The last device id of the previous page."})


@bp.post("/register")
@operation(
    "Sign in on a device: a device id and a bearer token (shown once)",
    tags=TAGS,
    body_json_schema="register_request",
    response=RegisterOut,
    status=201,
    errors=[ErrorCode.INVALID_CREDENTIALS, ErrorCode.TOO_MANY_REQUESTS],
)
def register(body):
    session = db_session()
    user = authenticate(session, body["username"], body["password"], request.remote_addr)
    device, token = register_device(session, user, body.get("device_name", ""))
    grids = scope_grid_ids(session, user)
    session.commit()
    return {"device_id": device.id, "token": token, "user": user, "grid_ids": grids}


@bp.get("")
@operation(
    "Devices: every one (admin), those of users in scope (supervisor), or one's own",
    tags=TAGS,
    query=DevicesQuery,
    response=page_of(DeviceOut, "DevicePage"),
)
def list_devices(query):
    own = g.user.role in (Role.GRID_LEADER, Role.WORKER)
    statement = devices_query(
        caller_scope(),
        owner_id=g.user.id if own else query.get("user_id"),
        include_revoked=query["include_revoked"],
    )
    if "after" in query:
        statement = statement.where(Device.id > query["after"])
    devices = list(db_session().scalars(statement.limit(query["limit"] + 1)))
    more = len(devices) > query["limit"]
    devices = devices[: query["limit"]]
    return {"items": devices, "next": devices[-1].id if more else None}


@bp.get("/<device_id>")
@operation("One device", tags=TAGS, response=DeviceOut)
def get_device(device_id: str):
    return db_session().scalar(select(Device).where(Device.id == device_id))


@bp.post("/<device_id>/revoke", endpoint="revoke_device")
@operation(
    "Revoke a device: its token is refused (401) from the next request on",
    tags=TAGS,
    response=DeviceOut,
)
def revoke_device_view(device_id: str):
    session = db_session()
    device = session.scalar(select(Device).where(Device.id == device_id))
    revoke_device(session, device)
    session.commit()
    return device
