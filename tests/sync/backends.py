"""Servers for the state machine: the reference replica, the SQL store, and the SQL
store held step by step against a reference replica."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine

from server.db import Database, make_engine
from sync.conflicts import Conflict
from sync.messages import Page, PushResult, ReleaseResult, SyncRefused
from sync.replica import ServerReplica
from sync.store.server import SqlServer
from sync.store.tables import metadata as store_metadata
from tests.sync.world import check_field, lookup_form

Wall = Callable[[], int]


class ReplicaBackend:
    """The reference replica as a backend."""

    def __init__(self, wall: Wall) -> None:
        self.server = ServerReplica(lookup_form, check_field, wall=wall)

    def push(self, device_id, ops, scope) -> PushResult:
        return self.server.push(device_id, ops, scope)

    def pull(self, scope, cursor, limit) -> Page:
        return self.server.pull(scope, cursor, limit)

    def snapshot(self, scope, cursor, limit) -> Page:
        return self.server.snapshot(scope, cursor, limit)

    def release(self, op_ids) -> ReleaseResult:
        return self.server.release(op_ids)

    def log(self):
        return self.server.log()

    def state(self, scope=None):
        return self.server.state(scope)

    def conflicts(self) -> dict[tuple, bool]:
        return {row.conflict.ident: row.resolved for row in self.server.conflicts.values()}

    def newest(self) -> int:
        return self.server.position

    def restart(self) -> None:
        """A new replica rebuilt from what a durable store keeps of the old one."""
        self.server = self.server.restarted()

    def verify(self) -> None:
        """The replica is the reference: there is nothing to hold it against."""

    def close(self) -> None:
        """Nothing to close."""


def quick_engine(database: Database) -> Engine:
    """An engine on the test database for thousands of tiny transactions.

    On PostgreSQL: no ping on checkout, and commits that do not wait for the WAL flush
    (durability is not what these tests examine; the concurrency test keeps it).
    """
    url = database.engine.url
    if url.get_backend_name() != "postgresql":
        return make_engine(url.render_as_string(hide_password=False))
    options = f"{url.query.get('options', '')} -csynchronous_commit=off".strip()
    url = url.update_query_dict({"options": options})
    return make_engine(url.render_as_string(hide_password=False), pool_pre_ping=False)


def clear_store(engine: Engine) -> None:
    """Empty the sync store's tables (the rest of the schema is untouched)."""
    with engine.begin() as connection:
        for table in reversed(store_metadata.sorted_tables):
            connection.execute(table.delete())


class SqlBackend(ReplicaBackend):
    """The SQL store, emptied first, on the engine given.

    A restart is a new process's view: a new engine from `reopen` on the same database
    and a new `SqlServer`, so that only what was committed survives it. The engine in
    use is disposed on a restart and by `close`.
    """

    def __init__(
        self, engine: Engine, wall: Wall, reopen: Callable[[], Engine] | None = None
    ) -> None:
        clear_store(engine)
        self.engine = engine
        self.wall = wall
        self.reopen = reopen
        self.server = self.open()

    def open(self) -> SqlServer:
        return SqlServer(self.engine, lookup_form, check_field, wall=self.wall)

    def conflicts(self) -> dict[tuple, bool]:
        return self.server.conflicts()

    def newest(self) -> int:
        return self.server.newest()

    def restart(self) -> None:
        assert self.reopen is not None, "this backend was made without a way to restart"
        # every call is one transaction that gives its connection back
        assert self.engine.pool.checkedout() == 0, "a connection outlived its call"
        self.engine.dispose()
        self.engine = self.reopen()
        self.server = self.open()

    def close(self) -> None:
        self.engine.dispose()


def conflict_view(conflicts: list[Conflict]) -> list[tuple]:
    return [(c.ident, c.first_position, c.second_position, c.winner) for c in conflicts]


def stored_view(stored) -> list[tuple]:
    return [(s.op, s.position, s.applied, s.reason, s.detail) for s in stored]


def page_view(page: Page) -> tuple:
    return (page.changes, page.cursor, page.more)


def diff(got: Any, want: Any) -> str:
    """What the store answered against what the model answered."""
    return f"\nstore: {got!r}\nmodel: {want!r}"


def outcome(call: Callable[[Any], Any], server: Any) -> tuple[Any, SyncRefused | None]:
    try:
        return call(server), None
    except SyncRefused as refusal:
        return None, refusal


def refusal_view(refusal: SyncRefused | None) -> tuple:
    return (type(refusal), vars(refusal) if refusal else None)


class Agreeing:
    """The SQL store driven as the server, with a reference replica fed the same calls;
    every answer and every refusal must be the same on both."""

    def __init__(
        self, engine: Engine, wall: Wall, reopen: Callable[[], Engine] | None = None
    ) -> None:
        self.store = SqlBackend(engine, wall, reopen)
        self.model = ReplicaBackend(wall)

    def _both(self, call: Callable[[Any], Any]) -> tuple[Any, Any]:
        want, model_refused = outcome(call, self.model)
        got, store_refused = outcome(call, self.store)
        if model_refused or store_refused:
            assert refusal_view(store_refused) == refusal_view(model_refused)
            raise store_refused
        return got, want

    def push(self, device_id, ops, scope) -> PushResult:
        got, want = self._both(lambda s: s.push(device_id, list(ops), scope))
        assert (got.acked_seq, got.applied, got.duplicate) == (
            want.acked_seq,
            want.applied,
            want.duplicate,
        )
        assert got.quarantined == want.quarantined
        assert conflict_view(got.conflicts) == conflict_view(want.conflicts)
        assert stored_view(got.stored) == stored_view(want.stored), diff(
            stored_view(got.stored), stored_view(want.stored)
        )
        assert got.server_hlc >= max((s.op.hlc for s in got.stored if s.applied), default=0)
        return got

    def pull(self, scope, cursor, limit) -> Page:
        got, want = self._both(lambda s: s.pull(scope, cursor, limit))
        assert page_view(got) == page_view(want), diff(page_view(got), page_view(want))
        return got

    def snapshot(self, scope, cursor, limit) -> Page:
        got, want = self._both(lambda s: s.snapshot(scope, cursor, limit))
        assert page_view(got) == page_view(want), diff(page_view(got), page_view(want))
        return got

    def release(self, op_ids) -> ReleaseResult:
        got, want = self._both(lambda s: s.release(list(op_ids)))
        assert stored_view(got.released) == stored_view(want.released)
        assert conflict_view(got.conflicts) == conflict_view(want.conflicts)
        return got

    # Reads come from the model, so per-step invariants cost no round trips; `verify`
    # holds the store's full state to it (the machine calls it whenever it quiesces).

    def log(self):
        return self.model.log()

    def state(self, scope=None):
        return self.model.state(scope)

    def conflicts(self) -> dict[tuple, bool]:
        return self.model.conflicts()

    def newest(self) -> int:
        return self.model.newest()

    def verify(self) -> None:
        assert stored_view(self.store.log()) == stored_view(self.model.log())
        assert self.store.state() == self.model.state()
        assert self.store.conflicts() == self.model.conflicts()
        assert self.store.newest() == self.model.newest()

    def restart(self) -> None:
        self.store.restart()
        self.model.restart()

    def close(self) -> None:
        self.store.close()
