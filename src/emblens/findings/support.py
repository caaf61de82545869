"""A model newer than the server release that runs it.

People run a model on the day it is published with the server they installed months before: vLLM
0.10.1 with Qwen3-VL, an Ollama 0.5 pulling Gemma 3, a llama.cpp build from before the model's
architecture. The failure they see is seldom the server's "not supported" line: an AttributeError
deep in the model code, a weight that has no parameter, a runner that exits, a bare "500". What
names the cause is two facts the paste holds apart: the model (its repository id, tag, GGUF name,
architecture class or `model_type`) and the server's version (a pin, `vllm --version`, an image
tag, an issue template's "Ollama version" field, the server's own start-up line).

`data/model_support.yaml` says, per model family, the first release of each server whose source
supports it (read from the servers' history: see each family's `source`). `said_versions` reads the
versions the evidence gives; `newer_model` finds a named family whose first supporting release
of a server is later than the version the evidence gives for it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import NamedTuple

import polars as pl

from emblens.knowledge.modeldata import loose
from emblens.rules.operators import version_key

MAX_ROWS = 20_000        # rows of the evidence read for names and versions (a paste is a few hundred)
MAX_TEXT = 2_048         # characters of a row read
MAX_HITS = 400           # rows holding a software's name that are read for its version

_NUM = r"v?(\d+\.\d+(?:\.\d+)?(?:\.\d+)?(?:\.?(?:post|rc|dev)\d+)?)"
# how each server's version is written: pins and `pip list` columns, `--version` and collect_env
# output, image tags, issue-template fields, a sentence ("vLLM 0.10.1", "on ollama v0.5.13")
_SOFTWARE: Mapping[str, tuple[str, str]] = MappingProxyType({
    # key as facts name it: (what a row holding it has, in lower case; the pattern whose first group that took part is the version)
    "vllm": (r"vllm", r"(?i)(?<![\w-])vllm(?:[-_]openai)?(?:[-_]project/vllm-openai)?"
                     r"(?:\s*(?:==|>=|@|:|=)\s*|\s+version\s*:?\s*|\s+v?(?=\d)|\s*:\s*v(?=\d)|\s+)" + _NUM + r"\b"),
    "sglang": (r"sglang", r"(?i)(?<![\w-])(?:lmsysorg/)?sglang(?:\[all\])?"
                         r"(?:\s*(?:==|>=|@|:|=)\s*|\s+version\s*:?\s*|\s+)" + _NUM + r"\b"),
    "ollama": (r"ollama", r"(?i)(?<![\w-])ollama(?:/ollama)?(?:\s+version(?:\s+is)?\s*:?\s*|\s*[:=]\s*|\s+)" + _NUM + r"\b"),
    "llamacpp": (r"llama|version:|build[:=]|build =", r"(?i)(?:(?:^|\s)(?:version|build)\s*[:=]\s*(\d{3,5})\s*\([0-9a-f]{6,}\)"
                          r"|\bllama(?:\.cpp|-server|-cli|-b)?[\s:=-]*(?:build\s*)?\bb(\d{3,5})\b)"),
    "transformers": (r"transformers", r"(?i)(?<![\w-])`?transformers`?(?:\s*(?:==|>=|:|=)\s*|\s+version\s*:?\s*|\s+)" + _NUM + r"\b"),
    "tei": (r"text-embeddings", r"(?i)text-embeddings-inference(?:\s+version)?[\s:=]*(?:(?:cpu|cuda|turing|hopper|\d{2})-)*" + _NUM),
})
_COMPILED = MappingProxyType({k: re.compile(p) for k, (_, p) in _SOFTWARE.items()})
# an issue template's field on its own line, the version on one of the next lines
_FIELD = re.compile(r"(?i)^\W*(vllm|sglang|ollama|llama\.cpp|transformers)\s+version\W*$")
_BARE = re.compile(r"^\W*" + _NUM + r"\W*$")
_FIELD_KEY = MappingProxyType({"vllm": "vllm", "sglang": "sglang", "ollama": "ollama", "llama.cpp": "llamacpp",
                               "transformers": "transformers"})
NAMES = MappingProxyType({"vllm": "vLLM", "sglang": "SGLang", "ollama": "Ollama", "llamacpp": "llama.cpp",
                          "transformers": "transformers", "tei": "text-embeddings-inference"})


ORDER = ("vllm", "sglang", "ollama", "llamacpp", "tei", "transformers")


class Said(NamedTuple):
    version: str
    source: str | None
    line: int | None


def _rows(events: pl.DataFrame) -> pl.DataFrame:
    text = pl.coalesce(pl.col("message"), pl.col("text")) if "message" in events.columns else pl.col("text")
    return events.head(MAX_ROWS).select("source", "line", text.fill_null("").str.slice(0, MAX_TEXT).alias("t"))


def said_versions(events: pl.DataFrame, values: dict, rows: pl.DataFrame | None = None) -> dict[str, Said]:
    """The version of each server the evidence gives: the servers' own start-up lines (facts) first,
    then the first a paste writes."""
    out: dict[str, Said] = {}
    for key in _SOFTWARE:
        v = values.get(f"{key}_version")
        if isinstance(v, str) and re.search(r"\d", v):
            out[key] = Said(v, None, None)
    if events.height == 0 or "text" not in events.columns:
        return out
    rows = _rows(events) if rows is None else rows
    low = pl.col("t").str.to_lowercase()
    for key, (literal, _) in _SOFTWARE.items():
        if key in out:
            continue
        for source, line, t in rows.filter(low.str.contains(literal)).head(MAX_HITS).iter_rows():
            m = _COMPILED[key].search(t)
            if m:
                version = next(g for g in m.groups() if g)
                out[key] = Said("b" + version if key == "llamacpp" else version, source, line)
                break
    fields = rows.filter(pl.col("t").str.contains(r"(?i)^\W*(?:vllm|sglang|ollama|llama\.cpp|transformers)\s+version\W*$"))
    for source, line, t in fields.head(20).iter_rows():
        key = _FIELD_KEY[_FIELD.match(t).group(1).lower()]
        if key in out:
            continue
        after = rows.filter((pl.col("source") == source) & (pl.col("line") > line) & (pl.col("line") <= line + 4)
                            & (pl.col("t").str.strip_chars() != ""))
        if after.height and (m := _BARE.match(after["t"][0])):
            out[key] = Said(m.group(1), source, after["line"][0])
    return out


class Newer(NamedTuple):
    family: str
    named: str            # the name as the evidence writes it
    software: str
    said: Said
    since: str
    source: str           # where the first supporting release was read
    row: tuple[str, int]  # where the name stands


def newer_model(events: pl.DataFrame, values: dict, support) -> Newer | None:
    """The first family the evidence names whose first supporting release of a server is later
    than the version the evidence gives for that server (None when no version or no such family)."""
    if not support or events.height == 0 or "text" not in events.columns:
        return None
    read = _rows(events)
    said = said_versions(events, values, read)
    if not said:
        return None
    # the servers first, transformers (often the client's, not the server's) last
    candidates = sorted(((fam, key, since) for fam in support for key, since in fam.since
                         if key in said and version_key(said[key].version) < version_key(since)),
                        key=lambda c: ORDER.index(c[1]))
    if not candidates:
        return None
    # (not a server's list of what it supports, which names every architecture it has)
    rows = read.filter(~pl.col("t").str.contains(r"(?i)supported (?:model )?architectures|supported models"))
    for fam, key, since in candidates:
        # rows the family's pattern without its look-arounds picks (vectorised), read by the full pattern
        hits = rows.filter(pl.col("t").str.contains(f"(?i){loose(fam.match)}")).head(MAX_READ)
        if hits.height == 0:
            continue
        # the fullest name a line gives (`Qwen/Qwen3-VL-235B-A22B-Instruct` before a title's `Qwen3-VL`)
        pattern = re.compile(fam.match, re.I)
        named = [(_token(t, m.end()), source, line) for source, line, t in hits.iter_rows()
                 for m in pattern.finditer(t) if m.end() > m.start()]
        named = [n for n in named if n[0] and not _FILE.search(n[0])][:MAX_NAMED]
        if not named:
            continue
        name, source, line = max(named, key=lambda n: ("/" in n[0], len(n[0]) <= MAX_NAME, len(n[0])))
        return Newer(fam.name, name[:MAX_NAME], key, said[key], since, fam.sources.get(key, ""), (source, line))
    return None


_FILE = re.compile(r"(?i)\.(?:ya?ml|json|py|txt|md|sh|log|toml|ipynb)$")   # a config or script the model names
_TOKEN = re.compile(r"[A-Za-z0-9_./:@+-]")


def _token(text: str, end: int) -> str:
    """The name a match ending at `end` stands in: the run of name characters around its last one
    (`Qwen/Qwen3-VL-8B-Instruct` for a match of `Qwen3-VL`; `llama3.1` in "running llama3.1")."""
    start, stop = end - 1, end
    while start > 0 and end - start < MAX_NAME and _TOKEN.match(text[start - 1]):
        start -= 1
    while stop < len(text) and stop - end < MAX_NAME and _TOKEN.match(text[stop]):
        stop += 1
    return text[start:stop].strip("./:-`'\"")


MAX_READ = 200     # rows a family's wider pattern picks, read by its full one
MAX_NAMED = 20     # names of a family compared for the fullest
MAX_NAME = 80
