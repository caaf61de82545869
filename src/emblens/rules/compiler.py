"""Compile a rule's `match` tree to one polars expression over the event table.

Nodes (a mapping; its keys are ANDed):
    any: [node, ...]          at least one
    all: [node, ...]          every one
    not: node                 negation
    before: ready|loading     the event precedes the server's ready / loading line
    after:  ready|loading     (same source: by line; across sources: by time, when both are known)
    facts: {fact: predicate}  a condition on the facts, true or false for every event
    <column>: predicate       a condition on an event-table column

Predicates: a scalar (equals), a list (in), null (absent), or a mapping of operators:
    equals not_equals in not_in regex not_regex contains icontains not_contains startswith
    gt gte lt lte exists version_lt version_gte
A value may be `$fact` (e.g. `not_in: $served_models`). A fact that is unknown (no server log)
makes the predicate false: unknown facts never make a rule fire.

Regexes run on polars' linear-time engine. A pattern it cannot compile (look-around,
back-references) runs through the `regex` package with a per-match timeout instead.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import polars as pl
import regex as slow_regex

from emblens.errors import RuleError
from emblens.facts import Facts, Mark
from emblens.rules.loader import Rule, line_of
from emblens.schema import SCHEMA

OPS = {
    "equals", "not_equals", "in", "not_in", "regex", "not_regex", "contains", "icontains", "not_contains",
    "startswith", "gt", "gte", "lt", "lte", "exists", "version_lt", "version_gte",
}
NODE_KEYS = {"any", "all", "not", "before", "after", "facts"}
MARKS = {"ready", "loading"}
FACT_NAMES = {
    "served_models", "model_paths", "listen_ports", "listen_port", "api_key_required", "max_model_len",
    "server_ready", "server_loading", "server_log",
}
# columns whose text comes straight from a line: only their patterns can prefilter lines
LINE_TEXT_COLUMNS = {"message", "text", "exc_message", "exc_root_message", "exc_type", "exc_root_type", "resp_error"}
TEXT_OPS = {"regex", "contains", "icontains", "startswith"}
REGEX_TIMEOUT_S = 0.05
_NUMERIC = (pl.Int64, pl.Float64)


def _is_fact_name(name: str) -> bool:
    return name in FACT_NAMES or name.endswith("_version")


def rust_ok(pattern: str) -> bool:
    """Whether polars' (Rust) regex engine accepts the pattern."""
    try:
        pl.Series([""], dtype=pl.String).str.contains(pattern)
        return True
    except pl.exceptions.PolarsError:
        return False


def _slow_search(pattern: str):
    compiled = slow_regex.compile(pattern)

    def search(value: str | None) -> bool | None:
        if value is None:
            return None
        try:
            return compiled.search(value, timeout=REGEX_TIMEOUT_S) is not None
        except TimeoutError:
            return False

    return search


# -- validation (at load) -----------------------------------------------------------------------
def validate(rule: Rule) -> None:
    _check_node(rule.match, rule, line_of(rule.match))
    if rule.supporting is not None:
        _check_node(rule.supporting, rule, line_of(rule.supporting))
    for name, pred in rule.where.items():
        if not _is_fact_name(name):
            raise RuleError(f"unknown fact {name!r} in where; known: {', '.join(sorted(FACT_NAMES))}, <software>_version",
                            path=rule.path, line=line_of(rule.where, name))
        _check_predicate(pred, None, rule, line_of(rule.where, name))


def _check_node(node: object, rule: Rule, line: int) -> None:
    if not isinstance(node, dict) or not node:
        raise RuleError("a match node must be a non-empty mapping", path=rule.path, line=line)
    for key, value in node.items():
        kline = line_of(node, key, line)
        if key in ("any", "all"):
            if not isinstance(value, list) or not value:
                raise RuleError(f"`{key}` takes a non-empty list of nodes", path=rule.path, line=kline)
            for child in value:
                _check_node(child, rule, line_of(child, default=kline))
        elif key == "not":
            _check_node(value, rule, line_of(value, default=kline))
        elif key in ("before", "after"):
            if value not in MARKS:
                raise RuleError(f"`{key}` takes one of {', '.join(sorted(MARKS))}", path=rule.path, line=kline)
        elif key == "facts":
            if not isinstance(value, dict):
                raise RuleError("`facts` takes a mapping of fact names to predicates", path=rule.path, line=kline)
            for name, pred in value.items():
                if not _is_fact_name(name):
                    raise RuleError(f"unknown fact {name!r}", path=rule.path, line=line_of(value, name, kline))
                _check_predicate(pred, None, rule, line_of(value, name, kline))
        elif key in SCHEMA:
            _check_predicate(value, key, rule, kline)
        else:
            raise RuleError(
                f"unknown column or node {key!r}: not in the event schema and not one of {', '.join(sorted(NODE_KEYS))}",
                path=rule.path, line=kline,
            )


def _check_predicate(pred: object, column: str | None, rule: Rule, line: int) -> None:
    if not isinstance(pred, dict):
        return
    for op, value in pred.items():
        oline = line_of(pred, op, line)
        if op not in OPS:
            raise RuleError(f"unknown operator {op!r}; known: {', '.join(sorted(OPS))}", path=rule.path, line=oline)
        if isinstance(value, str) and value.startswith("$") and not _is_fact_name(value[1:]):
            raise RuleError(f"unknown fact {value!r}", path=rule.path, line=oline)
        dtype = SCHEMA.get(column) if column else None
        if op in ("regex", "not_regex"):
            try:
                slow_regex.compile(value)
            except slow_regex.error as e:
                raise RuleError(f"bad regex: {e}", path=rule.path, line=oline) from None
        if dtype is not None:
            if op in TEXT_OPS | {"not_regex", "not_contains", "version_lt", "version_gte"} and dtype != pl.String():
                raise RuleError(f"`{op}` needs a text column; {column} is {dtype}", path=rule.path, line=oline)
            if op in ("gt", "gte", "lt", "lte") and not isinstance(dtype, _NUMERIC + (pl.Datetime,)):
                raise RuleError(f"`{op}` needs a numeric column; {column} is {dtype}", path=rule.path, line=oline)


# -- compilation (at evaluation, with the facts) ------------------------------------------------
class Compiler:
    def __init__(self, facts: Facts) -> None:
        self.facts = facts
        self.values = facts.as_values()

    def node(self, node: dict) -> pl.Expr:
        parts: list[pl.Expr] = []
        for key, value in node.items():
            if key == "any":
                parts.append(pl.any_horizontal([self.node(c) for c in value]))
            elif key == "all":
                parts.append(pl.all_horizontal([self.node(c) for c in value]))
            elif key == "not":
                parts.append(~self.node(value))
            elif key in ("before", "after"):
                parts.append(self._order(key, value))
            elif key == "facts":
                ok = all(_fact_holds(self.values.get(n), p, self.values) for n, p in value.items())
                parts.append(pl.lit(ok))
            else:
                parts.append(self.predicate(pl.col(key), key, value))
        return pl.all_horizontal(parts) if len(parts) > 1 else parts[0]

    def _order(self, how: str, mark: str) -> pl.Expr:
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

    def _resolve(self, value: object):
        if isinstance(value, str) and value.startswith("$"):
            return self.values.get(value[1:]), True
        return value, False

    def predicate(self, col: pl.Expr, column: str, pred: object) -> pl.Expr:
        if pred is None:
            return col.is_null()
        if not isinstance(pred, dict):
            pred = {"in": pred} if isinstance(pred, list) else {"equals": pred}
        parts = [self._op(col, column, op, value) for op, value in pred.items()]
        out = pl.all_horizontal(parts) if len(parts) > 1 else parts[0]
        return out.fill_null(False)

    def _op(self, col: pl.Expr, column: str, op: str, raw_value: object) -> pl.Expr:
        value, from_fact = self._resolve(raw_value)
        if from_fact and (value is None or value == []):
            return pl.lit(False)  # unknown fact: no verdict
        if op == "equals":
            return col == value
        if op == "not_equals":
            return (col != value) & col.is_not_null()
        if op in ("in", "not_in"):
            values = value if isinstance(value, list) else [value]
            hit = col.is_in(values)
            return hit if op == "in" else (~hit & col.is_not_null())
        if op == "exists":
            present = col.is_not_null() & ((col != "") if SCHEMA[column] == pl.String() else pl.lit(True))
            return present if value else ~present
        if op in ("regex", "not_regex"):
            if rust_ok(value):
                hit = col.str.contains(value)
            else:
                hit = col.map_elements(_slow_search(value), return_dtype=pl.Boolean)
            return hit if op == "regex" else (~hit & col.is_not_null())
        if op in ("contains", "icontains", "not_contains"):
            needles = value if isinstance(value, list) else [value]
            hit = col.str.contains_any([str(n) for n in needles], ascii_case_insensitive=(op == "icontains"))
            return (~hit & col.is_not_null()) if op == "not_contains" else hit
        if op == "startswith":
            needles = value if isinstance(value, list) else [value]
            return pl.any_horizontal([col.str.starts_with(str(n)) for n in needles])
        if op in ("gt", "gte", "lt", "lte"):
            return {"gt": col > value, "gte": col >= value, "lt": col < value, "lte": col <= value}[op]
        if op in ("version_lt", "version_gte"):
            key = _version_key_expr(col)
            target = _version_key(str(value))
            return (key < target) if op == "version_lt" else (key >= target)
        raise AssertionError(op)  # validate() rejects unknown operators


def _version_key(text: str) -> int:
    nums = [int(n) for n in re.findall(r"\d+", text)[:3]] + [0, 0, 0]
    return nums[0] * 1_000_000 + nums[1] * 1_000 + nums[2]


def _version_key_expr(col: pl.Expr) -> pl.Expr:
    parts = col.str.extract_groups(r"^v?(?P<a>\d+)(?:\.(?P<b>\d+))?(?:\.(?P<c>\d+))?")
    return (
        parts.struct.field("a").cast(pl.Int64) * 1_000_000
        + parts.struct.field("b").cast(pl.Int64).fill_null(0) * 1_000
        + parts.struct.field("c").cast(pl.Int64).fill_null(0)
    )


def _fact_holds(actual: object, pred: object, values: dict) -> bool:
    """Evaluate a predicate on one fact value (a scalar or a list)."""
    if not isinstance(pred, dict):
        pred = {"in": pred} if isinstance(pred, list) else {"equals": pred}
    for op, raw in pred.items():
        value = values.get(raw[1:]) if isinstance(raw, str) and raw.startswith("$") else raw
        if op == "exists":
            present = actual not in (None, [], "")
            if present != bool(value):
                return False
            continue
        if actual in (None, []):
            return False
        s = pl.Series("v", actual if isinstance(actual, list) else [actual])
        expr = Compiler(Facts()).predicate(pl.col("v"), _fact_column(s), {op: value})
        if not pl.DataFrame(s).select(expr.any()).item():
            return False
    return True


def _fact_column(series: pl.Series) -> str:
    # predicates look up a column's dtype by name; map a fact to a schema column of its type
    return "message" if series.dtype == pl.String else "http_status" if series.dtype == pl.Int64 else "api_key_required"


# -- the line prefilter --------------------------------------------------------------------------
def _text_patterns(node: object) -> Iterable[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("any", "all"):
                for child in value:
                    yield from _text_patterns(child)
            elif key == "not" or key in ("before", "after", "facts"):
                continue  # a negated pattern says nothing about which lines matter
            elif key in LINE_TEXT_COLUMNS and isinstance(value, dict):
                for op, v in value.items():
                    needles = v if isinstance(v, list) else [v]
                    if op == "regex":
                        yield _unanchor(str(v))
                    elif op in ("contains", "startswith"):
                        yield from (re.escape(str(n)) for n in needles)
                    elif op == "icontains":
                        yield from ("(?i:" + re.escape(str(n)) + ")" for n in needles)


def _unanchor(pattern: str) -> str:
    pattern = re.sub(r"\(\?P<\w+>", "(?:", pattern)
    return pattern[1:] if pattern.startswith("^") else pattern


def keywords(rules: Iterable[Rule]) -> str | None:
    patterns: list[str] = []
    for rule in rules:
        for p in [*_text_patterns(rule.match), *(_text_patterns(rule.supporting) if rule.supporting else [])]:
            if not rust_ok(p):
                return "."  # a look-around pattern cannot prefilter: keep every line
            if p not in patterns:
                patterns.append(p)
    return "|".join(f"(?:{p})" for p in patterns) if patterns else None


def fallback_notes(rules: Iterable[Rule]) -> list[str]:
    notes = []
    for rule in rules:
        for p in _all_regexes(rule.match):
            if not rust_ok(p):
                notes.append(f"{rule.path}: {rule.id}: regex {p!r} needs the backtracking engine "
                             f"(per-match timeout {REGEX_TIMEOUT_S}s); it is slower and keeps every line")
    return notes


def _all_regexes(node: object) -> Iterable[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("any", "all"):
                for child in value:
                    yield from _all_regexes(child)
            elif key == "not":
                yield from _all_regexes(value)
            elif isinstance(value, dict):
                for op in ("regex", "not_regex"):
                    if op in value:
                        yield str(value[op])


def capture_patterns(node: object) -> list[tuple[str, str]]:
    """(column, regex) pairs with named groups, in rule order: where message values come from."""
    out: list[tuple[str, str]] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("any", "all"):
                for child in value:
                    out.extend(capture_patterns(child))
            elif key in SCHEMA and isinstance(value, dict) and "regex" in value and "(?P<" in str(value["regex"]):
                out.append((key, str(value["regex"])))
    return out
