"""The one builder of an `Analysis`: `analyze`, `emblens events`, the live addon, `emblens probe`
and the fixture runner all call `run` (or `read`, for the event table alone).

    inputs ─ ingest ─► members ─ formats (reading) ─► event table, masked ─┐
    (paths, in-memory members, or a `Reading` the live addon made)         │
                                                                            ▼
    Analysis ◄─ request counts, clock notes, masked tally ◄─ ranking ◄─ rules ◄─ combiners

Each stage is a function of its input and the `Run` (settings and this analysis's state: the
masking, the regex budget, the rule set); nothing is kept between runs, so analyses on several
threads give what each gives alone.

    analysis = analyze(["bundle.zip"])
    analysis.findings[0].rule      # the most likely root cause

No printing here: front ends render `Analysis` with `emblens.report`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import polars as pl

from emblens.combiners import Facts, combine, enrich, time, traffic
from emblens.events import redact, schema
from emblens.events.schema import frame
from emblens.formats import messages
from emblens.formats.generic import GenericLog
from emblens.formats.records import RecordError
from emblens.ingest import meta
from emblens.ingest.bundle import LimitExceeded, Member, Metered, Skipped, read_members
from emblens.ingest.decode import Transcoded, utf16
from emblens.ingest.sniff import HEAD_BYTES, choose, sniff
from emblens.knowledge.upstream import Messages
from emblens.patterns.literals import Prefilter
from emblens.reading.chunks import READ_ERRORS as CHUNK_ERRORS
from emblens.reading.chunks import describe_read_error, read_head
from emblens.reading.context import WHOLE_BYTES, SourceContext
from emblens.run import Run
from emblens.settings import Clock, Limits, Selection, Settings

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
    written: float | None = None     # when the member was last written (epoch seconds), for year-less stamps
    traffic: pl.DataFrame | None = None   # access lines counted by minute and status (reading.routine.Tally), server logs only
    kv: pl.DataFrame | None = None        # KV-cache usage by minute, when the log has metrics lines
    collected_from: str | None = None     # what `emblens collect` ran or read to get it (its manifest)


@dataclass
class Reading:
    """What reading the inputs gave: the event table (masked), each member's coverage, the members
    skipped and why, and the notes of emblens's own bundles (`probe`: probe.json, `collect`:
    manifest.json), which are not read as evidence."""

    events: pl.DataFrame
    inputs: list[InputInfo]
    skipped: list[Skipped] = field(default_factory=list)
    notes: dict[str, dict] = field(default_factory=dict)

    @classmethod
    def of_rows(cls, rows: list[dict], inputs: list[InputInfo], upstream: Messages | None = None) -> Reading:
        """A reading of event rows made elsewhere, already masked (the live addon's flows);
        `upstream`: the rule set's messages, found in the rows' text."""
        return cls(messages.parse(frame(rows), upstream), inputs)

    def written(self) -> dict[str, float]:
        """Each member's last-written time by source, for stamps that carry no year."""
        return {i.source: i.written for i in self.inputs if i.written}


@dataclass
class Analysis:
    events: pl.DataFrame
    inputs: list[InputInfo]
    skipped: list[Skipped]
    facts: Facts
    findings: list = field(default_factory=list)       # list[emblens.rules.engine.Finding]
    unexplained: list = field(default_factory=list)    # list[emblens.findings.unexplained.Unexplained]
    rules_run: int = 0
    notices: list[str] = field(default_factory=list)   # e.g. a user rule replacing a built-in one
    masked: dict[str, int] = field(default_factory=dict)   # secrets masked while reading, by kind (never values)
    lead: object = None     # emblens.findings.lead.Lead: where to start when no rule fired
    traffic: object = None  # emblens.combiners.traffic.Traffic: requests by minute and status, KV-cache usage
    clock_notes: list[str] = field(default_factory=list)   # sources apart in time, clocks offset (time.span_notes)
    probe: dict | None = None        # an `emblens probe` bundle's probe.json: the checks and their outcomes
    collection: dict | None = None   # an `emblens collect` bundle's manifest.json: where each file came from
    before_window: pl.DataFrame | None = None   # the table before --since/--until, kept only with run(keep_window=True)


# what one member may raise without stopping the rest: RecursionError is the last net under input
# nested deeper than a parser goes (each parser bounds depth itself where it can)
READ_ERRORS = (*CHUNK_ERRORS, LimitExceeded, RecordError, RecursionError)

Input = str | Path | Member


def _exchanges(events: pl.DataFrame, findings: list) -> frozenset:
    """The (source, line) of the matched events that are requests (kind `http`): ranking links two
    findings resting on requests alone only through a request they share."""
    wanted = set().union(*(f.matched for f in findings)) if findings else set()
    if not wanted or "kind" not in events.columns:
        return frozenset()
    http = events.filter(pl.col("kind") == "http").select("source", "line")
    if http.height == 0:
        return frozenset()
    asked = pl.DataFrame(list(wanted), schema={"source": http.schema["source"], "line": http.schema["line"]}, orient="row")
    return frozenset(http.join(asked, on=["source", "line"], how="semi").iter_rows())


# -- reading ------------------------------------------------------------------------------------------
def read(inputs: Sequence[Input], run: Run, *, keep_all: bool = False, keywords: str | Prefilter | None = None,
         collapse: bool = True, progress: Progress | None = None) -> Reading:
    """Read every member of `inputs` (paths, or members already in memory) into one event table,
    as the formats see it, masked by the run's redactor. Broken members are skipped with a
    reason, never fatal. `keep_all` keeps every line (`emblens events`); otherwise only the lines
    a format finds notable or `keywords` (the rules' prefilter) could match. `collapse`: a server
    log's failing requests of one minute may be counted into one row (`reading.bounds.Collapse`)."""
    frames: list[pl.DataFrame] = []
    reading = Reading(schema.empty(), [])
    limits = run.settings.limits
    models = run.ruleset.models
    rows_left = limits.run_rows      # kept rows of the whole run: each member gets what is left
    for item in _members(inputs, limits):
        if isinstance(item, Skipped):
            reading.skipped.append(item)
            continue
        own = meta.note(item)
        if own is not None:
            reading.notes[own[0]] = own[1]
            continue
        ctx = SourceContext(item.label, keep_all=keep_all, keywords=keywords, models=models, sniff=sniff, fallback=GenericLog(),
                            max_kept=max(limits.min_kept_rows, min(limits.kept_rows, rows_left)), collapse=collapse,
                            redactor=run.redactor, whole=item.size is not None and item.size <= WHOLE_BYTES)
        try:
            result, why = _read_member(item, ctx, progress)
        except READ_ERRORS as e:
            result, why = None, f"cannot read: {describe_read_error(e)}"
        except Exception as e:   # a reader's bug on hostile input must not cost the other members
            result, why = None, (f"emblens could not read it ({type(e).__name__}: {str(e)[:120]}); the other inputs "
                                 "were analysed. Please report this with the file if you can share it")
        if result is None:
            reading.skipped.append(Skipped(item.label, redact.printable(run.redactor.text(why or "unreadable"))))
            continue
        events, info = result
        info.written = item.mtime
        rows_left -= events.height
        if info.note:
            info.note = redact.printable(run.redactor.text(info.note))
        reading.inputs.append(info)
        if events.height:
            frames.append(events)
    # the last line of defence: whatever a format did, no column of user text leaves here unmasked;
    # then the messages any line may carry are read into their columns, once (`formats.messages`)
    if frames:
        reading.events = messages.parse(run.redactor.frame(pl.concat(frames, how="vertical")), run.ruleset.messages)
    return reading


def _members(inputs: Sequence[Input], limits: Limits):
    """Members of the inputs, in order: paths through the bundle reader (within `limits`), members
    made in memory as they are."""
    paths: list[str] = []
    for item in inputs:
        if isinstance(item, Member):
            if paths:
                yield from read_members(paths, limits)
                paths = []
            yield item
        else:
            paths.append(str(item))
    if paths:
        yield from read_members(paths, limits)


def _read_member(member: Member, ctx: SourceContext, progress: Progress | None):
    with member.open() as f:
        head = read_head(f, HEAD_BYTES)
    if not head:
        return None, "empty (0 bytes)"
    encoding = utf16(head)
    if encoding is not None:
        opener = member.open
        member = Member(member.label, lambda: Transcoded(opener(), encoding), member.size)
        with member.open() as f:
            head = read_head(f, HEAD_BYTES)
    fmt, why = choose(head, member.size)
    if fmt is None:
        return None, why
    with member.open() as f:
        stream = Metered(f, member.label, on_read=progress)
        events, counts = fmt.parse_stream(stream, ctx)
    if counts.lines - counts.blank == 0:
        return None, "only blank lines"
    kind = (counts.kind or fmt.name) + (" (UTF-16 text)" if encoding else "")
    return (events, InputInfo(member.label, kind, counts.events, counts.unparsed, counts.lines, counts.blank,
                              counts.stopped, traffic=counts.traffic, kv=counts.kv)), None


# -- the analysis ---------------------------------------------------------------------------------------
def run(inputs: Sequence[Input] | Reading, run: Run, *, progress: Progress | None = None,
        keep_window: bool = False) -> Analysis:
    """The analysis of `inputs` (paths, members in memory, or a `Reading` already made, as the live
    addon makes one from its flows): read, combine, run the rules, rank, count the requests each
    finding matched, and say what was masked and what the clocks suggest. `keep_window`: keep the
    table a time window cut as `before_window` (`--explain` says what the window left out)."""
    from emblens.findings.calm import calmed
    from emblens.findings.lead import lead
    from emblens.findings.named import with_named
    from emblens.findings.path import with_paths
    from emblens.findings.possible import possible
    from emblens.findings.requests import with_requests
    from emblens.findings.unexplained import unexplained
    from emblens.rules.engine import evaluate
    from emblens.rules.rank import rank

    ruleset = run.ruleset
    if isinstance(inputs, Reading):
        reading = inputs
    else:
        reading = read(inputs, run, keywords=ruleset.prefilter, collapse=not any(r.within_s for r in ruleset.rules),
                       progress=progress)
    collection = _collection(reading.notes.get("collect"), reading.inputs, run)
    clock, written = run.settings.clock, reading.written()
    enriched = enrich(reading.events, ruleset.models, year=clock.year, written=written, tz=clock.tz)
    events = _window(enriched, run.settings.selection)
    outside = _outside(enriched, events, run.settings.selection)
    facts = combine(events, ruleset.models)
    seen = traffic.collect(reading.inputs, events, year=clock.year, written=written, tz=clock.tz,
                           since=run.settings.selection.since, until=run.settings.selection.until)
    facts.figures.update(traffic.figures(seen))      # the KV-cache peak of the metrics lines, for the rules
    found = calmed(evaluate(ruleset, events, facts, run.budget), events)   # "works in spite of this"
    exchanges = _exchanges(events, found)
    findings = rank(found, exchanges)
    if maybe := possible(events, ruleset, facts, findings):      # never silent: the nearest upstream message
        findings = rank([*findings, *maybe], exchanges)
    findings = with_named(with_paths(with_requests(findings, events, seen), events), events)
    notice = run.budget.notice()
    return Analysis(events=events, inputs=reading.inputs, skipped=reading.skipped, facts=facts, findings=findings,
                    unexplained=unexplained(events, findings), rules_run=len(ruleset.rules),
                    notices=[*ruleset.notices, *run.notices, *([notice] if notice else []), *outside],
                    lead=None if findings else lead(events, getattr(ruleset, "messages", None)), masked=run.redactor.counts(), traffic=seen,
                    clock_notes=time.span_notes(events), probe=_probe(reading.notes.get("probe")), collection=collection,
                    before_window=enriched if keep_window and enriched is not events else None)


def _window(events: pl.DataFrame, selection: Selection) -> pl.DataFrame:
    """The events of the selection's time window (after the years are filled in); events with no
    time at all are kept, since a traceback without a stamp may be the cause."""
    since, until = selection.since, selection.until
    if since is None and until is None:
        return events
    ts = pl.col("ts")
    inside = pl.lit(True)
    if since is not None:
        inside = inside & (ts >= since)
    if until is not None:
        inside = inside & (ts <= until)
    return events.filter(ts.is_null() | inside)


def _outside(events: pl.DataFrame, kept: pl.DataFrame, selection: Selection) -> list[str]:
    """A notice when the time window holds none of the events that carry a time (a relative
    `--since 1h` on an old bundle): the report would otherwise look like nothing happened."""
    if (selection.since is None and selection.until is None) or "ts" not in events.columns:
        return []
    timed = events["ts"].drop_nulls()
    if not timed.len() or kept["ts"].drop_nulls().len():
        return []
    fmt = "%Y-%m-%d %H:%M:%SZ"
    window = " to ".join(f"{w:{fmt}}" for w in (selection.since, selection.until) if w is not None)
    return [f"the time window ({'from ' if selection.until is None else ''}{window}) holds none of the "
            f"{timed.len():,} events with a time: they run from {timed.min():{fmt}} to {timed.max():{fmt}}"]


def _clean(value: object, limit: int = 500, mask: Callable[[str], str] = redact.mask_text) -> str:
    return redact.printable(mask(str(value)))[:limit]


def _probe(doc: dict | None) -> dict | None:
    """probe.json as the report shows it: its text masked and bounded (a bundle is a stranger's)."""
    if doc is None or not isinstance(doc.get("checks"), list):
        return None
    checks = []
    for c in doc["checks"][:100]:
        if isinstance(c, dict):
            outcome = c.get("outcome") if c.get("outcome") in ("pass", "warn", "fail", "skip") else "skip"
            checks.append({"id": _clean(c.get("id", ""), 60), "title": _clean(c.get("title", ""), 120),
                           "outcome": outcome, "detail": _clean(c.get("detail", ""), 600)})
    return {"url": _clean(doc.get("url", ""), 300), "model": _clean(doc["model"], 200) if doc.get("model") else None,
            "started": _clean(doc.get("started", ""), 40), "requests": doc.get("requests") if isinstance(doc.get("requests"), int) else None,
            "checks": checks}


def _collection(doc: dict | None, inputs: list[InputInfo], run: Run) -> dict | None:
    """manifest.json as the report shows it, and each input's `collected_from`."""
    if doc is None:
        return None

    def clean(value: object, limit: int) -> str:
        return _clean(value, limit, run.redactor.text)

    collected = [c for c in doc.get("collected", [])[:1000] if isinstance(c, dict)] if isinstance(doc.get("collected"), list) else []
    origin = {str(c.get("file")): clean(c.get("from", ""), 300) for c in collected if c.get("file")}
    for i in inputs:
        i.collected_from = origin.get(meta.inner(i.source))
    missing = doc.get("not_collected") if isinstance(doc.get("not_collected"), list) else []
    return {"created": clean(doc.get("created", ""), 40), "host": clean(doc.get("host", ""), 100),
            "collected": [{"file": clean(c.get("file", ""), 200), "from": clean(c.get("from", ""), 300)} for c in collected],
            "not_collected": [{"what": clean(m.get("what", ""), 120), "why": clean(m.get("why", ""), 300)}
                              for m in missing[:200] if isinstance(m, dict)],
            "versions": {clean(k, 60): clean(v, 120) for k, v in list((doc.get("versions") or {}).items())[:50]}
                        if isinstance(doc.get("versions"), dict) else {}}


# -- the library's front door ---------------------------------------------------------------------------
def settings(*, rule_dirs: Sequence[str | Path] = (), include_builtin: bool = True, limits: Limits | None = None,
             select: Sequence[str] = (), ignore: Sequence[str] = (), since: datetime | None = None,
             until: datetime | None = None, redact_patterns: str | Path | None = None, year: int | None = None,
             tz: str | None = None) -> Settings:
    """`Settings` from the keyword arguments `analyze` and `load_events` take (ValueError for a bad one)."""
    return Settings(rule_dirs=tuple(Path(d) for d in rule_dirs), include_builtin=include_builtin,
                    redact=Path(redact_patterns) if redact_patterns else None, limits=limits or Limits(),
                    clock=Clock(year=year, tz=tz), selection=Selection(select=tuple(select), ignore=tuple(ignore),
                                                                       since=since, until=until))


def analyze(paths: Sequence[str | Path], *, progress: Progress | None = None, ruleset=None, **options) -> Analysis:
    """Read, run the rules, rank: `run` with the settings the keywords give (`settings`: `rule_dirs`,
    `include_builtin`, `limits`, `select`/`ignore` (ids, areas or globs), `since`/`until` (naive
    UTC datetimes), `redact_patterns` (a file of the user's own patterns), `year` and `tz` (stamps
    with no year or no zone)). Raises InputError / RuleError for unusable input or rules, ValueError
    for a bad setting. `ruleset` (from `load_rules`) saves loading the rules again for many inputs."""
    return run(paths, Run(settings(**options), ruleset=ruleset), progress=progress)


def load_events(paths: Sequence[str | Path], *, keep_all: bool = True, progress: Progress | None = None,
                **options) -> tuple[pl.DataFrame, list[InputInfo], list[Skipped]]:
    """The event table of `paths` with the combiners' columns (years filled in, times in UTC,
    embedding figures, other GPU processes): what `emblens events` writes. Options as `analyze`."""
    r = Run(settings(**options))
    reading = read(paths, r, keep_all=keep_all, progress=progress)
    clock = r.settings.clock
    events = enrich(reading.events, r.ruleset.models, year=clock.year, written=reading.written(), tz=clock.tz)
    return events, reading.inputs, reading.skipped
