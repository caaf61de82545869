"""The rule engine: YAML rules (one file per rule, fixtures beside it) compiled to polars
expressions over the event table. See `docs` in README.md for the rule format."""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def builtin_dir() -> Path:
    """The rules shipped with emblens: inside the wheel, or `rules/` of a source checkout."""
    packaged = resources.files("emblens").joinpath("_rules")
    if packaged.is_dir():
        return Path(str(packaged))
    checkout = Path(__file__).resolve().parents[3] / "rules"
    return checkout
