"""The JSON report: the contract in DESIGN.md. Keys may be added, never renamed."""

from __future__ import annotations

import json
import re

import polars as pl

from emblens._version import __version__
from emblens.events.redact import CONTROL
from emblens.report.view import _iso, clock_notes, common_prefix, relative, timeline

# the version of the report's shape (report.schema.json), separate from the tool's version:
# 1.0 the report before it was stated; 1.1 adds schema_version and masked; 1.2 adds base (sources are
# relative to it), requests on findings, stamp on timeline rows, timeline_notes, traffic, and times end
# in Z (UTC); 1.3 adds probe, collection and collected_from; 1.4 adds request_path on findings (the request followed across sources)
SCHEMA_VERSION = "1.4"


def to_dict(analysis) -> dict:
    base = common_prefix(analysis)

    def rel(source: str) -> str:
        return relative(source, base)

    gpus = [{k: (_iso(v) if k == "ts" else rel(v) if k == "source" else v) for k, v in g.items()} for g in analysis.facts.gpus]
    return {
        "schema_version": SCHEMA_VERSION,
        "version": __version__,
        "base": base,
        "inputs": [
            {"source": rel(i.source), "kind": i.kind, "events": i.events, "unparsed": i.unparsed, "lines": i.lines,
             "note": i.note, "collected_from": getattr(i, "collected_from", None)}
            for i in analysis.inputs
        ],
        "skipped": [{"source": rel(s.label), "reason": s.reason} for s in analysis.skipped],
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
                "requests": ({"matched": f.requests, "seen": f.requests_seen}
                             if getattr(f, "requests", None) and getattr(f, "requests_seen", None) else None),
                "evidence": [{"source": rel(e.source), "line": e.line, "text": e.text} for e in f.evidence],
                "request_path": ({"request": f.path_request, "lines": f.path_steps,
                                  "steps": [{"side": s.side, "origin": s.origin, "source": rel(s.source), "line": s.line,
                                             "time": _iso(s.ts), "text": s.text} for s in f.path]}
                                 if getattr(f, "path", None) else None),
                "references": f.references,
            }
            for f in analysis.findings
        ],
        "lead": _lead(getattr(analysis, "lead", None), rel),
        "unexplained": [
            {"template": u.template, "count": u.count,
             "example": {"source": rel(u.example.source), "line": u.example.line, "text": u.example.text}}
            for u in analysis.unexplained
        ],
        "facts": {
            "served_models": analysis.facts.served_models,
            "listen_ports": analysis.facts.listen_ports,
            "api_key_required": analysis.facts.api_key_required,
            "versions": analysis.facts.versions,
            "ready": bool(analysis.facts.ready),
            "gpus": gpus,
        },
        "timeline": [{**r, "source": rel(r["source"])} for r in timeline(analysis)],
        "timeline_notes": clock_notes(analysis, base),
        "traffic": _traffic(getattr(analysis, "traffic", None)),
        "masked": dict(getattr(analysis, "masked", {}) or {}),
        "probe": getattr(analysis, "probe", None),
        "collection": getattr(analysis, "collection", None),
    }


def _traffic(seen) -> dict:
    """Requests seen (access lines counted, captured exchanges) by status, and the busiest minute."""
    if seen is None or not seen.requests.height:
        return {"requests": 0, "by_status": {}, "kv_cache_max_pct": None}
    by_status = seen.requests.group_by("status").agg(pl.col("requests").sum()).sort("status")
    kv = seen.kv["kv"].max() if seen.kv.height else None
    return {"requests": seen.total(),
            "by_status": {str(s): int(n) for s, n in by_status.iter_rows() if s is not None},
            "kv_cache_max_pct": kv}


def _lead(lead, rel) -> dict | None:
    """Where to start when no rule fired: the innermost exception of the last traceback, or the
    first error line."""
    if lead is None:
        return None
    e = lead.evidence
    return {"what": lead.what, "message": lead.message, "source": rel(e.source), "line": e.line, "text": e.text}


# json escapes C0 controls itself; DEL, the C1 controls (0x9b is a CSI) and the invisible and bidi
# characters (`redact.CONTROL`) are escaped here, as JSON escapes: a tool reads the same values, a
# person who opens the file sees them
_SHOWN = re.compile(CONTROL)


def _escape(m: re.Match) -> str:
    n = ord(m.group())
    if n > 0xFFFF:                     # JSON writes a character past the BMP as a surrogate pair
        n -= 0x10000
        return f"\\u{0xD800 + (n >> 10):04x}\\u{0xDC00 + (n & 0x3FF):04x}"
    return f"\\u{n:04x}"


def to_json(analysis) -> str:
    return _SHOWN.sub(_escape, json.dumps(to_dict(analysis), indent=2, ensure_ascii=False))
