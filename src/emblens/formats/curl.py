"""`curl -v` transcripts: `* ` info lines, `> ` request lines, `< ` response lines, then the body.

One `http` event per request (at the line of its `> METHOD path` line), with the body read from
the `-d`/`--data` echo when curl shows it (`} [N bytes data]` hides it; then only the response
body is known) and the response body from the lines after the blank `< ` line. A transcript
that ends in `curl: (N) …` (connection refused, timeout, ...) gives an event with that error.
Transcripts are small, so this adapter reads them whole (`WholeFileSource`) and walks the lines.
"""

from __future__ import annotations

import re

from emblens.formats import exchange as traffic
from emblens.formats.base import WholeFileSource
from emblens.reading.context import SourceContext

REQ_LINE = re.compile(r"^> ([A-Z]+) (\S+) HTTP/[\d.]+\s*$")
STATUS_LINE = re.compile(r"^< HTTP/[\d.]+ (\d{3})(?: (.*?))?\s*$")
CONNECT = re.compile(r"^\* +(?:Connected to|Trying|connect to|Established connection to) \[?([^\s\]]+)\]?(?: \([^)]*\))? port (\d+)")
CURL_ERR = re.compile(r"^curl: \((\d+)\) (.*)$")
CURL_CMD = re.compile(r"^(?:\S*[$#] )?curl\s")
DATA_MARK = re.compile(r"^[{}] \[\d+ bytes data\]$")


class CurlVerbose(WholeFileSource):
    __slots__ = ()
    name = "curl-verbose"
    origin = "capture"

    def sniff(self, head: list[str]) -> float:
        req = sum(1 for h in head if REQ_LINE.match(h))
        resp = sum(1 for h in head if h.startswith("< HTTP/"))
        info = sum(1 for h in head if h.startswith("* "))
        if req and (resp or info):
            return 0.97
        if any(CURL_ERR.match(h) for h in head) and info:
            return 0.9
        return 0.0

    def parse_lines(self, lines: list[str], ctx: SourceContext) -> tuple[list[dict], set[int], str | None]:
        rows: list[dict] = []
        used: set[int] = set()
        for start, ex in _exchanges(lines):
            row = traffic.exchange(data=ctx.models, mask=ctx.redactor.text, **ex["args"])
            row.update(line=start)
            rows.append(row)
            used.update(ex["lines"])
            fact = traffic.models_fact(row)
            if fact:
                rows.append({**fact, "line": start})
        # curl's own chatter (info lines, header lines, the progress meter) is understood too
        used.update(i for i, line in enumerate(lines, 1) if line[:2] in ("* ", "> ", "< ", "{ ", "} ")
                    or line.startswith(("curl: ", "  % Total", "                                 Dload")))
        return rows, used, None


def _exchanges(lines: list[str]):
    """(line number, {args for traffic.exchange, lines used}) for each request in a transcript."""
    host, port, scheme = None, None, "http"
    i, n = 0, len(lines)
    pending_error_host = None
    command = None
    while i < n:
        line = lines[i]
        if CURL_CMD.match(line):
            command = command_args(line)
        m = CONNECT.match(line)
        if m:
            host, port = m.group(1), int(m.group(2))
            pending_error_host = (host, port)
        if line.startswith("* ") and ("SSL connection" in line or "TLS" in line and "handshake" in line):
            scheme = "https"
        err = CURL_ERR.match(line)
        if err and (pending_error_host or command):
            if command and command["url"]:
                method, url, body = command["method"], command["url"], command["body"]
            else:
                method, url, body = "?", "{}://{}:{}/".format(scheme, *pending_error_host), None
            yield i + 1, {"args": dict(method=method, url=url, request_headers=command["headers"] if command else [],
                                        request_body=body, status=None, error=f"curl: ({err.group(1)}) {err.group(2)}"),
                          "lines": {i + 1}}
            command = None
            pending_error_host = None
            i += 1
            continue
        req = REQ_LINE.match(line)
        if not req:
            i += 1
            continue
        start = i + 1
        used = {start}
        method, target = req.group(1), req.group(2)
        headers: list[tuple[str, str]] = []
        i += 1
        while i < n and lines[i].startswith(">"):
            h = lines[i][2:]
            used.add(i + 1)
            if ":" in h:
                k, v = h.split(":", 1)
                headers.append((k.strip(), v.strip()))
            i += 1
        # a body curl echoes after the request headers (with --trace-ascii or when shown plainly)
        body_lines: list[str] = []
        while i < n and not lines[i].startswith(("<", "* ", "curl: ")) and not DATA_MARK.match(lines[i]):
            if lines[i].strip():
                body_lines.append(lines[i])
                used.add(i + 1)
            i += 1
        status = reason = None
        resp_headers: list[tuple[str, str]] = []
        resp_body: list[str] = []
        error = None
        while i < n and not REQ_LINE.match(lines[i]):
            line = lines[i]
            sm = STATUS_LINE.match(line)
            if sm:
                status, reason = int(sm.group(1)), sm.group(2)
                resp_headers = []
                used.add(i + 1)
            elif line.startswith("< ") and ":" in line:
                k, v = line[2:].split(":", 1)
                resp_headers.append((k.strip(), v.strip()))
                used.add(i + 1)
            elif CURL_ERR.match(line):
                e = CURL_ERR.match(line)
                error = f"curl: ({e.group(1)}) {e.group(2)}"
                used.add(i + 1)
                pending_error_host = None
            elif status is not None and not line.startswith(("<", "* ", "{ ", "} ", "  % Total", "                                 Dload")) \
                    and not re.match(r"^\s*\d+\s+\d+", line):
                resp_body.append(line)
                used.add(i + 1)
            i += 1
        hdr_host = traffic.header(headers, "host")
        authority = hdr_host or (f"{host}:{port}" if host else "localhost")
        url = target if "://" in target else f"{scheme}://{authority}{target}"
        pending_error_host = None
        body = "\n".join(body_lines) or (command["body"] if command else None)
        command = None
        yield start, {"args": dict(method=method, url=url, request_headers=headers,
                                    request_body=body, status=status, reason=reason,
                                    response_headers=resp_headers, response_body="\n".join(resp_body) or None,
                                    error=error if status is None else None),
                      "lines": used}


def command_args(line: str) -> dict | None:
    """Method, URL, headers and `-d` body of a pasted curl command line (the transcript itself
    does not show the body)."""
    import shlex

    try:
        words = shlex.split(re.sub(r"^\S*[$#] ", "", line))[1:]
    except ValueError:
        return None
    out: dict = {"method": None, "url": None, "headers": [], "body": None}
    j = 0
    while j < len(words):
        w = words[j]
        value = words[j + 1] if j + 1 < len(words) else None
        if w in ("-d", "--data", "--data-raw", "--data-binary", "--json") and value is not None:
            out["body"], j = value, j + 2
            continue
        if w.startswith(("--data=", "--data-raw=", "--data-binary=", "--json=")):
            out["body"] = w.split("=", 1)[1]
        elif w in ("-X", "--request") and value is not None:
            out["method"], j = value, j + 2
            continue
        elif w in ("-H", "--header") and value is not None and ":" in value:
            k, v = value.split(":", 1)
            out["headers"].append((k.strip(), v.strip()))
            j += 2
            continue
        elif re.match(r"^https?://", w):
            out["url"] = w
        j += 1
    out["method"] = out["method"] or ("POST" if out["body"] is not None else "GET")
    return out
