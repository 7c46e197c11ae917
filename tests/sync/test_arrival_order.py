"""The same pushes, arriving in another order, give the same state, the same quarantine
and the same conflicts: on the reference replica and on the SQL store.

Positions follow arrival, so a conflict is compared by what it is rather than by its
`Conflict.ident`, whose `first` is whichever op arrived first: the record, the field,
the unordered pair of ops, its winner and whether it is resolved.

Some rules read the log as it stands when an op arrives (docs/sync.md, "Quarantine"),
and a history can make them depend on the order. The histories here hold those fixed,
as a real deployment mostly does:

- `clock_ahead` compares an op's HLC with the server's clock, which applied ops raise:
  every op is stamped before the server's (fixed) wall clock, or an hour after it.
- A record's grid is that of its highest-keyed applied op, and `grid_out_of_scope`
  also looks at it: every op that may apply names its record's own grid, so no record
  moves; the ops held for scope name grid 3, which is in no device's scope that holds
  fewer than all grids.
- A record's form is that of its first stored op: every op names its record's form.
- A remove covers the adds up to its base, and two ops conflict when each arrived
  after the other's base: positions depend on the order, so every op is made blind
  (base 0), except those of a last push made having seen everything, which arrives
  last in every order.

Each device's pushes arrive in seq order, since seqs have no gaps.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sync import hlc
from sync.messages import PushResult
from sync.ops import ADD, DELETED, REMOVE, SET, Op
from sync.reasons import Reason
from tests.sync.backends import ReplicaBackend, SqlBackend, quick_engine
from tests.sync.world import BAD_EDITS, RECORDS, VALID_EDITS

START_MS = 1_700_000_000_000
AHEAD = 3_600_000  # an hour past the server's clock: quarantined in every order
R0, R1, R2 = (record_id for record_id, _form in RECORDS)
FORM_OF = dict(RECORDS)
GRID_OF = {R0: 1, R1: 2, R2: 1}
OUT_OF_SCOPE_GRID = 3
# Each device's scope; the reviewer's push has seen everything and arrives last.
DEVICES: dict[str, frozenset[int] | None] = {
    "00000000-0000-4000-d000-00000000000a": None,
    "00000000-0000-4000-d000-00000000000b": None,
    "00000000-0000-4000-d000-00000000000c": frozenset({1, 2}),
    "00000000-0000-4000-d000-00000000000d": frozenset({1}),
    "00000000-0000-4000-d000-00000000000e": None,
}
A, B, C, D, REVIEWER = DEVICES


def wall() -> int:
    return START_MS


@dataclass(frozen=True)
class Batch:
    """One push: a device's ops in seq order; `sees_all` ops take as their base the
    newest position when the push arrives."""

    device: str
    ops: tuple[Op, ...]
    sees_all: bool = False

    def at(self, newest: int) -> list[Op]:
        return [op.with_(base=newest) for op in self.ops] if self.sees_all else list(self.ops)


class Sender:
    """A device making ops: consecutive seqs, and rising HLCs a minute before the
    server's clock (`offset_ms` later), or an hour after it for an op `ahead`."""

    def __init__(self, device: str, offset_ms: int = 0) -> None:
        self.device = device
        self.seq = 0
        self.clock = hlc.pack(START_MS - 60_000 + offset_ms)

    def op(
        self,
        record: str,
        name: str,
        kind: str,
        value: Any,
        *,
        grid: int | None = None,
        version: int = 1,
        ahead: bool = False,
    ) -> Op:
        self.seq += 1
        self.clock += 1
        stamp = hlc.pack(START_MS + AHEAD) + self.seq if ahead else self.clock
        grid = GRID_OF[record] if grid is None else grid
        form = FORM_OF[record]
        return Op(self.device, self.seq, record, form, version, grid, name, kind, value, stamp, 0)

    def push(self, *ops: Op, sees_all: bool = False) -> Batch:
        return Batch(self.device, ops, sees_all)


# -- outcomes -----------------------------------------------------------------------


@dataclass
class Outcome:
    """What must not depend on the arrival order."""

    state: dict
    changes: dict  # the snapshot's changes by field, without their positions
    stored: dict  # every stored op, by id, with what became of it: (op, applied, reason, detail)
    conflicts: dict  # (record, field, pair of ops, winner) -> resolved
    reported_conflicts: list = field(default_factory=list)  # as the pushes reported them
    reported_quarantine: list = field(default_factory=list)


def pair_of(record_id: str, name: str, first, second, winner) -> tuple:
    return (record_id, name, frozenset({first, second}), winner)


def conflicts_of(server: ReplicaBackend) -> dict[tuple, bool]:
    """Each conflict as the order cannot change it, with whether it is resolved."""
    ops = {entry.op.op_id: entry.op for entry in server.log()}
    out = {}
    for (record_id, name, first, second), resolved in server.conflicts().items():
        winner = max(first, second, key=lambda op_id: ops[op_id].key)
        out[pair_of(record_id, name, first, second, winner)] = resolved
    return out


def deliver(server: ReplicaBackend, batches: Iterable[Batch]) -> Outcome:
    """Push the batches in this order; the outcome."""
    results: list[PushResult] = []
    for batch in batches:
        ops = batch.at(server.newest())
        results.append(server.push(batch.device, ops, DEVICES[batch.device]))
    snapshot = server.snapshot(None, 0, 10_000)
    assert not snapshot.more
    outcome = Outcome(
        state=server.state(),
        changes={
            (change.record_id, change.field): replace(change, position=0)
            for change in snapshot.changes
        },
        stored={
            entry.op.op_id: (entry.op, entry.applied, entry.reason, entry.detail)
            for entry in server.log()
        },
        conflicts=conflicts_of(server),
    )
    for batch, result in zip(batches, results, strict=True):
        for c in result.conflicts:
            outcome.reported_conflicts.append(
                pair_of(c.record_id, c.field, c.first, c.second, c.winner)
            )
        for q in result.quarantined:
            outcome.reported_quarantine.append(((batch.device, q.seq), q.reason, q.detail))
    return outcome


def quarantine(outcome: Outcome) -> dict[tuple[str, int], tuple[str, str]]:
    return {
        op_id: (reason, detail)
        for op_id, (_op, applied, reason, detail) in outcome.stored.items()
        if not applied
    }


def check_same(first: Outcome, other: Outcome) -> None:
    assert other.state == first.state
    assert other.changes == first.changes
    assert quarantine(other) == quarantine(first)
    assert other.stored == first.stored
    assert other.conflicts == first.conflicts
    # every conflict and every quarantined op is reported once, by the push that made it
    for outcome in (first, other):
        assert Counter(outcome.reported_conflicts) == Counter(outcome.conflicts.keys())
        reported = {
            op_id: (reason, detail) for op_id, reason, detail in outcome.reported_quarantine
        }
        assert len(reported) == len(outcome.reported_quarantine)
        assert reported == quarantine(outcome)


# -- one history, by hand -----------------------------------------------------------


def written_history() -> list[Batch]:
    """Four devices and a reviewer; the batches in the order they were made."""
    a, b, c, d, reviewer = (Sender(device, n) for n, device in enumerate(DEVICES))
    return [
        a.push(
            a.op(R0, "head_name", SET, "wang"),
            a.op(R0, "size", SET, 2),
            a.op(R0, "tags", ADD, "a"),
            a.op(R0, "tags", ADD, "b"),
            a.op(R2, "severity", SET, "low"),
        ),
        a.push(
            a.op(R0, "tags", REMOVE, "b"),  # covers the device's own add
            a.op(R1, "head_name", SET, "li"),
            a.op(R1, "tags", ADD, "a"),
        ),
        b.push(
            b.op(R0, "head_name", SET, "zhao"),  # blind: conflicts with a
            b.op(R0, "size", SET, 2),  # the same value: no conflict
            b.op(R0, "tags", ADD, "c"),
            b.op(R0, "tags", REMOVE, "a"),  # blind: covers none of a's adds
            b.op(R2, "severity", SET, "high"),
        ),
        b.push(b.op(R1, DELETED, SET, True)),
        c.push(
            c.op(R0, "size", SET, 5),  # conflicts with a and b
            c.op(R1, DELETED, SET, False),  # conflicts with b's tombstone
            c.op(R0, "head_name", SET, "wu", grid=OUT_OF_SCOPE_GRID),
            c.op(R0, "tags", ADD, "zz"),  # not a choice of the form
            c.op(R2, "depth", SET, "deep"),
            c.op(R0, "phone", SET, "123"),  # not in version 1
        ),
        d.push(
            d.op(R0, "head_name", SET, "sun"),  # conflicts with a and b
            d.op(R1, "head_name", SET, "ma"),  # R1 is in grid 2
            d.op(R0, "size", SET, 7, ahead=True),
        ),
        reviewer.push(
            reviewer.op(R0, "head_name", SET, "zhou"),
            reviewer.op(R0, "tags", REMOVE, "c"),
            reviewer.op(R2, "severity", SET, "medium"),
            sees_all=True,
        ),
    ]


WRITTEN_ORDERS = [
    (0, 1, 2, 3, 4, 5, 6),
    (5, 4, 2, 0, 3, 1, 6),
    (4, 2, 3, 5, 0, 1, 6),
]


def in_order(history: list[Batch], order: Iterable[int]) -> list[Batch]:
    return [history[index] for index in order]


def check_written_outcome(outcome: Outcome) -> None:
    """What the history must come to, whatever the order."""
    assert quarantine(outcome) == {
        (C, 3): (Reason.GRID_OUT_OF_SCOPE, "grid 3 is outside your grids"),
        (C, 4): (Reason.UNKNOWN_CHOICE, "'zz'"),
        (C, 5): (Reason.WRONG_TYPE, "number expected"),
        (C, 6): (Reason.UNKNOWN_FIELD, "phone"),
        (D, 2): (Reason.GRID_OUT_OF_SCOPE, "grid 2 is outside your grids"),
        (D, 3): (Reason.CLOCK_AHEAD, f"clock {AHEAD} ms ahead of the server"),
    }
    conflicts = {
        (rid, name, tuple(sorted(pair))): resolved
        for (rid, name, pair, _winner), resolved in outcome.conflicts.items()
    }
    assert conflicts == {
        (R0, "head_name", ((A, 1), (B, 1))): True,
        (R0, "head_name", ((A, 1), (D, 1))): True,
        (R0, "head_name", ((B, 1), (D, 1))): True,
        (R0, "size", ((A, 2), (C, 1))): False,
        (R0, "size", ((B, 2), (C, 1))): False,
        (R1, DELETED, ((B, 6), (C, 2))): False,
        (R2, "severity", ((A, 5), (B, 5))): True,
    }
    values = {slot: value.value for slot, value in outcome.state.items()}
    assert values[(R0, "head_name")] == "zhou"
    assert values[(R0, "tags")] == ["a"]
    assert values[(R1, DELETED)] is False  # c's edit has the higher HLC
    assert values[(R0, "size")] == 5


def test_the_written_history_comes_to_the_same_in_every_order_on_the_replica():
    history = written_history()
    outcomes = [deliver(ReplicaBackend(wall), in_order(history, order)) for order in WRITTEN_ORDERS]
    check_written_outcome(outcomes[0])
    for outcome in outcomes[1:]:
        check_same(outcomes[0], outcome)


@pytest.fixture
def engine(database) -> Iterator:
    engine = quick_engine(database)
    yield engine
    engine.dispose()


def test_the_written_history_comes_to_the_same_in_every_order_in_the_store(engine):
    history = written_history()
    reference = deliver(ReplicaBackend(wall), history)
    for order in WRITTEN_ORDERS:
        check_same(reference, deliver(SqlBackend(engine, wall), in_order(history, order)))


# -- generated histories ------------------------------------------------------------


@st.composite
def device_ops(
    draw: st.DrawFn,
    sender: Sender,
    scope: frozenset[int] | None,
    count: int,
    mistakes: bool = True,
) -> list[Op]:
    """Ops of one device: edits, with `mistakes` some invalid, some out of its scope or
    ahead. Most are on one record, so that devices often set the same field."""
    out = []
    faults = ["invalid", "out of scope", "ahead"] if mistakes else []
    for _ in range(count):
        record = draw(st.sampled_from((R0, R0, R1, R2)))
        kind_of_op = draw(st.sampled_from(["valid"] * 6 + faults))
        if kind_of_op == "invalid" and FORM_OF[record] == "household":
            name, kind, value, version, _reason = draw(st.sampled_from(BAD_EDITS))
            out.append(sender.op(record, name, kind, value, version=version))
            continue
        name, kind, values = draw(st.sampled_from(VALID_EDITS[FORM_OF[record]]))
        value = draw(st.sampled_from(values))
        version = draw(st.sampled_from((1, 2))) if FORM_OF[record] == "household" else 1
        # only a device that holds fewer than all grids can name one outside its scope
        grid = OUT_OF_SCOPE_GRID if kind_of_op == "out of scope" and scope is not None else None
        out.append(
            sender.op(
                record, name, kind, value, grid=grid, version=version, ahead=kind_of_op == "ahead"
            )
        )
    return out


@st.composite
def histories(draw: st.DrawFn) -> tuple[list[Batch], list[Batch]]:
    """Each device's pushes, then two orders of arrival keeping each device's in seq
    order, each followed by the reviewer's push (when there is one)."""
    by_device: dict[str, list[Batch]] = {}
    for offset, (device, scope) in enumerate(list(DEVICES.items())[:-1]):
        sender = Sender(device, draw(st.integers(0, 3), label="clock offset") + offset)
        batches = []
        for _ in range(draw(st.integers(1, 3), label="pushes")):
            count = draw(st.integers(1, 4), label="ops")
            batches.append(sender.push(*draw(device_ops(sender, scope, count))))
        by_device[device] = batches
    turns = [device for device, batches in by_device.items() for _ in batches]
    first = _interleave(by_device, turns)
    second = _interleave(by_device, draw(st.permutations(turns), label="arrival"))
    reviewer = Sender(REVIEWER, 10)  # having pulled everything, its clock is ahead of all
    count = draw(st.integers(0, 4), label="reviewer ops")
    made = draw(device_ops(reviewer, None, count, mistakes=False))
    last = [reviewer.push(*made, sees_all=True)] if made else []
    return first + last, second + last


def _interleave(by_device: dict[str, list[Batch]], turns: Iterable[str]) -> list[Batch]:
    """The devices' batches in the order of the turns: a device's k-th turn sends its
    k-th batch."""
    taken = dict.fromkeys(by_device, 0)
    out = []
    for device in turns:
        out.append(by_device[device][taken[device]])
        taken[device] += 1
    return out


@settings(max_examples=150)
@given(histories())
def test_generated_histories_come_to_the_same_in_any_order_on_the_replica(orders):
    first, second = orders
    check_same(deliver(ReplicaBackend(wall), first), deliver(ReplicaBackend(wall), second))


@settings(max_examples=30, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(orders=histories())
def test_generated_histories_come_to_the_same_in_any_order_in_the_store(engine, orders):
    first, second = orders
    reference = deliver(ReplicaBackend(wall), first)
    check_same(reference, deliver(SqlBackend(engine, wall), first))
    check_same(reference, deliver(SqlBackend(engine, wall), second))
