"""The backtracking regex engine (the `regex` package), for the few patterns polars' linear-time
engine refuses (look-around, back-references): each search has a timeout, and all of one
analysis's searches share a budget (`RegexBudget`, held by the run), since a per-value timeout
alone lets a slow pattern cost timeout x lines."""

from __future__ import annotations

import time
from functools import lru_cache

REGEX_TIMEOUT_S = 0.05       # one search of one value
REGEX_RUN_BUDGET_S = 2.0     # every backtracking search of one analysis together


class RegexBudget:
    """The time one analysis's backtracking searches may still take, and how many values went
    untested once it was spent. Each run has its own (`emblens.run.Run.budget`)."""

    def __init__(self, seconds: float = REGEX_RUN_BUDGET_S) -> None:
        self.seconds = seconds
        self.left = seconds
        self.skipped = 0

    def notice(self) -> str | None:
        """What the report should say when the budget ran out."""
        if not self.skipped:
            return None
        return (f"look-around and back-reference patterns used their {self.seconds:.0f} s budget; "
                f"{self.skipped:,} value(s) were not tested against them")


@lru_cache(maxsize=512)
def compiled(pattern: str):
    import regex as backtracking  # the `regex` package, for the few patterns polars' engine refuses

    return backtracking.compile(pattern)


def search(pattern: str, value: str | None, budget: RegexBudget) -> bool | None:
    """Whether `pattern` matches somewhere in `value` (None for a null value); False once the
    budget is spent or the search times out."""
    if value is None:
        return None
    if budget.left <= 0:
        budget.skipped += 1
        return False
    started = time.perf_counter()
    try:
        return compiled(pattern).search(value, timeout=min(REGEX_TIMEOUT_S, budget.left)) is not None
    except TimeoutError:
        return False
    finally:
        budget.left -= time.perf_counter() - started
