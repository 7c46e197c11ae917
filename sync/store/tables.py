"""Tables of the sync store, on their own metadata (sync/ never imports server/).

Ids of users, devices and grids are plain columns here, without foreign keys to the
server's tables: the store must run wherever the merge rules run, and an op is kept
even when the device that sent it is later deleted.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    func,
)
from sqlalchemy.ext.compiler import compiles

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


def _code_point(length: int) -> String:
    """A string column that compares and sorts by code point on every backend.

    The winner rule and the restamp order compare ids and field names by code point;
    SQLite's default BINARY collation does, PostgreSQL needs the "C" collation.
    """
    return String(length).with_variant(String(length, collation="C"), "postgresql")


RECORD_ID = _code_point(36)
DEVICE_ID = _code_point(36)
FORM_ID = _code_point(128)
FIELD = _code_point(128)
ELEMENT = _code_point(1000)


class ValueJSON(JSON):
    """An op's or a field's value: JSON text kept exactly as sent.

    On SQLite the column is declared BLOB, which gives it no type affinity: a column
    named JSON has numeric affinity, which stores a number's text as an INTEGER or a
    REAL, so 2.0 came back as 2 (and no longer differed from 2), -0.0 as 0, and an
    integer beyond 64 bits as an inexact REAL. Without affinity the text stays text.
    PostgreSQL's json column keeps the text as sent.
    """

    cache_ok = True


@compiles(ValueJSON, "sqlite")
def _no_affinity(_type, _compiler, **_kw) -> str:
    return "BLOB"


# On SQLite an INTEGER primary key is the rowid itself (and only such a key autoincrements).
ID = BigInteger().with_variant(Integer, "sqlite")

# The one-row counter every position comes from, and the server's hybrid logical clock.
# A push locks this row for its whole transaction, so positions commit in order and a
# pull cursor can never pass a row that commits later with a smaller position.
sync_clock = Table(
    "sync_clock",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("position", BigInteger, nullable=False),
    Column("hlc", BigInteger, nullable=False),
    Column("applied_hlc", BigInteger, nullable=False, server_default="0"),
)

# Every op ever received, append-only: rows are inserted and never updated or deleted.
# `position` is the arrival position; `reason` is set when the op was quarantined. On
# SQLite it is an INTEGER primary key, the table's own rowid: no second B-tree to keep.
ops = Table(
    "ops",
    metadata,
    Column("position", ID, primary_key=True, autoincrement=False),
    Column("device_id", DEVICE_ID, nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("user_id", Integer, nullable=False),
    Column("record_id", RECORD_ID, nullable=False),
    Column("form_id", FORM_ID, nullable=False),
    Column("form_version", Integer, nullable=False),
    Column("grid_id", BigInteger, nullable=False),
    Column("field", FIELD, nullable=False),
    Column("kind", String(8), nullable=False),
    Column("value", ValueJSON(none_as_null=False)),
    Column("hlc", BigInteger, nullable=False),
    Column("base", BigInteger, nullable=False),
    Column("reason", String(40)),
    Column("detail", String(1000)),
    Column("received_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("ix_ops_device_id_seq", "device_id", "seq", unique=True),
    Index("ix_ops_record_id_field_position", "record_id", "field", "position"),
)

# A quarantined op an admin released: from then on it counts as applied, with its
# original arrival position. The op row itself is never touched.
op_releases = Table(
    "op_releases",
    metadata,
    Column("op_position", BigInteger, primary_key=True, autoincrement=False),
    Column("released_by", Integer, nullable=False),
    Column("released_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# The form a record belongs to: that of its first stored op whose form exists, even a
# quarantined one (docs/sync.md, quarantine order). Later ops naming another form are
# quarantined as form_mismatch.
record_forms = Table(
    "record_forms",
    metadata,
    Column("record_id", RECORD_ID, primary_key=True),
    Column("form_id", FORM_ID, nullable=False),
)

# The current state of each record field: the winning op of a register, or the live
# choices of a multi-select with its highest-keyed op. `position` is the change
# position pull pages by (unique: each change gets its own).
field_state = Table(
    "field_state",
    metadata,
    Column("record_id", RECORD_ID, primary_key=True),
    Column("field", FIELD, primary_key=True),
    Column("value", ValueJSON(none_as_null=False)),
    Column("hlc", BigInteger, nullable=False),
    Column("device_id", DEVICE_ID, nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("op_position", BigInteger, nullable=False),
    Column("multi", Boolean, nullable=False),
    Column("position", BigInteger, nullable=False),
    Index("ix_field_state_position", "position", unique=True),
)

# One row per applied add of a multi-select choice (its observed tag);
# `removed_position` is set once a remove covers it.
set_elements = Table(
    "set_elements",
    metadata,
    Column("record_id", RECORD_ID, primary_key=True),
    Column("field", FIELD, primary_key=True),
    Column("element", ELEMENT, primary_key=True),
    Column("add_position", BigInteger, primary_key=True, autoincrement=False),
    Column("device_id", DEVICE_ID, nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("removed_position", BigInteger),
)

# What the applied removes of one choice cover, per removing device: every add at or
# below `max_base`, and the device's own adds below `max_seq` (sync.merge.Removals).
set_removals = Table(
    "set_removals",
    metadata,
    Column("record_id", RECORD_ID, primary_key=True),
    Column("field", FIELD, primary_key=True),
    Column("element", ELEMENT, primary_key=True),
    Column("device_id", DEVICE_ID, primary_key=True),
    Column("max_seq", BigInteger, nullable=False),
    Column("max_base", BigInteger, nullable=False),
)

# A record whose grid changed, at a position of its own. A device that pulled before
# it, whose scope held the old grid but does not hold the record's grid now, may hold
# the record: its cursor is no longer honoured, and the snapshot it starts over from
# leaves the record out (docs/sync.md, "A record that leaves a device's scope").
record_moves = Table(
    "record_moves",
    metadata,
    Column("position", BigInteger, primary_key=True, autoincrement=False),
    Column("record_id", RECORD_ID, nullable=False),
    Column("from_grid", BigInteger, nullable=False),
    Column("to_grid", BigInteger, nullable=False),
)

# A record and the columns derived from its applied ops: form, and the version and
# grid of its highest-keyed op; parent, repeat group and deletion from the reserved
# fields; validation flags and review status that the server sets on the merged record.
records = Table(
    "records",
    metadata,
    Column("record_id", RECORD_ID, primary_key=True),
    Column("form_id", FORM_ID, nullable=False),
    Column("form_version", Integer, nullable=False),
    Column("grid_id", BigInteger, nullable=False),
    Column("hlc", BigInteger, nullable=False),
    Column("device_id", DEVICE_ID, nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("parent_id", RECORD_ID),
    Column("repeat_group", FIELD),
    Column("deleted", Boolean, nullable=False),
    Column("created_position", BigInteger, nullable=False),
    Column("changed_position", BigInteger, nullable=False),
    Column("validation_flags", JSON),
    Column("review_status", String(32), nullable=False, server_default="pending"),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("ix_records_grid_id", "grid_id"),
    Index("ix_records_parent_id", "parent_id"),
    Index("ix_records_form_id_form_version", "form_id", "form_version"),
)

# One conflicting pair of concurrent set ops on a field (sync.conflicts): the ops are
# named by their arrival positions, `first` being the earlier.
conflicts = Table(
    "conflicts",
    metadata,
    Column("id", ID, primary_key=True),
    Column("record_id", RECORD_ID, nullable=False),
    Column("field", FIELD, nullable=False),
    Column("first_position", BigInteger, nullable=False),
    Column("second_position", BigInteger, nullable=False),
    Column("winner_position", BigInteger, nullable=False),
    Column("status", String(16), nullable=False),
    Column("resolved_position", BigInteger),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("resolved_at", DateTime(timezone=True)),
    Index("ix_conflicts_record_id_field", "record_id", "field"),
    Index(
        "ix_conflicts_second_position_first_position",
        "second_position",
        "first_position",
        unique=True,
    ),
    Index("ix_conflicts_status", "status"),
)

# Items for a user's devices: conflicts, quarantined ops, review decisions, comments,
# reminders. Read in id order after the last id a device has seen.
inbox = Table(
    "inbox",
    metadata,
    Column("id", ID, primary_key=True),
    Column("user_id", Integer, nullable=False),
    Column("kind", String(20), nullable=False),
    Column("record_id", RECORD_ID),
    Column("payload", JSON, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("ix_inbox_user_id_id", "user_id", "id"),
)
