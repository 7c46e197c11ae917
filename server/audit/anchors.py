"""Chain heads written to blob storage, so a rewrite of the whole database shows.

An anchor is a small JSON blob under `audit/anchors/` naming one event id and its
hash. Verify with anchors checks that the chain still passes through every anchored
hash; whoever rewrites the database must also rewrite every anchor, which lives
elsewhere (S3 in production, ideally a bucket with object lock).
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.audit.chain import canonical_json, format_time
from server.audit.events import HEAD_ID, Action, record_event
from server.audit.verify import Anchor
from server.blobs import BlobStore
from server.models import AuditChainHead, utcnow

PREFIX = "audit/anchors/"
FORMAT = 1


class AnchorError(ValueError):
    """An anchor blob that cannot be read as one."""


def write_anchor(session: Session, store: BlobStore, user_id: int | None = None) -> Anchor | None:
    """Write the current chain head to blob storage and record that in the chain.

    Returns None when the chain is still empty. The head is read without the append
    lock: any committed head is a valid anchor.
    """
    head = session.execute(
        select(AuditChainHead.last_event_id, AuditChainHead.head_hash).where(
            AuditChainHead.id == HEAD_ID
        )
    ).one_or_none()
    if head is None or head[0] == 0:
        return None
    event_id, event_hash = int(head[0]), head[1]
    now = utcnow()
    key = f"{PREFIX}{now:%Y-%m-%dT%H%M%S}Z-{event_id:012d}.json"
    body = {"format": FORMAT, "event_id": event_id, "hash": event_hash, "at": format_time(now)}
    store.put(key, canonical_json(body).encode(), content_type="application/json")
    record_event(
        session,
        Action.AUDIT_ANCHORED,
        "audit_chain",
        event_id,
        {"hash": event_hash, "key": key},
        user_id=user_id,
    )
    return Anchor(event_id, event_hash, key)


def read_anchors(store: BlobStore) -> list[Anchor]:
    """Every anchor in blob storage, oldest event first."""
    return sorted(_parse_all(store, store.keys(PREFIX)), key=lambda a: a.event_id)


def _parse_all(store: BlobStore, keys: Iterable[str]) -> Iterable[Anchor]:
    for key in keys:
        try:
            body = json.loads(store.read(key))
            anchor = Anchor(int(body["event_id"]), str(body["hash"]), key)
        except (ValueError, KeyError, TypeError) as exc:
            raise AnchorError(f"anchor {key} is not readable: {exc}") from exc
        if anchor.event_id < 1 or len(anchor.hash) != 64:
            raise AnchorError(f"anchor {key} names no event: {body}")
        yield anchor
