"""Expression trees back to text, with only the parentheses the grammar needs."""

from __future__ import annotations

import math

from forms.expr.syntax import PRECEDENCE, Binary, Call, Current, Literal, Node, Path, Ref, Unary
from forms.expr.values import format_number

_LEVEL = {op: depth for depth, ops in enumerate(PRECEDENCE) for op in ops}
_LEVEL["|"] = len(PRECEDENCE) + 1
_UNARY_LEVEL = len(PRECEDENCE)


def _number(value: float) -> str:
    if math.isnan(value) or math.isinf(value):
        # No literal spells these; an equivalent expression does.
        return (
            {True: "(1 div 0)", False: "(-1 div 0)"}[value > 0]
            if math.isinf(value)
            else "(0 div 0)"
        )
    return format_number(value)


def _string(value: str) -> str:
    if "'" not in value:
        return f"'{value}'"
    if '"' not in value:
        return f'"{value}"'
    # A text holding both quote marks has no literal; concat() rebuilds it.
    parts = [_string(part) for part in value.split("'")]
    return "concat(" + ', "\'", '.join(parts) + ")"


def _level(node: Node) -> int:
    if isinstance(node, Binary):
        return _LEVEL[node.op]
    if isinstance(node, Unary):
        return _UNARY_LEVEL
    return _UNARY_LEVEL + 2


def to_text(node: Node) -> str:
    """The text of a tree; `parse(to_text(tree))` evaluates as `tree` does."""
    if isinstance(node, Literal):
        if isinstance(node.value, str):
            return _string(node.value)
        return _number(node.value)
    if isinstance(node, Ref):
        return "${" + node.name + "}"
    if isinstance(node, Current):
        return "."
    if isinstance(node, Path):
        return ("/" if node.absolute else "") + "/".join(node.steps)
    if isinstance(node, Call):
        return f"{node.name}({', '.join(to_text(arg) for arg in node.args)})"
    if isinstance(node, Unary):
        operand = to_text(node.operand)
        if _level(node.operand) <= _UNARY_LEVEL or operand.startswith("-"):
            operand = f"({operand})"
        return f"-{operand}"
    level = _LEVEL[node.op]
    left, right = to_text(node.left), to_text(node.right)
    if _level(node.left) < level:
        left = f"({left})"
    # Operators of one level group to the left, so an equal right operand needs brackets.
    if _level(node.right) <= level:
        right = f"({right})"
    return f"{left} {node.op} {right}"
