"""Times: vLLM stamps are `MM-DD HH:MM:SS`, with no year. The year comes, in this order, from the
user (`--year`), from other sources of the same bundle that carry one, or from when the member
itself was last written (file, zip or tar entry time): a stamp later in the year than that
moment belongs to the year before."""

from __future__ import annotations

from datetime import timedelta

import polars as pl

from emblens.formats import registry

HOUR = timedelta(hours=1)

YEARLESS = r"^\d{2}-\d{2} "


def fill_years(events: pl.DataFrame, year: int | None = None, written: dict[str, float] | None = None,
               like: pl.DataFrame | None = None) -> pl.DataFrame:
    """Give year-less stamps a year: `year` when given, else the one most other stamped events
    of the bundle carry, else each member's own `written` time (epoch seconds by source).
    `like`: an event table whose year-less stamps were settled already; a source's stamps here take
    the year its stamps took there (the minutes counted while reading a log take the year of its
    lines)."""
    if events.height == 0:
        return events
    yearless = pl.col("ts").is_null() & pl.col("ts_text").str.contains(YEARLESS).fill_null(False)
    if not events.select(yearless.any()).item():
        return events
    if year is None and like is not None and like.height:
        known = (like.filter(pl.col("ts").is_not_null() & pl.col("ts_text").str.contains(YEARLESS).fill_null(False))
                 .group_by("source").agg(pl.col("ts").dt.year().max().alias("_year")))
        if known.height:
            settled = (pl.col("_year").cast(pl.String) + "-" + pl.col("ts_text")).str.to_datetime(
                "%Y-%m-%d %H:%M:%S", strict=False).cast(pl.Datetime("us"))
            events = (events.join(known, on="source", how="left", maintain_order="left")
                      .with_columns(pl.when(yearless & pl.col("_year").is_not_null()).then(settled).otherwise(pl.col("ts")).alias("ts"))
                      .drop("_year"))
            if not events.select(yearless.any()).item():
                return events
    if year is None:
        years = events.filter(pl.col("ts").is_not_null())["ts"].dt.year()
        year = int(years.mode().sort()[-1]) if years.len() else None
    if year is not None:
        prefix = pl.lit(f"{year}-")
    elif written:
        # the member's write time: its year, or the year before for a stamp later in the year
        when = pl.from_epoch(pl.col("source").replace_strict(written, default=None, return_dtype=pl.Float64).cast(pl.Int64))
        later = pl.col("ts_text").str.slice(0, 5) > when.dt.strftime("%m-%d")
        prefix = (when.dt.year() - later.cast(pl.Int32)).cast(pl.String) + pl.lit("-")
    else:
        return events
    stamped = (prefix + pl.col("ts_text")).str.to_datetime("%Y-%m-%d %H:%M:%S", strict=False).cast(pl.Datetime("us"))
    return events.with_columns(pl.when(yearless).then(stamped).otherwise(pl.col("ts")).alias("ts"))


def to_utc(events: pl.DataFrame, tz: str | None) -> pl.DataFrame:
    """Stamps written in the servers' zone `tz` (log lines whose time is their own, not a
    wrapper's) moved to UTC, the zone every other time is held in."""
    if not tz or events.height == 0:
        return events
    # the origins whose stamps are the writer's local clock (`Source.local_time`: server logs,
    # nvidia-smi); HAR times carry an offset, flows are epoch seconds, container wrappers are UTC
    own = (pl.col("origin").is_in(registry.local_time()) & pl.col("ts").is_not_null()
           & pl.col("ts_text").str.contains(pl.col("ts").dt.strftime("%H:%M:%S"), literal=True).fill_null(False))
    return events.with_columns(pl.when(own).then(local_to_utc(pl.col("ts"), tz)).otherwise(pl.col("ts")).alias("ts"))


def local_to_utc(expr: pl.Expr, tz: str) -> pl.Expr:
    return (expr.dt.replace_time_zone(tz, ambiguous="earliest", non_existent="null")
            .dt.convert_time_zone("UTC").dt.replace_time_zone(None).cast(pl.Datetime("us")))


def span_notes(events: pl.DataFrame) -> list[str]:
    """What a reader of a timeline should know about its sources' clocks: sources that do not
    overlap in time (hours or days apart), and a whole-hour offset between a capture and a server
    log that recorded the same requests (a log in local time, see --tz)."""
    if events.height == 0:
        return []
    timed = events.filter(pl.col("ts").is_not_null())
    spans = (timed.group_by("source").agg(pl.col("ts").min().alias("start"), pl.col("ts").max().alias("end"))
             .sort("start").rows())
    notes = []
    for (a, _, a_end), (b, b_start, _) in zip(spans, spans[1:], strict=False):
        if b_start - a_end > HOUR:
            notes.append(f"{a} ends {duration(b_start - a_end)} before {b} begins ({a_end:%Y-%m-%d %H:%M} → "
                         f"{b_start:%Y-%m-%d %H:%M}): they may not record the same incident, or a clock or zone is off.")
    http = timed.filter((pl.col("kind") == "http") & pl.col("http_status").is_not_null()) if "http_status" in timed.columns else timed.clear()
    captures = http.filter(pl.col("origin") == "capture")
    logs = http.filter(pl.col("origin").is_in(registry.local_time()))
    for cap in captures["source"].unique(maintain_order=True).to_list()[:4]:
        for log in logs["source"].unique(maintain_order=True).to_list()[:4]:
            c = captures.filter(pl.col("source") == cap).select("ts", "http_status").head(200)
            g = logs.filter(pl.col("source") == log).select("ts", "http_status")
            pairs = c.join(g, on="http_status", suffix="_log")
            if not pairs.height:
                continue
            best = (pairs.with_columns((pl.col("ts_log") - pl.col("ts")).dt.total_seconds().alias("d"))
                    .group_by("ts").agg(pl.col("d").sort_by(pl.col("d").abs()).first())["d"].median())
            hours = round(best / 3600) if best is not None else 0
            if hours and abs(hours) <= 14 and abs(best - hours * 3600) < 300:   # a zone, not another day
                notes.append(f"{log} runs {abs(hours)} h {'behind' if hours < 0 else 'ahead of'} {cap} for the same "
                             f"requests: the server log is likely in local time; state its zone with --tz.")
    return notes


def duration(d) -> str:
    days, rest = divmod(int(d.total_seconds()), 86400)
    hours, rest = divmod(rest, 3600)
    return " ".join(p for p in (f"{days} d" if days else "", f"{hours} h" if hours else "",
                                f"{rest // 60} min" if not days and rest // 60 else "") if p) or "under a minute"
