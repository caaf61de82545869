"""emblens: root causes for failed calls to self-hosted OpenAI-compatible model servers.

The library turns evidence (server logs, client tracebacks, captures, nvidia-smi, bundles of
them) into one event table, runs the YAML rules over it and returns a report object. It never
prints; the CLI and other front ends render the report.

    from emblens import analyze
    analysis = analyze(["bundle.zip"])
    analysis.findings[0].rule          # the most likely root cause

    from emblens import Run, Settings, diagnose
    analysis = diagnose.run(["bundle.zip"], Run(Settings(redact="mine.txt")))   # the same, with settings

The names below are imported on first use, so `import emblens` stays cheap.
"""

from __future__ import annotations

import os

# polars allocates with jemalloc and sets it to keep freed pages for 0.5 s, then 1 s more as
# "muzzy" pages that still count in RSS. Reading a large log frees a chunk's worth every few
# milliseconds, so the peak grew with the input (292 MiB at 4 GiB against 264 MiB at 1 GiB).
# Giving them back after 0.3 s keeps it flat (249 / 241 MiB) at no measurable cost in time.
# polars appends this to its own setting (the later value wins); it applies only when emblens is
# imported before polars, and a setting of the user's own is kept.
os.environ.setdefault("_RJEM_MALLOC_CONF", "dirty_decay_ms:300,muzzy_decay_ms:0")

from emblens._version import __version__
from emblens.errors import EmblensError, InputError, RuleError

__all__ = ["Analysis", "Clock", "EmblensError", "InputError", "Limits", "RuleError", "Run", "Selection", "Settings",
           "__version__", "analyze", "diagnose", "load_events"]


def __getattr__(name: str):
    from importlib import import_module

    where = {"Analysis": "emblens.diagnose", "analyze": "emblens.diagnose", "load_events": "emblens.diagnose",
             "Run": "emblens.run", "Clock": "emblens.settings", "Limits": "emblens.settings",
             "Selection": "emblens.settings", "Settings": "emblens.settings"}
    if name == "diagnose":
        return import_module("emblens.diagnose")
    if name in where:
        return getattr(import_module(where[name]), name)
    raise AttributeError(f"module 'emblens' has no attribute {name!r}")
