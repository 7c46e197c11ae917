"""Reading records for supervisors: filtered, sorted, keyset-paged lists and one record in full.

Every query is filtered by the caller's scope in SQL (`Scope.grid_filter` on the
record's grid). Reads go straight to the sync store's tables; writes never do.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Mapping
from typing import Any

from sqlalchemy import String, and_, cast, exists, func, literal_column, or_, select
from sqlalchemy.orm import Session

from forms.unicode import UNSTORABLE
from server.errors import ApiError, ErrorCode
from server.models import Attachment, Comment, Grid, Review
from server.scope import Scope
from sync.store import tables as t

MAX_BIGINT = 2**63 - 1

r, fs, o, c = t.records, t.field_state, t.ops, t.conflicts
SORTS = {
    "changed": (r.c.changed_position, False),
    "-changed": (r.c.changed_position, True),
    "created": (r.c.created_position, False),
    "-created": (r.c.created_position, True),
}


def hlc_time(hlc: int) -> dt.datetime:
    """The wall-clock moment an HLC was stamped (its 48 high bits are milliseconds)."""
    return dt.datetime.fromtimestamp((hlc >> 16) / 1000, tz=dt.UTC)


def encode_cursor(sort_value: int, record_id: str) -> str:
    raw = json.dumps([sort_value, record_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, str]:
    """The (sort value, record id) a cursor stands for; 422 when it is not one of ours."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        value, record_id = json.loads(base64.urlsafe_b64decode(padded))
        # Sort values are positions (BIGINT); a bool is an int to Python but not to SQL.
        if type(value) is not int or not 0 <= value <= MAX_BIGINT:
            raise ValueError
        # A record id is stored text: NUL or a lone surrogate cannot be compared with one.
        if not isinstance(record_id, str) or UNSTORABLE.search(record_id):
            raise ValueError
    except (ValueError, TypeError):
        message = "not a cursor this server gave out"
        raise ApiError(
            ErrorCode.VALIDATION_FAILED, message, errors=[{"path": "/after", "message": message}]
        ) from None
    return value, record_id


def _like(text: str) -> str:
    escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _text_value(session: Session):
    """(is a JSON string, its unescaped text) for field values, on either backend."""
    if session.get_bind().dialect.name == "postgresql":
        # value #>> '{}' is the JSON value itself as unescaped text.
        whole = fs.c.value.op("#>>")(literal_column("'{}'::text[]"))
        return func.json_typeof(fs.c.value) == "string", whole
    return func.json_type(fs.c.value) == "text", func.json_extract(fs.c.value, "$")


def _flagged():
    flags = cast(r.c.validation_flags, String)
    return and_(r.c.validation_flags.is_not(None), flags.not_in(["null", "[]", "{}"]))


def _rows_of_deleted_records():
    """SELECT of the ids of the child rows, at any depth, under a deleted record or row.

    A row is its own record with its own `_deleted`, so deleting a household leaves its
    members' rows as they were; they went with the household all the same (the form
    checks skip them, `forms.validate`), and lists and exports leave them out with it.
    """
    child, parent = r.alias("child"), r.alias("parent")
    under = (
        select(child.c.record_id)
        .join(parent, child.c.parent_id == parent.c.record_id)
        .where(parent.c.deleted.is_(True))
        .cte("under_deleted", recursive=True)
    )
    deeper = r.alias("deeper")
    # UNION, not UNION ALL: `_parent` is an ordinary register, so rows can name each
    # other in a loop, and only dropping rows already found ends the recursion then.
    under = under.union(
        select(deeper.c.record_id).join(under, deeper.c.parent_id == under.c.record_id)
    )
    return select(under.c.record_id)


def list_query(scope: Scope, session: Session, filters: Mapping[str, Any]):
    """SELECT of the records matching `filters`, in scope, in the asked order (one page)."""
    sort_column, descending = SORTS[filters.get("sort", "-changed")]
    query = select(r).where(scope.grid_filter(r.c.grid_id))
    children = "parent" in filters or "group" in filters or filters.get("include_children")
    if not filters.get("include_deleted"):
        query = query.where(r.c.deleted.is_(False))
        if children:
            query = query.where(r.c.record_id.not_in(_rows_of_deleted_records()))
    if "parent" in filters:
        query = query.where(r.c.parent_id == filters["parent"])
    elif "group" in filters:  # the rows of one repeat, under any parent
        query = query.where(r.c.repeat_group == filters["group"])
    elif not children:
        query = query.where(r.c.parent_id.is_(None))
    if "form" in filters:
        query = query.where(r.c.form_id == filters["form"])
    if "grid" in filters:
        root = session.get(Grid, filters["grid"])
        if root is None or not scope.contains_path(root.path):
            raise ApiError(ErrorCode.NOT_FOUND, "no such grid")
        subtree = select(Grid.id).where(Grid.path.startswith(root.path))
        query = query.where(r.c.grid_id.in_(subtree))
    if "review" in filters:
        query = query.where(r.c.review_status == filters["review"])
    if "flagged" in filters:
        query = query.where(_flagged() if filters["flagged"] else ~_flagged())
    if "has_conflicts" in filters:
        open_conflict = exists().where(c.c.record_id == r.c.record_id, c.c.status == "open")
        query = query.where(open_conflict if filters["has_conflicts"] else ~open_conflict)
    if "author" in filters:
        query = query.where(
            exists().where(o.c.record_id == r.c.record_id, o.c.user_id == filters["author"])
        )
    if "since" in filters:
        query = query.where(r.c.updated_at >= filters["since"])
    if "until" in filters:
        query = query.where(r.c.updated_at < filters["until"])
    if filters.get("q"):
        is_text, text = _text_value(session)
        query = query.where(
            exists().where(
                fs.c.record_id == r.c.record_id,
                is_text,
                func.lower(text).like(_like(filters["q"]), "\\"),
            )
        )
    if "after" in filters:
        value, record_id = decode_cursor(filters["after"])
        if descending:
            query = query.where(
                or_(sort_column < value, and_(sort_column == value, r.c.record_id < record_id))
            )
        else:
            query = query.where(
                or_(sort_column > value, and_(sort_column == value, r.c.record_id > record_id))
            )
    order = (
        (sort_column.desc(), r.c.record_id.desc()) if descending else (sort_column, r.c.record_id)
    )
    return query.order_by(*order).limit(filters.get("limit", 50) + 1), sort_column.key


def record_summary(row: Any) -> dict[str, Any]:
    """The columns of a record row, as the API shows them."""
    return {
        "record_id": row.record_id,
        "form_id": row.form_id,
        "form_version": row.form_version,
        "grid_id": row.grid_id,
        "parent_id": row.parent_id,
        "repeat_group": row.repeat_group,
        "deleted": row.deleted,
        "review_status": row.review_status,
        "validation_flags": row.validation_flags,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
        "created_position": row.created_position,
        "changed_position": row.changed_position,
    }


def list_records(session: Session, scope: Scope, filters: Mapping[str, Any]) -> dict[str, Any]:
    """One page of records and the cursor of the next."""
    query, sort_key = list_query(scope, session, filters)
    rows = session.execute(query).all()
    limit = filters.get("limit", 50)
    more = len(rows) > limit
    rows = rows[:limit]
    following = encode_cursor(getattr(rows[-1], sort_key), rows[-1].record_id) if more else None
    return {"items": [record_summary(row) for row in rows], "next": following}


def _fields(session: Session, record_ids: list[str]) -> dict[str, dict[str, Any]]:
    """Each record's current field values with their provenance, in one query."""
    query = (
        select(fs, o.c.user_id, o.c.received_at, o.c.seq.label("op_seq"))
        .join(o, o.c.position == fs.c.op_position)
        .where(fs.c.record_id.in_(record_ids))
        .order_by(fs.c.record_id, fs.c.field)
    )
    found: dict[str, dict[str, Any]] = {record_id: {} for record_id in record_ids}
    for row in session.execute(query):
        found[row.record_id][row.field] = {
            "value": row.value,
            "op_position": row.op_position,
            "user_id": row.user_id,
            "device_id": row.device_id,
            "seq": row.op_seq,
            "device_time": hlc_time(row.hlc),
            "server_time": row.received_at,
            "position": row.position,
        }
    return found


def _conflicts(session: Session, record_id: str) -> list[dict[str, Any]]:
    rows = session.execute(select(c).where(c.c.record_id == record_id).order_by(c.c.id)).all()
    positions = {p for row in rows for p in (row.first_position, row.second_position)}
    ops = {
        op.position: op
        for op in session.execute(
            select(o.c.position, o.c.device_id, o.c.user_id, o.c.seq, o.c.hlc, o.c.value).where(
                o.c.position.in_(positions)
            )
        )
    }
    described = []
    for row in rows:
        values = []
        for position in (row.first_position, row.second_position):
            op = ops[position]
            values.append(
                {
                    "op_position": position,
                    "device_id": op.device_id,
                    "user_id": op.user_id,
                    "seq": op.seq,
                    "device_time": hlc_time(op.hlc),
                    "value": op.value,
                    "winner": position == row.winner_position,
                }
            )
        described.append(
            {
                "conflict_id": row.id,
                "field": row.field,
                "status": row.status,
                "values": values,
                "created_at": row.created_at,
                "resolved_at": row.resolved_at,
            }
        )
    return described


def _attachments(session: Session, fields: dict[str, dict[str, Any]]) -> list[Attachment]:
    hashes = {
        item["value"]["sha256"]
        for item in fields.values()
        if isinstance(item["value"], dict) and isinstance(item["value"].get("sha256"), str)
    }
    if not hashes:
        return []
    return list(
        session.scalars(
            select(Attachment).where(Attachment.sha256.in_(hashes)).order_by(Attachment.sha256)
        )
    )


def record_detail(session: Session, record_id: str, scope: Scope) -> dict[str, Any]:
    """One record in full: values with provenance, flags, conflicts, attachments, and
    its child rows in the scope (a row moved to a grid outside it is not shown)."""
    row = session.execute(select(r).where(r.c.record_id == record_id)).one()
    children = session.execute(
        select(r)
        .where(r.c.parent_id == record_id, scope.grid_filter(r.c.grid_id))
        .order_by(r.c.repeat_group, r.c.record_id)
    ).all()
    fields = _fields(session, [record_id, *[child.record_id for child in children]])
    return {
        **record_summary(row),
        "fields": fields[record_id],
        "conflicts": _conflicts(session, record_id),
        "attachments": _attachments(session, fields[record_id]),
        "children": [
            {**record_summary(child), "fields": fields[child.record_id]} for child in children
        ],
        "reviews": list(
            session.scalars(select(Review).where(Review.record_id == record_id).order_by(Review.id))
        ),
        "comments": list(
            session.scalars(
                select(Comment).where(Comment.record_id == record_id).order_by(Comment.id)
            )
        ),
    }
