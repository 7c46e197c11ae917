"""The specialised closures give exactly what the general rules give, for any value."""

import datetime as dt

from hypothesis import given
from hypothesis import strategies as st

from forms import builtin
from forms.expr import Context, NodeSet, Scope, compile_node, parse
from forms.expr.functions import FUNCTIONS
from forms.expr.shapes import arithmetic_of, comparison, regex_literal, selected_literal
from forms.expr.syntax import Literal, Ref
from forms.expr.values import (
    DATE_PREFIX_RE,
    NAN,
    NUMBER_RE,
    arithmetic,
    compare,
    date_to_days,
    parse_date,
    parse_datetime,
    to_number,
)
from forms.validate import validate_record

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(alphabet="ab 1-:.T+0", max_size=12)
    | st.sampled_from(["", "x", "1", " 3 ", "2024-05-01", "2024-02-30", "2024-05-01T08:00Z"])
    | st.dates()
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.builds(NodeSet, st.lists(inner, max_size=3)),
    max_leaves=6,
)
OPS = st.sampled_from(["=", "!=", "<", "<=", ">", ">="])


def same(left, right):
    return left == right or (left != left and right != right)


def constant(value):
    return lambda c: value


@given(op=OPS, left=VALUES, right=VALUES)
def test_comparisons_match_compare(op, left, right):
    general = compare(op, left, right)
    assert comparison(op, constant(left), constant(right), Ref("x"))(None) == general
    if isinstance(right, str):
        assert comparison(op, constant(left), constant(right), Literal(right))(None) == general


@given(op=st.sampled_from(["+", "-", "*"]), left=VALUES, right=VALUES)
def test_arithmetic_matches_the_general_rule(op, left, right):
    closure = arithmetic_of(op, constant(left), constant(right))
    assert same(closure(None), arithmetic(op, left, right))


@given(value=VALUES, choice=st.sampled_from(["x", "1", "", "a b", "x ", " 1"]) | st.floats(0, 2))
def test_selected_with_a_literal_matches_selected(value, choice):
    general = FUNCTIONS["selected"][2](None, value, choice)
    assert selected_literal(constant(value), choice)(None) == general


@given(value=VALUES, pattern=st.sampled_from(["^[0-9]+$", "[", "a b", "", "^1[3-9][0-9]{9}$"]))
def test_regex_with_a_literal_matches_regex(value, pattern):
    general = FUNCTIONS["regex"][2](None, value, pattern)
    assert regex_literal(constant(value), pattern)(None) == general


def old_to_number(text):
    """to_number of a text as it was written before dates were tried first."""
    if NUMBER_RE.match(text):
        return float(text)
    if len(text) >= 10 and DATE_PREFIX_RE.match(text):
        moment = parse_datetime(text) if len(text) > 10 else None
        if moment is not None:
            return date_to_days(moment)
        day = parse_date(text)
        return NAN if day is None else date_to_days(day)
    return NAN


@given(text=st.text(alphabet="0123456789-: T+Z.", max_size=26) | st.dates().map(str))
def test_numbers_of_texts_are_what_they_were(text):
    assert same(to_number(text), old_to_number(text))


def test_clock_values_are_worked_out_per_record():
    # The year in the birth year's constraint comes from each record's own clock.
    member = {"member_name": "王芳", "relation": "head", "sex": "female", "ethnicity": "han"}
    rows = {"members": [{**member, "birth_year": 2030}]}
    household = builtin.household

    def row_codes(year):
        now = dt.datetime(year, 6, 1, tzinfo=dt.UTC)
        return [e.code for e in validate_record(household, {}, rows, now=now) if e.repeat]

    assert row_codes(2024) == ["constraint"]
    assert row_codes(2031) == []
    assert row_codes(2024) == ["constraint"]
    scope = Scope(household, household.field("age"))
    year = compile_node(parse("int(format-date(today(), '%Y'))"), scope)
    assert year(Context({}, now=dt.datetime(2031, 1, 1, tzinfo=dt.UTC))) == 2031.0


def test_rows_with_ids_that_are_not_text_are_validated_not_refused():
    rows = {"photos": [{"_id": ["x"], "_parent": {"a": 1}, "caption": "门口"}]}
    errors = validate_record(builtin.hazard_check, {}, rows)
    assert ("photo", "required", "photos", 0) in [
        (e.field, e.code, e.repeat, e.row) for e in errors
    ]
