"""Times: vLLM stamps are `MM-DD HH:MM:SS`, with no year. The year comes, in this order, from the
user (`--year`), from other sources of the same bundle that carry one, or from when the member
itself was last written (file, zip or tar entry time): a stamp later in the year than that
moment belongs to the year before."""

from __future__ import annotations

import polars as pl

YEARLESS = r"^\d{2}-\d{2} "


def fill_years(events: pl.DataFrame, year: int | None = None, written: dict[str, float] | None = None) -> pl.DataFrame:
    """Give year-less stamps a year: `year` when given, else the one most other stamped events
    of the bundle carry, else each member's own `written` time (epoch seconds by source)."""
    if events.height == 0:
        return events
    yearless = pl.col("ts").is_null() & pl.col("ts_text").str.contains(YEARLESS).fill_null(False)
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
