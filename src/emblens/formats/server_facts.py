"""Start-up facts read from server log messages (vLLM and SGLang), as vectorised expressions.

Both servers print their arguments at start (`args: Namespace(...)`, `non-default args: {...}`,
`server_args=ServerArgs(...)`); from those and a few fixed lines come the served model names, the
port, whether an API key is required, the version and the ready line.
"""

from __future__ import annotations

import polars as pl

ARGS_LINE = r"^(?:args: Namespace\(|non-default args: \{|server_args=ServerArgs\()"
_Q = r"['\"]?"


def _arg(name: str, value: str) -> str:
    return rf"(?:^|[\s,{{(]){_Q}{name}{_Q}\s*[:=]\s*{value}"


MODEL = _arg("(?:model|model_path)", r"'([^']+)'")
SERVED = _arg("served_model_name", r"(\[[^\]]*\]|'[^']*'|None)")
PORT = _arg("port", r"(\d+)")
API_KEY = _arg("api_key", r"(None|\[[^\]]*\]|'[^']*'|\"[^\"]*\")")
MAX_LEN = _arg("(?:max_model_len|context_length)", r"(\d+)")
LISTEN = r"(?:Starting vLLM (?:API )?server(?: \d+)? on|Uvicorn running on) https?://\S+?:(\d+)"
VERSION = r"vLLM (?:API )?server version ([^\s,]+)"
BANNER_MODEL = r"vLLM server version [^\s,]+, serving model (\S+)"
READY = r"^(?:Application startup complete\.|The server is fired up and ready to roll!)"
LOADING = r"^(?:Starting to load model (\S+?)\.*$|Load weight begin\b)"
MAX_LEN_LINE = r"^Using max model len (\d+)"


def server_facts(df: pl.DataFrame, *, software: str) -> pl.DataFrame:
    """Add fact columns to parsed server rows; `message` must already be prefix-free."""
    m = pl.col("message")
    is_args = m.str.contains(ARGS_LINE)
    served_raw = m.str.extract(SERVED, 1)
    served_list = (
        served_raw.str.extract_all(r"'[^']+'").list.eval(pl.element().str.strip_chars("'")).list.join(",")
    )
    served_list = pl.when(served_raw.is_null() | (served_raw == "None") | (served_list == "")).then(None).otherwise(served_list)
    model = m.str.extract(MODEL, 1)
    api_key = m.str.extract(API_KEY, 1)
    listen = m.str.extract(LISTEN, 1).cast(pl.Int64)
    version = m.str.extract(VERSION, 1)
    banner_model = m.str.extract(BANNER_MODEL, 1)
    ready = m.str.contains(READY)
    loading = m.str.contains(LOADING)
    max_len = pl.coalesce(pl.when(is_args).then(m.str.extract(MAX_LEN, 1)), m.str.extract(MAX_LEN_LINE, 1)).cast(pl.Int64)
    fact = (
        pl.when(is_args).then(pl.lit("args"))
        .when(version.is_not_null()).then(pl.lit("version"))
        .when(listen.is_not_null()).then(pl.lit("listen"))
        .when(ready).then(pl.lit("ready"))
        .when(loading).then(pl.lit("loading"))
        .when(max_len.is_not_null()).then(pl.lit("max_model_len"))
    )
    return df.with_columns(
        fact.alias("fact"),
        pl.when(fact.is_not_null()).then(pl.lit(software)).alias("software"),
        version.alias("software_version"),
        pl.when(is_args).then(pl.coalesce(served_list, model)).otherwise(banner_model).alias("served_models"),
        pl.when(is_args).then(model).otherwise(m.str.extract(LOADING, 1)).alias("model_path"),
        pl.coalesce(pl.when(is_args).then(m.str.extract(PORT, 1).cast(pl.Int64)), listen).alias("listen_port"),
        pl.when(is_args).then(api_key.is_not_null() & (api_key != "None") & (api_key != "[]")).alias("api_key_required"),
        max_len.alias("max_model_len"),
        pl.when(fact.is_not_null()).then(pl.lit("fact")).otherwise(pl.col("kind")).alias("kind"),
    )
