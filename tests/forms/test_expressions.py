"""The expression language: parsing, printing, evaluation and the checks done at import."""

import datetime as dt
import math

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from forms import DefinitionError, evaluate_record, from_dict
from forms.expr import Context, NodeSet, Scope, compile_node, parse, to_text
from forms.expr.functions import FUNCTIONS
from forms.expr.syntax import Binary, Call, Literal, Ref, Unary

FORM = from_dict(
    {
        "form_id": "t",
        "fields": [
            {"name": "a", "type": "integer"},
            {"name": "b", "type": "text"},
            {"name": "c", "type": "select_multiple", "choices": "l"},
        ],
        "choices": {"l": [{"name": "x"}, {"name": "y"}]},
    }
)
NOW = dt.datetime(2024, 6, 1, 12, tzinfo=dt.UTC)


def evaluate(text, values):
    return compile_node(parse(text), Scope(FORM))(Context(values, now=NOW))


@pytest.mark.parametrize(
    ("text", "values", "expected"),
    [
        ("${a} + 2 * 3", {"a": 1}, 7.0),
        ("${a} div 0", {"a": 1}, float("inf")),
        ("${a} mod 3", {"a": 7}, 1.0),
        ("if(${a} > 5, 'big', 'small')", {"a": 9}, "big"),
        ("selected(${c}, 'y')", {"c": ["x", "y"]}, True),
        ("selected(${c}, 'y ')", {"c": ["x", "y"]}, True),
        ("selected(${c}, concat(' ', 'x'))", {"c": ["x", "y"]}, True),
        ("count-selected(${c})", {"c": ["x", "y"]}, 2.0),
        ("selected-at(${c}, 1)", {"c": ["x", "y"]}, "y"),
        ("string-length(${b})", {"b": "网格员"}, 3.0),
        ("concat(${b}, '-', ${a})", {"b": "q", "a": 3}, "q-3"),
        ("substr('abcdef', 1, 3)", {}, "bc"),
        ("regex(${b}, '^1[3-9][0-9]{9}$')", {"b": "13800138000"}, True),
        ("coalesce(${b}, 'none')", {}, "none"),
        ("${b} = ''", {}, True),
        ("${a} > 0", {}, False),
        ("today() > '2024-05-31'", {}, True),
        ("format-date(today(), '%Y')", {}, "2024"),
        ("int(-3.7)", {}, -3.0),
        ("round(2.5)", {}, 3.0),
        ("not(${a} = 1) or ${a} != 2", {"a": 1}, True),
        ("decimal-date-time('1970-01-02')", {}, 1.0),
        ("contains(${b}, '小区') and starts-with(${b}, '幸')", {"b": "幸福小区"}, True),
        ("substring-before(${b}, '')", {"b": "abc"}, ""),
        ("substring-after(${b}, '')", {"b": "abc"}, "abc"),
        ("substring-after(${b}, '-')", {"b": "a-b-c"}, "b-c"),
    ],
)
def test_evaluation(text, values, expected):
    assert evaluate(text, values) == expected


@pytest.mark.parametrize(
    ("definition", "message"),
    [
        ({"name": "a", "type": "text", "relevant": "nope(1)"}, "unknown function nope()"),
        ({"name": "a", "type": "text", "relevant": "${zz} = 1"}, "${zz} is not a field"),
        ({"name": "a", "type": "text", "constraint": ". > "}, "expected a value"),
        ({"name": "a", "type": "calculate", "calculation": "${a} + 1"}, "uses its own value"),
    ],
)
def test_bad_expressions_name_the_field_and_expression(definition, message):
    with pytest.raises(DefinitionError) as raised:
        from_dict({"form_id": "t", "fields": [definition]})
    assert message in str(raised.value)
    assert "'a'" in str(raised.value)


def test_a_cycle_between_calculations_is_an_error():
    fields = [
        {"name": "p", "type": "calculate", "calculation": "${q} + 1"},
        {"name": "q", "type": "calculate", "calculation": "${p} + 1"},
    ]
    with pytest.raises(DefinitionError, match="cycle: p -> q -> p"):
        from_dict({"form_id": "t", "fields": fields})


NUMBERS = st.floats(min_value=0, max_value=1e6, allow_nan=False).map(Literal)
STRINGS = st.text(alphabet="ab'\" 网", max_size=6).map(Literal)
LEAVES = NUMBERS | STRINGS | st.sampled_from([Ref("a"), Ref("b"), Ref("c")])
OPS = ["or", "and", "=", "!=", "<", "<=", ">", ">=", "+", "-", "*", "div", "mod"]
TREES = st.recursive(
    LEAVES,
    lambda inner: (
        st.builds(Binary, st.sampled_from(OPS), inner, inner)
        | st.builds(Unary, st.just("-"), inner)
        | st.builds(lambda a, b: Call("concat", (a, b)), inner, inner)
        | st.builds(lambda a, b, c: Call("if", (a, b, c)), inner, inner, inner)
    ),
    max_leaves=12,
)
VALUES = st.fixed_dictionaries(
    {"a": st.integers(-5, 5), "b": st.text(alphabet="ab1", max_size=3), "c": st.just(["x"])}
)


def same(left, right):
    return left == right or (left != left and right != right)


@given(tree=TREES, values=VALUES)
def test_printed_and_parsed_again_evaluates_the_same(tree, values):
    text = to_text(tree)
    direct = compile_node(tree, Scope(FORM))(Context(values, now=NOW))
    again = compile_node(parse(text), Scope(FORM))(Context(values, now=NOW))
    assert same(direct, again), text


TOTALS = from_dict(
    {
        "form_id": "totals",
        "fields": [
            {
                "name": "items",
                "type": "repeat",
                "fields": [
                    {"name": "amount", "type": "decimal"},
                    {"name": "share", "type": "calculate", "calculation": "${amount} div 0"},
                ],
            },
            {"name": "total", "type": "calculate", "calculation": "sum(${amount})"},
            {"name": "shares", "type": "calculate", "calculation": "sum(${share})"},
            {"name": "price", "type": "decimal"},
            {"name": "rounded", "type": "calculate", "calculation": "round(${price}, 2)"},
        ],
    }
)


@pytest.mark.parametrize(
    ("price", "amounts", "expected"),
    [
        (1e307, [1e308, 1e308], {"total": math.inf, "rounded": 1e307}),
        (-1e307, [1e308, -1e308], {"total": 0.0, "shares": math.nan, "rounded": -1e307}),
        (2.345, [0.1, 0.2, 1e308, 1e308, -1e308], {"total": math.inf, "rounded": 2.35}),
    ],
)
def test_sum_and_round_give_what_xpath_gives_on_large_values(price, amounts, expected):
    rows = {"items": [{"amount": amount} for amount in amounts]}
    calculated = evaluate_record(TOTALS, {"price": price}, rows, NOW).calculated
    for name, value in expected.items():
        assert same(calculated[name], value), name


def test_decimal_time_of_hours_beyond_the_float_range_is_nan():
    assert math.isnan(evaluate("decimal-time(${b})", {"b": "9" * 400 + ":00"}))


DATA = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=12)
    | st.sampled_from(["9" * 400 + ":00", "%Y-%3", "2024-05-01T08:00Z", "1e308"])
    | st.dates()
    | st.datetimes(timezones=st.just(dt.UTC)),
    lambda inner: st.lists(inner, max_size=3) | st.builds(NodeSet, st.lists(inner, max_size=3)),
    max_leaves=6,
)


@given(name=st.sampled_from(sorted(FUNCTIONS)), args=st.lists(DATA, max_size=3))
def test_functions_never_raise_on_data(name, args):
    least, most, function = FUNCTIONS[name]
    assume(least <= len(args) <= most)
    function(Context({}, now=NOW), *args)
