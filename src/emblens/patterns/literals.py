"""The literal text a regex cannot match without: a pattern's *literals* are a few strings such
that every match of it contains one of them (compared ASCII case-insensitively), as ripgrep finds
its literals before it runs a regex.

Compiling a pattern costs polars' engine 0.1-30 ms, every time a query holds it (its cache keeps 32
patterns a thread; the rules have some 270). Looking for every pattern's literals at once is one
Aho-Corasick pass. A pattern none of whose literals occur in a column cannot match a value of it,
so it need not be compiled there: the rule engine makes that test `false` (`absent`), the line
prefilter leaves that pattern out of the regex it runs (`Prefilter.narrow`). Either way the result
is the same; only the patterns that could match are compiled.

The literals come from Python's parser (`re._parser`) of the pattern. Where the syntax of Rust's
engine differs in a way that could change which text is literal (nested classes, `\\<`, `\\p{..}`,
flags Python does not know), or no literal of three characters or more is required, a pattern has
none (`None`) and is always run. In a case-insensitive part, only ASCII letters other than k and
s are kept (Unicode folds K to the Kelvin sign and s to the long s); everything else counts as a
gap between literals. The answers are remembered, and the rule cache keeps those for the rules'
patterns (`known`, `learn`), as `emblens.patterns.linear` does for which engine takes each pattern.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from re import _constants as C
from re import _parser as sre
from types import MappingProxyType

import polars as pl

from emblens.patterns.memo import Memo

MIN_CHARS = 3              # a shorter literal would be found in most lines: no help
MAX_PATTERN_CHARS = 20_000  # longer patterns (a user's generated list) are always run
SLICE_ROWS = 50_000         # rows searched for literals at once (`present_in`)
NARROW_MAX_LINES = 2_000    # lines the prefilter is narrowed for (`Prefilter.narrow`)

# Rust syntax that Python reads differently (or not at all): such a pattern gets no literals
_ASCII_BOUNDARY = "(?-u:\\b)"
_LITERAL = re.compile(r"[\\.^$*+?{}\[\]|()]")     # what a literal string must escape in a regex
_OTHER_SYNTAX = re.compile(r"\\[<>pPzQE]|\\[bB]\{|\(\?[a-zA-Z-]*[uUR]")
_ASCII_LOWER = MappingProxyType(str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz"))


def literals(pattern: str) -> tuple[str, ...] | None:
    """Strings (ASCII letters in lower case) one of which every match of `pattern` contains,
    compared ASCII case-insensitively; None when there are none to rely on.

    >>> literals(r"(?i)cuda out of memory|OOM when allocating")
    ('cuda out of memory', 'oom when allocating')
    >>> literals(r"Input length of (\\d+) exceeds") , literals(r"\\d+ s")
    (('input length of ',), None)
    """
    return MEMO(pattern)


def present(values: pl.Series, wanted: Iterable[str]) -> set[str]:
    """Which of the `wanted` literals occur in some value (one Aho-Corasick pass, overlapping
    matches included, so a literal inside or across another's match is still found)."""
    return present_in(values.to_frame("values"), {"values": wanted})["values"]


def present_in(frame: pl.DataFrame, wanted: dict[str, Iterable[str]]) -> dict[str, set[str]]:
    """`present` for several text columns of a frame at once (one query): column -> literals found."""
    asked = {c: sorted(set(w)) for c, w in wanted.items() if c in frame.columns and frame.schema[c] == pl.String}
    seen: dict[str, set[str]] = {c: set() for c in wanted}
    # a slice at a time: every match of every literal is listed before the duplicates go, and a
    # large table of lines that each hold a few would take hundreds of MiB at once
    for start in range(0, frame.height, SLICE_ROWS):
        asked = {c: w for c, w in asked.items() if w and len(seen[c]) < len(w)}    # all found: done
        if not asked:
            break
        row = frame.slice(start, SLICE_ROWS).select(
            pl.col(c).str.extract_many(w, ascii_case_insensitive=True, overlapping=True)
            .explode().drop_nulls().unique().implode().alias(c)
            for c, w in asked.items()
        ).row(0, named=True)
        for c in asked:
            seen[c] |= {h.translate(_ASCII_LOWER) for h in (row.get(c) or [])}
    return seen


def could_match(found: tuple[str, ...] | None, seen: set[str]) -> bool:
    """Whether a pattern with these literals could match text in which `seen` were found."""
    return found is None or not seen.isdisjoint(found)


class Prefilter:
    """The line prefilter's regex, `(?:p1)|(?:p2)|...`, that can leave out the parts that cannot
    match the lines at hand (`narrow`)."""

    def __init__(self, parts: Sequence[str], fixed: Sequence[str] = ()) -> None:
        self.parts = tuple(parts)
        # plain strings found anywhere in a line (the upstream messages' anchors): a regex of literals
        # alone, apart from the rules' patterns (in their regex, a thousand alternatives cost 50 s a GiB).
        # As a regex, polars compiles it once a thread and keeps it; `contains_any` would build its
        # automaton again for every chunk (3 ms each: 0.4 s a GiB)
        self.fixed = tuple(fixed)
        self.fixed_pattern = "|".join(_LITERAL.sub(r"\\\g<0>", f) for f in self.fixed)
        self.pattern = "|".join(f"(?:{p})" for p in self.parts)
        self.found = tuple(literals(p) for p in self.parts)
        self.wanted = sorted({s for f in self.found if f for s in f})

    def narrow(self, lines: pl.Series) -> str | None:
        """The regex of the parts that could match one of `lines`; None when none could. Past
        `NARROW_MAX_LINES` lines the whole regex is cheaper: polars compiles it once a thread and
        keeps it, while looking for the literals costs about a microsecond a line every time."""
        if lines.len() > NARROW_MAX_LINES:
            return self.pattern
        seen = present(lines, self.wanted)
        live = [p for p, f in zip(self.parts, self.found) if could_match(f, seen)]
        if len(live) == len(self.parts):
            return self.pattern
        return "|".join(f"(?:{p})" for p in live) or None

    def keep(self, lines: pl.Series) -> pl.Series:
        """Which of `lines` a rule's text pattern or a fixed string could match."""
        pattern = self.narrow(lines) if self.parts else None
        hit = lines.str.contains(pattern) if pattern else pl.Series([False] * lines.len(), dtype=pl.Boolean)
        if self.fixed:
            hit = hit | lines.str.contains(self.fixed_pattern).fill_null(False)
        return hit


MEMO = Memo(lambda pattern: _extract(pattern), lambda found: found is None or isinstance(found, tuple))
known, learn = MEMO.known, MEMO.learn      # the answers so far; answers given before (the rule cache)


def _extract(pattern: str) -> tuple[str, ...] | None:
    # an ASCII word boundary (`patterns.ascii`) needs the same literals as Python's
    pattern = pattern.replace(_ASCII_BOUNDARY, "\\b")
    if len(pattern) > MAX_PATTERN_CHARS or _OTHER_SYNTAX.search(pattern) or _ambiguous(pattern):
        return None
    try:
        tree = sre.parse(pattern)
    except Exception:
        return None
    try:
        got = _sequence(list(tree), bool(tree.state.flags & C.SRE_FLAG_IGNORECASE))
    except RecursionError:
        return None
    if not got or min(len(s) for s in got) < MIN_CHARS:
        return None
    return tuple(sorted(got))


_COUNTED = re.compile(r"\{(?:\d+(?:,\d*)?|,\d+)\}")


def _ambiguous(pattern: str) -> bool:
    """Whether a class holds a `[` (Rust: a nested class or `[:alpha:]`; Python: a member), or a
    `{` outside classes is not a plain counted repetition (`{2}`, `{1,3}`): Python reads `a{1, 3}`
    as text, where Rust may read a repetition."""
    i, n, inside = 0, len(pattern), False
    while i < n:
        c = pattern[i]
        if c == "\\":
            i += 2
            continue
        if not inside:
            if c == "[":
                inside = True
                i += 1
                if i < n and pattern[i] == "^":
                    i += 1
                if i < n and pattern[i] == "]":    # a `]` first in a class is a member
                    i += 1
                continue
            if c == "{" and not _COUNTED.match(pattern, i):
                return True
        elif c == "[":
            return True
        elif c == "]":
            inside = False
        i += 1
    return False


def _best(candidates: list[frozenset[str] | None]) -> frozenset[str] | None:
    """Of several sets each of which a match must meet, the one with the longest shortest member."""
    sets = [c for c in candidates if c]
    return max(sets, key=lambda s: (min(len(x) for x in s), -len(s))) if sets else None


def _sequence(items: list, ignorecase: bool) -> frozenset[str] | None:
    """A concatenation: its runs of literal characters, and whatever its parts require."""
    candidates: list[frozenset[str] | None] = []
    run: list[str] = []

    def end_run() -> None:
        if run:
            candidates.append(frozenset(["".join(run)]))
            run.clear()

    for op, av in items:
        if op is C.LITERAL:
            ch = chr(av)
            if ignorecase and (not ch.isascii() or ch.lower() in "ks"):
                end_run()     # folds to characters the ASCII comparison would not find
            else:
                run.append(ch.translate(_ASCII_LOWER))
            continue
        end_run()
        candidates.append(_item(op, av, ignorecase))
    end_run()
    return _best(candidates)


def _item(op, av, ignorecase: bool) -> frozenset[str] | None:
    if op is C.SUBPATTERN:
        _group, add, remove, sub = av
        inner = (ignorecase or bool(add & C.SRE_FLAG_IGNORECASE)) and not (remove & C.SRE_FLAG_IGNORECASE)
        return _sequence(list(sub), inner)
    if op is C.BRANCH:
        union: set[str] = set()
        for alternative in av[1]:
            got = _sequence(list(alternative), ignorecase)
            if not got:
                return None       # one alternative needs no literal: neither does the whole
            union |= got
        return frozenset(union)
    if op in (C.MAX_REPEAT, C.MIN_REPEAT, C.POSSESSIVE_REPEAT):
        low, _high, sub = av
        return _sequence(list(sub), ignorecase) if low >= 1 else None
    if op is C.ATOMIC_GROUP:
        return _sequence(list(av), ignorecase)
    return None     # a class, `.`, an anchor, a look-around, a back-reference: no literal
