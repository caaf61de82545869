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
from emblens.report import view


def Text(text: str = "", *args, **kwargs) -> _RichText:
    """rich's Text with control characters shown, not acted on: report text comes from strangers'
    inputs and rule folders. Styling is rich's own and still works."""
    return _RichText(printable(text), *args, **kwargs)


SEV_STYLE = MappingProxyType({"error": "bold red", "warning": "bold yellow", "info": "bold blue"})
ROLE_LABEL = MappingProxyType({"root_cause": "ROOT CAUSE", "symptom": "SYMPTOM", "finding": "FINDING"})


def _where(console: Console, source: str, line: int | None, prefix: str, indent: int, style: str = "cyan") -> None:
    """Print `file:line` on a line of its own, never wrapped (so it can be copied or clicked
    whole, even past the width), with the common prefix left out."""
    where = view.relative(source, prefix) + (f":{line}" if line is not None else "")
    console.print(Text(" " * indent + where, style=style), soft_wrap=True)


def _finding(console: Console, fv: view.FindingView, prefix: str = "", indent: int = 0) -> None:
    f = fv.f

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
    if fv.rate:
        out(Text(f"matched {fv.rate}", style="dim"))
    out(Text(f.title, style="bold"))
    if f.explained_by:
        out(Text(f"explained by {f.explained_by}", style="dim"))
    out(Text(f.summary), 2)
    out(Text("Evidence", style="bold"), 2)
    for e, others in fv.evidence:
        _where(console, e.source, e.line, prefix, indent + 4)
        out(Text(e.text, overflow="fold"), 6)
        if others:
            out(Text(view.more_lines(others), style="dim"), 6)
    if f.path:
        out(Text(view.path_title(f), style="bold"), 2)
        for step in f.path:
            _where(console, step.source, step.line, prefix, indent + 4)
            out(Text(f"{step.side}: {step.text[:view.PATH_TEXT]}", overflow="fold"), 6)
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
    v = view.build(analysis)
    console.print(Text(f"emblens {__version__}: {len(analysis.inputs)} input(s) read, {len(analysis.skipped)} skipped, "
                       f"{len(analysis.findings)} finding(s)", style="bold"))
    if v.prefix:
        console.print(Text(f"Paths below are in {v.prefix.rstrip('/:') or v.prefix}", style="dim"), soft_wrap=True)
    console.print()
    for name in v.sections():
        SECTIONS[name](console, v)
    return "\n".join(line.rstrip() for line in buf.getvalue().splitlines()) + "\n"


def _summary(console: Console, v: view.View) -> None:
    """Said only when no rule fired: where to start, or that nothing known was found."""
    analysis, lead = v.analysis, getattr(v.analysis, "lead", None)
    if not analysis.findings and lead is not None:
        console.print(Text("No rule matched, but the inputs hold errors. Start from this one:", style="bold yellow"))
        console.print(Padding(Text(f"{lead.what}: {lead.message}"[:400], style="bold"), (0, 0, 0, 2)))
        _where(console, lead.evidence.source, lead.evidence.line, v.prefix, 2)
        console.print(Padding(Text("(for a traceback: the innermost exception of the last one, where the chain began)",
                                   style="dim"), (0, 0, 0, 2)))
        console.print()
    elif not analysis.findings:
        console.print(Text("No known failure found in these inputs.", style="bold green"))
        if analysis.unexplained:
            console.print("Error lines that no rule explains are listed below; they may still matter.")
        console.print()


def _findings(console: Console, v: view.View) -> None:
    for fv in v.findings:
        _finding(console, fv, v.prefix, 0 if fv.f.role != "symptom" else 4)


def _probe(console: Console, v: view.View) -> None:
    probe = v.analysis.probe
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


def _timeline(console: Console, v: view.View) -> None:
    console.print(Text("Timeline (UTC)", style="bold underline"))
    for note in v.notes:
        console.print(Padding(Text(f"Note: {note}", style="yellow"), (0, 0, 0, 2)))
    for gap, r in v.timeline:
        if gap:
            console.print(Text(f"  ... {gap}", style="dim"))
        head = Text(view.when(r) + "  ", style="dim")
        head.append(printable(f"{r['source'].removeprefix(v.prefix)}:{r['line']}"), style="cyan")
        if r["rule"]:
            head.append(printable(f"  [{r['rule']}]"), style="bold")
        head.pad_left(2)
        console.print(head, soft_wrap=True)
        console.print(Padding(Text(r["text"][:200], overflow="fold"), (0, 0, 0, 4)))
    console.print()


def _gpus(console: Console, v: view.View) -> None:
    console.print(Text("GPUs (last nvidia-smi snapshot)", style="bold underline"))
    for title, mem, procs in v.gpus:
        console.print(Padding(Text(title, style="bold"), (0, 0, 0, 2)))
        console.print(Padding(Text(mem, overflow="fold"), (0, 0, 0, 4)))
        for p in procs:
            console.print(Padding(Text(p, overflow="fold"), (0, 0, 0, 4)))
    console.print()


def _coverage(console: Console, v: view.View) -> None:
    analysis = v.analysis
    console.print(Text("Coverage", style="bold underline"))
    for i in analysis.inputs:
        _where(console, i.source, None, v.prefix, 2)
        console.print(Padding(Text(f"{i.kind}, {i.events:,} events, {i.unparsed:,} unparsed lines"), (0, 0, 0, 4)))
        if getattr(i, "collected_from", None):
            console.print(Padding(Text(f"from: {i.collected_from}", style="dim"), (0, 0, 0, 4)))
        if i.note:
            console.print(Padding(Text(f"incomplete: {i.note}", style="yellow"), (0, 0, 0, 4)))
    for s in analysis.skipped:
        console.print(Text("  " + v.where(s.label), style="yellow"), soft_wrap=True)
        console.print(Padding(Text(f"skipped: {s.reason}", style="yellow"), (0, 0, 0, 4)))
    collection = getattr(analysis, "collection", None)
    if collection and collection["not_collected"]:
        console.print()
        console.print(Text(f"Not collected (emblens collect on {collection['host'] or 'the server'}, {collection['created']})",
                           style="bold underline"))
        for m in collection["not_collected"]:
            console.print(Padding(Text(f"{m['what']}: {m['why']}", style="yellow"), (0, 0, 0, 2)))


def _unexplained(console: Console, v: view.View) -> None:
    unexplained = v.analysis.unexplained
    console.print()
    console.print(Text(f"Error lines no rule explains ({sum(u.count for u in unexplained)})", style="bold underline"))
    un = Table.grid(padding=(0, 1))
    un.add_column(justify="right", no_wrap=True)
    un.add_column(overflow="fold")
    for u in unexplained[:15]:
        un.add_row(f"{u.count}x", Text(f"{u.example.text[:300]}\n", style="") + Text(
            f"first at {u.example.source.removeprefix(v.prefix)}:{u.example.line}", style="dim"))
    if len(unexplained) > 15:
        un.add_row("", Text(f"... {len(unexplained) - 15} more templates (see --format json)", style="dim"))
    console.print(Padding(un, (0, 0, 0, 2)))


def _masked(console: Console, v: view.View) -> None:
    console.print()
    console.print(Text(v.masked, style="dim"))


SECTIONS = MappingProxyType({"summary": _summary, "findings": _findings, "probe": _probe, "timeline": _timeline,
                             "gpus": _gpus, "coverage": _coverage, "unexplained": _unexplained, "masked": _masked})
