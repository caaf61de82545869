"""A request's path: for a finding, the one request it rests on followed across the sources that
saw it (the client's span or traceback, a proxy's flow or a gateway's line, the server's log lines
and span), each step with its file and line. Events are one request when they share a `request`
key (`combiners.linking`: a trace id or a request id); events with no key are never joined.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from types import MappingProxyType

import polars as pl

MAX_STEPS = 12      # steps shown of one request (a server's log may say a request's id many times)
KIND_ORDER = MappingProxyType({"exception": 0, "http": 1, "log": 2})   # of one line's events, the one shown
SIDE_ORDER = MappingProxyType({"client": 0, "gateway": 1, "server": 2})


@dataclass(frozen=True)
class Step:
    source: str
    line: int
    text: str
    origin: str          # who wrote it: client, a gateway's or a server's origin, generic
    side: str            # client | gateway | server
    ts: datetime | None = None


def _side(origin: str, servers: tuple[str, ...]) -> str:
    if origin == "client":
        return "client"
    return "server" if origin in servers else "gateway"


def with_paths(findings: list, events: pl.DataFrame) -> list:
    """The findings, each that is not a symptom with the path of the request it rests on (the one
    seen by the most sources), when that request was seen by two sources or more: copies."""
    if not findings or "request" not in events.columns or events["request"].null_count() == events.height:
        return findings
    from emblens.formats.registry import servers

    span = pl.col("span_id") if "span_id" in events.columns else pl.lit(None, pl.String)
    keyed = (events.filter(pl.col("request").is_not_null())
             .select("source", "line", "ts", "origin", "kind", "text", "request", span.alias("span_id")))
    spread = keyed.group_by("request").agg(pl.col("source").n_unique().alias("n"), pl.col("ts").min().alias("first"))
    spread = spread.filter(pl.col("n") >= 2)
    if spread.height == 0:
        return findings
    known = servers()
    out = []
    for f in findings:
        if f.role == "symptom" or not f.matched:
            out.append(f)
            continue
        keys = pl.DataFrame(list(f.matched), schema={"source": pl.String, "line": pl.Int64}, orient="row")
        mine = (keyed.join(keys, on=["source", "line"], how="semi").select("request").unique()
                .join(spread, on="request").sort("n", "first", "request", descending=[True, False, False], nulls_last=True))
        if mine.height == 0:
            out.append(f)
            continue
        request = mine["request"][0]
        rows = (keyed.filter(pl.col("request") == request)
                .with_columns(pl.col("kind").replace_strict(KIND_ORDER, default=3).alias("_k"))
                .sort("source", "line", "_k").unique(["source", "line", "span_id"], keep="first", maintain_order=True))
        steps = [Step(r["source"], r["line"], r["text"], r["origin"] or "generic", _side(r["origin"] or "", known), r["ts"])
                 for r in rows.iter_rows(named=True)]
        steps.sort(key=lambda s: (SIDE_ORDER[s.side], s.ts is None, s.ts or datetime.min, s.source, s.line))
        out.append(replace(f, path=steps[:MAX_STEPS], path_request=request, path_steps=len(steps)))
    return out
