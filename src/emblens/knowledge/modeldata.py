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
class ModelData:
    families: tuple[Family, ...] = ()
    dimensions: tuple[tuple[str, int], ...] = ()

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


def load(paths: Sequence[str | Path]) -> ModelData:
    """Model data from these files, earlier files first (their families are tried first and
    their dimensions win). Raises RuleError naming the file for a malformed one."""
    return _load(tuple(str(p) for p in paths))


@lru_cache(maxsize=8)
def _load(paths: tuple[str, ...]) -> ModelData:
    import yaml

    families: list[Family] = []
    dims: dict[str, int] = {}
    for path in paths:
        try:

            if Path(path).stat().st_size > 8 * 1024 * 1024:
                raise ValueError("larger than 8 MiB: not a model data file")
            data = safe_load(Path(path).read_text(encoding="utf-8")) or {}
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
