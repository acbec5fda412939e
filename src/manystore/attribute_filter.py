"""Attribute filter expressions of ``list``/``glob`` (``attribute_filter_expression=``).

The language (as in multi-storage-client 1.3.1)::

    expr       := term ("OR" term)*
    term       := factor ("AND" factor)*
    factor     := "(" expr ")" | comparison
    comparison := NAME OP value        OP: = != > >= < <=
    value      := "double-quoted string" | number

A comparison holds when the object's user metadata has the attribute and its value
compares as asked: ``=``/``!=`` compare text; the ordering operators compare numbers when
both sides are numbers, else text. An object without user metadata matches no expression.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .types import ObjectMetadata

__all__ = ["AttributeFilter", "compile_attribute_filter", "matches"]

AttributeFilter = Callable[[Mapping[str, Any]], bool]

_TOKEN = re.compile(
    r"""\s*(?:
    (?P<lparen>\() | (?P<rparen>\)) |
    (?P<op>!=|>=|<=|=|>|<) |
    (?P<string>"(?:[^"\\]|\\.)*") |
    (?P<number>[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?(?![A-Za-z_])) |
    (?P<name>[A-Za-z_][A-Za-z0-9_]*)
    )""",
    re.VERBOSE,
)


def _tokens(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        match = _TOKEN.match(text, pos)
        if match is None or match.lastgroup is None:
            raise ValueError(
                f"invalid attribute filter expression {text!r}: unexpected {text[pos:].strip()[:20]!r} "
                f"at offset {pos}; expected NAME OP VALUE joined by AND/OR, e.g. 'model = \"x\" AND version > 2'"
            )
        kind, value = match.lastgroup, match.group(match.lastgroup)
        if kind == "name" and value in ("AND", "OR"):
            kind = value
        out.append((kind, value))
        pos = match.end()
    return out


def _compare(actual: str, op: str, expected: str) -> bool:
    if op == "=":
        return actual == expected
    if op == "!=":
        return actual != expected
    a: Any
    b: Any
    try:
        a, b = float(actual), float(expected)
    except ValueError:
        a, b = actual, expected
    if op == ">":
        return bool(a > b)
    if op == ">=":
        return bool(a >= b)
    if op == "<":
        return bool(a < b)
    return bool(a <= b)


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokens(text)
        self.pos = 0

    def fail(self, expected: str) -> ValueError:
        found = self.tokens[self.pos][1] if self.pos < len(self.tokens) else "end of expression"
        return ValueError(
            f"invalid attribute filter expression {self.text!r}: expected {expected}, found {found!r}"
        )

    def peek(self) -> str | None:
        return self.tokens[self.pos][0] if self.pos < len(self.tokens) else None

    def take(self, kind: str, expected: str) -> str:
        if self.peek() != kind:
            raise self.fail(expected)
        self.pos += 1
        return self.tokens[self.pos - 1][1]

    def expr(self) -> AttributeFilter:
        left = self.term()
        while self.peek() == "OR":
            self.pos += 1
            right = self.term()
            left = (lambda a, b: lambda m: a(m) or b(m))(left, right)
        return left

    def term(self) -> AttributeFilter:
        left = self.factor()
        while self.peek() == "AND":
            self.pos += 1
            right = self.factor()
            left = (lambda a, b: lambda m: a(m) and b(m))(left, right)
        return left

    def factor(self) -> AttributeFilter:
        if self.peek() == "lparen":
            self.pos += 1
            inner = self.expr()
            self.take("rparen", "')'")
            return inner
        name = self.take("name", "an attribute name or '('")
        op = self.take("op", "an operator (= != > >= < <=)")
        kind = self.peek()
        if kind == "string":
            value = json.loads(self.take("string", "a value"))
        elif kind == "number":
            value = self.take("number", "a value")
        else:
            raise self.fail('a value (a "quoted string" or a number)')
        return lambda m: name in m and _compare(str(m[name]), op, value)


def compile_attribute_filter(expression: str | None) -> AttributeFilter | None:
    """A predicate over user metadata for ``expression`` (``None`` for an empty expression).

    Raises:
        ValueError: The expression does not parse; the message names it and what was expected.
    """
    if expression is None or not expression.strip():
        return None
    if not isinstance(expression, str):
        raise TypeError(f"attribute_filter_expression must be a str, got {type(expression).__name__}")
    parser = _Parser(expression)
    predicate = parser.expr()
    if parser.peek() is not None:
        raise parser.fail("AND, OR or the end of the expression")
    return predicate


def matches(meta: ObjectMetadata, predicate: AttributeFilter | None) -> bool:
    """True if ``predicate`` is ``None`` or holds for ``meta``'s user metadata."""
    if predicate is None:
        return True
    return bool(meta.metadata) and predicate(meta.metadata or {})
