"""How many requests a finding concerns: of the HTTP exchanges its sources saw (access lines
counted while reading, captured calls), those it matched ("3 of 2,000 requests")."""

from __future__ import annotations

from dataclasses import replace

import polars as pl

from emblens.combiners.traffic import Traffic


def with_requests(findings: list, events: pl.DataFrame, seen: Traffic) -> list:
    """The findings, each with how many of the requests its sources saw it matched ("3 of 2,000
    requests"): copies, the findings given are left as they are."""
    out = []
    for f in findings:
        requests = matched_requests(f, events) or None
        total = (seen.total({s for s, _ in f.matched}) or None) if requests else None
        out.append(replace(f, requests=requests, requests_seen=total))
    return out


def matched_requests(finding, events: pl.DataFrame) -> int:
    """How many of the events a finding matched are HTTP exchanges (access lines, captured calls),
    a request seen both by a capture and by the server's log counted once (`engine.requests_once`)."""
    from emblens.rules.engine import requests_once

    if not finding.matched or not events.height:
        return 0
    keys = pl.DataFrame(list(finding.matched), schema={"source": pl.String, "line": pl.Int64}, orient="row")
    return requests_once(events.filter(pl.col("kind") == "http").join(keys, on=["source", "line"], how="semi"))
