"""Merging a batch of applied ops into the derived tables, one statement per table.

The batch is named by a filter on `ops` (a position range for a push, a list of
positions for a release), so registers and record heads are merged inside the
database with INSERT ... SELECT ... ON CONFLICT, the winner rule written once in
`sql.key_greater`. Multi-selects go through `sync.merge.ChoiceSet`, loaded for the
touched fields only, because the add-wins cover test is the core's rule.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import (
    ColumnElement,
    Connection,
    bindparam,
    case,
    false,
    func,
    literal,
    select,
    update,
)

from sync.merge import ChoiceSet, Removals
from sync.ops import DELETED, GROUP, PARENT, REMOVE, SET, StoredOp
from sync.store.positions import Counter
from sync.store.sql import bulk_insert, key_greater, slot_in, upsert
from sync.store.tables import field_state, ops, records, set_elements, set_removals

Slot = tuple[str, str]
DERIVED_FIELDS = (PARENT, GROUP, DELETED)


@dataclass(slots=True)
class Effect:
    """What a merged batch changed, for the caller to position and report."""

    moved: list[str] = field(default_factory=list)  # records whose grid changed
    registers: set[Slot] = field(default_factory=set)  # registers whose winner changed
    sets: dict[Slot, int] = field(default_factory=dict)  # multi-selects touched: top position


def merge_batch(
    connection: Connection,
    applied: list[StoredOp],
    batch: ColumnElement[bool],
    moment: dt.datetime,
    *,
    report_registers: bool = False,
) -> Effect:
    """Merge the applied ops selected by `batch` (they are `applied`, in memory too)."""
    effect = Effect()
    if not applied:
        return effect
    heads = _record_heads(applied)
    effect.moved = _moved_records(connection, heads)
    _merge_records(connection, heads, moment)
    register_slots = [(s.op.record_id, s.op.field) for s in applied if s.op.kind == SET]
    if register_slots:
        # Without two ops on one field, the batch's best op per field is its only op.
        ranked = len(set(register_slots)) < len(register_slots)
        effect.registers = _merge_registers(connection, batch, report_registers, ranked)
    choice_ops = [stored for stored in applied if stored.op.kind != SET]
    if choice_ops:
        effect.sets = _merge_choice_sets(connection, choice_ops)
    _derive_reserved(connection, applied)
    return effect


def restamp(connection: Connection, slots: Iterable[Slot], counter: Counter) -> int:
    """Give these field states fresh positions, in the order given; how many."""
    slots = list(slots)
    if not slots:
        return 0
    first = counter.take(len(slots))
    statement = (
        update(field_state)
        .where(field_state.c.record_id == bindparam("r"), field_state.c.field == bindparam("f"))
        .values(position=bindparam("p"))
    )
    connection.execute(
        statement,
        [{"r": rid, "f": name, "p": first + i} for i, (rid, name) in enumerate(slots)],
    )
    return len(slots)


def fields_of(connection: Connection, record_ids: Iterable[str]) -> list[Slot]:
    """Every field state of these records, in (record_id, field) code point order."""
    record_ids = sorted(set(record_ids))
    if not record_ids:
        return []
    rows = connection.execute(
        select(field_state.c.record_id, field_state.c.field)
        .where(field_state.c.record_id.in_(record_ids))
        .order_by(field_state.c.record_id, field_state.c.field)
    )
    return [(row.record_id, row.field) for row in rows]


def _winner_order(*partition):
    return func.row_number().over(
        partition_by=partition,
        order_by=(ops.c.hlc.desc(), ops.c.device_id.desc(), ops.c.seq.desc()),
    )


def _record_heads(applied: list[StoredOp]) -> dict[str, tuple[StoredOp, int, int]]:
    """Per record, the batch's highest-keyed op, and the batch's first and last positions."""
    heads: dict[str, tuple[StoredOp, int, int]] = {}
    for stored in applied:
        rid = stored.op.record_id
        held = heads.get(rid)
        if held is None:
            heads[rid] = (stored, stored.position, stored.position)
            continue
        best, first, last = held
        if stored.op.key > best.op.key:
            best = stored
        heads[rid] = (best, min(first, stored.position), max(last, stored.position))
    return heads


def _moved_records(
    connection: Connection, heads: dict[str, tuple[StoredOp, int, int]]
) -> list[str]:
    """Existing records whose grid the batch's winning op changes."""
    rows = connection.execute(
        select(
            records.c.record_id,
            records.c.grid_id,
            records.c.hlc,
            records.c.device_id,
            records.c.seq,
        ).where(records.c.record_id.in_(sorted(heads)))
    )
    moved = []
    for row in rows:
        best = heads[row.record_id][0].op
        if best.key > (row.hlc, row.device_id, row.seq) and best.grid_id != row.grid_id:
            moved.append(row.record_id)
    return sorted(moved)


def _merge_records(
    connection: Connection, heads: dict[str, tuple[StoredOp, int, int]], moment: dt.datetime
) -> None:
    """Create new records and move version and grid to each record's winning op."""
    statement = upsert(connection, records)
    new = statement.excluded
    wins = key_greater(
        (new.hlc, new.device_id, new.seq), (records.c.hlc, records.c.device_id, records.c.seq)
    )
    taken = {
        name: case((wins, getattr(new, name)), else_=getattr(records.c, name))
        for name in ("form_version", "grid_id", "hlc", "device_id", "seq")
    }
    statement = statement.on_conflict_do_update(
        index_elements=[records.c.record_id],
        set_={
            **taken,
            "changed_position": case(
                (new.changed_position > records.c.changed_position, new.changed_position),
                else_=records.c.changed_position,
            ),
            "updated_at": new.updated_at,
        },
    )
    rows = []
    for rid, (best, first, last) in heads.items():
        op = best.op
        rows.append(
            {
                "record_id": rid,
                "form_id": op.form_id,
                "form_version": op.form_version,
                "grid_id": op.grid_id,
                "hlc": op.hlc,
                "device_id": op.device_id,
                "seq": op.seq,
                "deleted": False,
                "created_position": first,
                "changed_position": last,
                "created_at": moment,
                "updated_at": moment,
            }
        )
    connection.execute(statement, rows)


def _merge_registers(
    connection: Connection, batch: ColumnElement[bool], report: bool, ranked_needed: bool
) -> set[Slot]:
    """Replace each register's winner by the batch's best op on it, where that wins."""
    rank = _winner_order(ops.c.record_id, ops.c.field) if ranked_needed else literal(1)
    ranked = (
        select(
            ops.c.record_id,
            ops.c.field,
            ops.c.value,
            ops.c.hlc,
            ops.c.device_id,
            ops.c.seq,
            ops.c.position,
            rank.label("rank"),
        )
        .where(batch, ops.c.kind == SET)
        .subquery()
    )
    source = select(
        ranked.c.record_id,
        ranked.c.field,
        ranked.c.value,
        ranked.c.hlc,
        ranked.c.device_id,
        ranked.c.seq,
        ranked.c.position,
        false(),
        ranked.c.position,
    ).where(ranked.c.rank == 1)
    columns = [
        "record_id",
        "field",
        "value",
        "hlc",
        "device_id",
        "seq",
        "op_position",
        "multi",
        "position",
    ]
    statement = upsert(connection, field_state).from_select(columns, source)
    new = statement.excluded
    current = field_state.c
    statement = statement.on_conflict_do_update(
        index_elements=[current.record_id, current.field],
        set_={name: getattr(new, name) for name in columns[2:] if name != "multi"},
        where=key_greater(
            (new.hlc, new.device_id, new.seq), (current.hlc, current.device_id, current.seq)
        )
        & ~current.multi,
    )
    if not report:
        connection.execute(statement)
        return set()
    rows = connection.execute(statement.returning(current.record_id, current.field))
    return {(row.record_id, row.field) for row in rows}


def _merge_choice_sets(connection: Connection, choice_ops: list[StoredOp]) -> dict[Slot, int]:
    """Apply adds and removes through `ChoiceSet`, then write back what changed."""
    by_slot: dict[Slot, list[StoredOp]] = defaultdict(list)
    for stored in choice_ops:
        by_slot[(stored.op.record_id, stored.op.field)].append(stored)
    slots = list(by_slot)
    sets, tops, removal_rows = _load_choice_sets(connection, slots)

    new_tags: list[dict] = []
    covered: list[dict] = []
    removals: dict[tuple[str, str, str, str], list[int]] = {}
    states: list[dict] = []
    touched: dict[Slot, int] = {}
    for slot, batch_ops in by_slot.items():
        choices = sets[slot]
        before = {
            (element, tag): position
            for element, tags in choices.tags.items()
            for tag, position in tags.items()
        }
        top_before = choices.top
        last_remove: dict[str, int] = {}
        for stored in sorted(batch_ops, key=lambda entry: entry.position):
            choices.apply(stored)
            if stored.op.kind == REMOVE:
                last_remove[stored.op.value] = stored.position
                key = (*slot, stored.op.value, stored.op.device_id)
                held = removals.setdefault(key, list(removal_rows.get(key, (0, 0))))
                held[0] = max(held[0], stored.op.seq)
                held[1] = max(held[1], stored.base)
        after = {
            (element, tag): position
            for element, tags in choices.tags.items()
            for tag, position in tags.items()
        }
        for (element, (device_id, seq)), position in after.items() - before.items():
            new_tags.append(
                {
                    "record_id": slot[0],
                    "field": slot[1],
                    "element": element,
                    "add_position": position,
                    "device_id": device_id,
                    "seq": seq,
                }
            )
        for (element, (_device, _seq)), position in before.items() - after.items():
            covered.append(
                {"r": slot[0], "f": slot[1], "e": element, "a": position, "p": last_remove[element]}
            )
        top_position = tops.get(slot, (None, 0))[1]
        if choices.top != top_before:
            top_position = next(s.position for s in batch_ops if s.op.key == choices.top)
        touched[slot] = max(stored.position for stored in batch_ops)
        assert choices.top is not None
        states.append(
            {
                "record_id": slot[0],
                "field": slot[1],
                "value": choices.value(),
                "hlc": choices.top[0],
                "device_id": choices.top[1],
                "seq": choices.top[2],
                "op_position": top_position,
                "multi": True,
                "position": touched[slot],
            }
        )
    _write_choice_sets(connection, new_tags, covered, removals, states)
    return touched


def _load_choice_sets(connection: Connection, slots: list[Slot]):
    """The live tags, removal summaries and top keys of these multi-select fields."""
    sets: dict[Slot, ChoiceSet] = {slot: ChoiceSet() for slot in slots}
    tag_rows = connection.execute(
        select(set_elements).where(
            slot_in(connection, set_elements.c.record_id, set_elements.c.field, slots),
            set_elements.c.removed_position.is_(None),
        )
    )
    for row in tag_rows:
        tags = sets[(row.record_id, row.field)].tags.setdefault(row.element, {})
        tags[(row.device_id, row.seq)] = row.add_position
    removal_rows: dict[tuple[str, str, str, str], tuple[int, int]] = {}
    for row in connection.execute(
        select(set_removals).where(
            slot_in(connection, set_removals.c.record_id, set_removals.c.field, slots)
        )
    ):
        removal_rows[(row.record_id, row.field, row.element, row.device_id)] = (
            row.max_seq,
            row.max_base,
        )
        removal = sets[(row.record_id, row.field)].removals.setdefault(row.element, Removals())
        removal.max_base = max(removal.max_base, row.max_base)
        removal.max_seq_by_device[row.device_id] = max(
            removal.max_seq_by_device.get(row.device_id, 0), row.max_seq
        )
    tops: dict[Slot, tuple[tuple[int, str, int], int]] = {}
    for row in connection.execute(
        select(
            field_state.c.record_id,
            field_state.c.field,
            field_state.c.hlc,
            field_state.c.device_id,
            field_state.c.seq,
            field_state.c.op_position,
        ).where(
            slot_in(connection, field_state.c.record_id, field_state.c.field, slots),
            field_state.c.multi,
        )
    ):
        slot = (row.record_id, row.field)
        tops[slot] = ((row.hlc, row.device_id, row.seq), row.op_position)
        sets[slot].top = tops[slot][0]
    return sets, tops, removal_rows


def _write_choice_sets(connection, new_tags, covered, removals, states) -> None:
    if new_tags:
        columns = ("record_id", "field", "element", "add_position", "device_id", "seq")
        bulk_insert(
            connection, set_elements, columns, [tuple(t[c] for c in columns) for t in new_tags]
        )
    if covered:
        connection.execute(
            update(set_elements)
            .where(
                set_elements.c.record_id == bindparam("r"),
                set_elements.c.field == bindparam("f"),
                set_elements.c.element == bindparam("e"),
                set_elements.c.add_position == bindparam("a"),
            )
            .values(removed_position=bindparam("p")),
            covered,
        )
    if removals:
        statement = upsert(connection, set_removals)
        statement = statement.on_conflict_do_update(
            index_elements=[
                set_removals.c.record_id,
                set_removals.c.field,
                set_removals.c.element,
                set_removals.c.device_id,
            ],
            set_={"max_seq": statement.excluded.max_seq, "max_base": statement.excluded.max_base},
        )
        connection.execute(
            statement,
            [
                {
                    "record_id": r,
                    "field": f,
                    "element": e,
                    "device_id": d,
                    "max_seq": s,
                    "max_base": b,
                }
                for (r, f, e, d), (s, b) in removals.items()
            ],
        )
    statement = upsert(connection, field_state)
    excluded = statement.excluded
    statement = statement.on_conflict_do_update(
        index_elements=[field_state.c.record_id, field_state.c.field],
        set_={
            name: getattr(excluded, name)
            for name in ("value", "hlc", "device_id", "seq", "op_position", "multi", "position")
        },
    )
    connection.execute(statement, states)


def _derive_reserved(connection: Connection, applied: list[StoredOp]) -> None:
    """Copy the winning `_parent`, `_group` and `_deleted` onto their records' columns."""
    record_ids = sorted(
        {s.op.record_id for s in applied if s.op.kind == SET and s.op.field in DERIVED_FIELDS}
    )
    if not record_ids:
        return
    derived: dict[str, dict] = {
        rid: {"rid": rid, "parent": None, "group": None, "deleted": False} for rid in record_ids
    }
    rows = connection.execute(
        select(field_state.c.record_id, field_state.c.field, field_state.c.value).where(
            field_state.c.record_id.in_(record_ids), field_state.c.field.in_(DERIVED_FIELDS)
        )
    )
    for row in rows:
        values = derived[row.record_id]
        if row.field == PARENT and isinstance(row.value, str):
            values["parent"] = row.value
        elif row.field == GROUP and isinstance(row.value, str):
            values["group"] = row.value
        elif row.field == DELETED:
            values["deleted"] = row.value is True
    connection.execute(
        update(records)
        .where(records.c.record_id == bindparam("rid"))
        .values(
            parent_id=bindparam("parent"),
            repeat_group=bindparam("group"),
            deleted=bindparam("deleted"),
        ),
        list(derived.values()),
    )
