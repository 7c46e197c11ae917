"""Records for supervisors: filtered, sorted, paged lists and one record in full."""

from __future__ import annotations

from flask import Blueprint, Response
from marshmallow import Schema, fields, validate

from forms import from_dict
from server.api.access import caller_scope
from server.api.operation import operation
from server.api.schemas import Time, moment, row_id
from server.audit import Action, record_event
from server.db import database, db_session
from server.errors import ApiError, ErrorCode
from server.export import export_csv
from server.form_store import stored_version
from server.models import ReviewDecision
from server.records import SORTS, list_query, list_records, record_detail

bp = Blueprint("records", __name__, url_prefix="/api/v1/records")
TAGS = ("records",)
REVIEW_STATES = ("pending", *(str(decision) for decision in ReviewDecision))


class RecordFilters(Schema):
    """The filters the records list and the export share."""

    grid = row_id(metadata={"description": "Only records in this grid's subtree."})
    review = fields.String(validate=validate.OneOf(REVIEW_STATES))
    since = moment(metadata={"description": "Changed at or after (RFC 3339)."})
    until = moment(metadata={"description": "Changed before (RFC 3339)."})
    include_deleted = fields.Boolean(load_default=False)


class RecordsQuery(RecordFilters):
    form = fields.String(metadata={"description": "Only records of this form."})
    flagged = fields.Boolean(metadata={"description": "With (true) or without validation flags."})
    has_conflicts = fields.Boolean(metadata={"description": "With (true) or without open ones."})
    author = row_id(metadata={"description": "Records this user's ops touched."})
    q = fields.String(
        validate=validate.Length(1, 200), metadata={"description": "Text in any text field."}
    )
    parent = fields.String(metadata={"description": "Only the child rows of this record."})
    include_children = fields.Boolean(load_default=False)
    sort = fields.String(load_default="-changed", validate=validate.OneOf(list(SORTS)))
    after = fields.String(metadata={"description": "The `next` cursor of the previous page."})
    limit = fields.Integer(load_default=50, validate=validate.Range(1, 500))


EXPORT_CHOICES = ("form", "version", "group")  # what to export; the other keys filter


class ExportQuery(RecordFilters):
    form = fields.String(required=True, metadata={"description": "The form to export."})
    version = row_id(
        metadata={"description": "The version whose fields make the columns (newest published)."}
    )
    group = fields.String(
        metadata={"description": "A repeat: export its rows, with their parent's id."}
    )


class RecordOut(Schema):
    record_id = fields.String(required=True)
    form_id = fields.String(required=True)
    form_version = fields.Integer(required=True)
    grid_id = fields.Integer(required=True)
    parent_id = fields.String(allow_none=True, required=True)
    repeat_group = fields.String(allow_none=True, required=True)
    deleted = fields.Boolean(required=True)
    review_status = fields.String(required=True)
    validation_flags = fields.Raw(allow_none=True, required=True)
    created_at = Time(required=True)
    updated_at = Time(required=True)
    created_position = fields.Integer(required=True)
    changed_position = fields.Integer(required=True)


class RecordPage(Schema):
    items = fields.List(fields.Nested(RecordOut), required=True)
    next = fields.String(allow_none=True, required=True)


class FieldValueOut(Schema):
    value = fields.Raw(allow_none=True, required=True)
    op_position = fields.Integer(required=True)
    user_id = fields.Integer(required=True)
    device_id = fields.String(required=True)
    seq = fields.Integer(required=True)
    device_time = Time(required=True)
    server_time = Time(required=True)
    position = fields.Integer(required=True)


class ConflictValueOut(Schema):
    op_position = fields.Integer(required=True)
    device_id = fields.String(required=True)
    user_id = fields.Integer(required=True)
    seq = fields.Integer(required=True)
    device_time = Time(required=True)
    value = fields.Raw(allow_none=True, required=True)
    winner = fields.Boolean(required=True)


class ConflictOut(Schema):
    conflict_id = fields.Integer(required=True)
    field = fields.String(required=True)
    status = fields.String(required=True)
    values = fields.List(fields.Nested(ConflictValueOut), required=True)
    created_at = Time(required=True)
    resolved_at = Time(allow_none=True, required=True)


class AttachmentRefOut(Schema):
    sha256 = fields.String(required=True)
    size = fields.Integer(required=True)
    content_type = fields.String(required=True)
    stored = fields.Function(lambda a: a.stored_at is not None, required=True)


class ReviewOut(Schema):
    id = fields.Integer(required=True)
    decision = fields.String(required=True)
    comment = fields.String(required=True)
    user_id = fields.Integer(required=True)
    created_at = Time(required=True)


class CommentOut(Schema):
    id = fields.Integer(required=True)
    field = fields.String(allow_none=True, required=True)
    body = fields.String(required=True)
    user_id = fields.Integer(required=True)
    created_at = Time(required=True)


class ChildOut(RecordOut):
    fields_ = fields.Dict(
        keys=fields.String(),
        values=fields.Nested(FieldValueOut),
        data_key="fields",
        attribute="fields",
        required=True,
    )


class RecordDetailOut(RecordOut):
    fields_ = fields.Dict(
        keys=fields.String(),
        values=fields.Nested(FieldValueOut),
        data_key="fields",
        attribute="fields",
        required=True,
    )
    conflicts = fields.List(fields.Nested(ConflictOut), required=True)
    attachments = fields.List(fields.Nested(AttachmentRefOut), required=True)
    children = fields.List(fields.Nested(ChildOut), required=True)
    reviews = fields.List(fields.Nested(ReviewOut), required=True)
    comments = fields.List(fields.Nested(CommentOut), required=True)


@bp.get("", endpoint="list_records")
@operation(
    "Records in the caller's scope, filtered, sorted and paged by cursor",
    tags=TAGS,
    query=RecordsQuery,
    response=RecordPage,
)
def list_records_view(query):
    return list_records(db_session(), caller_scope(), query)


@bp.get("/<record_id>", endpoint="get_record")
@operation(
    "One record: values with provenance, flags, conflicts, attachments, child rows, reviews",
    tags=TAGS,
    response=RecordDetailOut,
)
def get_record(record_id: str):
    return record_detail(db_session(), record_id, caller_scope())


@bp.get("/export", endpoint="export_records")
@operation(
    "The records of one form in the caller's scope as CSV, one column per field",
    tags=TAGS,
    query=ExportQuery,
    response_type="text/csv",
    errors=[ErrorCode.NOT_FOUND],
)
def export_records(query):
    session = db_session()
    scope = caller_scope()
    stored = stored_version(session, query["form"], query.get("version"))
    version = from_dict(stored.definition)
    group = query.get("group")
    if group is not None and group not in version.repeats:
        message = f"{group!r} is not a repeat of {version.form_id} v{version.version}"
        raise ApiError(
            ErrorCode.VALIDATION_FAILED, message, errors=[{"path": "/group", "message": message}]
        )
    filters = {key: value for key, value in query.items() if key not in EXPORT_CHOICES}
    list_query(scope, session, filters)  # a grid outside the scope is refused before any byte
    # The export is on the record before a byte of it leaves.
    grids = [query["grid"]] if "grid" in query else scope.root_ids()
    details = {"format": "csv", "form_version": version.version, "group": group, **filters}
    record_event(session, Action.EXPORT_CREATED, "form", version.form_id, details, grid_ids=grids)
    session.commit()
    name = f"{version.form_id}-v{version.version}{f'-{group}' if group else ''}.csv"
    return Response(
        export_csv(database(), scope, version, filters, group),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
