"""A push into the SQL store, exactly as docs/sync.md ("A push, exactly") states it.

Seqs are checked against the stored ones, the new ops take consecutive positions under
the counter lock, each gets its quarantine verdict from `sync.reasons`, all of them
are appended in one COPY (executemany on SQLite), and the applied ones are merged by
a handful of set statements. The caller owns the transaction: one push, one commit.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any

from sqlalchemy import Connection

from sync import hlc as hlc_mod
from sync.merge import Key
from sync.messages import PushResult, QuarantinedOp
from sync.ops import Op, OpStatus, StoredOp
from sync.reasons import FieldCheck, FormLookup, Gate, quarantine_reason, server_millis
from sync.store import conflict_rows, positions
from sync.store.batch import Batch
from sync.store.inbox import Item, add_items, conflict_items
from sync.store.merging import (
    fields_of,
    merge_batch,
    note_moves,
    prepare_batch,
    record_keys,
    restamp,
)
from sync.store.seqs import Content, check_all_stored, content_of, split_new
from sync.store.sql import (
    PLAN_WITH_PARAMETERS,
    bulk_insert,
    driver_rows,
    driver_sql,
    encode_json,
    in_param,
    is_postgres,
    now,
    pipelined,
    stored_time,
)
from sync.store.tables import ops, record_forms

__all__ = [
    "MAX_STORED_HLC",
    "OP_COLUMNS",
    "GridFilter",
    "Pushed",
    "Rules",
    "acked_seq",
    "op_row",
    "push",
    "resend",
    "within",
]

MAX_STORED_HLC = (1 << 63) - 1  # a BIGINT column; the protocol refuses larger HLCs
MAX_DETAIL = 1000
OP_COLUMNS = (
    "position",
    "device_id",
    "seq",
    "user_id",
    "record_id",
    "form_id",
    "form_version",
    "grid_id",
    "field",
    "kind",
    "value",
    "hlc",
    "base",
    "reason",
    "detail",
    "received_at",
)
_by_seq = attrgetter("seq")

GridFilter = Callable[[set[int]], Collection[int]]
"""Given grids, those the pushing user may write to (and that exist). The store asks it
once per push, about the grids the ops name and the grids their records are in."""


def within(scope: Collection[int] | None) -> GridFilter:
    """The filter of a plain scope: the grids that lie in it (None: every grid)."""
    if scope is None:
        return lambda grids: grids
    held = frozenset(scope)
    return lambda grids: grids & held


@dataclass(frozen=True)
class Rules:
    """What the store needs to know about the world: forms, validation, the clock.

    `prepare`, when given, is called with a push's (form_id, form_version) pairs before
    its ops are checked; `lookup_form` and `check_field` must not use the database after
    it (or at all, without it): the store checks ops while streaming them into COPY.
    """

    lookup_form: FormLookup
    check_field: FieldCheck
    wall: Callable[[], int] = hlc_mod.wall_millis
    max_skew_ms: int = 600_000
    prepare: Callable[[Collection[tuple[str, int]]], None] | None = None


@dataclass(frozen=True)
class Pushed:
    """A push's result, with its conflicts in wire form (they carry their ids)."""

    result: PushResult
    conflicts: list[dict[str, Any]] = field(default_factory=list)


def push(
    connection: Connection,
    device_id: str,
    user_id: int,
    sent: list[Op],
    writable: GridFilter,
    rules: Rules,
    *,
    acked: int | None = None,
) -> Pushed:
    """Store one push; raises SeqReuse or SeqGap before anything is written.

    `writable` gives the grids the pushing user may write to (`within` a plain scope).

    `acked` is the device's ack when the caller has just read it (`acked_seq` with
    `plan`) and found a seq above it: the push then goes straight to the counter lock.
    """
    sent = sorted(sent, key=_by_seq)
    for op in sent:
        if op.device_id != device_id:
            raise ValueError("every op of a push belongs to the pushing device")
        if op.hlc > MAX_STORED_HLC:
            raise ValueError("an HLC above 2^63 - 1 cannot be stored")
    if acked is None:
        acked = acked_seq(connection, device_id, plan=True)
        if sent and sent[-1].seq <= acked:
            resent = resend(connection, device_id, [content_of(op) for op in sent], rules, acked)
            assert resent is not None  # all seqs are stored: nothing else can remove one
            return resent

    counter = positions.lock(connection)
    acked = acked_seq(connection, device_id)  # again, now that concurrent pushes are done
    new_ops, duplicate = split_new(connection, device_id, acked, sent)
    moment = counter.transaction_time or now()
    stored, applied, quarantined, before = _store_new(
        connection, user_id, new_ops, writable, rules, counter, moment
    )

    with pipelined(connection):
        found, described = _merge(connection, user_id, stored, applied, before, counter, moment)
        counter.hlc = hlc_mod.Clock(rules.wall, counter.hlc).now()
        positions.save(connection, counter)
        _notify(connection, user_id, quarantined, described, moment)
    result = PushResult(
        acked_seq=new_ops[-1].seq if new_ops else acked,
        applied=len(applied),
        duplicate=duplicate,
        quarantined=quarantined,
        conflicts=found,
        server_hlc=counter.hlc,
        stored=stored,
        received_at=moment,
    )
    return Pushed(result, described)


def _merge(
    connection: Connection,
    user_id: int,
    stored: list[StoredOp],
    applied: list[StoredOp],
    before: dict[str, tuple[int, Key]],
    counter: positions.Counter,
    moment: dt.datetime,
) -> tuple[list, list[dict[str, Any]]]:
    """Merge the push's applied ops and record their conflicts; the conflicts found,
    and in wire form. `before` are the grid and key of the push's records that had
    state, as `_store_new` read them."""
    if not applied:
        return [], []
    # Every read comes first: the merge's writes then go out without waiting (a pipeline).
    prepared = prepare_batch(connection, applied, before)
    # One device's ops never conflict with each other, so only ops on records that
    # held other ops before can take part in a conflict.
    known = prepared.before
    candidates = [entry for entry in applied if entry.op.record_id in known] if known else []
    gathered = None
    if candidates:
        users = {entry.position: user_id for entry in candidates}
        span = (stored[0].position, stored[-1].position)
        gathered = conflict_rows.gather(connection, candidates, users, span=span)
    effect = merge_batch(
        connection, prepared, Batch(stored[0].position, stored[-1].position), moment
    )
    restamp(connection, fields_of(connection, effect.moved), counter)
    note_moves(connection, effect.moved, counter)
    counter.note_applied(effect.highest_hlc)
    return conflict_rows.record(connection, gathered, moment)


def resend(
    connection: Connection,
    device_id: str,
    sent: list[Content],
    rules: Rules,
    acked: int | None = None,
) -> Pushed | None:
    """A push whose seqs are all stored (a retry after a lost reply): compared with the
    stored ops and answered without the counter lock; None when it holds a new seq.

    Raises SeqReuse. Works on op contents, so a retry never builds op objects. `acked`
    as in `push`, when the caller has read it.
    """
    if acked is None:
        acked = acked_seq(connection, device_id, plan=True)
    if not sent or max(content[0] for content in sent) > acked:
        return None
    check_all_stored(connection, device_id, sent)
    counter = positions.read(connection)
    server_hlc = hlc_mod.Clock(rules.wall, counter.hlc).now()
    return Pushed(PushResult(acked, 0, len(sent), [], [], server_hlc))


def acked_seq(connection: Connection, device_id: str, *, plan: bool = False) -> int:
    """The device's highest stored seq (seqs are gap-free, so this is its ack).

    With `plan`, the same statement does `sql.plan_with_parameters` for the transaction.
    """
    if plan and is_postgres(connection):
        statement = f"SELECT max(seq), {PLAN_WITH_PARAMETERS} FROM ops WHERE device_id = %s"  # noqa: S608
    else:
        statement = driver_sql(connection, "SELECT max(seq) FROM ops WHERE device_id = ?")
    return connection.exec_driver_sql(statement, (device_id,)).scalar() or 0


def _store_new(
    connection: Connection,
    user_id: int,
    new_ops: list[Op],
    writable: GridFilter,
    rules: Rules,
    counter: positions.Counter,
    moment: dt.datetime,
) -> tuple[list[StoredOp], list[StoredOp], list[QuarantinedOp], dict[str, tuple[int, Key]]]:
    """Give the new ops their positions and verdicts, and append them in one go.

    The stored ops, the applied ones among them, the quarantined ones as reported, and
    the grid and winner key of each of the push's records that had state before it
    (`merging.record_keys`, which the merge reuses). Verdicts are taken as the rows
    stream into COPY, so that PostgreSQL stores the first rows while the later ones are
    checked; every lookup is done before.
    """
    if not new_ops:
        return [], [], [], {}
    if rules.prepare is not None:
        rules.prepare({(op.form_id, op.form_version) for op in new_ops})
    forms_known = {form: rules.lookup_form(form) for form in {op.form_id for op in new_ops}}
    record_ids = {op.record_id for op in new_ops}
    record_form = _record_forms(connection, record_ids)
    before = record_keys(connection, record_ids)
    # The record's grid before the push stands for its current grid (that of its
    # highest-keyed applied op, this push's earlier ops included): an op the push
    # applies names a grid of the scope, so a record in the scope stays in it, and one
    # outside it gets no op applied. `ServerReplica.push` follows every op instead.
    record_grid = {rid: grid for rid, (grid, _key) in before.items()}
    gate = Gate(
        forms_known.__getitem__,
        rules.check_field,
        writable({op.grid_id for op in new_ops} | set(record_grid.values())),
        server_millis(rules.wall(), counter.applied_hlc),
        rules.max_skew_ms,
    )
    new_forms: dict[str, str] = {}
    first = counter.take(len(new_ops))
    received = stored_time(connection, moment)
    # Where the lock read the transaction's time (PostgreSQL), that is `moment`, and
    # `received_at` takes its default, now(), the same time: parsing one timestamp per
    # row cost the server about 1 µs per op.
    stamped = counter.transaction_time is None
    columns = OP_COLUMNS if stamped else OP_COLUMNS[:-1]
    stored: list[StoredOp] = []
    applied: list[StoredOp] = []
    quarantined: list[QuarantinedOp] = []

    new, applied_status = tuple.__new__, OpStatus.APPLIED  # a StoredOp built in C, per op

    def rows() -> Iterator[tuple]:
        for position, op in enumerate(new_ops, start=first):
            rid = op.record_id
            form = record_form.get(rid)
            verdict = quarantine_reason(op, gate, form, record_grid.get(rid))
            if form is None and forms_known[op.form_id] is not None:
                record_form[rid] = new_forms[rid] = op.form_id
            if verdict is None:
                entry = new(StoredOp, (op, position, applied_status, None, ""))
                applied.append(entry)
            else:
                reason, detail = str(verdict.reason), verdict.detail[:MAX_DETAIL]
                entry = StoredOp(op, position, OpStatus.QUARANTINED, reason, detail)
                quarantined.append(QuarantinedOp(op.seq, rid, op.field, reason, detail))
            stored.append(entry)
            row = op_row(entry, user_id, received)
            yield row if stamped else row[:-1]

    bulk_insert(connection, ops, columns, rows())
    if len(stored) != len(new_ops):
        raise RuntimeError("the ops were not all stored")
    if new_forms:
        bulk_insert(connection, record_forms, ("record_id", "form_id"), list(new_forms.items()))
    return stored, applied, quarantined, before


def op_row(entry: StoredOp, user_id: int, received: Any) -> tuple:
    """The `ops` row of a stored op, in OP_COLUMNS order, exactly as a push writes it.

    `received` is the arrival time as the driver takes it (`sql.stored_time`).
    """
    op, position, _status, reason, detail = entry
    device_id, seq, record_id, form_id, version, grid_id, name, kind, value, hlc, base = op
    return (
        position,
        device_id,
        seq,
        user_id,
        record_id,
        form_id,
        version,
        grid_id,
        name,
        kind,
        encode_json(value),
        hlc,
        base,
        reason,
        None if reason is None else detail,
        received,
    )


def _record_forms(connection: Connection, record_ids: set[str]) -> dict[str, str]:
    where, parameter = in_param(connection, record_ids, "text")
    statement = f"SELECT record_id, form_id FROM record_forms WHERE record_id {where}"  # noqa: S608
    return dict(driver_rows(connection, statement, (parameter,)))


def _notify(
    connection: Connection,
    user_id: int,
    quarantined: list[QuarantinedOp],
    conflicts: list[dict[str, Any]],
    moment: dt.datetime,
) -> None:
    """Inbox items: each quarantined op for its user, each conflict for both sides' users."""
    items = [Item(user_id, "quarantine", q.record_id, q.to_wire()) for q in quarantined]
    add_items(connection, items + conflict_items(conflicts), moment)
