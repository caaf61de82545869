"""Settings a project keeps beside its code: `[tool.emblens]` in pyproject.toml, or emblens.toml.

As ruff and pytest find theirs, the nearest one wins: from the current folder up to the root, the
first folder holding an `emblens.toml`, or a `pyproject.toml` with a `[tool.emblens]` table, is the
project's (emblens.toml first in one folder). `--config FILE` names one; `--no-config` (or
`EMBLENS_NO_CONFIG=1`) reads none. What the command line says wins over the file.

    [tool.emblens]
    rules = ["ops/emblens-rules"]       # folders of your own rules, relative to this file
    select = ["auth", "model.*"]
    ignore = ["gpu.low_memory_headroom"]
    redact = "ops/our-token-patterns.txt"
    tz = "Europe/Berlin"
    fail-on = "error"

A key that is not one of these, or a value of the wrong type, is one error line naming the file
(with a did-you-mean), never ignored: a misspelt `ingore` would otherwise change nothing, silently.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from emblens.errors import EmblensError

FILES = ("emblens.toml", "pyproject.toml")
MAX_BYTES = 1024 * 1024          # a settings file larger than this is not one
MAX_PARENTS = 64                 # folders walked up from the current one

# key: (type, what it holds); list keys take a string too
KEYS = MappingProxyType({
    "rules": (list, "folders of your own rules (relative to the file)"),
    "select": (list, "rules to run: ids, areas or globs"),
    "ignore": (list, "rules not to run: ids, areas or globs"),
    "redact": (str, "a file of your own patterns to mask (relative to the file)"),
    "tz": (str, "the time zone the servers' logs are written in"),
    "fail-on": (str, "exit 1 when a finding of this severity or worse exists: error, warning or info"),
    "year": (int, "the year of stamps that carry none"),
})


@dataclass(frozen=True)
class Config:
    """What a settings file says (paths made absolute), and where it was read."""

    path: Path | None = None
    rules: tuple[Path, ...] = ()
    select: tuple[str, ...] = ()
    ignore: tuple[str, ...] = ()
    redact: Path | None = None
    tz: str | None = None
    fail_on: str | None = None
    year: int | None = None
    keys: tuple[str, ...] = field(default=())     # the keys the file set, for the note that says it was used

    def describe(self) -> str:
        """'settings from pyproject.toml [tool.emblens]: rules, select'."""
        where = f"{self.path} [tool.emblens]" if self.path and self.path.name == "pyproject.toml" else str(self.path)
        return f"settings from {where}: {', '.join(self.keys) or 'none set'}"


def find(start: Path | None = None) -> Path | None:
    """The nearest emblens.toml, or pyproject.toml holding [tool.emblens], from `start` up."""
    here = (start or Path.cwd()).resolve()
    for folder in [here, *here.parents][:MAX_PARENTS]:
        for name in FILES:
            candidate = folder / name
            if candidate.is_file() and (name == "emblens.toml" or _has_table(candidate)):
                return candidate
    return None


def _has_table(pyproject: Path) -> bool:
    try:
        return "emblens" in _read(pyproject).get("tool", {})
    except EmblensError:
        return False       # a broken pyproject.toml that may not be ours: not emblens's to judge


def _read(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_BYTES + 1)
    except OSError as e:
        raise EmblensError(f"{path}: cannot read: {e.strerror or e}") from None
    if len(data) > MAX_BYTES:
        raise EmblensError(f"{path}: larger than {MAX_BYTES // 1024} KiB: not a settings file")
    try:
        return tomllib.loads(data.decode("utf-8", "replace"))
    except tomllib.TOMLDecodeError as e:
        raise EmblensError(f"{path}: not valid TOML: {e}") from None


def load(explicit: str | Path | None = None, *, disabled: bool = False, start: Path | None = None) -> Config:
    """The settings of `explicit`, else of the nearest file (none when `disabled`)."""
    if disabled or os.environ.get("EMBLENS_NO_CONFIG", "").strip() not in ("", "0"):
        return Config()
    path = Path(explicit) if explicit is not None else find(start)
    if path is None:
        return Config()
    if explicit is not None and not path.is_file():
        raise EmblensError(f"{path}: no such settings file")
    doc = _read(path)
    table = doc.get("tool", {}).get("emblens") if path.name == "pyproject.toml" else doc
    if path.name == "pyproject.toml" and table is None:
        raise EmblensError(f"{path}: has no [tool.emblens] table")
    if not isinstance(table, dict):
        raise EmblensError(f"{path}: [tool.emblens] is not a table")
    return _config(path, table)


def _config(path: Path, table: dict) -> Config:
    from emblens.rules.spec import suggest

    values: dict[str, object] = {}
    for key, value in table.items():
        if key not in KEYS:
            known = ", ".join(KEYS)
            raise EmblensError(f"{path}: unknown key {key!r}{suggest(key, list(KEYS))}; the keys are {known}")
        kind, _ = KEYS[key]
        if kind is list and isinstance(value, str):
            value = [value]
        ok = (isinstance(value, list) and all(isinstance(v, str) for v in value)) if kind is list else \
            (isinstance(value, kind) and not isinstance(value, bool))
        if not ok:
            want = {list: "a list of strings", str: "a string", int: "a whole number"}[kind]
            raise EmblensError(f"{path}: {key} must be {want}")
        values[key] = value
    base = path.parent
    fail_on = values.get("fail-on")
    if fail_on is not None and fail_on not in ("error", "warning", "info"):
        raise EmblensError(f"{path}: fail-on must be error, warning or info, not {fail_on!r}")
    return Config(path=path, rules=tuple(base / r for r in values.get("rules", [])),
                  select=tuple(values.get("select", [])), ignore=tuple(values.get("ignore", [])),
                  redact=base / values["redact"] if "redact" in values else None, tz=values.get("tz"),
                  fail_on=fail_on, year=values.get("year"), keys=tuple(values))
