"""LM Studio's server log (the app's local server; the app is closed source, so the shapes come from
logs pasted in lmstudio-ai/lmstudio-bug-tracker, lmstudio-ai/lms and client projects' issues, LM
Studio 0.2.x to 0.4.x, and from the messages harvested in rules/data/messages/lmstudio.yaml).

Three forms, one per place the log is copied from:

    [2024-05-17 23:21:10.209] [INFO] [LM STUDIO SERVER] Verbose server logs are DISABLED      (0.2.x, the app)
    [2026-08-05 06:35:30][INFO][LM STUDIO SERVER] Success! HTTP server listening on port 1234   (server-logs/*.log)
    2025-06-15 23:12:20 [ERROR]                                                              (0.3+ developer logs)
    Unexpected endpoint or method. (OPTIONS /v1/completions). Returning 200 anyway

In the developer-log form the message usually starts on the next line (0.3.2 still wrote it on
the same line: `2024-09-12 12:44:00 [ERROR] Unexpected endpoint or method. ...`), and a message
runs over every following line until the next stamp: a request body (`Received request: POST to
/v1/embeddings with body {` and the JSON after it), an error with `Error Data: n/a, Additional
Data: n/a`. Each entry becomes one event, worded and quoted as the one-line form, at the line
that holds its first words; a request body is not read (it is the user's text). A `[LM STUDIO SERVER]`, `[JIT]` or `[<model>]` tag at the
start of a message is its logger. Stamps are local time with no zone.

Requests: `Received request: POST to /v1/embeddings ...` (method, path), `Unexpected endpoint or
method. (GET /v1//models). Returning 200 anyway` (method, path, and status 200: LM Studio answers
an unknown route with 200), `Received request for /api/v1/chat with invalid JSON: ...` (path).
Facts: `Success! HTTP server listening on port 1234` (listen port) and `[JIT] Requested model
(google/gemma-3n-e4b) is not loaded. Loading "google/gemma-3n-e4b" now...` (loading, the model
asked for).
"""

from __future__ import annotations

import polars as pl

from emblens.formats.base import Source, head_rx

HEAD = (r"^(?:\[(?P<ts1>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?)\] ?\[(?P<lv1>[A-Z]+)\]"
        r"|(?P<ts2>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) +\[(?P<lv2>[A-Z]+)\])[ \t]?(?P<msg>.*?)\s*$")
TAG = r"^\[(?P<tag>[^\]\[]{2,60})\] ?(?P<text>.*)$"
RECEIVED = r"^Received request: (?P<method>[A-Z]+) to (?P<path>/\S*)"
UNEXPECTED = r"^Unexpected endpoint or method\. \((?P<method>[A-Z]+) (?P<path>[^)\s]*)\)"
INVALID = r"^Received request for (?P<path>/\S+) with invalid JSON"
BODY = r"^Received request: [A-Z]+ to /\S* with body"
LISTEN = r"\bHTTP server listening on port (\d+)"
JIT = r'^Requested model \((?P<model>[^)]+)\) is not loaded'
WORDS = ("LM STUDIO SERVER", "Unexpected endpoint or method", "Returning 200 anyway", "Received request:",
         "lmstudio", "LM Studio", "[JIT]", "lms load", "Trying to keep the first", "n_keep", "Model is unloaded",
         "prediction-error", "Error Data: n/a")
MAX_MESSAGE = 4000


class LMStudioLog(Source):
    __slots__ = ()
    name = "lmstudio-log"
    origin = "lmstudio"
    server = True
    local_time = True
    # the lines of an entry after its stamp are part of it: every line is recognised, and kept
    line_pattern = r"^(?:\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?\] ?\[[A-Z]+\]|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d +\[[A-Z]+\])"
    notable = r"."
    samples = (
        "[2024-05-17 23:21:10.209] [INFO] [LM STUDIO SERVER] Verbose server logs are DISABLED",
        "[2026-08-05 06:35:30][INFO][LM STUDIO SERVER] Success! HTTP server listening on port 1234",
        "2025-06-15 23:12:20 [ERROR] Unexpected endpoint or method. (OPTIONS /v1/completions). Returning 200 anyway",
        "2025-08-15 14:36:14  [INFO] [JIT] Requested model (google/gemma-3n-e4b) is not loaded. Loading "
        '"google/gemma-3n-e4b" now...',
    )

    def sniff(self, head: list[str]) -> float:
        lines = [h for h in head if h.strip()]
        if not lines:
            return 0.0
        rx = head_rx(HEAD)
        msg = [m.group("msg") if (m := rx.search(h)) else None for h in lines]
        if all(m is None for m in msg):
            return 0.0
        # a stamp and a level with nothing after them, the message on the next line: the developer logs' copy
        bare = sum(1 for m, after in zip(msg, msg[1:], strict=False) if m == "" and after is None)
        words = any(w in h for h in lines for w in WORDS)
        return 0.95 if words or bare >= 2 else 0.0

    def parse_rows(self, kept: pl.DataFrame) -> pl.DataFrame:
        raw = pl.col("raw")
        df = (kept.with_columns(raw.str.extract_groups(HEAD).alias("_h")).unnest("_h", separator="__")
              .with_columns((pl.col("_h__ts1").is_not_null() | pl.col("_h__ts2").is_not_null()).alias("_head"))
              .with_columns(pl.col("_head").cum_sum().alias("_entry")))
        # the lines after a stamp, up to the next one, belong to its entry
        rest = (df.filter(~pl.col("_head") & (pl.col("_entry") > 0) & (raw.str.strip_chars() != ""))
                .group_by("_entry", maintain_order=True)
                .agg(raw.first().str.strip_chars().alias("_first"), pl.col("line").first().alias("_first_line"),
                     raw.str.strip_chars().str.join(" ").alias("_all")))
        lines = df.filter(pl.col("_head") | (pl.col("_entry") == 0))
        lines = lines.join(rest, on="_entry", how="left", maintain_order="left")
        own = pl.col("_h__msg").replace("", None)
        first = pl.coalesce(own, pl.col("_first"))
        whole = pl.concat_str([own, pl.col("_all")], separator=" ", ignore_nulls=True)
        text = pl.when(first.str.contains(BODY)).then(first).otherwise(whole.str.slice(0, MAX_MESSAGE))
        tag = text.str.extract_groups(TAG)
        is_head = pl.col("_head")
        message = pl.when(is_head).then(pl.coalesce(tag.struct.field("text"), text)).otherwise(raw)
        lines = lines.with_columns(message.alias("message"), pl.when(is_head).then(tag.struct.field("tag")).alias("logger"))
        m = pl.col("message")
        received = m.str.extract_groups(RECEIVED)
        unexpected = m.str.extract_groups(UNEXPECTED)
        invalid = m.str.extract_groups(INVALID)
        method = pl.coalesce(received.struct.field("method"), unexpected.struct.field("method"))
        path = pl.coalesce(received.struct.field("path"), unexpected.struct.field("path"), invalid.struct.field("path"))
        level = pl.coalesce(pl.col("_h__lv1"), pl.col("_h__lv2"))
        stamp = pl.coalesce(pl.col("_h__ts1"), pl.col("_h__ts2"))
        listen = m.str.extract(LISTEN, 1).cast(pl.Int64)
        jit = m.str.extract(JIT, 1)
        fact = pl.when(listen.is_not_null()).then(pl.lit("listen")).when(jit.is_not_null()).then(pl.lit("loading"))
        out = lines.with_columns(
            # an entry whose message starts on the line after its stamp is that line: it holds the words
            pl.when(is_head & own.is_null() & pl.col("_first_line").is_not_null()).then(pl.col("_first_line"))
            .otherwise(pl.col("line")).alias("line"),
            pl.when(is_head).then(pl.concat_str([stamp, pl.lit(" ["), level, pl.lit("] "),
                                                 pl.when(pl.col("logger").is_not_null()).then("[" + pl.col("logger") + "] ").otherwise(pl.lit("")),
                                                 m])).alias("text"),
            pl.when(is_head).then(m).otherwise(raw).alias("body"),
            pl.when(is_head).then(level.replace({"WARN": "WARNING", "ERR": "ERROR", "VERBOSE": "DEBUG", "TRACE": "DEBUG"}))
            .alias("level"),
            stamp.alias("ts_text"),
            stamp.str.to_datetime("%Y-%m-%d %H:%M:%S%.f", strict=False).cast(pl.Datetime("us")).alias("ts"),
            pl.when(fact.is_not_null()).then(pl.lit("fact"))
            .when(is_head & received.struct.field("path").is_not_null()).then(pl.lit("http"))
            .when(is_head).then(pl.lit("log")).alias("kind"),
            pl.when(is_head).then(method).alias("http_method"),
            pl.when(is_head).then(path).alias("http_path"),
            pl.when(is_head & unexpected.struct.field("path").is_not_null()).then(pl.lit(200, dtype=pl.Int64)).alias("http_status"),
            pl.lit("").alias("key"),
            fact.alias("fact"),
            pl.when(fact.is_not_null()).then(pl.lit("lmstudio")).alias("software"),
            listen.alias("listen_port"),
            jit.alias("model_path"),
        )
        return out.drop([c for c in out.columns if c.startswith("_")])
