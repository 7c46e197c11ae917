"""The per-field merge rules, as pure data and functions.

- A `set` op is a last-writer-wins register: the op with the highest
  `(hlc, device_id)` (then seq) is the field's winner.
- `add`/`remove` ops form an add-wins set of choices. Every add is a tag. A remove
  covers the adds of its choice that it had seen: those at positions up to its `base`,
  and the same device's earlier adds (lower seq). A choice is present while one of its
  add tags is not covered.
- `_deleted` is an ordinary register holding a boolean: `set _deleted true` is a
  tombstone, and a later `set _deleted false` revives.

Only applied ops take part; a released op takes part with its original arrival
position, which is what makes a release equal to having applied it from the start.
The result of applying a set of ops never depends on their order, batching or
duplication (`fold` is the specification; the replicas and the SQL store apply the
same rules incrementally).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sync.ops import ADD, DELETED, REMOVE, SET, Op, StoredOp

Key = tuple[int, str, int]


def beats(incoming: Op, current_key: Key | None) -> bool:
    """Whether an op wins over the current winner (None: the field is empty)."""
    return current_key is None or incoming.key > current_key


@dataclass(frozen=True, slots=True)
class Winner:
    """A register's winning op: its value and its place in the winner order."""

    value: Any
    hlc: int
    device_id: str
    seq: int
    position: int

    @property
    def key(self) -> Key:
        return (self.hlc, self.device_id, self.seq)

    @classmethod
    def of(cls, stored: StoredOp) -> Winner:
        op = stored.op
        return cls(op.value, op.hlc, op.device_id, op.seq, stored.position)


def merge_register(current: Winner | None, incoming: StoredOp) -> Winner | None:
    """The register's new winner if the incoming op wins, else None (no change)."""
    if beats(incoming.op, current.key if current else None):
        return Winner.of(incoming)
    return None


@dataclass(slots=True)
class Removals:
    """What the applied removes of one choice cover: monotone, so order is irrelevant."""

    max_base: int = 0
    max_seq_by_device: dict[str, int] = field(default_factory=dict)

    def covers(self, device_id: str, seq: int, position: int) -> bool:
        """Whether an add (by device, seq, arrival position) is covered."""
        return position <= self.max_base or seq < self.max_seq_by_device.get(device_id, 0)

    def record(self, remove: StoredOp) -> None:
        self.max_base = max(self.max_base, remove.base)
        device = remove.op.device_id
        self.max_seq_by_device[device] = max(self.max_seq_by_device.get(device, 0), remove.op.seq)


@dataclass(slots=True)
class ChoiceSet:
    """An add-wins set: live add tags and the removals seen, per choice."""

    tags: dict[str, dict[tuple[str, int], int]] = field(default_factory=dict)
    removals: dict[str, Removals] = field(default_factory=dict)
    top: Key | None = None  # the highest applied op on this field, for pull's hlc

    def apply(self, stored: StoredOp) -> None:
        """Apply one add or remove; applying the same op twice changes nothing."""
        op = stored.op
        choice = op.value
        if self.top is None or op.key > self.top:
            self.top = op.key
        removals = self.removals.get(choice)
        if op.kind == ADD:
            if removals is None or not removals.covers(op.device_id, op.seq, stored.position):
                self.tags.setdefault(choice, {})[op.op_id] = stored.position
            return
        if removals is None:
            removals = self.removals[choice] = Removals()
        removals.record(stored)
        live = self.tags.get(choice)
        if live:
            for tag, position in list(live.items()):
                if removals.covers(tag[0], tag[1], position):
                    del live[tag]
            if not live:
                del self.tags[choice]

    def value(self) -> list[str]:
        """The current choices, sorted by code point (the wire's order)."""
        return sorted(self.tags)


@dataclass(frozen=True, slots=True)
class FieldValue:
    """A field's merged state, without delivery metadata: what convergence compares."""

    value: Any
    hlc: int
    device_id: str


@dataclass(slots=True)
class RecordHead:
    """A record's derived columns: form, and the version and grid of its winning op."""

    form_id: str
    form_version: int
    grid_id: int
    top: Key

    def absorb(self, op: Op) -> bool:
        """Take the op's version and grid if it is the record's new winner."""
        if op.key > self.top:
            self.top = op.key
            self.form_version = op.form_version
            self.grid_id = op.grid_id
            return True
        return False


def is_set_kind(kind: str) -> bool:
    """Whether a kind belongs to the add-wins set (as opposed to the register)."""
    return kind in (ADD, REMOVE)


@dataclass
class Merged:
    """The merged state of a set of applied ops: what every replica must converge to."""

    registers: dict[tuple[str, str], Winner] = field(default_factory=dict)
    choice_sets: dict[tuple[str, str], ChoiceSet] = field(default_factory=dict)
    records: dict[str, RecordHead] = field(default_factory=dict)

    def apply(self, stored: StoredOp) -> None:
        """Apply one applied op (the caller has filtered out quarantined ones)."""
        op = stored.op
        slot = (op.record_id, op.field)
        if op.kind == SET:
            new = merge_register(self.registers.get(slot), stored)
            if new is not None:
                self.registers[slot] = new
        else:
            self.choice_sets.setdefault(slot, ChoiceSet()).apply(stored)
        head = self.records.get(op.record_id)
        if head is None:
            self.records[op.record_id] = RecordHead(op.form_id, op.form_version, op.grid_id, op.key)
        else:
            head.absorb(op)

    def fields(self) -> dict[tuple[str, str], FieldValue]:
        """Every field's merged value, keyed by (record_id, field)."""
        out = {
            slot: FieldValue(winner.value, winner.hlc, winner.device_id)
            for slot, winner in self.registers.items()
        }
        for slot, choices in self.choice_sets.items():
            assert choices.top is not None
            out[slot] = FieldValue(choices.value(), choices.top[0], choices.top[1])
        return out

    def deleted(self, record_id: str) -> bool:
        """Whether the record is tombstoned by its winning `_deleted`."""
        winner = self.registers.get((record_id, DELETED))
        return bool(winner and winner.value is True)


def fold(ops: Iterable[StoredOp]) -> Merged:
    """The specification: the merged state of the applied ops among `ops`, in any order."""
    merged = Merged()
    seen: set[tuple[str, int]] = set()
    for stored in ops:
        if stored.applied and stored.op.op_id not in seen:
            seen.add(stored.op.op_id)
            merged.apply(stored)
    return merged
