"""Why the GPU ran out of memory: one cause, chosen from all the evidence, with its numbers.

The rule `gpu.oom` (rules/gpu/oom.yaml) finds the out-of-memory lines; this module decides the
cause across sources and writes it on those lines as `oom_cause`, `oom_detail` (the figures) and
`oom_lever` (the fix: a flag and a value, or the pid to stop), which the rule's message quotes.
Causes, in the order they are tried:

- other_process: nvidia-smi (or PyTorch's own message) shows another process holding memory on
  the GPU; names its pid, name and MiB.
- memory_fraction: the server's share (--gpu-memory-utilization / --mem-fraction-static) of the
  total is more than was free at start (vLLM's start-up check, or nvidia-smi before start).
- kv_cache: the KV cache cannot hold max_model_len (both numbers from the log).
- fragmentation: PyTorch reserved but did not allocate more than the failed allocation.
- weights: the weights alone do not fit (size from the model name, vs the GPU's total).
- undecided: says which evidence would decide it.
It also marks nvidia-smi process rows that are not the model server (`gpu_proc_other`).
"""

from __future__ import annotations

import math
import re

import polars as pl

from emblens.facts import Facts

SIZE = r"[\d.]+ [KMGT]iB"
TORCH = re.compile(
    rf"CUDA out of memory\. Tried to allocate (?P<alloc>{SIZE})\. GPU (?P<gpu>\d+) has a total capacity of "
    rf"(?P<total>{SIZE}) of which (?P<free>{SIZE}) is free\."
)
TORCH_PROC = re.compile(rf"Process (?P<pid>\d+) has (?P<mem>{SIZE}) memory in use")
TORCH_THIS = re.compile(rf"this process has (?P<this>{SIZE}) memory in use")
TORCH_RESERVED = re.compile(rf"Of the allocated memory (?P<allocated>{SIZE}) is allocated by PyTorch, and "
                            rf"(?P<reserved>{SIZE}) is reserved by PyTorch but unallocated")
TORCH_OLD = re.compile(
    rf"CUDA out of memory\. Tried to allocate (?P<alloc>{SIZE}) \(GPU (?P<gpu>\d+); (?P<total>{SIZE}) total capacity; "
    rf"(?P<allocated>{SIZE}) already allocated; (?P<free>{SIZE}) free; (?P<reserved_total>{SIZE}) reserved in total by PyTorch\)"
)
KV_NEW = re.compile(
    r"max seq len \((?P<L>\d+)\), \((?P<need>[\d.]+) GiB KV cache is needed, which is larger than the available KV cache "
    r"memory \((?P<avail>[\d.]+) GiB\)\.(?: Based on the available memory, the estimated maximum model length is (?P<est>\d+))?"
)
KV_OLD = re.compile(r"max seq len \((?P<L>\d+)\) is larger than the maximum number of tokens that can be stored in KV cache \((?P<tokens>\d+)\)")
NO_BLOCKS = re.compile(r"No available memory for the cache blocks")
FREE_START = re.compile(
    r"Free memory on device (?:\S+ )?\((?P<free>[\d.]+)/(?P<total>[\d.]+) GiB\) on startup is less than desired GPU memory "
    r"utilization \((?P<util>[\d.]+), (?P<want>[\d.]+) GiB\)"
)
SGL_NOT_ENOUGH = re.compile(r"Not enough memory\. Please try to increase --mem-fraction-static\.?(?: Current value: mem_fraction_static=(?P<frac>[\d.]+))?")
OOM_ANY = re.compile(re.sub(r"\(\?P<\w+>", "(?:", "|".join(
    p.pattern for p in (TORCH, TORCH_OLD, KV_NEW, KV_OLD, NO_BLOCKS, FREE_START, SGL_NOT_ENOUGH)))
    + r"|CUDA out of memory|OutOfMemoryError|KV cache pool is full|Decode out of memory happened")
UTIL = re.compile(r"gpu_memory_utilization'?\s*[:=]\s*(?P<v>[\d.]+)")
FRACTION = re.compile(r"mem_fraction_static'?\s*[:=]\s*(?P<v>[\d.]+)")
PARAMS = re.compile(r"(?i)(?<![\d.])(\d+(?:\.\d+)?)B(?![a-z])")
OTHER_MIN_MIB = 1024


def mib(size: str | None) -> float | None:
    if not size:
        return None
    value, unit = size.split()
    return float(value) * {"KiB": 1 / 1024, "MiB": 1, "GiB": 1024, "TiB": 1024 * 1024}[unit]


def _gib(m: float) -> str:
    return f"{m / 1024:.2f} GiB"


def diagnose(events: pl.DataFrame, facts: Facts) -> pl.DataFrame:
    """Add `oom_cause`, `oom_detail`, `oom_lever` to out-of-memory lines; `gpu_proc_other` to
    nvidia-smi process rows that are not the model server."""
    if events.height == 0:
        return events
    text = pl.coalesce(pl.col("exc_message"), pl.col("message"))
    is_oom = (pl.col("kind").is_in(["log", "exception", "unparsed"]) & text.str.contains(OOM_ANY.pattern)).fill_null(False)
    server_pids = set(events.filter(pl.col("origin").is_in(["vllm", "sglang"]) & pl.col("pid").is_not_null())["pid"].to_list())
    procs = events.filter(pl.col("gpu_proc_pid").is_not_null())
    other = pl.col("gpu_proc_pid").is_not_null() & ~pl.col("gpu_proc_pid").is_in(list(server_pids)) & (
        pl.col("gpu_proc_mem_mib").fill_null(0) >= OTHER_MIN_MIB)
    events = events.with_columns(pl.when(pl.col("gpu_proc_pid").is_not_null()).then(other).otherwise(None).alias("gpu_proc_other"))
    ooms = events.filter(is_oom)
    if ooms.height == 0:
        return events
    lines = [t for t in ooms.select(text.alias("t"))["t"].to_list() if t]
    cause, detail, lever = _decide(lines, events, procs, server_pids, facts)
    return events.with_columns(
        pl.when(is_oom).then(pl.lit(cause)).otherwise(pl.col("oom_cause")).alias("oom_cause"),
        pl.when(is_oom).then(pl.lit(detail)).otherwise(pl.col("oom_detail")).alias("oom_detail"),
        pl.when(is_oom).then(pl.lit(lever)).otherwise(pl.col("oom_lever")).alias("oom_lever"),
    )


def _first(pattern: re.Pattern[str], lines: list[str]) -> re.Match[str] | None:
    return next((m for line in lines if (m := pattern.search(line))), None)


def _setting(events: pl.DataFrame, pattern: re.Pattern[str]) -> float | None:
    args = events.filter(pl.col("kind") == "fact")["text"].drop_nulls().to_list()
    m = _first(pattern, args)
    return float(m.group("v")) if m else None


def _decide(lines, events, procs, server_pids, facts) -> tuple[str, str, str]:
    torch_line = next((line for line in lines if TORCH.search(line) or TORCH_OLD.search(line)), "")
    torch = TORCH.search(torch_line) or TORCH_OLD.search(torch_line)
    gpu = int(torch.group("gpu")) if torch else None
    total_mib = mib(torch.group("total")) if torch else None
    is_sglang = "sglang" in facts.versions or events.filter(pl.col("origin") == "sglang").height > 0
    flag = "--mem-fraction-static" if is_sglang else "--gpu-memory-utilization"
    util = _setting(events, FRACTION if is_sglang else UTIL) or (None if is_sglang else 0.9)

    # 1. another process holds memory on that GPU
    holders = procs.filter(
        ~pl.col("gpu_proc_pid").is_in(list(server_pids)) & (pl.col("gpu_proc_mem_mib").fill_null(0) >= OTHER_MIN_MIB)
        & ((pl.col("gpu_index") == gpu) if gpu is not None else pl.lit(True)).fill_null(True)
    ).sort("gpu_proc_mem_mib", descending=True).unique(subset=["gpu_proc_pid"], keep="first", maintain_order=True)
    named = [(r["gpu_proc_pid"], r["gpu_proc_name"], r["gpu_proc_mem_mib"], r["gpu_index"]) for r in holders.iter_rows(named=True)]
    if not named and torch:
        this = TORCH_THIS.search(torch_line)
        this_mib = mib(this.group("this")) if this else None
        for line in lines:
            for m in TORCH_PROC.finditer(line):
                pid, m_mib = int(m.group("pid")), mib(m.group("mem"))
                if pid not in server_pids and m_mib and m_mib >= OTHER_MIN_MIB and (this_mib is None or abs(m_mib - this_mib) > 1):
                    named.append((pid, None, m_mib, gpu))
    if named:
        pid, name, m_mib, idx = named[0]
        total = _gpu_total(events, idx) or total_mib
        share = f" of {total:,.0f} MiB" if total else ""
        more = f" (and {len(named) - 1} more holding {sum(n[2] for n in named[1:]):,.0f} MiB)" if len(named) > 1 else ""
        where = f"GPU {idx}" if idx is not None else "the GPU"
        detail = (f"another process holds memory on {where}: pid {pid}{' (' + name + ')' if name else ''} uses "
                  f"{m_mib:,.0f} MiB{share}{more}, so the server could not get the share it asks for"
                  + (f" ({flag} {util})." if util else "."))
        lever = (f"Stop pid {pid} (or move it to another GPU), or start the server on a free GPU with "
                 f"CUDA_VISIBLE_DEVICES; if both must share {where}, lower {flag} below the free share"
                 + (f" (about {max(0.05, math.floor((total - sum(n[2] for n in named)) / total * 100 - 5) / 100):.2f})" if total else "")
                 + ".")
        return "other_process", detail, lever

    # 2. the share asked for is more than was free at start
    start = _first(FREE_START, lines)
    if start:
        free, total, want_util, want = (float(start.group(k)) for k in ("free", "total", "util", "want"))
        suggest = max(0.05, math.floor((free / total - 0.02) * 100) / 100)
        return ("memory_fraction",
                f"at start-up only {free:.2f} of {total:.2f} GiB were free, and {flag} {want_util} asks for {want:.2f} GiB; "
                f"{total - free:.2f} GiB were already in use by something else.",
                f"Lower {flag} to {suggest:.2f} (free/total minus a margin), or free the memory first "
                "(nvidia-smi shows who holds it).")
    snap = _before_start(events, facts)
    if snap is not None and util:
        used, total = snap
        if util * total > total - used:
            suggest = max(0.05, math.floor(((total - used) / total - 0.02) * 100) / 100)
            return ("memory_fraction",
                    f"nvidia-smi before start shows {used:,.0f} of {total:,.0f} MiB already used; {flag} {util} asks for "
                    f"{util * total:,.0f} MiB but only {total - used:,.0f} MiB were free.",
                    f"Lower {flag} to {suggest:.2f}, or free the {used:,.0f} MiB first.")

    # 3. the KV cache cannot hold max_model_len
    kv = _first(KV_NEW, lines)
    if kv:
        est = kv.group("est")
        return ("kv_cache",
                f"the KV cache cannot hold one request of max_model_len {kv.group('L')}: it needs {kv.group('need')} GiB and "
                f"only {kv.group('avail')} GiB are left after the weights" + (f" (room for about {est} tokens)." if est else "."),
                f"Start with --max-model-len {est or '<smaller>'}" + (f", or raise {flag} above {util}." if util else "."))
    kv = _first(KV_OLD, lines)
    if kv:
        return ("kv_cache",
                f"max_model_len {kv.group('L')} is larger than the {kv.group('tokens')} tokens the KV cache can hold.",
                f"Start with --max-model-len {kv.group('tokens')} (or less), or raise {flag}" + (f" above {util}." if util else "."))
    sgl = _first(SGL_NOT_ENOUGH, lines)
    if sgl:
        cur = sgl.group("frac") or (f"{util}" if util else None)
        return ("kv_cache",
                f"SGLang has no room for its KV cache pool with --mem-fraction-static {cur or '(default)'}.",
                "Raise --mem-fraction-static" + (f" above {cur} (e.g. {min(0.95, float(cur) + 0.05):.2f})" if cur else "")
                + ", or lower --context-length / --max-running-requests.")

    # 4. fragmentation: reserved but unallocated memory larger than what was asked for
    if torch:
        res = TORCH_RESERVED.search(torch_line)
        alloc = mib(torch.group("alloc"))
        if res and alloc and (mib(res.group("reserved")) or 0) >= alloc:
            return ("fragmentation",
                    f"PyTorch holds {res.group('reserved')} reserved but unallocated, more than the {torch.group('alloc')} it "
                    f"failed to allocate ({torch.group('free')} free of {torch.group('total')} on GPU {torch.group('gpu')}): "
                    "the memory is fragmented, not used up.",
                    "Set PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True in the server's environment and restart.")

    # 5. the weights alone do not fit
    size = _weights_gib(facts)
    total_gib = (total_mib / 1024) if total_mib else ((_gpu_total(events, gpu) or 0) / 1024 or None)
    if size and total_gib and size > total_gib * (util or 0.9):
        usable = total_gib * (util or 0.9)
        tp = 2 ** math.ceil(math.log2(size / usable * 1.2))   # weights plus room for the KV cache
        return ("weights",
                f"the weights alone need about {size:.1f} GiB ({_model(facts)}, 16-bit) but the GPU has "
                f"{total_gib:.1f} GiB, of which {flag} {util or 0.9} is {usable:.1f} GiB.",
                f"Use a quantized build (AWQ or GPTQ: about a quarter of the size, FP8: about half), split the model over "
                f"{tp} GPUs with --tensor-parallel-size {tp}, or use a GPU with more than {size * 1.2:.0f} GiB.")
    if _first(NO_BLOCKS, lines):
        return ("kv_cache",
                f"after loading the weights nothing was left for the KV cache at {flag} {util}.",
                f"Raise {flag} (e.g. to {min(0.95, (util or 0.9) + 0.05):.2f}), shorten --max-model-len, or use a smaller "
                "or quantized model.")

    missing = []
    if procs.height == 0:
        missing.append("`nvidia-smi` (the table, or `nvidia-smi -q`) taken before the server starts, to see who holds memory")
    if not facts.servers:
        missing.append("the server log from its first line (its arguments and the memory figures it prints at start-up)")
    if not torch:
        missing.append("the full traceback of the error")
    ask = "; ".join(missing) or "nvidia-smi taken at the moment of the failure"
    return ("undecided", f"the evidence here does not say why. To decide it, add {ask}.",
            f"Meanwhile: lower {flag}, shorten --max-model-len, or stop other processes on the GPU.")


def _gpu_total(events: pl.DataFrame, index: int | None) -> float | None:
    rows = events.filter(pl.col("gpu_mem_total_mib").is_not_null()
                         & ((pl.col("gpu_index") == index) if index is not None else pl.lit(True)).fill_null(True))
    return float(rows["gpu_mem_total_mib"].max()) if rows.height else None


def _before_start(events: pl.DataFrame, facts: Facts) -> tuple[float, float] | None:
    """(used, total) MiB of the first nvidia-smi snapshot taken before the server started loading."""
    snaps = events.filter((pl.col("kind") == "gpu") & pl.col("gpu_mem_total_mib").is_not_null())
    if snaps.height == 0 or not facts.loading or facts.loading[0].ts is None:
        return None
    first = snaps.filter(pl.col("ts").is_not_null() & (pl.col("ts") < facts.loading[0].ts)).sort("ts")
    if first.height == 0:
        return None
    row = first.row(0, named=True)
    return row["gpu_mem_used_mib"] or 0.0, row["gpu_mem_total_mib"]


def _model(facts: Facts) -> str:
    return (facts.model_paths or facts.served_models or ["the model"])[0]


def _weights_gib(facts: Facts) -> float | None:
    name = _model(facts)
    m = PARAMS.search(name.rsplit("/", 1)[-1])
    if not m:
        return None
    params = float(m.group(1))
    per = 0.5 if re.search(r"(?i)awq|gptq|int4|4bit|q4", name) else 1.0 if re.search(r"(?i)fp8|int8|8bit", name) else 2.0
    return params * per * 1e9 / 2**30
