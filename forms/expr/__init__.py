"""The expression language: XLSForm/XPath text parsed into trees and compiled to closures."""

from forms.expr.evaluate import Context, Scope, compile_node, compile_text
from forms.expr.printer import to_text
from forms.expr.syntax import ExpressionError, Node, parse, walk
from forms.expr.values import NodeSet, to_boolean, to_number, to_string

__all__ = [
    "Context",
    "ExpressionError",
    "Node",
    "NodeSet",
    "Scope",
    "compile_node",
    "compile_text",
    "parse",
    "to_boolean",
    "to_number",
    "to_string",
    "to_text",
    "walk",
]
