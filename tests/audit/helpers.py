"""Building audit trails for tests, and tampering with them behind the application's back."""

from __future__ import annotations

from sqlalchemy import select, text

from server.audit import record_event
from server.audit.chain import GENESIS_HASH, chain_hash, event_bytes
from server.audit.verify import Report, verify_chain
from server.db import Database
from server.models import AuditEvent


def append_events(database: Database, count: int, start: int = 0) -> None:
    """`count` ordinary events, one transaction each."""
    for number in range(start, start + count):
        with database.session() as session:
            record_event(
                session,
                "user.changed",
                "user",
                number,
                {"field": "display_name", "old": f"n{number}", "new": f"名{number}"},
                user_id=1,
                grid_ids=[number % 3 + 1],
            )


def verify(database: Database, **options) -> Report:
    with database.engine.connect() as connection:
        return verify_chain(connection, **options)


def execute(database: Database, sql: str, **params) -> None:
    """Run SQL straight on the database, as someone with write access could."""
    with database.engine.begin() as connection:
        connection.execute(text(sql), params)


def event_row(database: Database, event_id: int) -> dict:
    with database.engine.connect() as connection:
        table = AuditEvent.__table__
        row = connection.execute(select(table).where(table.c.id == event_id)).one()
    return dict(row._mapping)


def row_hash(row: dict, prev_hash: str) -> str:
    """The hash an event row would carry after `prev_hash`, as a forger would compute it."""
    content = event_bytes(
        row["id"],
        row["occurred_at"],
        row["user_id"],
        row["device_id"],
        row["action"],
        row["target_type"],
        row["target_id"],
        row["details"],
    )
    return chain_hash(prev_hash, content)


def rechain(database: Database, event_ids: list[int]) -> str:
    """Recompute prev_hash and hash of these events in order from genesis; the new head."""
    prev = GENESIS_HASH
    for event_id in event_ids:
        new_hash = row_hash(event_row(database, event_id), prev)
        execute(
            database,
            "UPDATE audit_events SET prev_hash = :p, hash = :h WHERE id = :id",
            p=prev,
            h=new_hash,
            id=event_id,
        )
        prev = new_hash
    return prev
