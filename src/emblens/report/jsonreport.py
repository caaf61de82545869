"""The JSON report: the contract in DESIGN.md. Keys may be added, never renamed."""

from __future__ import annotations

import json
import re
from datetime import datetime

import polars as pl

from emblens._version import __version__
from emblens.findings.grouping import evidence_groups, more_lines  # noqa: F401 - the renderers' helpers


def _iso(ts: datetime | None) -> str | None:
    """ISO 8601 in UTC ('Z'): times are held in UTC (a server log's own zone is `--tz`)."""
    return ts.isoformat() + "Z" if ts else None


def when(row: dict) -> str:
    """A timeline row's time for people: '2025-11-20 09:14:55', or the stamp as written with
    '(year unknown)', or 'time unknown'."""
    if row["ts"]:
        return row["ts"][:19].replace("T", " ")
    if row.get("stamp"):
        return f"{row['stamp'][:19]} (year unknown)"
    return "time unknown"


def with_gaps(rows: list[dict]) -> list[tuple[str | None, dict]]:
    """Timeline rows, each with the gap before it when it is over an hour ('2 d 3 h later'), else None."""
    from emblens.combiners.time import HOUR, duration

    out, prev = [], None
    for r in rows:
        gap = None
        if r["ts"] and prev:
            d = datetime.fromisoformat(r["ts"].rstrip("Z")) - datetime.fromisoformat(prev.rstrip("Z"))
            gap = f"{duration(d)} later" if d > HOUR else None
        prev = r["ts"] or prev
        out.append((gap, r))
    return out


def clock_notes(analysis, prefix: str = "") -> list[str]:
    return [n.replace(prefix, "") if prefix else n for n in getattr(analysis, "clock_notes", None) or []]


def rate(f) -> str:
    """'3 of 2,000 requests (0.15%)' for a finding that matched requests, else ''."""
    if not getattr(f, "requests", None) or not getattr(f, "requests_seen", None):
        return ""
    share = f.requests / f.requests_seen
    pct = f"{share:.0%}" if share >= 0.1 else f"{share:.2%}" if share >= 0.0001 else f"{share:.1e}"
    return f"{f.requests:,} of {f.requests_seen:,} requests ({pct})"


def timeline(analysis, limit: int = 40) -> list[dict]:
    """Evidence of every finding across sources, in time order (unknown times last)."""
    rows = []
    for f in analysis.findings:
        for e in f.evidence:
            rows.append({"ts": _iso(e.ts), "stamp": None if e.ts else e.stamp, "source": e.source, "line": e.line,
                         "rule": f.rule, "text": e.text})
    series = analysis.facts.gpu_series
    step = max(1, len(series) // 12)   # memory over time: at most a dozen points per series
    for s in series[::step]:
        if s["used_mib"] is not None and s["total_mib"]:
            rows.append({"ts": _iso(s["ts"]), "stamp": None, "source": s["source"], "line": s["line"], "rule": None,
                         "text": f"GPU {s['index']} memory {s['used_mib']:,.0f} / {s['total_mib']:,.0f} MiB"})
    for m in analysis.facts.loading[:1] + analysis.facts.ready[:1]:
        label = "server ready" if m in analysis.facts.ready else "model loading started"
        rows.append({"ts": _iso(m.ts), "stamp": None if m.ts else m.stamp, "source": m.source, "line": m.line, "rule": None,
                     "text": label})
    rows.sort(key=lambda r: (r["ts"] is None, r["ts"] is None and r["stamp"] is None, r["ts"] or r["stamp"] or "",
                             r["source"], r["line"]))
    return rows[:limit]




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


def relative(source: str, prefix: str) -> str:
    """A source without the prefix every input shares (`common_prefix`); the whole of it if nothing is left."""
    return source.removeprefix(prefix) or source


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
# 1.0 the report before it was stated; 1.1 adds schema_version and masked; 1.2 adds base (sources are
# relative to it), requests on findings, stamp on timeline rows, timeline_notes, traffic, and times end
# in Z (UTC)
SCHEMA_VERSION = "1.3"


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


_C1 = re.compile(r"[\x7f-\x9f]")


def to_json(analysis) -> str:
    # json escapes C0 controls itself; DEL and the C1 controls (0x9b is a CSI) are escaped here
    return _C1.sub(lambda m: f"\\u{ord(m.group()):04x}", json.dumps(to_dict(analysis), indent=2, ensure_ascii=False))
