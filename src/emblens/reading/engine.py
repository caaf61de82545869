"""The streaming engine: a line format's member read in chunks, filtered on worker threads, and
its kept lines parsed at once.

A member is read in chunks of whole lines. Every line is counted (events or unparsed); only the
lines that can matter — the format's notable lines and any line a rule's text pattern could hit —
are parsed fully and kept in the event table, so a multi-gigabyte log of routine lines costs a
few vectorised passes and little memory. `keep_all` keeps every line (for `emblens events`).
"""

from __future__ import annotations

import itertools
import re
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import BinaryIO

import polars as pl

from emblens.events import schema
from emblens.formats.python_traceback import TB_FRAME, TB_NOTABLE, assemble_tracebacks
from emblens.patterns.literals import Prefilter
from emblens.reading.bounds import Bounded, Collapse, Partial, Span
from emblens.reading.chunks import READ_ERRORS, Chunk, describe_read_error, fresh, read_chunks
from emblens.reading.context import CHUNK_BYTES, COUNTED_ROWS, MAX_LINE_BYTES, WORKERS, Counts, SourceContext
from emblens.reading.lines import FOLD_FROM, client_service, lines_frame, routine_rows, server_lines, unwrap, wrapper
from emblens.reading.routine import Tally


def read(fmt, stream: BinaryIO, ctx: SourceContext) -> tuple[pl.DataFrame, Counts]:
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
    tally = Tally() if fmt.clock else None
    collapse = (Collapse(min(COUNTED_ROWS, max(2, ctx.max_kept) // 2))
                if fmt.clock and ctx.collapse and not ctx.keep_all else None)
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
            ordered.append((pool.submit(finish, fmt, lines, n, cut, ctx, True), start))

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
            kept, c = scan_chunk(fmt, first, ctx)
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
            pending.append(pool.submit(scan_chunk, fmt, chunk, ctx, True))
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
    return parse_kept(fmt, kept.drop("_status", strict=False), counts, ctx), counts

def scan_chunk(fmt, chunk: bytes, ctx: SourceContext, defer: bool = False) -> "tuple[pl.DataFrame, Counts] | Partial":
    """Split a chunk into lines, count them, and keep only those that can matter (masked).
    Line numbers are relative to the chunk.

    In a server log (`clock` set) most lines are `... HTTP/1.1" 200 OK` access lines: one suffix
    test finds them, and they are only counted (as requests, in `Tally.scan`). The other lines
    are finished here, or with `defer`, when they are few, handed back to be finished with the
    next chunks' (`Partial`)."""
    cut = chunk.cut if isinstance(chunk, Chunk) else 0
    if fmt.clock and not ctx.keep_all and isinstance(chunk, Chunk):
        quick = server_lines(chunk, fmt.ok_line, fmt.requests, fmt.metrics)
        if quick is not None:
            other, n, ok_cut = quick
            if defer and other.height <= Span.LINES // 2:
                return Partial(other, n, cut + ok_cut)
            return finish(fmt, other, n, cut + ok_cut, ctx, partial=True)
    lines = lines_frame(chunk)
    head = lines["raw"].head(200).to_list()
    kind = wrapper(head)
    if kind == "compose" and client_service(head):
        # a client's container log (`open-webui  | `): its lines, unwrapped, no longer say they ran in a
        # container, where localhost is the container itself. Not a model server's own (`vllm-1  | `: there
        # localhost is the server), nor a kubectl or json-file log, which do not say whose it is.
        ctx.container_log = True
    lines = unwrap(lines, kind)
    if not fmt.clock or ctx.keep_all:
        return finish(fmt, lines, lines.height, cut, ctx)
    raw = pl.col("raw")
    marks = lines.select(raw.str.ends_with(fmt.ok_line).alias("ok"), (raw.str.len_bytes() > MAX_LINE_BYTES).alias("long"))
    cut += int((marks["ok"] & marks["long"]).sum())     # an OK line is never kept: only counted if cut
    other = lines.filter(~marks["ok"])
    if other.height >= FOLD_FROM and (fmt.requests or fmt.metrics):     # as `server_lines` does
        other, long_cut = routine_rows(other, fmt.requests, fmt.metrics)
        cut += long_cut
    if defer and other.height <= Span.LINES // 2:
        return Partial(fresh(other), lines.height, cut)
    return finish(fmt, other, lines.height, cut, ctx, partial=True)


def finish(fmt, lines: pl.DataFrame, n: int, cut: int, ctx: SourceContext,
           partial: bool = False) -> tuple[pl.DataFrame, Counts]:
    """Count a run of `n` lines and keep those that can matter (masked). `lines`: all of them,
    numbered 1..n, or with `partial`, only those that are not the format's OK lines (numbered in
    the run; the others are `Source.ok_line` access lines). `cut`: lines cut before, counted in."""
    lines = lines.with_columns(ctx.redactor.next_lines(lines["raw"], lines["line"] if partial else None).alias("raw"))
    long = lines["raw"].str.len_bytes() > MAX_LINE_BYTES
    cut += int(long.sum())
    if long.any():
        lines = lines.with_columns(
            pl.when(long).then(pl.col("raw").str.slice(0, MAX_LINE_BYTES)).otherwise(pl.col("raw")).alias("raw"))
    raw = pl.col("raw")
    marks = Tally.marks(lines, fmt.metrics, fmt.requests) if fmt.clock else None
    # the regexes run on the lines that are not routine (all of them for `events`, which keeps every line)
    rest = lines if marks is None or ctx.keep_all else lines.filter(~marks["routine"])
    blank = raw.str.strip_chars().str.len_bytes() == 0
    recognised = raw.str.contains(f"(?:{fmt.line_pattern})|(?:{TB_FRAME})")
    # kept: the adapter's notable lines and traceback markers, then, among the other lines
    # only, those a rule's text pattern could hit (one large regex, slow on every line)
    every = ctx.keep_all or ctx.whole
    keep = pl.lit(True) if every else raw.str.contains(f"(?:{fmt.notable})|(?:{TB_NOTABLE})")
    flags = rest.select(blank.alias("blank"), (recognised & ~blank).alias("rec"), keep.alias("keep"))
    if ctx.keywords and not every:
        left = (~flags["keep"]).arg_true()
        if left.len():
            lines_left = rest["raw"].gather(left)
            # only the parts of the prefilter that one of these lines could match (`literals`)
            if isinstance(ctx.keywords, Prefilter):
                flags = flags.with_columns(flags["keep"].scatter(left, ctx.keywords.keep(lines_left)))
            else:
                flags = flags.with_columns(flags["keep"].scatter(left, lines_left.str.contains(ctx.keywords)))
    flags = flags.with_columns(pl.col("keep") & ~pl.col("blank"))
    # the kept lines are copied out of the chunk: a filtered string column still points into the
    # whole chunk's buffers, so keeping a few lines of every chunk kept every chunk (RSS grew
    # with the input: 1.2 GiB for a 1 GiB log)
    kept = rest.filter(flags["keep"]).with_columns(
        pl.concat_str([pl.col("raw"), pl.lit("")]).alias("raw"),     # writes the strings anew (a cast does not)
        flags.filter(flags["keep"])["rec"].alias("_rec"))
    if ctx.whole and not ctx.keep_all and marks is not None and fmt.requests and marks["request"].any():
        kept = _request_lines(kept, lines.filter(marks["request"]), fmt.requests)
    routine_n = n - rest.height   # routine lines (OK lines among them): recognised by the format, never blank
    counts = Counts(lines=n, blank=int(flags["blank"].sum()), recognised=int(flags["rec"].sum()) + routine_n,
                    cut=cut)
    if marks is not None:
        kept = Tally.scan(n, lines, marks, kept, counts, fmt.clock)
    kept = kept.drop("_kind", "_kv", "_wait", "_weight", strict=False)
    if kept.height:
        kept = kept.with_columns(pl.Series("raw", ctx.redactor.series(kept["raw"])))
    return kept, counts

def _request_lines(kept: pl.DataFrame, requested: pl.DataFrame, marks: tuple[str, ...]) -> pl.DataFrame:
    """`kept` with the lines a server writes for each request (vLLM's `Received request <id>:
    prompt: '…'`), each cut just after the request's id: in a small member they are kept, so the
    request can be followed from a client's span to the server's log (`combiners.linking`); the
    prompt after the id is the user's text, and never read."""
    words = "|".join(re.escape(m) for m in marks)
    cut = requested.with_columns(pl.col("raw").str.extract(rf"^(.*?(?:{words})[^\s:,;'\"]+)", 1).alias("raw"),
                                 pl.lit(True).alias("_rec")).filter(pl.col("raw").is_not_null())
    if cut.height == 0:
        return kept
    return pl.concat([kept, cut.select(kept.columns)], how="vertical_relaxed").sort("line")


def _foreign_exchanges(rows: pl.DataFrame, kept: pl.DataFrame, fallback) -> pl.DataFrame:
    """A server log's lines its format did not place, read as the generic format reads them when
    that finds an exchange in them: another program's access line (nginx, a client's httpx log)
    interleaved with the server's, as `docker compose logs` of several services prints them.
    `fallback` is that format (`SourceContext.fallback`)."""
    if "kind" not in rows.columns or "line" not in rows.columns:
        return rows
    lines = rows.filter(pl.col("kind").is_null())["line"]
    if lines.len() == 0:
        return rows
    other = fallback.parse_rows(kept.drop("_rec").filter(pl.col("line").is_in(lines.implode())))
    other = other.filter(pl.col("kind") == "http").with_columns(pl.lit("generic").alias("origin"))
    if other.height == 0:
        return rows
    mine = rows.filter(~(pl.col("kind").is_null() & pl.col("line").is_in(other["line"].implode())))
    return pl.concat([mine, other], how="diagonal_relaxed").sort("line", maintain_order=True)


def parse_kept(fmt, kept: pl.DataFrame, counts: Counts, ctx: SourceContext) -> pl.DataFrame:
    """Parse the kept lines of a member into events and settle the event/unparsed counts."""
    rec_kept = int(kept["_rec"].sum())
    rows = fmt.parse_rows(kept.drop("_rec"))
    if fmt.server and ctx.fallback is not None:
        rows = _foreign_exchanges(rows, kept, ctx.fallback)
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
        # the line as written, or as the format quotes it (a JSON log line in its program's plain form)
        pl.coalesce(pl.col("text"), pl.col("raw")).alias("text") if "text" in rows.columns else pl.col("raw").alias("text"),
        pl.lit(ctx.label).alias("source"),
        pl.lit(ctx.container_log).alias("mentions_container"),
        pl.lit(fmt.origin).alias("origin") if "origin" not in rows.columns else pl.col("origin").fill_null(fmt.origin),
        pl.coalesce(pl.col("ts"), pl.col("wrap_ts")).alias("ts") if "ts" in rows.columns else pl.col("wrap_ts").alias("ts"),
    )
    return schema.conform(rows.drop([c for c in ("raw", "body", "key", "wrap_ts") if c in rows.columns]))
