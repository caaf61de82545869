"""The traffic a bundle saw, for charts and rates: requests by minute and status, and KV-cache
usage by minute.

Server logs are counted while they are read (`reading.routine.Tally`: every access line, kept or
not); captures (HAR, mitmproxy flows, curl -v) count their exchanges from the event table. A
source counted one way is not counted the other way too. A request a capture saw that the
server's log also counted is the same request seen from both ends: of each status, a capture's
exchanges count only beyond the server's (`_beyond`). `--since`/`--until` keep the minutes of
the window, and the requests of no known time.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType

import polars as pl

from emblens.combiners.facts import Fact
from emblens.combiners.time import fill_years, local_to_utc

FACTS = MappingProxyType({
    "kv_cache_peak_pct": Fact("number", "the highest KV-cache usage (percent) the servers' metrics lines report in the "
                                        "window (vLLM's GPU KV cache usage, SGLang's token usage)"),
    "kv_cache_peak_at": Fact("text", "the minute (UTC, or as the log writes it) the KV-cache usage peaked"),
    "waiting_peak": Fact("number", "the most requests the servers' metrics lines say were waiting for room (vLLM's "
                                   "Waiting / Pending reqs, SGLang's #queue-req)"),
    "waiting_peak_at": Fact("text", "the minute (UTC, or as the log writes it) the most requests waited"),
})
REQUESTS = MappingProxyType({"source": pl.String, "ts": pl.Datetime("us"), "status": pl.Int64, "requests": pl.Int64})
KV = MappingProxyType({"source": pl.String, "ts": pl.Datetime("us"), "kv": pl.Float64, "wait": pl.Int64})


@dataclass
class Traffic:
    requests: pl.DataFrame     # REQUESTS: ts is the minute (null when the source never said the time)
    kv: pl.DataFrame           # KV: the highest usage, percent, in the minute; the most requests waiting
    counted: frozenset = frozenset()   # sources whose access lines were counted while reading (server logs)

    def total(self, sources=None) -> int:
        """Requests seen, in `sources` when given."""
        r = self.requests if sources is None else self.requests.filter(pl.col("source").is_in(list(sources)))
        return int(r["requests"].sum() or 0)

    def sources(self) -> list[str]:
        """The sources with timed requests, the busiest first."""
        r = self.requests.filter(pl.col("ts").is_not_null())
        return r.group_by("source").agg(pl.col("requests").sum()).sort("requests", "source", descending=[True, False])["source"].to_list()

    def per_minute(self, source: str | None = None) -> pl.DataFrame:
        """Requests (of one source, or all) by minute and status class (`2xx` ...), minutes of known time only."""
        r = self.requests.filter(pl.col("ts").is_not_null())
        if source is not None:
            r = r.filter(pl.col("source") == source)
        return (r.with_columns((pl.col("status") // 100).cast(pl.String).add("xx").alias("class"))
                .group_by("ts", "class").agg(pl.col("requests").sum()).sort("ts", "class"))


def collect(inputs, events: pl.DataFrame, *, year: int | None = None, written: dict[str, float] | None = None,
            tz: str | None = None, since=None, until=None) -> Traffic:
    """The traffic of `inputs` (their counted access lines) and of the captures in `events` (the
    event table of the run's time window: `since` and `until` bound the counted minutes alike)."""
    counted = {i.source for i in inputs if i.traffic is not None}
    req = [i.traffic.with_columns(pl.lit(i.source).alias("source")) for i in inputs
           if i.traffic is not None and i.traffic.height]
    kv = [i.kv.with_columns(pl.lit(i.source).alias("source")) for i in inputs if i.kv is not None and i.kv.height]
    kv = [k if "wait" in k.columns else k.with_columns(pl.lit(None, pl.Int64).alias("wait")) for k in kv]
    requests = _timed(pl.concat(req), events, year, written, tz).select(list(REQUESTS)) if req else pl.DataFrame(schema=REQUESTS)
    kv_frame = _timed(pl.concat(kv), events, year, written, tz).select(list(KV)) if kv else pl.DataFrame(schema=KV)
    if events.height and "http_status" in events.columns:
        captured = (events.filter((pl.col("kind") == "http") & pl.col("http_status").is_not_null()
                                  & ~pl.col("source").is_in(list(counted)))
                    .group_by("source", pl.col("ts").dt.truncate("1m"), pl.col("http_status").alias("status"))
                    .agg(pl.len().cast(pl.Int64).alias("requests")))
        if captured.height:
            requests = pl.concat([requests, _beyond(captured.select(list(REQUESTS)), requests)])
    requests = _minutes(requests, since, until)
    kv_frame = _minutes(kv_frame, since, until)
    return Traffic(requests.sort("source", "ts", "status", nulls_last=True), kv_frame.sort("source", "ts", nulls_last=True),
                   frozenset(counted))


def _beyond(captured: pl.DataFrame, counted: pl.DataFrame) -> pl.DataFrame:
    """The captured requests less those the server's log counted too: of each status, the first
    (by time) as many as the server counted are dropped, since the server saw the same requests.

    >>> cap = pl.DataFrame({"source": ["c", "c"], "ts": [None, None], "status": [404, 200], "requests": [2, 1]})
    >>> srv = pl.DataFrame({"source": ["s"], "ts": [None], "status": [404], "requests": [1]})
    >>> _beyond(cap.cast({"ts": pl.Datetime("us")}), srv.cast({"ts": pl.Datetime("us")}))["requests"].to_list()
    [1, 1]
    """
    if not counted.height:
        return captured
    server = counted.group_by("status").agg(pl.col("requests").sum().alias("server"))
    return (captured.sort("ts", "source", nulls_last=True).join(server, on="status", how="left")
            .with_columns(pl.col("requests").cum_sum().over("status").alias("upto"))
            .with_columns((pl.col("upto") - pl.col("server").fill_null(0)).clip(0).alias("over"))
            .with_columns(pl.min_horizontal("requests", "over").alias("requests"))
            .filter(pl.col("requests") > 0).select(list(REQUESTS)))


def _minutes(frame: pl.DataFrame, since, until) -> pl.DataFrame:
    """The rows of the minutes that overlap [since, until], and those of no known time."""
    if since is None and until is None:
        return frame
    inside = pl.lit(True)
    if since is not None:
        inside = inside & (pl.col("ts") + pl.duration(minutes=1) > since)
    if until is not None:
        inside = inside & (pl.col("ts") <= until)
    return frame.filter(pl.col("ts").is_null() | inside)


def _timed(frame: pl.DataFrame, events: pl.DataFrame, year: int | None, written: dict[str, float] | None,
           tz: str | None) -> pl.DataFrame:
    """`minute` as written → `ts`: a full date parses; a year-less vLLM stamp takes the year its
    source's events were given (or the same inference as the events, `fill_years`)."""
    frame = frame.with_columns((pl.col("minute") + ":00").alias("ts_text"))
    frame = frame.with_columns(pl.col("ts_text").str.to_datetime("%Y-%m-%d %H:%M:%S", strict=False).cast(pl.Datetime("us")).alias("ts"))
    frame = fill_years(frame, year, written, like=events).drop("ts_text", "minute")
    return frame.with_columns(local_to_utc(pl.col("ts"), tz).alias("ts")) if tz else frame


def figures(seen: Traffic) -> dict[str, object]:
    """The traffic's figures, as facts (see FACTS)."""
    out: dict[str, object] = {}
    if seen.kv is None:
        return out
    kv = seen.kv.filter(pl.col("kv").is_not_null())
    if kv.height:
        top = kv.sort("kv", "ts", descending=[True, False], nulls_last=True).row(0, named=True)
        out["kv_cache_peak_pct"] = round(float(top["kv"]), 1)
        if top["ts"] is not None:
            out["kv_cache_peak_at"] = f"{top['ts']:%Y-%m-%d %H:%M} UTC"
    wait = seen.kv.filter(pl.col("wait") > 0) if "wait" in seen.kv.columns else seen.kv.clear()
    if wait.height:
        top = wait.sort("wait", "ts", descending=[True, False], nulls_last=True).row(0, named=True)
        out["waiting_peak"] = int(top["wait"])
        if top["ts"] is not None:
            out["waiting_peak_at"] = f"{top['ts']:%Y-%m-%d %H:%M} UTC"
    return out
