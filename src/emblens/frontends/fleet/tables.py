"""The fleet's rows as Parquet tables, written in parts as replicas finish (the driver holds a few
hundred replicas' rows at most), and joined into one file per table at the end.

    findings.parquet     one row per replica × finding
    replicas.parquet     one row per replica: what was read, requests by status, errors, time span, why skipped
    failing.parquet      failing requests (status ≥ 400) per replica, minute and status
    unexplained.parquet  error lines no finding explains, per replica and template
    events/              with --events: each replica's event table, one Parquet file each

The schemas are `SCHEMAS` (README: "Fleet mode"); every file has every column, even when empty.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType

import polars as pl

from emblens import outfiles

_S, _I, _F, _T = pl.String(), pl.Int64(), pl.Float64(), pl.Datetime("us")
SCHEMAS: Mapping[str, Mapping[str, pl.DataType]] = MappingProxyType({table: MappingProxyType(columns) for table, columns in {
    "findings": {
        "replica": _S, "rule": _S, "title": _S, "severity": _S, "confidence": _F, "role": _S, "explained_by": _S,
        "cause": _S, "count": _I, "first_seen": _T, "last_seen": _T, "summary": _S, "requests_matched": _I,
        "requests_seen": _I, "evidence_source": _S, "evidence_line": _I, "evidence_text": _S,
    },
    "replicas": {
        "replica": _S, "location": _S, "status": _S, "reason": _S, "files": _I, "bytes": _I,
        "inputs": pl.List(pl.Struct({"source": _S, "kind": _S, "lines": _I, "events": _I})),
        "lines": _I, "events": _I, "requests": _I,
        "requests_by_status": pl.List(pl.Struct({"status": _I, "requests": _I})),
        "failed_requests": _I, "errors": _I, "first_ts": _T, "last_ts": _T, "skipped": pl.List(_S),
        "findings": _I, "root_cause": _S, "notices": pl.List(_S), "seconds": _F, "worker": _S,
    },
    "failing": {"replica": _S, "minute": _T, "status": _I, "requests": _I},
    "unexplained": {"replica": _S, "template": _S, "count": _I, "example_source": _S, "example_line": _I,
                    "example_text": _S},
}.items()})
TABLES = tuple(SCHEMAS)
FLUSH_ROWS = 20_000      # rows of all tables held before a part is written
FLUSH_REPLICAS = 500     # or replicas


def frame(table: str, rows: list[dict]) -> pl.DataFrame:
    schema = dict(SCHEMAS[table])
    return pl.DataFrame([{k: r.get(k) for k in schema} for r in rows], schema=schema, orient="row") if rows \
        else pl.DataFrame(schema=schema)


class Tables:
    """Rows added replica by replica, written in parts under `folder/.parts`, joined by `close`."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.parts_dir = self.folder / ".parts"
        self.parts_dir.mkdir(parents=True, exist_ok=True)
        self.rows: dict[str, list[dict]] = {t: [] for t in TABLES}
        self.parts: dict[str, list[Path]] = {t: [] for t in TABLES}
        self.held = self.replicas = 0

    def add(self, result: dict) -> None:
        self.rows["replicas"].append(result["replica"])
        for table in ("findings", "failing", "unexplained"):
            self.rows[table].extend(result[table])
        self.replicas += 1
        self.held += 1 + sum(len(result[t]) for t in ("findings", "failing", "unexplained"))
        if self.held >= FLUSH_ROWS or len(self.rows["replicas"]) >= FLUSH_REPLICAS:
            self.flush()

    def flush(self) -> None:
        for table, rows in self.rows.items():
            if rows:
                path = self.parts_dir / f"{table}-{len(self.parts[table]):05d}.parquet"
                frame(table, rows).write_parquet(path)
                self.parts[table].append(path)
        self.rows = {t: [] for t in TABLES}
        self.held = 0

    def close(self) -> dict[str, Path]:
        """Each table joined into `folder/<table>.parquet` (written whole or not at all), sorted by
        replica; the parts removed."""
        self.flush()
        out = {}
        for table in TABLES:
            path = self.folder / f"{table}.parquet"
            parts = self.parts[table]
            lazy = pl.scan_parquet(parts) if parts else pl.LazyFrame(schema=dict(SCHEMAS[table]))
            with outfiles.replacing(path) as f:
                lazy.sort("replica", maintain_order=True).collect(engine="streaming").write_parquet(f)
            out[table] = path
        shutil.rmtree(self.parts_dir, ignore_errors=True)
        return out
