"""LocalAI's server log (mudler/LocalAI, read at v1.30.0, v2.9.0, v2.20.0, v3.0.0, v3.6.0 and main
after v4.9.0).

Up to v3.8 LocalAI logs through zerolog's ConsoleWriter (main.go / cmd/local-ai/main.go:
`log.Output(zerolog.ConsoleWriter{Out: os.Stderr})`): the time as `3:04PM` (Go's Kitchen layout:
no date, no seconds), a three-letter level, the message, then the fields sorted by name with
`error` first:

    1:59PM INF Starting LocalAI using 4 threads, with models path: /build/models
    1:59PM INF LocalAI API is listening! Please connect to the endpoint for API documentation. endpoint=http://0.0.0.0:8080
    1:59PM DBG GRPC(ibm-granite-3.3-2b-127.0.0.1:36571): stderr llama_new_context_with_model: n_ctx = 4096
    2:03PM ERR Server error error="could not load model: rpc error: code = Unavailable desc = error reading from server: EOF" ip=172.17.0.1 latency=2.51s method=POST status=500 url=/v1/chat/completions

(the request lines are gofiber's fiberzerolog middleware, core/http/app.go from v2.x: `Success`,
`Client error` (4xx, WRN), `Server error` (5xx, ERR)). v1.x logged requests with gofiber's own
logger instead, `[127.0.0.1]:49632  405  -  OPTIONS  /v1/chat/completions` (api/api.go). The
backends' output comes through as `GRPC(<model>-<addr>): stderr|stdout <line>`: llama.cpp's lines,
its server's JSON lines (`"n_ctx_slot":4096`).

From December 2025 (v3.9, core/... on mudler/xlog) the default format is xlog's own colour text
handler (`Jan 02 15:04:05 INFO  <msg> key="value" `; xlog text_handler.go), `--log-format text` is Go
slog's text handler (`time=... level=INFO msg="..." key=value`) and `json` slog's JSON. The request
line is `HTTP request method="POST" path="/v1/chat/completions" status=500` (core/http/app.go),
the ready line `LocalAI is started and running address=":8080"` (core/cli/run.go).

Facts: the listen port (`endpoint=`, `address=`), the version (`LocalAI version: v2.20.1 (...)`,
`LocalAI version version="v4.9.0 (...)"`), loading (`Loading model '<file>' with backend <b>`,
the model file), ready (`LocalAI is started and running`, `LocalAI API is listening!`), and the
context per request of a backend (`n_ctx_slot`, llama.cpp's `n_ctx`). Kitchen stamps carry no date
and the xlog stamp no year (it is kept as `MM-DD HH:MM:SS`). The `error` field of a request line is
the error its client got (`resp_error`).
"""

from __future__ import annotations

from types import MappingProxyType

import polars as pl

from emblens.formats.base import Source, head_count
from emblens.formats.ollama import SLOG, go_duration_ms, journal_stamp, slog_ts, unquote

ZEROLOG = r"^(?P<ts>\d{1,2}:\d\d(?:AM|PM)|<nil>) (?P<level>TRC|DBG|INF|WRN|ERR|FTL|PNC|\?\?\?) (?P<msg>.*)$"
XLOG = r"^(?P<ts>[A-Z][a-z]{2} \d\d \d\d:\d\d:\d\d) (?P<level>ERROR|WARN |INFO |DEBUG) (?P<msg>.*?)\s*$"
FIBER = r"^\[(?P<ip>[^\]]*)\]:(?P<port>\d+)\s+(?P<status>\d{3})\s+-\s+(?P<method>[A-Z]+)\s+(?P<path>\S+)"
JSON = r'^\{"time":"[^"]*","level":"[A-Z]+","msg":'
GRPC = r"^GRPC\((?P<model>.+)-(?P<addr>[\w.\[\]:]+:\d+)\): (?:stderr|stdout) (?P<line>.*)$"
LEVELS = MappingProxyType({"TRC": "DEBUG", "DBG": "DEBUG", "INF": "INFO", "WRN": "WARNING", "ERR": "ERROR",
                           "FTL": "CRITICAL", "PNC": "CRITICAL", "???": "INFO", "ERROR": "ERROR", "WARN": "WARNING",
                           "INFO": "INFO", "DEBUG": "DEBUG"})
WORDS = ("LocalAI", "local-ai", "localai", "GRPC(", "Loads OK", "[llama-cpp]", "with backend")


def _field(name: str, value: str = r"[^\s\"]+") -> str:
    """A field of a zerolog, xlog or slog line: `name=value` or `name="value"`."""
    return rf'(?:^|\s){name}="?({value})"?(?:\s|$)'


class LocalAILog(Source):
    __slots__ = ()
    name = "localai-log"
    origin = "localai"
    server = True
    local_time = True
    line_pattern = (r"^(?:\d{1,2}:\d\d(?:AM|PM)|<nil>) (?:TRC|DBG|INF|WRN|ERR|FTL|PNC) |^[A-Z][a-z]{2} \d\d \d\d:\d\d:\d\d "
                    r"(?:ERROR|WARN |INFO |DEBUG) |^time=\S+ level=[A-Z]+ |^\[[^\]]*\]:\d+\s+\d{3}\s+-\s+[A-Z]+\s|" + JSON)
    notable = (r"(?i)\b(?:error|critical|fatal|exception|warning|traceback|failed)\b| (?:WRN|ERR|FTL|PNC) |"
               r"^[A-Z][a-z]{2} \d\d \d\d:\d\d:\d\d (?:ERROR|WARN) | level=(?:WARN|ERROR)|\"level\":\"(?:WARN|ERROR)\"|"
               r"status=[1345]\d\d|\]:\d+\s+[1345]\d\d\s|"
               r"API is listening|is started and running|LocalAI version|Loading model|Starting LocalAI|n_ctx_slot|"
               r"n_ctx +=|Loads OK")
    samples = (
        "1:59PM INF Starting LocalAI using 4 threads, with models path: /build/models",
        "1:59PM INF LocalAI API is listening! Please connect to the endpoint for API documentation. endpoint=http://0.0.0.0:8080",
        '2:03PM ERR Server error error="could not load model: rpc error: code = Unavailable desc = error reading from server: '
        'EOF" ip=172.17.0.1 latency=2.51s method=POST status=500 url=/v1/chat/completions',
        'Dec 21 19:33:14 INFO  LocalAI is started and running address=":8080" ',
        'Dec 21 19:34:02 INFO  HTTP request method="POST" path="/v1/embeddings" status=500 ',
    )

    def sniff(self, head: list[str]) -> float:
        lines = [h for h in head if h.strip()]
        if not lines:
            return 0.0
        hits = head_count(lines, ZEROLOG, XLOG, FIBER)
        slog = head_count(lines, SLOG)
        if not hits and not slog:
            return 0.0
        words = any(w in h for h in lines for w in WORDS)
        if not words:
            return 0.0
        return 0.93 if hits else 0.9

    def parse_rows(self, kept: pl.DataFrame) -> pl.DataFrame:
        raw = pl.col("raw")
        df = kept.with_columns(
            raw.str.extract_groups(ZEROLOG).alias("_z"), raw.str.extract_groups(XLOG).alias("_x"),
            raw.str.extract_groups(SLOG).alias("_s"), raw.str.extract_groups(FIBER).alias("_f"),
        ).unnest("_z", "_x", "_s", "_f", separator="__")
        is_z = pl.col("_z__level").is_not_null()
        is_x = pl.col("_x__level").is_not_null()
        is_s = pl.col("_s__level").is_not_null()
        is_f = pl.col("_f__status").is_not_null()
        is_j = raw.str.contains(JSON)
        body = (pl.when(is_z).then(pl.col("_z__msg")).when(is_x).then(pl.col("_x__msg"))
                .when(is_s).then(pl.concat_str([unquote(pl.col("_s__msg")), pl.col("_s__attrs")], separator=" ", ignore_nulls=True))
                .when(is_j).then(raw.str.json_path_match("$.msg")))
        grpc = body.str.extract_groups(GRPC)
        message = pl.coalesce(body, raw)
        level = pl.coalesce(pl.col("_z__level"), pl.col("_x__level").str.strip_chars(), pl.col("_s__level"),
                            pl.when(is_j).then(raw.str.json_path_match("$.level")))
        level = level.replace_strict(dict(LEVELS), default="INFO")
        status = pl.coalesce(pl.col("_f__status"), message.str.extract(_field("status", r"\d{3}"), 1)).cast(pl.Int64)
        # a request line: fiberzerolog's (Success / Client error / Server error), xlog's or slog's `HTTP request`, fiber's own
        is_http = is_f | (status.is_not_null() & message.str.contains(r"^(?:Success|Client error|Server error|HTTP request)\b"))
        field_error = message.str.extract(r'(?:^|\s)error="((?:[^"\\]|\\.)*)"', 1).str.replace_all(r'\\(["\\])', "$1")
        df = df.with_columns(
            message.alias("message"),
            message.alias("body"),
            pl.when(is_http).then(pl.lit("http")).when(is_z | is_x | is_s | is_j).then(pl.lit("log")).alias("kind"),
            pl.when(is_http & ~is_z & ~is_x & ~is_s).then(pl.lit("INFO")).when(is_z | is_x | is_s | is_j | is_http)
            .then(level).alias("level"),
            pl.coalesce(pl.col("_z__ts"), pl.col("_s__ts"), pl.when(is_x).then(journal_stamp(pl.col("_x__ts")))).alias("ts_text"),
            slog_ts(pl.col("_s__ts")).alias("ts"),
            pl.when(grpc.struct.field("model").is_not_null()).then(pl.lit("GRPC ") + grpc.struct.field("model")).alias("proc"),
            pl.lit("").alias("key"),
            pl.when(is_http).then(pl.coalesce(pl.col("_f__method"), message.str.extract(_field("method", r"[A-Z]+"), 1))).alias("http_method"),
            pl.when(is_http).then(pl.coalesce(pl.col("_f__path"), message.str.extract(_field("url"), 1),
                                              message.str.extract(_field("path"), 1))).alias("http_path"),
            pl.when(is_http).then(status).alias("http_status"),
            pl.when(is_http).then(pl.coalesce(pl.col("_f__ip"), message.str.extract(_field("ip"), 1))).alias("http_client"),
            pl.when(is_http).then(go_duration_ms(message.str.extract(_field("latency"), 1))).alias("latency_ms"),
            pl.when(is_http).then(field_error).alias("resp_error"),
            grpc.struct.field("line").alias("_inner"),
        )
        df = self.facts(df)
        return df.drop([c for c in df.columns if c.startswith("_")])

    @staticmethod
    def facts(df: pl.DataFrame) -> pl.DataFrame:
        m = pl.col("message")
        inner = pl.col("_inner")
        listen = pl.coalesce(m.str.extract(r"\bAPI is listening!.*\bendpoint=\S+?:(\d+)\b", 1),
                             m.str.extract(r'^LocalAI is started and running address="?[^"\s]*?:(\d+)"?', 1)).cast(pl.Int64)
        version = pl.coalesce(m.str.extract(r"^LocalAI version: (v?\d[\w.+-]*)", 1),
                              m.str.extract(r'^LocalAI version version="?(v?\d[\w.+-]*)', 1))
        loading = m.str.extract(r"^Loading model '([^']+)' with backend", 1)
        ready = m.str.contains(r"^LocalAI is started and running|^LocalAI API is listening!")
        context = pl.coalesce(inner.str.extract(r'"n_ctx_slot":(\d+)', 1),
                              inner.str.extract(r"^(?:llama_new_context_with_model|llama_init_from_model|llama_context): n_ctx_per_seq += (\d+)", 1),
                              inner.str.extract(r"\bnew slot,? n_ctx(?:_slot)? = (\d+)", 1),
                              inner.str.extract(r"^(?:llama_new_context_with_model|llama_init_from_model|llama_context): n_ctx += (\d+)", 1),
                              ).cast(pl.Int64)
        fact = (pl.when(listen.is_not_null()).then(pl.lit("listen"))
                .when(version.is_not_null()).then(pl.lit("version"))
                .when(ready).then(pl.lit("ready"))
                .when(loading.is_not_null()).then(pl.lit("loading"))
                .when(context.is_not_null()).then(pl.lit("max_model_len")))
        return df.with_columns(
            fact.alias("fact"),
            pl.when(fact.is_not_null()).then(pl.lit("localai")).alias("software"),
            version.alias("software_version"),
            listen.alias("listen_port"),
            loading.alias("model_path"),
            context.alias("max_model_len"),
            pl.when(fact.is_not_null()).then(pl.lit("fact")).otherwise(pl.col("kind")).alias("kind"),
        )
