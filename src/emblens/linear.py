"""Which regexes the linear-time engine takes: polars' (Rust) engine runs every pattern over input;
a pattern it refuses (look-around, back-references) needs the backtracking engine and its budget."""

from __future__ import annotations

from functools import lru_cache


@lru_cache(maxsize=2048)
def rust_ok(pattern: str) -> bool:
    """Whether polars' (Rust) regex engine accepts the pattern."""
    import polars as pl

    try:
        pl.Series([""], dtype=pl.String).str.contains(pattern)
        return True
    except pl.exceptions.PolarsError:
        return False
