"""Merging a batch of applied ops into the derived tables, one statement per table.

The batch is named by a filter on `ops` (a position range for a push, a list of
positions for a release), so registers are merged inside the database with
INSERT ... SELECT ... ON CONFLICT, the winner rule written once in `sql.wins_over`.
Record heads come from the batch in memory; multi-selects are merged by
`sync.store.choice_sets`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection

from sync.ops import DELETED, GROUP, PARENT, SET, StoredOp
from sync.store.batch import SLOT_KEYS, STATE_COLUMNS, STATE_NAMES, Batch, Slot
from sync.store.choice_sets import (
    Choices,
    choice_ops_by_slot,
    load_choice_sets,
    merge_choice_sets,
)
from sync.store.positions import Counter
from sync.store.sql import (
    bulk_insert,
    by_slots,
    driver_rows,
    driver_sql,
    in_param,
    in_set,
    insert_rows,
    is_postgres,
    sqlite_value,
    stored_time,
    update_rows,
    wins_over,
)
from sync.store.tables import record_moves, records

Key = tuple[int, str, int]
DERIVED_FIELDS = (PARENT, GROUP, DELETED)

RECORD_COLUMNS = (
    ("record_id", "text"),
    ("form_id", "text"),
    ("form_version", "integer"),
    ("grid_id", "bigint"),
    ("hlc", "bigint"),
    ("device_id", "text"),
    ("seq", "bigint"),
    ("deleted", "boolean"),
    ("created_position", "bigint"),
    ("changed_position", "bigint"),
    ("created_at", "timestamptz"),
    ("updated_at", "timestamptz"),
)
# A record's version and grid follow its highest-keyed op; the change position only grows.
RECORD_UPSERT = (
    "ON CONFLICT (record_id) DO UPDATE SET "
    + ", ".join(
        f"{name} = CASE WHEN {wins_over('excluded', 'records')} THEN excluded.{name}"
        f" ELSE records.{name} END"
        for name in ("form_version", "grid_id", "hlc", "device_id", "seq")
    )
    + ", changed_position = CASE WHEN excluded.changed_position > records.changed_position "
    "THEN excluded.changed_position ELSE records.changed_position END"
    ", updated_at = excluded.updated_at"
)
# Registers: the batch's sets, or with two sets on one field its best one per field,
# replace the stored winner where they win and the field is no multi-select.
_SETS = "SELECT {picked} FROM ops WHERE {{batch}} AND kind = 'set'"
_RANKED_SETS = (
    "SELECT {picked} FROM (SELECT *, row_number() OVER (PARTITION BY record_id, field"
    " ORDER BY hlc DESC, device_id DESC, seq DESC) AS rank"
    " FROM ops WHERE {{batch}} AND kind = 'set') ranked WHERE rank = 1"
)
_PICKED = "record_id, field, value, hlc, device_id, seq, position, FALSE, position"
# Fields of records that had no state before the batch have no state to win over.
REGISTER_INSERT = f"INSERT INTO field_state ({STATE_NAMES}) {{source}}"
REGISTER_MERGE = (
    REGISTER_INSERT
    + " ON CONFLICT (record_id, field) DO UPDATE SET "
    + ", ".join(f"{name} = excluded.{name}" for name, _ in STATE_COLUMNS[2:] if name != "multi")
    + f" WHERE {wins_over('excluded', 'field_state')} AND NOT field_state.multi"
)


@dataclass(slots=True)
class Effect:
    """What a merged batch changed, for the caller to position and report."""

    # records whose grid changed: (grid before, grid after), in record_id order
    moved: dict[str, tuple[int, int]] = field(default_factory=dict)
    registers: set[Slot] = field(default_factory=set)  # registers whose winner changed
    sets: dict[Slot, int] = field(default_factory=dict)  # multi-selects touched: top position
    highest_hlc: int = 0  # the highest HLC among the batch's ops


@dataclass(slots=True)
class Prepared:
    """What a batch's merge reads before it writes anything: the survey of its ops,
    the records that had state, and the stored state of their touched multi-selects."""

    survey: Survey
    before: dict[str, tuple[int, Key]]  # per record that had state: its grid and key
    choices: Choices


def prepare_batch(
    connection: Connection,
    applied: list[StoredOp],
    known: dict[str, tuple[int, Key]] | None = None,
) -> Prepared:
    """Every read the merge of these applied ops (in position order) needs.

    Done first, so that inside `sql.pipelined` the writes that follow are sent one after
    another without waiting, and the server runs them while Python works. `known` is
    `record_keys` of (at least) the batch's records when the caller has read them under
    the counter lock; they are then not read again.
    """
    survey = _survey(applied)
    if known is None:
        before = record_keys(connection, list(survey.heads)) if applied else {}
    else:
        before = {rid: known[rid] for rid in survey.heads if rid in known}
    # Fields of records without state before the batch start empty: nothing to read.
    by_slot = choice_ops_by_slot(survey.choice_ops)
    choices = load_choice_sets(connection, by_slot, [slot for slot in by_slot if slot[0] in before])
    return Prepared(survey, before, choices)


def merge_batch(
    connection: Connection,
    prepared: Prepared,
    batch: Batch,
    moment: dt.datetime,
    *,
    report_registers: bool = False,
) -> Effect:
    """Merge the applied ops `prepared` has read for, which `batch` selects in `ops`."""
    effect = Effect()
    survey, before = prepared.survey, prepared.before
    heads = survey.heads
    if not heads:
        return effect
    effect.highest_hlc = survey.highest_hlc
    known = set(before)  # the records that had state before the batch
    for rid, (grid_id, key) in sorted(before.items()):
        best = heads[rid][0].op
        if best.grid_id != grid_id and (best.hlc, best.device_id, best.seq) > key:
            effect.moved[rid] = (grid_id, best.grid_id)
    _merge_records(connection, heads, known, moment)
    if survey.registers:
        # Without two ops on one field, the batch's best op per field is its only op.
        touched = {rid for rid, _ in survey.registers}
        effect.registers = _merge_registers(
            connection,
            batch,
            report_registers,
            survey.repeated,
            touched & known,
            touched,
        )
    if prepared.choices.by_slot:
        effect.sets = merge_choice_sets(connection, prepared.choices, known)
    _derive_reserved(connection, sorted(survey.derived))
    return effect


def restamp(connection: Connection, slots: Iterable[Slot], counter: Counter) -> int:
    """Give these field states fresh positions, in the order given; how many."""
    slots = list(slots)
    if not slots:
        return 0
    first = counter.take(len(slots))
    rows = [(rid, name, first + i) for i, (rid, name) in enumerate(slots)]
    update_rows(connection, "field_state", SLOT_KEYS, (("position", "bigint"),), rows)
    return len(slots)


def note_moves(connection: Connection, moved: dict[str, tuple[int, int]], counter: Counter) -> None:
    """Append the batch's record moves, each at a fresh position (after its restamp)."""
    if not moved:
        return
    first = counter.take(len(moved))
    rows = [
        (first + n, rid, grid_before, grid_after)
        for n, (rid, (grid_before, grid_after)) in enumerate(moved.items())
    ]
    bulk_insert(connection, record_moves, ("position", "record_id", "from_grid", "to_grid"), rows)


def fields_of(connection: Connection, record_ids: Iterable[str]) -> list[Slot]:
    """Every field state of these records, in (record_id, field) code point order."""
    record_ids = sorted(set(record_ids))
    if not record_ids:
        return []
    where, parameter = in_param(connection, record_ids, "text")
    statement = (
        f"SELECT record_id, field FROM field_state WHERE record_id {where}"  # noqa: S608
        " ORDER BY record_id, field"
    )
    return [(rid, name) for rid, name in driver_rows(connection, statement, (parameter,))]


@dataclass(slots=True)
class Survey:
    """What one pass over a batch's applied ops finds for the merge."""

    # per record: the highest-keyed op, its first and its last position
    heads: dict[str, list[Any]] = field(default_factory=dict)
    registers: set[Slot] = field(default_factory=set)  # the fields given a set
    repeated: bool = False  # whether some field is given two sets
    choice_ops: list[StoredOp] = field(default_factory=list)  # adds and removes
    derived: set[str] = field(default_factory=set)  # records given a reserved field
    highest_hlc: int = 0


def _survey(applied: list[StoredOp]) -> Survey:
    """One pass over the batch (in position order), for every part of the merge."""
    survey = Survey()
    heads, registers, choice_ops = survey.heads, survey.registers, survey.choice_ops
    best: dict[str, Key] = {}  # the key of each record's head so far
    highest = 0
    repeated = False
    for stored in applied:
        op, position = stored.op, stored.position
        device, seq, rid, _form, _version, _grid, name, kind, _value, stamp, _base = op
        held = heads.get(rid)
        if held is None:
            heads[rid] = [stored, position, position]
            best[rid] = (stamp, device, seq)
        else:
            key = (stamp, device, seq)
            if key > best[rid]:
                held[0] = stored
                best[rid] = key
            held[2] = position
        if stamp > highest:
            highest = stamp
        if kind != SET:
            choice_ops.append(stored)
            continue
        slot = (rid, name)
        if slot in registers:
            repeated = True
        else:
            registers.add(slot)
        if name in DERIVED_FIELDS:
            survey.derived.add(rid)
    survey.repeated = repeated
    survey.highest_hlc = highest
    return survey


def record_keys(connection: Connection, record_ids: Collection[str]) -> dict[str, tuple[int, Key]]:
    """The grid and winner key of those of these records that exist already."""
    where, parameter = in_param(connection, record_ids, "text")
    statement = (
        "SELECT record_id, grid_id, hlc, device_id, seq FROM records"  # noqa: S608
        f" WHERE record_id {where}"
    )
    rows = driver_rows(connection, statement, (parameter,))
    return {rid: (grid_id, (hlc, device_id, seq)) for rid, grid_id, hlc, device_id, seq in rows}


def _merge_records(
    connection: Connection, heads: dict[str, list[Any]], known: set[str], moment: dt.datetime
) -> None:
    """Create new records and move version and grid to each record's winning op.

    Records are only created under the counter lock, which this transaction holds, so
    the ones not found before are new and go in by the fast path.
    """
    stamp = stored_time(connection, moment)
    new_rows, old_rows = [], []
    for rid, (best, first, last) in heads.items():
        op = best.op
        row = (
            rid,
            op.form_id,
            op.form_version,
            op.grid_id,
            op.hlc,
            op.device_id,
            op.seq,
            False,
            first,
            last,
            stamp,
            stamp,
        )
        (old_rows if rid in known else new_rows).append(row)
    if new_rows:
        bulk_insert(connection, records, [name for name, _ in RECORD_COLUMNS], new_rows)
    insert_rows(connection, "records", RECORD_COLUMNS, old_rows, RECORD_UPSERT)


def register_sql(condition: str, *, ranked: bool, upsert: bool) -> str:
    """The statement copying into `field_state` the sets among the `ops` rows matching
    `condition` (raw SQL, `?` markers): the best per field when `ranked`, and through
    the winner's upsert when the fields may hold state already."""
    source = (_RANKED_SETS if ranked else _SETS).format(picked=_PICKED)
    return (REGISTER_MERGE if upsert else REGISTER_INSERT).format(
        source=source.format(batch=condition)
    )


def _merge_registers(
    connection: Connection,
    batch: Batch,
    report: bool,
    ranked: bool,
    known: set[str],
    touched: set[str],
) -> set[Slot]:
    """Replace each register's winner by the batch's best op on it, where that wins.

    `touched` are the records the batch sets fields of, `known` those among them that
    had state before: the fields of the others are inserted without the upsert's
    conflict check (a fifth of the statement's time on PostgreSQL).
    """
    where, parameters = batch.sql(connection)
    if not known:
        parts = [(False, where, parameters)]
    elif known == touched:
        parts = [(True, where, parameters)]
    else:
        listed, listed_parameter = in_set(connection, sorted(known), "text")
        values = (*parameters, listed_parameter)
        parts = [
            (False, f"{where} AND record_id NOT {listed}", values),
            (True, f"{where} AND record_id {listed}", values),
        ]
    changed: set[Slot] = set()
    for upsert, condition, values in parts:
        statement = register_sql(condition, ranked=ranked, upsert=upsert)
        if report:
            statement += " RETURNING record_id, field"
        statement = driver_sql(connection, statement)
        if report:
            changed.update((rid, name) for rid, name in driver_rows(connection, statement, values))
        else:
            connection.exec_driver_sql(statement, values)
    return changed


def _as_read(value: Any) -> Any:
    return value


def _derive_reserved(connection: Connection, record_ids: list[str]) -> None:
    """Copy the winning `_parent`, `_group` and `_deleted` onto these records' columns."""
    if not record_ids:
        return
    derived: dict[str, list[Any]] = {rid: [rid, None, None, False] for rid in record_ids}
    slots = [(rid, name) for rid in record_ids for name in DERIVED_FIELDS]
    # The driver's values (this may run in a pipeline): PostgreSQL's psycopg decodes
    # JSON itself, SQLite hands back the stored text or number.
    decode = _as_read if is_postgres(connection) else sqlite_value
    for rid, name, raw in by_slots(
        connection, "field_state", "record_id, field, field_state.value", slots
    ):
        value = decode(raw)
        values = derived[rid]
        if name == PARENT and isinstance(value, str):
            values[1] = value
        elif name == GROUP and isinstance(value, str):
            values[2] = value
        elif name == DELETED:
            values[3] = value is True
    update_rows(
        connection,
        "records",
        (("record_id", "text"),),
        (("parent_id", "text"), ("repeat_group", "text"), ("deleted", "boolean")),
        list(derived.values()),
    )
