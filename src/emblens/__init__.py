"""emblens: root causes for failed calls to self-hosted OpenAI-compatible model servers.

The library turns evidence (server logs, client tracebacks, bundles of them) into one event
table, runs the YAML rules over it and returns a report object. It never prints; the CLI and
other front ends render the report.
"""

from emblens.analysis import Analysis, analyze, load_events
from emblens.errors import EmblensError, InputError, RuleError

__version__ = "0.1.0"

__all__ = ["Analysis", "EmblensError", "InputError", "RuleError", "__version__", "analyze", "load_events"]
