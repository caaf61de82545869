"""Routine lines counted, not kept: a server's access lines by minute and status, and the KV-cache
usage of its periodic metrics lines (`Tally`)."""

from __future__ import annotations

from types import MappingProxyType

import polars as pl

from emblens.reading.chunks import fresh
from emblens.reading.context import Counts

# Routine traffic is counted while reading, not kept: access lines by minute and status, and the
# KV-cache usage of the periodic metrics lines (vLLM's percentage, SGLang's `token usage` share).
# Which lines are a format's metrics lines and how its OK access lines end are its attributes
# (`Source.metrics`, `Source.ok_line`).
KV_USAGE = r"KV cache usage: (?P<pct>\d{1,3}(?:\.\d+)?)%|[Tt]oken usage: (?P<share>0(?:\.\d+)?|1(?:\.0+)?)\b"
# the requests waiting for room, as the metrics lines say it: vLLM V1 `Waiting: 41 reqs`, V0 `Pending:
# 41 reqs`, SGLang `#queue-req: 41`
WAITING = ("Waiting: ", "Pending: ", "#queue-req: ")
KV_SCHEMA = MappingProxyType({"minute": pl.String, "kv": pl.Float64, "wait": pl.Int64})


def waiting(raw: pl.Expr) -> pl.Expr:
    """The requests a metrics line says are waiting (null where it says none): found as literals,
    and only a window of 7 characters after each read as a number."""
    found = [raw.str.slice(raw.str.find(w, literal=True) + len(w), 7).str.extract(r"^(\d{1,6})", 1).cast(pl.Int64)
             for w in WAITING]
    return pl.max_horizontal(*found)


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
    def marks(lines: pl.DataFrame, metrics: tuple[str, ...], requests: tuple[str, ...] = ()) -> pl.DataFrame:
        """Per line, found with literal searches (no regex over every line): `status` of a uvicorn
        access line (`INFO:     1.2.3.4:5 - "POST /v1/x HTTP/1.1" 404 Not Found`), `metric` for a
        periodic metrics line (one that holds one of `metrics`), and `routine`: a 2xx access line,
        a metrics line, or a line the server logs for each request it receives (one that holds one
        of `requests`: vLLM's `Received request …: prompt: '…'`, which quotes the user's text, so
        no failure is ever read from it; `server_lines` marks both kinds already, in `_kind`).
        Given the lines that are not the format's OK lines (`engine.scan_chunk` sets those 200s apart
        first), or every line for `events`."""
        raw = pl.col("raw")
        at, info = pl.col("at"), pl.col("info")
        status = (lines.select(raw, raw.str.find('HTTP/1.', literal=True).alias("at"),
                               raw.str.find("INFO:", literal=True).alias("info"))
                  .select(pl.when(info < at).then(pl.when(raw.str.slice(at + 8, 2) == '" ')
                                                  .then(raw.str.slice(at + 10, 3).cast(pl.Int64, strict=False)))
                          .alias("status"))["status"])
        # the lines `server_lines` cut are known (`_kind`); the literals are looked for on the others
        known = (lines["_kind"] if "_kind" in lines.columns
                 else pl.repeat(None, lines.height, dtype=pl.String, eager=True))
        metric = ((known == "metric") & status.is_null()).fill_null(False).alias("metric")
        request = ((known == "request") & status.is_null()).fill_null(False).alias("request")
        unknown = (known.is_null() & status.is_null()).arg_true()
        if unknown.len() and metrics:
            metric = metric.scatter(unknown, lines["raw"].gather(unknown).str.contains_any(list(metrics)))
        if unknown.len() and requests:
            request = request.scatter(unknown, lines["raw"].gather(unknown).str.contains_any(list(requests)))
        metric = (metric & ~request).alias("metric")     # a prompt that quotes a metrics line is not one
        return pl.DataFrame([status, metric, request]).with_columns(
            (pl.col("status").is_between(200, 299).fill_null(False) | pl.col("metric") | pl.col("request")).alias("routine"))

    @staticmethod
    def scan(n: int, lines: pl.DataFrame, marks: pl.DataFrame, kept: pl.DataFrame, counts: Counts,
             clock: str) -> pl.DataFrame:
        """Count a run of `n` lines, of which `lines` (numbered 1..n, with their `marks`) are all but
        the OK lines. Stamps are looked for on the lines that are not access lines, and each
        line's clock is the last stamp at or before it, found by position (a sorted search). The
        OK lines between two stamps are the lines between them less the other lines there,
        so they are counted without being looked at again."""
        status = marks["status"]
        at_line = (lines["line"] - 1).cast(pl.Int64)         # positions in the run, ascending
        other = status.is_null().arg_true()
        stamps = lines["raw"].gather(other).str.extract(clock, 1)
        # a stamp that repeats the one before it starts no new segment (the lines there have that
        # clock either way): a request-logging server stamps half its lines, a few per second
        stamped = stamps.is_not_null()
        values = stamps.filter(stamped)
        changed = values.ne_missing(values.shift(1))
        where = at_line.gather(other.filter(stamped).filter(changed))   # where the clock changes, ascending
        values = values.filter(changed)
        clocks = pl.concat([pl.Series([None], dtype=pl.String), values])   # by segment: 0 is before the first stamp

        # each line's segment: 0 before the first stamp, k from the k-th stamp on
        seg = (where.search_sorted(at_line, side="right").cast(pl.Int64) if where.len()
               else pl.repeat(0, at_line.len(), dtype=pl.Int64, eager=True))
        # OK lines by segment: its lines less its other lines
        size = pl.concat([where, pl.Series([n], dtype=pl.Int64)]) - pl.concat([pl.Series([0], dtype=pl.Int64), where])
        # a row may stand for several lines (`server_lines`' runs of request lines: `_weight`)
        weight = (lines["_weight"].fill_null(1) if "_weight" in lines.columns
                  else pl.repeat(1, lines.height, dtype=pl.Int64, eager=True))
        seen = pl.DataFrame({"seg": seg, "w": weight}).group_by("seg").agg(pl.col("w").sum().cast(pl.Int64).alias("n"))
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
            # read by `server_lines` on the lines it cut (`_kv`), here on the others
            read = (lines["_kind"].gather(metric) == "metric").fill_null(False) if "_kind" in lines.columns else None
            kv = lines["_kv"].gather(metric) if read is not None else pl.repeat(None, metric.len(), dtype=pl.Float64, eager=True)
            rest = (~read).arg_true() if read is not None else pl.int_range(0, metric.len(), dtype=pl.UInt32, eager=True)
            if rest.len():
                found = lines["raw"].gather(metric.gather(rest)).str.extract_groups(KV_USAGE)
                kv = kv.scatter(rest, found.struct.field("pct").cast(pl.Float64)
                                .fill_null(found.struct.field("share").cast(pl.Float64) * 100))
            wait = (lines["_wait"].gather(metric) if read is not None
                    else pl.repeat(None, metric.len(), dtype=pl.Int64, eager=True))
            if rest.len():
                wait = wait.scatter(rest, lines["raw"].gather(metric.gather(rest)).to_frame("raw").select(
                    waiting(pl.col("raw"))).to_series())
            kv = pl.DataFrame({"clock": clocks.gather(seg.gather(metric)), "kv": kv, "wait": wait})
            counts.kv = (kv.filter(pl.col("kv").is_not_null() | pl.col("wait").is_not_null()).group_by(minute)
                         .agg(pl.col("kv").max(), pl.col("wait").max()))
        else:
            counts.kv = pl.DataFrame(schema=dict(KV_SCHEMA))
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
        """`minute`, `kv`: the highest KV-cache usage (percent) seen in that minute; `wait`: the most
        requests waiting."""
        if not self.kv_parts:
            return pl.DataFrame(schema=dict(KV_SCHEMA))
        return (pl.concat(self.kv_parts, how="diagonal_relaxed").group_by("minute")
                .agg(pl.col("kv").max(), pl.col("wait").max()).sort("minute"))
