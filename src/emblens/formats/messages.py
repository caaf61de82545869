"""Messages any line may carry, whatever format holds it: PyTorch's out-of-memory message (CUDA and
ROCm alike), vLLM's start-up memory and KV-cache checks, the memory-share settings of vLLM and
SGLang, and the commands and names that say a container or a model server is involved. Each is
read once, here, into columns of the event table (`parse`, the last step of reading); the
combiners aggregate those columns and never read the text again.

Which lines mean "out of memory" is the business of the `gpu.oom` rule alone: these columns are
figures, filled wherever a line prints them.

    >>> mib("2.00 GiB"), mib("612.44 MiB"), mib("0 bytes")
    (2048.0, 612.44, 0.0)
"""

from __future__ import annotations

import json
import re

import polars as pl

from emblens.events.schema import SCHEMA
from emblens.formats.commands import CONTAINER_COMMAND, SERVER_COMMAND
from emblens.knowledge.upstream import Messages
from emblens.patterns.ascii import ascii_classes

SIZE = r"[\d.]+ (?:[KMGT]iB|bytes)"   # PyTorch prints "0 bytes" below 1 KiB
TORCH = re.compile(
    rf"Tried to allocate (?P<alloc>{SIZE})\. GPU (?P<gpu>\d+) has a total capacity of (?P<total>{SIZE}) of which "
    rf"(?P<free>{SIZE}) is free\."
)
TORCH_OLD = re.compile(
    rf"Tried to allocate (?P<alloc>{SIZE}) \(GPU (?P<gpu>\d+); (?P<total>{SIZE}) total capacity; "
    rf"(?P<allocated>{SIZE}) already allocated; (?P<free>{SIZE}) free; (?P<reserved_total>{SIZE}) reserved in total by PyTorch\)"
)
TORCH_PROC = re.compile(rf"Process (?P<pid>\d+) has (?P<mem>{SIZE}) memory in use")
TORCH_THIS = re.compile(rf"this process has (?P<this>{SIZE}) memory in use")
TORCH_RESERVED = re.compile(rf"(?P<reserved>{SIZE}) is reserved by PyTorch but unallocated")
TORCH_BY_PYTORCH = re.compile(rf"Of the allocated memory (?P<by>{SIZE}) is allocated by PyTorch")
KV_NEW = re.compile(
    r"max seq len \((?P<L>\d+)\), \((?P<need>[\d.]+) GiB KV cache is needed, which is larger than the available KV cache "
    r"memory \((?P<avail>[\d.]+) GiB\)\.(?: Based on the available memory, the estimated maximum model length is (?P<est>\d+))?"
)
# vLLM's report, at every start, of the memory left for the KV cache after the weights and the profiling run
KV_AVAIL = re.compile(r"Available KV cache memory: (?P<avail>-?[\d.]+) GiB")
KV_OLD = re.compile(r"max seq len \((?P<L>\d+)\) is larger than the maximum number of tokens that can be stored in KV cache \((?P<tokens>\d+)\)")
FREE_START = re.compile(
    r"Free memory on device (?:\S+ )?\((?P<free>[\d.]+)/(?P<total>[\d.]+) GiB\) on startup is less than desired GPU memory "
    r"utilization \((?P<util>[\d.]+), (?P<want>[\d.]+) GiB\)"
)
# one linear-time pattern for the lines that can hold any of the figures above
FIGURE_LINES = (r"Tried to allocate|KV cache is needed|stored in KV cache|Available KV cache memory: |Free memory on device|"
                r"mem_fraction_static'?\s*[:=]|--mem-fraction-static=")
# the server's argument line (`gpu_memory_utilization=0.9`, `'gpu_memory_utilization': 0.9`) or a pasted command (vLLM's
# parser reads `--gpu_memory_utilization` as `--gpu-memory-utilization`: FlexibleArgumentParser turns `_` into `-`)
UTIL = re.compile(r"(?:gpu_memory_utilization'?\s*[:=]|--gpu[-_]memory[-_]utilization[=\s])\s*(?P<v>\d+(?:\.\d+)?)")
# a share written as an argument (a keyword in code, a flag), not a log's report of it
SET_IN_CODE = (r"\b(?:gpu_memory_utilization|mem_fraction_static)\s*=\s*0?\.\d|"
               r"--(?:gpu-memory-utilization|mem-fraction-static)[=\s]+0?\.\d")
FRACTION = re.compile(r"(?:mem_fraction_static'?\s*[:=]|--mem-fraction-static[=\s])\s*(?P<v>\d+(?:\.\d+)?)")
# a stack frame of code under an image's working directory (Node's `at f (/app/…)`, Python's `File "/app/…"`,
# `/usr/src/app/`): the program that failed runs in a container
IMAGE_FRAME = r"(?:\(|\bat |File \")/(?:app|usr/src/app|opt/app-root/src)/[\w.@-]"
# a container: a docker run/compose command, compose log prefixes, host.docker.internal, kubectl, or a
# sentence that says the client runs in one ("AnythingLLM runs in Docker", "(via docker)", "inside the container")
CONTAINER = (CONTAINER_COMMAND + r"|^[\w.-]+-\d+\s+\| |kubectl "
             r"|(?i:\b(?:runs?|running|deployed|installed|started|hosted) (?:it |them )?(?:in|via|with|inside|on) (?:a |the )?docker\b"
             r"|\((?:via|in|using) docker\)|\binside (?:a |the |my )?(?:docker )?container\b|(?-u:\b)docker desktop\b"
             # issue templates' answer (Dify: "Cloud or Self Hosted: Self Hosted (Docker)"), "connecting ... through Docker"
             r"|\bself[- ]hosted \(docker(?:[- ]compose)?\)|\b(?:through|via) docker\b"
             # "the docker version of AnythingLLM", "docker pull …", "in a docker container", and in Chinese
             # "deployed/installed with Docker" (用/使用/通过/采用 Docker 部署/安装/运行/启动, docker 容器)
             r"|\bdocker (?:version|image|container|install(?:ation)?)s? of\b|\bdocker (?:pull|logs|ps|inspect) "
             r"|\bin (?:a |the |my )?docker(?: containers?)?\b|\b(?:the|a) docker (?:container|version|image)\b"
             r"|(?:用|使用|通过|采用|基于)\s*docker\s*(?:部署|安装|运行|启动)|docker\s*(?:部署|安装|容器))"
             # Docker Desktop's log pane: the local time, then the container's own timestamp
             r"|^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \d{4}-\d\d-\d\dT\d\d:\d\d"
             r"|" + IMAGE_FRAME)

# settings whose words name a failure without saying one
NOT_ERRORISH = (r"(?i)^\s*-?\s*(?:restart(?:_?policy)?\s*[:=]\s*[\"']?on[-_]?failure\b|failure_?threshold\s*[:=]\s*\d+\s*$|"
                r"[\w.-]*(?:on[-_]failure|ignore[-_]errors?)\s*[:=])")
# error-like: what a person would read as a failure, in any kind of line
ERRORISH = (r"(?i)\b(?:error|errno|exception|failed|failure|fails?|fatal|refused|denied|forbidden|unauthori[sz]ed|"
             r"timed? ?out|timeout|cannot|can't|could not|couldn't|unable|invalid|not found|no such|"
             r"not supported|unsupported|exceed(?:s|ed)?|too (?:large|long|many|old)|out of memory|oom|"
             r"traceback|panic|killed|crash(?:ed)?|abort(?:ed)?|unavailable|bad gateway|not allowed|"
             r"missing|mismatch|insufficient|OOMs?)\b|错误|失败|异常|超时|拒绝|报错|出错|不支持|无法|找不到|不存在|不一致|"
             r"(?i:ошибка|fehler|erreur|errore|hata)|"
             # an issue's title that its tracker's form labels a bug (`# [BUG]: Values length is less than …`)
             r"(?i:^\W{0,4}\[bug\])|"
             # a status a sentence gives: `I got 403 while …`, `returns 404`, `always 404`
             r"(?i:\b(?:got|get|getting|gets|returns?|returned|returning|gives?|gave|giving|always|with|an?)\s+(?:an? |the )?"
             r"(?:http |status |error )?[45]\d\d\b)|是404|是401|是403|"
             # a status said as one: `HTTP/1.1 502`, `status=404`, `Error code: 401`, `状态码: 403`, `| 400 |`
             r"(?i:HTTP/\d(?:\.\d)?|status(?:[ _]?code)?|code|状态码)[\s=:\"]{1,3}[45]\d\d\b|\|\s*[45]\d\d\s*\|"
             # an exception's name and its message, as a runtime prints it (`AttributeError: 'X' object has no …`)
             r"|(?-i:\b[A-Z][A-Za-z0-9]*(?:Error|Exception): \S)")

def error_row() -> pl.Expr:
    """A row a person would read as an error, whatever its kind (`findings.possible.error_like`, the fact
    `failure_said`): an error level, an exception, an exchange answered 4xx/5xx, a harvested failure
    message, or a line no program labelled INFO or WARNING whose words say one. A line holding a message
    known as no failure is left out, unless it also says a failing status (httpx's `Server error '500
    Internal Privoxy Error' for url …` is a wrapper's words around what failed)."""
    text = pl.coalesce(pl.col("message"), pl.col("text")).fill_null("")
    # a setting whose words name a failure without saying one (compose's `restart: on-failure`, a probe's
    # `failureThreshold: 3`, systemd's `Restart=on-failure`)
    setting = text.str.contains(NOT_ERRORISH)
    unlabelled = pl.col("level").is_null() | ~pl.col("level").is_in(["DEBUG", "INFO", "WARNING", "NOTICE", "TRACE"])
    failing = pl.col("said_status").fill_null(0) >= 400
    return (
        pl.col("level").is_in(["ERROR", "CRITICAL", "FATAL"]).fill_null(False)
        | (pl.col("kind") == "exception")
        | ((pl.col("kind") == "http") & (pl.col("http_status") >= 400)).fill_null(False)
        | (pl.col("kind").is_in(["unparsed", "log"]) & unlabelled & text.str.contains(ERRORISH) & ~setting).fill_null(False)
        | (pl.col("msg_id").is_not_null() & (pl.col("msg_id") != "none"))
    ) & (pl.col("kind") != "fact") & (pl.col("msg_id").is_null() | (pl.col("msg_id") != "none") | failing)


# A failing HTTP status (4xx, 5xx), said as one (each pattern's group 1; the first that matches wins). A bare
# number is not one, and a success is not evidence (a busy log's `200 OK` lines must not pass the prefilter).
# ASCII classes (`patterns.ascii`): they run in the line prefilter, where Unicode's \b, \d and \s cost time.
SAID_STATUS = tuple(ascii_classes(p) for p in (
    r"HTTP/\d(?:\.\d)?\"?\s+([45]\d\d)\b",
    r"(?i:Error code): ([45]\d\d)\b",          # the openai SDKs; Cloudflare's plain body `error code: 524`
    r"\breturned error: ([45]\d\d)\b",         # curl --fail: `The requested URL returned error: 524`
    r"\bError (5[23]\d)\b",                      # Cloudflare's pages: `Error 524`, `Error 1033` is not a status
    r"\b([45]\d\d) (?:Client|Server) Error\b",
    r"\b(?:Client|Server) error '([45]\d\d)\b",    # httpx's raise_for_status: `Server error '500 Internal Server Error' for url …`
    r"(?i)\b(?:http[ _-]?)?status(?:[ _-]?code)?[\"']?\s*[=:]\s*[\"']?([45]\d\d)\b",
    r"(?i)\bstatusCode[\"']?\s*[=:]\s*([45]\d\d)\b",
    r"(?i)\bHttp(?:Exception|Error)\b:?\s*([45]\d\d)\b",
    r"状态码\s*[:：]?\s*([45]\d\d)",
    r"\b([45]\d\d)\s*[-:]?\s*(?i:Unauthorized|Forbidden|Not Found|Too Many Requests|Bad Gateway|Service Unavailable|"
    r"Gateway Time-?out|Payload Too Large|Request Entity Too Large|Internal Server Error|Bad Request|Method Not Allowed|"
    r"Not Implemented|Unprocessable Entity)\b",
    r"[\"']code[\"']\s*:\s*([45]\d\d)\b",
))
# what the line prefilter keeps for these columns: not `HTTP/1.1 404` (every access line holds `HTTP/`, and the
# formats read access lines and curl's status lines themselves; in prose the reason phrase is kept below)
# an error's name, as runtimes and libraries print it
SAID_ERROR = ascii_classes(r"\b(E(?:CONNREFUSED|CONNRESET|CONNABORTED|TIMEDOUT|NOTFOUND|AI_AGAIN|HOSTUNREACH|NETUNREACH|ADDRINUSE|PIPE)|"
              r"UND_ERR_[A-Z_]+|(?:Read|Connect|Write|Pool)Timeout(?:Error)?|APITimeoutError|APIConnectionError|"
              r"RemoteProtocolError|ConnectionRefusedError|ConnectionResetError|NewConnectionError|NameResolutionError|"
              r"WinError \d+|Errno -?\d+)\b")
SAID_KEEP = (*SAID_STATUS[1:], SAID_ERROR)
# the host and port a line says it connected to
SAID_PLACE = (
    r"host='([^']+)', port=([0-9]{1,5})",
    r"(?:dial tcp|connect ECONNREFUSED|connect ETIMEDOUT|Cannot connect to host|Failed to connect to) "
    r"\[?([0-9a-fA-F]*:[0-9a-fA-F:]*[0-9a-fA-F]|[A-Za-z0-9_.-]+)\]?(?::| port )([0-9]{1,5})(?:[^0-9]|$)",
    r"(?i:https?)://([A-Za-z0-9_.-]+|\[[0-9a-fA-F:]+\]):([0-9]{1,5})(?:[^0-9]|$)",
)


def said(events: pl.DataFrame) -> pl.DataFrame:
    """`said_status`, `said_error`, `said_host` and `said_port` from every row's text, whatever its
    kind or format: the words are evidence wherever they stand (a paste's prose, a printed line)."""
    text = pl.col("text").str.slice(0, 4096)
    status = pl.coalesce(*(text.str.extract(p, 1) for p in SAID_STATUS)).cast(pl.Int64, strict=False)
    host = pl.coalesce(*(text.str.extract(p, 1) for p in SAID_PLACE))
    port = pl.coalesce(*(text.str.extract(p, 2) for p in SAID_PLACE)).cast(pl.Int64, strict=False)
    return events.with_columns(status.alias("said_status"), text.str.extract(SAID_ERROR, 1).alias("said_error"),
                               host.alias("said_host"), port.alias("said_port"))


def mib(size: str | None) -> float | None:
    """A size as PyTorch prints it, in MiB."""
    if not size:
        return None
    value, unit = size.split()
    return float(value) * {"bytes": 1 / 2**20, "KiB": 1 / 1024, "MiB": 1, "GiB": 1024, "TiB": 1024 * 1024}[unit]


def figures(text: str) -> dict[str, object]:
    """The figures one line prints (a line of FIGURE_LINES), by column."""
    out: dict[str, object] = {}
    torch = TORCH.search(text) or TORCH_OLD.search(text)
    if torch:
        out.update(torch_alloc=torch.group("alloc"), torch_gpu=int(torch.group("gpu")), torch_total=torch.group("total"),
                   torch_free=torch.group("free"))
        if res := TORCH_RESERVED.search(text):
            out["torch_reserved"] = res.group("reserved")
        if this := TORCH_THIS.search(text):
            out["torch_this"] = this.group("this")
    procs = [[int(m.group("pid")), mib(m.group("mem"))] for m in TORCH_PROC.finditer(text)]
    if procs:
        out["torch_procs"] = json.dumps(procs)
    if m := KV_NEW.search(text):
        out.update(vllm_kv_len=int(m.group("L")), vllm_kv_need_gib=float(m.group("need")),
                   vllm_kv_avail_gib=float(m.group("avail")), vllm_kv_est_len=int(m.group("est")) if m.group("est") else None)
    elif m := KV_OLD.search(text):
        out.update(vllm_kv_len=int(m.group("L")), vllm_kv_tokens=int(m.group("tokens")))
    elif m := KV_AVAIL.search(text):
        out["vllm_kv_avail_gib"] = float(m.group("avail"))
    if m := FREE_START.search(text):
        out.update(vllm_free_gib=float(m.group("free")), vllm_total_gib=float(m.group("total")),
                   vllm_share=float(m.group("util")), vllm_want_gib=float(m.group("want")))
    if m := FRACTION.search(text):
        out["mem_fraction"] = float(m.group("v"))
    out["mem_fraction_named"] = "mem_fraction_static" in text or "mem-fraction-static" in text   # SGLang's own wording
    return out


def _settings(text: str) -> dict[str, object]:
    """The memory shares a server's argument line or a start command sets."""
    out: dict[str, object] = {}
    if m := UTIL.search(text):
        out["mem_util"] = float(m.group("v"))
    if m := FRACTION.search(text):
        out["mem_fraction"] = float(m.group("v"))
    return out


def procs(value: str | None) -> list[tuple[int, float]]:
    """`torch_procs` as (pid, MiB) pairs."""
    return [(int(p), float(m)) for p, m in json.loads(value)] if value else []


def parse(events: pl.DataFrame, upstream: "Messages | None" = None) -> pl.DataFrame:
    """Fill the columns of these messages on the rows that carry them. The figures come from the
    message (or the exception's message) of log, exception and unparsed lines; the memory shares
    of fact rows (argument lines, pasted commands) from their whole text; the mentions of a
    container or a server command from any row's text. Only the rows a linear-time pattern flags
    are read in Python (a few per member)."""
    if events.height == 0:
        return events
    if upstream is not None:          # the upstream message each line holds (knowledge.upstream)
        events = upstream.columns(events)
    events = said(events)
    text = pl.coalesce(pl.col("exc_message"), pl.col("message"))
    figure = pl.col("kind").is_in(["log", "exception", "unparsed"]) & text.str.contains(FIGURE_LINES).fill_null(False)
    setting = (pl.col("kind") == "fact") & pl.col("text").str.contains(r"gpu_memory_utilization|gpu-memory-utilization|"
                                                                        r"mem_fraction_static|mem-fraction-static").fill_null(False)
    # ...and a line of code or a command pasted as text that sets it (`LLM(model=…, gpu_memory_utilization=0.1)`)
    setting = setting | (pl.col("kind").is_in(["log", "unparsed"]) & pl.col("text").str.contains(SET_IN_CODE).fill_null(False))
    engines = list(SERVER_COMMAND)
    marks = events.select(
        figure.alias("figure"), setting.alias("setting"),
        (pl.col("text").str.contains(CONTAINER).fill_null(False)
         | pl.col("mentions_container").fill_null(False)).alias("container"),
        *(pl.col("text").str.contains(p).fill_null(False).alias(f"e{i}") for i, p in enumerate(SERVER_COMMAND.values())),
    )
    server = pl.lit(None, dtype=pl.String)
    for i in reversed(range(len(engines))):      # the first engine a line names
        server = pl.when(pl.col(f"e{i}")).then(pl.lit(engines[i])).otherwise(server)
    mentions = marks.select(pl.col("container").alias("mentions_container"), server.alias("mentions_server"))
    events = events.with_columns(mentions["mentions_container"], mentions["mentions_server"])
    rows: dict[int, dict[str, object]] = {}
    figure_rows = marks["figure"].arg_true()
    if figure_rows.len():
        for i, t in zip(figure_rows.to_list(), events.select(text.alias("t"))["t"].gather(figure_rows).to_list()):
            rows[i] = figures(t or "")
    setting_rows = marks["setting"].arg_true()
    if setting_rows.len():
        for i, t in zip(setting_rows.to_list(), events["text"].gather(setting_rows).to_list()):
            rows[i] = {**rows.get(i, {}), **_settings(t or "")}
    if not rows:
        return events
    idx = pl.Series(list(rows), dtype=pl.UInt32)
    names = list(dict.fromkeys(c for r in rows.values() for c in r))
    filled = pl.DataFrame([rows[i] for i in rows], schema={c: SCHEMA[c] for c in names}, strict=False)
    return events.with_columns(events[c].scatter(idx, filled[c]) for c in names)
