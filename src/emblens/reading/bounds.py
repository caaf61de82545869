"""What keeps a member's kept lines bounded: the first and last halves (`Bounded`), a server log's
repeated failing requests counted by minute (`Collapse`), and the chunks whose few other lines
wait to be finished together (`Partial`, `Span`)."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import polars as pl

from emblens.reading.chunks import fresh


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
    """The lines of a server log's chunk that are not its OK lines, numbered within the chunk
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
