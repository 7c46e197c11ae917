"""Multi-selects in the store: the add-wins sets of a batch's adds and removes.

Each touched field of a record that had state is loaded as the core's
`sync.merge.ChoiceSet` (live tags, removal summaries, top op), because the cover test
is the core's rule, and written back as tag, summary and field-state rows. A new
record's field given adds only needs no cover test (every add is live), and when one
add is all it was given, its tag and state are copied from the op inside the database.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection

from sync.merge import ChoiceSet, Removals
from sync.ops import ADD, REMOVE, StoredOp
from sync.store.batch import SLOT_KEYS, STATE_COLUMNS, STATE_NAMES, STATE_UPSERT, Batch, Slot
from sync.store.sql import (
    bulk_insert,
    by_slots,
    driver_sql,
    encode_json,
    insert_rows,
    is_postgres,
    update_rows,
)
from sync.store.tables import field_state, set_elements

TAG_COLUMNS = ("record_id", "field", "element", "add_position", "device_id", "seq")
REMOVAL_COLUMNS = (
    ("record_id", "text"),
    ("field", "text"),
    ("element", "text"),
    ("device_id", "text"),
    ("max_seq", "bigint"),
    ("max_base", "bigint"),
)
REMOVAL_UPSERT = (
    "ON CONFLICT (record_id, field, element, device_id) DO UPDATE SET "
    "max_seq = excluded.max_seq, max_base = excluded.max_base"
)
TAG_KEYS = (*SLOT_KEYS, ("element", "text"), ("add_position", "bigint"))


def choice_ops_by_slot(choice_ops: list[StoredOp]) -> dict[Slot, list[StoredOp]]:
    """The batch's adds and removes by field, each field's in position order."""
    by_slot: dict[Slot, list[StoredOp]] = {}
    for stored in choice_ops:
        by_slot.setdefault((stored.op.record_id, stored.op.field), []).append(stored)
    for batch_ops in by_slot.values():
        if len(batch_ops) > 1:
            batch_ops.sort(key=lambda entry: entry.position)
    return by_slot


def merge_choice_sets(connection: Connection, choices: Choices, known: set[str]) -> dict[Slot, int]:
    """Apply adds and removes through `ChoiceSet` (a new record's fields given adds only
    directly), then write back what changed."""
    by_slot, sets, tops, removal_rows = (
        choices.by_slot,
        choices.sets,
        choices.tops,
        choices.removal_rows,
    )

    single: list[int] = []  # positions of adds that are a new record field's only op
    new_tags: list[tuple] = []
    covered: list[tuple] = []
    removals: dict[tuple[str, str, str, str], list[int]] = {}
    new_states: list[tuple] = []
    old_states: list[tuple] = []
    touched: dict[Slot, int] = {}
    for slot, batch_ops in by_slot.items():
        last = batch_ops[-1].position
        touched[slot] = last
        if slot[0] not in known and len(batch_ops) == 1 and batch_ops[0].op.kind == ADD:
            single.append(batch_ops[0].position)
            continue
        if slot[0] not in known and all(stored.op.kind == ADD for stored in batch_ops):
            # A new record's field given adds only: every add is a live tag, the
            # highest-keyed one the top (what `ChoiceSet` would find, without it).
            top = max(batch_ops, key=_op_key)
            for stored in batch_ops:
                op = stored.op
                new_tags.append((*slot, op.value, stored.position, op.device_id, op.seq))
            value = sorted({stored.op.value for stored in batch_ops})
            head = top.op
            new_states.append(
                (*slot, value, head.hlc, head.device_id, head.seq, top.position, True, last)
            )
            continue
        choices = sets.get(slot)
        if choices is None:
            choices = ChoiceSet()
        before = _tag_positions(choices)
        top_before = choices.top
        last_remove: dict[str, int] = {}
        for stored in batch_ops:
            choices.apply(stored)
            if stored.op.kind == REMOVE:
                last_remove[stored.op.value] = stored.position
                key = (*slot, stored.op.value, stored.op.device_id)
                held = removals.setdefault(key, list(removal_rows.get(key, (0, 0))))
                held[0] = max(held[0], stored.op.seq)
                held[1] = max(held[1], stored.base)
        after = _tag_positions(choices)
        for (element, (device_id, seq)), position in after.items() - before.items():
            new_tags.append((*slot, element, position, device_id, seq))
        for (element, _tag), position in before.items() - after.items():
            covered.append((*slot, element, position, last_remove[element]))
        top_position = tops.get(slot, 0)
        if choices.top != top_before:
            top_position = next(s.position for s in batch_ops if s.op.key == choices.top)
        top = choices.top
        assert top is not None
        state = (*slot, choices.value(), top[0], top[1], top[2], top_position, True, last)
        (old_states if slot in sets else new_states).append(state)
    _write_choice_sets(connection, new_tags, covered, removals, new_states, old_states)
    if single:
        _copy_single_adds(connection, single)
    return touched


def _op_key(stored: StoredOp) -> tuple[int, str, int]:
    return stored.op.key


def _tag_positions(choices: ChoiceSet) -> dict[tuple[str, tuple[str, int]], int]:
    return {
        (element, tag): position
        for element, tags in choices.tags.items()
        for tag, position in tags.items()
    }


@dataclass(slots=True)
class Choices:
    """A batch's adds and removes by field, and the stored state of the fields that had
    one: live tags as a ChoiceSet, each top op's position, removal summaries."""

    by_slot: dict[Slot, list[StoredOp]]
    sets: dict[Slot, ChoiceSet]
    tops: dict[Slot, int]
    removal_rows: dict[tuple[str, str, str, str], tuple[int, int]]


def load_choice_sets(
    connection: Connection, by_slot: dict[Slot, list[StoredOp]], slots: list[Slot]
) -> Choices:
    """The live tags, removal summaries and top op positions of these multi-selects.

    Every slot given gets a ChoiceSet (empty when the field had no state)."""
    sets: dict[Slot, ChoiceSet] = {slot: ChoiceSet() for slot in slots}
    removal_rows: dict[tuple[str, str, str, str], tuple[int, int]] = {}
    tops: dict[Slot, int] = {}
    loaded = Choices(by_slot, sets, tops, removal_rows)
    if not slots:
        return loaded
    tag_rows = by_slots(
        connection,
        "set_elements",
        "record_id, field, element, device_id, seq, add_position",
        slots,
        "removed_position IS NULL",
    )
    for rid, name, element, device_id, seq, position in tag_rows:
        sets[(rid, name)].tags.setdefault(element, {})[(device_id, seq)] = position
    removal_rows_found = by_slots(
        connection, "set_removals", "record_id, field, element, device_id, max_seq, max_base", slots
    )
    for rid, name, element, device_id, max_seq, max_base in removal_rows_found:
        removal_rows[(rid, name, element, device_id)] = (max_seq, max_base)
        removal = sets[(rid, name)].removals.setdefault(element, Removals())
        removal.max_base = max(removal.max_base, max_base)
        removal.max_seq_by_device[device_id] = max(
            removal.max_seq_by_device.get(device_id, 0), max_seq
        )
    top_columns = "record_id, field, hlc, device_id, seq, op_position"
    top_rows = by_slots(connection, "field_state", top_columns, slots, "multi")
    for rid, name, hlc, device_id, seq, op_position in top_rows:
        tops[(rid, name)] = op_position
        sets[(rid, name)].top = (hlc, device_id, seq)
    return loaded


def _write_choice_sets(connection, new_tags, covered, removals, new_states, old_states) -> None:
    if new_tags:
        bulk_insert(connection, set_elements, TAG_COLUMNS, new_tags)
    update_rows(connection, "set_elements", TAG_KEYS, (("removed_position", "bigint"),), covered)
    insert_rows(
        connection,
        "set_removals",
        REMOVAL_COLUMNS,
        [(*key, seq, base) for key, (seq, base) in removals.items()],
        REMOVAL_UPSERT,
    )
    # A field of a record that had no state is new: no conflict is possible.
    states = [(*state[:2], encode_json(state[2]), *state[3:]) for state in new_states]
    if states:
        bulk_insert(connection, field_state, [name for name, _ in STATE_COLUMNS], states)
    states = [(*state[:2], encode_json(state[2]), *state[3:]) for state in old_states]
    insert_rows(connection, "field_state", STATE_COLUMNS, states, STATE_UPSERT)


# A new record's field whose only op is an add: its one tag and its state, copied from
# the op inside the database. The op's value is the choice's JSON string, so the state's
# value is that text in brackets (the compact encoding of a one-choice list).
_SINGLE_TAGS = (
    f"INSERT INTO set_elements ({', '.join(TAG_COLUMNS)})"  # noqa: S608
    " SELECT record_id, field, {element}, position, device_id, seq FROM ops WHERE {batch}"
)
_SINGLE_STATES = (
    f"INSERT INTO field_state ({STATE_NAMES})"  # noqa: S608
    " SELECT record_id, field, {listed}, hlc, device_id, seq, position, TRUE, position"
    " FROM ops WHERE {batch}"
)
_SINGLE_SQL = {
    True: {"element": "value #>> '{}'", "listed": "('[' || value::text || ']')::json"},
    False: {"element": "json_extract(value, '$')", "listed": "'[' || value || ']'"},
}


def _copy_single_adds(connection: Connection, positions: list[int]) -> None:
    """Tags and states of the new record fields whose only op is the add at each position."""
    where, parameters = Batch(positions=tuple(positions)).sql(connection)
    parts = _SINGLE_SQL[is_postgres(connection)]
    for template in (_SINGLE_TAGS, _SINGLE_STATES):
        statement = driver_sql(connection, template.format(batch=where, **parts))
        connection.exec_driver_sql(statement, parameters)
