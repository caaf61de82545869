"""Pastes: evidence as people hand it over, a GitHub comment or a chat message holding prose, a
log excerpt, a traceback, an nvidia-smi table and a curl command in ONE file.

A small text member that is not one known format, or that holds markdown fences, is split into
regions (each fenced block, and the prose between them). Each region is cleaned of what pasting
added (the block's common indentation, `>` quote markers) and read by the adapter that
recognises *it*, with line numbers kept as in the member. curl commands anywhere (continued with
`\\` over several lines) become request events: method, URL, which credential headers they send;
server start commands and environment lines become facts (see `commands`). Coverage names the
regions by kind.
"""

from __future__ import annotations

import io
import re
from collections import Counter
from dataclasses import dataclass
from typing import BinaryIO

import polars as pl

from emblens.events import schema
from emblens.events.schema import frame
from emblens.formats import commands
from emblens.formats import exchange as traffic
from emblens.formats.base import WholeFileSource
from emblens.reading.context import Counts, SourceContext

FENCE = re.compile(r"^\s{0,3}(?:>\s?)*(```+|~~~+)(.*)$")
QUOTE = re.compile(r"^\s*>\s?")
CURL = re.compile(r"^\s*(?:[$#>]\s+)?curl\s")
MAX_BYTES = 4 * 1024 * 1024   # larger text members stream as plain logs
MAX_NESTING = 4               # a fenced block holding a paste with fences of its own, and so on
# an error body (a JSON or Python-literal object on one line) whose message holds lines of another
# format: a server's traceback or access line inside `{"error": {"message": "…"}}`
BODY = re.compile(r"[{]\s*[\"'](?:error|message|detail|msg|errors?_message|description|stderr|output|log)[\"']\s*:")
BODY_KEYS = frozenset({"error", "message", "detail", "msg", "error_message", "errors_message", "description", "stderr",
                       "output", "log", "text", "reason"})
MAX_BODIES = 200              # error bodies read per member
MAX_BODY_CHARS = 64 * 1024    # characters of one body read as an object
MAX_BODY_DEPTH = 6            # nesting of the object walked for its messages


def fence_mark(line: str, inside: str | None = None) -> str | None:
    """The fence a line opens (or, `inside` a block, closes), as CommonMark reads it: a backtick
    fence's info string holds no backtick, so ```docker run ...``` on one line is inline code; a
    closing fence is at least as long as the opening one and carries nothing after it.

    >>> fence_mark("```python"), fence_mark("```docker run x```"), fence_mark("```", "````"), fence_mark("````", "```")
    ('```', None, None, '````')
    """
    m = FENCE.match(line)
    if not m:
        return None
    mark, rest = m.group(1), m.group(2)
    if inside is None:
        return None if mark[0] == "`" and "`" in rest else mark
    if mark[0] != inside[0] or len(mark) < len(inside) or rest.strip():
        return None
    return mark


@dataclass
class Region:
    start: int            # 1-based line of the member where the region's first line is
    lines: list[str]
    fenced: bool


def split_regions(lines: list[str]) -> list[Region]:
    """Fenced blocks and the prose around them, in order (fence lines belong to neither).

    >>> [(r.start, r.lines, r.fenced) for r in split_regions(["see:", "```", "ERROR x", "```", "thanks"])]
    [(1, ['see:'], False), (3, ['ERROR x'], True), (5, ['thanks'], False)]
    """
    regions: list[Region] = []
    current: list[str] = []
    start = 1
    fence: str | None = None
    for n, line in enumerate(lines, 1):
        mark = fence_mark(line, fence)
        if mark:
            if current:
                regions.append(Region(start, current, fenced=fence is not None))
            fence = None if fence is not None else mark
            current, start = [], n + 1
            continue
        if not current:
            start = n
        current.append(line)
    if current:
        regions.append(Region(start, current, fenced=fence is not None))
    return regions


def clean(lines: list[str]) -> list[str]:
    """Undo what pasting added: `>` quote markers on every line, and the common indentation.

    >>> clean(["> > a", ">   b"]), clean(["    x", "      y"])
    (['> a', '  b'], ['x', '  y'])
    """
    body = [line for line in lines if line.strip()]
    if body and all(QUOTE.match(line) for line in body):
        lines = [QUOTE.sub("", line, count=1) for line in lines]
        body = [line for line in lines if line.strip()]
    indent = min((len(line) - len(line.lstrip(" \t")) for line in body), default=0)
    return [line[indent:] for line in lines] if indent else lines


def curl_commands(lines: list[str]) -> list[tuple[int, str]]:
    """(line, command) of every curl command, continuation lines joined, a quoted -d body kept
    whole across lines."""
    out = []
    n = 0
    while n < len(lines):
        if CURL.match(lines[n]):
            start, joined = n, lines[n].rstrip()
            while (joined.endswith("\\") or joined.count("'") % 2) and n + 1 < len(lines):
                joined = (joined[:-1] if joined.endswith("\\") else joined) + ("\n" if joined.count("'") % 2 else " ")
                n += 1
                joined += lines[n].strip()
            out.append((start + 1, re.sub(r"^\s*[$#>]\s+", "", joined.rstrip("\\"))))
        n += 1
    return out


class Paste(WholeFileSource):
    MAX_BYTES = MAX_BYTES

    __slots__ = ()
    name = "paste"
    origin = "generic"
    origins = ("client",)      # a pasted curl command is a client's request

    def sniff(self, head: list[str]) -> float:
        return 0.99 if sum(1 for h in head if fence_mark(h) is not None) >= 2 else 0.0

    def parse_stream(self, stream: BinaryIO, ctx: SourceContext, depth: int = 0) -> tuple[pl.DataFrame, Counts]:
        lines, counts = self.read_lines(stream, ctx)
        frames: list[pl.DataFrame] = []
        fences = {n for n, line in enumerate(lines, 1) if fence_mark(line) is not None}
        used = set(fences)
        kinds: Counter = Counter()
        for region in split_regions(lines):
            body = clean(region.lines)
            if not any(line.strip() for line in body):
                continue
            data = "\n".join(body).encode("utf-8") + b"\n"
            adapter, _ = ctx.sniff(data[: 64 * 1024]) if ctx.sniff else (None, "")
            if adapter is None or (isinstance(adapter, Paste) and depth >= MAX_NESTING):
                continue
            kinds[adapter.name] += 1
            if isinstance(adapter, Paste):   # a quoted paste inside the paste
                events, c = adapter.parse_stream(io.BytesIO(data), ctx, depth + 1)
            else:
                events, c = adapter.parse_stream(io.BytesIO(data), ctx)
            offset = region.start - 1
            if events.height:
                frames.append(events.with_columns(pl.col("line") + offset))
            if c.unparsed == 0:    # every line of the region understood
                used.update(range(region.start, region.start + len(body)))
            elif events.height:
                used.update(n + offset for n in events["line"].to_list())
                # and the routine lines the format counted without keeping (a server's access, metrics and
                # request-logging lines)
                if getattr(adapter, "clock", None):
                    from emblens.reading.routine import Tally

                    routine = Tally.marks(pl.DataFrame({"raw": body}), adapter.metrics, adapter.requests)["routine"]
                    used.update(region.start + i for i in routine.arg_true().to_list())
        if depth < MAX_NESTING:
            for n, text in bodies(lines):
                data = text.encode("utf-8") + b"\n"
                adapter, _ = ctx.sniff(data[: 64 * 1024]) if ctx.sniff else (None, "")
                if adapter is None:
                    continue
                parse = adapter.parse_stream
                events, _c = parse(io.BytesIO(data), ctx, depth + 1) if isinstance(adapter, Paste) else parse(io.BytesIO(data), ctx)
                if events.height:      # the body is one line of the member: every event it holds is that line
                    frames.append(events.with_columns(pl.lit(n, dtype=pl.Int64).alias("line")))
                    used.add(n)
        rows = []
        for line, command in curl_commands(lines) if depth == 0 else ():   # the outer paste reads them all
            row = request(command, ctx)
            if row is not None:
                rows.append({**row, "line": line, "source": ctx.label})
                used.add(line)
        if depth == 0:
            for line, text in commands.logical_lines(lines):
                parsed = commands.parse(text) if commands.START.search(text) else None
                if parsed is not None:
                    shown = ctx.redactor.text(commands.without_userinfo(text))
                    # its settings as the command reads once masked, which is what the reports show
                    as_shown = commands.parse(shown) or {"env": {}}
                    rows.append({**commands.fact_row(parsed), **commands.settings(as_shown), "message": shown, "text": shown,
                                 "line": line, "source": ctx.label})
                    # the proxy variables it sets (docker -e, an inline export) as environment rows of its line
                    rows += [_env_row(f"{name}={value}", line, ctx) for name, value in as_shown["env"].items() if commands.proxy_name(name)]
                    used.add(line)
            for line, name, value in commands.env_lines(lines):
                rows.append(_env_row(ctx.redactor.text(f"{name}={commands.without_userinfo(value)}"), line, ctx))
        if rows:
            frames.append(frame(rows))
        if not fences and not rows and len(kinds) == 1 and sum(kinds.values()) == 1:
            counts.kind, note = next(iter(kinds)), None       # one format after all: say which
        else:
            note = "regions: " + ", ".join(f"{k} {n}" for k, n in kinds.most_common()) if kinds else None
        self.account(counts, lines, used, note)
        return (pl.concat(frames, how="vertical") if frames else schema.empty()), counts


def bodies(lines: list[str]) -> list[tuple[int, str]]:
    r"""(line, text) of the messages inside error bodies that hold more than a sentence: lines, or
    quotes that the body escaped. A body is a JSON object, or a Python literal (an SDK's
    `Error code: 400 - {'error': {...}}`), on one line.

    >>> bodies(['{"error": {"message": "Traceback (most recent call last):\\n  File \\"x.py\\", line 1"}}'])
    [(1, 'Traceback (most recent call last):\n  File "x.py", line 1')]
    """
    import ast
    import json

    out: list[tuple[int, str]] = []
    for n, line in enumerate(lines, 1):
        if len(out) >= MAX_BODIES:
            break
        m = BODY.search(line)
        if m is None:
            continue
        end = line.rfind("}")
        chunk = line[m.start(): end + 1]
        if end < m.start() or len(chunk) > MAX_BODY_CHARS:
            continue
        try:
            obj = json.loads(chunk)
        except ValueError:
            try:
                obj = ast.literal_eval(chunk)
            except (ValueError, SyntaxError, MemoryError, RecursionError, TypeError):
                continue
        for text in _messages(obj, 0):
            if "\n" in text or '"' in text:
                out.append((n, text))
    return out


def _messages(obj: object, depth: int) -> list[str]:
    """The string values of an error body's message keys, outermost first."""
    if depth > MAX_BODY_DEPTH or not isinstance(obj, (dict, list)):
        return []
    out: list[str] = []
    items = obj.items() if isinstance(obj, dict) else ((None, v) for v in obj)
    for key, value in items:
        if isinstance(value, str) and (key is None or str(key).lower() in BODY_KEYS) and value.strip():
            out.append(value)
        elif isinstance(value, (dict, list)):
            out += _messages(value, depth + 1)
    return out


def _env_row(shown: str, line: int, ctx: SourceContext) -> dict:
    """An `env` fact row for `NAME=value` as shown (masked, a URL's userinfo dropped)."""
    name, _, value = shown.partition("=")
    return {"kind": "fact", "fact": "env", "origin": "generic", "level": "INFO", "message": shown, "text": shown,
            "env_name": name, "env_value": value, "line": line, "source": ctx.label}


def request(command: str, ctx: SourceContext) -> dict | None:
    """A request event for a pasted curl command: what it sends; its answer is not known."""
    from emblens.formats.curl import command_args

    args = command_args(command)
    if not args or not args.get("url"):
        return None
    row = traffic.exchange(method=args["method"], url=args["url"], request_headers=args["headers"],
                           request_body=args["body"], status=None, data=ctx.models, mask=ctx.redactor.text)
    row.update(origin="client", level="INFO")
    row["message"] = row["message"].replace("-> no response", "(curl command; its answer is not in the paste)")
    row["text"] = row["text"].replace(" -> no response", "")
    return row
