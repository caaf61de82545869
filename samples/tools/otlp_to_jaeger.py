"""Write an OTLP/JSON trace file (`otel_client.py`'s) as Jaeger's JSON export of the same spans,
as Jaeger stores OpenTelemetry spans (its OTLP translator, jaeger `model/translator` and the
Collector's `pkg/translator/jaeger`): a trace per trace id, times in microseconds, attributes as
typed `tags`, the span kind as `span.kind`, the status as `otel.status_code` and
`otel.status_description` (and `error: true`), the instrumentation scope as `otel.scope.name`,
events as `logs` (`event` the name), the resource as the process (`serviceName` and tags).

    python samples/tools/otlp_to_jaeger.py tests/data/traces/openai-client.otlp.jsonl tests/data/traces/openai-client.jaeger.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

KINDS = {"SPAN_KIND_CLIENT": "client", "SPAN_KIND_SERVER": "server", "SPAN_KIND_INTERNAL": "internal",
         "SPAN_KIND_PRODUCER": "producer", "SPAN_KIND_CONSUMER": "consumer"}


def tag(key: str, value: dict) -> dict:
    if "stringValue" in value:
        return {"key": key, "type": "string", "value": value["stringValue"]}
    if "intValue" in value:
        return {"key": key, "type": "int64", "value": int(value["intValue"])}
    if "doubleValue" in value:
        return {"key": key, "type": "float64", "value": value["doubleValue"]}
    if "boolValue" in value:
        return {"key": key, "type": "bool", "value": value["boolValue"]}
    return {"key": key, "type": "string", "value": json.dumps(value)}


def main(src: Path, out: Path) -> None:
    traces: dict[str, dict] = {}
    for line in src.read_text().splitlines():
        doc = json.loads(line)
        for rs in doc["resourceSpans"]:
            attrs = {a["key"]: a["value"] for a in rs["resource"]["attributes"]}
            service = attrs.pop("service.name", {"stringValue": "unknown_service"})["stringValue"]
            for ss in rs["scopeSpans"]:
                for s in ss["spans"]:
                    trace = traces.setdefault(s["traceId"], {"traceID": s["traceId"], "spans": [], "processes": {},
                                                             "warnings": None})
                    pid = f"p{len(trace['processes']) + 1}"
                    trace["processes"][pid] = {"serviceName": service, "tags": [tag(k, v) for k, v in attrs.items()]}
                    tags = [tag(a["key"], a["value"]) for a in s.get("attributes", [])]
                    tags.append({"key": "span.kind", "type": "string", "value": KINDS[s["kind"]]})
                    tags.append({"key": "otel.scope.name", "type": "string", "value": ss["scope"]["name"]})
                    status = s.get("status") or {}
                    if status.get("code") == "STATUS_CODE_ERROR":
                        tags.append({"key": "otel.status_code", "type": "string", "value": "ERROR"})
                        tags.append({"key": "error", "type": "bool", "value": True})
                        if status.get("message"):
                            tags.append({"key": "otel.status_description", "type": "string", "value": status["message"]})
                    start = int(s["startTimeUnixNano"]) // 1000
                    trace["spans"].append({
                        "traceID": s["traceId"], "spanID": s["spanId"], "operationName": s["name"], "references": [],
                        "startTime": start, "duration": int(s["endTimeUnixNano"]) // 1000 - start, "tags": tags,
                        "logs": [{"timestamp": int(e["timeUnixNano"]) // 1000,
                                  "fields": [{"key": "event", "type": "string", "value": e["name"]},
                                             *(tag(a["key"], a["value"]) for a in e.get("attributes", []))]}
                                 for e in s.get("events", [])],
                        "processID": pid, "warnings": None})
    out.write_text(json.dumps({"data": list(traces.values()), "total": 0, "limit": 0, "offset": 0, "errors": None},
                              indent=2) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
