"""The JSON report: the contract in DESIGN.md. Keys may be added, never renamed."""

from __future__ import annotations

import json
import re
from datetime import datetime

from emblens._version import __version__


def _iso(ts: datetime | None) -> str | None:
    return ts.isoformat() if ts else None


def timeline(analysis, limit: int = 40) -> list[dict]:
    """Evidence of every finding across sources, in time order (unknown times last)."""
    rows = []
    for f in analysis.findings:
        for e in f.evidence:
            rows.append({"ts": _iso(e.ts), "source": e.source, "line": e.line, "rule": f.rule, "text": e.text})
    series = analysis.facts.gpu_series
    step = max(1, len(series) // 12)   # memory over time: at most a dozen points per series
    for s in series[::step]:
        if s["used_mib"] is not None and s["total_mib"]:
            rows.append({"ts": _iso(s["ts"]), "source": s["source"], "line": s["line"], "rule": None,
                         "text": f"GPU {s['index']} memory {s['used_mib']:,.0f} / {s['total_mib']:,.0f} MiB"})
    for m in analysis.facts.loading[:1] + analysis.facts.ready[:1]:
        label = "server ready" if m in analysis.facts.ready else "model loading started"
        rows.append({"ts": _iso(m.ts), "source": m.source, "line": m.line, "rule": None, "text": label})
    rows.sort(key=lambda r: (r["ts"] is None, r["ts"] or "", r["source"], r["line"]))
    return rows[:limit]


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


def common_prefix(analysis) -> str:
    """The path prefix every input shares, up to a folder or archive boundary ('' for none): said
    once at the top of a report instead of on every line."""
    import os

    sources = [i.source for i in analysis.inputs] + [s.label for s in analysis.skipped]
    if len(sources) < 1:
        return ""
    prefix = os.path.commonprefix(sources)
    cut = max(prefix.rfind("/"), prefix.rfind(":"))
    return prefix[: cut + 1] if cut >= 0 else ""


def gpu_lines(analysis) -> list[tuple[str, str, list[str]]]:
    """Per GPU: (title, memory line, top process lines), from the last nvidia-smi snapshot."""
    out = []
    for g in analysis.facts.gpus:
        title = f"GPU {g['index'] if g['index'] is not None else '?'} {g['name'] or ''}".strip()
        if g["mig"] == "Enabled":
            title += " (MIG)"
        used, total = g["used_mib"], g["total_mib"]
        if used is not None and total:
            mem = f"{used:,.0f} / {total:,.0f} MiB used ({used / total:.0%}), {total - used:,.0f} MiB free"
        else:
            mem = "memory not reported"
        procs = [f"pid {p['pid']} {p['name'] or ''} {p['used_mib'] or 0:,.0f} MiB".replace("  ", " ") for p in g["processes"]]
        out.append((title, f"{mem}  [{g['source']}:{g['line']}]", procs))
    return out


# the version of the report's shape (report.schema.json), separate from the tool's version:
# 1.0 the report before it was stated; 1.1 adds schema_version and masked
SCHEMA_VERSION = "1.1"


def to_dict(analysis) -> dict:
    return {
        "schema_version": SCHEMA_VERSION,
        "version": __version__,
        "inputs": [
            {"source": i.source, "kind": i.kind, "events": i.events, "unparsed": i.unparsed, "lines": i.lines,
             "note": i.note}
            for i in analysis.inputs
        ],
        "skipped": [{"source": s.label, "reason": s.reason} for s in analysis.skipped],
        "findings": [
            {
                "rule": f.rule,
                "title": f.title,
                "severity": f.severity,
                "confidence": f.confidence,
                "role": f.role,
                "explained_by": f.explained_by,
                "cause": f.cause,
                "count": f.count,
                "first_seen": _iso(f.first_seen),
                "last_seen": _iso(f.last_seen),
                "summary": f.summary,
                "remedy": "\n".join(f.remedy),
                "remedy_steps": f.remedy,
                "evidence": [{"source": e.source, "line": e.line, "text": e.text} for e in f.evidence],
                "references": f.references,
            }
            for f in analysis.findings
        ],
        "lead": _lead(getattr(analysis, "lead", None)),
        "unexplained": [
            {"template": u.template, "count": u.count,
             "example": {"source": u.example.source, "line": u.example.line, "text": u.example.text}}
            for u in analysis.unexplained
        ],
        "facts": {
            "served_models": analysis.facts.served_models,
            "listen_ports": analysis.facts.listen_ports,
            "api_key_required": analysis.facts.api_key_required,
            "versions": analysis.facts.versions,
            "ready": bool(analysis.facts.ready),
            "gpus": [{k: (_iso(v) if k == "ts" else v) for k, v in g.items()} for g in analysis.facts.gpus],
        },
        "timeline": timeline(analysis),
        "masked": dict(getattr(analysis, "masked", {}) or {}),
    }


def _lead(lead) -> dict | None:
    """Where to start when no rule fired: the innermost exception of the last traceback, or the
    first error line."""
    if lead is None:
        return None
    e = lead.evidence
    return {"what": lead.what, "message": lead.message, "source": e.source, "line": e.line, "text": e.text}


_C1 = re.compile(r"[\x7f-\x9f]")


def to_json(analysis) -> str:
    # json escapes C0 controls itself; DEL and the C1 controls (0x9b is a CSI) are escaped here
    return _C1.sub(lambda m: f"\\u{ord(m.group()):04x}", json.dumps(to_dict(analysis), indent=2, ensure_ascii=False))
