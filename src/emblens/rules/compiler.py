"""Compile a rule tree to one polars expression over the event table: one method per node class.

A fact test is decided once, in Python, and becomes a literal; a fact that is unknown makes its
test false, so unknown facts never make a rule fire. Regexes run on polars' linear-time engine;
a pattern it cannot compile (look-around, back-references) runs through the `regex` package with
a timeout per value instead (`emblens rules lint` says so).
"""

from __future__ import annotations

import re
from functools import lru_cache

import polars as pl

from emblens.combiners import Facts, Mark
from emblens.events.schema import SCHEMA
from emblens.patterns import backtracking
from emblens.patterns.backtracking import RegexBudget
from emblens.patterns.linear import rust_ok
from emblens.rules import tree as t


def fact_search(pattern: str, value: str, budget: RegexBudget) -> bool:
    """A regex test of one fact's value: on polars' engine, as the same pattern runs on a column,
    when it takes the pattern; else on the backtracking one, within the run's budget."""
    if rust_ok(pattern):
        return bool(pl.Series([value], dtype=pl.String).str.contains(pattern)[0])
    return bool(backtracking.search(pattern, value, budget))


@lru_cache(maxsize=8192)
def is_static(node: t.Node) -> bool:
    """Whether a tree's expression is the same whatever the facts and the run (no fact test, no
    `$fact`, no time order, no pattern for the backtracking engine, whose searches spend the run's
    budget): then it is built once and reused."""
    for leaf, _ in t.walk(node):
        if isinstance(leaf, (t.FactTest, t.Order)):
            return False
        if isinstance(leaf, t.Field) and any(isinstance(op.value, t.FactRef) or (
                op.name in ("regex", "not_regex") and isinstance(op.value, str) and not rust_ok(op.value))
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
                     for op in leaf.pred.ops if op.name in ("regex", "not_regex") and isinstance(op.value, str))


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
        name = op.name
        if name == "null":
            return col.is_null()
        if name == "equals":
            return col == value
        if name == "not_equals":
            return (col != value) & col.is_not_null()
        if name in ("in", "not_in"):
            values = list(value) if isinstance(value, (tuple, list)) else [value]
            hit = col.is_in(values)
            return hit if name == "in" else (~hit & col.is_not_null())
        if name == "exists":
            present = col.is_not_null() & ((col != "") if SCHEMA[column] == pl.String() else pl.lit(True))
            return present if value else ~present
        if name in ("regex", "not_regex"):
            if (column, value) in self.absent:
                hit = pl.lit(False)
            elif rust_ok(value):
                hit = col.str.contains(value)
            else:
                hit = col.map_elements(lambda v, p=value, b=self.budget: backtracking.search(p, v, b), return_dtype=pl.Boolean)
            return hit if name == "regex" else (~hit & col.is_not_null())
        if name in ("contains", "icontains", "not_contains"):
            needles = [str(n) for n in (value if isinstance(value, (tuple, list)) else [value])]
            hit = col.str.contains_any(needles, ascii_case_insensitive=(name == "icontains"))
            return (~hit & col.is_not_null()) if name == "not_contains" else hit
        if name == "startswith":
            needles = value if isinstance(value, (tuple, list)) else [value]
            return pl.any_horizontal([col.str.starts_with(str(n)) for n in needles])
        if name in ("gt", "gte", "lt", "lte"):
            return {"gt": col > value, "gte": col >= value, "lt": col < value, "lte": col <= value}[name]
        if name in ("version_lt", "version_gte"):
            key, target = _version_key_expr(col), version_key(str(value))
            return (key < target) if name == "version_lt" else (key >= target)
        raise AssertionError(name)  # the loader accepts only known operators


def version_key(text: str) -> int:
    nums = [int(n) for n in re.findall(r"\d+", text)[:3]] + [0, 0, 0]
    return nums[0] * 1_000_000 + nums[1] * 1_000 + nums[2]


def _version_key_expr(col: pl.Expr) -> pl.Expr:
    parts = col.str.extract_groups(r"^v?(?P<a>\d+)(?:\.(?P<b>\d+))?(?:\.(?P<c>\d+))?")
    return (
        parts.struct.field("a").cast(pl.Int64) * 1_000_000
        + parts.struct.field("b").cast(pl.Int64).fill_null(0) * 1_000
        + parts.struct.field("c").cast(pl.Int64).fill_null(0)
    )


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
        if op.name in ("not_equals", "not_in", "not_regex", "not_contains"):
            if not all(_test(op.name, v, value, budget) for v in items):
                return False
        elif not any(_test(op.name, v, value, budget) for v in items):
            return False
    return True


def _test(name: str, v: object, value: object, budget: RegexBudget) -> bool:
    values = list(value) if isinstance(value, (tuple, list)) else [value]
    try:
        match name:
            case "equals":
                return v == value
            case "not_equals":
                return v != value
            case "in":
                return v in values
            case "not_in":
                return v not in values
            case "regex":
                return fact_search(str(value), str(v), budget)
            case "not_regex":
                return not fact_search(str(value), str(v), budget)
            case "contains":
                return any(str(n) in str(v) for n in values)
            case "icontains":
                return any(str(n).lower() in str(v).lower() for n in values)
            case "not_contains":
                return not any(str(n) in str(v) for n in values)
            case "startswith":
                return any(str(v).startswith(str(n)) for n in values)
            case "gt":
                return v > value  # type: ignore[operator]
            case "gte":
                return v >= value  # type: ignore[operator]
            case "lt":
                return v < value  # type: ignore[operator]
            case "lte":
                return v <= value  # type: ignore[operator]
            case "version_lt":
                return version_key(str(v)) < version_key(str(value))
            case "version_gte":
                return version_key(str(v)) >= version_key(str(value))
    except TypeError:   # a number compared with text: no verdict
        return False
    raise AssertionError(name)
