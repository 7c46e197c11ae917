"""What a merge works on: the batch of applied ops as SQL finds them in `ops`, and the
`field_state` rows (one per record field) that registers and multi-selects write."""

from __future__ import annotations

import json
from dataclasses import dataclass

from sqlalchemy import Connection

from sync.store.sql import is_postgres, pg_array

Slot = tuple[str, str]  # (record_id, field)
SLOT_KEYS = (("record_id", "text"), ("field", "text"))
STATE_COLUMNS = (
    ("record_id", "text"),
    ("field", "text"),
    ("value", "json"),
    ("hlc", "bigint"),
    ("device_id", "text"),
    ("seq", "bigint"),
    ("op_position", "bigint"),
    ("multi", "boolean"),
    ("position", "bigint"),
)
STATE_UPSERT = "ON CONFLICT (record_id, field) DO UPDATE SET " + ", ".join(
    f"{name} = excluded.{name}" for name, _ in STATE_COLUMNS[2:]
)
STATE_NAMES = ", ".join(name for name, _ in STATE_COLUMNS)


@dataclass(frozen=True, slots=True)
class Batch:
    """The applied ops being merged, as SQL finds them in `ops`: a push's position range
    without its quarantined ops, or a release's positions."""

    first: int = 0
    last: int = 0
    positions: tuple[int, ...] | None = None

    def sql(self, connection: Connection) -> tuple[str, tuple]:
        """A WHERE condition on `ops` with `?` markers, and its parameters."""
        if self.positions is None:
            return "position BETWEEN ? AND ? AND reason IS NULL", (self.first, self.last)
        # The range keeps the lookup on the primary key even where the planner's
        # statistics are stale (a table that grew since its last ANALYZE).
        bounds = (min(self.positions), max(self.positions))
        if is_postgres(connection):
            listed = ("position = ANY(?::bigint[])", pg_array(self.positions, "bigint"))
        else:
            listed = ("position IN (SELECT value FROM json_each(?))", json.dumps(self.positions))
        return f"position BETWEEN ? AND ? AND {listed[0]}", (*bounds, listed[1])
