"""Review actions on records (approve, needs revision, reject), comments, and quarantine."""

from __future__ import annotations

from flask import Blueprint, current_app, g
from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from server.api.access import caller_scope
from server.api.operation import operation
from server.api.records import CommentOut, ReviewOut
from server.api.schemas import Time, position, row_id
from server.db import database, db_session
from server.errors import ErrorCode
from server.models import ReviewDecision
from server.quarantine import list_quarantined, quarantined_op
from server.review import add_comment, decide, edit_record, record_form, release_op, resolve
from sync.reasons import Reason
from sync.wire_check import FIELD

bp = Blueprint("review", __name__, url_prefix="/api/v1")
TAGS = ("review",)


class ReviewIn(Schema):
    decision = fields.String(
        required=True, validate=validate.OneOf([str(d) for d in ReviewDecision])
    )
    comment = fields.String(
        load_default="",
        validate=validate.Length(max=4000),
        metadata={"description": "Required for needs_revision; it reaches the device's inbox."},
    )


class CommentIn(Schema):
    body = fields.String(required=True, validate=validate.Length(1, 4000))
    field = fields.String(allow_none=True, load_default=None, validate=validate.Length(1, 128))


class EditIn(Schema):
    field = fields.String(
        required=True,
        validate=validate.Regexp(
            FIELD.pattern + r"\Z",
            error="a field name: a letter or '_', then letters, digits, _-. (and / in a path)",
        ),
    )
    kind = fields.String(load_default="set", validate=validate.OneOf(["set", "add", "remove"]))
    value = fields.Raw(required=True, allow_none=True)


class EditsIn(Schema):
    edits = fields.List(fields.Nested(EditIn), required=True, validate=validate.Length(1, 200))


class ResolveIn(Schema):
    keep = position(metadata={"description": "The op position of the value to keep."})
    value = fields.Raw(allow_none=True, metadata={"description": "A new value instead."})

    @validates_schema
    def one_of_keep_or_value(self, data, **_kwargs):
        if ("keep" in data) == ("value" in data):
            raise ValidationError("give either keep or value", "_schema")


class PushOut(Schema):
    acked_seq = fields.Integer(required=True)
    applied = fields.Integer(required=True)
    duplicate = fields.Integer(required=True)
    quarantined = fields.List(fields.Dict(), required=True)
    conflicts = fields.List(fields.Dict(), required=True)
    server_hlc = fields.String(required=True)


def _rules(form_key: tuple[str, int]):
    """The store's rules for one form version, read before the write transaction starts."""
    from server.sync_service import rules_for, warm

    session = db_session()
    # SQLite has one writer: end this request's reads before the catalog reads on its own.
    session.commit()
    known = warm(database(), {form_key})
    return rules_for(session, current_app.extensions["fieldsync.settings"], known)


class QuarantineQuery(Schema):
    reason = fields.String(validate=validate.OneOf([str(reason) for reason in Reason]))
    device_id = fields.String()
    user_id = row_id()
    record_id = fields.String()
    form_id = fields.String()
    after = position(metadata={"description": "The last position of the previous page."})
    limit = fields.Integer(load_default=100, validate=validate.Range(1, 500))


class QuarantinedOut(Schema):
    position = fields.Integer(required=True)
    device_id = fields.String(required=True)
    seq = fields.Integer(required=True)
    user_id = fields.Integer(required=True)
    record_id = fields.String(required=True)
    form_id = fields.String(required=True)
    form_version = fields.Integer(required=True)
    grid_id = fields.Integer(required=True)
    field = fields.String(required=True)
    kind = fields.String(required=True)
    value = fields.Raw(allow_none=True, required=True)
    device_time = Time(required=True)
    base = fields.Integer(required=True)
    reason = fields.String(required=True)
    detail = fields.String(allow_none=True, required=True)
    received_at = Time(required=True)


class QuarantinedOne(QuarantinedOut):
    released = fields.Boolean(required=True)


class QuarantinePage(Schema):
    items = fields.List(fields.Nested(QuarantinedOut), required=True)
    next = fields.String(allow_none=True, required=True)


class ReleaseOut(Schema):
    released = fields.Integer(required=True)
    conflicts = fields.List(fields.Dict(), required=True)


@bp.post("/records/<record_id>/review", endpoint="review_record")
@operation(
    "Decide on a record: approved, needs_revision (with a comment) or rejected",
    tags=TAGS,
    description="The decision becomes the record's review status and reaches the inboxes "
    "of the users whose devices edited the record.",
    body=ReviewIn,
    response=ReviewOut,
    status=201,
)
def review_record(record_id: str, body):
    session = db_session()
    review = decide(session, record_id, g.user, body["decision"], body["comment"])
    session.commit()
    return review


@bp.post("/records/<record_id>/comments", endpoint="comment_record")
@operation(
    "Comment on a record or one of its fields; it reaches the authors' inboxes",
    tags=TAGS,
    body=CommentIn,
    response=CommentOut,
    status=201,
)
def comment_record(record_id: str, body):
    session = db_session()
    comment = add_comment(session, record_id, g.user, body["body"], body["field"])
    session.commit()
    return comment


@bp.post("/records/<record_id>/edits", endpoint="edit_record")
@operation(
    "Edit a record's fields on behalf of the caller; the edits sync to devices like any op",
    tags=TAGS,
    description="The edits are ops of the caller's server-side device, checked like any push: "
    "an edit that does not fit the form is quarantined and reported.",
    body=EditsIn,
    response=PushOut,
)
def edit_record_view(record_id: str, body):
    session = db_session()
    rules = _rules(record_form(session, record_id=record_id))
    reply = edit_record(session, g.user, record_id, body["edits"], rules)
    session.commit()
    return reply


@bp.post("/conflicts/<big_id:conflict_id>/resolve", endpoint="resolve_conflict")
@operation(
    "Resolve a conflict: keep one side's value or enter a new one (an ordinary later edit)",
    tags=TAGS,
    body=ResolveIn,
    response=PushOut,
    errors=[ErrorCode.CONFLICT],
)
def resolve_conflict_view(conflict_id: int, body):
    session = db_session()
    rules = _rules(record_form(session, conflict_id=conflict_id))
    reply = resolve(session, g.user, conflict_id, body, rules)
    session.commit()
    return reply


@bp.get("/quarantine", endpoint="list_quarantine")
@operation(
    "Quarantined ops not yet released, in the caller's scope, oldest first",
    tags=TAGS,
    query=QuarantineQuery,
    response=QuarantinePage,
)
def list_quarantine(query):
    return list_quarantined(db_session(), caller_scope(), query)


@bp.get("/quarantine/<big_id:position>", endpoint="get_quarantined")
@operation("One quarantined op", tags=TAGS, response=QuarantinedOne)
def get_quarantined(position: int):
    return quarantined_op(db_session(), position)


@bp.post("/quarantine/<big_id:position>/release", endpoint="release_quarantined")
@operation(
    "Release a quarantined op: the state becomes as if it had applied from the start",
    tags=TAGS,
    response=ReleaseOut,
    errors=[ErrorCode.CONFLICT],
)
def release_quarantined(position: int):
    session = db_session()
    result = release_op(session, position, g.user)
    session.commit()
    return result
