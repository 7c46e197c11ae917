"""Attachments: announce a blob, upload it (S3 presigned PUT or through the server), fetch it."""

from __future__ import annotations

from flask import Blueprint, current_app, g, redirect, request, send_file, url_for
from marshmallow import Schema, fields

from server.api.operation import operation
from server.api.schemas import Time
from server.attachments import (
    announce,
    check_uploaded,
    find_stored,
    keep,
    receive,
    stored_key,
    too_large,
)
from server.blobs import blob_store
from server.db import db_session
from server.errors import ErrorCode
from server.models import Attachment

bp = Blueprint("attachments", __name__, url_prefix="/api/v1/attachments")
TAGS = ("attachments",)
SHA = "<string(length=64):sha256>"


class TargetOut(Schema):
    sha256 = fields.String(required=True)
    exists = fields.Boolean(
        required=True, metadata={"description": "True: the blob is stored; nothing to upload."}
    )
    method = fields.String(metadata={"description": "Upload with this HTTP method."})
    url = fields.String(metadata={"description": "An absolute presigned URL, or a server path."})
    headers = fields.Dict(
        keys=fields.String(), values=fields.String(), metadata={"description": "Send exactly."}
    )
    expires_at = Time()


class AttachmentOut(Schema):
    sha256 = fields.String(required=True)
    size = fields.Integer(required=True)
    content_type = fields.String(required=True)
    created_at = Time(required=True)
    stored = fields.Function(lambda a: a.stored_at is not None, required=True)
    stored_at = Time(allow_none=True, required=True)


def _settings():
    return current_app.extensions["fieldsync.settings"]


def _end_transaction(session, sha256: str) -> Attachment:
    """The attachment, read in the transaction of the access check, which then ends.

    Reading or checking the bytes may take minutes; on SQLite an open transaction
    would hold the database's write lock all that time.
    """
    attachment = session.get(Attachment, sha256)
    session.commit()
    return attachment


@operation(
    "Announce a blob: where to upload it, or that it is stored already",
    tags=TAGS,
    description="With S3 storage the target is a presigned PUT to the bucket, followed by "
    "POST .../complete; with local storage it is this server's PUT .../content. An upload "
    "counts only after its size, sniffed type and SHA-256 are checked.",
    body_json_schema="attachment_request",
    response=TargetOut,
    status=201,
    errors=[ErrorCode.ATTACHMENT_TOO_LARGE, ErrorCode.CONTENT_TYPE_NOT_ALLOWED],
)
def announce_view(body):
    session = db_session()
    result = announce(
        session,
        blob_store(),
        g.user,
        body["sha256"],
        body["size"],
        body["content_type"],
        _settings().max_attachment_bytes,
        url_for("attachments.upload_content", sha256=body["sha256"]),
    )
    session.commit()
    reply = {"sha256": result.attachment.sha256, "exists": result.target is None}
    if result.target is not None:
        reply.update(
            method=result.target.method,
            url=result.target.url,
            headers=result.target.headers,
            expires_at=result.expires_at,
        )
    return reply


bp.add_url_rule("", endpoint="announce", view_func=announce_view, methods=["POST"])


@bp.put(f"/{SHA}/content", endpoint="upload_content")
@operation(
    "Upload a blob's bytes through the server (local storage)",
    tags=TAGS,
    body_type="*/*",
    response=AttachmentOut,
    errors=[
        ErrorCode.ATTACHMENT_TOO_LARGE,
        ErrorCode.CONTENT_TYPE_NOT_ALLOWED,
        ErrorCode.HASH_MISMATCH,
    ],
)
def upload_content(sha256: str):
    session = db_session()
    limit = _settings().max_attachment_bytes
    if (request.content_length or 0) > limit:
        raise too_large(limit)
    # Beyond this Werkzeug stops reading, also for a body without Content-Length.
    request.max_content_length = limit + 1
    attachment = _end_transaction(session, sha256)
    checked = receive(blob_store(), attachment, g.user, request.stream, limit)
    attachment = keep(session, blob_store(), sha256, checked, g.user)
    session.commit()
    return attachment


@bp.post(f"/{SHA}/complete", endpoint="complete_upload")
@operation(
    "Check a blob uploaded to its presigned URL; it counts from now on",
    tags=TAGS,
    response=AttachmentOut,
    errors=[
        ErrorCode.UPLOAD_INCOMPLETE,
        ErrorCode.ATTACHMENT_TOO_LARGE,
        ErrorCode.CONTENT_TYPE_NOT_ALLOWED,
        ErrorCode.HASH_MISMATCH,
    ],
)
def complete_upload(sha256: str):
    session = db_session()
    attachment = _end_transaction(session, sha256)
    checked = check_uploaded(blob_store(), attachment, g.user, _settings().max_attachment_bytes)
    attachment = keep(session, blob_store(), sha256, checked, g.user)
    session.commit()
    return attachment


@bp.get(f"/{SHA}", endpoint="get_attachment")
@operation("One attachment's metadata", tags=TAGS, response=AttachmentOut)
def get_attachment(sha256: str):
    return db_session().get(Attachment, sha256)


@bp.get(f"/{SHA}/content", endpoint="download")
@operation(
    "Download a blob: a redirect to a presigned GET (S3) or the bytes themselves",
    tags=TAGS,
    response_type="application/octet-stream",
    errors=[ErrorCode.UPLOAD_INCOMPLETE],
)
def download(sha256: str):
    attachment = find_stored(db_session(), sha256)
    store = blob_store()
    url = store.download_url(
        stored_key(sha256), filename=sha256, content_type=attachment.content_type
    )
    if url is not None:
        return redirect(url, code=302)
    response = send_file(
        store.open(stored_key(sha256)),
        mimetype=attachment.content_type,
        etag=sha256,
        max_age=86400,
        conditional=True,
        download_name=sha256,
        as_attachment=not attachment.content_type.startswith("image/"),
    )
    response.headers["Cache-Control"] = "private, max-age=86400, immutable"
    return response
