"""The expression tree, and the parser from XLSForm/XPath text into it.

The subset real forms use: `${name}`, `.`, `..` and relative or absolute paths,
comparisons, and/or/not, arithmetic (+ - * div mod), string and number literals and
function calls. The parser is a hand-written recursive descent over a small tokenizer;
nothing is ever passed to eval or exec.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


class ExpressionError(ValueError):
    """An expression that cannot be parsed or checked; the message says where."""


@dataclass(frozen=True, slots=True)
class Literal:
    value: str | float


@dataclass(frozen=True, slots=True)
class Ref:
    """`${name}`: the value of another field."""

    name: str


@dataclass(frozen=True, slots=True)
class Current:
    """`.`: the value of the field the expression belongs to."""


@dataclass(frozen=True, slots=True)
class Path:
    """A path such as `../name`, `/data/group/name` or a bare name in a choice filter."""

    steps: tuple[str, ...]
    absolute: bool = False


@dataclass(frozen=True, slots=True)
class Call:
    name: str
    args: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Unary:
    op: str
    operand: Node


@dataclass(frozen=True, slots=True)
class Binary:
    op: str
    left: Node
    right: Node


Node = Literal | Ref | Current | Path | Call | Unary | Binary

TOKEN_RE = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<ref>\$\{\s*(?P<refname>[A-Za-z_][\w.\-]*)\s*\})
  | (?P<number>\d+(\.\d*)?|\.\d+)
  | (?P<string>'[^']*'|"[^"]*")
  | (?P<op>!=|<=|>=|=|<|>|\+|-|\*|\(|\)|,|\.\.|\.|/|\|)
  | (?P<name>[A-Za-z_][\w\-]*(:[A-Za-z_][\w\-]*)?)
    """,
    re.VERBOSE,
)

WORD_OPERATORS = {"and", "or", "div", "mod"}
PRECEDENCE = [
    ("or",),
    ("and",),
    ("=", "!="),
    ("<", "<=", ">", ">="),
    ("+", "-"),
    ("*", "div", "mod"),
]


@dataclass(frozen=True, slots=True)
class Token:
    kind: str
    text: str
    at: int


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    at = 0
    while at < len(text):
        match = TOKEN_RE.match(text, at)
        if match is None:
            raise ExpressionError(f"unexpected {text[at]!r} at position {at + 1}")
        kind = match.lastgroup
        if kind == "refname":
            kind = "ref"
        if kind == "ref":
            tokens.append(Token("ref", match.group("refname"), at))
        elif kind != "space":
            tokens.append(Token(kind, match.group(kind), at))
        at = match.end()
    tokens.append(Token("end", "", len(text)))
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.index = 0

    @property
    def token(self) -> Token:
        return self.tokens[self.index]

    def advance(self) -> Token:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def fail(self, expected: str) -> ExpressionError:
        token = self.token
        found = "the end" if token.kind == "end" else repr(token.text)
        return ExpressionError(f"expected {expected} but found {found} at position {token.at + 1}")

    def expect(self, text: str) -> None:
        if self.token.text != text or self.token.kind not in ("op", "name"):
            raise self.fail(repr(text))
        self.advance()

    def is_operator(self, level: tuple[str, ...]) -> bool:
        token = self.token
        if token.kind == "op":
            return token.text in level
        return token.kind == "name" and token.text in WORD_OPERATORS and token.text in level

    def binary(self, depth: int = 0) -> Node:
        if depth == len(PRECEDENCE):
            return self.unary()
        level = PRECEDENCE[depth]
        node = self.binary(depth + 1)
        while self.is_operator(level):
            op = self.advance().text
            node = Binary(op, node, self.binary(depth + 1))
        return node

    def unary(self) -> Node:
        if self.token.kind == "op" and self.token.text == "-":
            self.advance()
            return Unary("-", self.unary())
        return self.union()

    def union(self) -> Node:
        node = self.primary()
        while self.token.kind == "op" and self.token.text == "|":
            self.advance()
            node = Binary("|", node, self.primary())
        return node

    def primary(self) -> Node:
        token = self.token
        if token.kind == "number":
            self.advance()
            return Literal(float(token.text))
        if token.kind == "string":
            self.advance()
            return Literal(token.text[1:-1])
        if token.kind == "ref":
            self.advance()
            return Ref(token.text)
        if token.kind == "op" and token.text == "(":
            self.advance()
            node = self.binary()
            self.expect(")")
            return node
        if token.kind == "op" and token.text in (".", "..", "/"):
            return self.path()
        if token.kind == "name":
            if self.tokens[self.index + 1].text == "(":
                return self.call()
            return self.path()
        raise self.fail("a value")

    def call(self) -> Node:
        name = self.advance().text
        self.expect("(")
        args: list[Node] = []
        if not (self.token.kind == "op" and self.token.text == ")"):
            args.append(self.binary())
            while self.token.kind == "op" and self.token.text == ",":
                self.advance()
                args.append(self.binary())
        self.expect(")")
        return Call(name, tuple(args))

    def path(self) -> Node:
        absolute = False
        steps: list[str] = []
        if self.token.text == "/":
            absolute = True
            self.advance()
        while True:
            token = self.token
            if token.kind == "name" or (token.kind == "op" and token.text in (".", "..")):
                steps.append(self.advance().text)
            else:
                raise self.fail("a path step")
            if self.token.kind == "op" and self.token.text == "/":
                self.advance()
                continue
            break
        if steps == ["."] and not absolute:
            return Current()
        return Path(tuple(steps), absolute)

    def parse(self) -> Node:
        if self.token.kind == "end":
            raise ExpressionError("the expression is empty")
        node = self.binary()
        if self.token.kind != "end":
            raise self.fail("an operator or the end")
        return node


def parse(text: str) -> Node:
    """The tree of one expression; ExpressionError says what is wrong and where."""
    if not isinstance(text, str):
        raise ExpressionError("an expression is text")
    return _Parser(text).parse()


def walk(node: Node):
    """Every node of the tree, the root first."""
    yield node
    if isinstance(node, Call):
        for arg in node.args:
            yield from walk(arg)
    elif isinstance(node, Unary):
        yield from walk(node.operand)
    elif isinstance(node, Binary):
        yield from walk(node.left)
        yield from walk(node.right)
