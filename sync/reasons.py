"""Quarantine: the reason codes, and the one pure check that picks an op's reason.

An op that cannot apply is still stored; it is quarantined with exactly one reason,
chosen by `quarantine_reason` in a fixed order so that every replica and the SQL
store quarantine the same ops for the same reasons.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Collection
from dataclasses import dataclass, field

from sync import hlc
from sync.ops import ADD, DELETED, GROUP, ORDER, PARENT, REMOVE, SET, UUID_PATTERN, Op


class Reason(enum.StrEnum):
    """Why an op was quarantined; part of the protocol (docs/protocol.md)."""

    UNKNOWN_FORM = "unknown_form"  # no such form
    UNKNOWN_FORM_VERSION = "unknown_form_version"  # no published version with that number
    UNKNOWN_FIELD = "unknown_field"  # the field is not in that form version
    WRONG_TYPE = "wrong_type"  # the value does not have the field's type
    UNKNOWN_CHOICE = "unknown_choice"  # a choice not in the field's list
    OUT_OF_RANGE = "out_of_range"  # a number or date outside its range, a text too long
    NOT_MULTI_SELECT = "not_multi_select"  # add/remove on a field that is no select_multiple
    READ_ONLY_FIELD = "read_only_field"  # a value for a note, group or field holding none
    FORM_MISMATCH = "form_mismatch"  # the op names another form than the record's
    GRID_OUT_OF_SCOPE = "grid_out_of_scope"  # the op's or its record's grid is not the user's
    CLOCK_AHEAD = "clock_ahead"  # the HLC is too far ahead of the server's clock


# Releasing these would make the record hold ops of two forms; they stay quarantined.
NOT_RELEASABLE = frozenset({Reason.FORM_MISMATCH})


@dataclass(frozen=True, slots=True)
class Verdict:
    """A quarantine decision: the reason code and a human-readable detail."""

    reason: Reason
    detail: str


FieldCheck = Callable[[Op], Verdict | None]
"""Checks one op's field, kind and value against its (known) form version."""

FormLookup = Callable[[str], Collection[int] | None]
"""The published version numbers of a form, or None when there is no such form."""


@dataclass(frozen=True, slots=True)
class Gate:
    """Everything the quarantine check needs to know about the world, as values."""

    lookup_form: FormLookup
    check_field: FieldCheck
    # the device user's grids with sub-grids (or at least those of them the push names
    # or its records are in); None: every grid
    scope: Collection[int] | None
    server_millis: int  # see `server_millis`: fixed for the whole push
    max_skew_ms: int = 600_000
    ahead_from: int = field(init=False)  # the lowest HLC too far ahead (`hlc.ahead_from`)

    def __post_init__(self) -> None:
        object.__setattr__(self, "ahead_from", hlc.ahead_from(self.server_millis, self.max_skew_ms))


def server_millis(wall_ms: int, max_applied_hlc: int) -> int:
    """The server's clock for the `clock_ahead` check: its HLC, not its bare wall clock.

    That is the wall clock, or the highest HLC among the ops applied before the push
    when that is later: a released op from a fast device moves every device's HLC
    forward through pulls, and their next edits must not be quarantined for following it.
    """
    return max(wall_ms, hlc.millis_of(max_applied_hlc))


def quarantine_reason(
    op: Op, gate: Gate, record_form: str | None, record_grid: int | None
) -> Verdict | None:
    """The reason this op must be quarantined, or None when it may apply.

    `record_form` is the form the record already belongs to (None for a new record);
    `record_grid` is the record's current grid, that of its highest-keyed applied op
    before this one (None while the record has no applied op). The order of the checks
    is part of the contract: the first failing one is reported.
    """
    _device, _seq, record_id, form_id, form_version, grid_id, name, kind, value, stamp, _base = op
    versions = gate.lookup_form(form_id)
    if versions is None:
        return Verdict(Reason.UNKNOWN_FORM, f"no form {form_id!r}")
    if record_form is not None and record_form != form_id:
        return Verdict(Reason.FORM_MISMATCH, f"record {record_id} belongs to form {record_form!r}")
    if form_version not in versions:
        return Verdict(
            Reason.UNKNOWN_FORM_VERSION,
            f"form {form_id!r} has no published version {form_version}",
        )
    if gate.scope is not None:
        if grid_id not in gate.scope:
            return Verdict(Reason.GRID_OUT_OF_SCOPE, f"grid {grid_id} is outside your grids")
        # Naming one's own grid must not take a record out of another's: a record moves
        # only for someone whose scope holds both grids. The detail does not say which
        # grid the record is in: that is not the sender's to know.
        if record_grid is not None and record_grid not in gate.scope:
            return Verdict(
                Reason.GRID_OUT_OF_SCOPE, f"record {record_id} is in a grid outside your grids"
            )
    if stamp >= gate.ahead_from:
        ahead = hlc.millis_of(stamp) - gate.server_millis
        return Verdict(Reason.CLOCK_AHEAD, f"clock {ahead} ms ahead of the server")
    if name.startswith("_"):
        return check_reserved(op)
    verdict = gate.check_field(op)
    if verdict is not None:
        return verdict
    if kind in (ADD, REMOVE) and not isinstance(value, str):
        return Verdict(Reason.WRONG_TYPE, "a choice is named by a string")
    return None


def check_reserved(op: Op) -> Verdict | None:
    """Checks for the fields every record may carry (`_deleted`, `_parent`, ...)."""
    if op.field not in (DELETED, PARENT, GROUP, ORDER):
        return Verdict(Reason.UNKNOWN_FIELD, f"no reserved field {op.field!r}")
    if op.kind != SET:
        return Verdict(Reason.NOT_MULTI_SELECT, f"{op.field} only takes set")
    value = op.value
    if op.field == DELETED:
        ok = isinstance(value, bool)
    elif op.field == PARENT:
        ok = isinstance(value, str) and UUID_PATTERN.fullmatch(value) is not None
    elif op.field == GROUP:
        ok = isinstance(value, str) and 0 < len(value) <= 128
    else:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
    if not ok:
        return Verdict(Reason.WRONG_TYPE, f"wrong value for {op.field}")
    return None
