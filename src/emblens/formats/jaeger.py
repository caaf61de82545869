"""Jaeger's JSON: a trace saved from Jaeger's UI or its query API (`/api/traces/{id}`,
`/api/traces?service=…`): `{"data": [{"traceID", "spans": [...], "processes": {...}}]}`, times in
microseconds, attributes as `tags` (`{"key", "type", "value"}`), span events as `logs`.

Jaeger stores OpenTelemetry spans translated (the Collector's and Jaeger's OTLP translator):
`span.kind` and `otel.status_code` / `otel.status_description` (or `error: true`) are tags, an
exception event is a log whose `event` field is `exception`, the service is the process's
`serviceName`. Each span is turned back into the OTLP shape and read by `otlp.span_rows`, so a span
gives the same events whichever store it was exported from; the event's `line` is the span's
number in the file.
"""

from __future__ import annotations

import re
from types import MappingProxyType
from typing import BinaryIO

import polars as pl

from emblens.events.schema import frame
from emblens.formats.otlp import MAX_SPANS, TraceSource, span_rows
from emblens.reading.context import Counts, SourceContext

_HEAD = re.compile(rb'^\s*\{\s*"data"\s*:\s*\[\s*\{\s*"traceID"\s*:')
_STATUS = MappingProxyType({"ERROR": "STATUS_CODE_ERROR", "OK": "STATUS_CODE_OK"})
_KIND = MappingProxyType({"client": "SPAN_KIND_CLIENT", "server": "SPAN_KIND_SERVER", "internal": "SPAN_KIND_INTERNAL",
                          "producer": "SPAN_KIND_PRODUCER", "consumer": "SPAN_KIND_CONSUMER"})


def _tags(items: object) -> dict:
    out: dict = {}
    if isinstance(items, list):
        for t in items[:10_000]:
            if isinstance(t, dict) and isinstance(t.get("key"), str):
                out[t["key"]] = t.get("value")
    return out


def _otlp_value(v: object) -> dict:
    if isinstance(v, bool):
        return {"boolValue": v}
    if isinstance(v, int):
        return {"intValue": str(v)}
    if isinstance(v, float):
        return {"doubleValue": v}
    return {"stringValue": "" if v is None else str(v)}


def as_otlp(span: dict, process: dict) -> tuple[dict, str, dict]:
    """(resource attributes, scope name, span in the OTLP shape) of a Jaeger span."""
    tags = _tags(span.get("tags"))
    status_code = str(tags.pop("otel.status_code", "") or "").upper()
    message = tags.pop("otel.status_description", None)
    if tags.get("error") is True or str(tags.get("error")).lower() == "true":
        status_code = status_code or "ERROR"
    tags.pop("error", None)
    kind = _KIND.get(str(tags.pop("span.kind", "") or "").lower(), "SPAN_KIND_INTERNAL")
    scope = str(tags.pop("otel.scope.name", tags.pop("otel.library.name", "")) or "")
    start = span.get("startTime")
    duration = span.get("duration")
    events = []
    for log in (span.get("logs") or [])[:1000]:
        fields = _tags(log.get("fields") if isinstance(log, dict) else None)
        name = fields.get("event")
        if name == "exception" or (isinstance(name, str) and name.startswith("journey.")):
            events.append({"name": name, "attributes": [{"key": k, "value": _otlp_value(v)}
                                                        for k, v in fields.items() if k != "event"]})
    otlp = {
        "traceId": span.get("traceID"), "spanId": span.get("spanID"), "name": span.get("operationName"),
        "kind": kind, "attributes": [{"key": k, "value": _otlp_value(v)} for k, v in tags.items()], "events": events,
        "status": {"code": _STATUS.get(status_code, "STATUS_CODE_UNSET"), **({"message": message} if message else {})},
    }
    if isinstance(start, int | float):
        otlp["startTimeUnixNano"] = str(int(start) * 1000)
        if isinstance(duration, int | float):
            otlp["endTimeUnixNano"] = str((int(start) + int(duration)) * 1000)
    resource = {"service.name": process.get("serviceName"), **_tags(process.get("tags"))}
    return resource, scope, otlp


class JaegerJson(TraceSource):
    """Jaeger's JSON trace export (its UI's download, its query API's answer)."""

    __slots__ = ()
    name = "jaeger-json"
    head = _HEAD

    def parse_stream(self, stream: BinaryIO, ctx: SourceContext) -> tuple[pl.DataFrame, Counts]:
        doc = self.read_document(stream, "Jaeger's JSON")
        counts = Counts()
        rows: list[dict] = []
        number = 0
        for trace in (doc.get("data") if isinstance(doc, dict) else None) or []:
            if not isinstance(trace, dict):
                continue
            processes = trace.get("processes") if isinstance(trace.get("processes"), dict) else {}
            for span in (trace.get("spans") or [])[:MAX_SPANS]:
                if not isinstance(span, dict):
                    continue
                number += 1
                if number > MAX_SPANS:
                    counts.stopped = f"more than {MAX_SPANS:,} spans: the rest were not read"
                    break
                process = processes.get(span.get("processID")) if isinstance(processes.get(span.get("processID")), dict) else {}
                resource, scope, otlp = as_otlp(span, process)
                rows += [{**row, "source": ctx.label, "line": number} for row in span_rows(resource, scope, otlp, ctx.redactor.text)]
        counts.lines = number
        counts.events = counts.recognised = len(rows)
        return frame(rows), counts
