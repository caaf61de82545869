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

from emblens import redact, schema
from emblens.bundle import LimitExceeded, Limits, Member, Metered, Skipped, read_members
from emblens.combiners import Facts, enrich
from emblens.modeldata import ModelData
from emblens.sniff import HEAD_BYTES, sniff
from emblens.sources import PASTE, base
from emblens.sources.base import SourceContext
from emblens.sources.records import RecordError

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
    notices: list[str] = field(default_factory=list)   # e.g. a user rule replacing a built-in one
    lead: object = None     # emblens.rules.engine.Lead: where to start when no rule fired


# what one member may raise without stopping the rest: RecursionError is the last net under input
# nested deeper than a parser goes (each parser bounds depth itself where it can)
READ_ERRORS = (*base.READ_ERRORS, LimitExceeded, RecordError, RecursionError)


def _read_member(member: Member, ctx: SourceContext, progress: Progress | None):
    with member.open() as f:
        head = base.read_head(f, HEAD_BYTES)
    if not head:
        return None, "empty (0 bytes)"
    adapter, why = sniff(head)
    if adapter is None:
        return None, why
    small = (member.size is not None and member.size <= PASTE.MAX_BYTES) or len(head) < HEAD_BYTES
    if adapter.name in ("text", "python-traceback") and small:
        adapter = PASTE    # not one known format: read it region by region, as a paste
    with member.open() as f:
        stream = Metered(f, member.label, on_read=progress)
        events, counts = adapter.parse_stream(stream, ctx)
    if counts.lines - counts.blank == 0:
        return None, "only blank lines"
    return (events, InputInfo(member.label, counts.kind or adapter.name, counts.events, counts.unparsed, counts.lines, counts.blank, counts.stopped)), None


def read_events(
    paths: Sequence[str | Path],
    *,
    keep_all: bool = True,
    keywords: str | None = None,
    models: ModelData | None = None,
    limits: Limits | None = None,
    progress: Progress | None = None,
) -> tuple[pl.DataFrame, list[InputInfo], list[Skipped]]:
    """Read every member of `paths` into one event table, as the sources see it. Broken members
    are skipped with a reason, never fatal."""
    frames: list[pl.DataFrame] = []
    inputs: list[InputInfo] = []
    skipped: list[Skipped] = []
    for item in read_members([str(p) for p in paths], limits):
        if isinstance(item, Skipped):
            skipped.append(item)
            continue
        ctx = SourceContext(item.label, keep_all=keep_all, keywords=keywords, models=models or ModelData(), sniff=sniff)
        try:
            result, why = _read_member(item, ctx, progress)
        except READ_ERRORS as e:
            result, why = None, f"cannot read: {base.describe_read_error(e)}"
        if result is None:
            skipped.append(Skipped(item.label, redact.printable(redact.mask_text(why or "unreadable"))))
            continue
        events, info = result
        if info.note:
            info.note = redact.printable(redact.mask_text(info.note))
        inputs.append(info)
        if events.height:
            frames.append(events)
    # the last line of defence: whatever an adapter did, no column of user text leaves here unmasked
    return (redact.mask_frame(pl.concat(frames, how="vertical")) if frames else schema.empty()), inputs, skipped


def load_events(
    paths: Sequence[str | Path],
    *,
    keep_all: bool = True,
    limits: Limits | None = None,
    progress: Progress | None = None,
    rule_dirs: Sequence[str | Path] = (),
) -> tuple[pl.DataFrame, list[InputInfo], list[Skipped]]:
    """The event table of `paths` with the combiners' columns (years filled in, embedding
    figures, other GPU processes): what `emblens events` writes."""
    from emblens.rules.loader import load_rules

    models = load_rules(rule_dirs).models
    events, inputs, skipped = read_events(paths, keep_all=keep_all, models=models, limits=limits, progress=progress)
    return enrich(events, models), inputs, skipped


def analyze(
    paths: Sequence[str | Path],
    *,
    rule_dirs: Sequence[str | Path] = (),
    include_builtin: bool = True,
    limits: Limits | None = None,
    progress: Progress | None = None,
    ruleset=None,
) -> Analysis:
    """Read, run the rules, rank. Raises InputError / RuleError for unusable input or rules.
    `ruleset` (from `load_rules`) saves loading the rules again when analysing many inputs."""
    from emblens.pipeline import diagnose
    from emblens.rules.loader import load_rules

    if ruleset is None:
        ruleset = load_rules(rule_dirs, include_builtin=include_builtin)
    events, inputs, skipped = read_events(paths, keep_all=False, keywords=ruleset.keywords, models=ruleset.models,
                                          limits=limits, progress=progress)
    d = diagnose(events, ruleset)
    return Analysis(events=d.events, inputs=inputs, skipped=skipped, facts=d.facts, findings=d.findings,
                    unexplained=d.unexplained, rules_run=len(ruleset.rules), notices=[*ruleset.notices, *(d.notices or ())],
                    lead=d.lead)
