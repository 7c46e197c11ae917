"""A Hypothesis state machine: 2 to 5 devices editing and syncing against one server.

The server is anything with the `Backend` methods: the reference replica, or the SQL
store checked against a reference replica step by step. Every invariant of DESIGN.md
is checked after each step or once the devices have quiesced.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import replace
from typing import Any, Protocol

from hypothesis import event
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from sync.conflicts import find_conflicts
from sync.device_replica import DeviceReplica
from sync.merge import fold
from sync.messages import CursorExpired, Page, PushResult, ReleaseRefused, ReleaseResult
from sync.ops import SET, Op, OpStatus, StoredOp
from sync.reasons import NOT_RELEASABLE, Reason
from tests.sync.backends import ReplicaBackend
from tests.sync.world import (
    BAD_EDITS,
    GRIDS,
    RECORDS,
    VALID_EDITS,
    choices_by_definition,
    edits,
)

START_MS = 1_700_000_000_000
DEVICE_IDS = [f"00000000-0000-4000-a000-00000000000{n}" for n in range(1, 6)]
SCOPES = [None, None, (1, 2), (1,), (2, 3)]
SKEWS = [0] * 8 + [-3_000, 400_000, 1_500_000]  # the last is over the 10 minutes allowed
HOUSEHOLDS = [n for n, (_id, form) in enumerate(RECORDS) if form == "household"]
Slot = tuple[str, str]


def bucket(count: int) -> str:
    """A coarse label for statistics."""
    return "0" if count == 0 else "1-4" if count < 5 else "5-19" if count < 20 else "20+"


class Backend(Protocol):
    """What the machine needs of a server."""

    def push(self, device_id: str, ops: list[Op], scope: Any) -> PushResult: ...
    def pull(self, scope: Any, cursor: int, limit: int) -> Page: ...
    def snapshot(self, scope: Any, cursor: int, limit: int) -> Page: ...
    def release(self, op_ids: list[tuple[str, int]]) -> ReleaseResult: ...
    def log(self) -> list[StoredOp]: ...
    def state(self, scope: Any = None) -> dict: ...
    def conflicts(self) -> dict[tuple, bool]: ...
    def newest(self) -> int: ...
    def restart(self) -> None: ...
    def verify(self) -> None: ...
    def close(self) -> None: ...


class SyncMachine(RuleBasedStateMachine):
    """Devices edit, push (split, duplicated, replies lost), pull, restart and quiesce."""

    backend_factory: Callable[[Callable[[], int]], Backend] = staticmethod(ReplicaBackend)

    def __init__(self) -> None:
        super().__init__()
        self.now = START_MS
        self.server: Backend = self.backend_factory(lambda: self.now)
        self.devices: list[DeviceReplica] = []
        self.scopes: list[Any] = []
        self.made: list[dict[int, Op]] = []  # every op each device made, by seq
        self.acked: list[int] = []
        self.skews: list[int] = []
        self.reported: dict[tuple, int] = {}  # conflict ident -> times reported
        self.sent = 0  # ops sent by every push, and their outcomes counted by the replies
        self.counted = 0
        self.server_hlc = 0  # the highest server HLC any reply carried
        self.releases = 0

    def teardown(self) -> None:
        try:
            if self.devices:
                self.quiesce()
                assert self.counted == self.sent
                log = self.server.log()
                conflicts = self.server.conflicts()
                event(f"ops stored: {bucket(len(log))}")
                event(f"ops quarantined: {bucket(sum(not s.applied for s in log))}")
                event(f"conflicts: {bucket(len(conflicts))}, resolved: {any(conflicts.values())}")
                event(f"releases: {bucket(self.releases)}")
        finally:
            self.server.close()

    @initialize(
        count=st.integers(2, 5),
        scopes=st.lists(st.sampled_from(SCOPES), min_size=5, max_size=5),
        skews=st.lists(st.sampled_from(SKEWS), min_size=5, max_size=5),
        first_edits=st.lists(st.lists(edits(), max_size=4), min_size=5, max_size=5),
    )
    def start(self, count: int, scopes: list, skews: list[int], first_edits: list) -> None:
        """The devices, each with its scope and clock skew, and a first day offline."""
        for n in range(count):
            self.skews.append(skews[n])
            self.devices.append(DeviceReplica(DEVICE_IDS[n], wall=self.wall(n)))
            self.scopes.append(None if scopes[n] is None else frozenset(scopes[n]))
            self.made.append({})
            self.acked.append(0)
        for n in range(count):
            self.edit(n, first_edits[n], stray=False)

    def device(self, i: int) -> tuple[int, DeviceReplica]:
        n = i % len(self.devices)
        return n, self.devices[n]

    def wall(self, n: int) -> Callable[[], int]:
        """Device n's wall clock: the machine's time with the device's skew."""
        skew = self.skews[n]
        return lambda: self.now + skew

    # -- rules --------------------------------------------------------------------------

    @rule(
        i=st.integers(0, 4),
        batch=st.lists(edits(), min_size=1, max_size=4),
        stray=st.sampled_from([False] * 7 + [True]),
    )
    def edit(self, i: int, batch: list, stray: bool) -> None:
        """A few edits made offline; most stay within the device's scope."""
        n, dev = self.device(i)
        scope = self.scopes[n]
        for edit in batch:
            if scope is not None and not stray and edit.grid_id not in scope:
                edit = replace(edit, grid_id=sorted(scope)[edit.grid_id % len(scope)])
            seen = max((c.hlc for c in dev.confirmed.values()), default=0)
            op = dev.edit(*edit.args())
            # an edit made after pulling another always outranks it
            assert op.hlc > seen
            assert op.base == dev.cursor
            self.made[n][op.seq] = op

    @rule(i=st.integers(0, 4))
    def edit_with_another_form(self, i: int) -> None:
        n, dev = self.device(i)
        op = dev.edit(RECORDS[0][0], "hazard", 1, 1, "severity", SET, "low")
        self.made[n][op.seq] = op

    @rule(
        i=st.integers(0, 4),
        limit=st.integers(1, 6),
        resend=st.integers(0, 3),
        lose_reply=st.sampled_from([False, False, False, True]),
    )
    def push(self, i: int, limit: int, resend: int, lose_reply: bool) -> None:
        n, dev = self.device(i)
        fresh = dev.outbox(limit)
        # a batch may repeat ops the server already holds (a retry after a lost reply)
        already = [
            self.made[n][seq]
            for seq in range(max(1, self.acked[n] - resend + 1), self.acked[n] + 1)
        ]
        new = [op for op in fresh if op.seq > self.acked[n]]
        repeated = already + [op for op in fresh if op.seq <= self.acked[n]]
        if not fresh and not already:
            return
        result = self.server.push(dev.device_id, repeated + new, self.scopes[n])
        self.count_push(result, len(repeated) + len(new))
        assert result.duplicate == len(repeated)
        assert result.applied + len(result.quarantined) == len(new)
        assert result.acked_seq == (new[-1].seq if new else self.acked[n])
        assert [s.op.seq for s in result.stored] == [op.seq for op in new]
        self.acked[n] = result.acked_seq
        for conflict in result.conflicts:
            self.reported[conflict.ident] = self.reported.get(conflict.ident, 0) + 1
        if not lose_reply:
            dev.on_pushed(result)

    @rule(
        i=st.integers(0, 4),
        limit=st.integers(1, 8),
        lose_page=st.sampled_from([False, False, False, True]),
    )
    def pull(self, i: int, limit: int, lose_page: bool) -> None:
        n, dev = self.device(i)
        try:
            page = self.server.pull(self.scopes[n], dev.cursor, limit)
        except CursorExpired:
            self.start_over(n, limit)
            return
        self.check_page(n, dev.cursor, page)
        if not lose_page:
            dev.apply_page(page)

    @rule(i=st.integers(0, 4))
    def sync(self, i: int) -> None:
        """What a device does at night: push everything, then pull everything."""
        n, _ = self.device(i)
        self.push_all(n)
        self.read_all(n, 50, snapshot=False)

    @rule(pick=st.integers(0, 1000), i=st.integers(0, 4))
    def resolve_a_conflict(self, pick: int, i: int) -> None:
        """Someone who has seen both values enters one: the conflict is resolved."""
        open_ones = sorted(ident for ident, done in self.server.conflicts().items() if not done)
        if not open_ones:
            return
        chosen = open_ones[pick % len(open_ones)]
        record_id, field = chosen[:2]
        form_id = self.record_form(record_id)
        values = [v for f, k, v in VALID_EDITS[form_id] if f == field and k == SET]
        grid_id = self.record_grid(record_id)
        candidates = [
            n
            for n in range(len(self.devices))
            if self.skews[n] < 600_000 and (self.scopes[n] is None or grid_id in self.scopes[n])
        ]
        if not values or not candidates:
            return  # a released op on a field no valid edit names, or nobody may edit it
        n = candidates[i % len(candidates)]
        self.push_all(n)
        self.read_all(n, 50, snapshot=False)
        op = self.devices[n].edit(record_id, form_id, 1, grid_id, field, SET, values[0][0])
        self.made[n][op.seq] = op
        self.push_all(n)
        assert self.server.conflicts()[chosen]

    @rule(pick=st.integers(0, 1000), i=st.integers(0, 4), j=st.integers(1, 4))
    def edit_blind_on_both_sides(self, pick: int, i: int, j: int) -> None:
        """Two devices set one field to different values, neither having seen the other's
        edit: a conflict between exactly those two ops."""
        n = i % len(self.devices)
        m = (n + j) % len(self.devices)
        if n == m:
            return
        self.push_all(n)  # pending edits may move records: settle them first
        self.push_all(m)

        def may_edit(k: int, grid_id: int) -> bool:
            scope = self.scopes[k]
            return self.skews[k] < 600_000 and (scope is None or grid_id in scope)

        shared = [p for p in self.placed_records() if may_edit(n, p[2]) and may_edit(m, p[2])]
        if not shared:
            return
        record_id, form_id, grid_id = shared[pick % len(shared)]
        fields = [(f, values) for f, k, values in VALID_EDITS[form_id] if k == SET]
        field, values = fields[pick % len(fields)]
        first = self.devices[n].edit(record_id, form_id, 1, grid_id, field, SET, values[0])
        second = self.devices[m].edit(record_id, form_id, 1, grid_id, field, SET, values[1])
        self.made[n][first.seq], self.made[m][second.seq] = first, second
        self.push_all(n)
        self.push_all(m)
        pair = {first.op_id, second.op_id}
        assert any(
            ident[:2] == (record_id, field) and {ident[2], ident[3]} == pair
            for ident in self.server.conflicts()
        ), (record_id, field, pair)
        event("two blind edits of one field: a conflict")

    def record_grid(self, record_id: str) -> int:
        """The record's current grid: that of its highest-keyed applied op."""
        applied = [s.op for s in self.server.log() if s.applied and s.op.record_id == record_id]
        return max(applied, key=lambda op: op.key).grid_id

    def record_form(self, record_id: str) -> str:
        """The record's form: that of its first stored op (every test form is known), which
        need not be the form the world meant for it (`edit_with_another_form`)."""
        return next(s.op.form_id for s in self.server.log() if s.op.record_id == record_id)

    def placed_records(self) -> list[tuple[str, str, int]]:
        """(record_id, its form, its current grid) of every record with an applied op."""
        placed = []
        for record_id, _form in RECORDS:
            if any(s.applied for s in self.server.log() if s.op.record_id == record_id):
                placed.append((record_id, self.record_form(record_id), self.record_grid(record_id)))
        return placed

    def edit_placed(self, n: int, record_id: str, form_id: str, grid_id: int, pick: int) -> Op:
        """A valid set of one of the record's fields, naming `grid_id`, pushed at once."""
        sets = [(f, v) for f, k, values in VALID_EDITS[form_id] if k == SET for v in values]
        field, value = sets[pick % len(sets)]
        op = self.devices[n].edit(record_id, form_id, 1, grid_id, field, SET, value)
        self.made[n][op.seq] = op
        self.push_all(n)
        return op

    @rule(pick=st.integers(0, 1000), i=st.integers(0, 4))
    def edit_a_record_of_another_scope(self, pick: int, i: int) -> None:
        """A device names a grid of its own for a record whose grid is not: it is held."""
        candidates = [n for n in range(len(self.devices)) if self.scopes[n] is not None]
        if not candidates:
            return
        n = candidates[i % len(candidates)]
        self.push_all(n)  # its own earlier edits may move the record
        scope = self.scopes[n]
        foreign = [placed for placed in self.placed_records() if placed[2] not in scope]
        if not foreign:
            return
        record_id, form_id, _grid = foreign[pick % len(foreign)]
        own = sorted(scope)[pick % len(scope)]
        op = self.edit_placed(n, record_id, form_id, own, pick)
        (held,) = [s for s in self.server.log() if s.op.op_id == op.op_id]
        assert not held.applied
        assert held.reason == Reason.GRID_OUT_OF_SCOPE, held.reason
        assert self.record_grid(record_id) not in scope
        event("an edit naming its own grid for a record of another scope: held")

    @rule(pick=st.integers(0, 1000), i=st.integers(0, 4))
    def move_a_record(self, pick: int, i: int) -> None:
        """A device whose scope holds a record's grid and another moves it there."""
        n = i % len(self.devices)
        if self.skews[n] >= 600_000:
            return  # its edits are held as clock_ahead
        self.push_all(n)
        self.read_all(n, 50, snapshot=False)  # its edit then outranks the record's ops
        grids = GRIDS if self.scopes[n] is None else sorted(self.scopes[n])
        movable = [placed for placed in self.placed_records() if placed[2] in grids]
        if not movable or len(grids) < 2:
            return
        record_id, form_id, grid_id = movable[pick % len(movable)]
        elsewhere = [g for g in grids if g != grid_id]
        target = elsewhere[pick % len(elsewhere)]
        op = self.edit_placed(n, record_id, form_id, target, pick)
        (moved,) = [s for s in self.server.log() if s.op.op_id == op.op_id]
        assert moved.applied, moved.reason
        assert self.record_grid(record_id) == target
        event("a record moved between two grids of one scope")

    @rule(i=st.integers(0, 4), limit=st.integers(1, 8))
    def restore_from_snapshot(self, i: int, limit: int) -> None:
        """The server no longer honours the device's cursor: 410, then a snapshot."""
        n, dev = self.device(i)
        dev.cursor = self.server.newest() + 1
        try:
            self.server.pull(self.scopes[n], dev.cursor, limit)
        except CursorExpired:
            pass
        else:
            raise AssertionError("a cursor past the newest position must answer 410")
        dev.start_snapshot()
        self.read_all(n, limit, snapshot=True)
        expected = self.server.state(self.scopes[n])
        assert {slot: c.value for slot, c in dev.confirmed.items()} == {
            slot: v.value for slot, v in expected.items()
        }

    @rule(
        pick=st.integers(0, 1000),
        i=st.integers(0, 4),
        bad=st.sampled_from(BAD_EDITS),
        record=st.sampled_from(HOUSEHOLDS),
    )
    def release(self, pick: int, i: int, bad: tuple, record: int) -> None:
        """An admin releases a held op, whatever held it; with none held, a device first
        sends one the server must hold."""
        held = [s for s in self.server.log() if not s.applied]
        if not held:
            self.send_one_to_hold(i, bad, record, pick)
            held = [s for s in self.server.log() if not s.applied]
        chosen = held[pick % len(held)]
        if chosen.reason in NOT_RELEASABLE:
            try:
                self.server.release([chosen.op.op_id])
            except ReleaseRefused:
                return
            raise AssertionError("a form_mismatch op must not be released")
        self.release_held([chosen.op.op_id])

    @rule(
        i=st.integers(0, 4),
        bad=st.sampled_from(BAD_EDITS),
        record=st.sampled_from(HOUSEHOLDS),
        pick=st.integers(0, 1000),
        several=st.integers(1, 3),
    )
    def hold_and_release(self, i: int, bad: tuple, record: int, pick: int, several: int) -> None:
        """A device sends an op the server must hold; then an admin releases one to three
        held ops at once (naming one twice when fewer are held): that one, or ones held
        before later ops arrived."""
        self.send_one_to_hold(i, bad, record, pick)
        log = self.server.log()
        releasable = [s for s in log if not s.applied and s.reason not in NOT_RELEASABLE]
        if releasable:  # empty only if the op is form_mismatch and nothing else is held
            count = len(releasable)
            self.release_held([releasable[(pick + k) % count].op.op_id for k in range(several)])

    def send_one_to_hold(self, i: int, bad: tuple, record: int, pick: int) -> None:
        """A device pushes a bad value in a grid of its own for a household: it is held."""
        n, dev = self.device(i)
        field, kind, value, version, _reason = bad
        record_id, form_id = RECORDS[record]
        grids = GRIDS if self.scopes[n] is None else sorted(self.scopes[n])
        op = dev.edit(record_id, form_id, version, grids[pick % len(grids)], field, kind, value)
        self.made[n][op.seq] = op
        self.push_all(n)
        assert not next(s for s in self.server.log() if s.op.op_id == op.op_id).applied

    def release_held(self, named: list[tuple[str, int]]) -> None:
        """Release held ops at once. The server must then be as if they had applied on
        arrival: its log the same but for their status (so the invariants hold its state
        and conflicts to the fold and `find_conflicts` of that log), the new conflicts
        reported, and every field whose value changed pulled again by a device that had
        pulled everything."""
        log, newest = self.server.log(), self.server.newest()
        before, conflicts_before = self.server.state(), self.server.conflicts()
        as_applied = {
            s.op.op_id: s._replace(status=OpStatus.APPLIED, reason=None, detail="")
            for s in log
            if s.op.op_id in named
        }
        as_if = [as_applied.get(s.op.op_id, s) for s in log]
        result = self.server.release(named)
        self.releases += 1
        assert result.released == [s for s in as_if if s.op.op_id in as_applied]
        assert self.server.log() == as_if
        new = set(self.server.conflicts()) - set(conflicts_before)
        assert {c.ident for c in result.conflicts} == new
        pairs = [(c.second_position, c.first_position) for c in result.conflicts]
        assert pairs == sorted(pairs)
        for conflict in result.conflicts:
            self.reported[conflict.ident] = self.reported.get(conflict.ident, 0) + 1
        page = self.server.pull(None, newest, 1_000)
        self.note_server_hlc(page.server_hlc)
        after = self.server.state()
        changed = {
            slot for slot in before.keys() | after.keys() if before.get(slot) != after.get(slot)
        }
        assert changed <= {(c.record_id, c.field) for c in page.changes}

    @rule(ms=st.sampled_from([1, 40, 1_000, 700_000]))
    def tick(self, ms: int) -> None:
        self.now += ms

    @rule()
    def restart_server(self) -> None:
        """The server restarts from its store alone, and answers as it did before (the
        next quiesce holds a SQL store's whole state to its model's again)."""
        before = self.server_view()
        self.server.restart()
        assert self.server_view() == before

    @rule(i=st.integers(0, 4))
    def restart_device(self, i: int) -> None:
        """The app restarts: the device reads its local store back, and shows the same."""
        n, dev = self.device(i)
        again = dev.restarted(self.wall(n))
        assert (again.view(), again.pending, again.cursor) == (dev.view(), dev.pending, dev.cursor)
        self.devices[n] = again

    @precondition(lambda self: self.devices)
    @rule()
    def quiesce(self) -> None:
        """Everyone pushes everything, then everyone pulls everything: all converge."""
        for n in range(len(self.devices)):
            self.push_all(n)
        for n in range(len(self.devices)):
            self.read_all(n, 50, snapshot=False)
        for n, dev in enumerate(self.devices):
            self.check_converged(n, dev)
            # no lost op: everything the device made is stored, exactly as made
            stored = {s.op.seq: s.op for s in self.server.log() if s.op.device_id == dev.device_id}
            assert stored == self.made[n]
        self.server.verify()
        assert set(self.reported) == set(self.server.conflicts())
        assert all(times == 1 for times in self.reported.values())

    # -- invariants ---------------------------------------------------------------------

    @invariant()
    def state_is_the_fold_of_the_log(self) -> None:
        log = self.server.log()
        shuffled = list(log)
        random.Random(len(log)).shuffle(shuffled)
        expected = fold(shuffled)  # any order of the same ops
        values = {slot: (v.value, v.hlc, v.device_id) for slot, v in self.server.state().items()}
        assert values == {
            slot: (v.value, v.hlc, v.device_id) for slot, v in expected.fields().items()
        }
        for (record_id, field), value in values.items():
            if isinstance(value[0], list):  # a multi-select: add-wins, by its definition
                assert set(value[0]) == choices_by_definition(log, record_id, field)
        spec = {c.ident: resolved for c, resolved in find_conflicts(shuffled).items()}
        assert self.server.conflicts() == spec

    @invariant()
    def seqs_are_gap_free_and_positions_unique(self) -> None:
        log = self.server.log()
        positions = [s.position for s in log]
        assert len(set(positions)) == len(positions)
        assert all(0 < p <= self.server.newest() for p in positions)
        for n, dev in enumerate(self.devices):
            seqs = sorted(s.op.seq for s in log if s.op.device_id == dev.device_id)
            assert seqs == list(range(1, self.acked[n] + 1))

    # -- helpers ------------------------------------------------------------------------

    def server_view(self) -> tuple:
        """Everything the server answers reads from: log, state, conflicts, newest."""
        return (
            self.server.log(),
            self.server.state(),
            self.server.conflicts(),
            self.server.newest(),
        )

    def note_server_hlc(self, server_hlc: int) -> None:
        """The server's clock never runs backwards, across restarts too."""
        assert server_hlc >= self.server_hlc, (server_hlc, self.server_hlc)
        self.server_hlc = server_hlc

    def count_push(self, result: PushResult, sent: int) -> None:
        """No lost op: every op sent is applied, a duplicate or quarantined, once."""
        outcomes = result.applied + result.duplicate + len(result.quarantined)
        assert outcomes == sent, (outcomes, sent)
        self.sent += sent
        self.counted += outcomes
        self.note_server_hlc(result.server_hlc)

    def push_all(self, n: int) -> None:
        dev = self.devices[n]
        while dev.pending:
            sent = dev.outbox(20)
            result = self.server.push(dev.device_id, sent, self.scopes[n])
            self.count_push(result, len(sent))
            self.acked[n] = result.acked_seq
            for conflict in result.conflicts:
                self.reported[conflict.ident] = self.reported.get(conflict.ident, 0) + 1
            dev.on_pushed(result)

    def read_all(self, n: int, limit: int, *, snapshot: bool) -> None:
        dev = self.devices[n]
        while True:
            before = dev.cursor
            read = self.server.snapshot if snapshot else self.server.pull
            try:
                page = read(self.scopes[n], dev.cursor, limit)
            except CursorExpired:
                assert not snapshot, "a snapshot is never refused"
                self.start_over(n, limit)
                return
            self.check_page(n, before, page)
            dev.apply_page(page)
            if not page.more:
                return

    def start_over(self, n: int, limit: int) -> None:
        """The device's cursor was refused because a record it may hold left its scope."""
        scope = self.scopes[n]
        assert scope is not None, "nothing leaves the scope of every grid"
        self.devices[n].start_snapshot()
        self.read_all(n, limit, snapshot=True)
        event("a record left a device's scope: snapshot")

    def check_page(self, n: int, cursor: int, page: Page) -> None:
        """Pages go forward, oldest first, stay in scope and never skip a change."""
        positions = [c.position for c in page.changes]
        assert positions == sorted(set(positions))
        assert all(cursor < p <= self.server.newest() for p in positions)
        assert page.cursor >= cursor
        assert page.cursor == (positions[-1] if page.more else self.server.newest())
        assert len(positions) > 0 or not page.more
        scope = self.scopes[n]
        assert scope is None or all(c.grid_id in scope for c in page.changes)
        assert page.server_hlc >= max((c.hlc for c in page.changes), default=0)
        self.note_server_hlc(page.server_hlc)

    def check_converged(self, n: int, dev: DeviceReplica) -> None:
        assert dev.pending == []
        assert dev.unconfirmed == []
        expected = self.server.state(self.scopes[n])
        view = dev.view()
        assert {slot: view.get(slot) for slot in expected} == {
            slot: v.value for slot, v in expected.items()
        }
        # nothing outside its scope: what left it was dropped by a snapshot
        assert set(view) == set(expected), set(view) ^ set(expected)
