"""Building audit trails for tests, and tampering with them behind the application's back."""

from __future__ import annotations

from sqlalchemy import select, text

from server.audit import record_event
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
