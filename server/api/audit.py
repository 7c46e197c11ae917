"""The audit trail over HTTP: the event list, a record's history, a record as of a moment.

Staff only. Supervisors see the events of the grids in their scope and the records
located there; admins see everything (the rules are in `access.py`).
"""

from __future__ import annotations

import json

from flask import Blueprint
from marshmallow import Schema, fields, validate
from sqlalchemy import select

from server.api.access import caller_scope
from server.api.operation import operation
from server.api.schemas import PageQuery, moment, page_of, position, row_id
from server.audit.chain import format_time
from server.audit.history import load_ops, record_history, state_at
from server.db import db_session
from server.errors import ApiError, ErrorCode
from server.models import AuditEvent, AuditEventGrid

bp = Blueprint("audit", __name__, url_prefix="/api/v1/audit")
TAGS = ("audit",)


class EventsQuery(PageQuery):
    after = position(metadata={"description": "The last event id seen."})
    action = fields.String(validate=validate.Length(1, 64))
    target_type = fields.String(validate=validate.Length(1, 32))
    target_id = fields.String(validate=validate.Length(1, 100))
    user_id = row_id()
    device_id = fields.String(validate=validate.Length(1, 36))
    grid_id = row_id(metadata={"description": "Only events about this grid."})
    since = moment(metadata={"description": "ISO 8601 with a zone."})
    until = moment(metadata={"description": "ISO 8601 with a zone."})


class EventOut(Schema):
    id = fields.Integer(required=True)
    occurred_at = fields.String(required=True, metadata={"description": "UTC, microseconds."})
    user_id = fields.Integer(allow_none=True, required=True)
    device_id = fields.String(allow_none=True, required=True)
    action = fields.String(required=True)
    target_type = fields.String(required=True)
    target_id = fields.String(allow_none=True, required=True)
    details = fields.Dict(required=True)
    prev_hash = fields.String(required=True)
    hash = fields.String(required=True)


class AsOfQuery(Schema):
    as_of = moment(required=True, metadata={"description": "The moment, ISO 8601 with a zone."})


class RecordStateOut(Schema):
    record_id = fields.String(required=True)
    as_of = fields.String(required=True)
    form_id = fields.String(required=True)
    form_version = fields.Integer(required=True)
    grid_id = fields.Integer(required=True)
    deleted = fields.Boolean(required=True)
    position = fields.Integer(required=True)
    fields_ = fields.Dict(data_key="fields", attribute="fields", required=True)


class HistoryOut(Schema):
    record_id = fields.String(required=True)
    changes = fields.List(fields.Dict(), required=True)
    conflicts = fields.List(fields.Dict(), required=True)
    events = fields.List(fields.Dict(), required=True)
    children = fields.List(fields.String(), required=True)


def _event_out(event: AuditEvent) -> dict:
    return {
        "id": event.id,
        "occurred_at": format_time(event.occurred_at),
        "user_id": event.user_id,
        "device_id": event.device_id,
        "action": event.action,
        "target_type": event.target_type,
        "target_id": event.target_id,
        "details": json.loads(event.details),
        "prev_hash": event.prev_hash,
        "hash": event.hash,
    }


@bp.get("/events")
@operation(
    "Audit events, oldest first, within the caller's grids",
    tags=TAGS,
    query=EventsQuery,
    response=page_of(EventOut, "AuditEventPage"),
    errors=(ErrorCode.VALIDATION_FAILED,),
)
def list_events(query: dict):
    statement = select(AuditEvent).order_by(AuditEvent.id).limit(query["limit"] + 1)
    if "after" in query:
        statement = statement.where(AuditEvent.id > query["after"])
    for name in ("action", "target_type", "target_id", "user_id", "device_id"):
        if name in query:
            statement = statement.where(getattr(AuditEvent, name) == query[name])
    if "since" in query:  # UTC, as stored (`schemas.Moment`)
        statement = statement.where(AuditEvent.occurred_at >= query["since"])
    if "until" in query:
        statement = statement.where(AuditEvent.occurred_at < query["until"])
    scope = caller_scope()
    if "grid_id" in query or not scope.everything:
        grids = select(AuditEventGrid.event_id).where(scope.grid_filter(AuditEventGrid.grid_id))
        if "grid_id" in query:
            grids = grids.where(AuditEventGrid.grid_id == query["grid_id"])
        statement = statement.where(AuditEvent.id.in_(grids))
    events = list(db_session().scalars(statement))
    page = events[: query["limit"]]
    more = len(events) > query["limit"]
    return {"items": [_event_out(e) for e in page], "next": str(page[-1].id) if more else None}


@bp.get("/records/<record_id>/history")
@operation(
    "A record's full history: field changes, conflicts, reviews",
    tags=TAGS,
    response=HistoryOut,
    errors=(ErrorCode.NOT_FOUND,),
)
def get_record_history(record_id: str):
    history = record_history(db_session().connection(), record_id, caller_scope())
    if history is None:
        raise ApiError(ErrorCode.NOT_FOUND, f"no record {record_id}")
    return history


@bp.get("/records/<record_id>")
@operation(
    "A record as it was at a past moment, computed from its ops",
    tags=TAGS,
    query=AsOfQuery,
    response=RecordStateOut,
    errors=(ErrorCode.NOT_FOUND, ErrorCode.VALIDATION_FAILED),
)
def record_as_of(record_id: str, query: dict):
    rows = load_ops(db_session().connection(), record_id)
    state = state_at(rows, record_id, query["as_of"])
    if state is None:
        raise ApiError(ErrorCode.NOT_FOUND, f"record {record_id} did not exist at that moment")
    return state
