"""What embedding model families expect: their instruction prefixes and vector sizes.

The data lives in rule folders (`data/embedding_models.yaml`), so users extend it the way they
extend the rules; `emblens.rules.loader` loads it with the rules and the analysis passes it to
the sources and combiners that need it. This module only holds the data and reads the files.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from emblens.errors import RuleError
from emblens.knowledge.yamlsafe import safe_load
from emblens.patterns.linear import rust_ok

FILE = Path("data") / "embedding_models.yaml"
SUPPORT_FILE = Path("data") / "model_support.yaml"   # the first release of each server that runs a model family


@dataclass(frozen=True)
class Family:
    name: str
    match: str          # a regex for the linear-time (Rust) engine the rules use, matched ignoring case
    prefixes: tuple[str, ...]
    sides: str          # both | queries

    def matches(self, model: str) -> bool:
        return _search(self.match, model)


@lru_cache(maxsize=4096)
def _search(pattern: str, text: str) -> bool:
    """Model names are few: each (pattern, name) pair is tested once, by polars' linear engine."""
    import polars as pl

    return bool(pl.Series([text[:1024]], dtype=pl.String).str.contains(f"(?i){pattern}").item())


@dataclass(frozen=True)
class Support:
    """A model family and the first release of each server whose source supports it."""
    name: str
    match: str                           # how the evidence names it (repository id, tag, class, model_type)
    since: tuple[tuple[str, str], ...]   # (server as facts name it: vllm, sglang, ollama, llamacpp, ...), version
    sources: dict                        # server -> where that release was read


@dataclass(frozen=True)
class Route:
    """A route of a server and the first release that registers it."""
    server: str          # as facts name it (ollama, llamacpp)
    route: str
    since: str
    source: str


@dataclass(frozen=True)
class ModelData:
    families: tuple[Family, ...] = ()
    dimensions: tuple[tuple[str, int], ...] = ()
    support: tuple[Support, ...] = ()
    routes: tuple[Route, ...] = ()

    def family(self, model: str | None) -> Family | None:
        if not model:
            return None
        return next((f for f in self.families if f.matches(model)), None)

    def dimension(self, model: str | None) -> int | None:
        if not model:
            return None
        key = model.rsplit("/", 1)[-1].lower()
        return next((d for name, d in self.dimensions if name == key), None)

    @property
    def all_prefixes(self) -> tuple[str, ...]:
        seen: list[str] = []
        for f in self.families:
            seen += [p for p in f.prefixes if p not in seen]
        return tuple(seen)


def load(paths: Sequence[str | Path], support: Sequence[str | Path] = ()) -> ModelData:
    """Model data from these files, earlier files first (their families are tried first and
    their dimensions win), with the model support tables of `support` (earlier first too).
    Raises RuleError naming the file for a malformed one."""
    data = _load(tuple(str(p) for p in paths))
    if not support:
        return data
    from dataclasses import replace

    families, routes = _support(tuple(str(p) for p in support))
    return replace(data, support=families, routes=routes)


def _read(path: str, what: str) -> dict:
    """A data file's YAML, refused past 8 MiB (raises ValueError, OSError or yaml's errors)."""
    if Path(path).stat().st_size > 8 * 1024 * 1024:
        raise ValueError(f"larger than 8 MiB: not {what}")
    return safe_load(Path(path).read_text(encoding="utf-8")) or {}


def loose(pattern: str) -> str:
    """`pattern` without its look-around groups (`(?=…)`, `(?!…)`, `(?<=…)`, `(?<!…)`): a wider regex the
    linear-time engine takes, to pick the rows the full pattern (Python's `re`) then reads."""
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "\\":
            out.append(pattern[i:i + 2])
            i += 2
            continue
        if c == "[":                      # a class: copied whole (a `(` inside is a character)
            j = i + 1
            if j < n and pattern[j] == "^":
                j += 1
            if j < n and pattern[j] == "]":
                j += 1
            while j < n and pattern[j] != "]":
                j += 2 if pattern[j] == "\\" else 1
            out.append(pattern[i:j + 1])
            i = j + 1
            continue
        if pattern.startswith(("(?=", "(?!", "(?<=", "(?<!"), i):
            depth, j = 0, i
            while j < n:
                if pattern[j] == "\\":
                    j += 2
                    continue
                if pattern[j] == "[":
                    j += 1
                    while j < n and pattern[j] != "]":
                        j += 2 if pattern[j] == "\\" else 1
                elif pattern[j] == "(":
                    depth += 1
                elif pattern[j] == ")":
                    depth -= 1
                    if depth == 0:
                        break
                j += 1
            i = j + 1
            continue
        out.append(c)
        i += 1
    return "".join(out)


SUPPORT_KEYS = frozenset({"vllm", "sglang", "ollama", "llamacpp", "transformers", "tei"})


ROUTE_SERVERS = frozenset({"ollama", "llamacpp"})


@lru_cache(maxsize=8)
def _support(paths: tuple[str, ...]) -> tuple[tuple[Support, ...], tuple[Route, ...]]:
    """The model families (`families:`) and the routes (`routes:`) of the model support files, each file read
    once (earlier files first; a later file's entry for a server and route already given is ignored)."""
    import yaml

    out: list[Support] = []
    routes: dict[tuple[str, str], Route] = {}
    for path in paths:
        try:
            data = _read(path, "a model support file")
            for f in data.get("families") or []:
                re.compile(f["match"])
                if not rust_ok(f"(?i){loose(f['match'])}"):
                    raise ValueError(f"family {f['name']!r}: match {f['match']!r} without its look-arounds is not a "
                                     "regex of the linear-time engine (no back-references)")
                since = {str(k): str(v) for k, v in (f.get("since") or {}).items()}
                unknown = set(since) - SUPPORT_KEYS
                if unknown:
                    raise ValueError(f"family {f['name']!r}: since names {sorted(unknown)}; known: {sorted(SUPPORT_KEYS)}")
                out.append(Support(str(f["name"]), str(f["match"]), tuple(since.items()),
                                   {str(k): str(v) for k, v in (f.get("source") or {}).items()}))
            for r in data.get("routes") or []:
                server, route = str(r["server"]), str(r["route"])
                if server not in ROUTE_SERVERS:
                    raise ValueError(f"route {route!r}: server {server!r}; known: {sorted(ROUTE_SERVERS)}")
                if not route.startswith("/"):
                    raise ValueError(f"route {route!r} does not start with /")
                routes.setdefault((server, route), Route(server, route, str(r["since"]), str(r.get("source") or "")))
        except (OSError, yaml.YAMLError, KeyError, TypeError, ValueError, re.error, AttributeError) as e:
            raise RuleError(f"model support data: {type(e).__name__}: {e}", path=path) from None
    return tuple(out), tuple(routes.values())


@lru_cache(maxsize=8)
def _load(paths: tuple[str, ...]) -> ModelData:
    import yaml

    families: list[Family] = []
    dims: dict[str, int] = {}
    for path in paths:
        try:

            data = _read(path, "a model data file")
            for f in data.get("families") or []:
                if not rust_ok(f"(?i){f['match']}"):
                    raise ValueError(f"family {f['name']!r}: match {f['match']!r} is not a regex of the linear-time "
                                     "engine (no look-around or back-references)")
                families.append(Family(str(f["name"]), str(f["match"]),
                                       tuple(str(p) for p in f.get("prefixes") or ()), str(f.get("sides", "both"))))
            for name, dim in (data.get("dimensions") or {}).items():
                dims.setdefault(str(name).lower(), int(dim))
        except (OSError, yaml.YAMLError, KeyError, TypeError, ValueError, re.error, AttributeError) as e:
            raise RuleError(f"embedding model data: {type(e).__name__}: {e}", path=path) from None
    return ModelData(tuple(families), tuple(dims.items()))
