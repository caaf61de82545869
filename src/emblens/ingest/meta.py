"""emblens's own notes in a bundle it made: `probe.json` of `emblens probe` and `manifest.json` of
`emblens collect`, at the top of the bundle. They say how the bundle was made; they are read as
notes, not as evidence."""

from __future__ import annotations

import json
from pathlib import Path
from types import MappingProxyType

from emblens.ingest.bundle import Member

NAMES = MappingProxyType({"probe.json": "probe", "manifest.json": "collect"})   # emblens's own notes at a bundle's top
MAX_BYTES = 4 * 1024 * 1024


def inner(label: str) -> str:
    """A member's name inside its bundle (`b.zip:logs/server.log` -> `logs/server.log`); for a
    loose file, its name. The names probe.json, manifest.json and the manifest's files are these."""
    label = label.replace("\\", "/")
    parts = label.split(":", 1)
    return (parts[1] if len(parts) == 2 and label[1:3] != ":/" else Path(label).name).strip("/")


def note(member: Member) -> tuple[str, dict] | None:
    """An `emblens probe` or `emblens collect` bundle's own note, as ("probe" | "collect", its
    document), or None for any other member, or a file of that name that is not one."""
    kind = NAMES.get(inner(member.label))
    if kind is None or (member.size is not None and member.size > MAX_BYTES):
        return None
    try:
        with member.open() as f:
            doc = json.loads(f.read(MAX_BYTES + 1))
    except (OSError, ValueError, RecursionError):
        return None
    if not isinstance(doc, dict) or doc.get("emblens") != kind:
        return None
    return kind, doc
