"""GPU memory figures for the out-of-memory rules: who holds memory and how much, what was free
at start, the memory share the server asks for, the KV cache needed and available, memory
reserved but unallocated, and the size of the weights. Numbers only: the rules in
rules/gpu/ decide which cause they point to and word it.

The figures come from the columns the formats filled wherever a line prints them (PyTorch's
allocator message, vLLM's start-up checks and the memory shares: `formats/messages.py`; nvidia-smi;
the server's arguments); which lines mean "out of memory" is the business of the `gpu.oom` rule
alone. This module reads no text.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from types import MappingProxyType

import polars as pl

from emblens.combiners.facts import Fact, Facts
from emblens.formats import registry
from emblens.formats.messages import TORCH_BY_PYTORCH, mib
from emblens.formats.messages import procs as procs_named

PARAMS = re.compile(r"(?i)(?<![\d.])(\d+(?:\.\d+)?)B(?![a-z])")
HOLDER_MIN_MIB = 1024      # a process holding less (a desktop's Xorg) is not counted as a holder
CONTEXT_MIB = 2048        # what a process holds beyond PyTorch's allocator: the CUDA context, cuBLAS and NCCL buffers
VLLM_DEFAULT_SHARE = 0.9   # vLLM's default gpu_memory_utilization

FACTS: Mapping[str, Fact] = MappingProxyType({
    "engine": Fact("text", "the server: vllm, sglang or tei, when a server log or version says which"),
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
    "kv_avail_gib": Fact("number", "GiB available for the KV cache after the weights (vLLM's check, or its start-up report)"),
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
    # the lines that print a figure (`formats.messages`), in the order of the event table: the first of each kind counts
    lines = events.filter(pl.col("kind").is_in(["log", "exception", "unparsed"]) & pl.col("mem_fraction_named").is_not_null())
    settings = events.filter(pl.col("kind") == "fact")
    procs = events.filter(pl.col("gpu_proc_pid").is_not_null())
    out: dict[str, object] = {}
    sglang = ("sglang" in facts.versions or events.filter((pl.col("origin") == "sglang")
                                                          | (pl.col("fact") == "command") & (pl.col("software") == "sglang")).height > 0
              or bool(lines["mem_fraction_named"].any()))   # SGLang's own wording
    servers = set(events.filter(pl.col("origin").is_in(registry.servers()))["origin"].unique().to_list())
    if sglang:
        out["engine"] = "sglang"
    elif "vllm" in servers or "vllm" in facts.versions:
        out["engine"] = "vllm"
    elif servers:
        out["engine"] = sorted(servers)[0]      # another server (text-embeddings-inference: tei)
    share = _first(settings, "mem_fraction" if sglang else "mem_util")
    if share is None:      # set in a line of code or a command pasted as text
        share = _first(events.filter(pl.col("kind") != "fact"), "mem_fraction" if sglang else "mem_util")
    if sglang and share is None:
        share = _first(lines, "mem_fraction")
    # vLLM reserves 0.9 of the GPU unless told otherwise; SGLang and other servers have no such default here
    default = VLLM_DEFAULT_SHARE if out.get("engine") in (None, "vllm") else None
    out["mem_share"] = share if share is not None else default
    out["gpu_procs_seen"] = procs.height > 0

    torch = _first_row(lines, "torch_alloc")
    gpu = total_mib = None
    if torch:
        gpu, total_mib = torch["torch_gpu"], mib(torch["torch_total"])
        out.update(oom_alloc=torch["torch_alloc"], oom_alloc_mib=mib(torch["torch_alloc"]), oom_gpu=gpu,
                   oom_total=torch["torch_total"], oom_total_mib=total_mib, oom_free=torch["torch_free"],
                   oom_free_mib=mib(torch["torch_free"]))
        if torch["torch_reserved"]:
            out.update(oom_reserved=torch["torch_reserved"], oom_reserved_mib=mib(torch["torch_reserved"]))
    out.update(_holders(events, procs, lines, torch, gpu, total_mib))
    out.update(_start(lines))
    out.update(_smi_before_start(events, facts, out["mem_share"]))
    out.update(_kv(lines))
    out.update(_weights(events, facts, gpu, total_mib, out["mem_share"]))
    return {k: v for k, v in out.items() if v is not None}


def _first(rows: pl.DataFrame, column: str):
    """The first value of a column among `rows`, or None."""
    values = rows[column].drop_nulls()
    return values[0] if values.len() else None


def _first_row(rows: pl.DataFrame, column: str) -> dict | None:
    """The first of `rows` where `column` is set, as a dict, or None."""
    hit = rows.filter(pl.col(column).is_not_null())
    return hit.row(0, named=True) if hit.height else None


def _holders(events, procs, lines, torch, gpu, total_mib) -> dict[str, object]:
    servers = _server_pids(events)
    on_gpu = (pl.col("gpu_index") == gpu).fill_null(True) if gpu is not None else pl.lit(True)
    holders = procs.filter(
        ~pl.col("gpu_proc_pid").is_in(servers) & (pl.col("gpu_proc_mem_mib").fill_null(0) >= HOLDER_MIN_MIB) & on_gpu
    ).sort("gpu_proc_mem_mib", descending=True).unique(subset=["gpu_proc_pid"], keep="first", maintain_order=True)
    named = [(r["gpu_proc_pid"], r["gpu_proc_name"], r["gpu_proc_mem_mib"], r["gpu_index"]) for r in holders.iter_rows(named=True)]
    if not named and torch:
        # no nvidia-smi: the processes PyTorch's message names, but this one (what it says this process holds).
        # With NVML, PyTorch lists every process on the GPU, this one too, by a pid the server's log may not
        # share (a container's): the one holding what PyTorch says it allocated here, plus what it reserved
        # and a CUDA context, is this one
        this_mib = mib(torch["torch_this"])
        by = TORCH_BY_PYTORCH.search(torch.get("text") or "") if this_mib is None else None
        low = mib(by.group("by")) if by else None
        high = low + (mib(torch["torch_reserved"]) or 0.0) + CONTEXT_MIB if low is not None else None
        for listed in lines["torch_procs"].drop_nulls().to_list():
            for pid, m_mib in procs_named(listed):
                itself = abs(m_mib - this_mib) <= 1 if this_mib is not None else low is not None and low <= m_mib <= high
                if pid not in servers and m_mib and m_mib >= HOLDER_MIN_MIB and not itself:
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


def _start(lines: pl.DataFrame) -> dict[str, object]:
    row = _first_row(lines, "vllm_free_gib")
    if row is None:
        return {}
    free, total, share, want = (row[k] for k in ("vllm_free_gib", "vllm_total_gib", "vllm_share", "vllm_want_gib"))
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


def _kv(lines: pl.DataFrame) -> dict[str, object]:
    row = _first_row(lines, "vllm_kv_need_gib")      # vLLM 0.11 and later
    if row is not None:
        return {"kv_max_len": row["vllm_kv_len"], "kv_need_gib": row["vllm_kv_need_gib"], "kv_avail_gib": row["vllm_kv_avail_gib"],
                "kv_est_len": row["vllm_kv_est_len"]}
    row = _first_row(lines, "vllm_kv_tokens")
    if row is not None:
        return {"kv_max_len": row["vllm_kv_len"], "kv_tokens": row["vllm_kv_tokens"]}
    row = _first_row(lines, "vllm_kv_avail_gib")      # only the start-up's report of what is left for it
    if row is not None:
        return {"kv_avail_gib": row["vllm_kv_avail_gib"]}
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
