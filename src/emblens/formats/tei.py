"""text-embeddings-inference (TEI) router logs written with `--json-output` (env JSON_OUTPUT=true):
one JSON object a line, from tracing-subscriber's JSON formatter with flattened events, the file
and line of each call and the spans it ran in (router/src/logging.rs). The keys come in this order:

    {"timestamp":"2025-08-09T19:36:02.798333Z","level":"INFO","message":"Success",
     "target":"text_embeddings_router::http::server","filename":"router/src/http/server.rs",
     "line_number":1290,"span":{"inference_time":"1.195713965s",...,"name":"openai_embed"},"spans":[...]}

`timestamp` is UTC. A line is quoted as TEI prints it without `--json-output` (`2025-08-09T19:36:02.798333Z
 INFO text_embeddings_router::http::server: router/src/http/server.rs:1290: Success`). The start-up lines give the facts: the arguments (`Args { model_id: "BAA*/…",
served_model_name: …, port: 80, api_key: None, … }`, model_id partly starred by TEI itself),
"Maximum number of tokens per request: 512", "Starting model backend", "Starting HTTP server:
0.0.0.0:80" and "Ready". Each request ends with a "Success" line or an ERROR line holding the
error the client gets ("Input validation error: `inputs` must have less than 512 tokens. Given:
600", "batch size 64 > maximum allowed batch size 32", "`inputs` cannot be empty").
"""

from __future__ import annotations

import polars as pl

from emblens.formats.base import Source

LINE = r'^\{"timestamp":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z","level":"(?:TRACE|DEBUG|INFO|WARN|ERROR)"'
ARGS = r"^Args \{ "
SERVED = r"\bserved_model_name: Some\(\"([^\"]*)\"\)"
PORT = r"\bport: (\d+)\b"
API_KEY = r"\bapi_key: (Some|None)\b"
MAX_TOKENS = r"^Maximum number of tokens per request: (\d+)"
LISTEN = r"^Starting HTTP server: \S+?:(\d+)$"
FACT_LINES = (r'"message":"(?:Args \{ |Maximum number of tokens per request|Starting model backend|'
              r'Starting HTTP server|Ready")')


class TeiJsonLog(Source):
    __slots__ = ()
    name = "tei-json-log"
    origin = "tei"
    server = True
    line_pattern = LINE
    notable = r'^\{"timestamp":"[^"]*","level":"(?:WARN|ERROR)"|' + FACT_LINES
    samples = (
        '{"timestamp":"2025-11-20T09:14:01.902114Z","level":"INFO","message":"Args { model_id: \\"BAA*/***-*****-**-v1.5\\", '
        'revision: None, tokenization_workers: None, dtype: None, served_model_name: None, pooling: None, '
        'max_concurrent_requests: 512, max_batch_tokens: 16384, max_batch_requests: None, max_client_batch_size: 32, '
        'auto_truncate: false, default_prompt_name: None, default_prompt: None, hf_api_token: None, hf_token: None, '
        'hostname: \\"0.0.0.0\\", port: 80, uds_path: \\"/tmp/text-embeddings-inference-server\\", '
        'huggingface_hub_cache: Some(\\"/data\\"), payload_limit: 2000000, api_key: None, json_output: true, '
        'disable_spans: false, otlp_endpoint: None, otlp_service_name: \\"text-embeddings-inference.server\\", '
        'prometheus_port: 9000, cors_allow_origin: None }","target":"text_embeddings_router","filename":"router/src/main.rs",'
        '"line_number":216}',
        '{"timestamp":"2025-11-20T09:14:09.113950Z","level":"INFO","message":"Ready","target":"text_embeddings_router::http::server",'
        '"filename":"router/src/http/server.rs","line_number":1881}',
        '{"timestamp":"2025-11-20T09:15:02.798333Z","level":"ERROR","message":"Input validation error: `inputs` must have less '
        'than 512 tokens. Given: 600","target":"text_embeddings_router::http::server","filename":"router/src/http/server.rs",'
        '"line_number":1233,"span":{"name":"openai_embed"},"spans":[{"http.request.method":"POST","http.route":"/v1/embeddings",'
        '"name":"HTTP request"},{"name":"openai_embed"}]}',
    )

    def sniff(self, head: list[str]) -> float:
        hits, lines = self.share(head, LINE)
        if not hits:
            return 0.0
        tei = any("text_embeddings" in h for h in head)
        return 0.96 if tei and hits >= lines / 2 else 0.5 * hits / lines

    def parse_rows(self, kept: pl.DataFrame) -> pl.DataFrame:
        raw = pl.col("raw")
        is_json = raw.str.contains(LINE)
        field = {k: pl.when(is_json).then(raw.str.json_path_match(f"$.{k}")) for k in
                 ("timestamp", "level", "message", "filename", "line_number")}
        message = pl.coalesce(field["message"], raw)
        df = kept.with_columns(
            message.alias("message"),
            message.alias("body"),
            field["timestamp"].alias("ts_text"),
            field["timestamp"].str.strip_suffix("Z").str.to_datetime("%Y-%m-%dT%H:%M:%S%.f", strict=False)
            .cast(pl.Datetime("us")).alias("ts"),
            field["level"].replace({"WARN": "WARNING", "TRACE": "DEBUG"}).alias("level"),
            pl.concat_str([field["filename"], field["line_number"]], separator=":").alias("logger"),
            pl.when(is_json).then(pl.lit("log")).alias("kind"),
            pl.lit("").alias("key"),
        )
        # quoted as TEI prints the line without --json-output: `<time> LEVEL target: file:line: message`
        df = df.with_columns(pl.when(is_json).then(pl.concat_str([
            field["timestamp"], pl.lit(" "), pl.col("level").replace({"WARNING": "WARN"}).str.pad_start(5), pl.lit(" "),
            raw.str.json_path_match("$.target"), pl.lit(": "), pl.col("logger"), pl.lit(": "), pl.col("message")])).alias("text"))
        m = pl.col("message")
        is_args = m.str.contains(ARGS)
        api_key = m.str.extract(API_KEY, 1)
        max_len = m.str.extract(MAX_TOKENS, 1).cast(pl.Int64)
        listen = m.str.extract(LISTEN, 1).cast(pl.Int64)
        fact = (pl.when(is_args).then(pl.lit("args"))
                .when(listen.is_not_null()).then(pl.lit("listen"))
                .when(m == "Ready").then(pl.lit("ready"))
                .when(m == "Starting model backend").then(pl.lit("loading"))
                .when(max_len.is_not_null()).then(pl.lit("max_model_len")))
        return df.with_columns(
            fact.alias("fact"),
            pl.when(fact.is_not_null()).then(pl.lit("tei")).alias("software"),
            pl.when(is_args).then(m.str.extract(SERVED, 1)).alias("served_models"),
            pl.coalesce(pl.when(is_args).then(m.str.extract(PORT, 1).cast(pl.Int64)), listen).alias("listen_port"),
            pl.when(is_args).then(api_key == "Some").alias("api_key_required"),
            max_len.alias("max_model_len"),
            pl.when(fact.is_not_null()).then(pl.lit("fact")).otherwise(pl.col("kind")).alias("kind"),
        )
