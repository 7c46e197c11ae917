"""Review of records: decisions (approve, needs revision, reject), comments, quarantine release.

Each action is one small function so that the audit trail can hook one call into
each. Decisions and comments reach the inboxes of the users whose ops built the
record, through the sync store's inbox.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from server.audit.events import Action, record_event
from server.errors import ApiError, ErrorCode
from server.models import Comment, Review, ReviewDecision, User
from sync.messages import ReleaseRefused
from sync.store import tables as t
from sync.store.inbox import Item, add_items


def record_authors(session: Session, record_id: str) -> list[int]:
    """Users whose applied ops built the record or its child rows.

    A quarantined op changed nothing, and its sender may have no right to the record
    (an op naming a grid outside the sender's scope): they are told of the quarantine,
    not of what supervisors say about the record. A released op counts.
    """
    o = t.ops
    children = select(t.records.c.record_id).where(t.records.c.parent_id == record_id)
    released = select(t.op_releases.c.op_position).where(
        t.op_releases.c.op_position == o.c.position
    )
    query = (
        select(o.c.user_id)
        .distinct()
        .where(o.c.record_id.in_(children) | (o.c.record_id == record_id))
        .where(o.c.reason.is_(None) | released.exists())
    )
    return sorted(user_id for user_id in session.scalars(query) if user_id)


def _notify(session: Session, record_id: str, kind: str, payload: dict[str, Any], by: User):
    recipients = [user_id for user_id in record_authors(session, record_id) if user_id != by.id]
    add_items(
        session.connection(), [Item(user_id, kind, record_id, payload) for user_id in recipients]
    )


def decide(
    session: Session, record_id: str, reviewer: User, decision: str, comment: str = ""
) -> Review:
    """Record a review decision; it becomes the record's review status and reaches its authors."""
    if decision == ReviewDecision.NEEDS_REVISION and not comment.strip():
        message = "say what needs revising"
        raise ApiError(
            ErrorCode.VALIDATION_FAILED, message, errors=[{"path": "/comment", "message": message}]
        )
    # Decisions on one record take turns: the status is then always that of the review
    # stored last, whichever way two supervisors' requests interleave.
    session.execute(
        select(t.records.c.record_id).where(t.records.c.record_id == record_id).with_for_update()
    )
    review = Review(record_id=record_id, decision=decision, comment=comment, user_id=reviewer.id)
    session.add(review)
    session.flush()
    # review_status is set by the server, never derived from ops, so no merge rule touches it.
    session.execute(
        update(t.records)
        .where(t.records.c.record_id == record_id)
        .values(review_status=decision, updated_at=review.created_at)
    )
    _notify(
        session,
        record_id,
        "review",
        {
            "review_id": review.id,
            "decision": decision,
            "comment": comment,
            "by": reviewer.username,
        },
        reviewer,
    )
    details = {"review_id": review.id, "decision": decision, "comment": comment}
    _audit(session, Action.REVIEW_DECIDED, record_id, details, reviewer)
    return review


def _audit(session: Session, action: Action, record_id: str, details: dict, by: User) -> None:
    """One audit event about the record, visible to the supervisors of its grid."""
    grid_id = session.scalar(select(t.records.c.grid_id).where(t.records.c.record_id == record_id))
    grids = [grid_id] if grid_id is not None else []
    record_event(session, action, "record", record_id, details, user_id=by.id, grid_ids=grids)


def add_comment(
    session: Session, record_id: str, author: User, body: str, field: str | None = None
) -> Comment:
    """A comment on a record (or one field), sent to the record's authors' inboxes."""
    if not body.strip():
        message = "a comment needs text"
        raise ApiError(
            ErrorCode.VALIDATION_FAILED, message, errors=[{"path": "/body", "message": message}]
        )
    if field is not None and not _has_field(session, record_id, field):
        message = f"the record's form has no field {field!r}"
        raise ApiError(
            ErrorCode.VALIDATION_FAILED, message, errors=[{"path": "/field", "message": message}]
        )
    comment = Comment(record_id=record_id, field=field, body=body, user_id=author.id)
    session.add(comment)
    session.flush()
    _notify(
        session,
        record_id,
        "comment",
        {"comment_id": comment.id, "field": field, "body": body, "by": author.username},
        author,
    )
    details = {"comment_id": comment.id, "field": field, "body": body}
    _audit(session, Action.REVIEW_COMMENTED, record_id, details, author)
    return comment


def _has_field(session: Session, record_id: str, name: str) -> bool:
    """Whether the record holds this field, or the form version it was last edited
    under defines it (a field left empty so far can be commented on too)."""
    from server.form_store import get_version

    held = select(t.field_state.c.field).where(
        t.field_state.c.record_id == record_id, t.field_state.c.field == name
    )
    if session.scalar(held) is not None:
        return True
    form_id, version = record_form(session, record_id=record_id)
    definition = get_version(session, form_id, version)
    return definition is not None and name in definition.fields


def release_op(session: Session, position: int, admin: User) -> dict[str, Any]:
    """Release one quarantined op: it applies as if it had from the start."""
    from server.sync_service import release_quarantined

    row = session.execute(
        select(t.ops.c.device_id, t.ops.c.seq).where(t.ops.c.position == position)
    ).one()
    try:
        result, conflicts = release_quarantined(session, [(row.device_id, row.seq)], admin)
    except ReleaseRefused as refused:
        raise ApiError(ErrorCode.CONFLICT, f"cannot release: {refused.why}") from None
    return {"released": len(result.released), "conflicts": conflicts}


def record_form(
    session: Session, record_id: str | None = None, conflict_id: int | None = None
) -> tuple[str, int]:
    """(form id, version) of a record, or of the record a conflict is on."""
    r = t.records
    query = select(r.c.form_id, r.c.form_version)
    if conflict_id is not None:
        query = query.join(t.conflicts, t.conflicts.c.record_id == r.c.record_id).where(
            t.conflicts.c.id == conflict_id
        )
    else:
        query = query.where(r.c.record_id == record_id)
    form_id, version = session.execute(query).one()
    return form_id, version


def edit_record(session: Session, editor: User, record_id: str, changes: list[dict], rules):
    """Edits made on the server for `editor`: ops of their server device, synced like any."""
    from server.sync_service import Edit, submit_edits

    record = session.execute(select(t.records).where(t.records.c.record_id == record_id)).one()
    edits = [
        Edit(
            record_id,
            record.form_id,
            record.form_version,
            record.grid_id,
            change["field"],
            change["kind"],
            change.get("value"),
        )
        for change in changes
    ]
    return submit_edits(session, editor, edits, rules).to_wire()


def resolve(session: Session, user: User, conflict_id: int, choice: dict[str, Any], rules):
    """Settle a conflict by keeping one side's value (`keep`: its op position) or a new value."""
    from server.sync_service import ResolutionRefused, resolve_conflict

    if "keep" in choice:
        conflict = session.execute(select(t.conflicts).where(t.conflicts.c.id == conflict_id)).one()
        if choice["keep"] not in (conflict.first_position, conflict.second_position):
            message = "keep must name one of the conflict's two op positions"
            raise ApiError(
                ErrorCode.VALIDATION_FAILED, message, errors=[{"path": "/keep", "message": message}]
            )
        value = session.scalar(select(t.ops.c.value).where(t.ops.c.position == choice["keep"]))
    else:
        value = choice["value"]
    try:
        return resolve_conflict(session, user, conflict_id, value, rules).to_wire()
    except ResolutionRefused as refused:
        if refused.reason:  # the value: the request's session is rolled back, nothing kept
            path = "/keep" if "keep" in choice else "/value"
            errors = [{"path": path, "message": refused.detail}]
            raise ApiError(ErrorCode.VALIDATION_FAILED, refused.why, errors=errors) from None
        raise ApiError(ErrorCode.CONFLICT, refused.why) from None
