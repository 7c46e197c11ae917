"""Quarantine reasons: one code per op, chosen in the documented order."""

from __future__ import annotations

import pytest

from sync import hlc
from sync.ops import ADD, SET, Op
from sync.reasons import Gate, Reason, Verdict, quarantine_reason
from tests.sync.world import RECORDS, check_field, lookup_form

NOW = 1_700_000_000_000
RID = RECORDS[0][0]


def op(
    field="head_name", kind=SET, value="wang", *, form="household", version=1, grid=1, ms=NOW
) -> Op:
    return Op("d1", 1, RID, form, version, grid, field, kind, value, hlc.pack(ms), 0)


def gate(scope=None) -> Gate:
    return Gate(lookup_form, check_field, scope, NOW, 600_000)


def reason(
    edit: Op, record_form: str | None = None, scope=None, record_grid: int | None = None
) -> Reason | None:
    verdict = quarantine_reason(edit, gate(scope), record_form, record_grid)
    return verdict.reason if verdict else None


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (op(), None),
        (op(form="nope"), Reason.UNKNOWN_FORM),
        (op(version=3), Reason.UNKNOWN_FORM_VERSION),
        (op(ms=NOW + 600_001), Reason.CLOCK_AHEAD),
        (op(ms=NOW + 600_000), None),
        (op("phone"), Reason.UNKNOWN_FIELD),
        (op("intro"), Reason.READ_ONLY_FIELD),
        (op("size", value="x"), Reason.WRONG_TYPE),
        (op("size", value=31), Reason.OUT_OF_RANGE),
        (op("tags", ADD, "zz"), Reason.UNKNOWN_CHOICE),
        (op("size", ADD, "a"), Reason.NOT_MULTI_SELECT),
        (op("_deleted", value=True), None),
        (op("_deleted", value="yes"), Reason.WRONG_TYPE),
        (op("_deleted", ADD, "a"), Reason.NOT_MULTI_SELECT),
        (op("_parent", value=RECORDS[1][0]), None),
        (op("_parent", value="not-a-uuid"), Reason.WRONG_TYPE),
        (op("_group", value="members"), None),
        (op("_group", value=""), Reason.WRONG_TYPE),
        (op("_order", value=2.5), None),
        (op("_order", value=True), Reason.WRONG_TYPE),
        (op("_secret", value=1), Reason.UNKNOWN_FIELD),
    ],
)
def test_each_mistake_has_its_reason(edit: Op, expected: Reason | None) -> None:
    assert reason(edit) == expected


def test_form_mismatch_needs_a_record_of_another_form() -> None:
    assert reason(op(), record_form="hazard") == Reason.FORM_MISMATCH
    assert reason(op(), record_form="household") is None
    # an unknown form is reported as such, whatever the record
    assert reason(op(form="nope"), record_form="hazard") == Reason.UNKNOWN_FORM


def test_scope_is_checked_before_the_clock_and_the_field() -> None:
    bad_everywhere = op("phone", ms=NOW + 10**9, grid=3)
    assert reason(bad_everywhere, scope={1, 2}) == Reason.GRID_OUT_OF_SCOPE
    assert reason(bad_everywhere, scope=None) == Reason.CLOCK_AHEAD
    assert reason(op(grid=2), scope={1, 2}) is None


def test_an_existing_record_must_be_in_scope_as_well_as_the_grid_named() -> None:
    # a record of grid 3 cannot be pulled into grid 1 by someone who holds only grid 1
    assert reason(op(grid=1), scope={1}, record_grid=3) == Reason.GRID_OUT_OF_SCOPE
    # moving it takes both grids; staying where it is takes its own
    assert reason(op(grid=1), scope={1, 3}, record_grid=3) is None
    assert reason(op(grid=1), scope={1}, record_grid=1) is None
    # a new record is checked by the grid named alone; every grid is everyone's with None
    assert reason(op(grid=1), scope={1}, record_grid=None) is None
    assert reason(op(grid=1), scope=None, record_grid=3) is None
    # the grid named is reported first, and the record's grid is not disclosed
    verdict = quarantine_reason(op(grid=2), gate({1}), None, 3)
    assert verdict == Verdict(Reason.GRID_OUT_OF_SCOPE, "grid 2 is outside your grids")
    verdict = quarantine_reason(op(grid=1), gate({1}), None, 3)
    assert verdict == Verdict(
        Reason.GRID_OUT_OF_SCOPE, f"record {RID} is in a grid outside your grids"
    )


def test_the_record_scope_comes_after_the_version_and_before_the_clock() -> None:
    assert reason(op(version=9), scope={1}, record_grid=3) == Reason.UNKNOWN_FORM_VERSION
    ahead = op("phone", ms=NOW + 10**9)
    assert reason(ahead, scope={1}, record_grid=3) == Reason.GRID_OUT_OF_SCOPE
    assert reason(ahead, scope={1, 3}, record_grid=3) == Reason.CLOCK_AHEAD


def test_the_order_is_form_mismatch_then_version() -> None:
    assert reason(op(version=9), record_form="hazard") == Reason.FORM_MISMATCH


def test_a_choice_that_is_not_a_string_is_wrong_type_even_if_the_checker_passes() -> None:
    lenient = Gate(lookup_form, lambda _op: None, None, NOW)
    verdict = quarantine_reason(op("tags", ADD, 3), lenient, None, None)
    assert verdict == Verdict(Reason.WRONG_TYPE, "a choice is named by a string")


def test_reason_codes_are_those_of_the_protocol() -> None:
    from mobile_schema.schemas import validate

    for code in Reason:
        assert (
            validate(
                "quarantined_op",
                {
                    "seq": 1,
                    "record_id": RID,
                    "field": "f",
                    "reason": code.value,
                    "detail": "",
                },
            )
            == []
        )
