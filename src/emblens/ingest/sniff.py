"""Decide what a member is from its first bytes, not its name."""

from __future__ import annotations

import re

from emblens.formats.python_source import PYTHON_SOURCE, is_python
from emblens.formats.registry import PASTE, RECORDS, REGISTRY, Source
from emblens.reading.lines import ANSI, COMPOSE, DOCKER_JSON, KUBECTL_TS

HEAD_BYTES = 64 * 1024
_ANSI = re.compile(ANSI)
_KUBECTL = re.compile(KUBECTL_TS)
_COMPOSE = re.compile(COMPOSE)
_DOCKER = re.compile(DOCKER_JSON + r'((?:[^"\\]|\\.)*)"')


def sniff(head: bytes) -> tuple[Source | None, str]:
    """The best adapter for a member starting with `head`, or None and why it cannot be read."""
    for record in RECORDS:
        if record.sniff_bytes(head) > 0.5:
            return record, record.name
    if b"\x00" in head[:8192]:
        return None, "binary file (contains NUL bytes)"
    text = head.decode("utf-8", "replace")
    bad = text.count("\ufffd")
    if bad > max(8, len(text) // 20):
        return None, "not UTF-8 text (undecodable bytes)"
    controls = sum(1 for ch in text[:8192] if ord(ch) < 32 and ch not in "\t\n\r\x1b\x0c")
    if controls > max(8, len(text[:8192]) // 50):
        return None, "binary file (control bytes)"
    lines = []
    for line in text.splitlines()[:400]:
        line = _ANSI.sub("", line)
        m = _DOCKER.match(line)
        if m:
            line = m.group(1).encode().decode("unicode_escape", "replace").rstrip("\n")
        line = _KUBECTL.sub("", line)
        lines.append(line)
    if lines and sum(bool(_COMPOSE.match(x)) for x in lines) > len(lines) / 2:    # docker compose logs
        lines = [_COMPOSE.sub("", x, count=1) for x in lines]
    best = max(REGISTRY, key=lambda s: s.sniff(lines))
    return best, best.name


def choose(head: bytes, size: int | None) -> tuple[Source | None, str]:
    """The format to read a member with: `sniff`'s, except that a small member of a format read as a
    paste when small (`Source.pasted`: plain text, a client traceback among text) is read region
    by region, since it is rarely one format throughout; None and why when it cannot be read."""
    fmt, why = sniff(head)
    if fmt is None:
        return None, why
    if fmt.pasted and is_python(head.decode("utf-8", "replace"), whole=len(head) < HEAD_BYTES):
        return PYTHON_SOURCE, PYTHON_SOURCE.name      # code, not a log: its settings only
    small = (size is not None and size <= PASTE.MAX_BYTES) or len(head) < HEAD_BYTES
    if fmt.pasted and small:
        return PASTE, PASTE.name
    return fmt, why
