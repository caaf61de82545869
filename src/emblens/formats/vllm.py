"""vLLM server logs, every line format from 0.6 to 0.33 (see FORMATS.md §1).

Handles the optional `(Name pid=N) ` process prefix, the bracketed and bare `file:line]` forms,
uvicorn access and level lines (prefixed or not), tracebacks logged with the full prefix on every
line, and the start-up facts: version, served model names, port, whether --api-key is set, the
ready line. Times carry no year; the analysis fills it in from other sources when it can.
"""

from __future__ import annotations

import polars as pl

from emblens.formats import server_facts as ft
from emblens.formats.base import Source, head_count, head_without
from emblens.formats.uvicorn import ACCESS, OK_LINE, UVICORN

PROC = r"^\((?P<proc>[^()]*?) pid=(?P<pid>\d+)\) "
LEVEL = (
    r"^(?P<level>DEBUG|INFO|WARNING|ERROR|CRITICAL) (?P<ts>\d{2}-\d{2} \d{2}:\d{2}:\d{2})(?:\.\d+)? "
    r"\[?(?P<file>[^\]\s]+:\d+)\] ?(?P<msg>.*)$"
)

FACT_LINES = (
    r"vLLM (?:API )?server version|args: Namespace\(|non-default args:|Starting vLLM (?:API )?server|"
    r"Uvicorn running on|Application startup complete|Starting to load model|Loading (?:model )?weights took|"
    r"Model loading took|Using max model len|Supported tasks:|Resolved architecture:|serving model|"
    r"Shutting down|Finished server process|Available KV cache memory|GPU KV cache size"
)


class VLLMLog(Source):
    __slots__ = ()
    name = "vllm-log"
    origin = "vllm"
    server = True
    local_time = True
    line_pattern = (r"^(?:\([^()]*? pid=\d+\) )?(?:(?:DEBUG|INFO|WARNING|ERROR|CRITICAL) \d\d-\d\d \d\d:\d\d:\d\d"
                    r"|(?:DEBUG|INFO|WARNING|ERROR|CRITICAL): )")
    notable = (r"^(?:\([^()]*? pid=\d+\) )?(?:(?:WARNING|ERROR|CRITICAL) |(?:WARNING|ERROR|CRITICAL):)|"
               + FACT_LINES + r'|HTTP/[\d.]+" [145]\d\d')
    clock = r"^(?:\([^()]*? pid=\d+\) )?(?:DEBUG|INFO|WARNING|ERROR|CRITICAL) (\d\d-\d\d \d\d:\d\d:\d\d)"
    ok_line = OK_LINE
    metrics = ("Avg prompt throughput:",)
    # request logging (on by default up to 0.10, --enable-log-requests from 0.11; FORMATS.md): the
    # logger's `Received request <id>: prompt: '…'` quotes the user's text; the engine's `Added
    # request <id>.` and `Finished request <id>.` follow it
    requests = ("] Received request ", "] Added request ", "] Finished request ")
    samples = (
        "INFO 11-20 09:14:01 [api_server.py:1880] vLLM API server version 0.11.0",
        "(APIServer pid=3999075) INFO 11-20 09:14:02 [utils.py:233] non-default args: {'model_tag': "
        "'/models/Qwen3-Embedding-4B', 'port': 8000}",
        '(APIServer pid=3999075) INFO:     10.0.3.250:55941 - "POST /v1/embeddings HTTP/1.1" 404 Not Found',
        "(EngineCore_DP0 pid=4101) ERROR 11-20 09:15:10 [core.py:708] EngineCore failed to start.",
        "INFO 05-06 10:11:12 metrics.py:351] Avg prompt throughput: 0.0 tokens/s, Avg generation throughput: 0.0 tokens/s",
        "INFO:     Application startup complete.",
    )

    def sniff(self, head: list[str]) -> float:
        hits = head_count(head_without(head, PROC), LEVEL)
        if not hits:
            return 0.0
        vllm_words = any(("vLLM" in h or "vllm" in h or "EngineCore" in h or "pid=" in h) for h in head)
        return 0.95 if vllm_words else 0.6 + 0.2 * min(hits / max(len(head), 1), 1.0)

    def parse_rows(self, kept: pl.DataFrame) -> pl.DataFrame:
        raw = pl.col("raw")
        df = kept.with_columns(raw.str.extract_groups(PROC).alias("_p"), raw.str.replace(PROC, "").alias("_rest"))
        rest = pl.col("_rest")
        df = df.with_columns(
            rest.str.extract_groups(LEVEL).alias("_l"),
            rest.str.extract_groups(ACCESS).alias("_a"),
            rest.str.extract_groups(UVICORN).alias("_u"),
        ).unnest("_p", "_l", "_a", "_u", separator="__")
        # unnest with a separator keeps names unique: _l__level, _a__status, ...
        is_log = pl.col("_l__level").is_not_null()
        is_http = pl.col("_a__status").is_not_null()
        is_uvi = pl.col("_u__level").is_not_null() & ~is_http
        msg = pl.when(is_log).then(pl.col("_l__msg")).when(is_uvi).then(pl.col("_u__msg")).otherwise(rest)
        df = df.with_columns(
            pl.when(is_log | is_uvi).then(pl.lit("log")).when(is_http).then(pl.lit("http")).alias("kind"),
            pl.coalesce(pl.col("_l__level"), pl.when(is_http).then(pl.lit("INFO")), pl.col("_u__level")).alias("level"),
            msg.alias("message"),
            pl.when(is_log).then(pl.col("_l__msg")).otherwise(rest).alias("body"),
            pl.col("_l__ts").alias("ts_text"),
            pl.lit(None, dtype=pl.Datetime("us")).alias("ts"),
            pl.col("_p__proc").alias("proc"),
            pl.col("_p__pid").cast(pl.Int64).alias("pid"),
            pl.concat_str([pl.col("_p__proc"), pl.col("_p__pid")], separator="/").fill_null("").alias("key"),
            pl.col("_l__file").alias("logger"),
            pl.col("_a__method").alias("http_method"),
            pl.col("_a__path").alias("http_path"),
            pl.col("_a__status").cast(pl.Int64).alias("http_status"),
            pl.col("_a__client").alias("http_client"),
        )
        df = ft.server_facts(df, software="vllm")
        # uvicorn's lines (the ready line and the access lines among them) carry no time: take the
        # last stamp before, of every line read (the reader's clock) or else of the kept ones
        before = pl.coalesce(pl.col("_clock"), pl.col("ts_text").forward_fill()) if "_clock" in df.columns \
            else pl.col("ts_text").forward_fill()
        df = df.with_columns(
            pl.when((pl.col("fact").is_not_null() | (pl.col("kind") == "http")) & pl.col("ts_text").is_null())
            .then(before)
            .otherwise(pl.col("ts_text"))
            .alias("ts_text")
        )
        return df.drop([c for c in df.columns if c.startswith("_")])
