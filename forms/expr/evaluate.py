"""Expression trees compiled into Python closures over an evaluation context.

Compiling resolves every reference against the form version once (an unknown field
or function is an ExpressionError then), so evaluating is a chain of plain calls.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from forms.expr import shapes
from forms.expr.functions import FUNCTIONS
from forms.expr.printer import to_text
from forms.expr.rows import Lineage, RepeatRows, Stack, repeat_lineage
from forms.expr.syntax import (
    Binary,
    Call,
    Current,
    ExpressionError,
    Literal,
    Node,
    Path,
    Ref,
    Unary,
    parse,
)
from forms.expr.values import NodeSet, arithmetic, to_number, to_string

Compiled = Callable[["Context"], Any]
COMPARISONS = frozenset({"=", "!=", "<", "<=", ">", ">="})
ARITHMETIC = frozenset({"+", "-", "*", "div", "mod"})


class Context:
    """What an expression sees: the record, its repeat rows, the row being evaluated."""

    __slots__ = (
        "choice",
        "current",
        "language",
        "memo",
        "now",
        "repeat_rows",
        "rows",
        "stack",
        "values",
        "version",
    )

    def __init__(
        self,
        values: Mapping[str, Any],
        rows: Mapping[str, list[Mapping[str, Any]]] | None = None,
        now: dt.datetime | None = None,
        version: Any = None,
        language: str | None = None,
    ) -> None:
        self.values = values
        self.rows = rows or {}
        self.repeat_rows = RepeatRows(self.rows)
        self.stack: Stack = {}
        self.current: Any = None
        self.now = now or dt.datetime.now(dt.UTC)
        self.choice: Any = None
        self.version = version
        self.language = language
        # Values of clock-only subexpressions, computed once per context (one record).
        self.memo: dict[object, Any] = {}


class Scope:
    """Where an expression sits: its form version, its field, and what it refers to."""

    def __init__(self, version: Any, field: Any = None, choice_filter: bool = False) -> None:
        self.version = version
        self.field = field
        self.choice_filter = choice_filter
        self.references: set[str] = set()
        chain: list[str] = []
        repeat = field.repeat if field is not None else None
        if field is not None and field.type == "repeat":
            repeat = field.name
        while repeat is not None:
            chain.append(repeat)
            repeat = version.fields[repeat].repeat
        self.chain = tuple(reversed(chain))

    def levels_to(self, repeat: str) -> tuple[str | None, Lineage]:
        """Where rows of `repeat` are reached from, and the levels down from there.

        That is the innermost repeat of `chain` that encloses `repeat` (None: the record).
        """
        lineage = repeat_lineage(self.version, repeat)
        shared = 0
        while (
            shared < len(lineage) - 1
            and shared < len(self.chain)
            and lineage[shared][0] == self.chain[shared]
        ):
            shared += 1
        anchor = lineage[shared - 1][0] if shared else None
        return anchor, lineage[shared:]

    def resolve_path(self, path: Path) -> Any:
        fields = self.version.fields
        if path.absolute:
            steps = path.steps[1:]
            for field in fields.values():
                if field.path == steps:
                    return field
            raise ExpressionError(f"no field at the path /{'/'.join(path.steps)}")
        name = path.steps[-1]
        if name in (".", ".."):
            return None
        parent = self.field.parent if self.field is not None else None
        candidates = [field for field in fields.values() if field.xml_name == name]
        near = [field for field in candidates if field.parent == parent]
        if len(near) == 1 or len(candidates) == 1:
            return (near or candidates)[0]
        if name in fields:
            return fields[name]
        raise ExpressionError(f"the path {'/'.join(path.steps)} names no field")


def _reference(field: Any, scope: Scope) -> Compiled:
    """A field's value in the row being evaluated, or its values over the rows it sees."""
    name = field.name
    scope.references.add(name)
    if field.type == "repeat":
        rows = _rows_seen(name, scope)
        return lambda c: NodeSet(list(rows(c)))
    if field.type == "group":
        return lambda c: ""
    repeat = field.repeat
    if repeat is None:
        return lambda c: c.values.get(name)
    if repeat in scope.chain:

        def in_row(c: Context) -> Any:
            entry = c.stack.get(repeat)
            return entry[0].get(name) if entry is not None else None

        return in_row
    rows = _rows_seen(repeat, scope)
    return lambda c: NodeSet([row.get(name) for row in rows(c)])


def _rows_seen(repeat: str, scope: Scope) -> Callable[[Context], Sequence[Mapping[str, Any]]]:
    """The rows of `repeat` an expression in `scope` sees, as ODK resolves the path.

    Those under the row being evaluated of the innermost repeat that holds both the
    expression and `repeat`, else every row of the record. A repeat's own rows are
    seen from its parent row, so `count()` of a repeat counts the rows, not one.
    """
    anchor, levels = scope.levels_to(repeat)
    if anchor is None and len(levels) == 1:
        return lambda c: c.rows.get(repeat, ())
    if anchor is None:
        return lambda c: c.repeat_rows.under(None, levels)

    def under_row(c: Context) -> Sequence[Mapping[str, Any]]:
        entry = c.stack.get(anchor)
        return c.repeat_rows.under(entry[0], levels) if entry is not None else ()

    return under_row


def _indexed_repeat(node: Call, scope: Scope) -> Compiled:
    """indexed-repeat(field, repeat, n[, repeat2, n2 ...]): the field in the n-th row.

    Going down from the record, each repeat named takes the row at its position (from
    1) among the rows under the row taken one level up; a repeat not named keeps the
    position of the row being evaluated, as ODK does, or takes all its rows.
    """
    args = node.args
    if len(args) < 3 or len(args) % 2 == 0:
        raise ExpressionError("indexed-repeat() takes a field, then pairs of repeat and position")
    field = _resolve(args[0], scope)
    if field is None or field.repeat is None or field.type in ("group", "repeat"):
        raise ExpressionError("indexed-repeat() takes a field inside a repeat first")
    scope.references.add(field.name)
    levels = repeat_lineage(scope.version, field.repeat)
    enclosing = {repeat for repeat, _ in levels}
    places: dict[str, Compiled] = {}
    for target, place in zip(args[1::2], args[2::2], strict=True):
        repeat = _resolve(target, scope)
        if repeat is None or repeat.name not in enclosing:
            raise ExpressionError(
                f"indexed-repeat(): {to_text(target)} is not a repeat holding {field.name}"
            )
        scope.references.add(repeat.name)
        places[repeat.name] = compile_node(place, scope)
    name = field.name

    def indexed_repeat(c: Context) -> Any:
        reached: list[Any] = [None]
        for repeat, parent in levels:
            if repeat in places:
                place: int | None = _row_number(places[repeat](c))
            else:
                place = c.stack[repeat][1] if repeat in c.stack else None
            items = c.rows.get(repeat, ())
            reached = [
                items[index]
                for row in reached
                for index in _at(c.repeat_rows.children(repeat, parent, row), place)
            ]
        return reached[0].get(name) if reached else ""

    return indexed_repeat


def _row_number(value: Any) -> int:
    """A position counted from 1 (fractions dropped); 0 for any value that is none."""
    number = to_number(value)
    return int(number) if math.isfinite(number) and number >= 1 else 0


def _at(indexes: Sequence[int], place: int | None) -> Sequence[int]:
    """Every index when `place` is None, else the one at `place` (from 1) if there is one."""
    if place is None:
        return indexes
    return indexes[place - 1 : place] if place >= 1 else ()


def _position(scope: Scope) -> Compiled:
    if not scope.chain:
        return lambda c: 1.0
    innermost = scope.chain[-1]
    return lambda c: float(c.stack[innermost][1]) if innermost in c.stack else 1.0


def _lazy_call(node: Call, args: list[Compiled]) -> Compiled | None:
    if node.name == "if":
        if len(args) != 3:
            raise ExpressionError("if() takes 3 arguments")
        test, then, otherwise = args
        test = shapes.as_condition(node.args[0], test)
        return lambda c: then(c) if test(c) else otherwise(c)
    if node.name == "coalesce":
        if len(args) != 2:
            raise ExpressionError("coalesce() takes 2 arguments")
        first, second = args

        def coalesce(c: Context) -> Any:
            value = first(c)
            return value if to_string(value) != "" else second(c)

        return coalesce
    return None


def _choice_name(node: Call, args: list[Compiled], scope: Scope) -> Compiled:
    if len(node.args) != 2:
        raise ExpressionError("jr:choice-name() takes 2 arguments")
    target = node.args[1]
    if not isinstance(target, Literal) or not isinstance(target.value, str):
        raise ExpressionError("jr:choice-name() names its field in a text literal")
    text = target.value.strip()
    inner = parse(text) if text.startswith(("${", "/", ".")) else Path((text,))
    field = _resolve(inner, scope)
    if field is None or not field.options:
        raise ExpressionError(f"jr:choice-name(): {text!r} is not a select field")
    scope.references.add(field.name)
    labels = {choice.name: choice.label for choice in field.options}
    value = args[0]
    default_language = scope.version.default_language

    def choice_name(c: Context) -> str:
        label = labels.get(to_string(value(c)))
        if not label:
            return ""
        language = c.language if c.language in label else default_language
        return label.get(language) or next(iter(label.values()))

    return choice_name


def _resolve(node: Node, scope: Scope) -> Any:
    if isinstance(node, Ref):
        field = scope.version.fields.get(node.name)
        if field is None:
            raise ExpressionError(f"${{{node.name}}} is not a field of this form")
        return field
    if isinstance(node, Path):
        return scope.resolve_path(node)
    return None


def _call(node: Call, scope: Scope) -> Compiled:
    if node.name == "position":
        return _position(scope)
    if node.name == "indexed-repeat":
        return _indexed_repeat(node, scope)
    args = [compile_node(arg, scope) for arg in node.args]
    lazy = _lazy_call(node, args)
    if lazy is not None:
        return lazy
    if node.name == "jr:choice-name":
        return _choice_name(node, args, scope)
    entry = FUNCTIONS.get(node.name)
    if entry is None:
        raise ExpressionError(f"unknown function {node.name}()")
    least, most, function = entry
    if not least <= len(args) <= most:
        wanted = str(least) if least == most else f"{least} to {most}"
        raise ExpressionError(f"{node.name}() takes {wanted} arguments, not {len(args)}")
    special = _special_call(node, args)
    if special is not None:
        return special
    if not args:
        return function
    pure = getattr(function, "__wrapped__", None)
    if len(args) == 1:
        (only,) = args
        if pure is not None:
            return lambda c: pure(only(c))
        return lambda c: function(c, only(c))
    if len(args) == 2:
        first, second = args
        if pure is not None:
            return lambda c: pure(first(c), second(c))
        return lambda c: function(c, first(c), second(c))
    return lambda c: function(c, *(arg(c) for arg in args))


def _special_call(node: Call, args: list[Compiled]) -> Compiled | None:
    """A shorter closure for calls real forms make on every record, or None."""
    literal = node.args[-1] if node.args else None
    if node.name == "not":
        condition = shapes.as_condition(node.args[0], args[0])
        return lambda c: not condition(c)
    if not isinstance(literal, Literal):
        return None
    if node.name == "selected":
        return shapes.selected_literal(args[0], literal.value)
    if node.name == "regex":
        return shapes.regex_literal(args[0], literal.value)
    return None


def _binary(node: Binary, scope: Scope) -> Compiled:
    left, right = compile_node(node.left, scope), compile_node(node.right, scope)
    op = node.op
    if op == "and" or op == "or":
        left = shapes.as_condition(node.left, left)
        right = shapes.as_condition(node.right, right)
        if op == "and":
            return lambda c: left(c) and right(c)
        return lambda c: left(c) or right(c)
    if op in COMPARISONS:
        return shapes.comparison(op, left, right, node.right)
    if op in ARITHMETIC:
        return shapes.arithmetic_of(op, left, right) or (
            lambda c: arithmetic(op, left(c), right(c))
        )

    def union(c: Context) -> NodeSet:
        items = []
        for side in (left(c), right(c)):
            items.extend(side.items if type(side) is NodeSet else [side])
        return NodeSet(items)

    return union


def compile_node(node: Node, scope: Scope) -> Compiled:
    """A closure evaluating `node`; references are resolved now."""
    if shapes.worth_memoising(node):
        return shapes.memoised(_compile_node(node, scope), to_text(node))
    return _compile_node(node, scope)


def compile_condition(node: Node, scope: Scope) -> Compiled:
    """A closure giving the XPath boolean of `node` (for relevant, required, constraint)."""
    return shapes.as_condition(node, compile_node(node, scope))


def _compile_node(node: Node, scope: Scope) -> Compiled:
    if isinstance(node, Literal):
        value = node.value
        return lambda c: value
    if isinstance(node, Current):
        if scope.choice_filter:
            return lambda c: c.choice.name if c.choice is not None else ""
        return lambda c: c.current
    if isinstance(node, Ref):
        return _reference(_resolve(node, scope), scope)
    if isinstance(node, Path):
        if scope.choice_filter and not node.absolute and len(node.steps) == 1:
            column = node.steps[0]
            if column != "..":
                return lambda c: _choice_column(c.choice, column)
        field = scope.resolve_path(node)
        if field is None:
            return _position_row(scope)
        return _reference(field, scope)
    if isinstance(node, Call):
        return _call(node, scope)
    if isinstance(node, Unary):
        operand = compile_node(node.operand, scope)
        return lambda c: -to_number(operand(c))
    return _binary(node, scope)


def _position_row(scope: Scope) -> Compiled:
    if not scope.chain:
        return lambda c: c.current
    innermost = scope.chain[-1]
    return lambda c: c.stack[innermost][0] if innermost in c.stack else ""


def _choice_column(choice: Any, column: str) -> str:
    if choice is None:
        return ""
    if column == "name":
        return choice.name
    return choice.extra.get(column, "")


def compile_text(text: str, scope: Scope, condition: bool = False) -> Compiled:
    """Parse and compile one expression text (as a condition: its XPath boolean)."""
    node = parse(text)
    return compile_condition(node, scope) if condition else compile_node(node, scope)
