"""SGLang server logs, 0.4 to 0.5 (see FORMATS.md §2).

Lines look like `[2025-03-27 21:33:30 TP0] message`; the rank part is optional and varies by
version. SGLang's format has no level, so a level is inferred from the message (uvicorn level
prefixes, error words). Raw tracebacks written to stderr carry no prefix.
"""

from __future__ import annotations

import polars as pl

from emblens.formats import server_facts as ft
from emblens.formats.base import Source, head_count
from emblens.formats.uvicorn import ACCESS, OK_LINE, UVICORN

PREFIX = (
    r"^(?:\([^()]*? pid=\d+(?:, ip=[^)]*)?\) )?\[(?P<ts>\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2})(?P<ms>\.\d{3})?"
    r"(?P<ranks>(?: [A-Za-z_]+\[?\d+\]?)*)\] (?P<msg>.*)$"
)
ERROR_WORDS = (
    r"(?i)\b(?:error|exception|traceback|out of memory|failed|failure|killed)\b|Not enough memory|"
    r"Received sigquit|Scheduler hit an exception"
)
WARN_WORDS = r"(?i)^warning\b|\bretract|\bwarn(?:ing)?:"

FACT_LINES = (
    r"server_args=ServerArgs\(|The server is fired up and ready to roll|Load weight (?:begin|end)|"
    r"Uvicorn running on|Application startup complete|KV Cache is allocated|max_total_num_tokens="
)


class SGLangLog(Source):
    __slots__ = ()
    name = "sglang-log"
    origin = "sglang"
    server = True
    local_time = True
    line_pattern = r"^(?:\([^()]*? pid=\d+[^)]*\) )?\[\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(?:\.\d{3})?(?: [A-Za-z_]+\[?\d+\]?)*\] "
    notable = ERROR_WORDS + "|" + WARN_WORDS + "|" + FACT_LINES + r'|HTTP/[\d.]+" [145]\d\d'
    clock = r"^(?:\([^()]*? pid=\d+(?:, ip=[^)]*)?\) )?\[(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2})"
    ok_line = OK_LINE
    metrics = ("Prefill batch", "Decode batch")
    samples = (
        "[2025-03-27 21:33:30] server_args=ServerArgs(model_path='Qwen/Qwen2.5-7B-Instruct', port=30000)",
        "[2025-03-27 21:33:42 TP0] Load weight begin. avail mem=78.50 GB",
        "[2025-03-27 21:34:10 TP0] Decode batch. #running-req: 1, #token: 97, token usage: 0.00, gen throughput (token/s): 6.21",
        '[2025-03-27 21:34:02] INFO:     127.0.0.1:45678 - "POST /v1/chat/completions HTTP/1.1" 200 OK',
        "[2025-03-27 21:33:58] The server is fired up and ready to roll!",
    )

    def sniff(self, head: list[str]) -> float:
        hits = head_count(head, PREFIX)
        if not hits:
            return 0.0
        words = any(("sglang" in h.lower() or "ServerArgs" in h or "TP0]" in h or "fired up" in h) for h in head)
        return 0.9 if words else 0.4 + 0.2 * min(hits / max(len(head), 1), 1.0)

    def parse_rows(self, kept: pl.DataFrame) -> pl.DataFrame:
        raw = pl.col("raw")
        df = kept.with_columns(raw.str.extract_groups(PREFIX).alias("_p")).unnest("_p", separator="__")
        rest = pl.coalesce(pl.col("_p__msg"), raw)
        df = df.with_columns(rest.alias("_rest"))
        rest = pl.col("_rest")
        df = df.with_columns(rest.str.extract_groups(ACCESS).alias("_a"), rest.str.extract_groups(UVICORN).alias("_u"))
        df = df.unnest("_a", "_u", separator="__")
        prefixed = pl.col("_p__ts").is_not_null()
        is_http = pl.col("_a__status").is_not_null()
        is_uvi = pl.col("_u__level").is_not_null() & ~is_http
        message = pl.when(is_uvi).then(pl.col("_u__msg")).otherwise(rest)
        inferred = (
            pl.when(is_http).then(pl.lit("INFO"))
            .when(is_uvi).then(pl.col("_u__level"))
            .when(rest.str.contains(ERROR_WORDS)).then(pl.lit("ERROR"))
            .when(rest.str.contains(WARN_WORDS)).then(pl.lit("WARNING"))
            .when(prefixed).then(pl.lit("INFO"))
        )
        ranks = pl.col("_p__ranks").str.strip_chars()
        df = df.with_columns(
            pl.when(is_http).then(pl.lit("http")).when(prefixed | is_uvi).then(pl.lit("log")).alias("kind"),
            inferred.alias("level"),
            message.alias("message"),
            rest.alias("body"),
            (pl.col("_p__ts") + pl.col("_p__ms").fill_null("")).alias("ts_text"),
            (pl.col("_p__ts") + pl.col("_p__ms").fill_null(".000"))
            .str.to_datetime("%Y-%m-%d %H:%M:%S%.3f", strict=False)
            .cast(pl.Datetime("us"))
            .alias("ts"),
            pl.when(ranks != "").then(ranks).alias("proc"),
            # raw stderr traceback lines carry no rank: key them together with rank-less lines
            pl.lit("").alias("key"),
            pl.col("_a__method").alias("http_method"),
            pl.col("_a__path").alias("http_path"),
            pl.col("_a__status").cast(pl.Int64).alias("http_status"),
            pl.col("_a__client").alias("http_client"),
        )
        df = ft.server_facts(df, software="sglang")
        return df.drop([c for c in df.columns if c.startswith("_")])
