"""The operators of a rule's predicates, one class each, and everything about each in that class:
the value it takes and its documentation (for the loader, lint and `rules/schema.json`), the polars
expression it becomes on a column (`expr`), its test of one fact's value (`test`), and the text a
line must hold for it to match (`patterns`, the line prefilter).

    {message: {regex: "does not exist"}}     Regex().expr(pl.col("message"), "does not exist", ...)
    {facts: {served_models: {in: [a, b]}}}   In().test("a", ("a", "b"), budget) -> True

A negated operator (`not_equals`, `not_in`, `not_regex`, `not_contains`) holds on a column only
where the value is present, and on a fact that is a list only when it holds for every element.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType

import polars as pl

from emblens.patterns import backtracking
from emblens.patterns.backtracking import RegexBudget
from emblens.patterns.linear import rust_ok


class Operator:
    """Base of the operators. `value`: the kind of value it takes (scalar, list, regex, number,
    bool, version); `text_only`/`number_only`: the columns it applies to."""

    __slots__ = ()
    name = ""
    value = "scalar"
    doc = ""
    text_only = False
    number_only = False
    negated = False          # holds where the value is present and the positive test fails
    takes_regex = False
    enumerated = False       # its values are checked against a closed column's values (rule lint)

    def expr(self, col: pl.Expr, value: object, *, text: bool, absent: bool, budget: RegexBudget) -> pl.Expr:
        """The expression on a column (`text`: a text column; `absent`: a regex known to match
        nothing there, `emblens.patterns.literals`)."""
        raise NotImplementedError

    def test(self, v: object, value: object, budget: RegexBudget) -> bool:
        """The test of one value of a fact (a number compared with text is no verdict: False)."""
        raise NotImplementedError

    def patterns(self, _value: object) -> list[str]:
        """Regex fragments (polars' engine) a line must contain for this operator to match it
        through a text column; none when it says nothing about the line's text."""
        return []


def _values(value: object) -> list:
    return list(value) if isinstance(value, (tuple, list)) else [value]


def _needles(value: object) -> list[str]:
    return [str(n) for n in _values(value)]


def unanchored(pattern: str) -> str:
    """A pattern for the prefilter: named groups made plain, a leading `^` dropped."""
    pattern = re.sub(r"\(\?P<\w+>", "(?:", pattern)
    return pattern[1:] if pattern.startswith("^") else pattern


class Equals(Operator):
    __slots__ = ()
    name, doc, enumerated = "equals", "the value equals", True

    def expr(self, col, value, **_):
        return col == value

    def test(self, v, value, _budget):
        return v == value


class NotEquals(Operator):
    __slots__ = ()
    name, doc, negated, enumerated = "not_equals", "the value is present and differs", True, True

    def expr(self, col, value, **_):
        return (col != value) & col.is_not_null()

    def test(self, v, value, _budget):
        return v != value


class In(Operator):
    __slots__ = ()
    name, value, doc, enumerated = "in", "list", "the value is one of", True

    def expr(self, col, value, **_):
        return col.is_in(_values(value))

    def test(self, v, value, _budget):
        return v in _values(value)


class NotIn(Operator):
    __slots__ = ()
    name, value, doc, negated, enumerated = "not_in", "list", "the value is present and none of", True, True

    def expr(self, col, value, **_):
        return ~col.is_in(_values(value)) & col.is_not_null()

    def test(self, v, value, _budget):
        return v not in _values(value)


def _search(col: pl.Expr, pattern: str, absent: bool, budget: RegexBudget) -> pl.Expr:
    """A regex over a column: polars' engine when it takes the pattern, else the backtracking one
    within the run's budget; `false` when none of its literals occurs there."""
    if absent:
        return pl.lit(False)
    if rust_ok(pattern):
        return col.str.contains(pattern)
    return col.map_elements(lambda v, p=pattern, b=budget: backtracking.search(p, v, b), return_dtype=pl.Boolean)


def fact_search(pattern: str, value: str, budget: RegexBudget) -> bool:
    """A regex test of one fact's value: on polars' engine, as the same pattern runs on a column,
    when it takes the pattern; else on the backtracking one, within the run's budget."""
    if rust_ok(pattern):
        return bool(pl.Series([value], dtype=pl.String).str.contains(pattern)[0])
    return bool(backtracking.search(pattern, value, budget))


class Regex(Operator):
    __slots__ = ()
    name, value, text_only, takes_regex = "regex", "regex", True, True
    doc = "a regex matches somewhere in the text; named groups become message values"

    def expr(self, col, value, *, absent, budget, **_):
        return _search(col, value, absent, budget)

    def test(self, v, value, budget):
        return fact_search(str(value), str(v), budget)

    def patterns(self, value):
        return [unanchored(str(value))]


class NotRegex(Operator):
    __slots__ = ()
    name, value, doc, text_only, negated, takes_regex = ("not_regex", "regex", "the text is present and the regex does "
                                                         "not match", True, True, True)

    def expr(self, col, value, *, absent, budget, **_):
        return ~_search(col, value, absent, budget) & col.is_not_null()

    def test(self, v, value, budget):
        return not fact_search(str(value), str(v), budget)


class Contains(Operator):
    __slots__ = ()
    name, value, doc, text_only = "contains", "list", "the text contains this (or one of these)", True

    def expr(self, col, value, **_):
        return col.str.contains_any(_needles(value), ascii_case_insensitive=False)

    def test(self, v, value, _budget):
        return any(n in str(v) for n in _needles(value))

    def patterns(self, value):
        return [re.escape(n) for n in _needles(value)]


class IContains(Operator):
    __slots__ = ()
    name, value, doc, text_only = "icontains", "list", "the same, ignoring ASCII case", True

    def expr(self, col, value, **_):
        return col.str.contains_any(_needles(value), ascii_case_insensitive=True)

    def test(self, v, value, _budget):
        return any(n.lower() in str(v).lower() for n in _needles(value))

    def patterns(self, value):
        return ["(?i:" + re.escape(n) + ")" for n in _needles(value)]


class NotContains(Operator):
    __slots__ = ()
    name, value, doc, text_only, negated = "not_contains", "list", "the text is present and contains none of these", True, True

    def expr(self, col, value, **_):
        return ~col.str.contains_any(_needles(value), ascii_case_insensitive=False) & col.is_not_null()

    def test(self, v, value, _budget):
        return not any(n in str(v) for n in _needles(value))


class StartsWith(Operator):
    __slots__ = ()
    name, value, doc, text_only = "startswith", "list", "the text starts with this (or one of these)", True

    def expr(self, col, value, **_):
        return pl.any_horizontal([col.str.starts_with(n) for n in _needles(value)])

    def test(self, v, value, _budget):
        return any(str(v).startswith(n) for n in _needles(value))

    def patterns(self, value):
        return [re.escape(n) for n in _needles(value)]


class _Compare(Operator):
    __slots__ = ()
    value, number_only = "number", True

    @staticmethod
    def compare(a, b) -> bool:
        raise NotImplementedError

    def expr(self, col, value, **_):
        return self.compare(col, value)

    def test(self, v, value, _budget):
        try:
            return bool(self.compare(v, value))
        except TypeError:      # a number compared with text: no verdict
            return False


class Gt(_Compare):
    __slots__ = ()
    name, doc = "gt", "greater than"

    @staticmethod
    def compare(a, b):
        return a > b


class Gte(_Compare):
    __slots__ = ()
    name, doc = "gte", "greater than or equal"

    @staticmethod
    def compare(a, b):
        return a >= b


class Lt(_Compare):
    __slots__ = ()
    name, doc = "lt", "less than"

    @staticmethod
    def compare(a, b):
        return a < b


class Lte(_Compare):
    __slots__ = ()
    name, doc = "lte", "less than or equal"

    @staticmethod
    def compare(a, b):
        return a <= b


class Exists(Operator):
    __slots__ = ()
    name, value, doc = "exists", "bool", "true: the value is present (and not empty); false: it is absent"

    def expr(self, col, value, *, text, **_):
        present = col.is_not_null() & ((col != "") if text else pl.lit(True))
        return present if value else ~present

    def test(self, v, value, _budget):
        return (v not in (None, [], "")) == bool(value)


def version_key(text: str) -> int:
    """1.2.3 as one comparable number (missing parts are 0)."""
    nums = [int(n) for n in re.findall(r"\d+", text)[:3]] + [0, 0, 0]
    return nums[0] * 1_000_000 + nums[1] * 1_000 + nums[2]


def _version_key_expr(col: pl.Expr) -> pl.Expr:
    parts = col.str.extract_groups(r"^v?(?P<a>\d+)(?:\.(?P<b>\d+))?(?:\.(?P<c>\d+))?")
    return (
        parts.struct.field("a").cast(pl.Int64) * 1_000_000
        + parts.struct.field("b").cast(pl.Int64).fill_null(0) * 1_000
        + parts.struct.field("c").cast(pl.Int64).fill_null(0)
    )


class VersionLt(Operator):
    __slots__ = ()
    name, value, doc, text_only = "version_lt", "version", "a version (1.2.3) below this one", True

    def expr(self, col, value, **_):
        return _version_key_expr(col) < version_key(str(value))

    def test(self, v, value, _budget):
        return version_key(str(v)) < version_key(str(value))


class VersionGte(Operator):
    __slots__ = ()
    name, value, doc, text_only = "version_gte", "version", "a version at or above this one", True

    def expr(self, col, value, **_):
        return _version_key_expr(col) >= version_key(str(value))

    def test(self, v, value, _budget):
        return version_key(str(v)) >= version_key(str(value))


OPERATORS: Mapping[str, Operator] = MappingProxyType({op.name: op for op in (
    Equals(), NotEquals(), In(), NotIn(), Regex(), NotRegex(), Contains(), IContains(), NotContains(), StartsWith(),
    Gt(), Gte(), Lt(), Lte(), Exists(), VersionLt(), VersionGte())})
REGEX_OPERATORS = frozenset(name for name, op in OPERATORS.items() if op.takes_regex)
