"""Ollama's server log: `ollama serve` on a terminal, `journalctl -u ollama`, `docker logs ollama`
(ollama/ollama, read at v0.1.32, v0.3.12, v0.5.7, v0.9.0, v0.12.0 and main after v0.32.15).

Ollama logs through Go's log/slog text handler with the caller's file (server/routes.go `Serve`;
logutil/logutil.go from v0.9, which keeps the base name of the file):

    time=2024-04-18T11:21:22.071+05:30 level=WARN source=server.go:51 msg="..." key=value ...

(RFC 3339 with milliseconds and the writer's zone; `msg` quoted when it holds a space, `WARN`
for warnings). The first line of some versions is written before that handler is set, by Go's
default logger: `2025/02/02 09:23:09 routes.go:1187: INFO server config env="map[...]"` (0.3 to 0.9).
gin writes one access line per request, in local time with no zone (gin's `defaultLogFormatter`):

    [GIN] 2024/11/04 - 22:02:56 | 400 |      5.3135ms |       127.0.0.1 | POST     "/api/embed"

and `[GIN-debug]` route lines at start. The runner Ollama starts for a model writes to the same
stream, so llama.cpp's own lines come through as they are (`llama_model_loader: ...`,
`llm_load_print_meta: ...`, `llama_new_context_with_model: n_ctx = 8192`, `llama_context: n_ctx
= 4096`; before 0.2 the C++ server's JSON lines `{"function":"...","level":"INFO",...}`), and
so do Go panics and the CLI's own `Error: listen tcp 127.0.0.1:11434: bind: address already in
use`. The journal puts `Apr 18 11:20:50 host ollama[38865]: ` before every line; Docker Desktop
a `2025-03-05 08:58:54 ` stamp; compose `ollama-1  | `. Those prefixes are taken off.

Times: slog stamps carry their zone and are moved to UTC; gin's and the default logger's are
local, moved by the zone of the nearest slog stamp of the same log when there is one (else they
stay local, for --tz). Lines with only the journal's year-less stamp take it as `MM-DD HH:MM:SS`.

Facts: `Listening on 127.0.0.1:11434 (version 0.1.32)` (listen port, version); the `server config`
line (OLLAMA_HOST: the host and port it binds, OLLAMA_CONTEXT_LENGTH; OLLAMA_HOST and OLLAMA_ORIGINS
also as `env` rows of that line); `starting llama server cmd="... --model <blob> --ctx-size 8192
... --parallel 4"` (loading: the model file, and the context per request, ctx-size / parallel);
the runner's `load request="{... Parallel:1 ... KvSize:4096 ...}"`, `vram-based default context
... default_num_ctx=4096`, and llama.cpp's `n_ctx` / `n_ctx_per_seq` / `n_ctx_slot` (the context
per request, as max_model_len); `llama runner started in 2.51 seconds` (ready). Ollama serves
the models it has pulled; their names are not in its log, so no served names are stated.
"""

from __future__ import annotations

from types import MappingProxyType

import polars as pl

from emblens.formats.base import Source, head_count, head_without

# what the journal, Docker Desktop or compose put before a line
WRAP = (r"^(?:(?P<jts>[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d) \S+ [\w.@/-]+\[\d+\]: "
        r"|(?P<dts>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) +"
        r"|[\w.-]+\s+\| )?")
# the lines only Ollama writes (after a journal, stamp or compose prefix): its slog lines, gin's access
# lines, and the older Go `log` lines
OWN = (r"^time=\d{4}-\d\d-\d\dT\S+ level=[A-Z]+ source=[\w.-]+\.go:\d+ msg=|^\[GIN\] \d{4}/\d\d/\d\d - "
       r"|^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d [\w.-]+\.go:\d+: (?:DEBUG|INFO|WARN|ERROR) "
       r"|^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d routes\.go:\d+: Listening on ")
JOURNAL = r"^[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d \S+ [\w.@/-]+\[\d+\]: "
# Go's slog text handler; `source` is the file's base name in Ollama (a full path elsewhere)
SLOG = (r'^time=(?P<ts>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d)) level=(?P<level>[A-Z]+(?:[+-]\d+)?) '
        r'(?:source=(?P<src>\S+) )?msg=(?P<msg>"(?:[^"\\]|\\.)*"|\S*)(?: (?P<attrs>.*))?$')
# Go's default logger (log.Lshortfile) writing a slog record: `2025/02/02 09:23:09 routes.go:1187: INFO msg attrs`;
# before slog (to v0.1.21) every line was log.Printf's, with no level: `2023/12/05 10:01:02 routes.go:787: Listening on …`
GODEF = (r"^(?P<ts>\d{4}/\d\d/\d\d \d\d:\d\d:\d\d) (?:(?P<src>[\w.-]+\.go:\d+): )?"
         r"(?:(?P<level>DEBUG|INFO|WARN|ERROR) )?(?P<msg>.*)$")
GIN = (r'^\[GIN\] (?P<d>\d{4}/\d\d/\d\d) - (?P<t>\d\d:\d\d:\d\d) \| +(?P<status>\d{3}) \| +(?P<lat>\S+) \| +'
       r'(?P<client>\S*) \| +(?P<method>[A-Z]+) +"(?P<path>[^"]*)"')
GIN_DEBUG = r"^\[GIN-debug\] "
# llama.cpp's lines (`func: message`), its old server's JSON lines, CUDA's and the GPU probe's
RUNNER = r'^(?:[a-z_][\w.]*: |\{"(?:function|tid|timestamp|level)":|ggml_\w+|CUDA error|  Device \d+: )'
ERROR_LINE = r"^(?:Error: |panic: |fatal error: |SIGSEGV|SIGABRT)"
ERROR_WORDS = r"(?i)\b(?:error|failed|failure|exception|abort(?:ed)?|panic|out of memory|not enough memory)\b"
WARN_WORDS = r"(?i)\bwarn(?:ing)?\b"
MONTHS = MappingProxyType({m: f"{i:02d}" for i, m in enumerate(
    ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1)})

LISTEN = r"^Listening on (?P<addr>\S+) \(version (?P<ver>[^)\s]+)\)"
CONFIG = r"^server config env="
HOST_VALUE = r"\bOLLAMA_HOST:(\S*)"
ORIGINS_VALUE = r"\bOLLAMA_ORIGINS:(\[[^\]]*\]|\S*)"
HOST_PARTS = r"^(?:[a-z]+://)?(?P<host>\[[^\]]*\]|[^:/\s\]]*)(?::(?P<port>\d+))?"
CONTEXT_ENV = r"\bOLLAMA_CONTEXT_LENGTH:(\d+)"
STARTING = r'^(?:starting llama server|starting runner|starting llama-server) cmd='
LOADING = r"^loading model\b|^loading model via llama-server\b"
LOAD_REQUEST = r"^load request=.*\bKvSize:(\d+)"
READY = r"^(?:llama runner|llama-server) started in [\d.]+ seconds"
DEFAULT_CTX = r"^vram-based default context\b.*\bdefault_num_ctx=(\d+)"
N_CTX = r"^(?:llama_new_context_with_model|llama_init_from_model|llama_context): n_ctx += (\d+)"
N_CTX_SEQ = r"^(?:llama_new_context_with_model|llama_init_from_model|llama_context): n_ctx_per_seq += (\d+)|\"n_ctx_slot\":(\d+)"

FACT_LINES = (r'msg="?(?:server config|Listening on|starting llama server|starting runner|starting llama-server|load request|'
              r'loading model|vram-based default context|llama runner started|llama-server started)|'
              r"\.go:\d+: INFO server config|\.go:\d+: Listening on|(?:llama_new_context_with_model|llama_init_from_model|llama_context): n_ctx|\"n_ctx_slot\"|"
              r"msg=load request=")


def unquote(expr: pl.Expr) -> pl.Expr:
    """A Go `%q` value as its text (a bare value as it is)."""
    quoted = expr.str.starts_with('"') & expr.str.ends_with('"') & (expr.str.len_chars() >= 2)
    inner = expr.str.slice(1, expr.str.len_chars() - 2).str.replace_all(r'\\(["\\])', "$1").str.replace_all(r"\\n", " ")
    return pl.when(quoted).then(inner).otherwise(expr)


def slog_ts(text: pl.Expr) -> pl.Expr:
    """An RFC 3339 stamp with its zone as naive UTC."""
    return (text.str.replace(r"(\.\d{6})\d+", "$1").str.replace(r"Z$", "+00:00")
            .str.to_datetime("%Y-%m-%dT%H:%M:%S%.f%:z", strict=False, time_zone="UTC")
            .dt.replace_time_zone(None).cast(pl.Datetime("us")))


def slog_offset(text: pl.Expr) -> pl.Expr:
    """The zone of an RFC 3339 stamp, in minutes east of UTC."""
    m = text.str.extract_groups(r"(?P<sign>[+-])(?P<h>\d\d):(?P<m>\d\d)$")
    minutes = m.struct.field("h").cast(pl.Int64) * 60 + m.struct.field("m").cast(pl.Int64)
    return (pl.when(text.str.ends_with("Z")).then(pl.lit(0, dtype=pl.Int64))
            .when(m.struct.field("sign") == "-").then(-minutes).otherwise(minutes))


def go_duration_ms(text: pl.Expr) -> pl.Expr:
    """A Go duration as gin prints it (`5.3135ms`, `313.555µs`, `24.154367033s`, `1m2s`) in milliseconds."""
    single = text.str.extract_groups(r"^(?P<n>[\d.]+)(?P<u>ns|µs|us|ms|s)$")
    unit = single.struct.field("u").replace_strict({"ns": 1e-6, "µs": 1e-3, "us": 1e-3, "ms": 1.0, "s": 1000.0},
                                                   default=None, return_dtype=pl.Float64)
    long = text.str.extract_groups(r"^(?:(?P<h>\d+)h)?(?:(?P<m>\d+)m)?(?:(?P<s>[\d.]+)s)?$")
    total = (long.struct.field("h").cast(pl.Float64).fill_null(0) * 3_600_000
             + long.struct.field("m").cast(pl.Float64).fill_null(0) * 60_000
             + long.struct.field("s").cast(pl.Float64).fill_null(0) * 1000)
    return pl.coalesce(single.struct.field("n").cast(pl.Float64, strict=False) * unit,
                       pl.when(text.str.contains(r"^\d+[hm]")).then(total))


def journal_stamp(text: pl.Expr) -> pl.Expr:
    """The journal's `Apr 18 11:20:50` as `04-18 11:20:50` (year-less, as vLLM writes its stamps)."""
    return pl.concat_str([text.str.slice(0, 3).replace_strict(dict(MONTHS), default=None), pl.lit("-"),
                          text.str.slice(4, 2).str.strip_chars().str.zfill(2), pl.lit(" "), text.str.slice(7)])


class OllamaLog(Source):
    __slots__ = ()
    name = "ollama-log"
    origin = "ollama"
    server = True
    local_time = True
    line_pattern = (JOURNAL + r"|^(?:\d{4}-\d\d-\d\d \d\d:\d\d:\d\d +|[\w.-]+\s+\| )?"
                    r'(?:time=\d{4}-\d\d-\d\dT\S+ level=|\[GIN(?:-debug)?\] |\d{4}/\d\d/\d\d \d\d:\d\d:\d\d |[a-z_][\w.]*: |'
                    r'\{"(?:function|tid|timestamp|level)":|Error: |panic: )')
    notable = (r"(?i)\b(?:error|critical|fatal|exception|warning|traceback|failed|panic)\b| level=(?:WARN|ERROR)|"
               r"\.go:\d+: (?:WARN|ERROR) |\[GIN\] [^|]*\| [45]\d\d \||Error: |" + FACT_LINES)
    samples = (
        'time=2024-04-18T11:21:22.071+05:30 level=INFO source=routes.go:1143 msg="Listening on 127.0.0.1:11434 (version 0.1.32)"',
        "2023/12/05 10:01:02 routes.go:787: Listening on 127.0.0.1:11434 (version 0.1.13)",
        '2025/02/02 09:23:09 routes.go:1187: INFO server config env="map[CUDA_VISIBLE_DEVICES: OLLAMA_HOST:http://127.0.0.1:11434 '
        'OLLAMA_ORIGINS:[http://localhost https://localhost] OLLAMA_SCHED_SPREAD:false]"',
        'time=2024-08-26T09:53:44.346Z level=ERROR source=sched.go:451 msg="error loading llama server" '
        'error="llama runner process has terminated: signal: terminated"',
        '[GIN] 2024/08/26 - 09:53:44 | 500 | 24.154367033s |       127.0.0.1 | POST     "/api/chat"',
        "llama_new_context_with_model: n_ctx      = 8192",
        "Jul 02 10:03:39 dev-MS-7D25 ollama[3813757]: time=2024-07-02T10:03:39.049-05:00 level=INFO source=images.go:730 "
        'msg="total blobs: 0"',
    )

    def sniff(self, head: list[str]) -> float:
        lines = [h for h in head if h.strip()]
        if not lines:
            return 0.0
        hits = head_count(head_without(lines, WRAP), OWN)
        if not hits:
            return 0.0
        words = any("ollama" in h.lower() or "OLLAMA_" in h for h in lines)
        return 0.97 if words or hits >= 2 else 0.3 + 0.4 * hits / len(lines)

    def parse_rows(self, kept: pl.DataFrame) -> pl.DataFrame:
        raw = pl.col("raw")
        df = kept.with_columns(raw.str.extract_groups(WRAP).alias("_w"), raw.str.replace(WRAP, "").alias("_rest"))
        rest = pl.col("_rest")
        df = df.with_columns(
            rest.str.extract_groups(SLOG).alias("_s"),
            rest.str.extract_groups(GODEF).alias("_g"),
            rest.str.extract_groups(GIN).alias("_h"),
        ).unnest("_w", "_s", "_g", "_h", separator="__")
        is_slog = pl.col("_s__level").is_not_null()
        is_godef = (pl.col("_g__level").is_not_null() | pl.col("_g__src").is_not_null()) & ~is_slog
        is_gin = pl.col("_h__status").is_not_null()
        is_gin_debug = rest.str.contains(GIN_DEBUG)
        is_json = rest.str.starts_with("{") & rest.str.contains(r'"msg":')
        is_error = rest.str.contains(ERROR_LINE)
        is_runner = rest.str.contains(RUNNER) & ~is_slog & ~is_godef & ~is_gin
        journaled = pl.col("_w__jts").is_not_null()
        known = is_slog | is_godef | is_gin | is_gin_debug | is_json | is_error | is_runner | journaled

        slog_msg = pl.concat_str([unquote(pl.col("_s__msg")), pl.col("_s__attrs")], separator=" ", ignore_nulls=True)
        json_msg = pl.concat_str([rest.str.json_path_match("$.msg"), rest.str.json_path_match("$.error")],
                                 separator=": ", ignore_nulls=True)
        message = (pl.when(is_slog).then(slog_msg)
                   .when(is_godef).then(pl.col("_g__msg"))
                   .when(is_json).then(json_msg)
                   .otherwise(rest))
        word_level = (pl.when(rest.str.contains(ERROR_WORDS)).then(pl.lit("ERROR"))
                      .when(rest.str.contains(WARN_WORDS)).then(pl.lit("WARNING")))
        level = (pl.when(is_slog).then(pl.col("_s__level"))
                 .when(is_godef).then(pl.coalesce(pl.col("_g__level"), word_level, pl.lit("INFO")))
                 .when(is_json).then(rest.str.json_path_match("$.level"))
                 .when(is_gin).then(pl.lit("INFO"))
                 .when(is_gin_debug).then(pl.lit("DEBUG"))
                 .when(is_error).then(pl.lit("ERROR"))
                 .when(is_runner | journaled).then(word_level.fill_null(pl.lit("INFO"))))
        level = (pl.when(level.str.starts_with("WARN")).then(pl.lit("WARNING"))
                 .when(level.str.starts_with("ERR")).then(pl.lit("ERROR"))
                 .when(level.str.starts_with("DEBUG") | level.is_in(["TRACE", "VERB"])).then(pl.lit("DEBUG"))
                 .when(level.is_in(["INFO", "ERROR"])).then(level)
                 .when(level.is_not_null()).then(pl.lit("INFO")))
        gin_text = pl.concat_str([pl.col("_h__d"), pl.lit(" - "), pl.col("_h__t")])
        gin_local = pl.concat_str([pl.col("_h__d"), pl.lit(" "), pl.col("_h__t")]).str.to_datetime("%Y/%m/%d %H:%M:%S", strict=False)
        godef_local = pl.col("_g__ts").str.to_datetime("%Y/%m/%d %H:%M:%S", strict=False)
        desktop_local = pl.col("_w__dts").str.to_datetime("%Y-%m-%d %H:%M:%S", strict=False)
        df = df.with_columns(
            message.alias("message"),
            rest.alias("body"),
            level.alias("level"),
            pl.when(is_gin).then(pl.lit("http")).when(known).then(pl.lit("log")).alias("kind"),
            pl.coalesce(pl.col("_s__ts"), pl.col("_g__ts"), pl.when(is_gin).then(gin_text), pl.col("_w__dts"),
                        pl.when(journaled).then(journal_stamp(pl.col("_w__jts")))).alias("ts_text"),
            slog_ts(pl.col("_s__ts")).alias("_utc"),
            pl.coalesce(godef_local, gin_local, desktop_local).cast(pl.Datetime("us")).alias("_local"),
            slog_offset(pl.col("_s__ts")).alias("_off"),
            pl.coalesce(pl.col("_s__src"), pl.col("_g__src")).alias("logger"),
            pl.when(is_runner | is_json).then(pl.lit("runner")).alias("proc"),
            pl.lit("").alias("key"),
            pl.col("_h__method").alias("http_method"),
            pl.col("_h__path").alias("http_path"),
            pl.col("_h__status").cast(pl.Int64).alias("http_status"),
            pl.col("_h__client").alias("http_client"),
            go_duration_ms(pl.col("_h__lat")).alias("latency_ms"),
        )
        # local stamps (gin's, the default logger's) moved by the zone the slog stamps of this log carry
        offset = pl.col("_off").forward_fill().backward_fill()
        df = df.with_columns(pl.coalesce(
            pl.col("_utc"),
            pl.when(offset.is_not_null()).then(pl.col("_local") - pl.duration(minutes=offset)).otherwise(pl.col("_local")),
        ).alias("ts"))
        df = self.facts(df)
        return df.drop([c for c in df.columns if c.startswith("_")])

    @staticmethod
    def facts(df: pl.DataFrame) -> pl.DataFrame:
        """Fact columns of the lines that state them, and `env` rows for OLLAMA_HOST and OLLAMA_ORIGINS."""
        m = pl.col("message")
        listen = m.str.extract_groups(LISTEN)
        is_config = m.str.contains(CONFIG)
        host_value = pl.when(is_config).then(m.str.extract(HOST_VALUE, 1))
        host = host_value.str.extract_groups(HOST_PARTS)
        starting = m.str.contains(STARTING)
        parallel = pl.when(starting).then(m.str.extract(r"--parallel (\d+)", 1).cast(pl.Int64).fill_null(1))
        ctx_size = pl.when(starting).then(m.str.extract(r"--ctx-size (\d+)", 1).cast(pl.Int64))
        request = m.str.contains(LOAD_REQUEST)
        kv = pl.when(request).then(m.str.extract(LOAD_REQUEST, 1).cast(pl.Int64))
        kv_parallel = pl.when(request).then(m.str.extract(r"\bParallel:(\d+)", 1).cast(pl.Int64).fill_null(1))
        df = df.with_columns(parallel.alias("_par"))
        # the total context of the runner's llama.cpp is divided among the parallel requests of the last start
        par_before = pl.col("_par").forward_fill().fill_null(1)
        n_ctx = m.str.extract(N_CTX, 1).cast(pl.Int64)
        per_seq = pl.coalesce(m.str.extract(N_CTX_SEQ, 1), m.str.extract(N_CTX_SEQ, 2)).cast(pl.Int64)
        env_ctx = m.str.extract(CONTEXT_ENV, 1).cast(pl.Int64)
        context = pl.coalesce(
            pl.when(is_config & (env_ctx > 0)).then(env_ctx),
            pl.when(ctx_size.is_not_null()).then(ctx_size // pl.col("_par").clip(1)),
            pl.when(kv.is_not_null()).then(kv // kv_parallel.clip(1)),
            m.str.extract(DEFAULT_CTX, 1).cast(pl.Int64),
            per_seq,
            pl.when(n_ctx.is_not_null()).then(n_ctx // par_before.clip(1)),
        )
        is_listen = listen.struct.field("ver").is_not_null()
        fact = (pl.when(is_config).then(pl.lit("args"))
                .when(is_listen).then(pl.lit("listen"))
                .when(starting | m.str.contains(LOADING)).then(pl.lit("loading"))
                .when(m.str.contains(READY)).then(pl.lit("ready"))
                .when(context.is_not_null()).then(pl.lit("max_model_len")))
        df = df.with_columns(
            fact.alias("fact"),
            pl.when(fact.is_not_null()).then(pl.lit("ollama")).alias("software"),
            pl.when(is_listen).then(listen.struct.field("ver")).alias("software_version"),
            pl.coalesce(pl.when(is_listen).then(listen.struct.field("addr").str.extract(r":(\d+)$", 1).cast(pl.Int64)),
                        host.struct.field("port").cast(pl.Int64)).alias("listen_port"),
            pl.when(is_config).then(host.struct.field("host").str.strip_chars("[]").replace("", None)).alias("command_host"),
            pl.when(starting).then(m.str.extract(r"--model (\S+)", 1).str.strip_chars('"')).alias("model_path"),
            context.alias("max_model_len"),
            pl.when(fact.is_not_null()).then(pl.lit("fact")).otherwise(pl.col("kind")).alias("kind"),
        )
        config = df.filter(pl.col("fact") == "args")
        if config.height == 0:
            return df
        env = []
        for name, pattern in (("OLLAMA_HOST", HOST_VALUE), ("OLLAMA_ORIGINS", ORIGINS_VALUE)):
            rows = config.with_columns(pl.lit("env").alias("fact"), pl.lit(name).alias("env_name"),
                                       pl.col("message").str.extract(pattern, 1).alias("env_value"),
                                       *(pl.lit(None, dtype=df.schema[c]).alias(c) for c in
                                         ("listen_port", "command_host", "max_model_len", "software_version")))
            env.append(rows.filter(pl.col("env_value").is_not_null() & (pl.col("env_value") != "")))
        return pl.concat([df, *env], how="diagonal_relaxed").sort("line", maintain_order=True)
