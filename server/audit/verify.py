"""Walking the chain and the ops it covers, streaming, to find the first broken link.

One pass over `audit_events` in id order checks each event's link (its prev_hash is
the previous event's hash) and its hash. Push events are gathered into windows of
bounded size; each window's ops are read back with one statement and hashed. After
the walk the chain head row must name the last event, and (on a full walk) every
stored op must lie inside some push event's range and the `op_releases` rows must be
exactly the releases the `quarantine.released` events state. Memory holds one window,
one number per device and one entry per release, whatever the number of ops.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import Connection, func, select

from server.audit.chain import GENESIS_HASH, chain_hash, event_bytes, new_ops_digest
from server.audit.covered_ops import OpRange, digest_ranges, op_lines, utc_text
from server.audit.covered_releases import (
    Mismatch,
    Release,
    first_mismatch,
    stated_release,
    stored_releases,
)
from server.audit.driver import stream
from server.audit.events import HEAD_ID, Action
from server.models import AuditChainHead, AuditEvent
from sync.store.tables import ops

WINDOW_OPS = 20_000
WINDOW_PUSHES = 256
_PUSH = str(Action.SYNC_PUSH)
_COVERING = frozenset((_PUSH, str(Action.QUARANTINE_RELEASED)))


@dataclass(frozen=True)
class Break:
    """The first place where the trail does not hold."""

    kind: str  # hash | link | missing | head | ops | continuity | uncovered_op | release | anchor
    event_id: int | None
    expected: str | None
    found: str | None
    detail: str


@dataclass(frozen=True)
class Anchor:
    """A chain head written outside the database: event id and its hash."""

    event_id: int
    hash: str
    name: str = ""


@dataclass
class Report:
    """What verify checked and, if anything, the first break."""

    events: int = 0
    ops: int = 0
    first_id: int | None = None
    last_id: int = 0
    head_hash: str = GENESIS_HASH
    anchors: int = 0
    broken: Break | None = None

    @property
    def ok(self) -> bool:
        return self.broken is None


@dataclass
class _Push:
    event_id: int
    op_range: OpRange
    count: int
    ops_hash: str


@dataclass
class _Window:
    pushes: list[_Push] = field(default_factory=list)
    ops: int = 0


def verify_chain(
    connection: Connection,
    *,
    since: dt.datetime | None = None,
    anchors: Sequence[Anchor] = (),
) -> Report:
    """Verify the events (from `since`, else all), the ops they cover and the anchors."""
    if since is not None:
        # Stored times are UTC; SQLite compares them as text, so the bound must be UTC too.
        since = since.astimezone(dt.UTC) if since.tzinfo else since.replace(tzinfo=dt.UTC)
    if connection.dialect.name == "postgresql":
        # One snapshot for the whole walk: appends that commit meanwhile are not seen.
        connection = connection.execution_options(isolation_level="REPEATABLE READ")
    with connection.begin():
        return _Walk(connection, anchors).run(since)


class _Walk:
    def __init__(self, connection: Connection, anchors: Sequence[Anchor]) -> None:
        self.connection = connection
        self.anchors = sorted(anchors, key=lambda a: a.event_id)
        self.report = Report()
        self.window = _Window()
        self.covered: dict[str, int] = {}
        self.releases: dict[int, Release] = {}
        self.full = True
        self.anchor_after_walk: Anchor | None = None

    def run(self, since: dt.datetime | None) -> Report:
        report = self.report
        head = self.connection.execute(
            select(AuditChainHead.last_event_id, AuditChainHead.head_hash).where(
                AuditChainHead.id == HEAD_ID
            )
        ).one_or_none()
        first_id, prev_hash = self._start(since)
        report.first_id = first_id
        report.last_id, report.head_hash = first_id - 1, prev_hash
        broken = self._check_anchors_before(first_id) or self._walk(first_id, prev_hash)
        broken = broken or self._flush()
        broken = broken or self._check_head(head)
        broken = broken or self._check_anchors_after()
        if broken is None and self.full:
            broken = self._check_uncovered_ops() or self._check_releases()
        report.broken = broken
        return report

    def _start(self, since: dt.datetime | None) -> tuple[int, str]:
        if since is None:
            return 1, GENESIS_HASH
        self.full = False
        first = self.connection.scalar(
            select(func.min(AuditEvent.id)).where(AuditEvent.occurred_at >= since)
        )
        if first is None:
            last = self.connection.scalar(select(func.max(AuditEvent.id)))
            first = (last or 0) + 1
        if first == 1:
            return 1, GENESIS_HASH
        before = self.connection.scalar(select(AuditEvent.hash).where(AuditEvent.id == first - 1))
        # Without the event before, trust the first event's own prev_hash; the gap is
        # a full walk's business.
        if before is None:
            before = self.connection.scalar(
                select(AuditEvent.prev_hash).where(AuditEvent.id == first)
            )
        return first, before or GENESIS_HASH

    def _walk(self, first_id: int, prev_hash: str) -> Break | None:
        report = self.report
        statement = (
            select(
                AuditEvent.id,
                utc_text(AuditEvent.occurred_at, self.connection.dialect.name),
                AuditEvent.user_id,
                AuditEvent.device_id,
                AuditEvent.action,
                AuditEvent.target_type,
                AuditEvent.target_id,
                AuditEvent.details,
                AuditEvent.prev_hash,
                AuditEvent.hash,
            )
            .where(AuditEvent.id >= first_id)
            .order_by(AuditEvent.id)
        )
        expected_id = first_id
        anchors = iter(a for a in self.anchors if a.event_id >= first_id)
        anchor = next(anchors, None)
        rows = stream(self.connection, statement)
        for event_id, at, user_id, device_id, action, kind, target, details, prev, stored in rows:
            if event_id != expected_id:
                return self._earlier_ops_break() or Break(
                    "missing",
                    expected_id,
                    prev_hash,
                    None,
                    f"event {expected_id} is missing; the chain resumes at event {event_id}",
                )
            if prev != prev_hash:
                return self._earlier_ops_break() or Break(
                    "link",
                    event_id,
                    prev_hash,
                    prev,
                    f"event {event_id} does not chain to event {event_id - 1}",
                )
            content = event_bytes(event_id, at, user_id, device_id, action, kind, target, details)
            computed = chain_hash(prev_hash, content)
            if computed != stored:
                return self._earlier_ops_break() or Break(
                    "hash",
                    event_id,
                    computed,
                    stored,
                    f"event {event_id}'s content does not match its hash",
                )
            # Several anchors may name one event (a retried anchoring): all must match.
            while anchor is not None and anchor.event_id == event_id:
                if anchor.hash != computed:
                    return self._earlier_ops_break() or _anchor_break(anchor, computed)
                report.anchors += 1
                anchor = next(anchors, None)
            if action in _COVERING:
                broken = self._add_covering(event_id, action, user_id, target, details)
                if broken is not None:
                    return broken
            prev_hash = computed
            expected_id += 1
        report.events = expected_id - first_id
        report.last_id, report.head_hash = expected_id - 1, prev_hash
        self.anchor_after_walk = anchor
        return None

    def _add_push(self, event_id: int, device_id: str, details_json: str) -> Break | None:
        try:
            push = _claimed_push(event_id, device_id, details_json)
        except ValueError as exc:
            return self._earlier_ops_break() or Break(
                "ops", event_id, None, None, f"push event {event_id}: {exc}"
            )
        op_range = push.op_range
        last = self.covered.get(device_id)
        if (last is not None or self.full) and op_range.seq_from != (last or 0) + 1:
            return self._earlier_ops_break() or Break(
                "continuity",
                event_id,
                str((last or 0) + 1),
                str(op_range.seq_from),
                f"push event {event_id} of device {device_id} starts at seq "
                f"{op_range.seq_from}, not right after seq {last or 0}",
            )
        self.covered[device_id] = op_range.seq_to
        self.window.pushes.append(push)
        self.window.ops += push.count
        if self.window.ops >= WINDOW_OPS or len(self.window.pushes) >= WINDOW_PUSHES:
            return self._flush()
        return None

    def _add_covering(
        self, event_id: int, action: str, user_id: int | None, target: str, details: str
    ) -> Break | None:
        """Note the ops a push event covers, or the release a release event states."""
        if action == _PUSH:
            return self._add_push(event_id, target, details)
        return self._add_release(event_id, user_id, details)

    def _add_release(self, event_id: int, user_id: int | None, details: str) -> Break | None:
        try:
            release = stated_release(event_id, user_id, details)
        except ValueError as exc:
            return self._earlier_ops_break() or Break(
                "release", event_id, None, None, f"release event {event_id}: {exc}"
            )
        earlier = self.releases.setdefault(release.position, release)
        if earlier is not release:
            return self._earlier_ops_break() or Break(
                "release",
                event_id,
                None,
                release.describe(),
                f"release event {event_id} releases position {release.position} again "
                f"(event {earlier.event_id} did)",
            )
        return None

    def _earlier_ops_break(self) -> Break | None:
        """Before reporting a break in the events, check the pushes that came before it."""
        return self._flush()

    def _flush(self) -> Break | None:
        pushes, self.window = self.window.pushes, _Window()
        if not pushes:
            return None
        found = digest_ranges(self.connection, [push.op_range for push in pushes])
        for push in pushes:
            result = found[push.op_range]
            span = push.op_range.seq_to - push.op_range.seq_from + 1
            if result.ops_hash != push.ops_hash or not result.count == push.count == span:
                return Break(
                    "ops",
                    push.event_id,
                    push.ops_hash,
                    result.ops_hash,
                    f"the ops of push event {push.event_id} (device {push.op_range.device_id}, "
                    f"seq {push.op_range.seq_from}..{push.op_range.seq_to}: "
                    f"{push.count} claimed, {result.count} stored) do not match its hash",
                )
            self.report.ops += result.count
        return None

    def _check_head(self, head) -> Break | None:
        report = self.report
        last_id, last_hash = (0, GENESIS_HASH) if head is None else (head[0], head[1])
        if head is None and report.last_id == 0:
            return None
        if last_id > report.last_id:
            return Break(
                "missing",
                report.last_id + 1,
                last_hash,
                None,
                f"the chain head names event {last_id} but the chain ends at event "
                f"{report.last_id}",
            )
        if last_id < report.last_id or last_hash != report.head_hash:
            return Break(
                "head",
                report.last_id if last_id == report.last_id else last_id + 1,
                last_hash,
                report.head_hash,
                f"the chain head (event {last_id}) does not match the chain's last event "
                f"({report.last_id})",
            )
        return None

    def _check_anchors_before(self, first_id: int) -> Break | None:
        earlier = [a for a in self.anchors if a.event_id < first_id]
        for anchor in earlier:
            stored = self.connection.scalar(
                select(AuditEvent.hash).where(AuditEvent.id == anchor.event_id)
            )
            if stored != anchor.hash:
                return _anchor_break(anchor, stored)
            self.report.anchors += 1
        return None

    def _check_anchors_after(self) -> Break | None:
        if self.anchor_after_walk is None:
            return None
        return _anchor_break(self.anchor_after_walk, None)

    def _check_uncovered_ops(self) -> Break | None:
        statement = (
            select(ops.c.device_id, func.min(ops.c.seq), func.max(ops.c.seq), func.count())
            .group_by(ops.c.device_id)
            .order_by(ops.c.device_id)
        )
        rows = self.connection.execution_options(yield_per=5_000).execute(statement)
        try:
            for device_id, lowest, highest, count in rows:
                covered = self.covered.get(device_id, 0)
                if lowest >= 1 and highest <= covered and count == highest:
                    continue
                return self._uncovered(device_id, covered)
        finally:
            rows.close()
        return None

    def _check_releases(self) -> Break | None:
        rows = stored_releases(self.connection)
        try:
            mismatch = first_mismatch(self.releases, rows)
        finally:
            rows.close()
        return None if mismatch is None else _release_break(mismatch)

    def _uncovered(self, device_id: str, covered: int) -> Break:
        row = self.connection.execute(
            select(ops.c.seq, ops.c.position)
            .where(ops.c.device_id == device_id)
            .where((ops.c.seq > covered) | (ops.c.seq < 1))
            .order_by(ops.c.seq)
            .limit(1)
        ).one()
        digest = new_ops_digest()
        digest.update("".join(op_lines(self.connection, ops.c.position == row.position)).encode())
        return Break(
            "uncovered_op",
            None,
            None,
            digest.hexdigest(),
            f"op seq {row.seq} of device {device_id} (position {row.position}) is not "
            "covered by any push event",
        )


def _claimed_push(event_id: int, device_id: str, details_json: str) -> _Push:
    """What a `sync.push` event claims; ValueError if its details do not say it."""
    details = json.loads(details_json)
    claimed = [details.get(name) if isinstance(details, dict) else None for name in _PUSH_KEYS]
    *numbers, ops_hash = claimed
    if not all(type(number) is int for number in numbers) or not isinstance(ops_hash, str):
        raise ValueError(f"its details do not give {', '.join(_PUSH_KEYS)}")
    seq_from, seq_to, count = numbers
    return _Push(event_id, OpRange(device_id, seq_from, seq_to), count, ops_hash)


_PUSH_KEYS = ("seq_from", "seq_to", "count", "ops_hash")


def _release_break(mismatch: Mismatch) -> Break:
    stated, stored = mismatch.stated, mismatch.stored
    expected = None if stated is None else stated.describe()
    found = None if stored is None else stored.describe()
    if stored is None:
        detail = f"the release of position {stated.position} (event {stated.event_id}) is missing"
    elif stated is None:
        detail = f"op_releases holds a release of position {stored.position} that no event states"
    else:
        detail = f"the release of position {stored.position} differs from event {stated.event_id}"
    return Break("release", None if stated is None else stated.event_id, expected, found, detail)


def _anchor_break(anchor: Anchor, found: str | None) -> Break:
    where = f" ({anchor.name})" if anchor.name else ""
    return Break(
        "anchor",
        anchor.event_id,
        anchor.hash,
        found,
        f"event {anchor.event_id} does not match the anchor{where}",
    )
