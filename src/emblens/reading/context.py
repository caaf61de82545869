"""What reading one member needs to know, and what it counts: the per-member settings
(`SourceContext`) and tallies (`Counts`), and the bounds every member is read within."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import polars as pl

from emblens.events.redact import Redactor
from emblens.knowledge.modeldata import ModelData
from emblens.patterns.literals import Prefilter
from emblens.settings import Limits

CHUNK_BYTES = 8 * 1024 * 1024
WORKERS = 2          # chunks scanned at once; each holds a chunk and its line frame in memory
WHOLE_BYTES = 256 * 1024    # a member this small is kept whole (SourceContext.whole)
MAX_LINE_BYTES = 64 * 1024   # a longer line is cut to this and counted, never stored whole
MAX_WALK_CHARS = 64 * 1024   # lines of whole-file sources (curl -v, nvidia-smi, pastes), walked in Python
COUNTED_ROWS = 20_000        # a server log's failing requests counted by minute; past this, by hour
                             # (the rows grow with the log's time span: 48,000 for four days of a
                             # busy server, 10 MiB twice over, in the counter and the event table)


@dataclass
class SourceContext:
    """Per-member settings for parsing."""

    label: str
    keep_all: bool = False
    whole: bool = False              # a small member (`WHOLE_BYTES`): every line that is not routine is kept, not
                                     # only those a rule's pattern could match (the prefilter is for large logs:
                                     # on a paste it lost the prose a cue reads, "I got 403 from the extension")
    keywords: "str | Prefilter | None" = None   # one regex of every rule text pattern (the prefilter)
    models: ModelData = ModelData()  # embedding model data (loaded with the rules, passed in)
    sniff: Callable[[bytes], tuple] | None = None   # picks the adapter of a region (emblens.ingest.sniff.sniff)
    fallback: object = None          # a format that reads what a server log's format does not place (the generic one)
    max_kept: int = Limits().kept_rows   # kept lines this member may hold (the run's budget sets it)
    collapse: bool = True            # count a server log's repeated failing requests by minute (Collapse)
    redactor: Redactor = field(default_factory=Redactor)   # the run's masking: its patterns and tally
    container_log: bool = False      # the member is a client container's compose log (its `service  | `
                                     # prefixes taken off): its events are marked `mentions_container`


@dataclass
class Counts:
    lines: int = 0
    events: int = 0
    unparsed: int = 0
    blank: int = 0
    recognised: int = 0
    stopped: str | None = None       # why reading ended early (corrupt data after the first chunk)
    kind: str | None = None          # what the member turned out to be, when the adapter read it as a paste
    cut: int = 0                     # lines longer than MAX_LINE_BYTES, cut
    dropped: int = 0                 # notable lines past the member's kept-row limit, counted only
    traffic: "pl.DataFrame | None" = None   # requests by minute and status (Tally.requests), when counted
    kv: "pl.DataFrame | None" = None        # KV-cache usage by minute (Tally.kv), when the log has it
    clock_last: str | None = None           # the last stamp of a chunk (Tally)

    def add(self, other: "Counts") -> None:
        for f in ("lines", "events", "unparsed", "blank", "recognised", "cut", "dropped"):
            setattr(self, f, getattr(self, f) + getattr(other, f))


