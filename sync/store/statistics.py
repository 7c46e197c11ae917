"""The planner statistics a pull page is planned with, kept current on SQLite.

A page asks for the scope's changes after a cursor in position order. Without
statistics SQLite takes the records of the scope's grids first, then every one of
their field states after the cursor, and sorts them to keep a page: each page reads
everything that follows it, so bootstrapping a large grid costs the square of its
size (a 5,000-household grid took 4.6 times as long as with statistics, see
docs/sync_store.md). With them it walks the position index and stops at a page.

SQLite gathers no statistics by itself, so a page gathers them when `field_state`
has more than doubled since they were last taken: a handful of times over a store's
life. `analysis_limit` bounds the work to a sample (under a millisecond per table at
two million rows). PostgreSQL's autovacuum keeps its own statistics; nothing is done
there.
"""

from __future__ import annotations

from sqlalchemy import Connection

from sync.store.sql import driver_rows, is_postgres

# Below this many field states every plan is quick: no statistics are taken yet.
MIN_ROWS = 1000
# Rows sampled per index (SQLite's `analysis_limit`): enough for the planner's choice.
SAMPLE_ROWS = 1000
# The tables a page reads.
TABLES = ("field_state", "records")


def keep_current(connection: Connection) -> bool:
    """Take SQLite's statistics of the pull's tables if they are missing or stale;
    whether they were taken. Runs in the caller's transaction."""
    if is_postgres(connection):
        return False
    rows = driver_rows(connection, "SELECT max(rowid) FROM field_state", ())[0][0] or 0
    if rows < MIN_ROWS or rows <= 2 * _analyzed_rows(connection):
        return False
    connection.exec_driver_sql(f"PRAGMA analysis_limit = {SAMPLE_ROWS}")
    for table in TABLES:
        connection.exec_driver_sql(f"ANALYZE {table}")
    return True


def _analyzed_rows(connection: Connection) -> int:
    """The number of field states the last statistics counted; 0 without any."""
    exists = driver_rows(
        connection, "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'sqlite_stat1'", ()
    )
    if not exists:
        return 0
    statement = "SELECT stat FROM sqlite_stat1 WHERE tbl = 'field_state' AND idx IS NOT NULL"
    found = driver_rows(connection, statement, ())
    # Each index's stat starts with the table's row count as the sample estimated it.
    return max((int(stat.split()[0]) for (stat,) in found), default=0)
