"""What a report shows, built once from an Analysis (`build`): its sections in one order
(`SECTIONS`), with the values every renderer needs (the prefix the inputs share, the timeline and
its gaps, the GPUs, each finding's rate, grouped evidence and symptoms, the masked line). The
text, Markdown and HTML renderers only lay a `View` out; JSON is the contract (`jsonreport`).

    v = build(analysis)
    v.sections()        # ['summary', 'findings', 'timeline', 'coverage', 'masked'], those it has
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType

from emblens.findings.grouping import evidence_groups, more_lines  # noqa: F401 - the renderers use both

# the order of a report's sections, in every renderer; a renderer shows those it can (text and
# Markdown have no charts) and the View has content for
SECTIONS = ("summary", "findings", "probe", "charts", "timeline", "gpus", "coverage", "unexplained", "masked")
# what the HTML report's navigation calls a section, where it links to one
TITLES = MappingProxyType({"findings": "Root cause", "charts": "Charts", "timeline": "Timeline", "probe": "Probe",
                           "gpus": "GPUs", "coverage": "Coverage", "unexplained": "Unexplained errors"})


@dataclass
class FindingView:
    """One finding as the reports show it."""

    f: object                                   # the Finding
    rate: str                                   # "3 of 2,000 requests (0.15%)", or ""
    evidence: list[tuple[object, list[int]]]    # (evidence, the lines of others like it)
    symptoms: list[object]                      # the findings it explains


@dataclass
class View:
    analysis: object
    prefix: str
    findings: list[FindingView]
    timeline: list[tuple[str | None, dict]]     # (the gap before it, row)
    notes: list[str]                            # what the clocks suggest, the prefix left out
    gpus: list[tuple[str, str, list[str]]]
    masked: str
    extra: dict = field(default_factory=dict)   # what one renderer adds (the HTML report's charts)

    def where(self, source: str) -> str:
        """A source without the prefix every input shares."""
        return relative(source, self.prefix)

    def sections(self, *, charts: bool = False) -> list[str]:
        """The sections this report has, in `SECTIONS` order (`charts`: the renderer draws them and
        there are some)."""
        a = self.analysis
        has = {"summary": True, "findings": bool(a.findings), "probe": bool(getattr(a, "probe", None)), "charts": charts,
               "timeline": bool(self.timeline) and bool(a.findings), "gpus": bool(self.gpus), "coverage": True,
               "unexplained": bool(a.unexplained), "masked": True}
        return [s for s in SECTIONS if has[s]]


def build(analysis) -> View:
    prefix = common_prefix(analysis)
    findings = [FindingView(f, rate(f), evidence_groups(f.evidence), [g for g in analysis.findings if g.explained_by == f.rule])
                for f in analysis.findings]
    return View(analysis, prefix, findings, with_gaps(timeline(analysis)), clock_notes(analysis, prefix), gpu_lines(analysis),
                masked_line(analysis))


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
    pct = f"{share:.0%}" if share >= 0.1 else f"{share:.2%}" if share >= 0.0001 else "< 0.01%"
    return f"{f.requests:,} of {f.requests_seen:,} requests ({pct})"


PATH_TEXT = 300     # characters of one step of a request's path shown


def path_title(f) -> str:
    """'Request path (trace 143a62f2…, 4 lines in 3 files)' for a finding with one, else ''."""
    if not getattr(f, "path", None):
        return ""
    key = f.path_request or ""
    what = "trace" if re.fullmatch(r"[0-9a-f]{32}", key) else "request"
    files = len({s.source for s in f.path})
    more = f", the first {len(f.path)} shown" if f.path_steps > len(f.path) else ""
    return (f"Request path ({what} {key[:40]}{'…' if len(key) > 40 else ''}, {f.path_steps} line(s) in {files} "
            f"file(s){more})")


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


def masked_line(analysis) -> str:
    """What was masked, by kind and count (never a value)."""
    masked = getattr(analysis, "masked", None) or {}
    if not masked:
        return "Masked: nothing that looked like a secret was found in the inputs."
    return ("Masked (values never shown): "
            + ", ".join(f"{n:,} {kind}" for kind, n in masked.items()) + ".")
