"""The event table's schema, defined here and nowhere else.

Every source adapter returns a frame with a subset of these columns; `conform` adds the missing
ones as typed nulls and puts them in this order. Rules may name only these columns (plus the
capture columns a rule makes itself), so a typo in a rule is a load error.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from types import MappingProxyType

import polars as pl

CORE: Mapping[str, pl.DataType] = MappingProxyType({
    "source": pl.String(),       # label of the input member ("bundle.zip:logs/vllm.log")
    "line": pl.Int64(),          # 1-based line number within the member
    "ts": pl.Datetime("us"),     # null when unknown (vLLM's MM-DD stamps carry no year)
    "ts_text": pl.String(),      # the stamp as written
    "origin": pl.String(),       # who wrote it: a format's origin (formats.registry.origins())
    "kind": pl.String(),         # what it is: see KINDS
    "level": pl.String(),        # DEBUG INFO WARNING ERROR CRITICAL (null when none)
    "message": pl.String(),      # the line without its prefix, secrets masked
    "text": pl.String(),         # the whole line as written (colours removed, secrets masked); a JSON log
                                 # line as its program prints it in plain text
})

OPTIONAL: Mapping[str, pl.DataType] = MappingProxyType({
    # producer details
    "proc": pl.String(),         # process name from a vLLM (Name pid=N) prefix, or SGLang ranks
    "pid": pl.Int64(),
    "logger": pl.String(),       # file:line of the logging call
    "repeat": pl.Int64(),        # how many lines this row stands for: a server log's identical failing requests
                                 # of one minute are counted into one row (null: the row is one line)
    # HTTP exchanges (uvicorn access lines, captures, HAR, curl -v)
    "http_method": pl.String(),
    "http_path": pl.String(),
    "http_host": pl.String(),
    "http_port": pl.Int64(),
    "http_status": pl.Int64(),
    "http_client": pl.String(),
    "auth_scheme": pl.String(),
    "auth_token_shape": pl.String(),   # "empty", "placeholder:EMPTY", "<key: 32 chars>" — never the token
    "req_model": pl.String(),
    "req_input_count": pl.Int64(),
    "req_body_keys": pl.String(),
    "resp_error": pl.String(),
    # traffic (captures, HAR, curl -v): credentials only by shape, inputs only by count and kind
    "auth_other_headers": pl.String(),      # "X-API-Key: <key: 32 chars>"
    "http_server": pl.String(),             # Server header (uvicorn, nginx/1.24.0, ...)
    "http_via": pl.String(),
    "http_content_type": pl.String(),
    "req_dimensions": pl.Int64(),           # the `dimensions` the request asked for
    "req_extra_params": pl.String(),        # generation parameters in the body (max_tokens, ...)
    "req_input_kinds": pl.String(),         # string, empty string, token ids, list, ...
    "req_prefixed": pl.Int64(),             # inputs that start with a known instruction prefix
    "req_unprefixed": pl.Int64(),
    "req_prefixes": pl.String(),            # the prefixes seen
    "req_unprefixed_example": pl.String(),  # a clipped start of one input without a prefix
    "req_prefix_missing": pl.Int64(),       # derived: unprefixed inputs where a prefix is expected
    "req_prefix_family": pl.String(),       # derived: the model family (E5, nomic-embed-text, ...)
    "req_prefix_expected": pl.String(),     # derived: the family's prefixes, comma-separated
    "req_prefix_basis": pl.String(),        # derived: why a prefix is expected: family | mixed | others
    "resp_dim": pl.Int64(),                 # embedding length returned
    "resp_dims": pl.String(),               # all lengths in one response
    "resp_models": pl.String(),             # ids listed by /v1/models
    "resp_dim_expected": pl.Int64(),        # derived: what the request or the model implies
    "resp_dim_basis": pl.String(),          # derived: requested | known (model data) | usual (other calls)
    "resp_dim_mismatch": pl.Boolean(),      # derived: resp_dim differs from resp_dim_expected
    "latency_ms": pl.Float64(),
    "retry_after": pl.Float64(),
    "trace_id": pl.String(),          # a span's trace (hex), formats.otlp
    "span_id": pl.String(),
    "request_id": pl.String(),        # the server's id of the request (chatcmpl-…, embd-…, gen_ai.response.id)
    "request": pl.String(),           # derived: one request across sources (combiners.linking): its trace, else its id
    "queue_ms": pl.Float64(),         # a server span's time in the queue (vLLM gen_ai.latency.time_in_queue)
    "ttft_ms": pl.Float64(),          # a server span's time to first token (gen_ai.latency.time_to_first_token)
    "preemptions": pl.Int64(),        # a server span's preemptions (vLLM's journey events, num_preemptions)
    # exceptions
    "exc_type": pl.String(),          # as printed: openai.NotFoundError
    "exc_message": pl.String(),
    "exc_chain": pl.String(),         # types of the whole chain, root first, joined by " -> "
    "exc_root_type": pl.String(),
    "exc_root_message": pl.String(),
    "exc_outer_type": pl.String(),    # what the caller finally saw
    "exc_position": pl.String(),      # root, cause, outer, only
    "exc_group": pl.Int64(),          # which chain of its source the exception belongs to
    # GPU state (nvidia-smi)
    "gpu_index": pl.Int64(),
    "gpu_name": pl.String(),
    "gpu_mem_used_mib": pl.Float64(),
    "gpu_mem_total_mib": pl.Float64(),
    "gpu_processes": pl.String(),          # "2443 /usr/bin/python3 71,200 MiB; ..." largest first
    "gpu_mem_free_mib": pl.Float64(),
    "gpu_util_pct": pl.Float64(),
    "gpu_mig": pl.String(),                # MIG mode: Enabled, Disabled
    "gpu_snapshot": pl.Int64(),            # which snapshot of its source (nvidia-smi -l loops)
    "gpu_proc_pid": pl.Int64(),
    "gpu_proc_type": pl.String(),          # C, G, C+G
    "gpu_proc_name": pl.String(),
    "gpu_proc_mem_mib": pl.Float64(),
    "gpu_proc_other": pl.Boolean(),        # derived: not a process of the model server
    # server facts
    "fact": pl.String(),              # version, served_models, listen, api_key, ready, loading, args; command, env (pasted)
    "software": pl.String(),          # vllm, sglang, openai, httpx, ...
    "software_version": pl.String(),
    "served_models": pl.String(),     # comma-separated served names
    "model_path": pl.String(),
    "listen_port": pl.Int64(),
    "api_key_required": pl.Boolean(),
    "max_model_len": pl.Int64(),
    # pasted start commands (`fact: command`) and environment lines (`fact: env`): what they set
    "command_memory_share": pl.Float64(),     # --gpu-memory-utilization / --mem-fraction-static
    "command_tensor_parallel": pl.Int64(),    # --tensor-parallel-size / --tp
    "command_task": pl.String(),              # --task / --runner / --convert, or embedding for --is-embedding
    "command_trust_remote_code": pl.Boolean(),
    "command_chat_template": pl.String(),
    "command_host": pl.String(),
    "command_entrypoint": pl.String(),        # serve, openai, demo, sglang, tei
    "env_name": pl.String(),                  # HTTP_PROXY, NO_PROXY, OPENAI_API_KEY, OPENAI_BASE_URL, ...
    "env_value": pl.String(),                 # as set (a secret by its shape, userinfo of a URL dropped)
    # messages any line may carry (formats/messages.py), as written or in the unit written
    # an upstream message the line holds, whatever printed it (knowledge.upstream: harvested from the source
    # of the software in the path)
    "msg_id": pl.String(),                    # the catalogue id its words evidence ("none": not a failure)
    "msg_template": pl.String(),              # which message: its project and words ("vLLM's 'The model … does not exist.'")
    "msg_values": pl.String(),                # what its placeholders held: "model=bge-m4"
    # what any line says, whatever its format (formats/messages.py `said`): a paste's prose, a printed
    # line, an error body, a log line of a program emblens has no format for
    "said_status": pl.Int64(),                # a failing HTTP status said as one: `Error code: 401`, `HTTP/1.1 502`, `status=404`,
                                              # `HttpException 429`, `状态码: 403`, `404 Client Error`, `502 Bad Gateway`
    "said_error": pl.String(),                # an error's name: ECONNREFUSED, ETIMEDOUT, ENOTFOUND, ReadTimeout, WinError 10061, Errno 111
    "said_host": pl.String(),                 # the host a line says it connected to (`host='localhost'`, `http://h:p`, `dial tcp h:p`)
    "said_port": pl.Int64(),                  # ...and the port
    "torch_alloc": pl.String(),               # PyTorch's out-of-memory message: the allocation that failed
    "torch_gpu": pl.Int64(),                  # ...the GPU
    "torch_total": pl.String(),               # ...its total capacity
    "torch_free": pl.String(),                # ...what was free
    "torch_reserved": pl.String(),            # ...reserved by PyTorch but unallocated
    "torch_this": pl.String(),                # ...what this process holds
    "torch_procs": pl.String(),               # ...other processes it names: JSON [[pid, MiB], ...]
    "vllm_kv_len": pl.Int64(),                # vLLM's KV-cache check: the max seq len checked
    "vllm_kv_need_gib": pl.Float64(),         # ...the KV cache one request of it needs (0.11+)
    "vllm_kv_avail_gib": pl.Float64(),        # ...the KV cache available
    "vllm_kv_est_len": pl.Int64(),            # ...the longest length that fits, by vLLM's estimate
    "vllm_kv_tokens": pl.Int64(),             # ...tokens the KV cache holds (older versions)
    "vllm_free_gib": pl.Float64(),            # vLLM's start-up check: memory free on the device
    "vllm_total_gib": pl.Float64(),           # ...the device's total
    "vllm_share": pl.Float64(),               # ...the memory share asked for
    "vllm_want_gib": pl.Float64(),            # ...what that share asks for
    "mem_util": pl.Float64(),                 # gpu_memory_utilization a server's arguments or a command set
    "mem_fraction": pl.Float64(),             # SGLang's mem_fraction_static, in arguments, a command or a message
    "mem_fraction_named": pl.Boolean(),       # a figure line names mem_fraction_static (SGLang's wording)
    "mentions_container": pl.Boolean(),       # the line names a container (docker run/compose, host.docker.internal, kubectl) or comes from a client container's compose log
    "mentions_server": pl.String(),           # the server a command in the line starts: vllm, sglang
})

SCHEMA: Mapping[str, pl.DataType] = MappingProxyType({**CORE, **OPTIONAL})

# The values a column can hold, where they are a closed set: rule lint checks against these.
KINDS = ("log", "http", "exception", "fact", "trace", "unparsed", "gpu")
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
ENUMS: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "kind": KINDS,
    "level": LEVELS,
    "fact": ("args", "version", "listen", "ready", "loading", "max_model_len", "served_models", "command", "env"),
    "exc_position": ("root", "cause", "outer", "only"),
    "auth_scheme": ("Bearer", "Basic", "Token", "Digest", "Apikey", "Api-key", "raw", "Bearer(glued)", "none",
                    "not recorded"),
    "gpu_proc_type": ("C", "G", "C+G"),
    "req_prefix_basis": ("family", "mixed", "others"),
    "resp_dim_basis": ("requested", "known", "usual"),
})


def empty() -> pl.DataFrame:
    """An event table with no rows."""
    return pl.DataFrame(schema=SCHEMA)


def conform(df: pl.DataFrame) -> pl.DataFrame:
    """Add missing schema columns as typed nulls, cast present ones, order as SCHEMA."""
    unknown = [c for c in df.columns if c not in SCHEMA]
    if unknown:
        raise ValueError(f"columns not in the event schema: {unknown}")
    return df.select(_conforming(frozenset(df.columns)))


@lru_cache(maxsize=256)
def _conforming(present: frozenset[str]) -> list[pl.Expr]:
    return [
        (pl.col(name).cast(dtype) if name in present else pl.lit(None, dtype=dtype)).alias(name)
        for name, dtype in SCHEMA.items()
    ]


def frame(rows: list[dict]) -> pl.DataFrame:
    """An event table from row dicts (each holding some of the schema's columns)."""
    if not rows:
        return empty()
    keys: dict[str, None] = {}
    for r in rows:
        keys.update(dict.fromkeys(r))
    return conform(pl.DataFrame(rows, schema={k: SCHEMA[k] for k in keys}, strict=False))
