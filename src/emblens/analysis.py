"""The library's front door: paths in, an `Analysis` out (events, coverage, facts, findings).

    analysis = analyze(["bundle.zip"])
    analysis.findings[0].rule      # the most likely root cause

No printing here: front ends render `Analysis` with `emblens.report`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from emblens import schema
from emblens.bundle import LimitExceeded, Limits, Member, Metered, Skipped, read_members
from emblens.facts import Facts, combine
from emblens.gpu import diagnose
from emblens.sniff import HEAD_BYTES, sniff
from emblens.sources import base, traffic
from emblens.sources.records import RecordError
from emblens.sources.base import SourceContext

Progress = Callable[[str, int], None]   # (member label, bytes read so far in it)


@dataclass
class InputInfo:
    """Coverage of one member: what it was read as and how much of it was understood."""

    source: str
    kind: str
    events: int
    unparsed: int
    lines: int = 0
    blank: int = 0
    note: str | None = None          # e.g. where reading stopped on corrupt data


@dataclass
class Analysis:
    events: pl.DataFrame
    inputs: list[InputInfo]
    skipped: list[Skipped]
    facts: Facts
    findings: list = field(default_factory=list)       # list[emblens.rules.engine.Finding]
    unexplained: list = field(default_factory=list)    # list[emblens.rules.engine.Unexplained]
    rules_run: int = 0


READ_ERRORS = (*base.READ_ERRORS, LimitExceeded, RecordError)


def _read_member(member: Member, *, keep_all: bool, keywords: str | None, progress: Progress | None,
                 rule_dirs: tuple[str, ...] = ()):
    with member.open() as f:
        head = base.read_head(f, HEAD_BYTES)
    if not head:
        return None, "empty (0 bytes)"
    adapter, why = sniff(head)
    if adapter is None:
        return None, why
    with member.open() as f:
        stream = Metered(f, member.label, on_read=progress)
        events, counts = adapter.parse_stream(stream, SourceContext(member.label, keep_all=keep_all, keywords=keywords, rule_dirs=rule_dirs))
    if counts.lines - counts.blank == 0:
        return None, "only blank lines"
    return (events, InputInfo(member.label, adapter.name, counts.events, counts.unparsed, counts.lines, counts.blank, counts.stopped)), None


def load_events(
    paths: Sequence[str],
    *,
    keep_all: bool = True,
    keywords: str | None = None,
    limits: Limits | None = None,
    progress: Progress | None = None,
    rule_dirs: Sequence[str | Path] = (),
) -> tuple[pl.DataFrame, list[InputInfo], list[Skipped]]:
    """Read every member of `paths` into one event table. Broken members are skipped, not fatal."""
    frames: list[pl.DataFrame] = []
    inputs: list[InputInfo] = []
    skipped: list[Skipped] = []
    for item in read_members([str(p) for p in paths], limits):
        if isinstance(item, Skipped):
            skipped.append(item)
            continue
        try:
            result, why = _read_member(item, keep_all=keep_all, keywords=keywords, progress=progress,
                                       rule_dirs=tuple(str(d) for d in rule_dirs))
        except READ_ERRORS as e:
            result, why = None, f"cannot read: {base.describe_read_error(e)}"
        if result is None:
            skipped.append(Skipped(item.label, why or "unreadable"))
            continue
        events, info = result
        inputs.append(info)
        if events.height:
            frames.append(events)
    events = pl.concat(frames, how="vertical") if frames else schema.empty()
    events = traffic.derive(events, traffic.model_data(rule_dirs))
    return _fill_years(events), inputs, skipped


def _fill_years(events: pl.DataFrame) -> pl.DataFrame:
    """vLLM stamps are `MM-DD HH:MM:SS`: take the year from other sources of the same bundle."""
    if events.height == 0:
        return events
    missing = events["ts"].is_null() & events["ts_text"].str.contains(r"^\d{2}-\d{2} ").fill_null(False)
    if not missing.any():
        return events
    years = events.filter(pl.col("ts").is_not_null())["ts"].dt.year()
    if years.len() == 0:
        return events
    year = int(years.mode().sort()[-1])
    stamped = (pl.lit(f"{year}-") + pl.col("ts_text")).str.to_datetime("%Y-%m-%d %H:%M:%S", strict=False).cast(pl.Datetime("us"))
    return events.with_columns(
        pl.when(pl.col("ts").is_null() & pl.col("ts_text").str.contains(r"^\d{2}-\d{2} ")).then(stamped).otherwise(pl.col("ts")).alias("ts")
    )


def analyze(
    paths: Sequence[str | Path],
    *,
    rule_dirs: Sequence[str | Path] = (),
    include_builtin: bool = True,
    limits: Limits | None = None,
    progress: Progress | None = None,
) -> Analysis:
    """Read, run the rules, rank. Raises InputError / RuleError for unusable input or rules."""
    from emblens.rules.engine import evaluate, unexplained
    from emblens.rules.loader import load_rules
    from emblens.rules.rank import rank

    ruleset = load_rules(rule_dirs, include_builtin=include_builtin)
    events, inputs, skipped = load_events(
        [str(p) for p in paths], keep_all=False, keywords=ruleset.keywords(), limits=limits, progress=progress,
        rule_dirs=rule_dirs,
    )
    facts = combine(events)
    events = diagnose(events, facts)
    findings = rank(evaluate(ruleset, events, facts), ruleset)
    return Analysis(
        events=events,
        inputs=inputs,
        skipped=skipped,
        facts=facts,
        findings=findings,
        unexplained=unexplained(events, findings),
        rules_run=len(ruleset.rules),
    )
