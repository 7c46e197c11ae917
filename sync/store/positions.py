"""The position counter and the server's HLC, kept in one row that every writer locks.

Every position (an op's arrival, a field state's change) comes from this row. A push
takes the row lock first and holds it until it commits, so pushes run their merge one
after another and commit in position order: a pull never sees a position while a
smaller one is still uncommitted, and conflict detection sees every earlier push.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import Connection

from sync.store.sql import driver_sql, is_postgres

ROW_ID = 1  # (the statements below spell it out)
_LOCK = (
    "INSERT INTO sync_clock (id, position, hlc, applied_hlc) VALUES (1, 0, 0, 0)"
    " ON CONFLICT (id) DO UPDATE SET position = sync_clock.position"
    " RETURNING position, hlc, applied_hlc"
)
# PostgreSQL also hands back the transaction's time: what `now()`, the default of the
# store's time columns, gives every row the transaction writes.
_LOCK_POSTGRES = _LOCK + ", now()"
_SAVE = "UPDATE sync_clock SET position = ?, hlc = ?, applied_hlc = ? WHERE id = 1"
_READ = "SELECT position, hlc, applied_hlc FROM sync_clock WHERE id = 1"


@dataclass(slots=True)
class Counter:
    """The counter as read under the lock; `take` hands out the next positions."""

    position: int
    hlc: int
    applied_hlc: int = 0  # the highest HLC among applied ops (the clock_ahead check)
    transaction_time: dt.datetime | None = None  # PostgreSQL's now(), in UTC, from `lock`

    def take(self, count: int) -> int:
        """Reserve `count` consecutive positions; the first of them."""
        first = self.position + 1
        self.position += count
        return first

    def note_applied(self, hlc: int) -> None:
        """Move the server's HLC and the highest applied HLC up to an applied op's."""
        self.hlc = max(self.hlc, hlc)
        self.applied_hlc = max(self.applied_hlc, hlc)


def lock(connection: Connection) -> Counter:
    """Lock the counter row until the transaction ends, creating it if it is missing."""
    # Updating the row to itself is what takes the row lock on PostgreSQL. Raw SQL: an
    # upsert construct is compiled anew on every call, and this runs on every push.
    if is_postgres(connection):
        position, hlc, applied_hlc, moment = connection.exec_driver_sql(_LOCK_POSTGRES).one()
        return Counter(position, hlc, applied_hlc, moment.astimezone(dt.UTC))
    position, hlc, applied_hlc = connection.exec_driver_sql(_LOCK).one()
    return Counter(position, hlc, applied_hlc)


def save(connection: Connection, counter: Counter) -> None:
    """Store the counter's new position and HLC (the row is already locked)."""
    connection.exec_driver_sql(
        driver_sql(connection, _SAVE), (counter.position, counter.hlc, counter.applied_hlc)
    )


def read(connection: Connection) -> Counter:
    """The newest committed position and HLC, without locking."""
    row = connection.exec_driver_sql(_READ).one_or_none()
    return Counter(*row) if row else Counter(0, 0)
