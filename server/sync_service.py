"""Glue between the server and the sync engine: forms, scope, clock, audit, metrics.

The HTTP views and the server's own features (supervisor edits, conflict resolution,
quarantine release) call these functions inside their request's session; the caller
commits. Every function here appends its audit event in that same transaction.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from forms import FormVersion, from_dict
from forms.validate import check_op
from server import sync_metrics
from server.audit import Action, record_event, record_push
from server.devices import register_device
from server.form_store import LIVE, catalog_for
from server.models import Device, Grid, User, utcnow
from server.models.forms import StoredFormVersion
from server.record_flags import mark, mark_after_push
from server.scope import scope_grid_ids
from server.settings import Settings
from sync import hlc as hlc_mod
from sync import protocol
from sync.messages import CursorExpired, ReleaseResult, left_scope_message
from sync.ops import Op, StoredOp
from sync.protocol import Caller, PageReply, PullRequest, PushReply, PushRequest, Rules
from sync.reasons import Reason, Verdict
from sync.store import conflict_rows, ingest, positions, reading
from sync.store.release import release
from sync.store.sql import insert_rows
from sync.store.tables import conflicts, op_releases, records

SHA256_HEX = 64
NO_DUPLICATES = "ON CONFLICT DO NOTHING"
# The device a user's server-side edits are made from: one per user, never able to sign in.
SERVER_DEVICE_NAME = "fieldsync server"


class FormRules:
    """The forms as the quarantine check asks for them, for one transaction.

    Versions come from the shared catalog when it holds them (`warm` fills it before
    the write transaction starts) and are otherwise read through this transaction's
    own session: on SQLite a second connection would wait for our write lock.
    """

    def __init__(self, session: Session, known: dict[tuple[str, int], FormVersion]) -> None:
        self.session = session
        self._known = dict(known)
        self._versions: dict[str, frozenset[int] | None] = {}

    def lookup_form(self, form_id: str) -> Collection[int] | None:
        """The form's published (or retired) version numbers; None when there is none."""
        if form_id not in self._versions:
            found = frozenset(
                self.session.connection()
                .execute(
                    select(StoredFormVersion.version).where(
                        StoredFormVersion.form_id == form_id,
                        StoredFormVersion.status.in_([str(status) for status in LIVE]),
                    )
                )
                .scalars()
            )
            self._versions[form_id] = found or None
        return self._versions[form_id]

    def prepare(self, keys: Collection[tuple[str, int]]) -> None:
        """Read everything these (form, version) pairs need before the store checks ops:
        it streams the ops into COPY meanwhile, when no query can run."""
        for form_id, number in keys:
            versions = self.lookup_form(form_id)
            if versions and number in versions and (form_id, number) not in self._known:
                self._load(form_id, number)

    def check_field(self, op: Op) -> Verdict | None:
        """The forms validator's verdict on one op of a known form version."""
        key = (op.form_id, op.form_version)
        version = self._known.get(key) or self._load(*key)
        if version is None:
            return Verdict(Reason.UNKNOWN_FORM_VERSION, f"no version {op.form_version}")
        rejection = check_op(version, op.field, op.kind, op.value)
        if rejection is None:
            return None
        return Verdict(Reason(rejection.reason), rejection.detail)

    def _load(self, form_id: str, number: int) -> FormVersion | None:
        definition = self.session.scalar(
            select(StoredFormVersion.definition).where(
                StoredFormVersion.form_id == form_id,
                StoredFormVersion.version == number,
                StoredFormVersion.status.in_([str(status) for status in LIVE]),
            )
        )
        version = from_dict(definition) if definition is not None else None
        if version is not None:
            self._known[(form_id, number)] = version
        return version


def warm(database: Any, keys: Iterable[tuple[str, int]]) -> dict[tuple[str, int], FormVersion]:
    """Load these form versions into the shared catalog; call outside any transaction."""
    return catalog_for(database).get_many(set(keys))


def rules_for(
    session: Session, settings: Settings, known: dict[tuple[str, int], FormVersion] | None = None
) -> Rules:
    """The store's view of forms and clock for one transaction."""
    forms = FormRules(session, known or {})
    return Rules(
        forms.lookup_form,
        forms.check_field,
        hlc_mod.wall_millis,
        settings.max_clock_skew_ms,
        forms.prepare,
    )


def scope_key(scope: Collection[int] | None) -> str:
    """A short fixed text for a scope: `*` for every grid, else a digest of its grids."""
    if scope is None:
        return "*"
    listed = ",".join(str(grid_id) for grid_id in sorted(set(scope)))
    return hashlib.sha256(listed.encode()).hexdigest()


def caller_for(session: Session, device: Device) -> Caller:
    """The caller of a sync request, with the scope of the device's user."""
    return Caller(device.id, device.user_id, scope_grid_ids(session, device.user))


def writable_grids(session: Session, caller: Caller):
    """Given grids (those a push names and those its records are in), the ones that
    exist and lie in the caller's scope."""

    def allowed(named: set[int]) -> Collection[int]:
        if caller.scope is not None:
            return set(caller.scope) & named
        safe = [grid_id for grid_id in named if grid_id < 2**31]
        return set(session.scalars(select(Grid.id).where(Grid.id.in_(safe)))) if safe else set()

    return allowed


def push(
    session: Session,
    device: Device,
    body: dict[str, Any],
    rules: Rules,
    plain: list[tuple | None] | None = None,
) -> PushReply:
    """Store one push from a device, with its audit event; the caller commits.

    `plain` are the ops' `sync.wire_check.plain_fields` if the caller has them.
    """
    caller = caller_for(session, device)
    reply = protocol.push(
        session.connection(),
        caller,
        PushRequest(body["ops"], plain),
        rules,
        writable_grids(session, caller),
    )
    _after_push(session, device, reply)
    return reply


def _after_push(session: Session, device: Device, reply: PushReply) -> None:
    result = reply.result
    if result.stored:
        record_push(
            session, device.id, device.user_id, result.stored, received_at=result.received_at
        )
        _reference_attachments(session, result.stored)
        mark_after_push(session, result)
    device.acked_seq = result.acked_seq
    device.last_sync_at = utcnow()
    sync_metrics.count_push(session, result)


def _reference_attachments(session: Session, stored: list[StoredOp]) -> None:
    """Note the records whose new ops name an attachment (its readers follow the record)."""
    named = {
        (value["sha256"], entry.op.record_id)
        for entry in stored
        if type(value := entry.op.value) is dict
        and type(value.get("sha256")) is str
        and len(value["sha256"]) == SHA256_HEX
    }
    if named:
        columns = (("sha256", "text"), ("record_id", "text"))
        rows = sorted(named)
        insert_rows(session.connection(), "attachment_references", columns, rows, NO_DUPLICATES)


def pull(
    session: Session, device: Device, request: PullRequest, rules: Rules, *, whole: bool = False
) -> PageReply:
    """One pull (or snapshot) page for the device; raises CursorExpired (410).

    A cursor holds only for the scope the device started reading in, and only if no
    record it may hold left that scope after it: once the user's grids change, or such
    a record left, the device starts over from a snapshot, which brings every record
    now in scope and leaves the rest out. A page from the start records the scope, and
    a snapshot's first page the newest position, so that a later page of the same
    snapshot is refused too when a record it sent has left since (the device then
    starts the snapshot over). The store checks a pull cursor for such records itself.
    """
    caller = caller_for(session, device)
    key = scope_key(caller.scope)
    connection = session.connection()
    if request.cursor == 0:
        device.pulled_scope = key
        if whole:
            device.snapshot_from = positions.read(connection).position
    elif device.pulled_scope is None:
        device.pulled_scope = key  # a device that last pulled before scopes were recorded
    elif device.pulled_scope != key:
        newest = positions.read(connection).position
        why = "your grids changed: start over from a snapshot"
        raise CursorExpired(request.cursor, newest, why)
    if (
        whole
        and request.cursor > 0
        and device.snapshot_from is not None
        and reading.left_scope_since(connection, caller.scope, device.snapshot_from)
    ):
        newest = positions.read(connection).position
        raise CursorExpired(request.cursor, newest, left_scope_message(request.cursor))
    handler = protocol.snapshot if whole else protocol.pull
    reply = handler(connection, caller, request, rules)
    operation = "snapshot" if whole else "pull"
    sync_metrics.count_changes(operation, len(reply.changes))
    return reply


@dataclass(frozen=True, slots=True)
class Edit:
    """A server-side edit of one field, made on behalf of a user (a supervisor, say)."""

    record_id: str
    form_id: str
    form_version: int
    grid_id: int
    field: str
    kind: str
    value: Any


def server_device(session: Session, user: User) -> Device:
    """The user's server-side device, made on first use; its token is never handed out."""
    device = session.scalar(
        select(Device).where(Device.user_id == user.id, Device.name == SERVER_DEVICE_NAME)
    )
    if device is None:
        device, _token = register_device(session, user, SERVER_DEVICE_NAME)
        device.revoked_at = utcnow()  # it syncs through the server only, never with a token
    return device


def submit_edits(session: Session, user: User, edits: Iterable[Edit], rules: Rules) -> PushReply:
    """Store edits made on the server as ops of the user's server device.

    They take the next seqs, fresh server HLCs (so they beat everything already
    stored) and the newest position as base (the server has seen everything), so
    they resolve the conflicts on their fields. Scope and forms are checked as for
    any push: an edit the user may not make is quarantined and reported.
    """
    device = server_device(session, user)
    connection = session.connection()
    acked = ingest.acked_seq(connection, device.id)
    counter = positions.read(connection)
    clock = hlc_mod.Clock(rules.wall, counter.hlc)
    sent = [
        Op(
            device.id,
            acked + n,
            e.record_id,
            e.form_id,
            e.form_version,
            e.grid_id,
            e.field,
            e.kind,
            e.value,
            clock.now(),
            counter.position,
        )
        for n, e in enumerate(edits, start=1)
    ]
    if not sent:
        raise ValueError("no edits to submit")
    caller = Caller(device.id, user.id, scope_grid_ids(session, user))
    pushed = ingest.push(
        connection,
        device.id,
        user.id,
        sent,
        writable_grids(session, caller),
        rules,
    )
    reply = PushReply(pushed.result, pushed.conflicts)
    _after_push(session, device, reply)
    return reply


class ResolutionRefused(ValueError):
    """A conflict that is not open, or a value its field does not accept (the edit
    would be quarantined): nothing is to be stored."""

    def __init__(self, why: str, *, reason: str | None = None, detail: str = "") -> None:
        super().__init__(why)
        self.why = why
        self.reason = reason  # the quarantine reason, when the value was refused
        self.detail = detail


def resolve_conflict(
    session: Session, user: User, conflict_id: int, value: Any, rules: Rules
) -> PushReply:
    """Settle an open conflict with an ordinary later edit of its field having seen both
    sides, and note it on the audit trail.

    `value` is the value to keep: one of the two sides' or a new one. Raises
    `ResolutionRefused` for a conflict already resolved or a value the field refuses,
    after which the caller must roll back (the refused edit is then not stored).
    """
    # Locked, so that of two resolutions sent at once (a double click) the second finds
    # the conflict resolved.
    statement = select(conflicts).where(conflicts.c.id == conflict_id).with_for_update()
    row = session.execute(statement).one_or_none()
    if row is None:
        raise LookupError(f"no conflict {conflict_id}")
    if row.status != "open":
        raise ResolutionRefused(f"conflict {conflict_id} is already resolved")
    record = session.execute(select(records).where(records.c.record_id == row.record_id)).one()
    edit = Edit(
        row.record_id, record.form_id, record.form_version, record.grid_id, row.field, "set", value
    )
    reply = submit_edits(session, user, [edit], rules)
    if reply.result.quarantined:
        refused = reply.result.quarantined[0]
        raise ResolutionRefused(
            f"the value cannot be kept: {refused.reason}",
            reason=refused.reason,
            detail=refused.detail or refused.reason,
        )
    record_event(
        session,
        Action.CONFLICT_RESOLVED,
        "conflict",
        conflict_id,
        {"record_id": row.record_id, "field": row.field},
        user_id=user.id,
        grid_ids=[record.grid_id],
    )
    return reply


def release_quarantined(
    session: Session, op_ids: Iterable[tuple[str, int]], by_user: User
) -> tuple[ReleaseResult, list[dict[str, Any]]]:
    """Release quarantined ops (device_id, seq): the state becomes as if they had applied.

    Raises `sync.messages.ReleaseRefused` (nothing released) for an unknown op, one
    that is not quarantined, or a form_mismatch op.
    """
    result, described = release(session.connection(), list(op_ids), by_user.id)
    released_at = _release_times(session, [entry.position for entry in result.released])
    for entry in result.released:
        record_event(
            session,
            Action.QUARANTINE_RELEASED,
            "op",
            f"{entry.op.device_id}#{entry.op.seq}",
            {
                "record_id": entry.op.record_id,
                "field": entry.op.field,
                "position": entry.position,
                "released_at": released_at[entry.position],
            },
            user_id=by_user.id,
            grid_ids=[entry.op.grid_id],
        )
    mark(session, {entry.op.record_id for entry in result.released})
    sync_metrics.count_release(session, len(result.released), len(result.conflicts))
    return result, described


def _release_times(session: Session, op_positions: list[int]) -> dict[int, Any]:
    """The release time of each op as its `op_releases` row holds it (verify compares them)."""
    rows = session.execute(
        select(op_releases.c.op_position, op_releases.c.released_at).where(
            op_releases.c.op_position.in_(op_positions)
        )
    )
    return dict(rows.tuples().all())


def conflict_details(session: Session, conflict_ids: Iterable[int]) -> list[dict[str, Any]]:
    """Conflicts in their wire form (both values, devices, users, winner, status)."""
    rows = session.execute(select(conflicts).where(conflicts.c.id.in_(list(conflict_ids)))).all()
    return conflict_rows.wire(session.connection(), rows)


__all__ = [
    "SERVER_DEVICE_NAME",
    "Edit",
    "FormRules",
    "ResolutionRefused",
    "caller_for",
    "conflict_details",
    "inbox",
    "pull",
    "push",
    "release_quarantined",
    "resolve_conflict",
    "rules_for",
    "server_device",
    "submit_edits",
    "warm",
]


def inbox(session: Session, device: Device, after: int, limit: int) -> protocol.InboxReply:
    """The device's user's inbox items after `after`."""
    caller = Caller(device.id, device.user_id, None)
    return protocol.inbox(session.connection(), caller, after, limit)
