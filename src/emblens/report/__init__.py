"""Renderers of an `Analysis`: JSON (the contract in DESIGN.md), terminal text, Markdown, HTML,
and for CI SARIF (code scanning) and GitHub Actions annotations.

The text renderer (rich) and the HTML one (matplotlib) are imported when asked for: a run that
writes JSON or Markdown does not pay for them (rich costs a start-up some 25 ms)."""

from __future__ import annotations

from emblens.report.jsonreport import to_dict, to_json
from emblens.report.markdown import to_markdown


def render(analysis, fmt: str, *, width: int = 80, color: bool = False) -> str:
    if fmt == "json":
        return to_json(analysis)
    if fmt == "markdown":
        return to_markdown(analysis)
    if fmt == "html":
        from emblens.report.html import to_html  # imports matplotlib: only when asked for

        return to_html(analysis)
    if fmt == "sarif":
        from emblens.report.sarif import to_sarif

        return to_sarif(analysis)
    if fmt == "github":
        from emblens.report.github import to_github

        return to_github(analysis)
    from emblens.report.text import to_text

    return to_text(analysis, width=width, color=color)


def __getattr__(name: str):
    if name == "to_text":
        from emblens.report.text import to_text

        return to_text
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["render", "to_dict", "to_json", "to_markdown", "to_text"]
