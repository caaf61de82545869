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
request id, or the request id itself.

Where no id is shared, a request seen as an exchange on one side (a client's capture, HAR or
curl -v; a gateway's access line) and as an access line on the server is one request when both
name the same method and path within `WINDOW_S` of each other and nothing else could be the
other: exactly one candidate each way. Events with neither have no key: two requests that merely
look alike are never one.
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
# words one of TEXT_IDS needs: only lines holding one are searched
MARKS = ("chatcmpl-", "cmpl-", "embd-", "pooling-", "score-", "rerank-", "classify-", "resp-", "request-id",
         "request_id", "request id", "rid=")
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
    # the patterns run only on the lines holding one of their words (a literal search over all)
    text = events["text"].fill_null("")
    at = text.str.contains_any(list(MARKS), ascii_case_insensitive=True).arg_true()
    found = pl.Series("found", [None] * events.height, dtype=pl.String)
    if at.len():
        some = text.gather(at).to_frame("text").select(pl.coalesce(*(pl.col("text").str.extract(p, 1) for p in TEXT_IDS)))
        found = found.scatter(at, some.to_series())
    events = events.with_columns(_normal(pl.coalesce(rid, pl.lit(found))).alias("request_id"), tid.alias("trace_id"))
    if events["request_id"].null_count() == events.height and events["trace_id"].null_count() == events.height:
        return by_window(events.with_columns(pl.lit(None, pl.String).alias("request")))
    joins = (events.filter(pl.col("request_id").is_not_null() & pl.col("trace_id").is_not_null())
             .group_by("request_id").agg(pl.col("trace_id").min().alias("_trace")))
    events = events.join(joins, on="request_id", how="left", maintain_order="left") if joins.height else \
        events.with_columns(pl.lit(None, pl.String).alias("_trace"))
    events = events.with_columns(pl.coalesce("trace_id", "_trace", "request_id").alias("request")).drop("_trace")
    return by_window(events)


WINDOW_S = 2.0
MAX_PAIRS = 1_000_000     # candidate pairs weighed for the time window; more, and nothing is linked by time


def by_window(events: pl.DataFrame) -> pl.DataFrame:
    """Exchanges with no key matched one to one across sources by method, path and time (see the
    module's doc): both get the client's or gateway's key, or `window:<source>:<line>` of its event."""
    need = {"kind", "http_method", "http_path", "ts", "origin", "source", "line"}
    if not need <= set(events.columns):
        return events
    from emblens.formats.registry import servers

    # an exchange whose key no other source shares (an Envoy line's X-Request-Id that the server
    # never logged) is as alone as one with none
    alone = pl.col("request").is_null() | (pl.col("source").n_unique().over("request") == 1)
    http = (events.with_row_index("_i").filter((pl.col("kind") == "http") & pl.col("http_path").is_not_null()
                                               & pl.col("ts").is_not_null())
            .filter(alone)
            .select("_i", "source", "line", "ts", "http_method", "http_path", "request",
                    pl.col("origin").is_in(list(servers())).alias("_server")))
    left, right = http.filter(~pl.col("_server")), http.filter(pl.col("_server"))
    if left.height == 0 or right.height == 0:
        return events
    # the pairs to weigh are bounded: a capture of thousands of calls beside a log of thousands of
    # failures to the same path would pair every one with every other; past MAX_PAIRS none are linked
    keys = ["http_method", "http_path"]
    pairs_n = (left.group_by(keys).len().join(right.group_by(keys).len(), on=keys)
               .select((pl.col("len") * pl.col("len_right")).sum()).item())
    if not pairs_n or pairs_n > MAX_PAIRS:
        return events
    pairs = (left.join(right, on=["http_method", "http_path"], suffix="_r")
             .filter((pl.col("source") != pl.col("source_r"))
                     & ((pl.col("ts") - pl.col("ts_r")).dt.total_microseconds().abs() <= WINDOW_S * 1e6)))
    if pairs.height == 0:
        return events
    pairs = pairs.filter((pl.len().over("_i") == 1) & (pl.len().over("_i_r") == 1))     # one candidate each way
    if pairs.height == 0:
        return events
    key = pl.coalesce("request", pl.concat_str([pl.lit("window:"), pl.col("source"), pl.lit(":"), pl.col("line").cast(pl.String)]))
    keys = pl.concat([pairs.select(pl.col("_i"), key.alias("_w")), pairs.select(pl.col("_i_r").alias("_i"), key.alias("_w"))])
    return (events.with_row_index("_i").join(keys, on="_i", how="left", maintain_order="left")
            .with_columns(pl.coalesce("_w", "request").alias("request")).drop("_i", "_w"))
