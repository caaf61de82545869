"""Compile a rule tree to one polars expression over the event table: one method per node class.

A fact test is decided once, in Python, and becomes a literal; a fact that is unknown makes its
test false, so unknown facts never make a rule fire. Regexes run on polars' linear-time engine;
a pattern it cannot compile (look-around, back-references) runs through the `regex` package with
a timeout per value instead (`emblens rules lint` says so).
"""

from __future__ import annotations

from functools import lru_cache

import polars as pl

from emblens.combiners import Facts, Mark
from emblens.events.schema import SCHEMA
from emblens.patterns.backtracking import RegexBudget
from emblens.patterns.linear import rust_ok
from emblens.rules import tree as t
from emblens.rules.operators import OPERATORS, REGEX_OPERATORS, Operator


@lru_cache(maxsize=8192)
def is_static(node: t.Node) -> bool:
    """Whether a tree's expression is the same whatever the facts and the run (no fact test, no
    `$fact`, no time order, no pattern for the backtracking engine, whose searches spend the run's
    budget): then it is built once and reused."""
    for leaf, _ in t.walk(node):
        if isinstance(leaf, (t.FactTest, t.Order)):
            return False
        if isinstance(leaf, t.Field) and any(isinstance(op.value, t.FactRef) or (
                op.name in REGEX_OPERATORS and isinstance(op.value, str) and not rust_ok(op.value))
                for op in leaf.pred.ops):
            return False
    return True


@lru_cache(maxsize=8192)
def _static(node: t.Node, absent: frozenset[tuple[str, str]]) -> pl.Expr:
    return Compiler(Facts(), absent, RegexBudget()).build(node)


@lru_cache(maxsize=8192)
def column_regexes(node: t.Node) -> frozenset[tuple[str, str]]:
    """(column, pattern) of every regex a tree tests a column with."""
    return frozenset((leaf.column, op.value) for leaf, _ in t.walk(node) if isinstance(leaf, t.Field)
                     for op in leaf.pred.ops if op.name in REGEX_OPERATORS and isinstance(op.value, str))


class Compiler:
    """`absent`: (column, pattern) pairs known to match no value of the column (none of the
    pattern's literals occurs in it: `emblens.patterns.literals`); their test is `false` without
    compiling the pattern. `budget`: the run's time for the backtracking engine."""

    def __init__(self, facts: Facts, absent: frozenset[tuple[str, str]] = frozenset(),
                 budget: RegexBudget | None = None) -> None:
        self.facts = facts
        self.budget = budget if budget is not None else RegexBudget()
        self.values = facts.as_values()
        self.absent = absent
        self.decided: dict[tuple[str, t.Pred], bool] = {}

    def node(self, node: t.Node) -> pl.Expr:
        if not is_static(node):
            return self.build(node)
        return _static(node, self.absent & column_regexes(node) if self.absent else frozenset())

    def build(self, node: t.Node) -> pl.Expr:
        match node:
            case t.AnyOf(children=children):
                live = [c for c in children if not self.false(c)]
                return pl.any_horizontal([self.node(c) for c in live]) if live else pl.lit(False)
            case t.AllOf(children=children):
                if any(self.false(c) for c in children):
                    return pl.lit(False)
                return pl.all_horizontal([self.node(c) for c in children])
            case t.Not(child=child):
                return ~self.node(child)
            case t.Order(how=how, mark=mark):
                return self.order(how, mark)
            case t.FactTest(fact=fact, pred=pred):
                return pl.lit(self.fact_test(fact, pred))
            case t.Field(column=column, pred=pred):
                return self.predicate(pl.col(column), column, pred)
        raise AssertionError(node)

    def fact_test(self, fact: str, pred: t.Pred) -> bool:
        """A fact test, decided once per analysis (a regex one runs polars' engine)."""
        key = (fact, pred)
        if key not in self.decided:
            self.decided[key] = fact_holds(self.values.get(fact), pred, self.values, self.budget)
        return self.decided[key]

    def false(self, node: t.Node) -> bool:
        """Whether a tree is false on every row, known before it is built: a regex none of whose
        literals occur, an unknown fact, a fact test that fails, no mark to order by. An `all`
        holding one is not built at all, and an `any` leaves it out (their other parts would
        still be built, and their patterns compiled, for nothing)."""
        match node:
            case t.AllOf(children=children):
                return any(self.false(c) for c in children)
            case t.AnyOf(children=children):
                return all(self.false(c) for c in children)
            case t.FactTest(fact=fact, pred=pred):
                return not self.fact_test(fact, pred)
            case t.Order(mark=mark):
                return not (self.facts.ready if mark == "ready" else self.facts.loading)
            case t.Field(column=column, pred=pred):
                return any((op.name == "regex" and (column, op.value) in self.absent)
                           or (isinstance(op.value, t.FactRef) and self.values.get(op.value.name) in (None, []))
                           for op in pred.ops)
        return False

    def order(self, how: str, mark: str) -> pl.Expr:
        marks: list[Mark] = self.facts.ready if mark == "ready" else self.facts.loading
        if not marks:
            return pl.lit(False)
        exprs = []
        for m in marks:
            if how == "before":
                same = (pl.col("source") == m.source) & (pl.col("line") < m.line)
                other = (pl.col("source") != m.source) & (pl.col("ts") < m.ts) if m.ts else pl.lit(False)
            else:
                same = (pl.col("source") == m.source) & (pl.col("line") > m.line)
                other = (pl.col("source") != m.source) & (pl.col("ts") > m.ts) if m.ts else pl.lit(False)
            exprs.append((same | other).fill_null(False))
        return pl.any_horizontal(exprs)

    def predicate(self, col: pl.Expr, column: str, pred: t.Pred) -> pl.Expr:
        parts = [self.op(col, column, op) for op in pred.ops]
        out = pl.all_horizontal(parts) if len(parts) > 1 else parts[0]
        return out.fill_null(False)

    def op(self, col: pl.Expr, column: str, op: t.Op) -> pl.Expr:
        value = op.value
        if isinstance(value, t.FactRef):
            value = self.values.get(value.name)
            if value is None or value == []:
                return pl.lit(False)  # unknown fact: no verdict
        if op.name == "null":
            return col.is_null()
        return OPERATORS[op.name].expr(col, value, text=SCHEMA[column] == pl.String(),
                                       absent=op.name in REGEX_OPERATORS and (column, value) in self.absent,
                                       budget=self.budget)


def fact_holds(actual: object, pred: t.Pred, values: dict[str, object], budget: RegexBudget) -> bool:
    """A predicate on one fact: a scalar, or a list (true when an element satisfies it)."""
    for op in pred.ops:
        value = values.get(op.value.name) if isinstance(op.value, t.FactRef) else op.value
        if isinstance(op.value, t.FactRef) and value in (None, []):
            return False
        if op.name in ("exists", "null"):
            present = actual not in (None, [], "")
            if present != (bool(value) if op.name == "exists" else False):
                return False
            continue
        if actual in (None, []):
            return False
        items = actual if isinstance(actual, list) else [actual]
        operator = OPERATORS[op.name]
        if operator.negated:
            if not all(_test(operator, v, value, budget) for v in items):
                return False
        elif not any(_test(operator, v, value, budget) for v in items):
            return False
    return True


def _test(operator: Operator, v: object, value: object, budget: RegexBudget) -> bool:
    try:
        return operator.test(v, value, budget)
    except TypeError:   # a number compared with text: no verdict
        return False
