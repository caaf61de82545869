"""Terminal report, drawn with rich; reads well at 80 columns, plain when colour is off."""

from __future__ import annotations

import io
from types import MappingProxyType

from rich.console import Console
from rich.padding import Padding
from rich.table import Table
from rich.text import Text as _RichText

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
from emblens.report.markdown import masked_line


def Text(text: str = "", *args, **kwargs) -> _RichText:
    """rich's Text with control characters shown, not acted on: report text comes from strangers'
    inputs and rule folders. Styling is rich's own and still works."""
    return _RichText(printable(text), *args, **kwargs)


SEV_STYLE = MappingProxyType({"error": "bold red", "warning": "bold yellow", "info": "bold blue"})
ROLE_LABEL = MappingProxyType({"root_cause": "ROOT CAUSE", "symptom": "SYMPTOM", "finding": "FINDING"})


def _where(console: Console, source: str, line: int | None, prefix: str, indent: int, style: str = "cyan") -> None:
    """Print `file:line` on a line of its own, never wrapped (so it can be copied or clicked
    whole, even past the width), with the common prefix left out."""
    where = relative(source, prefix) + (f":{line}" if line is not None else "")
    console.print(Text(" " * indent + where, style=style), soft_wrap=True)


def _finding(console: Console, f, prefix: str = "", indent: int = 0) -> None:
    def out(renderable, extra: int = 0) -> None:
        console.print(Padding(renderable, (0, 0, 0, indent + extra)) if indent + extra else renderable)

    head = _RichText()
    label = ROLE_LABEL[f.role]
    head.append(f"{label} ", style="bold reverse" if f.role == "root_cause" else "bold")
    head.append(printable(f.rule), style=SEV_STYLE[f.severity])
    if f.cause:
        head.append(printable(f" ({f.cause})"), style=SEV_STYLE[f.severity])
    head.append(f"  {f.severity}, confidence {f.confidence:.2f}, seen {f.count}x", style="dim")
    out(head)
    if r := rate(f):
        out(Text(f"matched {r}", style="dim"))
    out(Text(f.title, style="bold"))
    if f.explained_by:
        out(Text(f"explained by {f.explained_by}", style="dim"))
    out(Text(f.summary), 2)
    out(Text("Evidence", style="bold"), 2)
    for e, others in evidence_groups(f.evidence):
        _where(console, e.source, e.line, prefix, indent + 4)
        out(Text(e.text, overflow="fold"), 6)
        if others:
            out(Text(more_lines(others), style="dim"), 6)
    if f.role != "symptom":
        fix = Table.grid(padding=(0, 1))
        fix.add_column(no_wrap=True)
        fix.add_column()
        for i, step in enumerate(f.remedy, 1):
            fix.add_row(f"{i}.", Text(step))
        out(Text("Fix", style="bold"), 2)
        out(fix, 4)
    console.print()


OUTCOME_STYLE = MappingProxyType({"pass": "green", "warn": "yellow", "fail": "bold red", "skip": "dim"})


def to_text(analysis, *, width: int = 80, color: bool = False) -> str:
    buf = io.StringIO()
    console = Console(file=buf, width=width, color_system="standard" if color else None, force_terminal=color,
                      highlight=False, emoji=False)
    n_sources = len(analysis.inputs)
    console.print(Text(f"emblens {__version__}: {n_sources} input(s) read, {len(analysis.skipped)} skipped, "
                       f"{len(analysis.findings)} finding(s)", style="bold"))
    prefix = common_prefix(analysis)
    if prefix:
        console.print(Text(f"Paths below are in {prefix.rstrip('/:') or prefix}", style="dim"), soft_wrap=True)
    console.print()
    lead = getattr(analysis, "lead", None)
    if not analysis.findings and lead is not None:
        console.print(Text("No rule matched, but the inputs hold errors. Start from this one:", style="bold yellow"))
        console.print(Padding(Text(f"{lead.what}: {lead.message}"[:400], style="bold"), (0, 0, 0, 2)))
        _where(console, lead.evidence.source, lead.evidence.line, prefix, 2)
        console.print(Padding(Text("(for a traceback: the innermost exception of the last one, where the chain began)",
                                   style="dim"), (0, 0, 0, 2)))
        console.print()
    elif not analysis.findings:
        console.print(Text("No known failure found in these inputs.", style="bold green"))
        if analysis.unexplained:
            console.print("Error lines that no rule explains are listed below; they may still matter.")
        console.print()
    for f in analysis.findings:
        _finding(console, f, prefix, 0 if f.role != "symptom" else 4)
    probe = getattr(analysis, "probe", None)
    if probe:
        console.print(Text(f"Probe of {probe['url']}" + (f" (model {probe['model']})" if probe.get("model") else ""),
                           style="bold underline"), soft_wrap=True)
        grid = Table.grid(padding=(0, 1))
        grid.add_column(no_wrap=True)
        grid.add_column(overflow="fold")
        for c in probe["checks"]:
            grid.add_row(Text(c["outcome"].upper(), style=OUTCOME_STYLE[c["outcome"]]),
                         Text(f"{c['title']}: ", style="bold") + Text(c["detail"]))
        console.print(Padding(grid, (0, 0, 0, 2)))
        if probe.get("requests") is not None:
            console.print(Padding(Text(f"{probe['requests']} request(s) sent, recorded in probe.har", style="dim"), (0, 0, 0, 2)))
        console.print()
    tl = timeline(analysis)
    if tl and analysis.findings:
        console.print(Text("Timeline (UTC)", style="bold underline"))
        for note in clock_notes(analysis, prefix):
            console.print(Padding(Text(f"Note: {note}", style="yellow"), (0, 0, 0, 2)))
        for gap, r in with_gaps(tl):
            if gap:
                console.print(Text(f"  ... {gap}", style="dim"))
            head = Text(when(r) + "  ", style="dim")
            head.append(printable(f"{r['source'].removeprefix(prefix)}:{r['line']}"), style="cyan")
            if r["rule"]:
                head.append(printable(f"  [{r['rule']}]"), style="bold")
            head.pad_left(2)
            console.print(head, soft_wrap=True)
            console.print(Padding(Text(r["text"][:200], overflow="fold"), (0, 0, 0, 4)))
        console.print()
    gpus = gpu_lines(analysis)
    if gpus:
        console.print(Text("GPUs (last nvidia-smi snapshot)", style="bold underline"))
        for title, mem, procs in gpus:
            console.print(Padding(Text(title, style="bold"), (0, 0, 0, 2)))
            console.print(Padding(Text(mem, overflow="fold"), (0, 0, 0, 4)))
            for p in procs:
                console.print(Padding(Text(p, overflow="fold"), (0, 0, 0, 4)))
        console.print()
    console.print(Text("Coverage", style="bold underline"))
    for i in analysis.inputs:
        _where(console, i.source, None, prefix, 2)
        console.print(Padding(Text(f"{i.kind}, {i.events:,} events, {i.unparsed:,} unparsed lines"), (0, 0, 0, 4)))
        if getattr(i, "collected_from", None):
            console.print(Padding(Text(f"from: {i.collected_from}", style="dim"), (0, 0, 0, 4)))
        if i.note:
            console.print(Padding(Text(f"incomplete: {i.note}", style="yellow"), (0, 0, 0, 4)))
    for s in analysis.skipped:
        console.print(Text("  " + relative(s.label, prefix), style="yellow"), soft_wrap=True)
        console.print(Padding(Text(f"skipped: {s.reason}", style="yellow"), (0, 0, 0, 4)))
    collection = getattr(analysis, "collection", None)
    if collection and collection["not_collected"]:
        console.print()
        console.print(Text(f"Not collected (emblens collect on {collection['host'] or 'the server'}, {collection['created']})",
                           style="bold underline"))
        for m in collection["not_collected"]:
            console.print(Padding(Text(f"{m['what']}: {m['why']}", style="yellow"), (0, 0, 0, 2)))
    if analysis.unexplained:
        console.print()
        console.print(Text(f"Error lines no rule explains ({sum(u.count for u in analysis.unexplained)})",
                           style="bold underline"))
        un = Table.grid(padding=(0, 1))
        un.add_column(justify="right", no_wrap=True)
        un.add_column(overflow="fold")
        for u in analysis.unexplained[:15]:
            un.add_row(f"{u.count}x", Text(f"{u.example.text[:300]}\n", style="") + Text(
                f"first at {u.example.source.removeprefix(prefix)}:{u.example.line}", style="dim"))
        if len(analysis.unexplained) > 15:
            un.add_row("", Text(f"... {len(analysis.unexplained) - 15} more templates (see --format json)", style="dim"))
        console.print(Padding(un, (0, 0, 0, 2)))
    console.print()
    console.print(Text(masked_line(analysis), style="dim"))
    return "\n".join(line.rstrip() for line in buf.getvalue().splitlines()) + "\n"
