"""What every source adapter shares: chunked line reading, unwrapping container log wrappers,
ANSI and CR stripping, the keep-filter, secret masking and Python traceback assembly.

A member is read in chunks of whole lines. Every line is counted (events or unparsed); only the
lines that can matter — the adapter's notable lines and any line a rule's text pattern could hit —
are parsed fully and kept in the event table, so a multi-gigabyte log of routine lines costs a
few vectorised passes and little memory. `keep_all` keeps every line (for `emblens events`).
"""

from __future__ import annotations

import gzip
import itertools
import re
import zipfile
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import BinaryIO

import polars as pl

from emblens import inflate, redact, schema
from emblens.literals import Prefilter
from emblens.modeldata import ModelData

READ_ERRORS = (OSError, EOFError, *inflate.ERRORS, zipfile.BadZipFile, UnicodeError)
CHUNK_BYTES = 8 * 1024 * 1024
WORKERS = 2          # chunks scanned at once; each holds a chunk and its line frame in memory
MAX_LINE_BYTES = 64 * 1024   # a longer line is cut to this and counted, never stored whole
MAX_WALK_CHARS = 64 * 1024   # lines of whole-file sources (curl -v, nvidia-smi, pastes), walked in Python
MAX_KEPT_ROWS = 500_000      # kept lines per member: the first and last halves, the middle counted
MAX_RUN_ROWS = 1_000_000     # kept lines of a whole run, shared by its members...
MIN_KEPT_ROWS = 10_000       # ...but every member keeps at least this many
COUNTED_ROWS = 20_000        # a server log's failing requests counted by minute; past this, by hour
                             # (the rows grow with the log's time span: 48,000 for four days of a
                             # busy server, 10 MiB twice over, in the counter and the event table)
ANSI = r"\x1b\[[0-9;?]*[A-Za-z]"
ANSI_BYTES = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]")

# Container wrappers: `kubectl logs --timestamps` and docker's json-file driver.
KUBECTL_TS = r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})) "
DOCKER_OPEN = '{"log":"'
DOCKER_JSON = "^" + re.escape(DOCKER_OPEN)

# uvicorn's lines, which vLLM and SGLang both print (FORMATS.md §1, §2): access lines and level lines.
ACCESS = r'^INFO: +(?P<client>\S+) - "(?P<method>[A-Z]+) (?P<path>\S+) HTTP/[\d.]+" (?P<status>\d{3})(?: (?P<reason>.*))?$'
UVICORN = r"^(?P<level>DEBUG|INFO|WARNING|ERROR|CRITICAL): +(?P<msg>.*)$"
# Routine traffic is counted while reading, not kept: access lines by minute and status, and the
# KV-cache usage of the periodic metrics lines (vLLM's percentage, SGLang's `token usage` share).
# the periodic metrics lines: vLLM's (every version) and SGLang's batch lines
METRICS_LINES = ("Avg prompt throughput:", "Prefill batch", "Decode batch")
# how almost every line of a busy server's log ends: a uvicorn access line of a request that worked
OK_LINE = ' HTTP/1.1" 200 OK'
KV_USAGE = r"KV cache usage: (?P<pct>\d{1,3}(?:\.\d+)?)%|[Tt]oken usage: (?P<share>0(?:\.\d+)?|1(?:\.0+)?)\b"
# commands in a paste that say where the server runs: read by the text reader (kept lines) and by the
# client combiner (facts `container_seen`, `server_command`), so both follow one list
CONTAINER_COMMAND = r"docker (?:run|compose|exec)|docker-compose|--add-host|host\.docker\.internal"
SERVER_COMMAND = {
    "vllm": r"\bvllm serve\b|-m vllm\.entrypoints\.|vllm/vllm-openai",
    "sglang": r"-m sglang\.launch_server\b|\bsglang serve\b|lmsysorg/sglang",
}

# Python traceback anatomy (CPython 3.11+, also when pasted without indentation).
TB_HEADER = re.compile(r"^\s*(?:Exception Group )?Traceback \(most recent call last\):\s*$")
TB_CAUSE = re.compile(r"^\s*The above exception was the direct cause of the following exception:\s*$")
TB_CONTEXT = re.compile(r"^\s*During handling of the above exception, another exception occurred:\s*$")
EXC_LINE = re.compile(
    r"^(?P<type>(?:[A-Za-z_]\w*\.)*(?:[A-Za-z_]\w*(?:Error|Exception|Exit|Timeout|Interrupt|Refused|Failure|Warning)"
    r"|OutOfMemoryError|Exception)|(?:[a-z_]\w*\.)+[A-Z]\w*)(?:: (?P<msg>.*))?$"
)
TB_FRAME = r"^\s*File \"[^\"]*\", line \d+|^\s+\S|^\s*[\^~]+\s*$"
TB_NOTABLE = (
    r"Traceback \(most recent call last\)|The above exception was the direct cause|"
    r"During handling of the above exception|(?:^|[\s\]:`])(?:[A-Za-z_]\w*\.)*(?:[A-Za-z_]\w*(?:Error|Exception|Exit|Timeout|Interrupt)|Exception):"
)


@dataclass
class SourceContext:
    """Per-member settings for parsing."""

    label: str
    keep_all: bool = False
    keywords: "str | Prefilter | None" = None   # one regex of every rule text pattern (the prefilter)
    models: ModelData = ModelData()  # embedding model data (loaded with the rules, passed in)
    sniff: Callable[[bytes], tuple] | None = None   # picks the adapter of a region (emblens.sniff.sniff)
    max_kept: int = MAX_KEPT_ROWS    # kept lines this member may hold (the run's budget sets it)
    collapse: bool = True            # count a server log's repeated failing requests by minute (Collapse)


@dataclass
class Counts:
    lines: int = 0
    events: int = 0
    unparsed: int = 0
    blank: int = 0
    recognised: int = 0
    stopped: str | None = None       # why reading ended early (corrupt data after the first chunk)
    kind: str | None = None          # what the member turned out to be, when the adapter read it as a paste
    cut: int = 0                     # lines longer than MAX_LINE_BYTES, cut
    dropped: int = 0                 # notable lines past the member's kept-row limit, counted only
    traffic: "pl.DataFrame | None" = None   # requests by minute and status (Tally.requests), when counted
    kv: "pl.DataFrame | None" = None        # KV-cache usage by minute (Tally.kv), when the log has it
    clock_last: str | None = None           # the last stamp of a chunk (Tally)

    def add(self, other: "Counts") -> None:
        for f in ("lines", "events", "unparsed", "blank", "recognised", "cut", "dropped"):
            setattr(self, f, getattr(self, f) + getattr(other, f))


@dataclass
class Source:
    """Base of the adapters. Subclasses set the patterns and implement `parse_rows`."""

    name: str = "generic"
    origin: str = "generic"
    # anchored pattern recognising a well-formed line of the format (after unwrapping)
    line_pattern: str = r"."
    # lines always kept: facts, warnings, errors
    notable: str = r"(?i)\b(?:error|critical|fatal|exception|warning|traceback|failed)\b"
    # the stamp (group 1, to the second) of lines that carry one; set where the format has access
    # lines to count (`Tally`): lines without a stamp of their own take the last one before them
    clock: str | None = None

    def sniff(self, head: list[str]) -> float:  # pragma: no cover - overridden  # noqa: ARG002
        return 0.0

    def parse_rows(self, kept: pl.DataFrame) -> pl.DataFrame:  # pragma: no cover - overridden
        """Turn kept raw lines (`line`, `raw`, `wrap_ts`) into event columns plus `body` and `key`."""
        raise NotImplementedError

    # -- the shared pipeline --------------------------------------------------------------
    def parse_stream(self, stream: BinaryIO, ctx: SourceContext) -> tuple[pl.DataFrame, Counts]:
        """Read `stream` in chunks, filter each on the worker threads (polars releases the GIL, so
        reading the next chunk overlaps the scan of the last), then parse the kept lines of the
        whole member at once, so a traceback may span a chunk boundary.

        A server log's chunk is mostly `200 OK` access lines; the workers set its other lines apart
        (`Partial`), and those of several chunks are finished together (`Span`), on a worker too.
        Every finished run is taken here in the member's order."""
        counts = Counts()
        offset = 0                   # lines read so far (taken, or waiting in the span)
        pending: deque[Future] = deque()
        bounded = Bounded(max(2, ctx.max_kept))
        tally = Tally() if self.clock else None
        collapse = (Collapse(min(COUNTED_ROWS, max(2, ctx.max_kept) // 2))
                    if self.clock and ctx.collapse and not ctx.keep_all else None)
        span = Span()

        def take(kept: pl.DataFrame, c: Counts, start: int) -> None:
            """A finished run of lines, numbered from `start`, in the order of the member."""
            if tally is not None:
                kept = tally.add(kept, c)
            if kept.height:
                kept = kept.with_columns(pl.col("line") + start)
                if collapse is None:
                    bounded.add(kept)
                else:
                    collapse.feed(kept, bounded)
            counts.add(c)

        # finished runs in the member's order, taken as they are ready: (future of (kept, counts), first line)
        ordered: deque[tuple[Future, int]] = deque()

        def settle(limit: int) -> None:
            while ordered and (len(ordered) > limit or ordered[0][0].done()):
                future, start = ordered.popleft()
                take(*future.result(), start)

        def finish_span(pool: ThreadPoolExecutor) -> None:
            """Finish the span's lines on a worker, while the next chunks are read and scanned."""
            if span.parts:
                start, lines, n, cut = span.take()
                ordered.append((pool.submit(self.finish, lines, n, cut, ctx, True), start))

        def collect(pool: ThreadPoolExecutor, limit: int) -> None:
            nonlocal offset
            while len(pending) > limit:
                done = pending.popleft().result()
                if isinstance(done, Partial):
                    if span.add(done, offset):
                        finish_span(pool)
                    offset += done.n
                else:
                    finish_span(pool)
                    ready: Future = Future()
                    ready.set_result(done)
                    ordered.append((ready, offset))
                    offset += done[1].lines
            settle(Span.WAITING)

        chunks = read_chunks(stream, CHUNK_BYTES)
        first = next(chunks, None)   # a read error here is the caller's: nothing was read
        try:
            second = next(chunks, None) if first is not None else None
            broke = None
        except READ_ERRORS as e:
            second, broke = None, e
        if second is None:           # one chunk (most members): no threads needed
            if first is not None:
                kept, c = self.scan_chunk(first, ctx)
                take(kept, c, 0)
            if broke is not None:
                counts.stopped = f"read stopped after line {counts.lines:,}: {describe_read_error(broke)}"
            chunks = iter(())
        else:
            chunks = itertools.chain((first, second), chunks)
        with ThreadPoolExecutor(max_workers=WORKERS) as pool:
            while True:
                try:
                    chunk = next(chunks, None)
                except READ_ERRORS as e:
                    collect(pool, 0)
                    finish_span(pool)
                    settle(0)
                    if offset == 0:
                        raise
                    counts.stopped = f"read stopped after line {offset:,}: {describe_read_error(e)}"
                    break
                if chunk is None:
                    break
                pending.append(pool.submit(self.scan_chunk, chunk, ctx, True))
                collect(pool, WORKERS - 1)
            collect(pool, 0)
            finish_span(pool)
            settle(0)
        if collapse is not None:
            collapse.flush(bounded)
        kept_parts, counts.dropped = bounded.parts(), bounded.dropped
        if collapse is not None:
            kept_parts += collapse.rows()
        if tally is not None:
            counts.traffic, counts.kv = tally.requests(), tally.kv_usage()
        notes = [counts.stopped] if counts.stopped else []
        if counts.cut:
            notes.append(f"{counts.cut:,} line(s) longer than {MAX_LINE_BYTES // 1024} KiB cut to that length")
        if counts.dropped:
            notes.append(f"{counts.dropped:,} notable lines in the middle counted, not kept (the first and last "
                         f"{bounded.half:,} are)")
        counts.stopped = "; ".join(notes) or None
        if not kept_parts:
            counts.events = counts.recognised
            counts.unparsed = counts.lines - counts.blank - counts.events
            return schema.empty(), counts
        kept = pl.concat(kept_parts, how="diagonal_relaxed")
        if collapse is not None:
            kept = kept.sort("line")
        return self.parse_kept(kept.drop("_status", strict=False), counts, ctx), counts

    def scan_chunk(self, chunk: bytes, ctx: SourceContext, defer: bool = False) -> "tuple[pl.DataFrame, Counts] | Partial":
        """Split a chunk into lines, count them, and keep only those that can matter (masked).
        Line numbers are relative to the chunk.

        In a server log (`clock` set) most lines are `... HTTP/1.1" 200 OK` access lines: one suffix
        test finds them, and they are only counted (as requests, in `Tally.scan`). The other lines
        are finished here, or with `defer`, when they are few, handed back to be finished with the
        next chunks' (`Partial`)."""
        cut = chunk.cut if isinstance(chunk, Chunk) else 0
        if self.clock and not ctx.keep_all and isinstance(chunk, Chunk):
            quick = server_lines(chunk)
            if quick is not None:
                other, n, ok_cut = quick
                if defer and other.height <= Span.LINES // 2:
                    return Partial(other, n, cut + ok_cut)
                return self.finish(other, n, cut + ok_cut, ctx, partial=True)
        lines = unwrap(lines_frame(chunk))
        if not self.clock or ctx.keep_all:
            return self.finish(lines, lines.height, cut, ctx)
        raw = pl.col("raw")
        marks = lines.select(raw.str.ends_with(OK_LINE).alias("ok"), (raw.str.len_bytes() > MAX_LINE_BYTES).alias("long"))
        cut += int((marks["ok"] & marks["long"]).sum())     # an OK line is never kept: only counted if cut
        other = lines.filter(~marks["ok"])
        if defer and other.height <= Span.LINES // 2:
            return Partial(fresh(other), lines.height, cut)
        return self.finish(other, lines.height, cut, ctx, partial=True)

    def finish(self, lines: pl.DataFrame, n: int, cut: int, ctx: SourceContext,
               partial: bool = False) -> tuple[pl.DataFrame, Counts]:
        """Count a run of `n` lines and keep those that can matter (masked). `lines`: all of them,
        numbered 1..n, or with `partial`, only those that are not `OK_LINE` lines (numbered in the
        run; the others are `200 OK` access lines). `cut`: lines cut before, counted in."""
        lines = lines.with_columns(redact.mask_next_lines(lines["raw"], lines["line"] if partial else None).alias("raw"))
        long = lines["raw"].str.len_bytes() > MAX_LINE_BYTES
        cut += int(long.sum())
        if long.any():
            lines = lines.with_columns(
                pl.when(long).then(pl.col("raw").str.slice(0, MAX_LINE_BYTES)).otherwise(pl.col("raw")).alias("raw"))
        raw = pl.col("raw")
        marks = Tally.marks(lines) if self.clock else None
        # the regexes run on the lines that are not routine (all of them for `events`, which keeps every line)
        rest = lines if marks is None or ctx.keep_all else lines.filter(~marks["routine"])
        blank = raw.str.strip_chars().str.len_bytes() == 0
        recognised = raw.str.contains(f"(?:{self.line_pattern})|(?:{TB_FRAME})")
        # kept: the adapter's notable lines and traceback markers, then, among the other lines
        # only, those a rule's text pattern could hit (one large regex, slow on every line)
        keep = pl.lit(True) if ctx.keep_all else raw.str.contains(f"(?:{self.notable})|(?:{TB_NOTABLE})")
        flags = rest.select(blank.alias("blank"), (recognised & ~blank).alias("rec"), keep.alias("keep"))
        if ctx.keywords and not ctx.keep_all:
            left = (~flags["keep"]).arg_true()
            if left.len():
                lines_left = rest["raw"].gather(left)
                # only the parts of the prefilter that one of these lines could match (`literals`)
                pattern = ctx.keywords.narrow(lines_left) if isinstance(ctx.keywords, Prefilter) else ctx.keywords
                if pattern:
                    flags = flags.with_columns(flags["keep"].scatter(left, lines_left.str.contains(pattern)))
        flags = flags.with_columns(pl.col("keep") & ~pl.col("blank"))
        # the kept lines are copied out of the chunk: a filtered string column still points into the
        # whole chunk's buffers, so keeping a few lines of every chunk kept every chunk (RSS grew
        # with the input: 1.2 GiB for a 1 GiB log)
        kept = rest.filter(flags["keep"]).with_columns(
            pl.concat_str([pl.col("raw"), pl.lit("")]).alias("raw"),     # writes the strings anew (a cast does not)
            flags.filter(flags["keep"])["rec"].alias("_rec"))
        routine_n = n - rest.height   # routine lines (OK lines among them): recognised by the format, never blank
        counts = Counts(lines=n, blank=int(flags["blank"].sum()), recognised=int(flags["rec"].sum()) + routine_n,
                        cut=cut)
        if marks is not None:
            kept = Tally.scan(n, lines, marks, kept, counts, self.clock)
        if kept.height:
            kept = kept.with_columns(pl.Series("raw", redact.mask_series(kept["raw"])))
        return kept, counts

    def parse_kept(self, kept: pl.DataFrame, counts: Counts, ctx: SourceContext) -> pl.DataFrame:
        """Parse the kept lines of a member into events and settle the event/unparsed counts."""
        rec_kept = int(kept["_rec"].sum())
        rows = self.parse_rows(kept.drop("_rec"))
        rows = assemble_tracebacks(rows)
        # A line the adapter could not place but that belongs to a traceback is still an event.
        rows = rows.with_columns(
            pl.when(pl.col("kind").is_null()).then(pl.lit("unparsed")).otherwise(pl.col("kind")).alias("kind"),
        )
        unparsed_kept = int((rows["kind"] == "unparsed").sum())
        # lines not kept: recognised ones are events, the rest unparsed
        counts.events = (counts.recognised - rec_kept) + (kept.height - unparsed_kept)
        counts.unparsed = counts.lines - counts.blank - counts.events
        rows = rows.with_columns(
            pl.col("raw").alias("text"),
            pl.lit(ctx.label).alias("source"),
            pl.lit(self.origin).alias("origin") if "origin" not in rows.columns else pl.col("origin").fill_null(self.origin),
            pl.coalesce(pl.col("ts"), pl.col("wrap_ts")).alias("ts") if "ts" in rows.columns else pl.col("wrap_ts").alias("ts"),
        )
        return schema.conform(rows.drop([c for c in ("raw", "body", "key", "wrap_ts") if c in rows.columns]))


class WholeFileSource(Source):
    """A source whose members are small and read whole (up to MAX_BYTES), then walked line by
    line in Python: curl -v transcripts and nvidia-smi dumps. Subclasses implement `parse_lines`;
    lines they report as used are events, the other non-blank lines are unparsed."""

    MAX_BYTES = 64 * 1024 * 1024

    def parse_lines(self, lines: list[str], ctx: SourceContext) -> tuple[list[dict], set[int], str | None]:  # pragma: no cover
        """Event rows (with `line`, 1-based), the numbers of the lines they account for, and a
        note when the member was understood only in part."""
        raise NotImplementedError

    def parse_stream(self, stream: BinaryIO, ctx: SourceContext) -> tuple[pl.DataFrame, Counts]:
        lines, counts = self.read_lines(stream)
        rows, used, note = self.parse_lines(lines, ctx)
        for row in rows:
            row["source"] = ctx.label
        self.account(counts, lines, used, note)
        return frame(rows), counts

    def read_lines(self, stream: BinaryIO) -> tuple[list[str], Counts]:
        """The member's lines (up to MAX_BYTES), colours and CRs removed."""
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
            lines = redact.mask_next_lines(pl.Series(lines, dtype=pl.String)).to_list()
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


def frame(rows: list[dict]) -> pl.DataFrame:
    """An event table from row dicts (each holding some of the schema's columns)."""
    if not rows:
        return schema.empty()
    keys: dict[str, None] = {}
    for r in rows:
        keys.update(dict.fromkeys(r))
    return schema.conform(pl.DataFrame(rows, schema={k: schema.SCHEMA[k] for k in keys}, strict=False))


def describe_read_error(e: BaseException) -> str:
    text = (str(e) or type(e).__name__).splitlines()[0][:160]
    if isinstance(e, (EOFError, *inflate.ERRORS, gzip.BadGzipFile)):
        return f"corrupt compressed data: {text}"
    if isinstance(e, RecursionError):
        return "nested deeper than emblens reads (hostile or damaged data)"
    return text


def read_head(stream: BinaryIO, n: int) -> bytes:
    """The first `n` bytes, or as many as could be read before the stream broke."""
    data, error = _gather(stream, n, 16 * 1024)
    if error is not None and not data:
        raise error
    return data


def _gather(stream: BinaryIO, size: int, piece: int) -> tuple[bytes, BaseException | None]:
    """Up to `size` bytes read `piece` at a time, and the read error that stopped it, if any:
    the bytes read before a break are kept."""
    pieces: list[bytes] = []
    got = 0
    while got < size:
        try:
            block = stream.read(min(piece, size - got))
        except READ_ERRORS as e:
            return b"".join(pieces), e
        if not block:
            break
        pieces.append(block)
        got += len(block)
    return (b"".join(pieces) if len(pieces) != 1 else pieces[0]), None


def fresh(data):
    """The strings of a frame or series written anew. A string column taken from a chunk's lines
    (filtered, gathered, grouped) still holds the buffers of the whole chunk: what outlives its
    chunk must be copied, or every chunk read stays in memory."""
    if isinstance(data, pl.Series):
        return data.to_frame().select(pl.concat_str([pl.col(data.name), pl.lit("")])).to_series() \
            if data.dtype == pl.String else data
    strings = [c for c, d in data.schema.items() if d == pl.String]
    return data.with_columns(pl.concat_str([pl.col(c), pl.lit("")]).alias(c) for c in strings) if strings else data


class Tally:
    """Routine traffic counted instead of kept: access lines by minute and status, and KV-cache
    usage by minute. Each run of lines (a chunk, or a `Span` of them) is counted on its own
    (`scan`, vectorised); lines before a run's first stamp take the last stamp of the run before,
    joined here in order (`add`). Kept lines get that clock too (`_clock`), for the access lines'
    times."""

    def __init__(self) -> None:
        self.last: str | None = None
        self.parts: list[pl.DataFrame] = []
        self.kv_parts: list[pl.DataFrame] = []

    @staticmethod
    def marks(lines: pl.DataFrame) -> pl.DataFrame:
        """Per line, found with literal searches (no regex over every line): `status` of a uvicorn
        access line (`INFO:     1.2.3.4:5 - "POST /v1/x HTTP/1.1" 404 Not Found`), `metric` for a
        periodic metrics line, and `routine`: a 2xx access line or a metrics line. Given the lines
        that are not `OK_LINE` lines (`Source.scan_chunk` sets those 200s apart first), or every
        line for `events`."""
        raw = pl.col("raw")
        at, info = pl.col("at"), pl.col("info")
        status = (lines.select(raw, raw.str.find('HTTP/1.', literal=True).alias("at"),
                               raw.str.find("INFO:", literal=True).alias("info"))
                  .select(pl.when(info < at).then(pl.when(raw.str.slice(at + 8, 2) == '" ')
                                                  .then(raw.str.slice(at + 10, 3).cast(pl.Int64, strict=False)))
                          .alias("status"))["status"])
        other = status.is_null().arg_true()
        metric = pl.repeat(False, lines.height, dtype=pl.Boolean, eager=True).alias("metric")
        if other.len():
            metric = metric.scatter(other, lines["raw"].gather(other).str.contains_any(list(METRICS_LINES)))
        return pl.DataFrame([status, metric]).with_columns(
            (pl.col("status").is_between(200, 299).fill_null(False) | pl.col("metric")).alias("routine"))

    @staticmethod
    def scan(n: int, lines: pl.DataFrame, marks: pl.DataFrame, kept: pl.DataFrame, counts: Counts,
             clock: str) -> pl.DataFrame:
        """Count a run of `n` lines, of which `lines` (numbered 1..n, with their `marks`) are all but
        the `OK_LINE` lines. Stamps are looked for on the lines that are not access lines, and each
        line's clock is the last stamp at or before it, found by position (a sorted search). The
        `OK_LINE` lines between two stamps are the lines between them less the other lines there,
        so they are counted without being looked at again."""
        status = marks["status"]
        at_line = (lines["line"] - 1).cast(pl.Int64)         # positions in the run, ascending
        other = status.is_null().arg_true()
        stamps = lines["raw"].gather(other).str.extract(clock, 1)
        stamped = stamps.is_not_null()
        where = at_line.gather(other.filter(stamped))       # the position of each stamp, ascending
        values = stamps.filter(stamped)
        clocks = pl.concat([pl.Series([None], dtype=pl.String), values])   # by segment: 0 is before the first stamp

        # each line's segment: 0 before the first stamp, k from the k-th stamp on
        seg = (where.search_sorted(at_line, side="right").cast(pl.Int64) if where.len()
               else pl.repeat(0, at_line.len(), dtype=pl.Int64, eager=True))
        # OK lines by segment: its lines less its other lines
        size = pl.concat([where, pl.Series([n], dtype=pl.Int64)]) - pl.concat([pl.Series([0], dtype=pl.Int64), where])
        seen = pl.DataFrame({"seg": seg}).group_by("seg").agg(pl.len().cast(pl.Int64).alias("n"))
        ok = size.scatter(seen["seg"], size.gather(seen["seg"]) - seen["n"]) if seen.height else size
        by_seg = pl.concat([
            pl.DataFrame({"seg": pl.int_range(0, ok.len(), dtype=pl.Int64, eager=True),
                          "status": pl.repeat(200, ok.len(), dtype=pl.Int64, eager=True), "requests": ok})
            .filter(pl.col("requests") > 0),
            pl.DataFrame({"seg": seg, "status": status}).filter(pl.col("status").is_not_null())
            .group_by("seg", "status").agg(pl.len().cast(pl.Int64).alias("requests")),
        ])
        minute = pl.col("clock").str.slice(0, pl.col("clock").str.len_chars() - 3).alias("minute")
        counts.traffic = (by_seg.with_columns(clocks.gather(by_seg["seg"]).alias("clock"))
                          .group_by(minute, "status").agg(pl.col("requests").sum()))
        metric = marks["metric"].arg_true()
        if metric.len():
            kv = lines["raw"].gather(metric).str.extract_groups(KV_USAGE)
            kv = pl.DataFrame({"clock": clocks.gather(seg.gather(metric)),
                               "kv": kv.struct.field("pct").cast(pl.Float64)
                                       .fill_null(kv.struct.field("share").cast(pl.Float64) * 100)})
            counts.kv = kv.filter(pl.col("kv").is_not_null()).group_by(minute).agg(pl.col("kv").max())
        else:
            counts.kv = pl.DataFrame(schema={"minute": pl.String, "kv": pl.Float64})
        counts.traffic, counts.kv = fresh(counts.traffic), fresh(counts.kv)
        counts.clock_last = values[-1] if values.len() else None
        # the kept lines (some of `lines`): their clocks and statuses by position
        pos = lines["line"].search_sorted(kept["line"], side="left")
        return kept.with_columns(fresh(clocks.gather(seg.gather(pos)).alias("_clock")), status.gather(pos).alias("_status"))

    def add(self, kept: pl.DataFrame, c: Counts) -> pl.DataFrame:
        """Join one chunk's counts, in order; returns its kept lines with their clock filled."""
        before = self.last
        stamp = pl.lit(before[:-3] if before else None, dtype=pl.String)
        if c.traffic is not None and c.traffic.height:
            self.parts.append(c.traffic.with_columns(pl.col("minute").fill_null(stamp)))
        if c.kv is not None and c.kv.height:
            self.kv_parts.append(c.kv.with_columns(pl.col("minute").fill_null(stamp)))
        self.last = c.clock_last or before
        c.traffic = c.kv = None
        if before is not None and "_clock" in kept.columns and kept.height:
            kept = kept.with_columns(pl.col("_clock").fill_null(pl.lit(before)))
        return kept

    def requests(self) -> pl.DataFrame:
        """`minute` (as written, without seconds; null before the member's first stamp), `status`, `requests`."""
        if not self.parts:
            return pl.DataFrame(schema={"minute": pl.String, "status": pl.Int64, "requests": pl.Int64})
        return (pl.concat(self.parts).group_by("minute", "status").agg(pl.col("requests").sum())
                .sort("minute", "status", nulls_last=False))

    def kv_usage(self) -> pl.DataFrame:
        """`minute`, `kv`: the highest KV-cache usage (percent) seen in that minute."""
        if not self.kv_parts:
            return pl.DataFrame(schema={"minute": pl.String, "kv": pl.Float64})
        return pl.concat(self.kv_parts).group_by("minute").agg(pl.col("kv").max()).sort("minute")


class Collapse:
    """A server log's failing requests counted, not kept line by line: the access lines of one
    request (the same process, method, path and status; any client) are kept as lines for their
    first and last `EACH`, which the report quotes, and the lines between are counted into one row
    per minute (`repeat`: how many lines it stands for; its text and time are its first line's).
    Counts, rates, first and last times and the quoted lines stay exact, while a server answering
    404 all week holds a row a minute instead of a row a request. (A rule with a `within` window
    needs each line's time: when one is loaded, nothing is collapsed.)

    Fed each chunk's kept lines in order (`add` returns the lines it keeps as they are); `rows` gives
    the held last lines and the counted rows at the end. At most `MAX_KEYS` requests are told
    apart (the access lines of others are kept as lines), and when the counted rows pass `limit`
    they are counted by the hour instead."""

    EACH = 5
    MAX_KEYS = 10_000

    BATCH = 4096            # kept lines gathered before they are sorted (a few chunks' worth): each
                            # sorting is a dozen small polars calls, whatever the number of lines

    def __init__(self, limit: int) -> None:
        self.batch: list[pl.DataFrame] = []
        self.batched = 0
        self.limit = max(1_000, limit)
        self.seen: dict[str, int] = {}      # request -> its lines so far
        self.tail = pl.DataFrame()          # the last EACH lines of each request (of those past its first EACH)
        self.parts: list[pl.DataFrame] = []  # counted rows
        self.counted = 0

    @staticmethod
    def _key() -> pl.Expr:
        """The request of an access line: its process prefix, request line and status, not the client."""
        raw = pl.col("raw")
        return pl.concat_str([raw.str.extract(r"^(\([^()]*\) )", 1).fill_null(""),
                              raw.str.extract(r' - ("[^"]*" \d{3}.*)$', 1)])

    def feed(self, kept: pl.DataFrame, out: "Bounded") -> None:
        """Take a chunk's kept lines, in order; the lines kept as they are go to `out`, in order."""
        self.batch.append(kept)
        self.batched += kept.height
        if self.batched >= self.BATCH:
            self.flush(out)

    def flush(self, out: "Bounded") -> None:
        if self.batch:
            batch = pl.concat(self.batch, how="diagonal_relaxed") if len(self.batch) > 1 else self.batch[0]
            self.batch, self.batched = [], 0
            out.add(self.add(batch))

    def add(self, kept: pl.DataFrame) -> pl.DataFrame:
        if "_status" not in kept.columns:
            return kept
        kept = kept.with_columns(self._key().alias("_key"))
        is_access = pl.col("_status").is_not_null() & pl.col("_key").is_not_null()
        access = kept.filter(is_access)
        other = kept.filter(~is_access).drop("_key")
        if not access.height:
            return other
        known = set(self.seen)
        new = [k for k in access["_key"].unique(maintain_order=True).to_list() if k not in known]
        room = self.MAX_KEYS - len(self.seen)
        for k in new[:max(0, room)]:
            self.seen[k] = 0
        told = access.filter(pl.col("_key").is_in(list(self.seen)))
        untold = access.filter(~pl.col("_key").is_in(list(self.seen)))
        before = pl.DataFrame({"_key": list(self.seen), "_before": list(self.seen.values())},
                              schema={"_key": pl.String, "_before": pl.Int64})
        told = told.join(before, on="_key", how="left", maintain_order="left").with_columns(
            (pl.col("_before") + pl.int_range(pl.len()).over("_key")).alias("_n"))
        for k, n in told.group_by("_key").agg(pl.len()).rows():
            self.seen[k] += n
        first = told.filter(pl.col("_n") < self.EACH).drop("_key", "_before", "_n")
        more = told.filter(pl.col("_n") >= self.EACH).drop("_before", "_n")
        if more.height:
            pool = pl.concat([self.tail, more], how="vertical") if self.tail.height else more
            from_end = pl.len().over("_key") - pl.int_range(pl.len()).over("_key")
            self.tail = fresh(pool.filter(from_end <= self.EACH))
            self._count(pool.filter(from_end > self.EACH))
        out = [f for f in (other, first, untold.drop("_key")) if f.height]
        return pl.concat(out, how="vertical").sort("line") if len(out) > 1 else (out[0] if out else other)

    def _count(self, rows: pl.DataFrame, hours: bool = False) -> None:
        if not rows.height:
            return
        if "repeat" not in rows.columns:
            rows = rows.with_columns(pl.lit(1, dtype=pl.Int64).alias("repeat"))
        self.parts.append(self._grouped(rows, hours))
        self.counted += self.parts[-1].height
        if len(self.parts) >= 32 or self.counted > self.limit:
            merged = pl.concat(self.parts, how="vertical")
            self.parts, self.counted = [], 0
            if merged.height > self.limit and not hours:
                self._count(merged, hours=True)
                return
            self.parts = [self._grouped(merged, hours)]
            self.counted = self.parts[0].height

    @staticmethod
    def _grouped(rows: pl.DataFrame, hours: bool) -> pl.DataFrame:
        """One row per request and minute (or hour): the first line's columns, the lines' `repeat` summed."""
        clock = pl.col("_clock")
        bucket = clock.str.slice(0, clock.str.len_chars() - (6 if hours else 3)).alias("_bucket")
        first = [pl.col(c).first() for c in rows.columns if c not in ("_key", "repeat")]
        return fresh(rows.sort("line").group_by("_key", bucket, maintain_order=True)
                     .agg(*first, pl.col("repeat").sum()).drop("_bucket"))

    def rows(self) -> list[pl.DataFrame]:
        return [f.drop("_key") for f in (self.tail, *self.parts) if f.height]


@dataclass
class Partial:
    """The lines of a server log's chunk that are not `OK_LINE` lines, numbered within the chunk
    and copied out of it, to be finished with those of the next chunks: a busy log's chunk has a
    few hundred, not worth the dozens of polars calls finishing them takes."""

    lines: pl.DataFrame
    n: int            # all the chunk's lines
    cut: int          # its lines cut (while reading, and its OK lines)


class Span:
    """`Partial` chunks gathered in order, renumbered as one run of lines. Finishing a span costs
    some 20 ms whatever its size, so spans grow: the first holds up to `FIRST` chunks, each next
    one twice as many, up to `CHUNKS`, so a small log does not wait for one large span at its end."""

    LINES = 16_384    # other lines gathered before they are finished
    FIRST = 4         # chunks in the first span at most...
    CHUNKS = 32       # ...and in any span
    WAITING = 2       # spans being finished at once, at most

    def __init__(self) -> None:
        self.parts: list[pl.DataFrame] = []
        self.start = self.n = self.cut = self.lines = 0
        self.most = self.FIRST

    def add(self, part: Partial, offset: int) -> bool:
        """Add the chunk that starts at line `offset` of the member; true when the span is full."""
        if not self.parts:
            self.start = offset
        self.parts.append(part.lines.with_columns(pl.col("line") + (offset - self.start)))
        self.n += part.n
        self.cut += part.cut
        self.lines += part.lines.height
        return self.lines >= self.LINES or len(self.parts) >= min(self.most, self.CHUNKS)

    def take(self) -> tuple[int, pl.DataFrame, int, int]:
        """The span's first line in the member, its other lines, its number of lines and of cut lines."""
        lines = pl.concat(self.parts, how="diagonal_relaxed") if len(self.parts) > 1 else self.parts[0]
        out = (self.start, lines, self.n, self.cut)
        most = min(self.most * 2, self.CHUNKS)
        self.__init__()
        self.most = most
        return out


class Bounded:
    """The kept lines of one member, at most `limit` rows: the first half and the latest half;
    the rows between are only counted."""

    def __init__(self, limit: int) -> None:
        self.half = limit // 2
        self.head: list[pl.DataFrame] = []
        self.tail: deque[pl.DataFrame] = deque()
        self.head_rows = self.tail_rows = self.dropped = 0

    def add(self, kept: pl.DataFrame) -> None:
        if not kept.height:
            return
        if self.head_rows < self.half:
            take = kept.head(self.half - self.head_rows)
            self.head.append(take)
            self.head_rows += take.height
            kept = kept.slice(take.height)
        if not kept.height:
            return
        self.tail.append(kept)
        self.tail_rows += kept.height
        while self.tail_rows - self.tail[0].height >= self.half:
            self.tail_rows -= self.tail[0].height
            self.dropped += self.tail.popleft().height
        extra = self.tail_rows - self.half
        if extra > 0:
            self.tail[0] = self.tail[0].slice(extra)
            self.tail_rows -= extra
            self.dropped += extra

    def parts(self) -> list[pl.DataFrame]:
        return self.head + list(self.tail)


@dataclass
class Chunk:
    """Whole lines of a member without copying the block they were read in: `parts` are read as
    one run of lines; a line cut at the block's start is completed by a small `head` part (then
    the block's own first row is dropped), and a line cut at its end is left to the next chunk."""

    parts: list[bytes]
    drop_first: bool = False
    drop_last: bool = False
    cut: int = 0          # lines longer than MAX_LINE_BYTES whose end was dropped while reading

    def contains(self, needle: bytes) -> bool:
        return any(needle in p for p in self.parts)


def _blocks(stream: BinaryIO, size: int, piece: int) -> Iterator[bytes]:
    """Blocks of about `size` bytes. A compressed (`fragile`) stream is read in small pieces so
    that, when it breaks, the bytes before the break are still yielded before the error."""
    if not getattr(stream, "fragile", False):
        while block := stream.read(size):
            yield block
        return
    while True:
        data, error = _gather(stream, size, piece)
        if data:
            yield data
        if error is not None:
            raise error
        if len(data) < size:
            return


def read_chunks(stream: BinaryIO, size: int = CHUNK_BYTES, piece: int = 64 * 1024) -> Iterator[Chunk]:
    """Yield chunks of whole lines. When the stream breaks, the lines before the break (the last
    one possibly cut) are yielded first, then the error is raised."""
    rest = b""
    cut = 0                       # the line being gathered was cut at MAX_LINE_BYTES
    blocks = _blocks(stream, size, piece)
    while True:
        try:
            block = next(blocks, None)
        except READ_ERRORS:
            if rest:
                yield Chunk([rest], cut=cut)
            raise
        if block is None:
            break
        first_nl = block.find(b"\n")
        if first_nl < 0:          # a line longer than a block: keep gathering it, up to the cap
            if not cut:
                rest += block
                if len(rest) > MAX_LINE_BYTES:
                    rest, cut = rest[:MAX_LINE_BYTES], 1
            continue
        last_nl = block.rfind(b"\n")
        if rest:
            head = rest + (b"\n" if cut else block[: first_nl + 1])
            chunk = Chunk([head, block], drop_first=True, cut=cut)
        else:
            chunk = Chunk([block])
        chunk.drop_last = last_nl != len(block) - 1
        rest, cut = block[last_nl + 1 :], 0
        yield chunk
    if rest:
        yield Chunk([rest], cut=cut)


def lines_frame(chunk: Chunk | bytes, first_line: int = 1) -> pl.DataFrame:
    """One row per line: `line` (1-based), `raw` (ANSI colours and trailing CR removed)."""
    if isinstance(chunk, bytes):
        chunk = Chunk([chunk])
    try:
        df = pl.read_lines(chunk.parts, name="raw")
    except pl.exceptions.ComputeError:
        # undecodable bytes: replace them rather than lose the line
        df = pl.read_lines([p.decode("utf-8", "replace").encode("utf-8") for p in chunk.parts], name="raw")
    raw = df["raw"]
    if chunk.drop_first:            # the block's first row is the tail of the head part's line
        raw = pl.concat([raw.head(1), raw.slice(2)])
    if chunk.drop_last:             # cut line: it comes whole with the next chunk
        raw = raw.head(raw.len() - 1)
    if chunk.contains(b"\x1b"):
        raw = strip_ansi(raw, chunk.parts[-1])
    if chunk.contains(b"\r"):
        raw = raw.str.replace_all("\r", "", literal=True)
    return pl.DataFrame({"line": pl.int_range(first_line, first_line + raw.len(), dtype=pl.Int64, eager=True), "raw": raw})


def server_lines(chunk: Chunk) -> tuple[pl.DataFrame, int, int] | None:
    """A server log's chunk in one query: its lines that are not `OK_LINE` lines (`line`, numbered
    1..n in the chunk, `raw` written anew, `wrap_ts`), its number of lines, and how many OK lines
    are longer than MAX_LINE_BYTES (cut: counted, never kept). What `lines_frame`, `unwrap` and the
    OK test of `Source.scan_chunk` give, without a frame of all the chunk's lines or a dozen calls on
    it. None when the chunk needs them: colours, CRs, bytes that are not UTF-8, a container wrapper."""
    if chunk.contains(b"\x1b") or chunk.contains(b"\r"):
        return None
    try:
        df = pl.read_lines(chunk.parts, name="raw")
    except pl.exceptions.ComputeError:
        return None
    rows = df.height
    head = df["raw"].head(202).to_list()      # the first 200 lines, as `unwrap` sees them
    if chunk.drop_last and len(head) == rows:
        head.pop()
    if chunk.drop_first:
        del head[1:2]
    if wrapper(head[:200]) is not None:
        return None
    i = pl.col("i").cast(pl.Int64)
    raw = pl.col("raw")
    ok, long = raw.str.ends_with(OK_LINE), raw.str.len_bytes() > MAX_LINE_BYTES
    keep = ~ok | long
    if chunk.drop_first:       # the block's first row is the tail of the head part's line
        keep = keep & (i != 1)
    if chunk.drop_last:        # cut line: it comes whole with the next chunk
        keep = keep & (i != rows - 1)
    line = (i + 1 - (i >= 2).cast(pl.Int64)) if chunk.drop_first else i + 1
    part = (df.lazy().with_row_index("i").filter(keep)
            .select(line.alias("line"), pl.concat_str([raw, pl.lit("")]).alias("raw"), ok.alias("ok"), long.alias("long"))
            .collect())
    ok_cut = 0
    if part["long"].any():
        ok_cut = part.filter(pl.col("ok") & pl.col("long")).height
        part = part.filter(~pl.col("ok"))
    n = rows - chunk.drop_first - chunk.drop_last
    return part.select("line", "raw", pl.lit(None, dtype=pl.Datetime("us")).alias("wrap_ts")), n, ok_cut


def strip_ansi(raw: pl.Series, chunk: bytes) -> pl.Series:
    """Remove ANSI colour codes. A log repeats a handful of sequences, so they are removed as
    literals (one Aho-Corasick pass) and the regex runs only on the rare lines still holding one."""
    seqs = sorted({m.decode("ascii") for m in ANSI_BYTES.findall(chunk, 0, 1 << 20)})
    if seqs:
        raw = raw.str.replace_many(seqs, [""] * len(seqs))
    left = raw.str.contains("\x1b", literal=True)
    if left.any():
        idx = left.arg_true()
        raw = raw.scatter(idx, raw.gather(idx).str.replace_all(ANSI, ""))
    return raw


def wrapper(head: list[str]) -> str | None:
    """"kubectl" or "docker" when most of these lines (a chunk's first 200) carry that container
    wrapper. Plain tests first (a stamp's dash at the 5th character, docker's opening), so that a
    chunk with neither, every chunk of most logs, costs no polars call here."""
    half = len(head) / 2
    if (sum(line[4:5] == "-" for line in head) > half
            and (pl.Series(head, dtype=pl.String).str.contains(KUBECTL_TS).mean() or 0) > 0.5):
        return "kubectl"
    if sum(line.startswith(DOCKER_OPEN) for line in head) > half:
        return "docker"
    return None


def unwrap(lines: pl.DataFrame) -> pl.DataFrame:
    """Strip kubectl timestamps or docker json-file wrapping; the wrapper's time goes to `wrap_ts`."""
    raw = pl.col("raw")
    kind = wrapper(lines["raw"].head(200).to_list())
    if kind == "kubectl":
        stamp = raw.str.extract(KUBECTL_TS, 1)
        return lines.with_columns(
            raw.str.replace(KUBECTL_TS, "").alias("raw"),
            _iso(stamp).alias("wrap_ts"),
        )
    if kind == "docker":
        is_json = raw.str.starts_with('{"log":')
        log = raw.str.json_path_match("$.log").str.strip_chars_end("\n").str.replace_all(ANSI, "").str.replace_all(r"\r", "")
        return lines.with_columns(
            pl.when(is_json).then(log).otherwise(raw).alias("raw"),
            _iso(pl.when(is_json).then(raw.str.json_path_match("$.time"))).alias("wrap_ts"),
        )
    return lines.with_columns(pl.lit(None, dtype=pl.Datetime("us")).alias("wrap_ts"))


def _iso(expr: pl.Expr) -> pl.Expr:
    return (
        expr.str.replace(r"(\.\d{6})\d+", "$1")
        .str.replace(r"Z$", "+00:00")
        .str.to_datetime("%Y-%m-%dT%H:%M:%S%.f%:z", strict=False, time_zone="UTC")
        .dt.replace_time_zone(None)
        .cast(pl.Datetime("us"))
    )


def assemble_tracebacks(rows: pl.DataFrame) -> pl.DataFrame:
    """Find Python traceback chains in the kept rows and mark their exception lines.

    Walks only the kept rows (a prefiltered few), keyed by the producing process so that
    interleaved tracebacks of two vLLM processes are not merged. The exception that starts a chain
    is its root; the last one is what the caller finally saw.
    """
    bodies = rows["body"].to_list()
    keys = rows["key"].to_list() if "key" in rows.columns else [None] * len(bodies)
    state: dict[object, str] = {}          # key -> "tb" (inside a traceback) | "sep" (after a separator)
    open_chain: dict[object, list[int]] = {}
    chains: list[list[int]] = []
    links: dict[int, str] = {}              # row -> how it links to the previous exception
    exc: dict[int, tuple[str, str]] = {}
    trace_rows: set[int] = set()
    for i, body in enumerate(bodies):
        if body is None:
            continue
        k = keys[i]
        if TB_HEADER.match(body):
            if state.get(k) != "sep" and open_chain.get(k):
                chains.append(open_chain.pop(k))
            state[k] = "tb"
            trace_rows.add(i)
            continue
        if TB_CAUSE.match(body) or TB_CONTEXT.match(body):
            state[k] = "sep"
            links[i] = "cause" if TB_CAUSE.match(body) else "context"
            trace_rows.add(i)
            continue
        stripped = body.strip("` ")
        m = EXC_LINE.match(stripped) if body[:1] not in (" ", "\t") else None
        if m is None:
            if state.get(k) == "tb":
                trace_rows.add(i)  # a frame or source line inside the traceback
            continue
        if m.group("msg") is None and state.get(k) != "tb":
            continue  # a bare word like `ValueError` outside a traceback is not evidence
        exc[i] = (m.group("type"), (m.group("msg") or "").strip())
        if state.get(k) == "tb":
            open_chain.setdefault(k, []).append(i)
        else:
            if open_chain.get(k):
                chains.append(open_chain.pop(k))
            chains.append([i])
        state[k] = "done"
    chains.extend(c for c in open_chain.values() if c)
    n = len(bodies)
    cols: dict[str, list] = {c: [None] * n for c in (
        "exc_type", "exc_message", "exc_chain", "exc_root_type", "exc_root_message", "exc_outer_type", "exc_position")}
    groups: list = [None] * n
    for number, chain in enumerate(chains, 1):
        types = [exc[i][0] for i in chain]
        chain_text = " -> ".join(types)
        root, outer = chain[0], chain[-1]
        for pos, i in enumerate(chain):
            cols["exc_type"][i], cols["exc_message"][i] = exc[i]
            cols["exc_chain"][i] = chain_text
            cols["exc_root_type"][i], cols["exc_root_message"][i] = exc[root]
            cols["exc_outer_type"][i] = exc[outer][0]
            groups[i] = number
            cols["exc_position"][i] = (
                "only" if len(chain) == 1 else "root" if pos == 0 else "outer" if pos == len(chain) - 1 else "cause"
            )
    kind = rows["kind"].to_list() if "kind" in rows.columns else [None] * n
    for i in trace_rows:
        if kind[i] in (None, "log", "unparsed"):
            kind[i] = "trace"
    for i in exc:
        if cols["exc_type"][i] is not None:
            kind[i] = "exception"
    out = rows.with_columns(
        *[pl.Series(c, v, dtype=pl.String) for c, v in cols.items()],
        pl.Series("kind", kind, dtype=pl.String),
        pl.Series("exc_group", groups, dtype=pl.Int64),
    )
    # Exception lines inherit the time of the nearest earlier stamped line of the same process.
    if "ts" in out.columns:
        out = out.with_columns(
            pl.when(pl.col("kind").is_in(["exception", "trace"]) & pl.col("ts").is_null())
            .then(pl.col("ts").forward_fill().over("key") if "key" in out.columns else pl.col("ts").forward_fill())
            .otherwise(pl.col("ts"))
            .alias("ts")
        )
    return out
