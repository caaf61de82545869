"""What every format shares: a line format's attributes (its patterns, its origin, the stamp that
times its lines) read by the streaming engine (`emblens.reading.engine`); a whole-file format
walked in Python."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import BinaryIO

import polars as pl

from emblens.events.schema import frame
from emblens.reading.context import MAX_WALK_CHARS, Counts, SourceContext
from emblens.reading.lines import ANSI


@dataclass
class Source:
    """Base of the adapters. Subclasses set the patterns and implement `parse_rows`."""

    name: str = "generic"
    origin: str = "generic"
    # anchored pattern recognising a well-formed line of the format (after unwrapping)
    line_pattern: str = r"."
    # lines always kept: facts, warnings, errors
    notable: str = r"(?i)\b(?:error|critical|fatal|exception|warning|traceback|failed)\b"
    # the stamp (group 1, to the second) of lines that carry one; set where the format has access
    # lines to count (`Tally`): lines without a stamp of their own take the last one before them
    clock: str | None = None

    def sniff(self, head: list[str]) -> float:  # pragma: no cover - overridden  # noqa: ARG002
        return 0.0

    def parse_rows(self, kept: pl.DataFrame) -> pl.DataFrame:  # pragma: no cover - overridden
        """Turn kept raw lines (`line`, `raw`, `wrap_ts`) into event columns plus `body` and `key`."""
        raise NotImplementedError


    def parse_stream(self, stream: BinaryIO, ctx: SourceContext) -> tuple[pl.DataFrame, Counts]:
        """Read a member through the streaming engine (`emblens.reading.engine.read`)."""
        from emblens.reading import engine

        return engine.read(self, stream, ctx)


class WholeFileSource(Source):
    """A source whose members are small and read whole (up to MAX_BYTES), then walked line by
    line in Python: curl -v transcripts and nvidia-smi dumps. Subclasses implement `parse_lines`;
    lines they report as used are events, the other non-blank lines are unparsed."""

    MAX_BYTES = 64 * 1024 * 1024

    def parse_lines(self, lines: list[str], ctx: SourceContext) -> tuple[list[dict], set[int], str | None]:  # pragma: no cover
        """Event rows (with `line`, 1-based), the numbers of the lines they account for, and a
        note when the member was understood only in part."""
        raise NotImplementedError

    def parse_stream(self, stream: BinaryIO, ctx: SourceContext) -> tuple[pl.DataFrame, Counts]:
        lines, counts = self.read_lines(stream, ctx)
        rows, used, note = self.parse_lines(lines, ctx)
        for row in rows:
            row["source"] = ctx.label
        self.account(counts, lines, used, note)
        return frame(rows), counts

    def read_lines(self, stream: BinaryIO, ctx: SourceContext) -> tuple[list[str], Counts]:
        """The member's lines (up to MAX_BYTES), colours and CRs removed, a secret's value on the
        line after its name masked."""
        raw = stream.read(self.MAX_BYTES + 1)
        counts = Counts()
        if len(raw) > self.MAX_BYTES:
            counts.stopped = f"only the first {self.MAX_BYTES // 2**20} MiB read"
            raw = raw[: self.MAX_BYTES]
        text = re.sub(ANSI, "", raw.decode("utf-8", "replace")).replace("\r", "")
        lines = text.split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        if lines:
            lines = ctx.redactor.next_lines(pl.Series(lines, dtype=pl.String)).to_list()
        long = [i for i, line in enumerate(lines) if len(line) > MAX_WALK_CHARS]
        for i in long:      # these lines are walked by Python regexes: keep them short
            lines[i] = lines[i][:MAX_WALK_CHARS]
        if long:
            note = f"{len(long):,} line(s) longer than {MAX_WALK_CHARS:,} characters cut to that length"
            counts.stopped = "; ".join(x for x in (counts.stopped, note) if x)
        return lines, counts

    @staticmethod
    def account(counts: Counts, lines: list[str], used: set[int], note: str | None) -> None:
        """Lines accounted for are events; the other non-blank lines are unparsed."""
        counts.stopped = "; ".join(x for x in (counts.stopped, note) if x) or None
        counts.lines = len(lines)
        counts.blank = sum(1 for line in lines if not line.strip())
        counts.events = sum(1 for i in used if 0 < i <= len(lines) and lines[i - 1].strip())
        counts.unparsed = counts.lines - counts.blank - counts.events
