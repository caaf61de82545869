"""Renderers of an `Analysis`: JSON (the contract in DESIGN.md), terminal text, Markdown, HTML."""

from __future__ import annotations

from emblens.report.jsonreport import to_dict, to_json
from emblens.report.markdown import to_markdown
from emblens.report.text import to_text


def render(analysis, fmt: str, *, width: int = 80, color: bool = False) -> str:
    if fmt == "json":
        return to_json(analysis)
    if fmt == "markdown":
        return to_markdown(analysis)
    if fmt == "html":
        from emblens.report.html import to_html  # imports matplotlib: only when asked for

        return to_html(analysis)
    return to_text(analysis, width=width, color=color)


__all__ = ["render", "to_dict", "to_json", "to_markdown", "to_text"]
