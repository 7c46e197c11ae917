"""Background work of the audit trail: the daily anchor of the chain head."""

from __future__ import annotations

from typing import Any

from celery import shared_task
from celery.schedules import crontab

from server.audit.anchors import write_anchor

ANCHOR_TASK = "fieldsync.audit.anchor"

# For the beat schedule (`celery_app.conf.beat_schedule.update(BEAT_SCHEDULE)`):
# an anchor every day at 02:30 UTC, when field devices are mostly done syncing.
BEAT_SCHEDULE = {
    "audit-anchor-daily": {"task": ANCHOR_TASK, "schedule": crontab(hour=2, minute=30)},
}


@shared_task(name=ANCHOR_TASK)
def anchor_chain() -> dict[str, Any] | None:
    """Write the chain head to blob storage; safe to run twice (two anchors, both true)."""
    from server.blobs import blob_store
    from server.db import database

    with database().session() as session:
        anchor = write_anchor(session, blob_store())
    if anchor is None:
        return None
    return {"event_id": anchor.event_id, "hash": anchor.hash, "key": anchor.name}
