"""Stored form versions: import as draft, publish, retire, look up, and the device bundle.

A version moves draft -> published -> retired. Publishing freezes it: its definition
is never changed again, so `FormCatalog` caches published and retired versions for
the life of the process and the sync path never reads the database per op.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, tuple_
from sqlalchemy.orm import Session

from forms import DefinitionError, FormVersion, VersionDiff, diff_versions, from_dict, to_dict
from forms.builtin import NAMES as BUILTIN_NAMES
from forms.builtin import definition as builtin_definition
from forms.io import FormFileError, read_form, write_form
from forms.xlsform import XLSFormError
from server.audit.events import Action, record_event
from server.errors import ApiError, ErrorCode
from server.models import StoredForm, StoredFormVersion, VersionStatus, as_utc, utcnow

LIVE = (VersionStatus.PUBLISHED, VersionStatus.RETIRED)


def canonical_digest(definition: dict) -> str:
    """SHA-256 of a definition's canonical JSON (sorted keys, no spaces)."""
    text = json.dumps(
        definition, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def sendable_definition(row: StoredFormVersion) -> dict:
    """A stored definition as clients receive it, never holding NaN or Infinity (not JSON).

    Imports refuse them; a row stored before they were refused answers invalid_form
    naming it, instead of making the bundle unreadable for every device.
    """
    try:
        json.dumps(row.definition, allow_nan=False)
    except ValueError:
        raise ApiError(
            ErrorCode.INVALID_FORM,
            f"form {row.form_id!r} version {row.version}: the stored definition holds"
            " NaN or Infinity, which JSON cannot carry",
        ) from None
    return row.definition


def _build(definition: dict) -> FormVersion:
    try:
        return from_dict(definition)
    except DefinitionError as error:
        raise ApiError(ErrorCode.INVALID_FORM, str(error)) from None


def _row(session: Session, form_id: str, version: int) -> StoredFormVersion | None:
    return session.scalar(
        select(StoredFormVersion).where(
            StoredFormVersion.form_id == form_id, StoredFormVersion.version == version
        )
    )


def _require(session: Session, form_id: str, version: int) -> StoredFormVersion:
    row = _row(session, form_id, version)
    if row is None:
        raise ApiError(ErrorCode.NOT_FOUND, f"form {form_id!r} has no version {version}")
    return row


def _audit(session: Session, action: Action, row: StoredFormVersion, user_id: int | None) -> None:
    details = {"form_id": row.form_id, "version": row.version, "digest": row.digest}
    record_event(session, action, "form_version", f"{row.form_id}/{row.version}", details, user_id)


def save_draft(
    session: Session,
    definition: dict,
    source_format: str,
    source_name: str = "",
    user_id: int | None = None,
) -> StoredFormVersion:
    """Store a definition as the form's draft: replace an open draft, else add version N+1."""
    form_id = definition.get("form_id")
    _build(definition)  # checks everything before anything is written
    form = session.get(StoredForm, form_id)
    if form is None:
        form = StoredForm(id=form_id, title=dict(_build(definition).title))
        session.add(form)
        session.flush()
    latest = session.scalar(
        select(StoredFormVersion)
        .where(StoredFormVersion.form_id == form_id)
        .order_by(StoredFormVersion.version.desc())
        .limit(1)
    )
    if latest is not None and latest.status == VersionStatus.DRAFT:
        row = latest
    else:
        row = StoredFormVersion(
            form_id=form_id,
            version=1 if latest is None else latest.version + 1,
            status=VersionStatus.DRAFT,
        )
        session.add(row)
    stored = {**definition, "version": row.version}
    version = _build(stored)
    row.definition = to_dict(version)
    row.digest = canonical_digest(row.definition)
    row.source_format = source_format
    row.source_name = source_name[:300]
    form.title = dict(version.title)
    session.flush()
    _audit(session, Action.FORM_IMPORTED, row, user_id)
    return row


def import_file(
    session: Session,
    path: str | Path,
    form_id: str | None = None,
    publish: bool = False,
    user_id: int | None = None,
) -> StoredFormVersion:
    """Read an XLSForm, XForm or JSON file and store it as a draft (then publish it)."""
    try:
        definition, source_format = read_form(Path(path), form_id)
    except FormFileError as error:
        raise ApiError(ErrorCode.INVALID_FORM, str(error)) from None
    row = save_draft(session, definition, source_format, Path(path).name, user_id)
    if publish:
        publish_version(session, row.form_id, row.version, user_id)
    return row


def publish_version(
    session: Session, form_id: str, version: int, user_id: int | None = None
) -> StoredFormVersion:
    """Freeze a draft and offer it to devices; its references must name stored forms."""
    row = _require(session, form_id, version)
    if row.status != VersionStatus.DRAFT:
        raise ApiError(ErrorCode.CONFLICT, f"{form_id} v{version} is {row.status}, not a draft")
    built = _build(row.definition)
    for field in built.fields.values():
        missing = field.type == "reference" and field.reference != form_id
        if missing and session.get(StoredForm, field.reference) is None:
            raise ApiError(
                ErrorCode.INVALID_FORM,
                f"field {field.name!r} refers to form {field.reference!r}, which is not stored",
            )
    row.status = VersionStatus.PUBLISHED
    row.published_at = utcnow()
    session.flush()
    _audit(session, Action.FORM_PUBLISHED, row, user_id)
    return row


def retire_version(
    session: Session, form_id: str, version: int, user_id: int | None = None
) -> StoredFormVersion:
    """Take a published version out of the device bundle; records made with it keep it."""
    row = _require(session, form_id, version)
    if row.status != VersionStatus.PUBLISHED:
        raise ApiError(ErrorCode.CONFLICT, f"{form_id} v{version} is {row.status}, not published")
    row.status = VersionStatus.RETIRED
    row.retired_at = utcnow()
    session.flush()
    _audit(session, Action.FORM_RETIRED, row, user_id)
    return row


def get_version(
    session: Session, form_id: str, version: int, include_drafts: bool = False
) -> FormVersion | None:
    """A published or retired version (and drafts when asked), or None."""
    row = _row(session, form_id, version)
    if row is None or (row.status == VersionStatus.DRAFT and not include_drafts):
        return None
    return _build(row.definition)


def stored_version(session: Session, form_id: str, version: int | None) -> StoredFormVersion:
    """The stored row of a version; None picks the newest (published first)."""
    if version is not None:
        return _require(session, form_id, version)
    rows = session.scalars(
        select(StoredFormVersion)
        .where(StoredFormVersion.form_id == form_id)
        .order_by(StoredFormVersion.version.desc())
    ).all()
    if not rows:
        raise ApiError(ErrorCode.NOT_FOUND, f"no form {form_id!r}")
    published = [row for row in rows if row.status == VersionStatus.PUBLISHED]
    return (published or rows)[0]


@dataclass(frozen=True)
class StoredDiff:
    """What changed between two stored versions of one form."""

    form_id: str
    old: StoredFormVersion
    new: StoredFormVersion
    before: FormVersion
    after: FormVersion
    changes: VersionDiff

    def as_dict(self) -> dict[str, Any]:
        def side(row: StoredFormVersion) -> dict[str, Any]:
            return {"version": row.version, "status": row.status, "digest": row.digest}

        return {
            "form_id": self.form_id,
            "from": side(self.old),
            "to": side(self.new),
            "unchanged": self.changes.empty,
            **self.changes.as_dict(),
        }


def diff_stored(
    session: Session, form_id: str, old: int, new: int, include_drafts: bool = True
) -> StoredDiff:
    """Fields added, removed and retyped, and choices added and removed, from `old` to `new`.

    Without `include_drafts` a draft answers as missing, as it does for readers who may
    not see drafts.
    """
    rows = []
    for number in (old, new):
        row = _require(session, form_id, number)
        if row.status == VersionStatus.DRAFT and not include_drafts:
            raise ApiError(ErrorCode.NOT_FOUND, f"form {form_id!r} has no version {number}")
        rows.append(row)
    before, after = _build(rows[0].definition), _build(rows[1].definition)
    return StoredDiff(form_id, rows[0], rows[1], before, after, diff_versions(before, after))


def export_file(row: StoredFormVersion, fmt: str) -> bytes:
    """A stored version written as a file in `fmt` (see `forms.io.FORMATS`).

    XForms are made by pyxform, which refuses a few things our definitions allow (a
    media kind it does not know, say): that answers invalid_form with pyxform's reason.
    """
    version = _build(row.definition)
    try:
        return write_form(version, fmt)
    except XLSFormError as error:
        raise ApiError(
            ErrorCode.INVALID_FORM,
            f"form {row.form_id!r} version {row.version} cannot be written as {fmt}: {error}",
        ) from None


def list_versions(session: Session, form_id: str | None = None) -> list[StoredFormVersion]:
    """Every stored version (of one form), by form and version."""
    query = select(StoredFormVersion).order_by(StoredFormVersion.form_id, StoredFormVersion.version)
    if form_id is not None:
        query = query.where(StoredFormVersion.form_id == form_id)
    return list(session.scalars(query))


def version_summary(row: StoredFormVersion) -> dict[str, Any]:
    """What lists show of a version (without its definition)."""

    def stamp(value: Any) -> str | None:
        return None if value is None else as_utc(value).isoformat()

    return {
        "form_id": row.form_id,
        "version": row.version,
        "status": row.status,
        "title": row.definition.get("title", {}),
        "digest": row.digest,
        "source_format": row.source_format,
        "source_name": row.source_name,
        "created_at": stamp(row.created_at),
        "published_at": stamp(row.published_at),
        "retired_at": stamp(row.retired_at),
    }


@dataclass(frozen=True)
class Bundle:
    """The published versions devices need, and the ETag that names exactly them."""

    etag: str
    keys: tuple[tuple[str, int, str], ...]


def bundle_etag(session: Session) -> Bundle:
    """The bundle's ETag from the versions' digests alone (no definitions are read)."""
    keys = tuple(
        (form_id, version, digest)
        for form_id, version, digest in session.execute(
            select(StoredFormVersion.form_id, StoredFormVersion.version, StoredFormVersion.digest)
            .where(StoredFormVersion.status == VersionStatus.PUBLISHED)
            .order_by(StoredFormVersion.form_id, StoredFormVersion.version)
        )
    )
    text = "\n".join(f"{form_id}\t{version}\t{digest}" for form_id, version, digest in keys)
    return Bundle('"' + hashlib.sha256(text.encode()).hexdigest() + '"', keys)


def bundle_body(session: Session) -> dict[str, Any]:
    """Every published version with its definition, by form and version."""
    rows = session.scalars(
        select(StoredFormVersion)
        .where(StoredFormVersion.status == VersionStatus.PUBLISHED)
        .order_by(StoredFormVersion.form_id, StoredFormVersion.version)
    )
    return {
        "forms": [
            {
                "form_id": row.form_id,
                "version": row.version,
                "digest": row.digest,
                "definition": sendable_definition(row),
            }
            for row in rows
        ]
    }


def install_builtin(session: Session, publish: bool = True) -> list[StoredFormVersion]:
    """Store (and publish) each built-in form that is not stored yet; returns those added."""
    added = []
    for name in BUILTIN_NAMES:
        if session.get(StoredForm, name) is not None:
            continue
        row = save_draft(session, builtin_definition(name), "json", f"{name}.json")
        if publish:
            publish_version(session, row.form_id, row.version)
        added.append(row)
    return added


class FormCatalog:
    """Published and retired versions by (form_id, version), loaded once and kept.

    Their definitions never change, so a hit costs one dict lookup. A version that
    is not there is remembered for `miss_seconds`, so a flood of ops naming a missing
    version costs one query per interval, and a version published meanwhile (maybe by
    another process) is seen soon after.
    """

    def __init__(self, sessions: Callable[[], Session], miss_seconds: float = 2.0) -> None:
        self._sessions = sessions
        self._miss_seconds = miss_seconds
        self._versions: dict[tuple[str, int], FormVersion] = {}
        self._missing: dict[tuple[str, int], float] = {}
        self._lock = threading.Lock()

    def get(self, form_id: str, version: int) -> FormVersion | None:
        """The version, or None when no published or retired version has that number."""
        found = self._versions.get((form_id, version))
        if found is not None:
            return found
        return self.get_many([(form_id, version)]).get((form_id, version))

    def get_many(self, keys: Iterable[tuple[str, int]]) -> dict[tuple[str, int], FormVersion]:
        """The versions among `keys` that exist; uncached ones are read in one query."""
        now = time.monotonic()
        wanted = {
            key for key in keys if key not in self._versions and self._missing.get(key, 0.0) <= now
        }
        wanted = {key for key in wanted if _plausible(key)}
        if wanted:
            self._load(wanted, now)
        return {key: self._versions[key] for key in keys if key in self._versions}

    def _load(self, wanted: set[tuple[str, int]], now: float) -> None:
        with self._sessions() as session:
            rows = session.execute(
                select(
                    StoredFormVersion.form_id,
                    StoredFormVersion.version,
                    StoredFormVersion.definition,
                ).where(
                    tuple_(StoredFormVersion.form_id, StoredFormVersion.version).in_(
                        sorted(wanted)
                    ),
                    StoredFormVersion.status.in_([str(status) for status in LIVE]),
                )
            ).all()
        built = {(form_id, version): from_dict(definition) for form_id, version, definition in rows}
        with self._lock:
            self._versions.update(built)
            for key in wanted - built.keys():
                self._missing[key] = now + self._miss_seconds

    def forget_missing(self) -> None:
        """Drop the remembered misses (after this process publishes a version)."""
        with self._lock:
            self._missing.clear()


def _plausible(key: Any) -> bool:
    if not isinstance(key, tuple) or len(key) != 2:
        return False
    form_id, version = key
    return (
        isinstance(form_id, str)
        and 0 < len(form_id) <= 100
        and type(version) is int
        and 0 < version < 2**31
    )


_CATALOGS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def catalog_for(database: Any) -> FormCatalog:
    """The one catalog of a `server.db.Database` (shared by its requests and tasks)."""
    catalog = _CATALOGS.get(database)
    if catalog is None:
        catalog = _CATALOGS.setdefault(database, FormCatalog(database.sessions))
    return catalog


def latest_version_numbers(session: Session) -> dict[str, int]:
    """The newest published version number of every form."""
    return dict(
        session.execute(
            select(StoredFormVersion.form_id, func.max(StoredFormVersion.version))
            .where(StoredFormVersion.status == VersionStatus.PUBLISHED)
            .group_by(StoredFormVersion.form_id)
        ).all()
    )
