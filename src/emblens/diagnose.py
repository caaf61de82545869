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

from emblens.combiners import Facts, enrich, time, traffic
from emblens.events import redact, schema
from emblens.formats.records import RecordError
from emblens.formats.registry import PASTE
from emblens.ingest.bundle import LimitExceeded, Limits, Member, Metered, Skipped, read_members
from emblens.ingest.sniff import HEAD_BYTES, sniff
from emblens.knowledge.modeldata import ModelData
from emblens.patterns.literals import Prefilter
from emblens.reading import context
from emblens.reading.chunks import READ_ERRORS as CHUNK_ERRORS
from emblens.reading.chunks import describe_read_error, read_head
from emblens.reading.context import SourceContext

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
class Analysis:
    events: pl.DataFrame
    inputs: list[InputInfo]
    skipped: list[Skipped]
    facts: Facts
    findings: list = field(default_factory=list)       # list[emblens.rules.engine.Finding]
    unexplained: list = field(default_factory=list)    # list[emblens.rules.engine.Unexplained]
    rules_run: int = 0
    notices: list[str] = field(default_factory=list)   # e.g. a user rule replacing a built-in one
    masked: dict[str, int] = field(default_factory=dict)   # secrets masked while reading, by kind (never values)
    lead: object = None     # emblens.rules.engine.Lead: where to start when no rule fired
    traffic: object = None  # emblens.combiners.traffic.Traffic: requests by minute and status, KV-cache usage
    clock_notes: list[str] = field(default_factory=list)   # sources apart in time, clocks offset (time.span_notes)
    probe: dict | None = None        # an `emblens probe` bundle's probe.json: the checks and their outcomes
    collection: dict | None = None   # an `emblens collect` bundle's manifest.json: where each file came from


# what one member may raise without stopping the rest: RecursionError is the last net under input
# nested deeper than a parser goes (each parser bounds depth itself where it can)
READ_ERRORS = (*CHUNK_ERRORS, LimitExceeded, RecordError, RecursionError)


def utf16(head: bytes) -> str | None:
    """The UTF-16 flavour of a member (Windows PowerShell's `>` writes UTF-16LE), or None."""
    if head.startswith(b"\xff\xfe"):
        return "utf-16-le"
    if head.startswith(b"\xfe\xff"):
        return "utf-16-be"
    sample = head[:4096]
    if len(sample) >= 64:
        for enc, zeros, chars in (("utf-16-le", sample[1::2], sample[0::2]), ("utf-16-be", sample[0::2], sample[1::2])):
            if zeros.count(0) > 0.9 * len(zeros) and chars.count(0) < 0.05 * len(chars):
                return enc
    return None


class Transcoded:
    """A UTF-16 stream read as UTF-8, in pieces (the adapters all read UTF-8)."""

    def __init__(self, raw, encoding: str) -> None:
        import codecs

        self._raw, self._bom = raw, True
        self._decoder = codecs.getincrementaldecoder(encoding)(errors="replace")
        self.fragile = getattr(raw, "fragile", False)

    def read(self, n: int = -1) -> bytes:
        data = self._raw.read(n if n is None or n < 0 else max(2, n))
        text = self._decoder.decode(data, final=not data)
        if self._bom:
            text, self._bom = text.removeprefix("\ufeff"), False
        return text.encode("utf-8")

    def close(self) -> None:
        self._raw.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


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
    kind = (counts.kind or adapter.name) + (" (UTF-16 text)" if encoding else "")
    return (events, InputInfo(member.label, kind, counts.events, counts.unparsed, counts.lines, counts.blank,
                              counts.stopped, traffic=counts.traffic, kv=counts.kv)), None


def read_events(
    paths: Sequence[str | Path],
    *,
    keep_all: bool = True,
    keywords: "str | Prefilter | None" = None,
    models: ModelData | None = None,
    limits: Limits | None = None,
    progress: Progress | None = None,
    redact_patterns: str | None = None,
    collapse: bool = True,
    meta: dict | None = None,
) -> tuple[pl.DataFrame, list[InputInfo], list[Skipped]]:
    """Read every member of `paths` into one event table, as the sources see it. Broken members
    are skipped with a reason, never fatal. `redact_patterns` is a file of the user's own
    patterns to mask as well (`redact.use_patterns`); `redact.MASKED` then holds this run's tally.
    `collapse`: a server log's failing requests of one minute may be counted into one row
    (`reading.bounds.Collapse`); rules with a `within` window need every line's time, so not then.
    `meta`: a dict that receives the notes of emblens's own bundles (`probe`: probe.json,
    `collect`: manifest.json), which are then not read as inputs."""
    redact.use_patterns(redact_patterns)
    try:
        return _read_events(paths, keep_all, keywords, models, limits, progress, collapse, meta)
    finally:
        redact.use_patterns(None)


META_NAMES = {"probe.json": "probe", "manifest.json": "collect"}   # emblens's own notes at a bundle's top
META_MAX_BYTES = 4 * 1024 * 1024


def _inner(label: str) -> str:
    """A member's name inside its bundle (`b.zip:logs/server.log` -> `logs/server.log`); for a
    loose file, its name. The names probe.json, manifest.json and the manifest's files are these."""
    label = label.replace("\\", "/")
    parts = label.split(":", 1)
    return (parts[1] if len(parts) == 2 and label[1:3] != ":/" else Path(label).name).strip("/")


def _meta(member: Member) -> tuple[str, dict] | None:
    """An `emblens probe` or `emblens collect` bundle's own note (probe.json, manifest.json at the
    top of the bundle), or None for any other member, or a file of that name that is not one."""
    kind = META_NAMES.get(_inner(member.label))
    if kind is None or (member.size is not None and member.size > META_MAX_BYTES):
        return None
    import json

    try:
        with member.open() as f:
            doc = json.loads(f.read(META_MAX_BYTES + 1))
    except (OSError, ValueError, RecursionError):
        return None
    if not isinstance(doc, dict) or doc.get("emblens") != kind:
        return None
    return kind, doc


def _read_events(paths, keep_all, keywords, models, limits, progress, collapse=True, meta=None):
    frames: list[pl.DataFrame] = []
    inputs: list[InputInfo] = []
    skipped: list[Skipped] = []
    rows_left = context.MAX_RUN_ROWS      # kept rows of the whole run: each member gets what is left
    redact.MASKED.take()               # the masked-secret tally counts this run only
    for item in read_members([str(p) for p in paths], limits):
        if isinstance(item, Skipped):
            skipped.append(item)
            continue
        note = _meta(item) if meta is not None else None
        if note is not None:
            meta[note[0]] = note[1]
            continue
        ctx = SourceContext(item.label, keep_all=keep_all, keywords=keywords, models=models or ModelData(), sniff=sniff,
                            max_kept=max(context.MIN_KEPT_ROWS, min(context.MAX_KEPT_ROWS, rows_left)), collapse=collapse)
        try:
            result, why = _read_member(item, ctx, progress)
        except READ_ERRORS as e:
            result, why = None, f"cannot read: {describe_read_error(e)}"
        except Exception as e:   # a reader's bug on hostile input must not cost the other members
            result, why = None, (f"emblens could not read it ({type(e).__name__}: {str(e)[:120]}); the other inputs "
                                 "were analysed. Please report this with the file if you can share it")
        if result is None:
            skipped.append(Skipped(item.label, redact.printable(redact.mask_text(why or "unreadable"))))
            continue
        events, info = result
        info.written = item.mtime
        rows_left -= events.height
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
    year: int | None = None,
    redact_patterns: str | None = None,
    tz: str | None = None,
) -> tuple[pl.DataFrame, list[InputInfo], list[Skipped]]:
    """The event table of `paths` with the combiners' columns (years filled in, times in UTC,
    embedding figures, other GPU processes): what `emblens events` writes."""
    from emblens.rules.loader import load_rules

    models = load_rules(rule_dirs).models
    events, inputs, skipped = read_events(paths, keep_all=keep_all, models=models, limits=limits, progress=progress,
                                          redact_patterns=redact_patterns, meta={})
    return enrich(events, models, year=year, written=written_times(inputs), tz=tz), inputs, skipped


def written_times(inputs: list[InputInfo]) -> dict[str, float]:
    """Each member's last-written time by source, for stamps that carry no year."""
    return {i.source: i.written for i in inputs if i.written}


def analyze(
    paths: Sequence[str | Path],
    *,
    rule_dirs: Sequence[str | Path] = (),
    include_builtin: bool = True,
    limits: Limits | None = None,
    progress: Progress | None = None,
    ruleset=None,
    select: Sequence[str] = (),
    ignore: Sequence[str] = (),
    since=None,
    until=None,
    redact_patterns: str | None = None,
    year: int | None = None,
    tz: str | None = None,
) -> Analysis:
    """Read, run the rules, rank. Raises InputError / RuleError for unusable input or rules.
    `ruleset` (from `load_rules`) saves loading the rules again when analysing many inputs;
    `select`/`ignore` choose rules by id, area or glob (`RuleSet.select`); `since`/`until` (naive
    UTC datetimes) keep the events of a time window, and those without a time; `redact_patterns`
    is a file of the user's own patterns to mask (`redact.use_patterns`); `year` and `tz` settle
    stamps that carry no year or no zone (`combiners.time`)."""
    from emblens.pipeline import diagnose
    from emblens.rules.loader import load_rules

    if ruleset is None:
        ruleset = load_rules(rule_dirs, include_builtin=include_builtin)
    if select or ignore:
        ruleset = ruleset.select(select, ignore)
    meta: dict = {}
    events, inputs, skipped = read_events(paths, keep_all=False, keywords=ruleset.prefilter, models=ruleset.models,
                                          limits=limits, progress=progress, redact_patterns=redact_patterns,
                                          collapse=not any(r.within_s for r in ruleset.rules), meta=meta)
    collection = _collection(meta.get("collect"), inputs)
    masked = redact.MASKED.take()
    d = diagnose(events, ruleset, since=since, until=until, year=year, written=written_times(inputs), tz=tz)
    seen = traffic.collect(inputs, d.events, year=year, written=written_times(inputs), tz=tz)
    for f in d.findings:      # "3 of 2,000 requests": the exchanges it matched, of those its sources saw
        f.requests = traffic.matched_requests(f, d.events) or None
        if f.requests:
            f.requests_seen = seen.total({s for s, _ in f.matched}) or None
    return Analysis(events=d.events, inputs=inputs, skipped=skipped, facts=d.facts, findings=d.findings,
                    unexplained=d.unexplained, rules_run=len(ruleset.rules), notices=[*ruleset.notices, *(d.notices or ())],
                    lead=d.lead, masked=masked, traffic=seen, clock_notes=time.span_notes(d.events),
                    probe=_probe(meta.get("probe")), collection=collection)


def _clean(value: object, limit: int = 500) -> str:
    return redact.printable(redact.mask_text(str(value)))[:limit]


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


def _collection(doc: dict | None, inputs: list[InputInfo]) -> dict | None:
    """manifest.json as the report shows it, and each input's `collected_from`."""
    if doc is None:
        return None
    collected = [c for c in doc.get("collected", [])[:1000] if isinstance(c, dict)] if isinstance(doc.get("collected"), list) else []
    origin = {str(c.get("file")): _clean(c.get("from", ""), 300) for c in collected if c.get("file")}
    for i in inputs:
        i.collected_from = origin.get(_inner(i.source))
    missing = doc.get("not_collected") if isinstance(doc.get("not_collected"), list) else []
    return {"created": _clean(doc.get("created", ""), 40), "host": _clean(doc.get("host", ""), 100),
            "collected": [{"file": _clean(c.get("file", ""), 200), "from": _clean(c.get("from", ""), 300)} for c in collected],
            "not_collected": [{"what": _clean(m.get("what", ""), 120), "why": _clean(m.get("why", ""), 300)}
                              for m in missing[:200] if isinstance(m, dict)],
            "versions": {_clean(k, 60): _clean(v, 120) for k, v in list((doc.get("versions") or {}).items())[:50]}
                        if isinstance(doc.get("versions"), dict) else {}}
