"""Any text: application logs, notes, `pip freeze` output. Every non-blank line is an event.

A leading ISO timestamp and a level word near the start are picked up when present, and
`package==version` lines become version facts, so the rules can still use them.
"""

from __future__ import annotations

import polars as pl

from emblens.sources.base import ACCESS, Source

TS = r"^\[?(?P<ts>\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2})(?P<frac>[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2})?\]?"
LEVEL = r"^.{0,60}?\b(?P<level>DEBUG|INFO|WARN|WARNING|ERROR|CRITICAL|FATAL)\b"
PIN = r"^(?P<pkg>openai|vllm|sglang|httpx|httpcore|requests|urllib3|open-webui|langchain-openai|langchain|transformers|torch|sentence-transformers)(?:==|\s+)(?P<ver>\d+\.\d+[\w.+-]*)\s*$"
USER_AGENT = r"(?i)user-agent['\"]?\s*[:=]\s*['\"]?OpenAI/Python (?P<ver>\d+\.\d+[\w.]*)"
# what pasting or a wrapper put before a server's line: indentation, quote markers, a vLLM process
# prefix, a bracketed stamp (SGLang, CI systems); an access line after it is still an access line
LEAD = r"^[\s>|]*(?:\((?P<proc>[^()]*?) pid=\d+\)\s+)?(?:\[[^\]]{8,40}\]\s*)?"


class GenericLog(Source):
    def __init__(self, name: str = "text", origin: str = "generic") -> None:
        super().__init__(
            name=name,
            origin=origin,
            line_pattern=r".",
            notable=r"(?i)\b(?:error|critical|fatal|exception|warn(?:ing)?|traceback|failed|refused|timed? ?out)\b|==\d|OpenAI/Python"
                    r'|HTTP/[\d.]+" [45]\d\d',
        )

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
        ).unnest("_t", "_pin", "_a", separator="__")
        is_http = pl.col("_a__status").is_not_null()
        frac = pl.col("_t__frac").str.replace(",", ".").fill_null(".0")
        level = pl.col("_level").replace({"WARN": "WARNING", "FATAL": "CRITICAL"})
        version = pl.coalesce(pl.col("_pin__ver"), pl.col("_ua"))
        df = df.with_columns(
            pl.when(version.is_not_null()).then(pl.lit("fact")).when(is_http).then(pl.lit("http")).otherwise(pl.lit("log")).alias("kind"),
            pl.when(is_http).then(pl.lit("INFO")).otherwise(level).alias("level"),
            pl.col("_a__method").alias("http_method"),
            pl.col("_a__path").alias("http_path"),
            pl.col("_a__status").cast(pl.Int64).alias("http_status"),
            pl.col("_a__client").alias("http_client"),
            # an access line behind vLLM's process prefix is the vLLM server's own
            pl.when(is_http & pl.col("_proc").is_not_null()).then(pl.lit("vllm")).alias("origin"),
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
