"""The typed rule tree: frozen node classes, each with the file and line it was written at.

The loader builds these from YAML; the compiler (polars), the prefilter, the captures and lint
each walk them with one dispatch (`match` on the node class). A node never holds raw YAML.

    Field("http_status", Pred((Op("equals", 401),)))     {http_status: 401}
    AllOf((...)), AnyOf((...)), Not(node)                 all: [...], any: [...], not: {...}
    Order("before", "ready")                             {before: ready}
    FactTest("served_models", Pred(...))                 {facts: {served_models: ...}}
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from emblens.rules.operators import OPERATORS, REGEX_OPERATORS


@dataclass(frozen=True)
class Loc:
    path: str
    line: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line}"


@dataclass(frozen=True)
class FactRef:
    """A value written `$name`: the fact's value at evaluation time."""

    name: str


@dataclass(frozen=True)
class Op:
    name: str                 # an operator of operators.OPERATORS, or "null" (the column is absent: `col: null`)
    value: object             # str | int | float | bool | tuple | FactRef | None
    loc: Loc = field(compare=False, default=Loc("", 0))


@dataclass(frozen=True)
class Pred:
    ops: tuple[Op, ...]       # all must hold


@dataclass(frozen=True)
class Node:
    loc: Loc = field(compare=False, kw_only=True, default=Loc("", 0))


@dataclass(frozen=True)
class AnyOf(Node):
    children: tuple[Node, ...]


@dataclass(frozen=True)
class AllOf(Node):
    children: tuple[Node, ...]


@dataclass(frozen=True)
class Not(Node):
    child: Node


@dataclass(frozen=True)
class Order(Node):
    how: str                  # before | after
    mark: str                 # ready | loading


@dataclass(frozen=True)
class FactTest(Node):
    fact: str
    pred: Pred


@dataclass(frozen=True)
class Field(Node):
    column: str
    pred: Pred


def walk(node: Node, negated: bool = False) -> Iterator[tuple[Node, bool]]:
    """Every leaf (Field, FactTest, Order) with whether it sits under an odd number of `not`s."""
    match node:
        case AnyOf(children=children) | AllOf(children=children):
            for child in children:
                yield from walk(child, negated)
        case Not(child=child):
            yield from walk(child, not negated)
        case _:
            yield node, negated


def depth(node: Node) -> int:
    match node:
        case AnyOf(children=children) | AllOf(children=children):
            return 1 + max((depth(c) for c in children), default=0)
        case Not(child=child):
            return 1 + depth(child)
        case _:
            return 1


def regexes(node: Node) -> Iterator[tuple[Op, str]]:
    """(op, pattern) of every regex in the tree, negated ones included."""
    for leaf, _ in walk(node):
        if isinstance(leaf, (Field, FactTest)):
            for op in leaf.pred.ops:
                if op.name in REGEX_OPERATORS and isinstance(op.value, str):
                    yield op, op.value


def captures(node: Node) -> list[tuple[str, str]]:
    """(column, regex) of the patterns with named groups, in rule order: where message values
    come from. Negated patterns capture nothing."""
    out = []
    for leaf, negated in walk(node):
        if isinstance(leaf, Field) and not negated:
            out += [(leaf.column, op.value) for op in leaf.pred.ops
                    if op.name == "regex" and isinstance(op.value, str) and "(?P<" in op.value]
    return out


def text_patterns(node: Node, line_columns: frozenset[str]) -> list[str]:
    """Regex fragments (for polars' engine) that a line must contain for this tree to match it
    through a text column: the prefilter. Negated patterns say nothing about which lines matter.
    Of the conjuncts of an `all` (or the operators of one field), one is enough: a line must
    match each of them, so the prefilter keeps it for the most selective one. Keeping a line for
    every conjunct would keep every line a loose helper pattern (say `(?i)embed`) matches.

    >>> a, b = Field("message", Pred((Op("regex", "(?i)embed"),))), Field("message", Pred((Op("regex", "Input length of [0-9]+"),)))
    >>> text_patterns(AllOf((a, b)), frozenset({"message"})), text_patterns(AnyOf((a, b)), frozenset({"message"}))
    (['Input length of [0-9]+'], ['(?i)embed', 'Input length of [0-9]+'])
    """
    out: list[str] = []
    match node:
        case AnyOf(children=children):
            for child in children:
                out += [p for p in text_patterns(child, line_columns) if p not in out]
        case AllOf(children=children):
            options = [found for child in children if (found := text_patterns(child, line_columns))]
            out = max(options, key=_selectivity) if options else []
        case Field(column=column, pred=pred) if column in line_columns:
            options = [found for op in pred.ops if (found := _op_patterns(op))]
            out = max(options, key=_selectivity) if options else []
    return out


def _op_patterns(op: Op) -> list[str]:
    operator = OPERATORS.get(op.name)
    return operator.patterns(op.value) if operator is not None else []


def _selectivity(patterns: list[str]) -> int:
    """How many literal characters the weakest alternative holds (a rough guide)."""
    return min(len(re.sub(r"\\.|[][(){}?*+|^$.:<>=!]", "", p)) for p in patterns)


def facts_named(node: Node) -> Iterator[tuple[str, Loc]]:
    """Every fact a tree tests or refers to (`facts:` names and `$name` values)."""
    for leaf, _ in walk(node):
        if isinstance(leaf, FactTest):
            yield leaf.fact, leaf.loc
        if isinstance(leaf, (Field, FactTest)):
            for op in leaf.pred.ops:
                if isinstance(op.value, FactRef):
                    yield op.value.name, op.loc
