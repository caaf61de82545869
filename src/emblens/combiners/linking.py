"""One request across sources: each event's `request` key.

A request is known by the ids its programs print and export:
- the trace id (`trace_id`) a client span shares with the server's span when the client's
  `traceparent` is carried to the server (vLLM starts its `llm_request` span in that trace);
- the server's request id (`request_id`): OpenAI-style ids as vLLM prints them in `Received
  request embd-…`, `Added request …`, `Aborted request …` and exports them as the span's
  `gen_ai.request.id` (`chatcmpl-`, `cmpl-`, `embd-`, `pooling-`, `score-`, `rerank-`,
  `classify-`, `resp-`), an `X-Request-Id` header or `request_id=` field, SGLang's `rid=`.

vLLM's engine appends its own suffix to the id it logs (`embd-<32 hex>-<8 hex>`; `cmpl-…-0` for
each prompt of a completion), so an id is read without it. A span that carries both a trace id
and a request id joins the two: the key of every event is its trace id, or the trace of its
request id, or the request id itself. Events with no id have no key: nothing is linked by
guess (two requests that merely look alike are never one).
"""

from __future__ import annotations

import polars as pl

OPENAI_IDS = r"(?:chatcmpl|cmpl|embd|pooling|score|rerank|classify|resp)-[0-9A-Za-z][0-9A-Za-z_-]{7,100}"
# (the pattern, the group holding the id); the first that matches a line gives its id
TEXT_IDS = (
    rf"\b({OPENAI_IDS})",
    r"(?i)\bx-request-id[\"']?\s*[:=]\s*[\"']?([0-9A-Za-z][0-9A-Za-z._:-]{7,100})",
    r"\brid=['\"]?([0-9a-f]{16,64})\b",
    r"(?i)\brequest[_ ]id[\"']?\s*[:=]\s*[\"']?([0-9A-Za-z][0-9A-Za-z._:-]{7,100})",
)
# vLLM's suffixes on the id it logs: the engine's `-<8 hex>`, a completion's prompt index `-N`
SUFFIX = r"^((?:chatcmpl|cmpl|embd|pooling|score|rerank|classify|resp)-[0-9a-f]{32})(?:-[0-9a-f]{8})?(?:-\d{1,3})?$"


def _normal(col: pl.Expr) -> pl.Expr:
    return pl.coalesce(col.str.extract(SUFFIX, 1), col)


def link(events: pl.DataFrame) -> pl.DataFrame:
    """`events` with `request_id` read from the text of lines that carry one (and each id read
    without vLLM's suffixes), and `request`: the trace id, else the trace its request id shares
    with a span, else the request id."""
    if events.height == 0 or "text" not in events.columns:
        return events
    rid = pl.col("request_id") if "request_id" in events.columns else pl.lit(None, pl.String)
    tid = pl.col("trace_id") if "trace_id" in events.columns else pl.lit(None, pl.String)
    found = pl.coalesce(*(pl.col("text").str.extract(p, 1) for p in TEXT_IDS))
    events = events.with_columns(_normal(pl.coalesce(rid, found)).alias("request_id"), tid.alias("trace_id"))
    if events["request_id"].null_count() == events.height and events["trace_id"].null_count() == events.height:
        return events.with_columns(pl.lit(None, pl.String).alias("request"))
    joins = (events.filter(pl.col("request_id").is_not_null() & pl.col("trace_id").is_not_null())
             .group_by("request_id").agg(pl.col("trace_id").min().alias("_trace")))
    events = events.join(joins, on="request_id", how="left", maintain_order="left") if joins.height else \
        events.with_columns(pl.lit(None, pl.String).alias("_trace"))
    return events.with_columns(pl.coalesce("trace_id", "_trace", "request_id").alias("request")).drop("_trace")
