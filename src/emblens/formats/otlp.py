"""OpenTelemetry traces as OTLP/JSON: the Collector's file exporter (one `ExportTraceServiceRequest`
a line, `{"resourceSpans": [...]}`), one such document pretty-printed, or Tempo's answer for a
trace (`{"batches": [...]}`, the same shape). Ids are hex (OTLP/JSON) or base64 (protobuf's JSON
mapping, as some exporters write them); both are read as hex.

Each span is one event (`kind` log, ERROR when its status is an error): its text a line that says
what the span says (name, kind, server, model, duration, status), with `trace_id`, `span_id`,
`request_id` (`gen_ai.response.id`, `gen_ai.request.id`), `req_model`, `http_host`/`http_port`
(`server.address`/`server.port`), `http_status` (`http.response.status_code`) and `latency_ms`
(the span's duration). A span that failed is also an exception event, as the last line of a
traceback reads: `error.type` (or an `exception` event's `exception.type`) and the status message
or `exception.message` (`APITimeoutError: Request timed out.`), so every rule that reads words or
exceptions reads spans too. The event's `line` is the line of the file the span's document starts
on. Both generations of the GenAI conventions are read (`gen_ai.system` / `gen_ai.provider.name`).

A server's request span (vLLM's `llm_request`) also gives `queue_ms` and `ttft_ms`
(`gen_ai.latency.time_in_queue`, `gen_ai.latency.time_to_first_token`, in seconds there), and
`preemptions`: with `--enable-journey-tracing` its span events `journey.QUEUED`, `journey.SCHEDULED`,
`journey.PREEMPTED`, `journey.FINISHED` carry `num_preemptions`.

Origins: a client span of the openai instrumentation (or any GenAI client span) is `client`; a
span of a vLLM or SGLang service (its `service.name`, vLLM's `llm_request` span, SGLang's request
root span `Req <rid>` with its `rid` and `module: sglang::…` attributes, as
python/sglang/srt/tracing/trace.py starts it in the trace of the request's `traceparent`) is that
server's, its `rid` the request id; any other span is `generic`.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterator
from datetime import datetime, timezone
from types import MappingProxyType
from typing import BinaryIO

import polars as pl

from emblens.events.schema import frame
from emblens.formats.records import RecordError, RecordSource, _read_all
from emblens.reading.context import Counts, SourceContext

MAX_OTLP_BYTES = 256 * 1024 * 1024
MAX_SPANS = 500_000            # spans read from one file; the rest counted
MAX_OBJECTS = 20_000_000       # JSON objects in one file
MAX_DEPTH_ATTR = 4             # nested attribute values (arrays, kvlists) read this deep
_HEAD = re.compile(rb'^\s*\{\s*"(?:resourceSpans|batches)"\s*:\s*\[')
SPAN_KINDS = MappingProxyType({"SPAN_KIND_CLIENT": "client", "SPAN_KIND_SERVER": "server", "SPAN_KIND_INTERNAL": "internal",
                               "SPAN_KIND_PRODUCER": "producer", "SPAN_KIND_CONSUMER": "consumer", 3: "client", 2: "server",
                               1: "internal"})


def value(v: object, depth: int = 0) -> object:
    """An OTLP `AnyValue` as a Python value (int values are strings in OTLP/JSON)."""
    if not isinstance(v, dict) or depth > MAX_DEPTH_ATTR:
        return None
    if "stringValue" in v:
        return v["stringValue"]
    if "intValue" in v:
        try:
            return int(v["intValue"])
        except (TypeError, ValueError):
            return None
    if "doubleValue" in v:
        return v["doubleValue"]
    if "boolValue" in v:
        return v["boolValue"]
    if "arrayValue" in v:
        return [value(x, depth + 1) for x in (v["arrayValue"] or {}).get("values", [])[:1000]]
    if "kvlistValue" in v:
        return attributes((v["kvlistValue"] or {}).get("values", []), depth + 1)
    if "bytesValue" in v:
        return "<bytes>"
    return None


def attributes(items: object, depth: int = 0) -> dict:
    out: dict = {}
    if isinstance(items, list):
        for item in items[:10_000]:
            if isinstance(item, dict) and isinstance(item.get("key"), str):
                out[item["key"]] = value(item.get("value"), depth)
    return out


def hex_id(raw: object, size: int) -> str | None:
    """A trace (16 bytes) or span (8 bytes) id as lower-case hex, from hex or base64."""
    if not isinstance(raw, str) or not raw:
        return None
    if re.fullmatch(rf"[0-9a-fA-F]{{{2 * size}}}", raw):
        return raw.lower()
    try:
        data = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        return None
    return data.hex() if len(data) == size else None


def _time(nanos: object) -> datetime | None:
    try:
        n = int(nanos)
    except (TypeError, ValueError):
        return None
    if n <= 0:
        return None
    return datetime.fromtimestamp(n / 1e9, tz=timezone.utc).replace(tzinfo=None)


def _int(x: object) -> int | None:
    try:
        return int(x) if x is not None and not isinstance(x, bool) else None
    except (TypeError, ValueError):
        return None


def _ms(seconds: object) -> float | None:
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not 0 <= seconds < 1e7:
        return None
    return float(seconds) * 1000


def _origin(resource: dict, scope: str, span: dict, attrs: dict, kind: str) -> str:
    service = str(resource.get("service.name") or "").lower()
    name = str(span.get("name") or "")
    for server in ("vllm", "sglang"):
        if server in service or scope.lower().startswith(server):
            return server
    if name == "llm_request" and "gen_ai.request.id" in attrs:     # vLLM's request span
        return "vllm"
    if str(attrs.get("module") or "").startswith("sglang::"):      # SGLang's request root span (`--enable-trace`)
        return "sglang"
    if kind == "client" and (any(k.startswith("gen_ai.") for k in attrs) or "openai" in scope):
        return "client"
    return "generic"


def span_rows(resource: dict, scope: str, span: dict, mask) -> list[dict]:
    """The events of one span: the span, and an exception event when it failed."""
    attrs = attributes(span.get("attributes"))
    kind = SPAN_KINDS.get(span.get("kind"), "internal")
    start, end = _time(span.get("startTimeUnixNano")), _time(span.get("endTimeUnixNano"))
    took = (end - start).total_seconds() * 1000 if start and end else None
    status = span.get("status") if isinstance(span.get("status"), dict) else {}
    failed = status.get("code") in ("STATUS_CODE_ERROR", 2)
    model = attrs.get("gen_ai.request.model") or attrs.get("gen_ai.response.model")
    host, port = attrs.get("server.address") or attrs.get("net.peer.name"), _int(attrs.get("server.port") or attrs.get("net.peer.port"))
    http_status = _int(attrs.get("http.response.status_code") or attrs.get("http.status_code"))
    exc_type = attrs.get("error.type")
    exc_message = status.get("message") or None
    preempted = _int(attrs.get("gen_ai.request.num_preemptions") or attrs.get("num_preemptions"))
    for event in (span.get("events") or [])[:1000]:
        if not isinstance(event, dict):
            continue
        if event.get("name") == "exception":
            ev = attributes(event.get("attributes"))
            exc_type = ev.get("exception.type") or exc_type
            exc_message = ev.get("exception.message") or exc_message
        elif str(event.get("name") or "").startswith("journey."):     # vLLM's --enable-journey-tracing
            ev = attributes(event.get("attributes"))
            count = _int(ev.get("num_preemptions"))
            if event.get("name") == "journey.PREEMPTED":
                count = max(count or 0, 1)
            if count is not None:
                preempted = max(preempted or 0, count)
    words = [f"span {span.get('name') or '(unnamed)'!s}", kind]
    if host:
        words.append(f"{host}:{port}" if port else str(host))
    if model:
        words.append(f"model {model}")
    if http_status:
        words.append(f"HTTP {http_status}")
    if took is not None:
        words.append(f"{took:,.0f} ms")
    queue, first = _ms(attrs.get("gen_ai.latency.time_in_queue")), _ms(attrs.get("gen_ai.latency.time_to_first_token"))
    if queue is not None:
        words.append(f"(queued {queue:,.0f} ms)")
    if first is not None:
        words.append(f"(first token {first:,.0f} ms)")
    if preempted:
        words.append(f"({preempted} preemption{'s' if preempted > 1 else ''})")
    words.append("ERROR (below)" if failed and (exc_type or exc_message) else "ERROR" if failed else "OK")
    text = mask(" ".join(str(w) for w in words))     # the failure's words are its exception event's, once
    base = {
        "ts": start, "ts_text": start.isoformat(timespec="milliseconds") + "Z" if start else None,
        "origin": _origin(resource, scope, span, attrs, kind), "trace_id": hex_id(span.get("traceId"), 16),
        "span_id": hex_id(span.get("spanId"), 8),
        "request_id": mask(str(rid)) if (rid := attrs.get("gen_ai.response.id") or attrs.get("gen_ai.request.id")
                                          or attrs.get("rid")) else None,
        "req_model": mask(str(model)) if model else None, "http_host": mask(str(host)) if host else None,
        "http_port": port, "http_status": http_status, "latency_ms": took,
        # vLLM's request span (vllm/tracing.py SpanAttributes; set in v1/engine/output_processor.py): seconds
        "queue_ms": queue, "ttft_ms": first, "preemptions": preempted,
    }
    said = failed and bool(exc_type or exc_message)          # the exception event says the failure
    rows = [{**base, "kind": "log", "level": "ERROR" if failed and not said else "INFO", "message": text, "text": text}]
    if said:
        message = mask(str(exc_message or ""))
        line = mask(f"{exc_type}: {exc_message}" if exc_type and exc_message else str(exc_type or exc_message))
        rows.append({**base, "kind": "exception", "level": "ERROR", "message": line, "text": line,
                     "exc_type": mask(str(exc_type)) if exc_type else None, "exc_message": message or None,
                     "exc_root_type": mask(str(exc_type)) if exc_type else None, "exc_root_message": message or None,
                     "exc_position": "only"})
    return rows


def spans(doc: dict) -> Iterator[tuple[dict, str, dict]]:
    """(resource attributes, scope name, span) of an ExportTraceServiceRequest (or Tempo's batches)."""
    for rs in (doc.get("resourceSpans") or doc.get("batches") or [])[:100_000]:
        if not isinstance(rs, dict):
            continue
        resource = attributes((rs.get("resource") or {}).get("attributes"))
        for ss in (rs.get("scopeSpans") or rs.get("instrumentationLibrarySpans") or [])[:100_000]:
            if not isinstance(ss, dict):
                continue
            scope = ss.get("scope") or ss.get("instrumentationLibrary") or {}
            for span in (ss.get("spans") or [])[:MAX_SPANS]:
                if isinstance(span, dict):
                    yield resource, str(scope.get("name") or ""), span


class TraceSource(RecordSource):
    """A trace file, read whole within bounds: its first bytes match `head`; its spans are read
    by `span_rows` (OTLP/JSON here, Jaeger's JSON in `formats.jaeger`)."""

    __slots__ = ()
    origin = "client"
    origins = ("vllm", "sglang", "generic")
    head = _HEAD

    def sniff_bytes(self, head: bytes) -> float:
        return 0.99 if self.head.match(head.lstrip(b"\xef\xbb\xbf")) else 0.0

    @classmethod
    def read_document(cls, stream: BinaryIO, what: str) -> object:
        """The member as one JSON document (a Jaeger export, Langfuse's answer), within bounds."""
        try:
            return json.loads(cls.read_bounded(stream).decode("utf-8-sig", "replace"))
        except (ValueError, RecursionError):
            raise RecordError(f"not {what}: the file is not one JSON document") from None

    @staticmethod
    def read_bounded(stream: BinaryIO) -> bytes:
        data = _read_all(stream, MAX_OTLP_BYTES)
        if data.count(b"{") > MAX_OBJECTS:     # parsed whole: its object count bounds the memory
            raise RecordError(f"more than {MAX_OBJECTS:,} JSON objects: not a trace export emblens reads")
        return data


class OtlpJson(TraceSource):
    """OTLP/JSON trace files (the Collector's file exporter, a pretty-printed export, Tempo)."""

    __slots__ = ()
    name = "otlp-json"

    def parse_stream(self, stream: BinaryIO, ctx: SourceContext) -> tuple[pl.DataFrame, Counts]:
        counts = Counts()
        raw = self.read_bounded(stream).decode("utf-8-sig", "replace")
        lines = raw.split("\n")
        docs: list[tuple[int, str]] = []
        if raw.lstrip().startswith("{") and len([x for x in lines if x.strip()]) > 1 and not lines[0].rstrip().endswith("}"):
            docs = [(1, raw)]                     # one pretty-printed document
        else:
            docs = [(k, x) for k, x in enumerate(lines, 1) if x.strip()]
        counts.lines = len(lines) - (1 if raw.endswith("\n") else 0)
        rows: list[dict] = []
        read = 0
        for number, text in docs:
            try:
                doc = json.loads(text)
            except (ValueError, RecursionError):
                counts.unparsed += 1
                if not rows and number == docs[-1][0] and read == 0:
                    raise RecordError("not OTLP/JSON: a line that is not JSON") from None
                continue
            if not isinstance(doc, dict):
                counts.unparsed += 1
                continue
            for resource, scope, span in spans(doc):
                read += 1
                if read > MAX_SPANS:
                    counts.stopped = f"more than {MAX_SPANS:,} spans: the rest were not read"
                    break
                for row in span_rows(resource, scope, span, ctx.redactor.text):
                    rows.append({**row, "source": ctx.label, "line": number})
            if read > MAX_SPANS:
                break
        counts.events = len(rows)
        counts.recognised = counts.events
        counts.unparsed = max(counts.unparsed, 0)
        return frame(rows), counts
