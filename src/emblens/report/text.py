"""Terminal report, drawn with rich; reads well at 80 columns, plain when colour is off."""

from __future__ import annotations

import io

from rich.console import Console, Group
from rich.padding import Padding
from rich.table import Table
from rich.text import Text as _RichText

from emblens._version import __version__
from emblens.redact import printable
from emblens.report.jsonreport import gpu_lines, timeline
from emblens.report.markdown import masked_line


def Text(text: str = "", *args, **kwargs) -> _RichText:
    """rich's Text with control characters shown, not acted on: report text comes from strangers'
    inputs and rule folders. Styling is rich's own and still works."""
    return _RichText(printable(text), *args, **kwargs)


SEV_STYLE = {"error": "bold red", "warning": "bold yellow", "info": "bold blue"}
ROLE_LABEL = {"root_cause": "ROOT CAUSE", "symptom": "SYMPTOM", "finding": "FINDING"}


def _finding(f) -> Group:
    head = _RichText()
    label = ROLE_LABEL[f.role]
    head.append(f"{label} ", style="bold reverse" if f.role == "root_cause" else "bold")
    head.append(printable(f.rule), style=SEV_STYLE[f.severity])
    if f.cause:
        head.append(printable(f" ({f.cause})"), style=SEV_STYLE[f.severity])
    head.append(f"  {f.severity}, confidence {f.confidence:.2f}, seen {f.count}x", style="dim")
    parts: list = [head, Text(f.title, style="bold")]
    if f.explained_by:
        parts.append(Text(f"explained by {f.explained_by}", style="dim"))
    parts.append(Padding(Text(f.summary), (0, 0, 0, 2)))
    parts.append(Text("  Evidence", style="bold"))
    for e in f.evidence:
        parts.append(Padding(Text(f"{e.source}:{e.line}", style="cyan", overflow="fold"), (0, 0, 0, 4)))
        parts.append(Padding(Text(e.text, overflow="fold"), (0, 0, 0, 6)))
    if f.role != "symptom":
        fix = Table.grid(padding=(0, 1))
        fix.add_column(no_wrap=True)
        fix.add_column()
        for i, step in enumerate(f.remedy, 1):
            fix.add_row(f"{i}.", Text(step))
        parts += [Text("  Fix", style="bold"), Padding(fix, (0, 0, 0, 4))]
    return Group(*parts, Text(""))


def to_text(analysis, *, width: int = 80, color: bool = False) -> str:
    buf = io.StringIO()
    console = Console(file=buf, width=width, color_system="standard" if color else None, force_terminal=color,
                      highlight=False, emoji=False)
    n_sources = len(analysis.inputs)
    console.print(Text(f"emblens {__version__}: {n_sources} input(s) read, {len(analysis.skipped)} skipped, "
                       f"{len(analysis.findings)} finding(s)", style="bold"))
    console.print()
    lead = getattr(analysis, "lead", None)
    if not analysis.findings and lead is not None:
        console.print(Text("No rule matched, but the inputs hold errors. Start from this one:", style="bold yellow"))
        console.print(Padding(Text(f"{lead.what}: {lead.message}"[:400], style="bold"), (0, 0, 0, 2)))
        console.print(Padding(Text(f"{lead.evidence.source}:{lead.evidence.line}", style="cyan", overflow="fold"), (0, 0, 0, 2)))
        console.print(Padding(Text("(for a traceback: the innermost exception of the last one, where the chain began)",
                                   style="dim"), (0, 0, 0, 2)))
        console.print()
    elif not analysis.findings:
        console.print(Text("No known failure found in these inputs.", style="bold green"))
        if analysis.unexplained:
            console.print("Error lines that no rule explains are listed below; they may still matter.")
        console.print()
    for f in analysis.findings:
        console.print(_finding(f) if f.role != "symptom" else Padding(_finding(f), (0, 0, 0, 4)))
    tl = timeline(analysis)
    if tl and analysis.findings:
        console.print(Text("Timeline", style="bold underline"))
        for r in tl:
            head = Text((r["ts"] or "time unknown")[:19].replace("T", " ") + "  ", style="dim")
            head.append(printable(f"{r['source']}:{r['line']}"), style="cyan")
            if r["rule"]:
                head.append(printable(f"  [{r['rule']}]"), style="bold")
            console.print(Padding(head, (0, 0, 0, 2)))
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
        console.print(Padding(Text(i.source, style="cyan", overflow="fold"), (0, 0, 0, 2)))
        console.print(Padding(Text(f"{i.kind}, {i.events:,} events, {i.unparsed:,} unparsed lines"), (0, 0, 0, 4)))
        if i.note:
            console.print(Padding(Text(f"incomplete: {i.note}", style="yellow"), (0, 0, 0, 4)))
    for s in analysis.skipped:
        console.print(Padding(Text(s.label, style="yellow", overflow="fold"), (0, 0, 0, 2)))
        console.print(Padding(Text(f"skipped: {s.reason}", style="yellow"), (0, 0, 0, 4)))
    if analysis.unexplained:
        console.print()
        console.print(Text(f"Error lines no rule explains ({sum(u.count for u in analysis.unexplained)})",
                           style="bold underline"))
        un = Table.grid(padding=(0, 1))
        un.add_column(justify="right", no_wrap=True)
        un.add_column(overflow="fold")
        for u in analysis.unexplained[:15]:
            un.add_row(f"{u.count}x", Text(f"{u.example.text[:300]}\n", style="") + Text(
                f"first at {u.example.source}:{u.example.line}", style="dim"))
        if len(analysis.unexplained) > 15:
            un.add_row("", Text(f"... {len(analysis.unexplained) - 15} more templates (see --format json)", style="dim"))
        console.print(Padding(un, (0, 0, 0, 2)))
    console.print()
    console.print(Text(masked_line(analysis), style="dim"))
    return "\n".join(line.rstrip() for line in buf.getvalue().splitlines()) + "\n"
