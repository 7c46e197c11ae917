"""The device's local SQLite store: opening, migrating, and one transaction per step.

The layout is `store.sql` at version `LAYOUT_VERSION` (PRAGMA user_version). A store
at an older version is brought forward by `MIGRATIONS`, one transaction per version,
so a kill during a migration leaves the store at the version before it. A store newer
than this code is refused rather than touched: an older app must not rewrite it.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from mobile_schema.errors import DeviceError

LAYOUT_VERSION = 1

# Steps from version N-1 to N, keyed by N. Each is SQL run in one transaction
# together with `PRAGMA user_version = N`. A step may add tables, columns and
# indexes, or rebuild a table (create new, copy, drop old, rename); it never drops
# rows of `ops` or changes `device` counters. `store.sql` is always the result of
# running every step, which tests/device/test_local_store.py checks.
MIGRATIONS: dict[int, str] = {}


class StoreError(DeviceError):
    """The local store cannot be used as it is (a newer layout, a broken file)."""


@contextmanager
def store_errors(path: Path) -> Iterator[None]:
    """SQLite's failures on this file as StoreError, naming the file and what went wrong."""
    try:
        yield
    except sqlite3.Error as error:
        raise StoreError(f"{path}: the device store cannot be used: {error}") from error


@dataclass(frozen=True)
class DeviceState:
    """The `device` row: identity and sync progress."""

    server_url: str
    device_id: str | None
    token: str | None
    user_id: int | None
    username: str | None
    role: str | None
    grid_ids: list[int] | None
    hlc: str
    next_seq: int
    acked_seq: int
    reflected_op: int
    cursor: int
    snapshot_cursor: int | None
    inbox_after: int
    forms_etag: str | None
    last_sync_at: str | None

    @property
    def registered(self) -> bool:
        return self.device_id is not None


def layout_sql() -> str:
    """The DDL of the current layout."""
    return (resources.files("mobile_schema") / "store.sql").read_text("utf-8")


def _connect(path: str | Path) -> sqlite3.Connection:
    # isolation_level=None: we issue BEGIN IMMEDIATE ourselves, so every step is one
    # explicit transaction and nothing is committed behind our back.
    connection = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
    connection.row_factory = sqlite3.Row
    return connection


def is_blank(connection: sqlite3.Connection) -> bool:
    """Whether the file holds nothing yet (a new or empty file); reading writes nothing."""
    tables = connection.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
    return user_version(connection) == 0 and tables == 0


def _configure(connection: sqlite3.Connection, durable: bool) -> None:
    # Setting WAL writes the file's header: done only once the file is to be a store.
    connection.execute("PRAGMA journal_mode=WAL")
    # FULL: an edit the user saw saved must survive a power cut, not only a crash.
    # NORMAL still survives a killed app; only throwaway stores (tests) use it.
    connection.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
    connection.execute("PRAGMA foreign_keys=ON")
    connection.execute("PRAGMA busy_timeout=10000")


def user_version(connection: sqlite3.Connection) -> int:
    return connection.execute("PRAGMA user_version").fetchone()[0]


def migrate(connection: sqlite3.Connection, migrations: dict[int, str] | None = None) -> int:
    """Create or bring the layout forward; returns the version now held."""
    steps = MIGRATIONS if migrations is None else migrations
    target = max([LAYOUT_VERSION, *steps])
    version = user_version(connection)
    if version > target:
        raise StoreError(
            f"the local store has layout {version}, newer than this app's {target}; update the app"
        )
    if version == 0:
        tables = connection.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
        if tables:
            raise StoreError("the file holds tables but no layout version; not a device store")
        _run(connection, layout_sql(), target)
        return target
    for step in range(version + 1, target + 1):
        if step not in steps:
            raise StoreError(f"no migration to layout {step}")
        _run(connection, steps[step], step)
    return target


def _run(connection: sqlite3.Connection, script: str, version: int) -> None:
    # executescript() commits first, so the DDL goes through execute() statement by
    # statement inside one explicit transaction instead.
    connection.execute("BEGIN IMMEDIATE")
    try:
        for statement in split_statements(script):
            connection.execute(statement)
        connection.execute(f"PRAGMA user_version = {int(version)}")
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")


def split_statements(script: str) -> list[str]:
    """The complete SQL statements of a script, comments dropped."""
    statements, buffer = [], ""
    for line in script.splitlines(keepends=True):
        if line.lstrip().startswith("--"):
            continue
        buffer += line
        if sqlite3.complete_statement(buffer):
            statements.append(buffer.strip())
            buffer = ""
    if buffer.strip():
        raise StoreError(f"incomplete SQL statement: {buffer.strip()[:80]}")
    return statements


class LocalStore:
    """One device's SQLite file; every change goes through `transaction()`."""

    def __init__(
        self, path: str | Path, server_url: str | None = None, *, durable: bool = True
    ) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with store_errors(self.path):
            self.connection = _connect(self.path)
        try:
            with store_errors(self.path):
                self._prepare(server_url, durable)
        except BaseException:
            self.connection.close()
            raise

    def _prepare(self, server_url: str | None, durable: bool) -> None:
        """Check, configure and migrate the file; a new store gets its device row."""
        if not server_url and is_blank(self.connection):
            raise StoreError(f"{self.path} is a new store: give the server URL")
        _configure(self.connection, durable)
        migrate(self.connection)
        # The URL only seeds a new store: a registered device's URL changes together
        # with a successful registration (DeviceClient.register), never before it.
        if self.connection.execute("SELECT 1 FROM device").fetchone() is None:
            if not server_url:
                raise StoreError(f"{self.path} is a new store: give the server URL")
            with self.transaction("init") as connection:
                connection.execute(
                    "INSERT INTO device (id, server_url) VALUES (1, ?)", (server_url,)
                )

    def close(self) -> None:
        self.connection.close()

    def __enter__(self) -> LocalStore:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self, step: str) -> Iterator[sqlite3.Connection]:
        """One atomic step (named, so that tests can interrupt any step in turn)."""
        with store_errors(self.path):
            self.connection.execute("BEGIN IMMEDIATE")
            try:
                yield self.connection
            except BaseException:
                # SQLite may have rolled back already (a full disk, an I/O error).
                if self.connection.in_transaction:
                    self.connection.execute("ROLLBACK")
                raise
            self.connection.execute("COMMIT")

    @contextmanager
    def reading(self) -> Iterator[sqlite3.Connection]:
        """The connection for reads outside any step; SQLite failures as StoreError."""
        with store_errors(self.path):
            yield self.connection

    def state(self) -> DeviceState:
        with self.reading() as connection:
            row = connection.execute("SELECT * FROM device WHERE id = 1").fetchone()
        values = dict(row)
        del values["id"]
        values["grid_ids"] = None if row["grid_ids"] is None else json.loads(row["grid_ids"])
        return DeviceState(**values)

    def query(self, sql: str, parameters: Any = ()) -> list[sqlite3.Row]:
        """Rows of a read-only query, outside any step."""
        with self.reading() as connection:
            return connection.execute(sql, parameters).fetchall()
