"""Markdown report shaped for a postmortem: summary, root cause, evidence with source:line,
remedy, timeline, coverage."""

from __future__ import annotations

from emblens._version import __version__
from emblens.events.redact import printable
from emblens.report.jsonreport import (
    clock_notes,
    common_prefix,
    evidence_groups,
    gpu_lines,
    more_lines,
    rate,
    relative,
    timeline,
    when,
    with_gaps,
)


def masked_line(analysis) -> str:
    """What was masked, by kind and count (never a value)."""
    masked = getattr(analysis, "masked", None) or {}
    if not masked:
        return "Masked: nothing that looked like a secret was found in the inputs."
    return ("Masked (values never shown): "
            + ", ".join(f"{n:,} {kind}" for kind, n in masked.items()) + ".")


def _code(text: str) -> str:
    text = text.replace("\n", " ")
    fence = "``" if "`" in text else "`"
    pad = " " if fence == "``" else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def to_markdown(analysis) -> str:
    out: list[str] = ["# emblens report", ""]
    prefix = common_prefix(analysis)
    if prefix:
        out += [f"Paths below are in `{_cell(prefix.rstrip('/:') or prefix)}`.", ""]
    roots = [f for f in analysis.findings if f.role != "symptom"]
    if analysis.findings:
        top = analysis.findings[0]
        out += [f"**Summary:** {top.title} (`{top.rule}`). {top.summary}", ""]
    elif getattr(analysis, "lead", None) is not None:
        lead = analysis.lead
        out += [f"**Summary:** no rule matched, but the inputs hold errors. Start from `{_cell(lead.what)}` at "
                f"`{_cell(relative(lead.evidence.source, prefix))}:{lead.evidence.line}`: {_code(lead.message[:300])}", ""]
    else:
        out += ["**Summary:** no known failure found in these inputs.", ""]
    for f in roots:
        heading = "Root cause" if f is analysis.findings[0] else "Finding"
        out += [f"## {heading}: {f.title} (`{f.rule}`)", ""]
        out += [f"Severity **{f.severity}**" + (f", cause `{f.cause}`" if f.cause else "")
                + f", confidence {f.confidence:.2f}, seen {f.count} time(s)"
                + (f", {r}" if (r := rate(f)) else "")
                + (f", first {f.first_seen.isoformat(sep=' ')} UTC" if f.first_seen else "") + ".", ""]
        out += [f.summary, "", f"_What it means:_ {' '.join(f.means.split())}", "", "**Evidence**", ""]
        for e, others in evidence_groups(f.evidence):
            out.append(f"- `{_cell(relative(e.source, prefix))}:{e.line}` {_code(e.text)}"
                       + (f" ({more_lines(others)})" if others else ""))
        out += ["", "**Remedy**", ""]
        out += [f"{i}. {step}" for i, step in enumerate(f.remedy, 1)]
        symptoms = [g for g in analysis.findings if g.explained_by == f.rule]
        if symptoms:
            out += ["", "**Symptoms this explains**", ""]
            for g in symptoms:
                ev = g.evidence[0]
                out.append(f"- `{g.rule}`: {g.title} ({g.count}x), e.g. `{_cell(relative(ev.source, prefix))}:{ev.line}` "
                           f"{_code(ev.text)}")
        if f.references:
            out += ["", "References: " + ", ".join(f.references)]
        out.append("")
    probe = getattr(analysis, "probe", None)
    if probe:
        out += [f"## Probe of `{_cell(probe['url'])}`" + (f" (model `{_cell(probe['model'])}`)" if probe.get("model") else ""), "",
                "| outcome | check | detail |", "|---|---|---|"]
        out += [f"| **{c['outcome'].upper()}** | {_cell(c['title'])} | {_cell(c['detail'])} |" for c in probe["checks"]]
        if probe.get("requests") is not None:
            out += ["", f"{probe['requests']} request(s) sent, recorded in `probe.har`."]
        out.append("")
    tl = timeline(analysis)
    if tl and analysis.findings:
        out += ["## Timeline", ""]
        out += [f"> **Note:** {_cell(n)}" for n in clock_notes(analysis, prefix)]
        out += ([""] if clock_notes(analysis, prefix) else []) + ["| time (UTC) | where | what |", "|---|---|---|"]
        for gap, r in with_gaps(tl):
            if gap:
                out.append(f"| _{gap}_ | | |")
            what = (f"`{r['rule']}` " if r["rule"] else "") + _code(r["text"][:160])
            out.append(f"| {when(r)} | `{_cell(relative(r['source'], prefix))}:{r['line']}` | {_cell(what)} |")
        out.append("")
    gpus = gpu_lines(analysis)
    if gpus:
        out += ["## GPUs", "", "Last nvidia-smi snapshot of each GPU.", "", "| GPU | memory | top processes |", "|---|---|---|"]
        out += [f"| {_cell(t)} | {_cell(m)} | {_cell('; '.join(p) or 'none listed')} |" for t, m, p in gpus]
        out.append("")
    collection = getattr(analysis, "collection", None)
    out += ["## Coverage", ""]
    if collection:
        out += [f"Collected by `emblens collect` on {_cell(collection['host'] or 'the server')}, {_cell(collection['created'])}.", ""]
    out += ["| input | read as | events | unparsed |" + (" from |" if collection else ""),
            "|---|---|---:|---:|" + ("---|" if collection else "")]
    out += [f"| `{_cell(relative(i.source, prefix))}` | {i.kind}{' (incomplete: ' + _cell(i.note) + ')' if i.note else ''} | {i.events} | {i.unparsed} |"
            + (f" {_cell(getattr(i, 'collected_from', None) or '')} |" if collection else "")
            for i in analysis.inputs]
    out += [f"| `{_cell(relative(s.label, prefix))}` | skipped: {_cell(s.reason)} | | |" + (" |" if collection else "")
            for s in analysis.skipped]
    out.append("")
    if collection and collection["not_collected"]:
        out += ["**Not collected**", ""]
        out += [f"- {_cell(m['what'])}: {_cell(m['why'])}" for m in collection["not_collected"]]
        out.append("")
    if analysis.unexplained:
        out += ["## Error lines no rule explains", "", "| count | example |", "|---:|---|"]
        for u in analysis.unexplained[:30]:
            out.append(f"| {u.count} | `{_cell(relative(u.example.source, prefix))}:{u.example.line}` "
                       f"{_cell(_code(u.example.text[:200]))} |")
        out.append("")
    out += [masked_line(analysis), ""]
    out.append(f"_Generated by emblens {__version__}._")
    # the whole page, once: no control character of an input or rule file acts in a terminal or editor
    return printable("\n".join(out)) + "\n"
