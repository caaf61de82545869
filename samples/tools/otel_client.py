"""Record real client spans: the openai SDK, instrumented by OpenTelemetry's openai
instrumentation (opentelemetry-instrumentation-openai-v2), calling `mock_server.py` in the ways a
call fails (a refused connection, a timeout, a 401, a 404) and once as it should, each span
exported as OTLP/JSON, one `ExportTraceServiceRequest` a line, as the OpenTelemetry Collector's
file exporter writes them.

Runs in its own virtual environment (emblens does not depend on openai):

    python3 -m venv /tmp/otel && /tmp/otel/bin/pip install openai opentelemetry-sdk \
        opentelemetry-instrumentation-openai-v2 opentelemetry-exporter-otlp-proto-common
    /tmp/otel/bin/python samples/tools/otel_client.py OUT.jsonl [--ids base64]

The spans are encoded by the OTLP exporter's own encoder (`encode_spans`) and turned into JSON by
protobuf's `MessageToDict`; ids are then written in hex as OTLP/JSON says (the collector's file
exporter), or left in protobuf's base64 (`--ids base64`, as some exporters and stores write them).
"""

from __future__ import annotations

import argparse
import base64
import json
import socket
import subprocess
import sys
import time
from pathlib import Path

from google.protobuf.json_format import MessageToDict
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

HERE = Path(__file__).resolve().parent


class OtlpJsonFile(SpanExporter):
    def __init__(self, path: Path, ids: str) -> None:
        self.out = path.open("w", encoding="utf-8")
        self.ids = ids

    def export(self, spans) -> SpanExportResult:
        doc = MessageToDict(encode_spans(spans))
        if self.ids == "hex":
            for rs in doc.get("resourceSpans", []):
                for ss in rs.get("scopeSpans", []):
                    for span in ss.get("spans", []):
                        for key in ("traceId", "spanId", "parentSpanId"):
                            if span.get(key):
                                span[key] = base64.b64decode(span[key]).hex()
        self.out.write(json.dumps(doc, separators=(",", ":")) + "\n")
        self.out.flush()
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        self.out.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out", type=Path)
    p.add_argument("--ids", choices=("hex", "base64"), default="hex")
    a = p.parse_args()
    provider = TracerProvider(resource=Resource.create({"service.name": "rag-indexer"}))
    provider.add_span_processor(SimpleSpanProcessor(OtlpJsonFile(a.out, a.ids)))
    trace.set_tracer_provider(provider)
    OpenAIInstrumentor().instrument(tracer_provider=provider)
    import openai

    port = free_port()
    server = subprocess.Popen([sys.executable, str(HERE / "mock_server.py"), str(port)])
    try:
        time.sleep(1.0)
        calls = [
            ("ok", dict(base=f"http://127.0.0.1:{port}/ok/v1", key="EMPTY", model="Qwen3-Embedding-4B", timeout=10)),
            ("auth", dict(base=f"http://127.0.0.1:{port}/auth/v1", key="sk-wrong-0123456789abcdef", model="Qwen3-Embedding-4B",
                          timeout=10)),
            ("model", dict(base=f"http://127.0.0.1:{port}/model/v1", key="EMPTY", model="qwen3-embedding-4b", timeout=10)),
            ("slow", dict(base=f"http://127.0.0.1:{port}/slow/v1", key="EMPTY", model="Qwen3-Embedding-4B", timeout=1.5)),
            ("refused", dict(base=f"http://127.0.0.1:{free_port()}/v1", key="EMPTY", model="Qwen3-Embedding-4B", timeout=3)),
        ]
        for name, c in calls:
            client = openai.OpenAI(base_url=c["base"], api_key=c["key"], timeout=c["timeout"], max_retries=0)
            try:
                client.embeddings.create(model=c["model"], input=["what is the capital of france"])
                print(f"{name}: ok")
            except openai.OpenAIError as e:
                print(f"{name}: {type(e).__name__}: {e}")
    finally:
        server.terminate()
        provider.shutdown()


if __name__ == "__main__":
    main()
