"""Seq checks of a push against the stored ops: duplicates, reuse and gaps.

A push usually continues exactly from the device's ack, and then nothing is read. A
re-sent op is compared with the stored row as plain driver values (the value as its
stored JSON text), without building objects, so that a retry after a lost reply
costs a fraction of the first push.
"""

from __future__ import annotations

import json

from sqlalchemy import Connection

from sync.messages import SeqGap, SeqReuse
from sync.ops import Op, canonical_json
from sync.store.sql import driver_rows, encode_json, is_postgres

# `ops` columns compared with a re-sent op, in this order, then the value's JSON text.
CONTENT_COLUMNS = (
    "seq",
    "record_id",
    "form_id",
    "form_version",
    "grid_id",
    "field",
    "kind",
    "hlc",
    "base",
)


Content = tuple
"""An op's content in `Op` field order after the device: (seq, record_id, form_id,
form_version, grid_id, field, kind, value, hlc, base)."""


def content_of(op: Op) -> Content:
    return (
        op.seq,
        op.record_id,
        op.form_id,
        op.form_version,
        op.grid_id,
        op.field,
        op.kind,
        op.value,
        op.hlc,
        op.base,
    )


def split_new(
    connection: Connection, device_id: str, acked: int, sent: list[Op]
) -> tuple[list[Op], int]:
    """The ops not stored yet, and how many were duplicates; checks reuse, then gaps.

    `sent` is in seq order.
    """
    expected = acked
    for op in sent:
        expected += 1
        if op.seq != expected:
            break
    else:
        return sent, 0  # the everyday push: the next seqs, each once
    stored = stored_contents(connection, device_id, [op.seq for op in sent if op.seq <= acked])
    first_by_seq: dict[int, Op] = {}
    duplicate = 0
    for op in sent:
        if op.seq <= acked:
            if not matches_stored(stored[op.seq], content_of(op)):
                raise SeqReuse(op.seq)
            duplicate += 1
            continue
        earlier = first_by_seq.get(op.seq)
        if earlier is not None:
            if not same_content(earlier, op):
                raise SeqReuse(op.seq)
            duplicate += 1
            continue
        first_by_seq[op.seq] = op
    new_ops = list(first_by_seq.values())
    for offset, op in enumerate(new_ops, start=1):
        if op.seq != acked + offset:
            raise SeqGap(acked + 1)
    return new_ops, duplicate


def check_all_stored(connection: Connection, device_id: str, sent: list[Content]) -> None:
    """For a push of stored seqs only: raise SeqReuse unless every op is the stored one."""
    stored = stored_contents(connection, device_id, [content[0] for content in sent])
    for content in sent:
        if not matches_stored(stored[content[0]], content):
            raise SeqReuse(content[0])


def stored_contents(connection: Connection, device_id: str, seqs: list[int]) -> dict[int, tuple]:
    """The stored content of these seqs as driver tuples, the value as its JSON text
    (SQLite: a number as such, see `sql.sqlite_value`)."""
    if not seqs:
        return {}
    names = ", ".join(CONTENT_COLUMNS)
    if is_postgres(connection):
        statement = (
            f"SELECT {names}, value::text FROM ops "  # noqa: S608 (our own column names)
            "WHERE device_id = %s AND seq BETWEEN %s AND %s"
        )
    else:
        statement = (
            f"SELECT {names}, value FROM ops "  # noqa: S608 (our own column names)
            "WHERE device_id = ? AND seq BETWEEN ? AND ?"
        )
    rows = driver_rows(connection, statement, (device_id, min(seqs), max(seqs)))
    return {row[0]: row for row in rows}


def matches_stored(stored: tuple, sent: Content) -> bool:
    """`Op.content()` equality with a stored op; equal JSON text settles it at once."""
    # stored: seq, record_id, form_id, form_version, grid_id, field, kind, hlc, base, text
    if stored[:7] != sent[:7] or stored[7] != sent[8] or stored[8] != sent[9]:
        return False
    stored_value = stored[9]
    if type(stored_value) is not str:
        # SQLite kept a number as such (`sql.sqlite_value`), and one written as 2.0
        # comes back as 2: an equal number is the same value.
        sent_value = sent[7]
        kind = type(sent_value)
        return (kind is int or kind is float) and stored_value == sent_value
    if stored_value == encode_json(sent[7]):
        return True
    return canonical_json(json.loads(stored_value)) == canonical_json(sent[7])


def same_content(stored: Op, sent: Op) -> bool:
    """Whether a re-sent op is the stored one (`Op.content()` equality, done cheaply)."""
    if (
        stored.record_id != sent.record_id
        or stored.field != sent.field
        or stored.hlc != sent.hlc
        or stored.base != sent.base
        or stored.kind != sent.kind
        or stored.form_id != sent.form_id
        or stored.form_version != sent.form_version
        or stored.grid_id != sent.grid_id
    ):
        return False
    a, b = stored.value, sent.value
    if (type(a) is type(b) and type(a) in (str, int, bool)) or a is None is b:
        return a == b
    return canonical_json(a) == canonical_json(b)
