"""Conflict detection by `base`: two devices set one field without seeing each other.

Two applied `set` ops x and y on the same record field are in conflict when they come
from different devices, are concurrent (`x.position > y.base` and
`y.position > x.base`: neither device had pulled the other's op when it edited), and
their values differ. A conflict is one such pair; the state still converges to the
winner rule, the pair is only recorded. A conflict is resolved by any applied `set`
of the field whose base is at or after both positions: an edit made having seen both.

Add/remove ops never conflict: the add-wins rule is the intended outcome of a
concurrent add and remove. The definition uses arrival positions only, so it does not
depend on arrival order, batching, duplication or on when a quarantined op is
released (`find_conflicts` is the specification).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from sync.ops import SET, StoredOp, canonical_json

OpId = tuple[str, int]


def concurrent(x: StoredOp, y: StoredOp) -> bool:
    """Neither op's device had seen the other op when it edited."""
    return x.position > y.base and y.position > x.base


def collide(x: StoredOp, y: StoredOp) -> bool:
    """Whether two applied ops on the same record field form a conflict."""
    return (
        x.op.kind == SET
        and y.op.kind == SET
        and x.op.device_id != y.op.device_id
        and x.op.record_id == y.op.record_id
        and x.op.field == y.op.field
        and concurrent(x, y)
        and values_differ(x.op.value, y.op.value)
    )


def values_differ(a: object, b: object) -> bool:
    """Whether two values differ as JSON (1 and 1.0 and True all differ).

    Two strings, the everyday case, are compared as they are: their canonical texts
    are equal exactly when they are.
    """
    if type(a) is str and type(b) is str:
        return a != b
    return canonical_json(a) != canonical_json(b)


def resolves(edit: StoredOp, first_position: int, second_position: int) -> bool:
    """Whether an applied set of the field was made having seen both sides."""
    return edit.op.kind == SET and edit.base >= max(first_position, second_position)


@dataclass(frozen=True, slots=True)
class Conflict:
    """One conflicting pair; `first` is the op that arrived first."""

    record_id: str
    field: str
    first: OpId
    second: OpId
    first_position: int
    second_position: int
    winner: OpId

    @classmethod
    def of(cls, x: StoredOp, y: StoredOp) -> Conflict:
        first, second = (x, y) if x.position < y.position else (y, x)
        one, two = first.op, second.op
        winner = one if one.key > two.key else two  # two ops' keys never tie
        return cls(
            record_id=one.record_id,
            field=one.field,
            first=one.op_id,
            second=two.op_id,
            first_position=first.position,
            second_position=second.position,
            winner=winner.op_id,
        )

    @property
    def ident(self) -> tuple[str, str, OpId, OpId]:
        """What identifies a conflict across replicas (ids are local)."""
        return (self.record_id, self.field, self.first, self.second)


def find_conflicts(ops: Iterable[StoredOp]) -> dict[Conflict, bool]:
    """The specification: every conflict among the applied ops, mapped to resolved-ness."""
    by_field: dict[tuple[str, str], list[StoredOp]] = defaultdict(list)
    seen: set[OpId] = set()
    for stored in ops:
        if stored.applied and stored.op.kind == SET and stored.op.op_id not in seen:
            seen.add(stored.op.op_id)
            by_field[(stored.op.record_id, stored.op.field)].append(stored)
    out: dict[Conflict, bool] = {}
    for edits in by_field.values():
        for i, x in enumerate(edits):
            for y in edits[i + 1 :]:
                if collide(x, y):
                    conflict = Conflict.of(x, y)
                    out[conflict] = any(
                        resolves(z, conflict.first_position, conflict.second_position)
                        for z in edits
                    )
    return out
