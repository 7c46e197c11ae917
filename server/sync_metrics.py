"""Sync counters on /metrics: ops applied, duplicate and quarantined by reason, conflicts,
and push and pull latency."""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Callable

from prometheus_client import Counter, Histogram
from sqlalchemy import event
from sqlalchemy.orm import Session

from sync.messages import PushResult

OPS = Counter(
    "fieldsync_sync_ops_total",
    "Ops received by push, by outcome (applied, duplicate, quarantined).",
    ["outcome"],
)
QUARANTINED = Counter(
    "fieldsync_sync_quarantined_total",
    "Ops quarantined, by reason code.",
    ["reason"],
)
CONFLICTS = Counter("fieldsync_sync_conflicts_total", "Conflicts recorded.")
RELEASED = Counter("fieldsync_sync_released_total", "Quarantined ops released.")
LATENCY = Histogram(
    "fieldsync_sync_duration_seconds",
    "Time to handle a sync call, by operation (push, pull, snapshot), refusals included.",
    ["operation"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
CHANGES = Counter(
    "fieldsync_sync_changes_served_total",
    "Field states served by pull and snapshot.",
    ["operation"],
)


def count_push(session: Session, result: PushResult) -> None:
    """Count a push's outcome once `session` commits it (nothing if it rolls back: a
    conflict resolution refused after its edit was pushed stores nothing)."""
    _on_commit(session, lambda: _count_push(result))


def _count_push(result: PushResult) -> None:
    OPS.labels("applied").inc(result.applied)
    OPS.labels("duplicate").inc(result.duplicate)
    OPS.labels("quarantined").inc(len(result.quarantined))
    for reason, count in Tally(q.reason for q in result.quarantined).items():
        QUARANTINED.labels(str(reason)).inc(count)
    CONFLICTS.inc(len(result.conflicts))


def count_release(session: Session, released: int, conflicts: int) -> None:
    """Count a release once `session` commits it."""

    def count() -> None:
        RELEASED.inc(released)
        CONFLICTS.inc(conflicts)

    _on_commit(session, count)


def count_changes(operation: str, served: int) -> None:
    CHANGES.labels(operation).inc(served)


def observe(operation: str, seconds: float) -> None:
    LATENCY.labels(operation).observe(seconds)


_PENDING = "fieldsync.sync_metrics.pending"


def _on_commit(session: Session, count: Callable[[], None]) -> None:
    session.info.setdefault(_PENDING, []).append(count)


@event.listens_for(Session, "after_commit")
def _count_committed(session: Session) -> None:
    for count in session.info.pop(_PENDING, ()):
        count()


@event.listens_for(Session, "after_rollback")
def _drop_rolled_back(session: Session) -> None:
    session.info.pop(_PENDING, None)
