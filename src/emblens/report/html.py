"""The HTML report: one self-contained file to attach to a postmortem page.

Everything is inline: the styles, the charts (SVG drawn by `charts`), no script at all. A
Content-Security-Policy in the page forbids every load from elsewhere, so nothing is fetched
when it is opened, and nothing from an input can make it fetch. Text from inputs is escaped by
Jinja2's autoescaping and made printable. It prints well (print CSS), so "Save as PDF" works.
"""

from __future__ import annotations

from pathlib import Path

from emblens._version import __version__
from emblens.events.redact import printable
from emblens.report import view

TEMPLATE = Path(__file__).with_name("report.html.j2")
MAX_TEXT = 2000       # characters of one evidence line shown
MAX_TRAFFIC_CHARTS = 4


def _env():
    from jinja2 import Environment, StrictUndefined, select_autoescape

    env = Environment(autoescape=select_autoescape(default=True, default_for_string=True), undefined=StrictUndefined,
                      trim_blocks=True, lstrip_blocks=True)
    env.filters["p"] = lambda s: printable("" if s is None else str(s))
    env.filters["md"] = _inline_markdown
    return env


def _inline_markdown(s) -> object:
    """A summary's or a remedy's text as HTML: escaped and made printable first, then its
    `code` spans and **bold** (the markdown the messages are written in) as <code> and <strong>."""
    import re

    from markupsafe import Markup, escape

    text = str(escape(printable("" if s is None else str(s))))
    text = re.sub(r"`([^`\n]+)`", r"<code>\1</code>", text)
    text = re.sub(r"\*\*([^*\n]+)\*\*", r"<strong>\1</strong>", text)
    return Markup(text)


def _n(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def charts(analysis, prefixless=lambda s: s) -> list[dict]:
    """The report's charts (title, caption, inline SVG), those the inputs have data for."""
    from emblens.report import charts as c

    # the findings' first times, root causes and findings before symptoms (the first few are labelled)
    marks = [(f.first_seen, f.rule) for f in sorted((f for f in analysis.findings if f.first_seen),
                                                     key=lambda f: (f.role == "symptom", f.first_seen))]
    seen = getattr(analysis, "traffic", None)
    out = []
    # one chart per source: a server log and a capture of another day would squeeze each other flat
    for k, source in enumerate(seen.sources()[:MAX_TRAFFIC_CHARTS] if seen is not None else []):
        if svg := c.requests_chart(seen.per_minute(source), marks, salt=f"requests-{k}"):
            what = "access lines of the server log" if source in seen.counted else "captured calls"
            out.append({"id": f"chart-requests-{k}" if k else "chart-requests", "title": f"Requests by status: {prefixless(source)}",
                        "caption": f"{_n(seen.total([source]), 'request')} seen ({what}), by status class; dashed lines mark "
                                   "when each finding was first seen.", "svg": svg})
    if svg := c.gpu_chart(analysis.facts.gpu_series, analysis.facts.gpus, marks):
        over_time = len({s["ts"] for s in analysis.facts.gpu_series if s["ts"] is not None}) > 1
        out.append({"id": "chart-gpu", "title": "GPU memory" + (" over time" if over_time else ""),
                    "caption": ("Memory used per GPU from looped nvidia-smi output (dotted: the GPU's total); dashed "
                                "lines mark the findings, the out-of-memory error among them."
                                if over_time else "The last nvidia-smi snapshot: memory by process, and what is free."),
                    "svg": svg})
    if seen is not None and (svg := c.kv_chart(seen.kv, marks)):
        out.append({"id": "chart-kv", "title": "KV-cache usage",
                    "caption": "The highest KV-cache usage each minute, from the server's periodic metrics lines.", "svg": svg})
    return out


def to_html(analysis) -> str:
    v = view.build(analysis)
    findings = []
    for fv in v.findings:
        f = fv.f
        findings.append({
            "f": f, "rate": fv.rate, "short": v.where,
            "first": f.first_seen.isoformat(sep=" ") + " UTC" if f.first_seen else None,
            "evidence": [{"where": f"{v.where(e.source)}:{e.line}", "text": e.text[:MAX_TEXT], "more": view.more_lines(others)}
                         for e, others in fv.evidence],
            "symptoms": fv.symptoms,
            "path": [{"side": s.side, "where": f"{v.where(s.source)}:{s.line}", "text": s.text[:view.PATH_TEXT]} for s in f.path],
            "path_title": view.path_title(f),
        })
    rows = [{"gap": gap, "when": view.when(r), "where": f"{v.where(r['source'])}:{r['line']}", "rule": r["rule"],
             "text": r["text"][:300]} for gap, r in v.timeline]
    lead = getattr(analysis, "lead", None)
    drawn = charts(analysis, v.where)
    page = _env().from_string(TEMPLATE.read_text(encoding="utf-8")).render(
        version=__version__, prefix=v.prefix.rstrip("/:") or v.prefix, analysis=analysis, findings=findings,
        top=analysis.findings[0] if analysis.findings else None, lead=lead,
        lead_where=f"{v.where(lead.evidence.source)}:{lead.evidence.line}" if lead is not None else None,
        charts=drawn, timeline=rows, notes=v.notes, gpus=v.gpus, short=v.where, masked=v.masked,
        unexplained=analysis.unexplained[:30], more_unexplained=max(0, len(analysis.unexplained) - 30),
        sections=v.sections(charts=bool(drawn)), titles=view.TITLES,
    )
    return printable(page)
