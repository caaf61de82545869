"""What every format shares. A format is a class with attributes and a short parse; every other
place of emblens reads its attributes instead of naming formats:

    name          the kind shown in coverage ("vllm-log")
    origin        who wrote its lines: the event table's `origin` (a format's parse may set
                  another origin on some lines; `origins` lists all it may write)
    server        it is a model server's own log (the GPU processes, facts and times of the
                  server come from it)
    local_time    its stamps are the writer's local clock with no zone (moved to UTC by --tz)
    pasted        a small member of this format is read as a paste, region by region
    line_pattern  what a well-formed line looks like (coverage: events or unparsed)
    notable       lines always kept: facts, warnings, errors
    clock         the stamp (group 1, to the second) of lines that carry one, for a format whose
                  routine lines are counted instead of kept (`reading.routine.Tally`)
    ok_line       the end of its routine line of a request that worked, counted without a look
    metrics       the literal starts of its periodic metrics lines (KV-cache usage)
    requests      the literal marks of the lines it writes for each request it receives (request
                  logging): counted as routine, never kept nor read, since they quote the user's text
    samples       lines of the real program's output that `line_pattern` must match

A line format implements `sniff` and `parse_rows` and is read by the streaming engine
(`emblens.reading.engine`); a whole-file format walks its lines in Python (`WholeFileSource`).
Instances hold nothing (`__slots__ = ()`): one instance of each, in `registry`, serves every run."""

from __future__ import annotations

import functools
import re
from typing import BinaryIO

import polars as pl

from emblens.events.schema import frame
from emblens.reading.context import MAX_WALK_CHARS, Counts, SourceContext
from emblens.reading.lines import ANSI


@functools.lru_cache(maxsize=128)
def head_rx(pattern: str) -> re.Pattern[str]:
    """A sniff's pattern, compiled once. A head is a few hundred lines at most (`ingest.sniff`), read
    in Python: a polars query per format per head compiled its pattern each time, and cost more
    than the reading (some 60 queries an analysis). The patterns are written to mean the same in
    Python's `re` and polars' engine."""
    return re.compile(pattern)


def head_without(lines: list[str], prefix: str) -> list[str]:
    """`lines` with what `prefix` (a pattern anchored at the start) matches taken off: a journal's
    stamp, a process's tag, a relative time."""
    rx = head_rx(prefix)
    return [rx.sub("", h, count=1) for h in lines]


def head_count(lines: list[str], *patterns: str) -> int:
    """How many of `lines` match any of `patterns`."""
    rxs = [head_rx(p) for p in patterns]
    return sum(1 for line in lines if any(rx.search(line) for rx in rxs))


class Source:
    """Base of the formats: the attributes above (class attributes), `sniff` and `parse_rows`."""

    __slots__ = ()
    name: str = "generic"
    origin: str = "generic"
    origins: tuple[str, ...] = ()        # other origins its parse may write on some lines
    server: bool = False
    local_time: bool = False
    pasted: bool = False
    line_pattern: str = r"."
    notable: str = r"(?i)\b(?:error|critical|fatal|exception|warning|traceback|failed)\b"
    clock: str | None = None
    ok_line: str | None = None
    metrics: tuple[str, ...] = ()
    requests: tuple[str, ...] = ()
    samples: tuple[str, ...] = ()

    def sniff(self, head: list[str]) -> float:  # pragma: no cover - overridden  # noqa: ARG002
        return 0.0

    @staticmethod
    def share(head: list[str], pattern: str) -> tuple[int, int]:
        """How many of the head's non-blank lines match `pattern`, and how many there are."""
        lines = [h for h in head if h.strip()]
        return head_count(lines, pattern), len(lines)

    def parse_rows(self, kept: pl.DataFrame) -> pl.DataFrame:  # pragma: no cover - overridden
        """Turn kept raw lines (`line`, `raw`, `wrap_ts`) into event columns plus `body` and `key`."""
        raise NotImplementedError

    def parse_stream(self, stream: BinaryIO, ctx: SourceContext) -> tuple[pl.DataFrame, Counts]:
        """Read a member through the streaming engine (`emblens.reading.engine.read`)."""
        from emblens.reading import engine

        return engine.read(self, stream, ctx)


class WholeFileSource(Source):
    """A source whose members are small and read whole (up to MAX_BYTES), then walked line by
    line in Python: curl -v transcripts and nvidia-smi dumps. Subclasses implement `parse_lines`;
    lines they report as used are events, the other non-blank lines are unparsed."""

    __slots__ = ()
    MAX_BYTES = 64 * 1024 * 1024

    def parse_lines(self, lines: list[str], ctx: SourceContext) -> tuple[list[dict], set[int], str | None]:  # pragma: no cover
        """Event rows (with `line`, 1-based), the numbers of the lines they account for, and a
        note when the member was understood only in part."""
        raise NotImplementedError

    def parse_stream(self, stream: BinaryIO, ctx: SourceContext) -> tuple[pl.DataFrame, Counts]:
        lines, counts = self.read_lines(stream, ctx)
        rows, used, note = self.parse_lines(lines, ctx)
        for row in rows:
            row["source"] = ctx.label
        self.account(counts, lines, used, note)
        return frame(rows), counts

    def read_lines(self, stream: BinaryIO, ctx: SourceContext) -> tuple[list[str], Counts]:
        """The member's lines (up to MAX_BYTES), colours and CRs removed, a secret's value on the
        line after its name masked."""
        raw = stream.read(self.MAX_BYTES + 1)
        counts = Counts()
        if len(raw) > self.MAX_BYTES:
            counts.stopped = f"only the first {self.MAX_BYTES // 2**20} MiB read"
            raw = raw[: self.MAX_BYTES]
        text = re.sub(ANSI, "", raw.decode("utf-8", "replace")).replace("\r", "")
        lines = text.split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        if lines:
            lines = ctx.redactor.next_lines(pl.Series(lines, dtype=pl.String)).to_list()
        long = [i for i, line in enumerate(lines) if len(line) > MAX_WALK_CHARS]
        for i in long:      # these lines are walked by Python regexes: keep them short
            lines[i] = lines[i][:MAX_WALK_CHARS]
        if long:
            note = f"{len(long):,} line(s) longer than {MAX_WALK_CHARS:,} characters cut to that length"
            counts.stopped = "; ".join(x for x in (counts.stopped, note) if x)
        return lines, counts

    @staticmethod
    def account(counts: Counts, lines: list[str], used: set[int], note: str | None) -> None:
        """Lines accounted for are events; the other non-blank lines are unparsed."""
        counts.stopped = "; ".join(x for x in (counts.stopped, note) if x) or None
        counts.lines = len(lines)
        counts.blank = sum(1 for line in lines if not line.strip())
        counts.events = sum(1 for i in used if 0 < i <= len(lines) and lines[i - 1].strip())
        counts.unparsed = counts.lines - counts.blank - counts.events
