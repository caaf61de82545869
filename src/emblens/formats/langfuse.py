"""Langfuse's observations, as its public API answers them (`GET /api/public/observations`, and
`/api/public/v2/observations`; its OpenAPI spec's `Observation`): `{"data": [ {...}, ... ], "meta":
{...}}`, one observation a trace's span, generation or event: `id`, `traceId`, `type` (SPAN,
GENERATION, EVENT, ...), `name`, `startTime`, `endTime` (ISO 8601), `model`, `level` (DEBUG,
DEFAULT, WARNING, ERROR), `statusMessage`, `parentObservationId`. A file of one such observation
object, or a JSON array of them (an export saved from the UI), is read the same way.

Each observation becomes the OpenTelemetry span it stands for (Langfuse stores OpenTelemetry
spans as observations) and is read as `formats.otlp` reads spans: an ERROR observation is a
failed span whose exception is its `statusMessage`, so the rules read it as they read a
traceback's last line. Its prompt and completion (`input`, `output`) are never read.
"""

from __future__ import annotations

import re
from datetime import datetime
from types import MappingProxyType
from typing import BinaryIO

import polars as pl

from emblens.events.schema import frame
from emblens.formats.otlp import MAX_SPANS, TraceSource, span_rows
from emblens.reading.context import Counts, SourceContext

_HEAD = re.compile(rb'^\s*(?:\{\s*"data"\s*:\s*)?\[?\s*\{[^\[\]]{0,4000}?"traceId"\s*:[^\[\]]{0,4000}?"startTime"\s*:'
                   rb'|^\s*(?:\{\s*"data"\s*:\s*)?\[?\s*\{[^\[\]]{0,4000}?"startTime"\s*:[^\[\]]{0,4000}?"traceId"\s*:')
_KINDS = MappingProxyType({"GENERATION": "SPAN_KIND_CLIENT", "EMBEDDING": "SPAN_KIND_CLIENT"})


def _nanos(stamp: object) -> str | None:
    if not isinstance(stamp, str) or not stamp:
        return None
    try:
        t = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return None
    return str(int(t.timestamp() * 1e9))


def as_otlp(o: dict) -> tuple[dict, str, dict]:
    """(resource, scope, span) of one observation, in OTLP/JSON's shape."""
    attrs: list[dict] = []
    model = o.get("model") or o.get("providedModelName")
    if isinstance(model, str) and model:
        attrs.append({"key": "gen_ai.request.model", "value": {"stringValue": model}})
    failed = str(o.get("level") or "").upper() == "ERROR"
    message = o.get("statusMessage") if isinstance(o.get("statusMessage"), str) else None
    span = {"traceId": o.get("traceId"), "spanId": o.get("id"), "name": o.get("name") or o.get("type"),
            "kind": _KINDS.get(str(o.get("type") or "").upper(), "SPAN_KIND_INTERNAL"), "attributes": attrs,
            "startTimeUnixNano": _nanos(o.get("startTime")), "endTimeUnixNano": _nanos(o.get("endTime")),
            "status": {"code": "STATUS_CODE_ERROR", **({"message": message} if message else {})} if failed else {}}
    return {}, "langfuse", span


class LangfuseObservations(TraceSource):
    """Langfuse's observations (its public API's answer, or an export of them)."""

    __slots__ = ()
    name = "langfuse-json"
    head = _HEAD

    def parse_stream(self, stream: BinaryIO, ctx: SourceContext) -> tuple[pl.DataFrame, Counts]:
        doc = self.read_document(stream, "Langfuse's observations")
        items = doc.get("data") if isinstance(doc, dict) and "data" in doc else doc if isinstance(doc, list) else [doc]
        counts = Counts()
        rows: list[dict] = []
        for number, o in enumerate((items or [])[:MAX_SPANS], 1):
            if not isinstance(o, dict):
                counts.unparsed += 1
                continue
            resource, scope, span = as_otlp(o)
            for row in span_rows(resource, scope, span, ctx.redactor.text):
                row["trace_id"] = row["trace_id"] or (ctx.redactor.text(str(o["traceId"])) if o.get("traceId") else None)
                rows.append({**row, "source": ctx.label, "line": number})
        if isinstance(items, list) and len(items) > MAX_SPANS:
            counts.stopped = f"more than {MAX_SPANS:,} observations: the rest were not read"
        counts.lines = len(items or [])
        counts.events = counts.recognised = len(rows)
        return frame(rows), counts
