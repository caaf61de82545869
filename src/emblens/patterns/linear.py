"""Which regexes the linear-time engine takes: polars' (Rust) engine runs every pattern over input;
a pattern it refuses (look-around, back-references) needs the backtracking engine and its budget.

Asking costs polars a compile (about 1 ms a pattern), so the answers are remembered, and the rule
cache keeps those for the rules' patterns (`known`, `learn`): a run that loads the rules from the
cache asks about none of them again."""

from __future__ import annotations

from emblens.patterns.memo import Memo


def rust_ok(pattern: str) -> bool:
    """Whether polars' (Rust) regex engine accepts the pattern."""
    return MEMO(pattern)


def _ask(pattern: str) -> bool:
    import polars as pl

    try:
        pl.Series([""], dtype=pl.String).str.contains(pattern)
        return True
    except pl.exceptions.PolarsError:
        return False


MEMO = Memo(lambda pattern: _ask(pattern), lambda ok: isinstance(ok, bool))
known, learn = MEMO.known, MEMO.learn      # the answers so far; answers given before, by the same polars
