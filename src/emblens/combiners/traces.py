"""Time budgets across one request's spans: a client span that timed out, and the server's span of
the same trace (the client's `traceparent` carried to vLLM, which starts its `llm_request` span in
that trace) saying how long the request waited in the server's queue or for its first token.
"""

from __future__ import annotations

from types import MappingProxyType

import polars as pl

from emblens.combiners.facts import Fact

FACTS = MappingProxyType({
    "trace_queue_s": Fact("number", "how long the server queued a request whose client timed out (seconds; its span's "
                                    "gen_ai.latency.time_in_queue), the longest such"),
    "trace_first_token_s": Fact("number", "that request's time to first token at the server (seconds)"),
    "trace_client_wait_s": Fact("number", "how long its client waited before it gave up (the client span's duration, seconds)"),
    "trace_queued_past_timeout": Fact("bool", "a request's time in the server's queue, or to its first token, was as long "
                                              "as its client's wait: the client gave up while the server still held it"),
    "trace_id_timed_out": Fact("text", "the trace of that request"),
    "trace_preemptions": Fact("number", "how many times the server preempted that request (vLLM's journey events)"),
})
TIMEOUT_TYPES = r"(?:APITimeoutError|ReadTimeout|ReadTimeoutError|TimeoutError|Timeout)$"


def figures(events: pl.DataFrame) -> dict[str, object]:
    if events.height == 0 or "trace_id" not in events.columns or events["trace_id"].is_null().all():
        return {}
    waited = (events.filter((pl.col("kind") == "exception") & pl.col("trace_id").is_not_null()
                            & pl.col("latency_ms").is_not_null() & pl.col("exc_type").str.contains(TIMEOUT_TYPES))
              .group_by("trace_id").agg(pl.col("latency_ms").max().alias("wait")))
    served = (events.filter(pl.col("trace_id").is_not_null() & (pl.col("queue_ms").is_not_null() | pl.col("ttft_ms").is_not_null()))
              .group_by("trace_id").agg(pl.col("queue_ms").max().alias("queue"), pl.col("ttft_ms").max().alias("ttft"),
                                        (pl.col("preemptions").max() if "preemptions" in events.columns
                                         else pl.lit(None, pl.Int64)).alias("preempted")))
    both = waited.join(served, on="trace_id").sort("queue", "trace_id", descending=[True, False], nulls_last=True)
    if both.height == 0:
        return {}
    top = both.row(0, named=True)
    held = max(top["queue"] or 0.0, top["ttft"] or 0.0)
    out: dict[str, object] = {"trace_client_wait_s": round(top["wait"] / 1000, 1), "trace_id_timed_out": top["trace_id"],
                              "trace_queued_past_timeout": held >= 0.9 * top["wait"]}
    if top["queue"] is not None:
        out["trace_queue_s"] = round(top["queue"] / 1000, 1)
    if top["ttft"] is not None:
        out["trace_first_token_s"] = round(top["ttft"] / 1000, 1)
    if top["preempted"]:
        out["trace_preemptions"] = int(top["preempted"])
    return out
