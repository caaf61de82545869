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

from emblens._version import __version__
from emblens.errors import EmblensError, InputError, RuleError

__all__ = ["Analysis", "EmblensError", "InputError", "RuleError", "__version__", "analyze", "load_events"]


def __getattr__(name: str):
    if name in ("Analysis", "analyze", "load_events"):
        from emblens import analysis

        return getattr(analysis, name)
    raise AttributeError(f"module 'emblens' has no attribute {name!r}")
