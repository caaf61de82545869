"""Evidence lines that say the same thing, told once: the same source and the same text once
numbers, addresses and ids are set aside ("and 3 more like it at lines 191, 230, 250")."""

from __future__ import annotations

import re

_VARIABLE = re.compile(r"\d+(?:\.\d+)*|0x[0-9a-f]+|[0-9a-f]{8,}", re.IGNORECASE)


def evidence_groups(evidence: list) -> list[tuple[object, list[int]]]:
    """Evidence lines that say the same thing (same source, same text once numbers, addresses and
    ids are set aside) as one: (first evidence, the other lines' numbers), in order."""
    groups: dict[tuple[str, str], tuple[object, list[int]]] = {}
    for e in evidence:
        key = (e.source, _VARIABLE.sub("#", e.text))
        if key in groups:
            groups[key][1].append(e.line)
        else:
            groups[key] = (e, [])
    return list(groups.values())


def more_lines(lines: list[int], limit: int = 6) -> str:
    """'and 3 more like it at lines 191, 230, 250' (the first few), or ''."""
    if not lines:
        return ""
    shown = ", ".join(str(n) for n in lines[:limit]) + (", ..." if len(lines) > limit else "")
    return f"and {len(lines)} more like it at line{'s' if len(lines) > 1 else ''} {shown}"
