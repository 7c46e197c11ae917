"""The stored ops a push event covers: which columns are hashed, and their digest.

The sync store's `ops` table is append-only, so every column of a stored op is
covered. The value is read as the exact JSON text the database holds (never
decoded and re-encoded), and the arrival time as an explicit UTC string.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Text, and_, cast, or_, select

from server.audit.chain import format_time, new_ops_digest, op_line
from sync.store.tables import ops

# Order matters: it is part of the canonical form. Never reorder; append only with
# a new format version.
SCALAR_COLUMNS = (
    ops.c.position,
    ops.c.device_id,
    ops.c.seq,
    ops.c.user_id,
    ops.c.record_id,
    ops.c.form_id,
    ops.c.form_version,
    ops.c.grid_id,
    ops.c.field,
    ops.c.kind,
    ops.c.hlc,
    ops.c.base,
    ops.c.reason,
    ops.c.detail,
)
COVERED = (*SCALAR_COLUMNS, ops.c.received_at, cast(ops.c.value, Text).label("value_json"))
_SCALARS = len(SCALAR_COLUMNS)
_DEVICE, _SEQ, _GRID = 1, 2, 7


@dataclass(frozen=True)
class OpRange:
    """A device's ops `seq_from`..`seq_to` as one push event claims them."""

    device_id: str
    seq_from: int
    seq_to: int


@dataclass
class RangeDigest:
    """What the stored ops of one range hash to, and what they hold."""

    count: int
    ops_hash: str
    grid_ids: set[int]


def stored_op_line(row: Any) -> bytes:
    """The canonical form of one row selected with COVERED."""
    columns = list(row[:_SCALARS])
    columns.append(format_time(row[_SCALARS]))
    return op_line(columns, row[_SCALARS + 1])


def select_ranges(ranges: Iterable[OpRange]) -> Any:
    """One statement for the stored ops of several ranges, ordered by device and seq."""
    clauses = [
        and_(ops.c.device_id == r.device_id, ops.c.seq.between(r.seq_from, r.seq_to))
        for r in ranges
    ]
    return select(*COVERED).where(or_(*clauses)).order_by(ops.c.device_id, ops.c.seq)


def digest_range(connection: Connection, op_range: OpRange) -> RangeDigest:
    """Hash the stored ops of one range, in seq order."""
    rows = connection.execute(select_ranges([op_range]))
    return digest_rows(rows, [op_range])[op_range]


def digest_rows(rows: Iterable[Any], ranges: Iterable[OpRange]) -> dict[OpRange, RangeDigest]:
    """Split rows ordered by (device, seq) into the given ranges and hash each.

    Only the order of seqs within one device is relied on: the database's collation
    decides how devices are ordered, and that need not agree with Python's.
    """
    by_device: dict[str, list[OpRange]] = {}
    for op_range in ranges:
        by_device.setdefault(op_range.device_id, []).append(op_range)
    for device_ranges in by_device.values():
        device_ranges.sort(key=lambda r: r.seq_from)
    results = {r: RangeDigest(0, "", set()) for rs in by_device.values() for r in rs}
    digests = {r: new_ops_digest() for r in results}
    device_ranges: list[OpRange] = []
    current_device: str | None = None
    index = 0
    for row in rows:
        device, seq = row[_DEVICE], row[_SEQ]
        if device != current_device:
            current_device, device_ranges, index = device, by_device.get(device, []), 0
        while index < len(device_ranges) and device_ranges[index].seq_to < seq:
            index += 1
        if index == len(device_ranges) or seq < device_ranges[index].seq_from:
            continue  # outside every range: not this query's business
        owner = device_ranges[index]
        digests[owner].update(stored_op_line(row))
        found = results[owner]
        found.count += 1
        found.grid_ids.add(row[_GRID])
    for op_range, found in results.items():
        found.ops_hash = digests[op_range].hexdigest()
    return results
