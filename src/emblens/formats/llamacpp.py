"""llama.cpp's HTTP server (`llama-server`, formerly `server`; also forks that keep its log, such
as llama-box under GPUStack). Read in ggerganov/llama.cpp at b2259, b3400 and b4747
(examples/server/server.cpp, examples/server/utils.hpp, common/log.cpp, common/common.cpp), and in
the 2026 ggml-org/llama.cpp tools/server sources (server-context.cpp, server-http.cpp), through
the code index.

Since the logging rewrite (about b3800, September 2024) every line is `LOG_INF`/`LOG_WRN`/... text
with the calling area and function, the function cut or padded to 12 characters (`%12.*s`):

    srv  log_server_r: request: POST /v1/chat/completions 127.0.0.1 500
    srv    send_error: task id = 0, error: the request exceeds the available context size. try ...
    slot launch_slot_: id  0 | task 0 | processing task
    slot         init: id  0 | task -1 | new slot n_ctx_slot = 4096        (b4747; later `new slot, n_ctx = 4096`)
    main: server is listening on http://127.0.0.1:8080 - starting the main loop
    main: HTTP server is listening, hostname: 127.0.0.1, port: 8080, http threads: 15
    srv    load_model: loading model '/models/qwen2.5-7b-instruct-q4_k_m.gguf'
    llama_context: n_ctx         = 4096          (llama_new_context_with_model: ... before 2025)
    build: 4747 (c392e509) with cc (GCC) 13.2.0 for x86_64-linux-gnu

With `--log-prefix` a level letter leads (`I `, `W `, `E `, `D `), with `--log-timestamps` also the
time since start (`0.17.040.446 E srv ...`; llama-box always writes both); that is not a time of
day, so such lines carry no time. Without the prefix the level is read from the words.

Before that (b2259 to about b3780) the server logged JSON objects, a line each, keys in this order
(`server_log`, utils.hpp; `--log-format text` wrote `INFO [ main] HTTP server listening |
hostname="127.0.0.1" port="8080" ...` instead; older builds and Ollama's copy sorted the keys):

    {"tid":"140","timestamp":1713419502,"level":"INFO","function":"main","line":3396,"msg":"HTTP server listening","hostname":"127.0.0.1","port":"8080","n_threads_http":"7"}
    {"tid":"140","timestamp":1713419510,"level":"INFO","function":"log_server_request","line":2737,"msg":"request","remote_addr":"127.0.0.1","remote_port":44006,"status":500,"method":"POST","path":"/v1/chat/completions","params":{}}
    {"tid":"140","timestamp":1713419510,"level":"ERR","function":"send_error","line":1368,"msg":"task error","id_multi":-1,"id_task":7,"error":"input is too large to process. increase the physical batch size"}

`timestamp` is Unix time (UTC). Facts: the listen port, the context per request (`n_ctx_slot`,
`n_ctx_per_seq`, else `n_ctx`) as max_model_len, the model file (`loading model '...'`, the GGUF
loader's `... tensors from <path>`), the build as version (`b4747`), loading (`main: loading
model`, `load_model: loading model`) and ready (`main: model loaded`, the old `model loaded`),
and embedding mode where the log says so (`embeddings enabled with n_batch (2048) > n_ubatch
(512)`: `command_task` embedding).
"""

from __future__ import annotations

import polars as pl

from emblens.formats.base import Source, head_rx, head_without

PREFIX = r"^(?:(?P<rel>\d+\.\d\d\.\d{3}\.\d{3}) )?(?:(?P<lv>[IWED]) )?"
AREA = r"^(?P<area>srv|slot|que) +(?P<func>\w+): (?P<msg>.*)$"
FUNC = r"^(?P<func>[a-z_][\w.]*|system info): (?P<msg>.*)$"
SLOT = r"^id +(?P<slot>-?\d+) \| task (?P<task>-?\d+) \| (?P<msg>.*)$"
# (`done request: …` in the 2026 tools/server/server-http.cpp, SRV_INF)
ACCESS = r"^(?:done )?request: (?P<method>[A-Z]+) (?P<path>\S+) (?P<client>\S+) (?P<status>\d{3})$"
# llama-box (GPUStack's fork): `log_server_request: request 500: POST /v1/embeddings 192.168.50.4:6038`
ACCESS_BOX = r"^request (?P<status>\d{3}): (?P<method>[A-Z]+) (?P<path>\S+) (?P<client>\S+)$"
JSON = r'^\{"(?:tid|timestamp|level|function)":.*"msg":'
# the lines only llama-server writes (after the prefix): its areas, its start-up, the old server's `INFO [ func] … |`
OWN = (r"^(?:srv|slot|que) +\w+: |^main: (?:server is listening|HTTP server is listening|loading model|model loaded)"
       r"|^(?:INFO|WARN|ERR|VERB) \[ *\w+\] .* \| ")
OLD_TEXT = r"^(?P<level>INFO|WARN|ERR|VERB) \[ *(?P<func>\w+)\] (?P<msg>.*?) \| (?P<kv>.*)$"
ERROR_WORDS = (r"(?i)\berror\b|\bfailed\b|\bfailure\b|exceeds the available context|too large to process|"
               r"\bexception\b|\babort|out of memory|GGML_ASSERT")
WARN_WORDS = r"(?i)\bwarn(?:ing)?\b|\bnot supported\b|\bignor(?:e|ed|ing)\b"

LISTEN = (r"^(?:server is listening on (?:https?|unix)://[^\s]*?:(?P<p1>\d+)|HTTP server is listening, hostname: \S+, port: (?P<p2>\d+)"
          r"|HTTP server listening\b)")
MODEL = r"^loading model '(?P<m1>[^']+)'|\btensors from (?P<m2>\S+) \(version GGUF"
BUILD = r"^(?:build: (?P<b1>\d+) \(|build = (?P<b2>\d+) \()"
N_CTX = r"^(?:llama_new_context_with_model|llama_init_from_model|llama_context): n_ctx += (?P<n>\d+)"
N_SEQ = r"^(?:llama_new_context_with_model|llama_init_from_model|llama_context): n_ctx_per_seq += (?P<n>\d+)|\bnew slot,? n_ctx(?:_slot)? = (?P<s>\d+)"
READY = r"^model loaded$"
LOADING = r"^(?:loading model\b)"
EMBEDDING = r"\bembeddings enabled with n_batch\b"

FACT_LINES = (r"server is listening|HTTP server is listening|HTTP server listening|loading model|model loaded|"
              r"tensors from \S+ \(version GGUF|^(?:\S+ )?build(?: =|:) \d|n_ctx +=|n_ctx_per_seq|n_ctx_slot|new slot|"
              r'"build info"|build info|embeddings enabled')


def _kv(name: str, value: str = r"[^\"\s,}]*") -> str:
    """A key's value in the old JSON line (`"name":"v"`, `"name":5`) or its text form (`name="v"`, `name=5`)."""
    return rf'(?:"{name}":|\b{name}=)"?({value})'


class LlamaCppServerLog(Source):
    __slots__ = ()
    name = "llamacpp-server-log"
    origin = "llamacpp"
    server = True
    line_pattern = (r"^(?:\d+\.\d\d\.\d{3}\.\d{3} )?(?:[IWED] )?(?:(?:srv|slot|que) +\w+: |[a-z_][\w.]*: |system info: |"
                    r'\{"(?:tid|timestamp|level|function)":)|^(?:INFO|WARN|ERR|VERB) \[ *\w+\] ')
    notable = (r"(?i)\b(?:error|critical|fatal|exception|warning|failed|abort)\b|^(?:\S+ )?[WE] |"
               r'"level":"(?:ERR|WARN)"|^(?:ERR|WARN) \[|'
               r'request: [A-Z]+ \S+ \S+ [1345]\d\d$|request [1345]\d\d: |"status":[1345]\d\d|status=[1345]\d\d|'
               r"exceeds the available context|too large to process|not support|" + FACT_LINES)
    samples = (
        "main: server is listening on http://127.0.0.1:8080 - starting the main loop",
        "srv  log_server_r: request: POST /v1/chat/completions 127.0.0.1 500",
        "srv  log_server_r: done request: GET /v1/chat/completions/api/tags 127.0.0.1 404",
        "slot launch_slot_: id  0 | task 0 | processing task",
        "srv    send_error: task id = 0, error: the request exceeds the available context size. try increasing the "
        "context size or enable context shift",
        "llama_context: n_ctx         = 4096",
        '{"tid":"140215734527488","timestamp":1713419502,"level":"INFO","function":"main","line":3396,'
        '"msg":"HTTP server listening","hostname":"127.0.0.1","port":"8080","n_threads_http":"7"}',
    )

    def sniff(self, head: list[str]) -> float:
        lines = [h for h in head if h.strip()]
        if not lines:
            return 0.0
        own, json, field = head_rx(OWN), head_rx(JSON), head_rx(r'"(?:tid|function)":')
        rest = head_without(lines, PREFIX)
        hits = sum(1 for r in rest if own.search(r) or (json.search(r) and field.search(r)))
        if not hits:
            return 0.0
        words = any(w in h for h in lines for w in ("log_server_r", "llama-server", "update_slots", "launch_slot",
                                                    "n_ctx_slot", "send_error", "HTTP server listening", "llama_context"))
        return 0.9 if words or hits >= 2 else 0.3 + 0.4 * hits / len(lines)

    def parse_rows(self, kept: pl.DataFrame) -> pl.DataFrame:
        raw = pl.col("raw")
        df = kept.with_columns(raw.str.extract_groups(PREFIX).alias("_p"), raw.str.replace(PREFIX, "").alias("_rest"))
        rest = pl.col("_rest")
        df = df.with_columns(rest.str.extract_groups(AREA).alias("_a"), rest.str.extract_groups(OLD_TEXT).alias("_o"))
        df = df.unnest("_p", "_a", "_o", separator="__")
        is_area = pl.col("_a__area").is_not_null()
        is_json = rest.str.contains(JSON)
        is_old = pl.col("_o__level").is_not_null() & ~is_json
        func_msg = rest.str.extract_groups(FUNC)
        is_func = func_msg.struct.field("func").is_not_null() & ~is_area & ~is_json & ~is_old
        slot = pl.col("_a__msg").str.extract_groups(SLOT)
        body = (pl.when(is_area).then(pl.coalesce(slot.struct.field("msg"), pl.col("_a__msg")))
                .when(is_func).then(func_msg.struct.field("msg")))
        access = pl.coalesce(body.str.extract_groups(ACCESS), body.str.extract_groups(ACCESS_BOX))
        json_msg = rest.str.json_path_match("$.msg")
        json_error = rest.str.json_path_match("$.error")
        old_error = pl.col("_o__kv").str.extract(r'\berror="((?:[^"\\]|\\.)*)"', 1)
        old_msg = pl.when(is_json).then(json_msg).when(is_old).then(pl.col("_o__msg"))
        old_message = pl.concat_str([old_msg, pl.coalesce(pl.when(is_json).then(json_error), pl.when(is_old).then(old_error))],
                                    separator=": ", ignore_nulls=True)
        kv = pl.when(is_json | is_old).then(rest)
        status = pl.coalesce(access.struct.field("status").cast(pl.Int64),
                             pl.when(old_msg == "request").then(kv.str.extract(_kv("status", r"\d{3}"), 1).cast(pl.Int64)))
        is_http = status.is_not_null()
        # an old request line worded as the newer servers write it
        old_request = pl.concat_str([pl.lit("request: "), kv.str.extract(_kv("method", r"[A-Z]+"), 1), pl.lit(" "),
                                     kv.str.extract(_kv("path", r'[^"\s,}]+'), 1), pl.lit(" "),
                                     kv.str.extract(_kv("remote_addr", r'[^"\s,}]+'), 1), pl.lit(" "), status.cast(pl.String)])
        message = pl.coalesce(pl.when((is_json | is_old) & is_http).then(old_request),
                              pl.when(is_json | is_old).then(old_message), body, rest)
        letter = pl.col("_p__lv").replace_strict({"I": "INFO", "W": "WARNING", "E": "ERROR", "D": "DEBUG"}, default=None)
        old_level = pl.coalesce(pl.when(is_json).then(rest.str.json_path_match("$.level")), pl.col("_o__level"))
        old_level = old_level.replace_strict({"INFO": "INFO", "WARN": "WARNING", "WARNING": "WARNING", "ERR": "ERROR",
                                              "ERROR": "ERROR", "VERB": "DEBUG", "DEBUG": "DEBUG"}, default="INFO")
        inferred = (pl.when(message.str.contains(ERROR_WORDS)).then(pl.lit("ERROR"))
                    .when(message.str.contains(WARN_WORDS)).then(pl.lit("WARNING")).otherwise(pl.lit("INFO")))
        known = is_area | is_json | is_old | is_func | pl.col("_p__lv").is_not_null()
        epoch = pl.coalesce(pl.when(is_json).then(rest.str.json_path_match("$.timestamp")),
                            pl.when(is_old).then(pl.col("_o__kv").str.extract(r"\btimestamp=(\d+)", 1)))
        df = df.with_columns(
            message.alias("message"),
            rest.alias("body"),
            pl.when(is_http).then(pl.lit("http")).when(known).then(pl.lit("log")).alias("kind"),
            pl.when(is_http).then(pl.lit("INFO"))
            .when(known).then(pl.coalesce(letter, pl.when(is_json | is_old).then(old_level), inferred)).alias("level"),
            epoch.alias("ts_text"),
            pl.from_epoch(epoch.cast(pl.Int64, strict=False), time_unit="s").cast(pl.Datetime("us")).alias("ts"),
            pl.concat_str([pl.col("_a__area"), slot.struct.field("slot")], separator=" ").alias("proc"),
            pl.coalesce(pl.col("_a__func"), pl.when(is_json).then(rest.str.json_path_match("$.function")), pl.col("_o__func"),
                        pl.when(is_func).then(func_msg.struct.field("func"))).alias("logger"),
            pl.lit("").alias("key"),
            pl.coalesce(access.struct.field("method"), pl.when(is_http).then(kv.str.extract(_kv("method", r"[A-Z]+"), 1))).alias("http_method"),
            pl.coalesce(access.struct.field("path"), pl.when(is_http).then(kv.str.extract(_kv("path", r'[^"\s,}]+'), 1))).alias("http_path"),
            status.alias("http_status"),
            pl.coalesce(access.struct.field("client"),
                        pl.when(is_http).then(kv.str.extract(_kv("remote_addr", r'[^"\s,}]+'), 1))).alias("http_client"),
            kv.alias("_kv"),
        )
        df = self.facts(df)
        return df.drop([c for c in df.columns if c.startswith("_")])

    @staticmethod
    def facts(df: pl.DataFrame) -> pl.DataFrame:
        """Fact columns of the lines that state them (`message`, or the whole line for llama.cpp's own `func: ...` lines)."""
        m = pl.col("message")
        line = pl.col("body")
        kv = pl.col("_kv")
        listen = m.str.extract_groups(LISTEN)
        is_listen = m.str.contains(LISTEN)
        port = pl.coalesce(listen.struct.field("p1"), listen.struct.field("p2"),
                           pl.when(is_listen).then(kv.str.extract(_kv("port", r"\d+"), 1))).cast(pl.Int64)
        model = m.str.extract_groups(MODEL)
        model_path = pl.coalesce(model.struct.field("m1"), model.struct.field("m2"))
        build = line.str.extract_groups(BUILD)
        version = pl.coalesce(build.struct.field("b1"), build.struct.field("b2"),
                              pl.when(m.str.starts_with("build info")).then(kv.str.extract(_kv("build", r"\d+"), 1)))
        seq = line.str.extract_groups(N_SEQ)
        context = pl.coalesce(seq.struct.field("n"), seq.struct.field("s"),
                              pl.when(m.str.starts_with("new slot")).then(kv.str.extract(_kv("n_ctx_slot", r"\d+"), 1)),
                              line.str.extract(N_CTX, 1)).cast(pl.Int64)
        embedding = m.str.contains(EMBEDDING)
        fact = (pl.when(is_listen).then(pl.lit("listen"))
                .when(version.is_not_null()).then(pl.lit("version"))
                .when(embedding).then(pl.lit("args"))
                .when(m.str.contains(LOADING)).then(pl.lit("loading"))
                .when(m.str.contains(READY)).then(pl.lit("ready"))
                .when(context.is_not_null()).then(pl.lit("max_model_len"))
                .when(model_path.is_not_null()).then(pl.lit("loading")))
        return df.with_columns(
            fact.alias("fact"),
            pl.when(fact.is_not_null()).then(pl.lit("llamacpp")).alias("software"),
            pl.when(version.is_not_null()).then(pl.lit("b") + version).alias("software_version"),
            port.alias("listen_port"),
            model_path.alias("model_path"),
            context.alias("max_model_len"),
            pl.when(embedding).then(pl.lit("embedding")).alias("command_task"),
            pl.when(fact.is_not_null() & (pl.col("kind") != "http")).then(pl.lit("fact")).otherwise(pl.col("kind")).alias("kind"),
        )
