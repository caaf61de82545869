"""Sources whose unit is a record, not a log line: mitmproxy flow files and HAR archives.

Both are read whole by their own readers (mitmproxy's `FlowReader`, the json module) and turned
into one `http` event per exchange through `traffic.exchange`; the event's `line` is the
exchange's number in the file (flow 1, 2, ... or HAR entry 1, 2, ...). A `/v1/models` answer adds
a fact row with the served names.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from typing import BinaryIO

import polars as pl

from emblens.events.redact import mask_text
from emblens.events.schema import frame
from emblens.formats import exchange as traffic
from emblens.formats.base import Source
from emblens.knowledge.modeldata import ModelData
from emblens.reading.context import Counts, SourceContext

MAX_RECORD_BYTES = 512 * 1024 * 1024
MAX_HAR_BYTES = 256 * 1024 * 1024
MAX_HAR_OBJECTS = 2_000_000     # JSON objects in one HAR: far more than any browser writes
# a HAR entry's comment that says emblens sent the request wrong on purpose (no key, another scheme),
# as a check: the request is emblens's own, not a client's call (`emblens probe` writes it)
ON_PURPOSE = "emblens: sent this way on purpose"


class RecordSource(Source):
    """A source read whole; `sniff_bytes` looks at raw bytes (flow files are not text)."""

    __slots__ = ()

    def sniff(self, head: list[str]) -> float:  # noqa: ARG002 - records are sniffed from bytes
        return 0.0

    def sniff_bytes(self, head: bytes) -> float:  # pragma: no cover - overridden
        raise NotImplementedError

    def records(self, stream: BinaryIO, ctx: SourceContext) -> Iterator[dict | None]:  # pragma: no cover
        """One event row per record (None for a record that cannot be read), masked with the run's
        redactor (`ctx.redactor`)."""
        raise NotImplementedError

    def parse_stream(self, stream: BinaryIO, ctx: SourceContext) -> tuple[pl.DataFrame, Counts]:
        counts = Counts()
        rows: list[dict] = []
        try:
            for number, row in enumerate(self.records(stream, ctx), 1):
                counts.lines += 1
                if row is None:
                    counts.unparsed += 1
                    continue
                counts.events += 1
                row.update(source=ctx.label, line=number)
                rows.append(row)
                fact = traffic.models_fact(row)
                if fact:
                    rows.append({**fact, "source": ctx.label, "line": number})
        except RecordError as e:
            if not rows and counts.lines == 0:
                raise
            counts.stopped = f"read stopped after record {counts.lines:,}: {e}"
        return frame(rows), counts


class RecordError(ValueError):
    """A record file that its reader cannot continue (corrupt, truncated, too new)."""


def _read_all(stream: BinaryIO, limit: int = MAX_RECORD_BYTES) -> bytes:
    data = stream.read(limit + 1)
    if len(data) > limit:
        raise RecordError(f"larger than {limit // 2**20} MiB")
    return data


class _TooLarge(Exception):
    """Not a ValueError: mitmproxy's reader turns those into 'Invalid data format.'"""


class _OneRecordCap:
    """A stream whose single reads are capped: mitmproxy's reader reads each value whole, by the
    length its header claims, so a hostile length would be one huge allocation."""

    def __init__(self, raw: BinaryIO) -> None:
        self._raw, self._ahead = raw, b""

    def peek(self, n: int) -> bytes:
        if len(self._ahead) < n:
            self._ahead += self._raw.read(n - len(self._ahead))
        return self._ahead

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0 or n > MAX_RECORD_BYTES:
            raise _TooLarge(f"a flow value larger than {MAX_RECORD_BYTES // 2**20} MiB")
        out, self._ahead = self._ahead[:n], self._ahead[n:]
        return out + self._raw.read(n - len(out)) if len(out) < n else out


# -- mitmproxy -----------------------------------------------------------------------------------
# a tnetstring dict whose first key is one of a flow's state keys (their order differs by version)
_TNET_HEAD = re.compile(
    rb"^\d{1,10}:\d{1,2}:(?:websocket|response|request|error|client_conn|server_conn|type|version|id|"
    rb"intercepted|is_replay|marked|metadata|comment|timestamp_created|backup|live);"
)


class MitmFlows(RecordSource):
    """`mitmdump -w` flow files (format 20 of mitmproxy 10, 21 of 11), read with mitmproxy's reader."""

    __slots__ = ()
    name = "mitmproxy-flows"
    origin = "capture"

    def sniff_bytes(self, head: bytes) -> float:
        if _TNET_HEAD.match(head):
            return 0.99
        return 0.0

    def records(self, stream: BinaryIO, ctx: SourceContext) -> Iterator[dict | None]:
        from mitmproxy import exceptions, http
        from mitmproxy.io import FlowReader

        reader = FlowReader(_OneRecordCap(stream))   # streamed: memory holds one flow at a time
        try:
            for flow in reader.stream():
                yield flow_row(flow, ctx.models, ctx.redactor.text) if isinstance(flow, http.HTTPFlow) else None
        except _TooLarge as e:
            raise RecordError(str(e)) from None
        except exceptions.FlowReadException as e:
            raise RecordError(str(e).splitlines()[0][:200]) from None
        except Exception as e:  # a hostile or damaged file must not crash the analysis
            raise RecordError(f"damaged flow file ({type(e).__name__}: {str(e)[:120]})") from None


def flow_row(flow, data: ModelData | None = None, mask: Callable[[str], str] = mask_text) -> dict:
    """One event row for a mitmproxy `HTTPFlow` (used for files and by the live addon); `mask` masks
    the text it quotes (the run's redactor, which counts what it masks)."""
    req, resp = flow.request, flow.response
    started = datetime.fromtimestamp(req.timestamp_start, tz=timezone.utc).replace(tzinfo=None) if req.timestamp_start else None
    latency = None
    if resp is not None and resp.timestamp_end and req.timestamp_start:
        latency = round((resp.timestamp_end - req.timestamp_start) * 1000, 3)
    error = flow.error.msg if flow.error else None
    return traffic.exchange(
        method=req.method,
        url=req.pretty_url,
        request_headers=list(req.headers.items(multi=True)),
        request_body=_body(flow, req, "request"),
        status=resp.status_code if resp is not None else None,
        reason=resp.reason if resp is not None else None,
        response_headers=list(resp.headers.items(multi=True)) if resp is not None else [],
        response_body=_body(flow, resp, "response") if resp is not None else None,
        started=started,
        latency_ms=latency,
        error=error,
        data=data,
        mask=mask,
    )


def _body(flow, message, side: str) -> bytes | None:
    """A message's body; for one the live proxy streamed, the head it kept (decompressed as far
    as it goes)."""
    head = getattr(flow, f"emblens_{side}_head", None)
    if head is None:
        return message.get_content(strict=False)
    data = bytes(head)
    encoding = message.headers.get("content-encoding", "").lower()
    if encoding in ("gzip", "deflate"):
        import zlib

        try:
            return zlib.decompressobj(47 if encoding == "gzip" else 15).decompress(data, 1024 * 1024)
        except zlib.error:
            return None
    return data if not encoding or encoding == "identity" else None


# -- HAR -----------------------------------------------------------------------------------------
class HarFile(RecordSource):
    """HAR 1.2 as exported by a browser's network panel or `mitmdump --set hardump=`."""

    __slots__ = ()
    name = "har"
    origin = "capture"
    origins = ("client",)      # emblens's own failed call (probe, collect --url)

    def sniff_bytes(self, head: bytes) -> float:
        text = head.lstrip(b"\xef\xbb\xbf").lstrip()
        if text.startswith(b"{") and b'"log"' in text[:4096] and (b'"entries"' in text or b'"creator"' in text[:4096]):
            return 0.99
        return 0.0

    def records(self, stream: BinaryIO, ctx: SourceContext) -> Iterator[dict | None]:
        raw = _read_all(stream, MAX_HAR_BYTES)
        if raw.count(b"{") > MAX_HAR_OBJECTS:   # parsed whole, so its object count bounds the memory
            raise RecordError(f"more than {MAX_HAR_OBJECTS:,} JSON objects: not a browser's HAR")
        try:
            doc = json.loads(raw.decode("utf-8-sig"))
            entries = doc["log"]["entries"]
        except RecursionError:
            raise RecordError("JSON nested deeper than emblens reads (a hostile or damaged HAR)") from None
        except (ValueError, KeyError, TypeError, UnicodeDecodeError) as e:
            raise RecordError(f"not a HAR document: {str(e).splitlines()[0][:160]}") from None
        if not isinstance(entries, list):
            raise RecordError("not a HAR document: log.entries is not a list")
        creator = doc["log"].get("creator") if isinstance(doc["log"], dict) else None
        # emblens's own HAR (probe, collect --url) keeps every header: no Authorization means none was sent
        whole = isinstance(creator, dict) and creator.get("name") == "emblens"
        for entry in entries:
            try:
                yield har_row(entry, ctx.models, whole_headers=whole, mask=ctx.redactor.text)
            except (KeyError, TypeError, ValueError, AttributeError, RecursionError):
                yield None


def _pairs(items: object) -> list[tuple[str, str]]:
    return [(str(h.get("name", "")), str(h.get("value", ""))) for h in items or [] if isinstance(h, dict)]


def har_row(entry: dict, data: ModelData | None = None, whole_headers: bool = False,
            mask: Callable[[str], str] = mask_text) -> dict:
    import base64

    req, resp = entry["request"], entry.get("response") or {}
    content = resp.get("content") or {}
    body = content.get("text")
    if body and content.get("encoding") == "base64":
        body = base64.b64decode(body)
    status = resp.get("status")
    started = None
    if entry.get("startedDateTime"):
        try:
            started = datetime.fromisoformat(entry["startedDateTime"].replace("Z", "+00:00"))
            if started.tzinfo:
                started = started.astimezone(timezone.utc).replace(tzinfo=None)
        except ValueError:
            started = None
    failed = not status  # browsers write status 0 for a request that got no answer
    headers = _pairs(req.get("headers"))
    row = traffic.exchange(
        method=req["method"],
        url=req["url"],
        request_headers=headers,
        request_body=(req.get("postData") or {}).get("text"),
        status=None if failed else int(status),
        reason=resp.get("statusText"),
        response_headers=_pairs(resp.get("headers")),
        response_body=body,
        started=started,
        latency_ms=float(entry["time"]) if isinstance(entry.get("time"), (int, float)) and entry["time"] >= 0 else None,
        error=(resp.get("_error") or "no response (status 0)") if failed else None,
        data=data,
        mask=mask,
    )
    if whole_headers and failed:
        row["origin"] = "client"     # emblens itself connected, with no proxy between: its own failed call
    if traffic.header(headers, "authorization") is None and not whole_headers:
        # a browser's default (sanitized) export drops Authorization: absent is unknown, not missing
        row["auth_scheme"] = "not recorded"
    comment = entry.get("comment")
    if isinstance(comment, str) and comment.startswith(ON_PURPOSE):
        # `emblens probe` sent it wrong on purpose (no key, another scheme) to see how the server
        # answers: kept as a line, not as a client's request that the rules would blame
        row["kind"] = "log"
        row["level"] = "INFO"
        row["message"] = row["text"] = f"{row.get('text') or ''} ({comment[len(ON_PURPOSE) + 2:][:200]})".strip()
    return row
