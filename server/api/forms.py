"""Forms over HTTP: list, read, export, import, publish, retire, and the device bundle."""

from __future__ import annotations

import tempfile
from pathlib import Path

from flask import Blueprint, Response, g, jsonify, request
from marshmallow import Schema, fields, validate

from forms.io import FORMATS, SUFFIXES
from server import form_store
from server.api.operation import operation
from server.api.schemas import row_id
from server.db import database, db_session
from server.errors import ApiError, ErrorCode
from server.models import Role, VersionStatus

bp = Blueprint("forms", __name__, url_prefix="/api/v1/forms")
TAGS = ("forms",)
MAX_FORM_BYTES = 20 * 1024 * 1024
MEDIA_TYPES = {
    "xlsform": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "xform": "application/xml",
    "json": "application/json",
}


class ImportQuery(Schema):
    name = fields.String(
        required=True,
        validate=validate.Regexp(r".+\.(xlsx|xls|xml|json)\Z"),
        metadata={"description": "The file's name; its suffix says its format."},
    )
    publish = fields.Boolean(load_default=False)
    form_id = fields.String(validate=validate.Length(1, 100))


class ExportQuery(Schema):
    format = fields.String(load_default="json", validate=validate.OneOf(FORMATS))


class DiffQuery(Schema):
    old = row_id(
        required=True, data_key="from", metadata={"description": "The version to compare from."}
    )
    new = row_id(
        required=True, data_key="to", metadata={"description": "The version to compare to."}
    )


def _summary(row) -> dict:
    return form_store.version_summary(row)


@bp.get("", endpoint="list_forms")
@operation("Every stored form version, without definitions", tags=TAGS)
def list_forms():
    rows = form_store.list_versions(db_session())
    if g.user.role != Role.ADMIN:
        rows = [row for row in rows if row.status != VersionStatus.DRAFT]
    return {"items": [_summary(row) for row in rows]}


@bp.get("/bundle", endpoint="bundle")
@operation(
    "The published form versions a device needs; If-None-Match answers 304",
    tags=TAGS,
    description="The ETag names exactly the set of published versions and their contents.",
)
def bundle():
    session = db_session()
    etag = form_store.bundle_etag(session).etag
    if etag in [tag.strip() for tag in request.headers.get("If-None-Match", "").split(",")]:
        return Response(status=304, headers={"ETag": etag})
    response = jsonify(form_store.bundle_body(session))
    response.headers["ETag"] = etag
    response.headers["Cache-Control"] = "private, no-cache"
    return response


def _readable(form_id: str, version: int):
    row = form_store.stored_version(db_session(), form_id, version)
    if row.status == VersionStatus.DRAFT and g.user.role != Role.ADMIN:
        raise ApiError(ErrorCode.NOT_FOUND, f"form {form_id!r} has no version {version}")
    return row


@bp.get("/<form_id>/versions/<row_id:version>", endpoint="get_version")
@operation("One version with its definition", tags=TAGS)
def get_version(form_id: str, version: int):
    row = _readable(form_id, version)
    return {**_summary(row), "definition": form_store.sendable_definition(row)}


@bp.get("/<form_id>/diff", endpoint="diff_versions")
@operation(
    "What changed between two versions: fields added, removed, retyped; choices",
    tags=TAGS,
    query=DiffQuery,
    description="Drafts can be compared by admins only (to see what publishing would change).",
)
def diff_versions(form_id: str, query):
    changes = form_store.diff_stored(
        db_session(), form_id, query["old"], query["new"], g.user.role == Role.ADMIN
    )
    return changes.as_dict()


@bp.get("/<form_id>/versions/<row_id:version>/export", endpoint="export_version")
@operation("One version as an XLSForm, XForm or JSON file", tags=TAGS, query=ExportQuery)
def export_version(form_id: str, version: int, query):
    row = _readable(form_id, version)
    fmt = query["format"]
    data = form_store.export_file(row, fmt)
    name = f"{row.form_id}-v{row.version}{SUFFIXES[fmt]}"
    return Response(
        data,
        mimetype=MEDIA_TYPES[fmt],
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@bp.post("/import", endpoint="import_form")
@operation(
    "Import an XLSForm, XForm or JSON definition (the request body) as a draft",
    tags=TAGS,
    query=ImportQuery,
    body_type="*/*",
    status=201,
    errors=[ErrorCode.INVALID_FORM, ErrorCode.PAYLOAD_TOO_LARGE],
)
def import_form(query):
    if (request.content_length or 0) > MAX_FORM_BYTES:
        raise ApiError(ErrorCode.PAYLOAD_TOO_LARGE, "a form file may hold at most 20 MiB")
    data = request.get_data(cache=False)
    session = db_session()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / Path(query["name"]).name
        path.write_bytes(data)
        row = form_store.import_file(
            session, path, query.get("form_id"), query["publish"], g.user.id
        )
    session.commit()
    form_store.catalog_for(database()).forget_missing()
    return _summary(row)


@bp.post("/<form_id>/versions/<row_id:version>/publish", endpoint="publish")
@operation("Publish a draft: it becomes immutable and devices receive it", tags=TAGS)
def publish(form_id: str, version: int):
    session = db_session()
    row = form_store.publish_version(session, form_id, version, g.user.id)
    session.commit()
    form_store.catalog_for(database()).forget_missing()
    return _summary(row)


@bp.post("/<form_id>/versions/<row_id:version>/retire", endpoint="retire")
@operation("Retire a published version: devices stop receiving it", tags=TAGS)
def retire(form_id: str, version: int):
    session = db_session()
    row = form_store.retire_version(session, form_id, version, g.user.id)
    session.commit()
    return _summary(row)
