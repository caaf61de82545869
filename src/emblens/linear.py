"""Which regexes the linear-time engine takes: polars' (Rust) engine runs every pattern over input;
a pattern it refuses (look-around, back-references) needs the backtracking engine and its budget.

Asking costs polars a compile (about 1 ms a pattern), so the answers are remembered, and the rule
cache keeps those for the rules' patterns (`known`, `learn`): a run that loads the rules from the
cache asks about none of them again."""

from __future__ import annotations

MAX_KNOWN = 4096
_KNOWN: dict[str, bool] = {}


def rust_ok(pattern: str) -> bool:
    """Whether polars' (Rust) regex engine accepts the pattern."""
    ok = _KNOWN.get(pattern)
    if ok is None:
        ok = _ask(pattern)
        if len(_KNOWN) < MAX_KNOWN:
            _KNOWN[pattern] = ok
    return ok


def _ask(pattern: str) -> bool:
    import polars as pl

    try:
        pl.Series([""], dtype=pl.String).str.contains(pattern)
        return True
    except pl.exceptions.PolarsError:
        return False


def known() -> dict[str, bool]:
    """The answers so far (pattern -> accepted)."""
    return dict(_KNOWN)


def learn(answers: dict[str, bool]) -> None:
    """Take answers given before, by the same polars (the rule cache's key holds its version)."""
    for pattern, ok in answers.items():
        if len(_KNOWN) >= MAX_KNOWN:
            break
        if isinstance(pattern, str) and isinstance(ok, bool):
            _KNOWN.setdefault(pattern, ok)
