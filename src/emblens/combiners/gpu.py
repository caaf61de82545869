"""GPU memory figures for the out-of-memory rules: who holds memory and how much, what was free
at start, the memory share the server asks for, the KV cache needed and available, memory
reserved but unallocated, and the size of the weights. Numbers only: the rules in
rules/gpu/ decide which cause they point to and word it.

The figures are read from whatever line prints them (PyTorch's allocator message, vLLM's
start-up checks, nvidia-smi, the server's arguments); which lines mean "out of memory" is the
business of the `gpu.oom` rule alone. PyTorch prints the same figures for CUDA and ROCm ("HIP out
of memory"), so these patterns name neither.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from types import MappingProxyType

import polars as pl

from emblens.combiners.facts import Fact, Facts
from emblens.formats import registry

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
KV_NEW = re.compile(
    r"max seq len \((?P<L>\d+)\), \((?P<need>[\d.]+) GiB KV cache is needed, which is larger than the available KV cache "
    r"memory \((?P<avail>[\d.]+) GiB\)\.(?: Based on the available memory, the estimated maximum model length is (?P<est>\d+))?"
)
KV_OLD = re.compile(r"max seq len \((?P<L>\d+)\) is larger than the maximum number of tokens that can be stored in KV cache \((?P<tokens>\d+)\)")
FREE_START = re.compile(
    r"Free memory on device (?:\S+ )?\((?P<free>[\d.]+)/(?P<total>[\d.]+) GiB\) on startup is less than desired GPU memory "
    r"utilization \((?P<util>[\d.]+), (?P<want>[\d.]+) GiB\)"
)
# one linear-time pattern for the lines that can hold any of the figures above
FIGURE_LINES = (r"Tried to allocate|KV cache is needed|stored in KV cache|Free memory on device|"
                r"mem_fraction_static'?\s*[:=]|--mem-fraction-static=")
# the server's argument line (`gpu_memory_utilization=0.9`, `'gpu_memory_utilization': 0.9`) or a pasted command
UTIL = re.compile(r"(?:gpu_memory_utilization'?\s*[:=]|--gpu-memory-utilization[=\s])\s*(?P<v>\d+(?:\.\d+)?)")
FRACTION = re.compile(r"(?:mem_fraction_static'?\s*[:=]|--mem-fraction-static[=\s])\s*(?P<v>\d+(?:\.\d+)?)")
PARAMS = re.compile(r"(?i)(?<![\d.])(\d+(?:\.\d+)?)B(?![a-z])")
HOLDER_MIN_MIB = 1024      # a process holding less (a desktop's Xorg) is not counted as a holder
VLLM_DEFAULT_SHARE = 0.9   # vLLM's default gpu_memory_utilization

FACTS: Mapping[str, Fact] = MappingProxyType({
    "engine": Fact("text", "vllm or sglang, when a server log or version says which"),
    "mem_share": Fact("number", "the memory share the server asks for (vLLM's gpu_memory_utilization, 0.9 unless set; "
                                "SGLang's mem_fraction_static)"),
    "oom_alloc": Fact("text", "the allocation that failed, as PyTorch wrote it (2.00 GiB)"),
    "oom_alloc_mib": Fact("number", "the allocation that failed, in MiB"),
    "oom_gpu": Fact("number", "the GPU index in PyTorch's out-of-memory message"),
    "oom_total": Fact("text", "that GPU's total capacity, as written"),
    "oom_total_mib": Fact("number", "that GPU's total capacity, in MiB"),
    "oom_free": Fact("text", "memory free on that GPU at the failure, as written"),
    "oom_free_mib": Fact("number", "memory free at the failure, in MiB"),
    "oom_reserved": Fact("text", "memory reserved by PyTorch but unallocated, as written"),
    "oom_reserved_mib": Fact("number", "memory reserved by PyTorch but unallocated, in MiB"),
    "gpu_procs_seen": Fact("bool", "nvidia-smi listed processes"),
    "gpu_other_pid": Fact("number", "the largest other process holding at least 1 GiB on the GPU (nvidia-smi, or PyTorch's message)"),
    "gpu_other_name": Fact("text", "its process name, when nvidia-smi gives one"),
    "gpu_other_mib": Fact("number", "the memory it holds, in MiB"),
    "gpu_other_gpu": Fact("number", "the GPU it holds memory on"),
    "gpu_other_gpu_total_mib": Fact("number", "that GPU's total memory, in MiB"),
    "gpu_other_more": Fact("number", "how many more other processes hold at least 1 GiB there"),
    "gpu_other_more_mib": Fact("number", "the memory those hold together, in MiB"),
    "gpu_other_share_fits": Fact("number", "a memory share that fits beside all of them (free share minus 5 points)"),
    "start_free_gib": Fact("number", "free GiB vLLM found at start-up (its 'Free memory on device' check)"),
    "start_total_gib": Fact("number", "the GPU's total GiB in that check"),
    "start_used_gib": Fact("number", "GiB already in use at start-up"),
    "start_share": Fact("number", "the memory share that check was asked for"),
    "start_want_gib": Fact("number", "the GiB that share asks for"),
    "start_share_fits": Fact("number", "the largest share that fits in what was free (less a 2-point margin)"),
    "smi_start_used_mib": Fact("number", "MiB in use in the first nvidia-smi snapshot taken before the model started loading"),
    "smi_start_total_mib": Fact("number", "that GPU's total MiB"),
    "smi_start_free_mib": Fact("number", "MiB free then"),
    "smi_start_want_mib": Fact("number", "MiB the server's memory share asks for"),
    "smi_start_share_fits": Fact("number", "the largest share that fits in what was free (less a 2-point margin)"),
    "kv_max_len": Fact("number", "the max_model_len a KV cache check was made for"),
    "kv_need_gib": Fact("number", "GiB of KV cache one request of that length needs (vLLM 0.11+)"),
    "kv_avail_gib": Fact("number", "GiB available for the KV cache after the weights"),
    "kv_est_len": Fact("number", "the longest model length the available KV cache holds, by vLLM's estimate"),
    "kv_tokens": Fact("number", "tokens the KV cache can hold (older vLLM's check)"),
    "weights_model": Fact("text", "the model whose weight size was estimated"),
    "weights_gib": Fact("number", "estimated weight size in GiB, from the parameter count in the model name"),
    "weights_bits": Fact("number", "bits per weight assumed (16, or 8/4 for names saying FP8/INT8/AWQ/GPTQ)"),
    "weights_room_gib": Fact("number", "weights plus a fifth for the KV cache, in GiB"),
    "weights_tp": Fact("number", "the smallest power-of-two tensor-parallel size that fits the weights and a KV cache"),
    "gpu_total_gib": Fact("number", "total memory of the GPU that failed, in GiB"),
    "gpu_usable_gib": Fact("number", "that total times the memory share: what the server may use, in GiB"),
})


def mib(size: str | None) -> float | None:
    """A size as PyTorch prints it, in MiB.

    >>> mib("2.00 GiB"), mib("612.44 MiB"), mib("0 bytes")
    (2048.0, 612.44, 0.0)
    """
    if not size:
        return None
    value, unit = size.split()
    return float(value) * {"bytes": 1 / 2**20, "KiB": 1 / 1024, "MiB": 1, "GiB": 1024, "TiB": 1024 * 1024}[unit]


def mark_other_processes(events: pl.DataFrame) -> pl.DataFrame:
    """`gpu_proc_other` on nvidia-smi process rows: a process that is not the model server and
    holds at least HOLDER_MIN_MIB. Unknown (null) when no server log names the server's pids."""
    if events.height == 0 or events["gpu_proc_pid"].null_count() == events.height:
        return events
    servers = _server_pids(events)
    if not servers:
        return events
    other = ~pl.col("gpu_proc_pid").is_in(servers) & (pl.col("gpu_proc_mem_mib").fill_null(0) >= HOLDER_MIN_MIB)
    return events.with_columns(pl.when(pl.col("gpu_proc_pid").is_not_null()).then(other).otherwise(None).alias("gpu_proc_other"))


def _server_pids(events: pl.DataFrame) -> list[int]:
    return events.filter(pl.col("origin").is_in(registry.servers()) & pl.col("pid").is_not_null())["pid"].unique().to_list()


def figures(events: pl.DataFrame, facts: Facts) -> dict[str, object]:
    """The memory figures found in the events, by name (see FACTS); unknown ones are left out."""
    if events.height == 0:
        return {}
    text = pl.coalesce(pl.col("exc_message"), pl.col("message"))
    rows = events.filter(pl.col("kind").is_in(["log", "exception", "unparsed"]) & text.str.contains(FIGURE_LINES).fill_null(False))
    lines = [t for t in rows.select(text.alias("t"))["t"].to_list() if t]
    procs = events.filter(pl.col("gpu_proc_pid").is_not_null())
    out: dict[str, object] = {}
    sglang = ("sglang" in facts.versions or events.filter((pl.col("origin") == "sglang")
                                                          | (pl.col("fact") == "command") & (pl.col("software") == "sglang")).height > 0
              or any("mem_fraction_static" in line or "mem-fraction-static" in line for line in lines))  # SGLang's own wording
    if sglang or facts.servers or "vllm" in facts.versions:
        out["engine"] = "sglang" if sglang else "vllm"
    share = _setting(events, FRACTION if sglang else UTIL)
    if sglang and share is None:
        share = next((float(m.group("v")) for line in lines if (m := FRACTION.search(line))), None)
    out["mem_share"] = share if share is not None else (None if sglang else VLLM_DEFAULT_SHARE)
    out["gpu_procs_seen"] = procs.height > 0

    torch_line = next((line for line in lines if TORCH.search(line) or TORCH_OLD.search(line)), "")
    torch = TORCH.search(torch_line) or TORCH_OLD.search(torch_line)
    gpu = total_mib = None
    if torch:
        gpu, total_mib = int(torch.group("gpu")), mib(torch.group("total"))
        out.update(oom_alloc=torch.group("alloc"), oom_alloc_mib=mib(torch.group("alloc")), oom_gpu=gpu,
                   oom_total=torch.group("total"), oom_total_mib=total_mib, oom_free=torch.group("free"),
                   oom_free_mib=mib(torch.group("free")))
        res = TORCH_RESERVED.search(torch_line)
        if res:
            out.update(oom_reserved=res.group("reserved"), oom_reserved_mib=mib(res.group("reserved")))
    out.update(_holders(events, procs, lines, torch_line, gpu, total_mib))
    out.update(_start(lines))
    out.update(_smi_before_start(events, facts, out["mem_share"]))
    out.update(_kv(lines))
    out.update(_weights(events, facts, gpu, total_mib, out["mem_share"]))
    return {k: v for k, v in out.items() if v is not None}


def _setting(events: pl.DataFrame, pattern: re.Pattern[str]) -> float | None:
    args = events.filter(pl.col("kind") == "fact")["text"].drop_nulls().to_list()
    m = next((m for line in args if (m := pattern.search(line))), None)
    return float(m.group("v")) if m else None


def _holders(events, procs, lines, torch_line, gpu, total_mib) -> dict[str, object]:
    servers = _server_pids(events)
    on_gpu = (pl.col("gpu_index") == gpu).fill_null(True) if gpu is not None else pl.lit(True)
    holders = procs.filter(
        ~pl.col("gpu_proc_pid").is_in(servers) & (pl.col("gpu_proc_mem_mib").fill_null(0) >= HOLDER_MIN_MIB) & on_gpu
    ).sort("gpu_proc_mem_mib", descending=True).unique(subset=["gpu_proc_pid"], keep="first", maintain_order=True)
    named = [(r["gpu_proc_pid"], r["gpu_proc_name"], r["gpu_proc_mem_mib"], r["gpu_index"]) for r in holders.iter_rows(named=True)]
    if not named and torch_line:
        this = TORCH_THIS.search(torch_line)
        this_mib = mib(this.group("this")) if this else None
        for line in lines:
            for m in TORCH_PROC.finditer(line):
                pid, m_mib = int(m.group("pid")), mib(m.group("mem"))
                if pid not in servers and m_mib and m_mib >= HOLDER_MIN_MIB and (this_mib is None or abs(m_mib - this_mib) > 1):
                    named.append((pid, None, m_mib, gpu))
    if not named:
        return {}
    pid, name, m_mib, idx = named[0]
    total = _gpu_total(events, idx) or total_mib
    held = sum(n[2] for n in named)
    return {
        "gpu_other_pid": pid, "gpu_other_name": name, "gpu_other_mib": m_mib, "gpu_other_gpu": idx,
        "gpu_other_gpu_total_mib": total, "gpu_other_more": len(named) - 1, "gpu_other_more_mib": held - m_mib,
        "gpu_other_share_fits": max(0.05, math.floor((total - held) / total * 100 - 5) / 100) if total else None,
    }


def _start(lines: list[str]) -> dict[str, object]:
    m = next((m for line in lines if (m := FREE_START.search(line))), None)
    if not m:
        return {}
    free, total, share, want = (float(m.group(k)) for k in ("free", "total", "util", "want"))
    return {"start_free_gib": free, "start_total_gib": total, "start_used_gib": total - free, "start_share": share,
            "start_want_gib": want, "start_share_fits": max(0.05, math.floor((free / total - 0.02) * 100) / 100)}


def _smi_before_start(events: pl.DataFrame, facts: Facts, share: float | None) -> dict[str, object]:
    """The first nvidia-smi snapshot taken before the server started loading the model."""
    snaps = events.filter((pl.col("kind") == "gpu") & pl.col("gpu_mem_total_mib").is_not_null())
    if share is None or snaps.height == 0 or not facts.loading or facts.loading[0].ts is None:
        return {}
    first = snaps.filter(pl.col("ts").is_not_null() & (pl.col("ts") < facts.loading[0].ts)).sort("ts")
    if first.height == 0:
        return {}
    row = first.row(0, named=True)
    used, total = row["gpu_mem_used_mib"] or 0.0, row["gpu_mem_total_mib"]
    return {"smi_start_used_mib": used, "smi_start_total_mib": total, "smi_start_free_mib": total - used,
            "smi_start_want_mib": share * total,
            "smi_start_share_fits": max(0.05, math.floor(((total - used) / total - 0.02) * 100) / 100)}


def _kv(lines: list[str]) -> dict[str, object]:
    m = next((m for line in lines if (m := KV_NEW.search(line))), None)
    if m:
        return {"kv_max_len": int(m.group("L")), "kv_need_gib": float(m.group("need")), "kv_avail_gib": float(m.group("avail")),
                "kv_est_len": int(m.group("est")) if m.group("est") else None}
    m = next((m for line in lines if (m := KV_OLD.search(line))), None)
    if m:
        return {"kv_max_len": int(m.group("L")), "kv_tokens": int(m.group("tokens"))}
    return {}


def _gpu_total(events: pl.DataFrame, index: int | None) -> float | None:
    rows = events.filter(pl.col("gpu_mem_total_mib").is_not_null()
                         & ((pl.col("gpu_index") == index) if index is not None else pl.lit(True)).fill_null(True))
    return float(rows["gpu_mem_total_mib"].max()) if rows.height else None


def _weights(events, facts: Facts, gpu, total_mib, share) -> dict[str, object]:
    name = (facts.model_paths or facts.served_models or [None])[0]
    m = PARAMS.search(name.rsplit("/", 1)[-1]) if name else None
    total_gib = (total_mib / 1024) if total_mib else ((_gpu_total(events, gpu) or 0) / 1024 or None)
    out: dict[str, object] = {"gpu_total_gib": total_gib}
    if total_gib:
        out["gpu_usable_gib"] = total_gib * (share or VLLM_DEFAULT_SHARE)
    if not m:
        return out
    bits = 4 if re.search(r"(?i)awq|gptq|int4|4bit|q4", name) else 8 if re.search(r"(?i)fp8|int8|8bit", name) else 16
    size = float(m.group(1)) * bits / 8 * 1e9 / 2**30
    out.update(weights_model=name, weights_gib=size, weights_bits=bits, weights_room_gib=size * 1.2)
    if total_gib:
        out["weights_tp"] = 2 ** math.ceil(math.log2(size / out["gpu_usable_gib"] * 1.2))
    return out
