"""`emblens analyze --follow`: the rules over logs that are still being written, like `tail -f`.

Each file (or standard input) is read from its start, then polled for what was appended. Only
whole lines are read (a line still being written waits for its newline). A chunk is parsed by
the format the file was recognised as (sniffed again while the file is young and looked generic),
with the same prefilter as a normal run: routine lines (a server's `200 OK` access lines, its
metrics) are counted, never kept, so memory stays flat however long the log runs. The kept events
are bounded too (`MAX_ROWS`, the oldest go first), and the traffic counts are folded by minute.

After every chunk that kept an event the rules run over what is kept, and a finding is printed
when it first appears (a line of text, or one JSON object per line with `--format json`), then
again when its count has doubled. A file truncated or replaced (log rotation) is read again from
its start, and said. Ctrl-C (or the end of standard input) ends it: the last analysis is written
to each `-o` file, and the exit status is --fail-on's as for `analyze`.
"""

from __future__ import annotations

import io
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import polars as pl

from emblens import diagnose
from emblens.diagnose import InputInfo, Reading
from emblens.events import redact
from emblens.events.schema import empty
from emblens.run import Run

POLL_S = 0.25                 # how often a file is looked at for new lines
MAX_CHUNK = 16 * 1024 * 1024  # bytes read at one go; a burst larger than this is read over several polls
MAX_ROWS = 100_000            # kept events across the files: the oldest go first
SNIFF_BYTES = 64 * 1024       # a young file is sniffed again until this much of it was seen
MAX_PARTIAL = 1024 * 1024     # bytes of a line not yet ended that are held; a longer line is read as it stands


@dataclass
class Tail:
    """One followed file: where reading stands, the part of a line not yet ended, its format."""

    label: str
    path: str | None              # None: standard input
    handle: object = None
    inode: tuple | None = None
    offset: int = 0
    lines: int = 0                # whole lines read so far (the next line's number is lines + 1)
    partial: bytes = b""
    head: bytes = b""             # the first bytes, for sniffing
    fmt: object = None
    ended: bool = False           # standard input closed
    info: InputInfo | None = None
    traffic: list = field(default_factory=list)
    kv: list = field(default_factory=list)


class Follower:
    """Follow `paths` with the rules of `run`; `say(finding, analysis)` is called for each finding
    when it first appears and when its count has doubled; `note(text)` for what the user should
    know (a rotation, a file that cannot be read)."""

    def __init__(self, paths: list[str], run: Run, *, say: Callable, note: Callable[[str], None],
                 max_rows: int = MAX_ROWS) -> None:
        self.run = run
        self.say, self.note = say, note
        self.max_rows = max_rows
        self.tails = [Tail("stdin" if p == "-" else p, None if p == "-" else p) for p in paths]
        self.events = empty()
        self.dropped = 0
        self.reported: dict[str, int] = {}
        self.analysis = None

    # -- reading ----------------------------------------------------------------------------------
    def _open(self, tail: Tail) -> None:
        if tail.path is None:
            tail.handle = sys.stdin.buffer
            os.set_blocking(tail.handle.fileno(), False)
            return
        try:
            tail.handle = open(tail.path, "rb")   # held open while followed, closed in close()
            st = os.fstat(tail.handle.fileno())
        except OSError as e:
            if tail.inode != ("missing",):
                self.note(f"{tail.label}: cannot read: {e.strerror or e}; waiting for it")
                tail.inode = ("missing",)
            tail.handle = None
            return
        tail.inode = (st.st_dev, st.st_ino)

    def _rotated(self, tail: Tail) -> bool:
        """The file was truncated, or its name now points at another file (rotation)."""
        try:
            st = os.stat(tail.path)
        except OSError:
            return False           # gone for now: keep reading what is open
        return (st.st_dev, st.st_ino) != tail.inode or st.st_size < tail.offset

    def _read(self, tail: Tail) -> bytes:
        """The bytes appended since the last poll (at most MAX_CHUNK); none from an input that ended
        (standard input closed, a file found not to be text)."""
        if tail.ended:
            return b""
        if tail.path is not None and tail.handle is not None and self._rotated(tail):
            tail.handle.close()
            self.note(f"{tail.label} was truncated or replaced: reading it again from its start")
            tail.handle, tail.offset, tail.partial, tail.lines = None, 0, b"", 0
        if tail.handle is None:
            self._open(tail)
            if tail.handle is None:
                return b""
        try:
            data = tail.handle.read(MAX_CHUNK) if tail.path is not None else os.read(tail.handle.fileno(), MAX_CHUNK)
        except BlockingIOError:
            return b""
        except OSError as e:
            self.note(f"{tail.label}: cannot read: {e.strerror or e}")
            return b""
        if tail.path is None and data == b"":
            tail.ended = True
        tail.offset += len(data or b"")
        return data or b""

    def poll(self) -> bool:
        """Read what each file gained; run the rules when an event was kept. Whether anything was read."""
        kept = []
        read_any = False
        for tail in self.tails:
            data = tail.partial + self._read(tail)
            if tail.fmt is None and data and not self._recognised(tail, data):
                continue
            cut = data.rfind(b"\n") + 1
            if (tail.ended or len(data) > MAX_PARTIAL) and data and not cut:
                cut = len(data)          # the last line of standard input has no newline; a line this long is cut
            chunk, tail.partial = data[:cut], data[cut:]
            if not chunk:
                continue
            read_any = True
            frame = self._parse(tail, chunk)
            if frame is not None and frame.height:
                kept.append(frame)
        if kept:
            self.events = pl.concat([self.events, *kept], how="diagonal_relaxed")
            if self.events.height > self.max_rows:
                self.dropped += self.events.height - self.max_rows
                self.events = self.events.tail(self.max_rows)
            self.evaluate(announce=True)
        return read_any

    def _recognised(self, tail: Tail, data: bytes) -> bool:
        """Whether an input's first bytes are text emblens reads; said once when they are not."""
        from emblens.ingest.sniff import sniff

        if b"\n" not in data and len(data) < 4096 and not tail.ended:
            tail.partial = data          # not enough to tell yet
            return False
        fmt, why = sniff(data[:SNIFF_BYTES])
        if fmt is None:
            self.note(f"{tail.label}: cannot be followed: {why}")
            tail.ended, tail.partial = True, b""
            if tail.path is not None and tail.handle is not None:
                tail.handle.close()
                tail.handle = None
            return False
        return True

    def _parse(self, tail: Tail, chunk: bytes) -> pl.DataFrame | None:
        from emblens.formats.generic import GenericLog
        from emblens.formats.messages import parse as read_messages
        from emblens.ingest.sniff import sniff
        from emblens.reading.context import SourceContext

        if len(tail.head) < SNIFF_BYTES:
            tail.head += chunk[: SNIFF_BYTES - len(tail.head)]
            if tail.fmt is None or isinstance(tail.fmt, GenericLog):
                tail.fmt = sniff(tail.head)[0] or tail.fmt or GenericLog()
        ruleset = self.run.ruleset
        ctx = SourceContext(tail.label, keywords=ruleset.prefilter, models=ruleset.models, sniff=sniff, fallback=GenericLog(),
                            max_kept=self.max_rows, collapse=False, redactor=self.run.redactor)
        try:
            events, counts = tail.fmt.parse_stream(io.BytesIO(chunk), ctx)
        except Exception as e:   # a reader's bug on hostile input: say it, keep following the rest
            self.note(f"{tail.label}: lines {tail.lines + 1}-: emblens could not read them ({type(e).__name__}); going on")
            events, counts = None, None
        before = tail.lines
        tail.lines += chunk.count(b"\n") + (0 if chunk.endswith(b"\n") else 1)
        if counts is not None:
            self._account(tail, counts)
        if events is None or not events.height:
            return None
        events = events.with_columns(pl.col("line") + before)
        return read_messages(self.run.redactor.frame(events), ruleset.messages)

    def _account(self, tail: Tail, counts) -> None:
        info = tail.info or InputInfo(tail.label, counts.kind or tail.fmt.name, 0, 0)
        info.events += counts.events
        info.unparsed += counts.unparsed
        info.lines += counts.lines
        info.blank += counts.blank
        info.written = time.time()         # being written now: the year of a stamp without one
        for name, frame in (("traffic", counts.traffic), ("kv", counts.kv)):
            if frame is not None and frame.height:
                getattr(tail, name).append(frame)
        # folded by minute, so a log that runs for days keeps a few rows per minute
        if tail.traffic:
            info.traffic = pl.concat(tail.traffic).group_by("minute", "status").agg(pl.col("requests").sum())
            tail.traffic = [info.traffic]
        if tail.kv:
            info.kv = pl.concat(tail.kv, how="diagonal_relaxed").group_by("minute").agg(pl.col("kv").max(), pl.col("wait").max())
            tail.kv = [info.kv]
        tail.info = info

    # -- the rules ----------------------------------------------------------------------------------
    def evaluate(self, announce: bool) -> None:
        inputs = [t.info for t in self.tails if t.info is not None]
        if self.dropped and inputs:
            inputs[0].note = f"the oldest {self.dropped:,} kept events were let go (at most {self.max_rows:,} are kept)"
        self.analysis = diagnose.run(Reading(self.events, inputs), self.run)
        if not announce:
            return
        for f in self.analysis.findings:
            before = self.reported.get(f.rule, 0)
            if before == 0 or f.count >= 2 * before:
                self.reported[f.rule] = f.count
                self.say(f, self.analysis, again=before > 0)

    def follow(self, stop: Callable[[], bool] = lambda: False) -> None:
        """Poll until every input ended (standard input closed) or `stop()`; Ctrl-C ends it too."""
        while not stop():
            if not self.poll():
                if all(t.ended for t in self.tails):
                    break
                time.sleep(POLL_S)
        if self.analysis is None:
            self.evaluate(announce=False)

    def close(self) -> None:
        for t in self.tails:
            if t.path is not None and t.handle is not None:
                t.handle.close()


def finding_line(f, again: bool = False) -> str:
    """A finding as one line of text: when, role, id, summary and where its first evidence is."""
    when = time.strftime("%H:%M:%S")
    role = "ROOT CAUSE" if f.role == "root_cause" else "FINDING"
    where = f" [{f.evidence[0].source}:{f.evidence[0].line}]" if f.evidence else ""
    if again:
        return redact.printable(f"{when} {f.rule} seen {f.count} times now{where}")
    return redact.printable(f"{when} {role} {f.rule} ({f.severity}, confidence {f.confidence:.2f}): {f.summary}{where}")


def finding_json(f, analysis, again: bool = False) -> str:
    """A finding as one JSON object on one line: the JSON report's finding, with when it was seen
    and whether it is new or seen again (`again`: its count doubled)."""
    import json
    from datetime import datetime, timezone

    from emblens.report.jsonreport import to_dict

    found = next((d for d in to_dict(analysis)["findings"] if d["rule"] == f.rule), None)
    seen = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return json.dumps({"seen_at": seen, "again": again, **(found or {"rule": f.rule})}, ensure_ascii=True)
