"""Commands and environment lines in a paste: what the server was started with, and what the
calling process's environment said.

A pasted start command (`vllm serve …`, `python -m sglang.launch_server …`,
`text-embeddings-router …`, or a `docker run` of their images), continued with `\\` over several
lines, becomes a `command` fact row holding the same columns a server's own argument line gives
(served names, model path, port, whether an API key is required, max model length), so the rules
that read the server's facts read the command too. Environment assignments that decide where a
call goes (`export HTTP_PROXY=…`, `-e NO_PROXY=…`, `OPENAI_API_KEY=`, `os.environ["…"] = …`)
become `env` fact rows; the client combiner turns both into facts.

Everything is bounded: continuation lines, command length, tokens.
"""

from __future__ import annotations

import re
import shlex
from types import MappingProxyType

# commands in a paste that say where the server runs: read by the text reader (kept lines) and by the
# client combiner (facts `container_seen`, `server_command`), so both follow one list
CONTAINER_COMMAND = r"docker (?:run|compose|exec)|docker-compose|--add-host|host\.docker\.internal"
SERVER_COMMAND = MappingProxyType({
    "vllm": r"\bvllm serve\b|-m vllm\.entrypoints\.|vllm/vllm-openai",
    "sglang": r"-m sglang\.launch_server\b|\bsglang serve\b|lmsysorg/sglang",
})

MAX_CONTINUED = 64       # lines one command may run over
MAX_COMMAND = 16 * 1024  # characters of one joined command
MAX_TOKENS = 512

ENGINES = MappingProxyType({**SERVER_COMMAND, "tei": r"\btext-embeddings-router\b|text-embeddings-inference:"})
START = re.compile("|".join(f"(?P<{e}>{p})" for e, p in ENGINES.items()))
CONTINUED = re.compile(r"(?:\\|\^|`)\s*$")    # POSIX shells, cmd.exe, PowerShell

# flag spellings of the three servers, by meaning
FLAGS = MappingProxyType({
    "model": ("--model", "--model-path", "--model-id", "--model-name-or-path"),
    "served": ("--served-model-name",),
    "port": ("--port",),
    "host": ("--host", "--hostname"),
    "api_key": ("--api-key", "--api-key-file"),
    "max_len": ("--max-model-len", "--context-length", "--max-input-length", "--max-input-tokens"),
    "memory_share": ("--gpu-memory-utilization", "--mem-fraction-static"),
    "tp": ("--tensor-parallel-size", "-tp", "--tp", "--tp-size"),
    "chat_template": ("--chat-template",),
    "task": ("--task", "--runner", "--convert"),
})
SWITCHES = MappingProxyType({"--trust-remote-code": "trust_remote_code", "--is-embedding": "is_embedding"})
BY_FLAG = MappingProxyType({flag: name for name, flags in FLAGS.items() for flag in flags})

ENV_NAMES = r"(?i:https?_proxy|all_proxy|no_proxy)|OPENAI_API_KEY|OPENAI_BASE_URL|OPENAI_API_BASE|VLLM_API_KEY"
ENV_LINE = re.compile(
    r"""^\s*(?:[$#>]\s*)?(?:-\s+)?(?:export\s+|set\s+|\$env:|(?:-e|--env)[\s=]+)?['"]?"""
    rf"""(?P<name>{ENV_NAMES})['"]?\s*=\s*(?P<value>"[^"\n]*"|'[^'\n]*'|[^\s"'`]*)"""
)
# an assignment quoted in prose as inline code: "with `http_proxy=http://127.0.0.1:7897` set in shell"
ENV_INLINE = re.compile(rf"""`(?:export\s+)?(?P<name>{ENV_NAMES})=(?P<value>[^\s`'"]*)`""")
# what ends a URL written in Chinese or Japanese prose besides a space: CJK punctuation, ideographs, full-width forms
# (`OPENAI_BASE_URL=http://localhost:13000/v1，也加入了令牌`); the body of a character class, for `re` and polars alike
CJK_TEXT = r"\u3000-\u303f\u4e00-\u9fff\uff00-\uffef"
# a client's base URL as a config file, code or prose gives it: base_url: http://..., api_base="http://..."
BASE_URL = re.compile(r"""(?i)\b(?:base_url|api_base|openai_api_base|base-url|baseURL|api_url|api_endpoint|\w*_endpoint)\b['"]?\s*[:=]\s*['"`]?(?P<value>https?://[^\s'"`,)""" + CJK_TEXT + r"""]+)""")
ENV_PY = re.compile(rf"""os\.environ\[\s*['"](?P<name>{ENV_NAMES})['"]\s*\]\s*=\s*(?P<value>"[^"\n]*"|'[^'\n]*')""")


def logical_lines(lines: list[str]) -> list[tuple[int, str]]:
    """(first line, text) of each line with its `\\` continuations joined, within the bounds."""
    out: list[tuple[int, str]] = []
    n = 0
    while n < len(lines):
        start, joined, more = n, lines[n].rstrip(), 0
        while CONTINUED.search(joined) and n + 1 < len(lines) and more < MAX_CONTINUED and len(joined) < MAX_COMMAND:
            n += 1
            more += 1
            joined = CONTINUED.sub("", joined).rstrip() + " " + lines[n].strip()
        out.append((start + 1, joined[:MAX_COMMAND]))
        n += 1
    return out


def tokens(command: str) -> list[str]:
    try:
        parts = shlex.split(command, comments=False)
    except ValueError:      # an unbalanced quote in a cut paste
        parts = command.split()
    return parts[:MAX_TOKENS]


def parse(command: str) -> dict | None:
    """What a server start command says, or None when the line does not start a server.

    >>> parse("vllm serve Qwen/Qwen3-Embedding-0.6B --port 8001 --served-model-name emb --api-key x")["served"]
    ['emb']
    >>> parse("docker run -e HTTP_PROXY=http://p:3128 vllm/vllm-openai --model m --max-model-len 4096")["max_len"]
    '4096'
    """
    m = START.search(command)
    if not m:
        return None
    engine = m.lastgroup
    toks = tokens(command[m.start():])
    out: dict = {"engine": engine, "env": env_in_tokens(tokens(command[: m.start()]) + toks)}
    started = m.group()
    out["entrypoint"] = ("demo" if re.search(r"vllm\.entrypoints\.api_server\b", command) else
                         "openai" if "entrypoints.openai" in command else "serve" if "serve" in started else engine)
    # `vllm serve MODEL`: the first word after serve that is not a flag, and names a model (a repository id or a
    # path holds `/`, `-`, `.`, `_` or a digit; "vllm serve like this …" in a sentence is no command)
    if toks[:2] == ["vllm", "serve"] and len(toks) > 2 and not toks[2].startswith("-") and re.search(r"[/\\.\-_:\d]", toks[2]):
        out["model"] = toks[2]
    i = 0
    while i < len(toks):
        tok = toks[i]
        flag, _, inline = tok.partition("=")
        flag = flag.replace("_", "-") if flag.startswith("--") else flag
        name = BY_FLAG.get(flag)
        if tok in SWITCHES:
            out[SWITCHES[tok]] = True
        elif name == "served":
            names = [inline] if inline else []
            while not inline and i + 1 < len(toks) and not toks[i + 1].startswith("-"):
                i += 1
                names.append(toks[i])
            out["served"] = [x for x in names if x]
        elif name:
            value = inline or (toks[i + 1] if i + 1 < len(toks) and not toks[i + 1].startswith("--") else "")
            if not inline and value:
                i += 1
            out[name] = value
        i += 1
    return out


def env_in_tokens(toks: list[str]) -> dict[str, str]:
    env: dict[str, str] = {}
    for i, tok in enumerate(toks):
        if tok in ("-e", "--env") and i + 1 < len(toks):
            tok = toks[i + 1]
        elif tok.startswith("--env="):
            tok = tok[len("--env="):]
        name, eq, value = tok.partition("=")
        if eq and re.fullmatch(ENV_NAMES, name):
            env[name] = value
    return env


def env_lines(lines: list[str]) -> list[tuple[int, str, str]]:
    """(line, name, value) of each environment assignment that decides where a call goes."""
    out = []
    for n, line in enumerate(lines, 1):
        for pattern in (ENV_LINE, ENV_PY, ENV_INLINE):
            m = pattern.search(line[:4096])
            if m:
                out.append((n, m.group("name"), m.group("value").strip("'\"")))
                break
        else:
            m = BASE_URL.search(line[:4096])
            if m:
                out.append((n, "base_url", m.group("value").rstrip(".;:")))
    return out


def without_userinfo(text: str) -> str:
    """URLs without their user and password (a proxy's, a DSN's): only where a call goes matters."""
    return re.sub(r"(?<=://)[^/@\s'\"]*@", "", text)


def number(value: str | None, kind=int):
    try:
        return kind(value) if value else None
    except ValueError:
        return None


def settings(parsed: dict) -> dict[str, object]:
    """The `command_*` columns of a command fact row: the settings the combiners read (the memory
    share, tensor parallel size, task, whether remote code is trusted, the chat template, the host
    and how the server is started); unset ones are left out."""
    task = parsed.get("task") or ("embedding" if parsed.get("is_embedding") else None)
    values = {"command_memory_share": number(parsed.get("memory_share"), float), "command_tensor_parallel": number(parsed.get("tp")),
              "command_task": task, "command_trust_remote_code": parsed.get("trust_remote_code"),
              "command_chat_template": parsed.get("chat_template"), "command_host": parsed.get("host"),
              "command_entrypoint": parsed.get("entrypoint")}
    return {k: v for k, v in values.items() if v not in (None, "")}


def proxy_name(name: str) -> bool:
    """Whether an environment variable names a proxy setting (HTTP_PROXY, ..., NO_PROXY)."""
    return name.upper().endswith("_PROXY")


def fact_row(parsed: dict) -> dict:
    """The event columns of a command fact row (the same ones a server's argument line fills)."""
    served = parsed.get("served") or ([parsed["model"]] if parsed.get("model") else [])
    key = parsed.get("api_key") or parsed["env"].get("VLLM_API_KEY")
    return {
        "kind": "fact", "fact": "command", "software": parsed["engine"], "origin": "generic", "level": "INFO",
        "served_models": ",".join(served) or None,
        "model_path": parsed.get("model") or None,
        "listen_port": number(parsed.get("port")),
        "api_key_required": True if key else None,   # a command without one may still be given a key by the env
        "max_model_len": number(parsed.get("max_len")),
    }
