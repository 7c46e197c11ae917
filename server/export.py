"""Exporting records as CSV: one row per record of a form, one column per field.

The top-level records of a form, or the rows of one of its repeats (with their
parent's id), filtered as the records list is and in the caller's scope. The text is
streamed a page of records at a time, so an export of any size holds one page in
memory. Values are written as a spreadsheet reads them best: choices of a
select_multiple separated by spaces, a point as `latitude longitude altitude
accuracy` (as ODK exports it), an attachment as its SHA-256, anything else
structured as JSON. Text that a spreadsheet would run as a formula gets a leading `'`.
UTF-8 with a byte-order mark, so that spreadsheet programs read Chinese text right.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator, Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from forms import FormVersion
from server.db import Database
from server.records import encode_cursor, list_query
from server.scope import Scope
from sync.store import tables as t
from sync.store.sql import timestamp

PAGE = 500
BOM = "\ufeff"
# The record's own columns; a repeat's rows get `parent_id` after the first.
RECORD_COLUMNS = (
    "record_id",
    "form_version",
    "grid_id",
    "review_status",
    "created_at",
    "updated_at",
)
POINT_KEYS = ("latitude", "longitude", "altitude", "accuracy")
# What makes Excel or LibreOffice read a cell as a formula (OWASP, "CSV Injection").
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def field_columns(version: FormVersion, group: str | None) -> list[str]:
    """The fields holding values at the top level (`group` None) or in one repeat."""
    return [field.name for field in version.value_fields() if field.repeat == group]


def text_cell(text: str) -> str:
    """Text a spreadsheet shows as it is: a leading `'` keeps a formula from running."""
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def point_cell(point: Mapping[str, Any]) -> str:
    """A point as ODK writes it: `latitude longitude altitude accuracy`, with an altitude
    of 0 when only the accuracy is known, so that each part keeps its place."""
    if "accuracy" in point:
        point = {"altitude": 0, **point}
    return " ".join(json.dumps(point[key]) for key in POINT_KEYS if key in point)


def cell(value: Any) -> str:
    """One value as CSV cell text."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return text_cell(value)
    if isinstance(value, int | float):
        return json.dumps(value)
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return text_cell(" ".join(value))
    if isinstance(value, dict) and isinstance(value.get("sha256"), str):
        return value["sha256"]
    if isinstance(value, dict) and {"latitude", "longitude"} <= value.keys():
        return point_cell(value)
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def export_csv(
    database: Database,
    scope: Scope,
    version: FormVersion,
    filters: Mapping[str, Any],
    group: str | None = None,
) -> Iterator[str]:
    """The CSV text of the matching records, header first, a page at a time.

    Each page is read in a short transaction of its own, so that a long export never
    holds the database (on SQLite, a transaction holds the write lock).
    """
    columns = field_columns(version, group)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    parent = ["parent_id"] if group else []
    writer.writerow([RECORD_COLUMNS[0], *parent, *RECORD_COLUMNS[1:], *columns])
    yield BOM + _take(buffer)
    page = {**filters, "form": version.form_id, "sort": "created", "limit": PAGE}
    if group is not None:
        page["group"] = group
    while True:
        with database.sessions() as session:
            query, sort_key = list_query(scope, session, page)
            rows = session.execute(query).all()
            more = len(rows) > PAGE
            rows = rows[:PAGE]
            values = _values(session, [row.record_id for row in rows])
        for row in rows:
            held = values.get(row.record_id, {})
            writer.writerow(
                [
                    row.record_id,
                    *([row.parent_id or ""] if group else []),
                    row.form_version,
                    row.grid_id,
                    row.review_status,
                    timestamp(row.created_at),
                    timestamp(row.updated_at),
                    *(cell(held.get(name)) for name in columns),
                ]
            )
        yield _take(buffer)
        if not more:
            return
        page["after"] = encode_cursor(getattr(rows[-1], sort_key), rows[-1].record_id)


def _take(buffer: io.StringIO) -> str:
    text = buffer.getvalue()
    buffer.seek(0)
    buffer.truncate()
    return text


def _values(session: Session, record_ids: list[str]) -> dict[str, dict[str, Any]]:
    """The current value of every field of these records, in one query."""
    found: dict[str, dict[str, Any]] = {}
    if not record_ids:
        return found
    fs = t.field_state
    query = select(fs.c.record_id, fs.c.field, fs.c.value).where(fs.c.record_id.in_(record_ids))
    for record_id, name, value in session.execute(query):
        found.setdefault(record_id, {})[name] = value
    return found
