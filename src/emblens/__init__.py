"""emblens: root causes for failed calls to self-hosted OpenAI-compatible model servers.

The library turns evidence (server logs, client tracebacks, captures, nvidia-smi, bundles of
them) into one event table, runs the YAML rules over it and returns a report object. It never
prints; the CLI and other front ends render the report.

    from emblens import analyze
    analysis = analyze(["bundle.zip"])
    analysis.findings[0].rule          # the most likely root cause

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

__all__ = ["Analysis", "EmblensError", "InputError", "RuleError", "__version__", "analyze", "load_events"]


def __getattr__(name: str):
    if name in ("Analysis", "analyze", "load_events"):
        from emblens import diagnose

        return getattr(diagnose, name)
    raise AttributeError(f"module 'emblens' has no attribute {name!r}")
