"""What the user sees: the pulled state with the device's own not-yet-pulled ops over it.

The overlay follows the winner rule (`(hlc, device_id)`, as in `sync.merge`): an own
`set` shows when it is newer than the pulled winner; own `add`/`remove` change the
pulled choices. Ops the server quarantined are left out, as the server leaves them.
Reads are two queries per call (pulled fields, overlay ops), never one per record.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from typing import Any

from sync.ops import ADD, DELETED, REMOVE


@dataclass
class RecordView:
    """One record as the device shows it."""

    record_id: str
    form_id: str
    form_version: int
    grid_id: int
    values: dict[str, Any] = field(default_factory=dict)
    unsent: int = 0  # own ops not yet acknowledged by the server
    top: tuple[str, str] = ("", "")  # (hlc, device_id) of the record's newest op

    @property
    def deleted(self) -> bool:
        return self.values.get(DELETED) is True

    def as_dict(self) -> dict[str, Any]:
        return {
            "record_id": self.record_id,
            "form_id": self.form_id,
            "form_version": self.form_version,
            "grid_id": self.grid_id,
            "deleted": self.deleted,
            "unsent": self.unsent,
            "values": self.values,
        }


_PULLED = """
    SELECT r.record_id, r.form_id, r.form_version, r.grid_id,
           f.field, f.value, f.hlc, f.device_id
    FROM server_records r LEFT JOIN server_fields f ON f.record_id = r.record_id
    {where}
"""

# Own ops a complete pull has not brought back, minus those the server quarantined.
_OVERLAY = """
    SELECT o.*, (o.device_id = d.device_id AND o.seq > d.acked_seq) AS unsent
    FROM ops o JOIN device d ON d.id = 1
    WHERE o.id > d.reflected_op
      AND NOT EXISTS (SELECT 1 FROM quarantined_ops q
                      WHERE q.device_id = o.device_id AND q.seq = o.seq)
      {and_where}
    ORDER BY o.id
"""


def _overlay(view: RecordView, keys: dict[str, tuple[str, str]], op: sqlite3.Row) -> None:
    name, value = op["field"], json.loads(op["value"])
    key = (op["hlc"], op["device_id"])
    if op["kind"] in (ADD, REMOVE):
        current = view.values.get(name)
        choices = set(current) if isinstance(current, list) else set()
        if op["kind"] == ADD:
            choices.add(value)
        else:
            choices.discard(value)
        view.values[name] = sorted(choices)
        keys[name] = max(keys.get(name, key), key)
    elif name not in keys or key >= keys[name]:
        view.values[name] = value
        keys[name] = key
    if key >= view.top:
        # The record's form version and grid are those of its newest op.
        view.top = key
        view.form_version, view.grid_id = op["form_version"], op["grid_id"]
    view.unsent += op["unsent"]


def load_records(
    connection: sqlite3.Connection, record_ids: list[str] | None = None
) -> dict[str, RecordView]:
    """The records (all, or those named) as the device shows them."""
    where, parameters = "", ()
    if record_ids is not None:
        marks = ",".join("?" * len(record_ids))
        where, parameters = f"WHERE r.record_id IN ({marks})", tuple(record_ids)
    views: dict[str, RecordView] = {}
    keys: dict[str, dict[str, tuple[str, str]]] = {}
    for row in connection.execute(_PULLED.format(where=where), parameters):
        view = views.get(row["record_id"])
        if view is None:
            view = views[row["record_id"]] = RecordView(
                row["record_id"], row["form_id"], row["form_version"], row["grid_id"]
            )
            keys[view.record_id] = {}
        if row["field"] is not None:
            key = (row["hlc"], row["device_id"])
            view.values[row["field"]] = json.loads(row["value"])
            keys[view.record_id][row["field"]] = key
            view.top = max(view.top, key)
    and_where = where.replace("WHERE r.", "AND o.") if where else ""
    for op in connection.execute(_OVERLAY.format(and_where=and_where), parameters):
        view = views.get(op["record_id"])
        if view is None:
            view = views[op["record_id"]] = RecordView(
                op["record_id"], op["form_id"], op["form_version"], op["grid_id"]
            )
            keys[view.record_id] = {}
        _overlay(view, keys[view.record_id], op)
    return views


def load_record(connection: sqlite3.Connection, record_id: str) -> RecordView | None:
    """One record as the device shows it, or None when the device knows no such record."""
    return load_records(connection, [record_id]).get(record_id)
