"""What one analysis is asked to do, frozen and checked when made: the bounds of what it reads
(`Limits`), how it settles times (`Clock`), which rules and which window of time it looks at
(`Selection`), and the rest of its inputs' settings (`Settings`). A bad value is a `ValueError`
that says what was expected; front ends turn it into one line.

    settings = Settings(clock=Clock(year=2025, tz="Europe/Berlin"), selection=Selection(select=("auth",)))
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

MiB = 1024 * 1024
GiB = 1024 * MiB


@dataclass(frozen=True, kw_only=True)
class Limits:
    """Bounds on what one analysis reads: the bundle (members, bytes, compression ratio, nesting)
    and the lines kept as events (a member keeps its first and last halves; the run shares a
    budget among its members, each keeping at least `min_kept_rows`)."""

    max_members: int = 5_000
    max_member_bytes: int = 8 * GiB
    max_total_bytes: int = 32 * GiB
    max_ratio: float = 250.0            # decompressed bytes per compressed byte
    ratio_floor_bytes: int = 64 * MiB   # a member this small is never refused for its ratio (logs compress well)
    max_depth: int = 3                  # archives inside archives
    max_inmemory_bytes: int = 512 * MiB  # nested zips and stdin are held in memory
    kept_rows: int = 500_000            # kept lines per member: the first and last halves, the middle counted
    run_rows: int = 1_000_000           # kept lines of a whole run, shared by its members...
    min_kept_rows: int = 10_000         # ...but every member keeps at least this many

    def __post_init__(self) -> None:
        for name in ("max_members", "max_member_bytes", "max_total_bytes", "max_depth", "max_inmemory_bytes",
                     "ratio_floor_bytes", "kept_rows", "run_rows", "min_kept_rows"):
            if getattr(self, name) < 1:
                raise ValueError(f"Limits.{name} must be at least 1")
        if self.max_ratio <= 0:
            raise ValueError("Limits.max_ratio must be above 0")


@dataclass(frozen=True, kw_only=True)
class Clock:
    """How times are settled: `year` for stamps that carry none (vLLM's `MM-DD`), `tz` the zone the
    servers' own stamps are written in (an IANA name; they are moved to UTC)."""

    year: int | None = None
    tz: str | None = None

    def __post_init__(self) -> None:
        if self.year is not None and not 1970 <= self.year <= 2100:
            raise ValueError(f"year {self.year} is out of range (1970-2100)")
        if self.tz is not None:
            from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

            try:
                ZoneInfo(self.tz)
            except (ZoneInfoNotFoundError, ValueError) as e:
                raise ValueError(f"unknown time zone {self.tz!r} (use an IANA name such as Europe/Berlin, "
                                 "America/New_York or UTC)") from e


@dataclass(frozen=True, kw_only=True)
class Selection:
    """Which rules run (`select`/`ignore`: ids, areas or globs, `RuleSet.select`) and which events
    they see (`since`/`until`: naive UTC times; events without a time are kept, since a
    traceback without a stamp may be the cause)."""

    select: tuple[str, ...] = ()
    ignore: tuple[str, ...] = ()
    since: datetime | None = None
    until: datetime | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "select", tuple(self.select))
        object.__setattr__(self, "ignore", tuple(self.ignore))
        if self.since is not None and self.until is not None and self.since > self.until:
            raise ValueError(f"since ({self.since:%Y-%m-%d %H:%M}) is after until ({self.until:%Y-%m-%d %H:%M})")


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Everything an analysis is asked: its rules (the built-in ones unless `include_builtin` is
    false, and the folders `rule_dirs`), the user's redaction patterns (`redact`, a file), and the
    limits, clock and selection above."""

    rule_dirs: tuple[Path, ...] = ()
    include_builtin: bool = True
    redact: Path | None = None
    limits: Limits = field(default_factory=Limits)
    clock: Clock = field(default_factory=Clock)
    selection: Selection = field(default_factory=Selection)

    def __post_init__(self) -> None:
        object.__setattr__(self, "rule_dirs", tuple(Path(d) for d in self.rule_dirs))
        if self.redact is not None:
            object.__setattr__(self, "redact", Path(self.redact))
