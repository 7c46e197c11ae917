"""The position counter and the server's HLC, kept in one row that every writer locks.

Every position (an op's arrival, a field state's change) comes from this row. A push
takes the row lock first and holds it until it commits, so pushes run their merge one
after another and commit in position order: a pull never sees a position while a
smaller one is still uncommitted, and conflict detection sees every earlier push.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, select, update

from sync.store.sql import upsert
from sync.store.tables import sync_clock

ROW_ID = 1


@dataclass(slots=True)
class Counter:
    """The counter as read under the lock; `take` hands out the next positions."""

    position: int
    hlc: int
    applied_hlc: int = 0  # the highest HLC among applied ops (the clock_ahead check)

    def take(self, count: int) -> int:
        """Reserve `count` consecutive positions; the first of them."""
        first = self.position + 1
        self.position += count
        return first


def lock(connection: Connection) -> Counter:
    """Lock the counter row until the transaction ends, creating it if it is missing."""
    statement = upsert(connection, sync_clock).values(id=ROW_ID, position=0, hlc=0, applied_hlc=0)
    # Updating the row to itself is what takes the row lock on PostgreSQL.
    statement = statement.on_conflict_do_update(
        index_elements=[sync_clock.c.id], set_={"position": sync_clock.c.position}
    ).returning(sync_clock.c.position, sync_clock.c.hlc, sync_clock.c.applied_hlc)
    position, hlc, applied_hlc = connection.execute(statement).one()
    return Counter(position, hlc, applied_hlc)


def save(connection: Connection, counter: Counter) -> None:
    """Store the counter's new position and HLC (the row is already locked)."""
    connection.execute(
        update(sync_clock)
        .where(sync_clock.c.id == ROW_ID)
        .values(position=counter.position, hlc=counter.hlc, applied_hlc=counter.applied_hlc)
    )


def read(connection: Connection) -> Counter:
    """The newest committed position and HLC, without locking."""
    row = connection.execute(
        select(sync_clock.c.position, sync_clock.c.hlc, sync_clock.c.applied_hlc).where(
            sync_clock.c.id == ROW_ID
        )
    ).one_or_none()
    return Counter(row.position, row.hlc, row.applied_hlc) if row else Counter(0, 0)
