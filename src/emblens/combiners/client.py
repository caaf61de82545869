"""What the client sent and what the pasted commands say: requests that carried no credential at
all and requests that carried one (captures, curl commands); the flags a pasted server start
command gave; the environment lines that decide where a call goes (proxies, base URL, key)."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

import polars as pl

from emblens.combiners.facts import Fact
from emblens.formats import commands
from emblens.formats.commands import SERVER_COMMAND
from emblens.formats.messages import error_row

FACTS: Mapping[str, Fact] = MappingProxyType({
    "requests_without_key": Fact("number", "requests seen leaving the client with no credential at all "
                                           "(no Authorization or key header): pasted curl commands, captures"),
    "requests_with_key": Fact("number", "requests seen leaving the client with a credential"),
    "server_command": Fact("text", "the engine a pasted start command runs: vllm (vllm serve, "
                                   "vllm.entrypoints...) or sglang (sglang.launch_server)"),
    "container_seen": Fact("bool", "the evidence shows a container: a docker run/compose command, compose log "
                                   "prefixes, host.docker.internal, a docker json-file or kubectl log"),
    "proxy_system": Fact("text", "the words of a system-wide proxy an HTTP client reads without any *_PROXY variable "
                                 "(Windows' WinINET proxy setting, httpx's trust_env=True, a system proxy)"),
    "proxy_env": Fact("text", "the first proxy variable a pasted environment sets, as NAME=scheme://host:port "
                              "(export HTTP_PROXY=..., docker -e, os.environ)"),
    "no_proxy": Fact("text", "the NO_PROXY / no_proxy value a pasted environment sets"),
    "api_key_env_empty": Fact("bool", "a pasted environment sets OPENAI_API_KEY or VLLM_API_KEY to an empty value"),
    "base_url_env": Fact("text", "the client's base URL as a paste gives it: OPENAI_BASE_URL / OPENAI_API_BASE, or a "
                                 "base_url / api_base setting in pasted config or code"),
    "cmd_memory_share": Fact("number", "--gpu-memory-utilization / --mem-fraction-static of a pasted start command"),
    "cmd_tensor_parallel": Fact("number", "--tensor-parallel-size / --tp of a pasted start command"),
    "cmd_trust_remote_code": Fact("bool", "a pasted start command passes --trust-remote-code"),
    "cmd_chat_template": Fact("text", "--chat-template of a pasted start command"),
    "cmd_task": Fact("text", "what a pasted start command asks the model to be: --task / --runner / --convert, "
                             "or embedding for --is-embedding"),
    "cmd_host": Fact("text", "--host of a pasted start command"),
    "cmd_entrypoint": Fact("text", "how a pasted command starts the server: serve (vllm serve), openai "
                                   "(vllm.entrypoints.openai.api_server), demo (vllm.entrypoints.api_server), sglang, tei"),
    "failure_said": Fact("bool", "some line reads as a failure (an error level, an exception, a failing status, "
                                 "an error word in a paste's prose): a state alone (an empty model list) is no failure"),
    "ollama_pull_seen": Fact("bool", "an exchange on Ollama's /api/pull is seen: its CLI asks /api/show first and pulls "
                                     "a model it lacks, so a 404 on /api/show beside it is the CLI finding out"),
    "timeouts_seen": Fact("text", "the timeouts the evidence sets or reports, as written (`timeout=15.0`, `read "
                                  "timeout=600`, `LLM_TIMEOUT=180`, `30s timeout`), at most three"),
})

# a timeout as code, config, a library's message or prose writes it: a setting with its value, or a
# duration said to be one
TIMEOUT = (r"(?i)\b[A-Z][A-Z0-9_]*TIME_?OUT[A-Z0-9_]*\s*[=:]\s*\d+(?:\.\d+)?(?:\s*(?:ms|s|m))?\b"
           r"|\b(?:read |connect |request |proxy_read_|keep_?alive_?|client_|upstream_)?time-?out\s*(?:=|:|of)\s*\d+(?:\.\d+)?"
           r"(?:\s*(?:ms|s|sec(?:ond)?s?|m|min(?:ute)?s?)\b)?"
           r"|\b\d+(?:\.\d+)?\s*(?:ms|s|sec(?:ond)?s?|min(?:ute)?s?)\s+(?:read |request |client |upstream |route |header )?time-?out\b"
           r"|\btime-?(?:out|d out)\b[^\n]{0,40}?\b\d+(?:\.\d+)?\s*(?:ms|s|sec(?:ond)?s?|min(?:ute)?s?)\b")
MAX_TIMEOUTS = 3
MAX_PROXY_ROWS = 20_000     # rows read (vectorised) for the words of a system proxy (a paste's; a log's first)
# the words of a proxy no environment variable shows: Windows' WinINET setting (httpx and requests read it when
# trust_env is on, their default), a "system proxy" in a person's words, in English or Chinese
SYSTEM_PROXY = (r"(?i)\bWinINET\b|\b(?:Windows|macOS|OS|system)[ -](?:wide )?proxy\b|\btrust_env\s*=\s*True\b"
                r"|系统代理")


def figures(events: pl.DataFrame) -> dict[str, object]:
    out: dict[str, object] = {}
    if events.height:
        seen = events.select(pl.col("mentions_container").any(), pl.col("mentions_server").drop_nulls().unique().implode()).row(0)
        if seen[0]:
            out["container_seen"] = True
        engine = next((e for e in SERVER_COMMAND if e in seen[1]), None)    # in the order of SERVER_COMMAND
        if engine:
            out["server_command"] = engine
    out.update(pasted(events))
    if events.height and "msg_id" in events.columns:
        out["failure_said"] = bool(events.select(error_row().any()).item())
    if events.height and "text" in events.columns:
        said = (events.select(pl.col("text").str.slice(0, 4096).str.extract_all(TIMEOUT).alias("t")).explode("t")
                .drop_nulls()["t"].str.strip_chars().unique(maintain_order=True).head(MAX_TIMEOUTS).to_list())
        if said:
            out["timeouts_seen"] = ", ".join(f"`{t}`" for t in said)
    if ollama_pulled(events):
        out["ollama_pull_seen"] = True
    if events.height and "text" in events.columns:
        system = (events.head(MAX_PROXY_ROWS).select(pl.col("text").str.slice(0, 4096).str.extract(SYSTEM_PROXY, 0))
                  .to_series().drop_nulls())
        if system.len():
            out["proxy_system"] = system[0].strip()
    sent = events.filter((pl.col("kind") == "http") & pl.col("origin").is_in(["client", "capture"]))
    if sent.height == 0:
        return out
    # a browser's sanitized HAR drops the header: "not recorded" says nothing either way
    bare = sent.filter(pl.col("auth_scheme").is_null() & pl.col("auth_other_headers").is_null()).height
    keyed = sent.filter(pl.col("auth_scheme").is_not_null() & (pl.col("auth_scheme") != "not recorded")
                        | pl.col("auth_other_headers").is_not_null()).height
    return {**out, "requests_without_key": bare, "requests_with_key": keyed}


def ollama_pulled(events: pl.DataFrame) -> bool:
    """The events hold an exchange on Ollama's /api/pull: its CLI (`ollama run`, `ollama pull`) asks /api/show
    first and pulls a model it lacks, so a 404 on /api/show beside it is the CLI finding out."""
    if events.height == 0 or not {"kind", "http_path"} <= set(events.columns):
        return False
    return bool(events.select(((pl.col("kind") == "http") & (pl.col("http_path") == "/api/pull")).any()).item())


# the columns of a command row and the facts they become (the last command that sets one wins)
COMMAND_FACTS = MappingProxyType({"command_memory_share": "cmd_memory_share", "command_tensor_parallel": "cmd_tensor_parallel",
                                  "command_task": "cmd_task", "command_trust_remote_code": "cmd_trust_remote_code",
                                  "command_chat_template": "cmd_chat_template", "command_host": "cmd_host",
                                  "command_entrypoint": "cmd_entrypoint"})


def pasted(events: pl.DataFrame) -> dict[str, object]:
    """Facts from pasted start commands and environment lines (a handful of rows: a paste's)."""
    out: dict[str, object] = {}
    rows = events.filter(pl.col("fact").is_in(["command", "env"])).sort("source", "line", maintain_order=True).head(200)
    for row in rows.select("fact", "env_name", "env_value", *COMMAND_FACTS).iter_rows(named=True):
        if row["fact"] == "env":
            name, value = row["env_name"] or "", row["env_value"] or ""
            upper = name.upper()
            if _proxy_variable(out, name, value):
                continue
            if upper in ("OPENAI_API_KEY", "VLLM_API_KEY") and not value:
                out["api_key_env_empty"] = True
            elif value and (upper in ("OPENAI_BASE_URL", "OPENAI_API_BASE", "BASE_URL", "API_BASE", "API_BASE_URL")
                            or upper.endswith(("_BASE_URL", "_API_BASE"))):     # VLLM_API_BASE, OLLAMA_BASE_URL…
                out.setdefault("base_url_env", value)
            continue
        for column, fact in COMMAND_FACTS.items():
            if row[column] not in (None, ""):
                out[fact] = row[column]
    return out


def _proxy_variable(out: dict[str, object], name: str, value: str) -> bool:
    """Record a proxy variable (the first *_PROXY set, and NO_PROXY); whether `name` was one."""
    upper = name.upper()
    if upper == "NO_PROXY":
        out["no_proxy"] = value
    elif upper.endswith("_PROXY"):
        if value:
            out.setdefault("proxy_env", f"{name}={commands.without_userinfo(value)}")
    else:
        return False
    return True
