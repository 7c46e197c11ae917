"""Validation flags: the checks that span fields, run on merged records after they change.

A repeat row is a record of its own, but the checks belong to the whole filled-in form
(a row's relevance and constraints may look at its parent and at other rows), so the
flags of a record and the rows under it are computed on the top-level record, from the
merged values of all of them, and stored there as `FieldError.as_dict` entries (null
when there are none). Flags never change state: ops apply whatever the flags say.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Collection
from typing import Any, NamedTuple

from celery import shared_task
from flask import has_app_context
from sqlalchemy import Connection, select
from sqlalchemy.orm import Session

from forms import FormVersion, from_dict
from forms.model import DefinitionError
from forms.validate import validate_record
from server.db import Database
from server.form_store import LIVE
from server.models.forms import StoredFormVersion
from server.models.review import FlagCheck
from server.tasks import app_task, send_after_commit
from sync.messages import PushResult
from sync.ops import OpStatus
from sync.store.sql import (
    by_keys,
    decode_json,
    encode_json,
    insert_rows,
    is_postgres,
    pg_array,
    sqlite_value,
    update_rows,
)

FLAGS_TASK = "fieldsync.records.check_flags"
BATCH = 1000  # marked records checked per transaction

# For the beat schedule: checks whose task was lost (a broker down at commit) run within
# a minute.
BEAT_SCHEDULE = {"flag-checks": {"task": FLAGS_TASK, "schedule": 60.0}}


class _Record(NamedTuple):
    record_id: str
    parent_id: str | None
    repeat_group: str | None
    deleted: bool
    form_id: str
    form_version: int
    validation_flags: Any


_RECORD_COLUMNS = (
    "record_id, parent_id, repeat_group, deleted, form_id, form_version, validation_flags"
)


def _read_records(connection: Connection, column: str, ids: Collection[str]) -> list[_Record]:
    rows = by_keys(connection, "records", _RECORD_COLUMNS, column, ids)
    if is_postgres(connection):
        return [_Record(*row) for row in rows]
    # SQLite: the flag is an integer, the flags their JSON text
    return [_Record(*row[:3], bool(row[3]), *row[4:6], decode_json(row[6])) for row in rows]


def _trees(connection: Connection, record_ids: Collection[str]) -> dict[str, dict[str, _Record]]:
    """The records of the trees these records belong to, by top-level record: up through
    `parent_id` to the top-level records, then down to every row under them, a query
    per level. A row whose parents never reach a top-level record (its parent is not
    synced yet, or `_parent`s that loop) belongs to no tree."""
    found: dict[str, _Record] = {}
    asked: set[str] = set()
    todo = set(record_ids)
    while todo:  # up
        asked |= todo
        found.update((row.record_id, row) for row in _read_records(connection, "record_id", todo))
        todo = {row.parent_id for row in found.values() if row.parent_id is not None} - asked
    trees = {
        record_id: {record_id: row} for record_id, row in found.items() if row.parent_id is None
    }
    level = {record_id: record_id for record_id in trees}  # a record of the level: its root
    while level:  # down
        below: dict[str, str] = {}
        for row in _read_records(connection, "parent_id", level):
            root = level[row.parent_id]
            if row.record_id not in trees[root]:
                trees[root][row.record_id] = row
                below[row.record_id] = root
        level = below
    return trees


def _values(connection: Connection, record_ids: Collection[str]) -> dict[str, dict[str, Any]]:
    """The fields' current values, read as the driver's rows (thousands per check).

    PostgreSQL's driver would decode every value itself, slower than `decode_json`.
    """
    postgres = is_postgres(connection)
    value = "value::text" if postgres else "value"
    rows = by_keys(connection, "field_state", f"record_id, field, {value}", "record_id", record_ids)
    decode = decode_json if postgres else sqlite_value
    held: dict[str, dict[str, Any]] = {}
    for record_id, name, stored in rows:
        held.setdefault(record_id, {})[name] = decode(stored)
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


def _rows(tree: dict[str, _Record], values: dict[str, dict[str, Any]], root: str) -> dict:
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
    """Check the records these ids belong to and store their flags (one UPDATE)."""
    connection = session.connection()
    trees = _trees(connection, record_ids)
    if not trees:
        return
    values = _values(connection, [record_id for tree in trees.values() for record_id in tree])
    versions = _Versions(session)
    now = now or dt.datetime.now(dt.UTC)
    changed = []
    for root, members in trees.items():
        head = members[root]
        version = versions.get(head.form_id, head.form_version)
        if version is None:
            continue
        errors = validate_record(version, values.get(root, {}), _rows(members, values, root), now)
        flags = [error.as_dict() for error in errors] or None
        if flags != head.validation_flags:
            changed.append((root, None if flags is None else encode_json(flags)))
    key, flags_column = (("record_id", "text"),), (("validation_flags", "json"),)
    update_rows(connection, "records", key, flags_column, changed)


def mark(session: Session, record_ids: Collection[str]) -> None:
    """Ask for these records' flags to be computed again once this transaction commits.

    The request is a row of `flag_checks`, written in the transaction that changed the
    records, so it survives a lost task; the task the app sends after the commit (run
    in-process without a broker), or the beat schedule's, carries it out
    (`check_marked`). Outside an app (a script on the store) only the marks are written.
    """
    if not record_ids:
        return
    token = uuid.uuid4().hex
    insert_rows(
        session.connection(),
        "flag_checks",
        (("record_id", "text"), ("mark", "text")),
        [(record_id, token) for record_id in sorted(record_ids)],
        "ON CONFLICT (record_id) DO UPDATE SET mark = excluded.mark",
    )
    if has_app_context():
        send_after_commit(session, app_task(FLAGS_TASK))


def mark_after_push(session: Session, result: PushResult) -> None:
    """Mark every record a push's applied ops touched."""
    mark(
        session, {entry.op.record_id for entry in result.stored if entry.status == OpStatus.APPLIED}
    )


_DONE = {
    "postgresql": (
        "DELETE FROM flag_checks f USING unnest(%s::text[], %s::text[]) AS d(record_id, mark)"
        " WHERE f.record_id = d.record_id AND f.mark = d.mark"
    ),
    "sqlite": "DELETE FROM flag_checks WHERE record_id = ? AND mark = ?",
}


def check_marked(session: Session, limit: int = BATCH) -> int:
    """Compute the flags of up to `limit` marked records and clear their marks; how many.

    A record marked again while this ran keeps its newer mark, and is checked again.
    """
    rows = session.execute(select(FlagCheck.record_id, FlagCheck.mark).limit(limit)).all()
    if not rows:
        return 0
    refresh_flags(session, [record_id for record_id, _ in rows])
    connection = session.connection()
    if is_postgres(connection):
        ids, marks = zip(*rows, strict=True)
        parameters: Any = (pg_array(ids, "text"), pg_array(marks, "text"))
        connection.exec_driver_sql(_DONE["postgresql"], parameters)
    else:
        connection.exec_driver_sql(_DONE["sqlite"], [tuple(row) for row in rows])
    return len(rows)


def check_all(database: Database) -> int:
    """Carry out every flag check asked for, a batch per transaction; how many."""
    done, batch = 0, BATCH
    while True:
        with database.session() as session:
            checked = check_marked(session, batch)
        done += checked
        if checked < batch:
            return done


@shared_task(name=FLAGS_TASK)
def check_flags() -> int:
    """The flag checks asked for so far; safe to run twice, or in two workers at once."""
    from server.db import database

    return check_all(database())
