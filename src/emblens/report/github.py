"""GitHub Actions annotations (`emblens analyze --format github`): one workflow command per
finding, so that a job's log and its summary show the root cause at its file and line.

    ::error file=logs/vllm.log,line=100,title=The requested model is not served (model.not_found)::The request ...

The escaping is the toolkit's own (actions/toolkit, packages/core/src/command.ts at
ed3ea3b5ba8cf9cc0232e157f2080a9864305bd5, `escapeData` and `escapeProperty`): in the message `%`,
CR and LF become `%25`, `%0D`, `%0A`; in a property also `:` and `,` become `%3A` and `%2C`, so
that no text of an input can end a property, start another command or add a line. Control,
invisible and bidi characters are first shown as `\\x1b`, `\\u202e` (`printable`). `file` is the
source as emblens read it (the JSON report's `base` + `source`): a path given relative to the
checkout is one GitHub can link; for a member of an archive (`bundle.zip:logs/x.log`) the
annotation is on the archive, and the message says the member and its line. Nothing else is written, so no other line can be read as a
command; with no finding, one `::notice::` says so in the job's log.
"""

from __future__ import annotations

import re
from types import MappingProxyType

from emblens.events.redact import printable

COMMANDS = MappingProxyType({"error": "error", "warning": "warning", "info": "notice"})
NOTHING_FOUND = "::notice::emblens: no known failure found\n"
ARCHIVE_MEMBER = re.compile(r"^(.+?\.(?:zip|tar|tar\.gz|tgz|tar\.bz2|tar\.xz)):(.+)$", re.IGNORECASE)


def escape_data(text: str) -> str:
    """A command's message as the toolkit escapes it.

    >>> escape_data("100% done\\r\\nnext")
    '100%25 done%0D%0Anext'
    """
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """A command's property value as the toolkit escapes it.

    >>> escape_property("a.zip:logs/x,y.log")
    'a.zip%3Alogs/x%2Cy.log'
    """
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def to_github(analysis) -> str:
    lines = [annotation(f) for f in analysis.findings]
    return "".join(f"{line}\n" for line in lines) if lines else NOTHING_FOUND


def annotation(f) -> str:
    """One finding as an `::error`, `::warning` or `::notice` command, at its first evidence line."""
    message = printable(f.summary)
    props = []
    first = next((e for e in f.evidence if e.line >= 1), None)
    if first is not None:
        member = ARCHIVE_MEMBER.match(first.source)
        if member:      # GitHub links files of the checkout: the archive is one, its member's line is not
            props.append(("file", printable(member.group(1))))
            message += f" (Seen at {printable(member.group(2))}:{first.line} in the archive.)"
        else:
            props += [("file", printable(first.source)), ("line", str(first.line))]
    if f.role == "symptom" and f.explained_by:
        message += f" Explained by {printable(f.explained_by)}, the root cause."
    if f.remedy:
        message += f" Fix: {printable(f.remedy[0])}"
    props.append(("title", f"{printable(f.title)} ({printable(f.rule)})"))
    command = COMMANDS.get(f.severity, "warning")
    return f"::{command} " + ",".join(f"{k}={escape_property(v)}" for k, v in props) + f"::{escape_data(message)}"
