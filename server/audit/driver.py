"""Plain rows straight from the database driver, for the audit's hot loops."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

from sqlalchemy import Connection, Executable

BATCH = 5_000
_cursor_names = itertools.count(1)


def stream(connection: Connection, statement: Executable) -> Iterator[tuple]:
    """Rows as plain tuples, in batches, without SQLAlchemy's per-row processing.

    PostgreSQL reads through a server-side cursor, so memory holds one batch whatever
    the result's size; SQLite's cursor steps through the result lazily anyway. The
    statements given here carry only integer and text parameters, which need no
    conversion. Runs inside the connection's current transaction.
    """
    compiled = statement.compile(dialect=connection.dialect)
    raw = connection.connection.driver_connection
    if connection.dialect.name == "postgresql":
        with raw.cursor(name=f"fieldsync_audit_{next(_cursor_names)}") as cursor:
            cursor.execute(str(compiled), compiled.params)
            while batch := cursor.fetchmany(BATCH):
                yield from batch
        return
    cursor = raw.cursor()
    try:
        cursor.execute(str(compiled), [compiled.params[name] for name in compiled.positiontup])
        while batch := cursor.fetchmany(BATCH):
            yield from batch
    finally:
        cursor.close()
