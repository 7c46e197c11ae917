"""`SqlServer`: the SQL store behind the same interface as the reference `ServerReplica`.

Each call is one transaction on the engine. Tests drive this and the replica with the
same histories and compare what they answer; benches drive it without HTTP.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable

from sqlalchemy import Engine, select

from sync import hlc as hlc_mod
from sync.conflicts import Conflict
from sync.merge import FieldValue
from sync.messages import Page, PushResult, ReleaseResult
from sync.ops import Op, StoredOp
from sync.reasons import FieldCheck, FormLookup
from sync.store import ingest, positions, reading
from sync.store.release import release
from sync.store.tables import conflicts, ops

Slot = tuple[str, str]


class SqlServer:
    """A sync server whose state lives in the SQL store."""

    def __init__(
        self,
        engine: Engine,
        lookup_form: FormLookup,
        check_field: FieldCheck,
        *,
        wall: Callable[[], int] = hlc_mod.wall_millis,
        max_skew_ms: int = 600_000,
        user_of: Callable[[str], int] = lambda _device_id: 0,
    ) -> None:
        self.engine = engine
        self.rules = ingest.Rules(lookup_form, check_field, wall, max_skew_ms)
        self.user_of = user_of

    def push(
        self, device_id: str, ops_sent: Iterable[Op], scope: Collection[int] | None = None
    ) -> PushResult:
        """One push in one transaction; SeqGap / SeqReuse leave nothing behind."""
        with self.engine.begin() as connection:
            pushed = ingest.push(
                connection,
                device_id,
                self.user_of(device_id),
                list(ops_sent),
                ingest.within(scope),
                self.rules,
            )
        return pushed.result

    def pull(self, scope: Collection[int] | None, cursor: int, limit: int) -> Page:
        with self.engine.begin() as connection:
            rows, cursor, more, server_hlc = reading.pull_rows(
                connection, scope, cursor, limit, self.rules.wall
            )
        return reading.as_page(rows, cursor, more, server_hlc)

    def snapshot(self, scope: Collection[int] | None, cursor: int, limit: int) -> Page:
        with self.engine.begin() as connection:
            rows, cursor, more, server_hlc = reading.snapshot_rows(
                connection, scope, cursor, limit, self.rules.wall
            )
        return reading.as_page(rows, cursor, more, server_hlc)

    def release(self, op_ids: Iterable[tuple[str, int]], released_by: int = 0) -> ReleaseResult:
        with self.engine.begin() as connection:
            result, _wire = release(connection, op_ids, released_by)
        return result

    def state(self, scope: Collection[int] | None = None) -> dict[Slot, FieldValue]:
        with self.engine.begin() as connection:
            return reading.state(connection, scope)

    def log(self) -> list[StoredOp]:
        with self.engine.begin() as connection:
            return list(reading.iter_log(connection))

    def quarantined(self) -> list[StoredOp]:
        return [entry for entry in self.log() if not entry.applied]

    def newest(self) -> int:
        """The newest position handed out."""
        with self.engine.begin() as connection:
            return positions.read(connection).position

    def conflicts(self) -> dict[tuple, bool]:
        """Every recorded conflict's `ident` and whether it is resolved."""
        first, second = ops.alias("first"), ops.alias("second")
        query = (
            select(
                conflicts,
                first.c.device_id.label("first_device"),
                first.c.seq.label("first_seq"),
                second.c.device_id.label("second_device"),
                second.c.seq.label("second_seq"),
            )
            .join(first, first.c.position == conflicts.c.first_position)
            .join(second, second.c.position == conflicts.c.second_position)
        )
        out: dict[tuple, bool] = {}
        with self.engine.begin() as connection:
            for row in connection.execute(query):
                first_id = (row.first_device, row.first_seq)
                second_id = (row.second_device, row.second_seq)
                conflict = Conflict(
                    record_id=row.record_id,
                    field=row.field,
                    first=first_id,
                    second=second_id,
                    first_position=row.first_position,
                    second_position=row.second_position,
                    winner=first_id if row.winner_position == row.first_position else second_id,
                )
                out[conflict.ident] = row.status == "resolved"
        return out
