"""A push into the SQL store, exactly as docs/sync.md ("A push, exactly") states it.

Seqs are checked against the stored ones, the new ops take consecutive positions under
the counter lock, each gets its quarantine verdict from `sync.reasons`, all of them
are appended in one COPY (executemany on SQLite), and the applied ones are merged by
a handful of set statements. The caller owns the transaction: one push, one commit.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Text, cast, func, select

from sync import hlc as hlc_mod
from sync.messages import PushResult, QuarantinedOp, SeqGap, SeqReuse
from sync.ops import Op, OpStatus, StoredOp, canonical_json
from sync.reasons import FieldCheck, FormLookup, Gate, quarantine_reason, server_millis
from sync.store import conflict_rows, positions
from sync.store.inbox import Item, add_items
from sync.store.merging import fields_of, merge_batch, restamp
from sync.store.sql import bulk_insert, encode_json, now, stored_time
from sync.store.tables import ops, record_forms

MAX_STORED_HLC = (1 << 63) - 1  # a BIGINT column; the protocol refuses larger HLCs
MAX_DETAIL = 1000
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
OP_COLUMNS = (
    "position",
    "device_id",
    "seq",
    "user_id",
    "record_id",
    "form_id",
    "form_version",
    "grid_id",
    "field",
    "kind",
    "value",
    "hlc",
    "base",
    "reason",
    "detail",
    "received_at",
)


@dataclass(frozen=True)
class Rules:
    """What the store needs to know about the world: forms, validation, the clock."""

    lookup_form: FormLookup
    check_field: FieldCheck
    wall: Callable[[], int] = hlc_mod.wall_millis
    max_skew_ms: int = 600_000


@dataclass(frozen=True)
class Pushed:
    """A push's result, with its conflicts in wire form (they carry their ids)."""

    result: PushResult
    conflicts: list[dict[str, Any]] = field(default_factory=list)


def push(
    connection: Connection,
    device_id: str,
    user_id: int,
    sent: list[Op],
    scope: Collection[int] | None,
    rules: Rules,
) -> Pushed:
    """Store one push; raises SeqReuse or SeqGap before anything is written."""
    sent = sorted(sent, key=lambda op: op.seq)
    if any(op.device_id != device_id for op in sent):
        raise ValueError("every op of a push belongs to the pushing device")
    if any(op.hlc > MAX_STORED_HLC for op in sent):
        raise ValueError("an HLC above 2^63 - 1 cannot be stored")
    acked = acked_seq(connection, device_id)
    if sent and sent[-1].seq <= acked:
        # A retry of ops all stored already: compare, and answer without the lock.
        _split_new(connection, device_id, acked, sent)
        counter = positions.read(connection)
        server_hlc = hlc_mod.Clock(rules.wall, counter.hlc).now()
        return Pushed(PushResult(acked, 0, len(sent), [], [], server_hlc))

    counter = positions.lock(connection)
    acked = acked_seq(connection, device_id)  # again, now that concurrent pushes are done
    new_ops, duplicate = _split_new(connection, device_id, acked, sent)
    moment = now()
    stored, quarantined = _store_new(connection, user_id, new_ops, scope, rules, counter, moment)

    applied = [entry for entry in stored if entry.applied]
    found: list = []
    described: list[dict[str, Any]] = []
    if applied:
        batch = ops.c.position.between(stored[0].position, stored[-1].position) & ops.c.reason.is_(
            None
        )
        effect = merge_batch(connection, applied, batch, moment)
        restamp(connection, fields_of(connection, effect.moved), counter)
        users = {entry.position: user_id for entry in applied}
        found, described = conflict_rows.detect(connection, applied, batch, moment, users)
        highest = max(entry.op.hlc for entry in applied)
        counter.hlc = max(counter.hlc, highest)
        counter.applied_hlc = max(counter.applied_hlc, highest)
    clock = hlc_mod.Clock(rules.wall, counter.hlc)
    counter.hlc = clock.now()
    positions.save(connection, counter)

    _notify(connection, user_id, quarantined, described, moment)
    result = PushResult(
        acked_seq=new_ops[-1].seq if new_ops else acked,
        applied=len(applied),
        duplicate=duplicate,
        quarantined=quarantined,
        conflicts=found,
        server_hlc=counter.hlc,
        stored=stored,
    )
    return Pushed(result, described)


def acked_seq(connection: Connection, device_id: str) -> int:
    """The device's highest stored seq (seqs are gap-free, so this is its ack)."""
    return connection.scalar(select(func.max(ops.c.seq)).where(ops.c.device_id == device_id)) or 0


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


def _split_new(
    connection: Connection, device_id: str, acked: int, sent: list[Op]
) -> tuple[list[Op], int]:
    """The ops not stored yet, and how many were duplicates; checks reuse, then gaps."""
    stored = _stored_contents(connection, device_id, [op.seq for op in sent if op.seq <= acked])
    first_by_seq: dict[int, Op] = {}
    duplicate = 0
    for op in sent:
        if op.seq <= acked:
            if not _matches_stored(stored[op.seq], op):
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


def _stored_contents(connection: Connection, device_id: str, seqs: list[int]) -> dict[int, tuple]:
    """The stored content of these seqs, the value as its stored JSON text."""
    if not seqs:
        return {}
    rows = connection.execute(
        select(*(ops.c[name] for name in CONTENT_COLUMNS), cast(ops.c.value, Text)).where(
            ops.c.device_id == device_id, ops.c.seq.between(min(seqs), max(seqs))
        )
    )
    return {row[0]: tuple(row) for row in rows}


def _matches_stored(stored: tuple, sent: Op) -> bool:
    """`Op.content()` equality with a stored op; equal JSON text settles it at once."""
    if stored[:-1] != (
        sent.seq,
        sent.record_id,
        sent.form_id,
        sent.form_version,
        sent.grid_id,
        sent.field,
        sent.kind,
        sent.hlc,
        sent.base,
    ):
        return False
    text_value = stored[-1]
    if text_value == encode_json(sent.value):
        return True
    return canonical_json(json.loads(text_value)) == canonical_json(sent.value)


def _store_new(
    connection: Connection,
    user_id: int,
    new_ops: list[Op],
    scope: Collection[int] | None,
    rules: Rules,
    counter: positions.Counter,
    moment: dt.datetime,
) -> tuple[list[StoredOp], list[QuarantinedOp]]:
    """Give the new ops their positions and verdicts, and append them."""
    if not new_ops:
        return [], []
    forms_known: dict[str, Any] = {}

    def lookup_form(form_id: str) -> Any:
        if form_id not in forms_known:
            forms_known[form_id] = rules.lookup_form(form_id)
        return forms_known[form_id]

    gate = Gate(
        lookup_form,
        rules.check_field,
        scope,
        server_millis(rules.wall(), counter.applied_hlc),
        rules.max_skew_ms,
    )
    record_form = _record_forms(connection, {op.record_id for op in new_ops})
    new_forms: dict[str, str] = {}
    first = counter.take(len(new_ops))
    received = stored_time(connection, moment)
    stored: list[StoredOp] = []
    quarantined: list[QuarantinedOp] = []
    rows = []
    for position, op in enumerate(new_ops, start=first):
        verdict = quarantine_reason(op, gate, record_form.get(op.record_id))
        if op.record_id not in record_form and lookup_form(op.form_id) is not None:
            record_form[op.record_id] = new_forms[op.record_id] = op.form_id
        if verdict is None:
            stored.append(StoredOp(op, position))
            reason = detail = None
        else:
            reason, detail = str(verdict.reason), verdict.detail[:MAX_DETAIL]
            stored.append(StoredOp(op, position, OpStatus.QUARANTINED, reason, detail))
            quarantined.append(QuarantinedOp(op.seq, op.record_id, op.field, reason, detail))
        rows.append(
            (
                position,
                op.device_id,
                op.seq,
                user_id,
                op.record_id,
                op.form_id,
                op.form_version,
                op.grid_id,
                op.field,
                op.kind,
                encode_json(op.value),
                op.hlc,
                op.base,
                reason,
                detail,
                received,
            )
        )
    bulk_insert(connection, ops, OP_COLUMNS, rows)
    if new_forms:
        connection.execute(
            record_forms.insert(),
            [{"record_id": rid, "form_id": form} for rid, form in new_forms.items()],
        )
    return stored, quarantined


def _record_forms(connection: Connection, record_ids: set[str]) -> dict[str, str]:
    rows = connection.execute(
        select(record_forms.c.record_id, record_forms.c.form_id).where(
            record_forms.c.record_id.in_(sorted(record_ids))
        )
    )
    return {record_id: form_id for record_id, form_id in rows}


def _notify(
    connection: Connection,
    user_id: int,
    quarantined: list[QuarantinedOp],
    conflicts: list[dict[str, Any]],
    moment: dt.datetime,
) -> None:
    """Inbox items: each quarantined op for its user, each conflict for both sides' users."""
    items = [Item(user_id, "quarantine", q.record_id, q.to_wire()) for q in quarantined]
    for conflict in conflicts:
        users = sorted({side["user_id"] for side in conflict["values"] if side["user_id"]})
        items.extend(Item(user, "conflict", conflict["record_id"], conflict) for user in users)
    add_items(connection, items, moment)
