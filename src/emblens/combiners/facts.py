"""Facts: one view of what the servers said about themselves, combined from every source.

Served model names come from the server's own arguments (`--served-model-name`, else `--model`
as given, the last path component too since clients often use it); the listen ports, whether an
API key is required, versions, and where the ready and loading lines stand. Other combiners add
their figures to `Facts.figures`; rules see all of them by name (`as_values`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType

import polars as pl

from emblens.formats import registry


@dataclass(frozen=True)
class Fact:
    """A fact rules may name: its type (text, number, bool, list), what it holds, and, for the
    servers' own facts, how it is read from `Facts` (`get`; the other combiners' figures are
    values they computed, kept in `Facts.figures` under the fact's name)."""

    type: str
    doc: str
    get: Callable[[Facts], object] | None = None


FACTS: Mapping[str, Fact] = MappingProxyType({
    "served_models": Fact("list", "served model names (--served-model-name, else --model; /v1/models answers; a pasted "
                                  "start command)", lambda f: f.served_models),
    "model_paths": Fact("list", "the --model arguments as given", lambda f: f.model_paths),
    "listen_ports": Fact("list", "ports the servers said they listen on", lambda f: f.listen_ports),
    "listen_port": Fact("number", "the first of listen_ports", lambda f: f.listen_ports[0] if f.listen_ports else None),
    "api_key_required": Fact("bool", "whether a server was started with --api-key", lambda f: f.api_key_required),
    "max_model_len": Fact("number", "the server's max_model_len / context_length", lambda f: f.max_model_len),
    "server_ready": Fact("bool", "a ready line was seen (Application startup complete, fired up and ready to roll)",
                         lambda f: bool(f.ready)),
    "server_loading": Fact("bool", "a model loading line was seen", lambda f: bool(f.loading)),
    "server_log": Fact("bool", "the inputs hold a model server's own log", lambda f: bool(f.servers)),
})
VERSION_SUFFIX = "_version"   # <software>_version, e.g. vllm_version, openai_version, nvidia_driver_version


@dataclass(frozen=True)
class Mark:
    """Where a fact line stands: source, line and time (time may be unknown)."""

    source: str
    line: int
    ts: datetime | None
    stamp: str | None = None     # the time as written


@dataclass
class Facts:
    served_models: list[str] = field(default_factory=list)
    model_paths: list[str] = field(default_factory=list)
    listen_ports: list[int] = field(default_factory=list)
    api_key_required: bool | None = None
    versions: dict[str, str] = field(default_factory=dict)
    max_model_len: int | None = None
    ready: list[Mark] = field(default_factory=list)
    loading: list[Mark] = field(default_factory=list)
    servers: list[str] = field(default_factory=list)   # sources that are server logs
    gpus: list[dict] = field(default_factory=list)      # last nvidia-smi snapshot per GPU (see gpu_state)
    gpu_series: list[dict] = field(default_factory=list)  # memory per snapshot, when there are several
    figures: dict[str, object] = field(default_factory=dict)  # what the other combiners computed

    def as_values(self) -> dict[str, object]:
        """The facts rules may name as `$name` or test in a `facts:` node: the servers' own (each
        read as `FACTS` says), a version per software, and the other combiners' figures."""
        values: dict[str, object] = {name: fact.get(self) for name, fact in FACTS.items() if fact.get is not None}
        for software, version in self.versions.items():
            values[f"{software}{VERSION_SUFFIX}"] = version
        values.update(self.figures)
        return values


def _unique(values) -> list:
    out: list = []
    for v in values:
        if v is not None and v not in out:
            out.append(v)
    return out


def server_facts(events: pl.DataFrame) -> Facts:
    """Build the facts from the fact rows of the event table."""
    f = events.filter(pl.col("kind") == "fact").sort(["source", "line"])
    facts = Facts()
    facts.servers = _unique(events.filter(pl.col("origin").is_in(registry.servers()))["source"].unique(maintain_order=True).to_list())
    facts.gpus, facts.gpu_series = gpu_state(events)
    if f.height == 0:
        return facts
    served: list[str] = []
    for names in f["served_models"].to_list():
        for name in (names or "").split(","):
            name = name.strip()
            if name and name not in served:
                served.append(name)
    facts.served_models = served
    facts.model_paths = _unique(f["model_path"].to_list())
    facts.listen_ports = _unique(f["listen_port"].to_list())
    keys = [v for v in f.filter(pl.col("fact").is_in(["args", "command"]))["api_key_required"].to_list() if v is not None]
    facts.api_key_required = any(keys) if keys else None
    for software, version in f.filter(pl.col("software_version").is_not_null()).select("software", "software_version").iter_rows():
        facts.versions[software] = version
    lens = [v for v in f["max_model_len"].to_list() if v is not None]
    facts.max_model_len = lens[-1] if lens else None
    facts.ready = [Mark(*row) for row in f.filter(pl.col("fact") == "ready").select("source", "line", "ts", "ts_text").iter_rows()]
    facts.loading = [Mark(*row) for row in f.filter(pl.col("fact") == "loading").select("source", "line", "ts", "ts_text").iter_rows()]
    return facts


def gpu_state(events: pl.DataFrame) -> tuple[list[dict], list[dict]]:
    """The last snapshot of each GPU (memory, top processes) and, where a source holds several
    snapshots, memory used per snapshot."""
    gpus = events.filter((pl.col("kind") == "gpu") & pl.col("gpu_proc_pid").is_null())
    if gpus.height == 0:
        return [], []
    last = gpus.sort(["source", "gpu_snapshot", "line"]).group_by(["source", "gpu_index"], maintain_order=True).last()
    procs = events.filter(pl.col("gpu_proc_pid").is_not_null())
    state = []
    for r in last.iter_rows(named=True):
        mine = procs.filter((pl.col("source") == r["source"]) & (pl.col("gpu_snapshot") == r["gpu_snapshot"])
                            & ((pl.col("gpu_index") == r["gpu_index"]) if r["gpu_index"] is not None else pl.lit(True)))
        top = mine.sort("gpu_proc_mem_mib", descending=True, nulls_last=True).head(3)
        state.append({
            "source": r["source"], "line": r["line"], "index": r["gpu_index"], "name": r["gpu_name"],
            "used_mib": r["gpu_mem_used_mib"], "total_mib": r["gpu_mem_total_mib"], "free_mib": r["gpu_mem_free_mib"],
            "ts": r["ts"], "mig": r["gpu_mig"],
            "processes": [{"pid": p["gpu_proc_pid"], "name": p["gpu_proc_name"], "used_mib": p["gpu_proc_mem_mib"]}
                          for p in top.iter_rows(named=True)],
        })
    series = []
    multi = gpus.group_by("source").agg(pl.col("gpu_snapshot").n_unique().alias("n")).filter(pl.col("n") > 1)["source"].to_list()
    for r in gpus.filter(pl.col("source").is_in(multi)).sort(["source", "gpu_snapshot", "gpu_index"]).iter_rows(named=True):
        series.append({"source": r["source"], "line": r["line"], "ts": r["ts"], "snapshot": r["gpu_snapshot"],
                       "index": r["gpu_index"], "used_mib": r["gpu_mem_used_mib"], "total_mib": r["gpu_mem_total_mib"]})
    return state, series
