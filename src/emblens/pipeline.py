"""The one pipeline from events to ranked findings, used by `analyze` and by the live addon.

    events (from the sources) -> combiners (columns, facts) -> rules -> ranking -> unexplained lines
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import polars as pl

from emblens.combiners import Facts, combine, enrich
from emblens.rules.engine import Finding, Lead, Unexplained, evaluate, lead, unexplained
from emblens.rules.loader import RuleSet
from emblens.rules.rank import rank


@dataclass
class Diagnosis:
    events: pl.DataFrame
    facts: Facts
    findings: list[Finding]
    unexplained: list[Unexplained]
    lead: Lead | None = None       # where to start when no rule fired
    notices: list[str] | None = None


def _budget_notice() -> list[str]:
    from emblens.rules.compiler import REGEX_RUN_BUDGET_S, RUN_BUDGET

    if not RUN_BUDGET.skipped:
        return []
    return [f"look-around and back-reference patterns used their {REGEX_RUN_BUDGET_S:.0f} s budget; "
            f"{RUN_BUDGET.skipped:,} value(s) were not tested against them"]


def diagnose(events: pl.DataFrame, ruleset: RuleSet, *, since: datetime | None = None,
             until: datetime | None = None, year: int | None = None, written: dict[str, float] | None = None,
             tz: str | None = None) -> Diagnosis:
    """`since`/`until` keep the events of a time window (after the years are filled in); events
    with no time at all are kept, since a traceback without a stamp may be the cause."""
    events = enrich(events, ruleset.models, year=year, written=written, tz=tz)
    if since is not None or until is not None:
        ts = pl.col("ts")
        inside = pl.lit(True)
        if since is not None:
            inside = inside & (ts >= since)
        if until is not None:
            inside = inside & (ts <= until)
        events = events.filter(ts.is_null() | inside)
    facts = combine(events)
    findings = rank(evaluate(ruleset, events, facts))
    return Diagnosis(events, facts, findings, unexplained(events, findings), None if findings else lead(events),
                     _budget_notice())
