"""The planner statistics a pull page is planned with, kept from falling far behind.

A page asks for the scope's changes after a cursor in position order. Without
statistics the planner takes the records of the scope's grids first, then every one
of their field states after the cursor, and sorts them to keep a page: each page reads
everything that follows it, so bootstrapping a large grid costs the square of its
size (a 5,000-household grid took three to four times as long as with statistics,
see docs/sync_store.md). With them it walks the position index and stops at a page.

SQLite gathers no statistics by itself: a page takes them when `field_state` has more
than doubled since they were last taken, a handful of times over a store's life, on a
sample (`analysis_limit`: under a millisecond per table at two million rows).
PostgreSQL's autovacuum analyzes a table once a tenth of it has changed; a page
analyzes only when more than half of `field_state` changed since the last analysis,
which happens when autovacuum has not caught up with a bulk load, and then on a small
sample (24 ms at 20,000 field states, 50 ms at 200,000).
"""

from __future__ import annotations

from sqlalchemy import Connection

from sync.store.sql import driver_rows, is_postgres

# Below this many field states every plan is quick: no statistics are taken yet.
MIN_ROWS = 1000
# Rows sampled per index on SQLite (`analysis_limit`): enough for the planner's choice.
SAMPLE_ROWS = 1000
# PostgreSQL's statistics target for that analysis: it samples 300 rows per unit.
SAMPLE_TARGET = 10
# The tables a page reads.
TABLES = ("field_state", "records")


def keep_current(connection: Connection) -> bool:
    """Take the statistics of the pull's tables if they are missing or far behind;
    whether they were taken. Runs in the caller's transaction."""
    if is_postgres(connection):
        found = driver_rows(connection, _POSTGRES_CHANGES, ())
        live, changed = found[0] if found else (0, 0)
        if live < MIN_ROWS or 2 * changed <= live:
            return False
        # A sample of 3,000 rows rather than 30,000 (for this transaction only):
        # autovacuum's fuller one follows.
        connection.exec_driver_sql(f"SET LOCAL default_statistics_target = {SAMPLE_TARGET}")
        connection.exec_driver_sql(f"ANALYZE {', '.join(TABLES)}")
        return True
    rows = driver_rows(connection, "SELECT max(rowid) FROM field_state", ())[0][0] or 0
    if rows < MIN_ROWS or rows <= 2 * _analyzed_rows(connection):
        return False
    connection.exec_driver_sql(f"PRAGMA analysis_limit = {SAMPLE_ROWS}")
    for table in TABLES:
        connection.exec_driver_sql(f"ANALYZE {table}")
    return True


# Live rows, and rows changed since the last analysis, as the statistics system counts
# them (it may lag a second behind the latest commits); no row on a standby, which
# cannot analyze.
_POSTGRES_CHANGES = (
    "SELECT pg_stat_get_live_tuples(t), pg_stat_get_mod_since_analyze(t)"
    " FROM (VALUES ('field_state'::regclass)) AS v(t) WHERE NOT pg_is_in_recovery()"
)


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
