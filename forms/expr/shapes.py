"""Closures specialised for the expression shapes real forms repeat on every record.

Each closure here gives exactly what the general one in `evaluate.py` gives; it only
takes a shorter path for the common values (two strings compared, a literal choice
looked up, a literal pattern compiled once, a clock-only value computed once per
record). Every uncommon value falls back to the general rule.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

from forms.expr.functions import FUNCTIONS, pattern, wanted_choice
from forms.expr.syntax import Binary, Call, Literal, Node, Unary
from forms.expr.values import NodeSet, compare, to_boolean, to_number, to_string

Compiled = Callable[[Any], Any]

ORDERINGS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}
# Calls whose result is always a Python bool, so a condition need not convert it.
BOOLEAN_CALLS = frozenset(
    {
        "selected",
        "regex",
        "contains",
        "starts-with",
        "ends-with",
        "not",
        "true",
        "false",
        "boolean",
        "boolean-from-string",
    }
)
# With no argument these read the current value, so they depend on the record.
READS_CURRENT = frozenset({"string-length", "normalize-space", "string", "number"})
CLOCK_CALLS = frozenset({"today", "now"})


def returns_boolean(node: Node) -> bool:
    """True when `node` always evaluates to a Python bool."""
    if isinstance(node, Binary):
        return node.op in ("and", "or", "=", "!=", "<", "<=", ">", ">=")
    return isinstance(node, Call) and node.name in BOOLEAN_CALLS


def as_condition(node: Node, closure: Compiled) -> Compiled:
    """`closure` turned into one that returns the XPath boolean of its value."""
    if returns_boolean(node):
        return closure
    return lambda c: to_boolean(closure(c))


def _record_free(node: Node) -> bool:
    """True when `node` reads nothing of the record (only literals and the clock)."""
    if isinstance(node, Literal):
        return True
    if isinstance(node, Unary):
        return _record_free(node.operand)
    if isinstance(node, Binary):
        return _record_free(node.left) and _record_free(node.right)
    if isinstance(node, Call):
        known = node.name in FUNCTIONS or node.name in ("if", "coalesce")
        reads_current = node.name in READS_CURRENT and not node.args
        return known and not reads_current and all(_record_free(arg) for arg in node.args)
    return False


def _uses_clock(node: Node) -> bool:
    if isinstance(node, Call):
        return node.name in CLOCK_CALLS or any(_uses_clock(arg) for arg in node.args)
    if isinstance(node, Unary):
        return _uses_clock(node.operand)
    if isinstance(node, Binary):
        return _uses_clock(node.left) or _uses_clock(node.right)
    return False


def worth_memoising(node: Node) -> bool:
    """A computation over the clock alone, such as `int(format-date(today(), '%Y'))`.

    Its value is the same everywhere in one record, so it is computed once per record
    instead of once per row and per expression. A bare today() is cheaper to call.
    """
    if isinstance(node, Call) and not node.args:
        return False
    return _uses_clock(node) and _record_free(node)


def memoised(closure: Compiled, key: str) -> Compiled:
    """`closure`, evaluated once per evaluation context (one record).

    `key` is the expression's text, so the same computation written in several
    expressions of a form (a year in a constraint and in a calculation) is shared.
    """

    def once(c: Any) -> Any:
        memo = c.memo
        if key in memo:
            return memo[key]
        value = memo[key] = closure(c)
        return value

    return once


def comparison(op: str, left: Compiled, right: Compiled, right_node: Node) -> Compiled:
    """`left op right` with the shortcut for strings; anything else goes through compare()."""
    if op in ORDERINGS:
        order = ORDERINGS[op]

        def ordered(c: Any) -> bool:
            a, b = left(c), right(c)
            if type(a) is NodeSet or type(b) is NodeSet:
                return compare(op, a, b)
            return order(to_number(a), to_number(b))

        return ordered
    equal = op == "="
    if isinstance(right_node, Literal) and type(right_node.value) is str:
        literal = right_node.value
        # An empty field compares as the empty string, a number as numbers do.
        when_empty = (literal == "") is equal
        literal_number = to_number(literal)

        def against_text(c: Any) -> bool:
            a = left(c)
            kind = type(a)
            if kind is str:
                return (a == literal) is equal
            if a is None:
                return when_empty
            if kind is int or kind is float:
                return (to_number(a) == literal_number) is equal
            return compare(op, a, literal)

        return against_text

    def equality(c: Any) -> bool:
        a, b = left(c), right(c)
        if type(a) is str and type(b) is str:
            return (a == b) is equal
        return compare(op, a, b)

    return equality


def arithmetic_of(op: str, left: Compiled, right: Compiled) -> Compiled | None:
    """+, - and * straight on XPath numbers (float results; they cannot raise)."""
    if op == "+":
        return lambda c: to_number(left(c)) + to_number(right(c))
    if op == "-":
        return lambda c: to_number(left(c)) - to_number(right(c))
    if op == "*":
        return lambda c: to_number(left(c)) * to_number(right(c))
    return None


def selected_literal(value: Compiled, choice: Any) -> Compiled:
    """selected(value, 'choice') with the choice's text worked out once."""
    wanted = wanted_choice(choice)

    def selected(c: Any) -> bool:
        chosen = value(c)
        if type(chosen) is list:
            for item in chosen:
                if (item if type(item) is str else to_string(item)) == wanted:
                    return True
            return False
        return wanted in to_string(chosen).split()

    return selected


def regex_literal(value: Compiled, text: Any) -> Compiled:
    """regex(value, 'pattern') with the pattern compiled once (an invalid one never matches)."""
    compiled = pattern(to_string(text))
    if compiled is None:
        return lambda c: False
    search = compiled.search
    return lambda c: search(to_string(value(c))) is not None
