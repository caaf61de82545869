"""Python source files in a bundle: the client's script or a module copied in beside the logs.

Code is not a log. Its strings are what the program *would* print (`print("Connection error.")`,
`raise RuntimeError("CUDA out of memory")`), its `except AuthenticationError:` names what it
handles, not what happened; read as lines, they made confident findings out of a script that
never ran. A member is Python source when its text parses as a Python module with a top-level
import, function or class (the whole text, or its head up to the last statement that starts at
column 0, when only the head is at hand). It is then read for the settings it holds that decide
where a call goes, as a paste's environment lines are (`OPENAI_BASE_URL`, `os.environ[...] = …`,
proxy variables, `base_url="http://…"`), and nothing else.

Only whole members are checked (`ingest.sniff.choose`): a code block in a paste stays a region of
the paste, read with the prose around it.
"""

from __future__ import annotations

import ast
import re
import warnings

from emblens.formats import commands
from emblens.formats.base import WholeFileSource
from emblens.reading.context import SourceContext

# statements a module's top level holds: where a head cut mid-way may be ended to parse
TOP_LEVEL = re.compile(r"^(?:import |from \S+ import |def |async def |class |@|if |for |while |try:|with |[A-Za-z_][\w.]*\s*(?:[:=(]|\+=))")
MAX_PARSE_CHARS = 256 * 1024      # text given to the parser: a larger file is judged by its head
MAX_LINES_TRIMMED = 200           # lines dropped from a cut head's end to find a statement boundary


def _parses(text: str) -> bool:
    """Whether `text` is a Python module with a top-level import, function or class."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")      # invalid escape sequences in a user's strings
            tree = ast.parse(text)
    except (SyntaxError, ValueError, MemoryError, RecursionError, OverflowError):
        return False
    return any(isinstance(node, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
               for node in tree.body)


def is_python(head: str, whole: bool) -> bool:
    """Whether a member whose text starts with `head` (all of it when `whole`) is Python source.

    >>> is_python("import os\\nprint(os.environ['HOME'])\\n", True)
    True
    >>> is_python("Traceback (most recent call last):\\n  File \\"x.py\\", line 1, in <module>\\n", True)
    False
    >>> is_python("INFO 11-20 09:14:03 [api_server.py:1] vLLM API server version 0.11.0\\n", True)
    False
    """
    text = head[:MAX_PARSE_CHARS]
    lines = text.split("\n")
    if len(lines) < 2 or not any(TOP_LEVEL.match(line) for line in lines[:50]):
        return False
    if whole and len(head) <= MAX_PARSE_CHARS:
        return _parses(text)
    # a head: end it before the last statement that starts at column 0 (the cut may be inside it)
    for end in range(len(lines) - 1, max(0, len(lines) - 1 - MAX_LINES_TRIMMED), -1):
        if TOP_LEVEL.match(lines[end]):
            return _parses("\n".join(lines[:end]))
    return False


class PythonSource(WholeFileSource):
    """A Python source file: its settings (base URL, environment), never its strings."""

    __slots__ = ()
    name = "python-source"
    origin = "generic"
    MAX_BYTES = 4 * 1024 * 1024     # not in the registry: `ingest.sniff.choose` asks `is_python` of whole members

    def parse_lines(self, lines: list[str], ctx: SourceContext) -> tuple[list[dict], set[int], str | None]:
        from emblens.formats.paste import _env_row

        rows = [_env_row(ctx.redactor.text(f"{name}={commands.without_userinfo(value)}"), line, ctx)
                for line, name, value in commands.env_lines(lines)]
        return rows, set(), None

    def parse_stream(self, stream, ctx: SourceContext):
        events, counts = super().parse_stream(stream, ctx)
        # every line was understood (as code): none is unparsed, and the events are its settings
        counts.events, counts.unparsed = events.height, 0
        counts.kind = f"{self.name} (code, not a log: only the settings it holds are read)"
        return events, counts


PYTHON_SOURCE = PythonSource()
