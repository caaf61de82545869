"""Where to start when no rule explains the evidence: the innermost exception of the last
traceback (its root cause, as Python chains them), or else the first error line, or else a line
holding a harvested message that is a failure outside the catalogue (Ollama's "this model is
missing data required for image input": a text-only model sent an image), with what it means."""

from __future__ import annotations

import re
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


# a harvested message of id `none` that its program raises or answers as an error: a failure no catalogue id covers
_ERROR_KIND = re.compile(r"(?i)\berror\b|\bhttp [45]\d\d\b|exception|panic|fatal")


def lead(events: pl.DataFrame, messages=None) -> Lead | None:
    """`messages`: the harvested upstream messages (`emblens.knowledge.upstream.Messages`), to say what a
    known failure outside the catalogue means."""
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
    # a line holding a failure the catalogue has no id for: known, so its program's words say what it means
    outside = _outside_catalogue(events, messages)
    if outside is not None:
        return outside
    # a line of any kind that reads as an error (a paste's prose, a printed status): silence is not an answer
    from emblens.findings.possible import error_like

    rows = error_like(events, set())
    if rows.height:
        row = rows.row(0, named=True)
        return Lead("error line", row["_text"] or "", Evidence(row["source"], row["line"], (row["text"] or "").strip(), row["ts"]))
    return None


def _outside_catalogue(events: pl.DataFrame, messages) -> Lead | None:
    if messages is None or "msg_template" not in events.columns:
        return None
    failures = {m.label: m for m in messages.messages if m.id == "none" and _ERROR_KIND.search(m.kind)}
    if not failures:
        return None
    rows = events.filter((pl.col("msg_id") == "none").fill_null(False)
                         & pl.col("msg_template").is_in(list(failures)).fill_null(False)).sort(["source", "line"])
    if rows.height == 0:
        return None
    row = rows.row(0, named=True)
    m = failures[row["msg_template"]]
    said = f"{m.label}, which {m.project} raises ({m.source}, {m.versions}); no catalogue cause covers it"
    if m.note:
        said += f": {m.note}"
    return Lead("known error outside the catalogue", said,
                Evidence(row["source"], row["line"], (row["text"] or "").strip(), row["ts"]))
