"""Validation flags: the checks that span fields, run on merged records after they change.

A repeat row is a record of its own, but the checks belong to the whole filled-in form
(a row's relevance and constraints may look at its parent and at other rows), so the
flags of a record and the rows under it are computed on the top-level record, from the
merged values of all of them, and stored there as `FieldError.as_dict` entries (null
when there are none). Flags never change state: ops apply whatever the flags say.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Iterable
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from forms import FormVersion, from_dict
from forms.model import DefinitionError
from forms.validate import validate_record
from server.form_store import LIVE
from server.models.forms import StoredFormVersion
from sync.store import tables as t

CHUNK = 500  # ids per IN list
r, fs = t.records, t.field_state


def _chunks(ids: Collection[str]) -> Iterable[list[str]]:
    listed = sorted(ids)
    for start in range(0, len(listed), CHUNK):
        yield listed[start : start + CHUNK]


def _roots(session: Session, record_ids: Collection[str]) -> set[str]:
    """The top-level records of these records (a row's parent, its parent's, ...)."""
    roots: set[str] = set()
    seen: set[str] = set()
    todo = set(record_ids)
    while todo:
        seen |= todo
        parents: set[str] = set()
        for chunk in _chunks(todo):
            for record_id, parent_id in session.execute(
                select(r.c.record_id, r.c.parent_id).where(r.c.record_id.in_(chunk))
            ):
                if parent_id is None:
                    roots.add(record_id)
                else:
                    parents.add(parent_id)
        todo = parents - seen
    return roots


def _trees(session: Session, roots: set[str]) -> dict[str, Any]:
    """Every record of these trees, by id (rows found through `parent_id`)."""
    found: dict[str, Any] = {}
    todo = set(roots)
    while todo:
        rows = [
            row
            for chunk in _chunks(todo)
            for row in session.execute(
                select(r).where(r.c.record_id.in_(chunk) | r.c.parent_id.in_(chunk))
            )
        ]
        fresh = {row.record_id: row for row in rows if row.record_id not in found}
        found.update(fresh)
        todo = set(fresh) - todo
    return found


def _values(session: Session, record_ids: Collection[str]) -> dict[str, dict[str, Any]]:
    held: dict[str, dict[str, Any]] = {}
    for chunk in _chunks(record_ids):
        query = select(fs.c.record_id, fs.c.field, fs.c.value).where(fs.c.record_id.in_(chunk))
        for record_id, name, value in session.execute(query):
            held.setdefault(record_id, {})[name] = value
    return held


class _Versions:
    """The live form versions the flags are computed with, built once per digest."""

    built: dict[str, FormVersion] = {}

    def __init__(self, session: Session) -> None:
        self.session = session
        self.mine: dict[tuple[str, int], FormVersion | None] = {}

    def get(self, form_id: str, number: int) -> FormVersion | None:
        key = (form_id, number)
        if key not in self.mine:
            self.mine[key] = self._load(form_id, number)
        return self.mine[key]

    def _load(self, form_id: str, number: int) -> FormVersion | None:
        row = self.session.execute(
            select(StoredFormVersion.digest, StoredFormVersion.definition).where(
                StoredFormVersion.form_id == form_id,
                StoredFormVersion.version == number,
                StoredFormVersion.status.in_([str(status) for status in LIVE]),
            )
        ).first()
        if row is None:
            return None
        if row.digest not in self.built:
            try:
                version = from_dict(row.definition)
            except DefinitionError:  # stored before a check existed; its records go unflagged
                return None
            if len(self.built) >= 256:
                self.built.clear()
            self.built[row.digest] = version
        return self.built[row.digest]


def _rows(tree: dict[str, Any], values: dict[str, dict[str, Any]], root: str) -> dict:
    """The rows under `root` per repeat, each with `_id`, `_parent`, `_deleted`, in order."""
    rows: dict[str, list[dict[str, Any]]] = {}
    for record_id, row in tree.items():
        if record_id == root or row.repeat_group is None:
            continue
        own = values.get(record_id, {})
        entry = {**own, "_id": record_id, "_parent": row.parent_id, "_deleted": row.deleted}
        rows.setdefault(row.repeat_group, []).append(entry)
    for entries in rows.values():
        entries.sort(key=_row_order)
    return rows


def _row_order(row: dict[str, Any]) -> tuple:
    order = row.get("_order")
    number = order if type(order) in (int, float) else float("inf")
    return (number, row["_id"])


def refresh_flags(
    session: Session, record_ids: Collection[str], now: dt.datetime | None = None
) -> None:
    """Check the records these ids belong to and store their flags."""
    roots = _roots(session, record_ids)
    if not roots:
        return
    tree = _trees(session, roots)
    values = _values(session, tree)
    versions = _Versions(session)
    now = now or dt.datetime.now(dt.UTC)
    by_root: dict[str, dict[str, Any]] = {root: {} for root in roots}
    for record_id, row in tree.items():
        top = record_id
        while top not in by_root and tree.get(top) is not None:
            top = tree[top].parent_id
        if top in by_root:
            by_root[top][record_id] = row
    for root, members in by_root.items():
        head = members.get(root)
        if head is None:
            continue
        version = versions.get(head.form_id, head.form_version)
        if version is None:
            continue
        errors = validate_record(version, values.get(root, {}), _rows(members, values, root), now)
        flags = [error.as_dict() for error in errors] or None
        if flags != head.validation_flags:
            session.execute(update(r).where(r.c.record_id == root).values(validation_flags=flags))
