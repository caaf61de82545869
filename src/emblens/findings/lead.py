"""Where to start when no rule explains the evidence: the innermost exception of the last
traceback (its root cause, as Python chains them), or else the first error line."""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from emblens.rules.engine import Evidence


@dataclass
class Lead:
    """Where to start when no rule explains the evidence: the innermost exception of the last
    traceback (its root cause, as Python chains them), or else the first error line."""

    what: str                # exception type, or "error line"
    message: str
    evidence: Evidence


def lead(events: pl.DataFrame) -> Lead | None:
    if events.height == 0:
        return None
    exc = events.filter((pl.col("kind") == "exception") & pl.col("exc_group").is_not_null())
    if exc.height:
        last = exc.sort(["source", "exc_group", "line"]).tail(1)
        source, group = last["source"][0], last["exc_group"][0]
        chain = exc.filter((pl.col("source") == source) & (pl.col("exc_group") == group)).sort("line")
        root = chain.row(0, named=True)   # the first exception of a chain is the one that started it
        return Lead(root["exc_type"] or "exception", root["exc_message"] or "",
                    Evidence(root["source"], root["line"], (root["text"] or "").strip(), root["ts"]))
    # a line holding an upstream message that is no failure (`msg_id` none) is known: not where to start
    known = pl.col("msg_id").is_not_null() & (pl.col("msg_id") == "none")
    errors = events.filter(pl.col("level").is_in(["ERROR", "CRITICAL"]).fill_null(False) & ~known).sort(["source", "line"])
    if errors.height:
        row = errors.row(0, named=True)
        return Lead("error line", row["message"] or "", Evidence(row["source"], row["line"], (row["text"] or "").strip(), row["ts"]))
    # a line of any kind that reads as an error (a paste's prose, a printed status): silence is not an answer
    from emblens.findings.possible import error_like

    rows = error_like(events, set())
    if rows.height:
        row = rows.row(0, named=True)
        return Lead("error line", row["_text"] or "", Evidence(row["source"], row["line"], (row["text"] or "").strip(), row["ts"]))
    return None
