"""Attachments: content-addressed by SHA-256, announced, uploaded, then checked.

An attachment counts only once its bytes are checked: size within the limit, SHA-256
equal to the announced hash, type sniffed from the bytes and allowed. Bytes with the
hash are the attachment, so its size and type are then taken from them, whatever was
announced (by anyone: a claim never makes another uploader's bytes fail). Uploads
land under an `incoming/` key first and move to `attachments/<sha256>` only when they
pass, so a bad upload can never replace good bytes.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets
from dataclasses import dataclass
from typing import BinaryIO

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from server.audit.events import Action, record_event
from server.blobs import BlobChanged, BlobNotFound, BlobStore, UploadTarget
from server.errors import ApiError, ErrorCode
from server.models import Attachment, AttachmentReference, AttachmentUploader, User, utcnow
from server.sniff import SNIFF_BYTES, sniff

ALLOWED_TYPES = frozenset(
    {"image/jpeg", "image/png", "image/webp", "image/heic", "image/gif", "application/pdf"}
)
UPLOAD_EXPIRES_SECONDS = 900
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_CHUNK = 1024 * 1024


def stored_key(sha256: str) -> str:
    """Where the checked bytes live."""
    return f"attachments/{sha256[:2]}/{sha256}"


def incoming_key(sha256: str, user_id: int) -> str:
    """Where one uploader's unchecked bytes land by presigned PUT; per user."""
    return f"incoming/{sha256}/{user_id}"


def upload_key(sha256: str, user_id: int) -> str:
    """Where one upload through the server lands: a key of its own, so that two
    uploads of the same bytes (a device's retry) never share, or move, one file."""
    return f"{incoming_key(sha256, user_id)}.{secrets.token_hex(8)}"


@dataclass(frozen=True)
class Announced:
    attachment: Attachment
    target: UploadTarget | None  # None: the blob is stored already
    expires_at: dt.datetime | None


def _insert(session: Session, model):
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    return dialect.insert(model)


def too_large(limit: int) -> ApiError:
    return ApiError(ErrorCode.ATTACHMENT_TOO_LARGE, f"attachments may hold at most {limit} bytes")


def check_claim(sha256: str, size: int, content_type: str, max_bytes: int) -> None:
    """Refuse a claim that can never pass: bad hash, too large, a type not accepted."""
    if not _SHA256.match(sha256):
        message = "sha256 must be 64 lowercase hex digits"
        raise ApiError(
            ErrorCode.VALIDATION_FAILED, message, errors=[{"path": "/sha256", "message": message}]
        )
    if size > max_bytes:
        raise too_large(max_bytes)
    if content_type not in ALLOWED_TYPES:
        raise ApiError(
            ErrorCode.CONTENT_TYPE_NOT_ALLOWED,
            f"accepted types: {', '.join(sorted(ALLOWED_TYPES))}",
        )


def announce(
    session: Session,
    store: BlobStore,
    user: User,
    sha256: str,
    size: int,
    content_type: str,
    max_bytes: int,
    local_upload_url: str,
) -> Announced:
    """Record that `user` wants to attach this blob, and say where to upload it."""
    check_claim(sha256, size, content_type, max_bytes)
    session.execute(
        _insert(session, Attachment)
        .values(
            sha256=sha256,
            size=size,
            content_type=content_type,
            created_by=user.id,
            created_at=utcnow(),
        )
        .on_conflict_do_nothing(index_elements=["sha256"])
    )
    session.execute(
        _insert(session, AttachmentUploader)
        .values(sha256=sha256, user_id=user.id)
        .on_conflict_do_nothing(index_elements=["sha256", "user_id"])
    )
    attachment = session.get(Attachment, sha256, populate_existing=True)
    if attachment.stored_at is not None:
        return Announced(attachment, None, None)
    expires_at = utcnow() + dt.timedelta(seconds=UPLOAD_EXPIRES_SECONDS)
    target = store.upload_target(
        incoming_key(sha256, user.id), content_type, UPLOAD_EXPIRES_SECONDS
    ) or UploadTarget("PUT", local_upload_url, {"Content-Type": content_type})
    session.flush()
    return Announced(attachment, target, expires_at)


@dataclass(frozen=True)
class Checked:
    """Uploaded bytes that passed the checks, still under their incoming key."""

    key: str
    size: int
    content_type: str  # sniffed from the bytes
    etag: str | None = None  # the version that was read, where the store keeps versions


class _CheckingReader:
    """A stream wrapper that hashes, counts and keeps the head of what passes through."""

    def __init__(self, stream: BinaryIO, limit: int) -> None:
        self.stream, self.limit = stream, limit
        self.digest, self.size, self.head = hashlib.sha256(), 0, b""

    def read(self, amount: int = -1) -> bytes:
        chunk = self.stream.read(_CHUNK if amount is None or amount < 0 else amount)
        self.size += len(chunk)
        if self.size > self.limit:
            raise too_large(self.limit)
        self.digest.update(chunk)
        if len(self.head) < SNIFF_BYTES:
            self.head += chunk[: SNIFF_BYTES - len(self.head)]
        return chunk


def _verdict(sha256: str, reader: _CheckingReader) -> ApiError | None:
    if reader.digest.hexdigest() != sha256:
        return ApiError(
            ErrorCode.HASH_MISMATCH,
            f"received {reader.size} bytes whose SHA-256 is not the announced one",
        )
    sniffed = sniff(reader.head)
    if sniffed not in ALLOWED_TYPES:
        return ApiError(
            ErrorCode.CONTENT_TYPE_NOT_ALLOWED,
            f"the bytes are {sniffed or 'of an unknown type'}; "
            f"accepted types: {', '.join(sorted(ALLOWED_TYPES))}",
        )
    return None


def receive(
    store: BlobStore, attachment: Attachment, user: User, stream: BinaryIO, max_bytes: int
) -> Checked | None:
    """Take uploaded bytes from `stream` through the server and check them.

    The checked bytes, or None when the blob is stored already. No database work:
    the caller ends its transaction first, so that a slow client holds no lock (on
    SQLite, a transaction holds the write lock).
    """
    if attachment.stored_at is not None:
        return None
    key = upload_key(attachment.sha256, user.id)
    reader = _CheckingReader(stream, max_bytes)
    try:
        store.put(key, reader, attachment.content_type)
    except ApiError:
        store.delete(key)
        raise
    return _judge(store, key, attachment.sha256, reader)


def check_uploaded(
    store: BlobStore, attachment: Attachment, user: User, max_bytes: int
) -> Checked | None:
    """Check bytes the user uploaded straight to the store (presigned PUT).

    The checked bytes, or None when the blob is stored already; like `receive`, no
    database work. The presigned PUT stays valid, so the key may be written again
    while it is checked: the version read is the one later moved, or nothing is.
    """
    if attachment.stored_at is not None:
        return None
    key = incoming_key(attachment.sha256, user.id)
    info = store.stat(key)
    if info is None:
        raise ApiError(ErrorCode.UPLOAD_INCOMPLETE, "nothing was uploaded to the target yet")
    if info.size > max_bytes:
        store.delete(key)
        raise too_large(max_bytes)
    try:
        reader = _CheckingReader(store.open(key, if_match=info.etag), max_bytes)
    except BlobChanged:
        raise _changed() from None
    try:
        while reader.read(_CHUNK):
            pass
    finally:
        reader.stream.close()
    return _judge(store, key, attachment.sha256, reader, info.etag)


def _judge(
    store: BlobStore, key: str, sha256: str, reader: _CheckingReader, etag: str | None = None
) -> Checked:
    """The bytes read, once checked; a failed upload is deleted and its failure raised."""
    failure = _verdict(sha256, reader)
    if failure is not None:
        store.delete(key)
        raise failure
    return Checked(key, reader.size, sniff(reader.head), etag)


def keep(
    session: Session, store: BlobStore, sha256: str, checked: Checked | None, user: User
) -> Attachment:
    """Store checked bytes under their hash and mark the attachment stored, unless it is."""
    attachment = session.get(Attachment, sha256, populate_existing=True)
    if checked is None:
        return attachment
    if attachment.stored_at is not None:
        store.delete(checked.key)  # another upload of the same bytes got there first
        return attachment
    try:
        store.move(checked.key, stored_key(sha256), if_match=checked.etag)
    except BlobNotFound:
        raise ApiError(ErrorCode.UPLOAD_INCOMPLETE, "the upload vanished; send it again") from None
    except BlobChanged:
        raise _changed() from None
    attachment.size, attachment.content_type = checked.size, checked.content_type
    attachment.stored_at = utcnow()
    session.flush()
    details = {"size": attachment.size, "content_type": attachment.content_type}
    record_event(
        session,
        Action.ATTACHMENT_UPLOADED,
        "attachment",
        sha256,
        details,
        grid_ids=[grid.id for grid in user.grids],
    )
    return attachment


def _changed() -> ApiError:
    return ApiError(
        ErrorCode.UPLOAD_INCOMPLETE, "the upload changed while it was checked; complete it again"
    )


def attachment_grid_ids(session: Session, sha256: str) -> set[int]:
    """Grids of the records whose ops named this attachment (`AttachmentReference`)."""
    from sync.store import tables as t

    query = (
        select(t.records.c.grid_id)
        .distinct()
        .join(AttachmentReference, AttachmentReference.record_id == t.records.c.record_id)
        .where(AttachmentReference.sha256 == sha256)
    )
    return set(session.scalars(query))


def find_stored(session: Session, sha256: str) -> Attachment:
    """The checked attachment; 409 while its bytes are not in yet."""
    attachment = session.get(Attachment, sha256)
    if attachment is None or attachment.stored_at is None:
        raise ApiError(ErrorCode.UPLOAD_INCOMPLETE)
    return attachment
