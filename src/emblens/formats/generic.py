"""Any text: application logs, notes, `pip freeze` output. Every non-blank line is an event.

A leading ISO timestamp and a level word near the start are picked up when present, and
`package==version` lines become version facts, so the rules can still use them.
"""

from __future__ import annotations

import polars as pl

from emblens.formats.base import Source
from emblens.formats.commands import CONTAINER_COMMAND, SERVER_COMMAND
from emblens.formats.uvicorn import ACCESS

TS = r"^\[?(?P<ts>\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2})(?P<frac>[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2})?\]?"
LEVEL = r"^.{0,60}?\b(?P<level>DEBUG|INFO|WARN|WARNING|ERROR|CRITICAL|FATAL)\b"
PIN = r"^(?P<pkg>openai|vllm|sglang|httpx|httpcore|requests|urllib3|open-webui|langchain-openai|langchain|transformers|torch|sentence-transformers)(?:==|\s+)(?P<ver>\d+\.\d+[\w.+-]*)\s*$"
USER_AGENT = r"(?i)user-agent['\"]?\s*[:=]\s*['\"]?OpenAI/Python (?P<ver>\d+\.\d+[\w.]*)"
# what pasting or a wrapper put before a server's line: indentation, quote markers, backticks, a
# `time | LEVEL | logger | ` prefix (FastChat, loguru-style), a vLLM process prefix, a bracketed
# stamp (SGLang, CI systems); an access line after it is still an access line
LEAD = (r"^[\s>|`]*(?:\d{4}-\d\d-\d\d[ T][\d:.,]+ \| [A-Z]+ +\| [\w.:-]+ \| )?"
        r"(?:\((?P<proc>[^()]*?) pid=\d+\)\s+)?(?:\[[^\]]{8,40}\]\s*)?")
# a quoted request line and its status anywhere in a line: nginx's access log, or a sentence that
# quotes a server's access line ("the vllm log displays "GET /v1//models HTTP/1.1" 404 Not Found")
REQUEST_LINE = r'"(?P<method>GET|POST|PUT|DELETE|PATCH|HEAD|OPTIONS) (?P<path>/[^\s"]*) HTTP/[\d.]+" (?P<status>[1-5]\d\d)\b'
# httpx's own log line (openai-python, LiteLLM and most Python clients log through it)
HTTPX = (r'HTTP Request: (?P<method>[A-Z]+) (?P<scheme>https?)://(?P<host>\[[^\]]+\]|[^/:\s"]+)(?::(?P<port>\d+))?'
         r'(?P<path>/[^\s"?]*)?\S* "HTTP/[\d.]+ (?P<status>\d{3})')


class GenericLog(Source):
    __slots__ = ()
    name = "text"
    origin = "generic"
    origins = ("vllm", "client")   # an access line behind vLLM's process prefix; httpx's client log line
    local_time = True
    pasted = True
    line_pattern = r"."
    notable = (r"(?i)\b(?:error|critical|fatal|exception|warn(?:ing)?|traceback|failed|refused|timed? ?out)\b|==\d|OpenAI/Python"
               r'|HTTP/[\d.]+" [45]\d\d|"HTTP/[\d.]+ [45]\d\d|'
               # commands the client combiner reads facts from
               + "|".join([CONTAINER_COMMAND, *SERVER_COMMAND.values()]))

    def sniff(self, head: list[str]) -> float:  # noqa: ARG002 - any text will do
        return 0.1

    def parse_rows(self, kept: pl.DataFrame) -> pl.DataFrame:
        raw = pl.col("raw")
        df = kept.with_columns(
            raw.str.extract_groups(TS).alias("_t"),
            raw.str.extract(LEVEL, 1).alias("_level"),
            raw.str.extract_groups(PIN).alias("_pin"),
            raw.str.extract(USER_AGENT, 1).alias("_ua"),
            raw.str.replace(LEAD, "").str.extract_groups(ACCESS).alias("_a"),
            raw.str.extract(LEAD, 1).alias("_proc"),
            raw.str.extract_groups(HTTPX).alias("_x"),
            raw.str.extract_groups(REQUEST_LINE).alias("_r"),
        ).unnest("_t", "_pin", "_a", "_x", "_r", separator="__")
        is_access = pl.col("_a__status").is_not_null()
        is_httpx = pl.col("_x__status").is_not_null() & ~is_access
        is_quoted = pl.col("_r__status").is_not_null() & ~is_access & ~is_httpx
        is_http = is_access | is_httpx | is_quoted
        frac = pl.col("_t__frac").str.replace(",", ".").fill_null(".0")
        level = pl.col("_level").replace({"WARN": "WARNING", "FATAL": "CRITICAL"})
        version = pl.coalesce(pl.col("_pin__ver"), pl.col("_ua"))
        df = df.with_columns(
            pl.when(version.is_not_null()).then(pl.lit("fact")).when(is_http).then(pl.lit("http")).otherwise(pl.lit("log")).alias("kind"),
            pl.when(is_http).then(pl.lit("INFO")).otherwise(level).alias("level"),
            pl.coalesce(pl.col("_a__method"), pl.col("_x__method"), pl.col("_r__method")).alias("http_method"),
            pl.coalesce(pl.col("_a__path"), pl.when(is_httpx).then(pl.col("_x__path").fill_null("/")),
                        pl.col("_r__path")).alias("http_path"),
            pl.coalesce(pl.col("_a__status"), pl.col("_x__status"), pl.col("_r__status")).cast(pl.Int64).alias("http_status"),
            pl.col("_a__client").alias("http_client"),
            pl.col("_x__host").str.strip_chars("[]").alias("http_host"),
            pl.coalesce(pl.col("_x__port").cast(pl.Int64),
                        pl.when(is_httpx).then(pl.when(pl.col("_x__scheme") == "https").then(443).otherwise(80))).alias("http_port"),
            # an access line behind vLLM's process prefix is the vLLM server's own; httpx logs the client's side
            pl.when(is_access & pl.col("_proc").is_not_null()).then(pl.lit("vllm"))
            .when(is_httpx).then(pl.lit("client")).alias("origin"),
            raw.alias("message"),
            raw.str.replace(TS + r"\s*", "").alias("body"),
            pl.col("_t__ts").alias("ts_text"),
            (pl.col("_t__ts").str.replace("T", " ") + frac)
            .str.to_datetime("%Y-%m-%d %H:%M:%S%.f", strict=False)
            .cast(pl.Datetime("us"))
            .alias("ts"),
            pl.lit("").alias("key"),
            pl.when(version.is_not_null()).then(pl.lit("version")).alias("fact"),
            pl.coalesce(pl.col("_pin__pkg"), pl.when(pl.col("_ua").is_not_null()).then(pl.lit("openai"))).alias("software"),
            version.alias("software_version"),
        )
        return df.drop([c for c in df.columns if c.startswith("_")])
