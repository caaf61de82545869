"""Times: vLLM stamps are `MM-DD HH:MM:SS`, with no year; the year comes from other sources of
the same bundle when they carry one."""

from __future__ import annotations

import polars as pl

YEARLESS = r"^\d{2}-\d{2} "


def fill_years(events: pl.DataFrame) -> pl.DataFrame:
    """Give year-less stamps the year most other stamped events of the bundle carry."""
    if events.height == 0:
        return events
    yearless = pl.col("ts").is_null() & pl.col("ts_text").str.contains(YEARLESS).fill_null(False)
    if not events.select(yearless.any()).item():
        return events
    years = events.filter(pl.col("ts").is_not_null())["ts"].dt.year()
    if years.len() == 0:
        return events
    year = int(years.mode().sort()[-1])
    stamped = (pl.lit(f"{year}-") + pl.col("ts_text")).str.to_datetime("%Y-%m-%d %H:%M:%S", strict=False).cast(pl.Datetime("us"))
    return events.with_columns(pl.when(yearless).then(stamped).otherwise(pl.col("ts")).alias("ts"))
