"""The in-memory reference replicas: the merge rules applied one op at a time.

`ServerReplica` is the executable form of docs/sync.md ("A push, exactly"): the SQL
store must give the same acknowledged seqs, counts, quarantine, conflicts, positions
and pull pages on every history. `DeviceReplica` (in `sync.device_replica`) is a
device: local edits, the pending-op queue, pulled state.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass

from sync import hlc
from sync.conflicts import Conflict, collide, resolves
from sync.device_replica import DeviceReplica
from sync.merge import FieldValue, Key, Merged
from sync.messages import (
    Change,
    CursorExpired,
    Page,
    PushResult,
    QuarantinedOp,
    ReleaseRefused,
    ReleaseResult,
    SeqGap,
    SeqReuse,
    left_scope_message,
)
from sync.ops import SET, Op, OpStatus, StoredOp
from sync.reasons import (
    NOT_RELEASABLE,
    FieldCheck,
    FormLookup,
    Gate,
    quarantine_reason,
    server_millis,
)

__all__ = ["ConflictRow", "DeviceReplica", "ServerReplica"]

Slot = tuple[str, str]
OpId = tuple[str, int]


@dataclass(slots=True)
class ConflictRow:
    """A conflict as the server keeps it: a local id and whether it is resolved."""

    conflict_id: int
    conflict: Conflict
    resolved: bool


class ServerReplica:
    """A sync server held in memory: positions, the op log, merged state, conflicts."""

    def __init__(
        self,
        lookup_form: FormLookup,
        check_field: FieldCheck,
        *,
        wall: Callable[[], int] = hlc.wall_millis,
        max_skew_ms: int = 600_000,
    ) -> None:
        self.lookup_form = lookup_form
        self.check_field = check_field
        self.wall = wall
        self.max_skew_ms = max_skew_ms
        # The server's HLC: raised to every applied op's HLC, ticked once per push that
        # stores something; pulls and retries only read it.
        self.clock = hlc.Clock(wall)
        self.position = 0
        self.max_applied_hlc = 0
        self.ops: dict[OpId, StoredOp] = {}
        self.acked: dict[str, int] = defaultdict(int)
        self.merged = Merged()
        self.changed_at: dict[Slot, int] = {}
        # (position, record_id, grid before, grid after) of every record move
        self.moves: list[tuple[int, str, int, int]] = []
        self.record_form: dict[str, str] = {}
        self.fields_of: dict[str, set[str]] = defaultdict(set)
        self.edits: dict[Slot, list[StoredOp]] = defaultdict(list)  # applied sets, by field
        self.conflicts: dict[tuple, ConflictRow] = {}
        self.conflicts_by_slot: dict[Slot, list[ConflictRow]] = defaultdict(list)

    # -- push -------------------------------------------------------------------------

    def push(
        self, device_id: str, ops: Iterable[Op], scope: Collection[int] | None = None
    ) -> PushResult:
        """Apply one push as one transaction; raises SeqReuse or SeqGap having stored nothing."""
        sent = sorted(ops, key=lambda op: op.seq)
        if any(op.device_id != device_id for op in sent):
            raise ValueError("every op of a push belongs to the pushing device")
        new_ops, duplicate = self._split_new(device_id, sent)
        gate = Gate(
            self.lookup_form,
            self.check_field,
            scope,
            server_millis(self.wall(), self.max_applied_hlc),
            self.max_skew_ms,
        )
        grids_before = self._grids(op.record_id for op in new_ops)
        # Each record's head (key, grid) as this push's applied ops leave it so far:
        # an op is checked against its record's grid with the earlier ones applied.
        heads: dict[str, tuple[Key, int]] = {}
        stored: list[StoredOp] = []
        quarantined: list[QuarantinedOp] = []
        for op in new_ops:
            self.position += 1
            head = heads.get(op.record_id) or self._head(op.record_id)
            record_grid = None if head is None else head[1]
            verdict = quarantine_reason(op, gate, self.record_form.get(op.record_id), record_grid)
            if op.record_id not in self.record_form and self.lookup_form(op.form_id) is not None:
                self.record_form[op.record_id] = op.form_id
            if verdict is None:
                entry = StoredOp(op, self.position)
                if head is None or op.key > head[0]:
                    heads[op.record_id] = (op.key, op.grid_id)
            else:
                entry = StoredOp(
                    op, self.position, OpStatus.QUARANTINED, verdict.reason, verdict.detail
                )
                quarantined.append(
                    QuarantinedOp(op.seq, op.record_id, op.field, verdict.reason, verdict.detail)
                )
            self.ops[op.op_id] = entry
            stored.append(entry)
        if new_ops:
            self.acked[device_id] = new_ops[-1].seq
        applied = [entry for entry in stored if entry.applied]
        touched = self._merge(applied)
        for slot, position in touched.items():
            self.changed_at[slot] = position
        self._restamp(grids_before)
        conflicts = self._detect_conflicts(applied)
        return PushResult(
            acked_seq=self.acked[device_id],
            applied=len(applied),
            duplicate=duplicate,
            quarantined=quarantined,
            conflicts=conflicts,
            server_hlc=self.clock.now() if new_ops else self.read_clock(),
            stored=stored,
        )

    def _split_new(self, device_id: str, sent: list[Op]) -> tuple[list[Op], int]:
        """The ops not stored yet, and how many were duplicates; checks reuse and gaps."""
        acked = self.acked[device_id]
        first_by_seq: dict[int, Op] = {}
        duplicate = 0
        for op in sent:
            earlier = self.ops.get(op.op_id)
            known = earlier.op if earlier is not None else first_by_seq.get(op.seq)
            if known is not None:
                if known.content() != op.content():
                    raise SeqReuse(op.seq)
                duplicate += 1
                continue
            first_by_seq[op.seq] = op
        new_ops = list(first_by_seq.values())
        for offset, op in enumerate(new_ops, start=1):
            if op.seq != acked + offset:
                raise SeqGap(acked + 1)
        return new_ops, duplicate

    # -- merging ----------------------------------------------------------------------

    def _merge(self, applied: list[StoredOp]) -> dict[Slot, int]:
        """Merge applied ops; the fields whose state changed, with their new position."""
        touched: dict[Slot, int] = {}
        for entry in applied:
            op = entry.op
            slot = (op.record_id, op.field)
            before = self.merged.registers.get(slot)
            self.merged.apply(entry)
            self.fields_of[op.record_id].add(op.field)
            self.clock.observe(op.hlc)
            self.max_applied_hlc = max(self.max_applied_hlc, op.hlc)
            if op.kind == SET:
                self.edits[slot].append(entry)
                winner = self.merged.registers[slot]
                # A field with applied adds/removes shows its choice set: a set op on it
                # is kept (and may conflict) but changes nothing a device sees.
                if winner is not before and slot not in self.merged.choice_sets:
                    touched[slot] = winner.position
            else:
                touched[slot] = max(touched.get(slot, 0), entry.position)
        return touched

    def _head(self, record_id: str) -> tuple[Key, int] | None:
        """The key and grid of the record's highest-keyed applied op (None: it has none)."""
        head = self.merged.records.get(record_id)
        return None if head is None else (head.top, head.grid_id)

    def _grids(self, record_ids: Iterable[str]) -> dict[str, int]:
        """The current grid of each of these records that has one."""
        heads = self.merged.records
        return {rid: heads[rid].grid_id for rid in set(record_ids) if rid in heads}

    def _restamp(self, grids_before: dict[str, int]) -> None:
        """Give every field of a record whose grid changed a fresh position."""
        moved = self._moved(grids_before)
        for rid in moved:
            for name in sorted(self.fields_of[rid]):
                self.position += 1
                self.changed_at[(rid, name)] = self.position
        self._note_moves(moved)

    def _moved(self, grids_before: dict[str, int]) -> dict[str, tuple[int, int]]:
        """The records whose grid changed: (grid before, grid after), by record_id."""
        heads = self.merged.records
        return {
            rid: (grid, heads[rid].grid_id)
            for rid, grid in sorted(grids_before.items())
            if heads[rid].grid_id != grid
        }

    def _note_moves(self, moved: dict[str, tuple[int, int]]) -> None:
        """Each move at a fresh position, after the restamped fields."""
        for rid, (before, after) in moved.items():
            self.position += 1
            self.moves.append((self.position, rid, before, after))

    def _detect_conflicts(self, applied: list[StoredOp]) -> list[Conflict]:
        """Record the new conflicts these ops take part in, and resolve what they settle.

        They are reported by (second, first) position, as the SQL store reports them: an
        order of the log alone, not of when each side was applied (a release applies an
        op after later ones).
        """
        found: list[Conflict] = []
        mine = {entry.op.op_id for entry in applied}
        for entry in applied:
            if entry.op.kind != SET:
                continue
            slot = (entry.op.record_id, entry.op.field)
            for other in self.edits[slot]:
                if other.op.op_id in mine and other.position >= entry.position:
                    continue  # each pair inside this batch once
                if collide(entry, other):
                    conflict = Conflict.of(entry, other)
                    if conflict.ident in self.conflicts:
                        continue
                    settled = any(
                        resolves(z, conflict.first_position, conflict.second_position)
                        for z in self.edits[slot]
                    )
                    row = ConflictRow(len(self.conflicts) + 1, conflict, settled)
                    self.conflicts[conflict.ident] = row
                    self.conflicts_by_slot[slot].append(row)
                    found.append(conflict)
            for row in self.conflicts_by_slot[slot]:
                if not row.resolved and resolves(
                    entry, row.conflict.first_position, row.conflict.second_position
                ):
                    row.resolved = True
        return sorted(found, key=lambda c: (c.second_position, c.first_position))

    # -- release ----------------------------------------------------------------------

    def release(self, op_ids: Iterable[OpId]) -> ReleaseResult:
        """Apply quarantined ops as if they had applied on arrival; all or nothing."""
        chosen: list[StoredOp] = []
        for op_id in dict.fromkeys(op_ids):
            entry = self.ops.get(op_id)
            if entry is None:
                raise ReleaseRefused(op_id, "no such op")
            if entry.applied:
                raise ReleaseRefused(op_id, "not quarantined")
            if entry.reason in NOT_RELEASABLE:
                raise ReleaseRefused(op_id, f"{entry.reason} ops cannot be released")
            chosen.append(entry)
        chosen.sort(key=lambda entry: entry.position)
        released = [
            entry._replace(status=OpStatus.APPLIED, reason=None, detail="") for entry in chosen
        ]
        for entry in released:
            self.ops[entry.op.op_id] = entry
        grids_before = self._grids(entry.op.record_id for entry in released)
        touched = self._merge(released)
        moved = self._moved(grids_before)
        slots = set(touched) | {(rid, name) for rid in moved for name in self.fields_of[rid]}
        for slot in sorted(slots):
            self.position += 1
            self.changed_at[slot] = self.position
        self._note_moves(moved)
        return ReleaseResult(released, self._detect_conflicts(released))

    # -- restart ----------------------------------------------------------------------

    def restarted(self) -> ServerReplica:
        """A new replica holding only what a durable store keeps of this one.

        Kept, as the SQL store's tables keep them: the op log with each op's status,
        the position counter and the two HLCs (`sync_clock`), each field's change
        position, the record moves, each record's form and the conflicts with their
        status. The merged state, the per-field edits and the acknowledged seqs are
        rebuilt from the log. It shares no container with this replica.
        """
        fresh = ServerReplica(
            self.lookup_form, self.check_field, wall=self.wall, max_skew_ms=self.max_skew_ms
        )
        fresh.clock = hlc.Clock(self.wall, self.clock.peek())
        fresh.position = self.position
        fresh.max_applied_hlc = self.max_applied_hlc
        fresh.changed_at = dict(self.changed_at)
        fresh.moves = list(self.moves)
        fresh.record_form = dict(self.record_form)
        for row in sorted(self.conflicts.values(), key=lambda row: row.conflict_id):
            kept = ConflictRow(row.conflict_id, row.conflict, row.resolved)
            fresh.conflicts[kept.conflict.ident] = kept
            fresh.conflicts_by_slot[(kept.conflict.record_id, kept.conflict.field)].append(kept)
        log = self.log()
        for entry in log:
            fresh.ops[entry.op.op_id] = entry
            fresh.acked[entry.op.device_id] = max(fresh.acked[entry.op.device_id], entry.op.seq)
        # Merging is order-free; the clock and the highest applied HLC are already at or
        # above every applied op's HLC, so only the indexes change.
        fresh._merge([entry for entry in log if entry.applied])
        return fresh

    # -- reading ----------------------------------------------------------------------

    def pull(self, scope: Collection[int] | None, cursor: int, limit: int) -> Page:
        """The in-scope field states that changed after `cursor`, oldest first; raises
        CursorExpired when the cursor is ahead or a record left the scope after it."""
        if cursor > self.position:
            raise CursorExpired(cursor, self.position)
        self._check_left(scope, cursor)
        return self._page(scope, cursor, limit)

    def snapshot(self, scope: Collection[int] | None, cursor: int, limit: int) -> Page:
        """A page of the whole scope's state; like pull, but never expired."""
        return self._page(scope, min(cursor, self.position), limit)

    def _check_left(self, scope: Collection[int] | None, cursor: int) -> None:
        """Refuse a pull cursor after which a record moved out of the scope and stayed
        out: the device may hold it, and only a snapshot drops it."""
        if scope is None or cursor == 0:
            return
        heads = self.merged.records
        for position, rid, before, _after in self.moves:
            if position > cursor and before in scope and heads[rid].grid_id not in scope:
                raise CursorExpired(cursor, self.position, left_scope_message(cursor))

    def _page(self, scope: Collection[int] | None, cursor: int, limit: int) -> Page:
        heads = self.merged.records
        later = sorted(
            (position, slot)
            for slot, position in self.changed_at.items()
            if position > cursor and (scope is None or heads[slot[0]].grid_id in scope)
        )
        page = [self.change(slot, position) for position, slot in later[:limit]]
        more = len(later) > limit
        # The last page brings the device up to the newest position: a cursor that
        # stopped at the last change would leave later ops that changed nothing
        # "unseen", and the device's next edits would look concurrent with them.
        next_cursor = page[-1].position if more else self.position
        return Page(page, next_cursor, more, self.read_clock())

    def read_clock(self) -> int:
        """A fresh server HLC for a reply that changes nothing (not saved)."""
        return hlc.Clock(self.wall, self.clock.peek()).now()

    def change(self, slot: Slot, position: int) -> Change:
        """One field's current state as a pull change."""
        head = self.merged.records[slot[0]]
        value = self.state_of(slot)
        return Change(
            slot[0],
            head.form_id,
            head.form_version,
            head.grid_id,
            slot[1],
            value.value,
            value.hlc,
            value.device_id,
            position,
        )

    def state_of(self, slot: Slot) -> FieldValue:
        """One field's merged value."""
        choices = self.merged.choice_sets.get(slot)
        if choices is not None:
            assert choices.top is not None
            return FieldValue(choices.value(), choices.top[0], choices.top[1])
        winner = self.merged.registers[slot]
        return FieldValue(winner.value, winner.hlc, winner.device_id)

    def state(self, scope: Collection[int] | None = None) -> dict[Slot, FieldValue]:
        """Every in-scope field's merged value."""
        heads = self.merged.records
        return {
            slot: self.state_of(slot)
            for slot in self.changed_at
            if scope is None or heads[slot[0]].grid_id in scope
        }

    def log(self) -> list[StoredOp]:
        """Every stored op, in arrival order."""
        return sorted(self.ops.values(), key=lambda entry: entry.position)

    def quarantined(self) -> list[StoredOp]:
        """The ops held in quarantine, in arrival order."""
        return [entry for entry in self.log() if not entry.applied]
