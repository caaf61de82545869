"""Record the sample `trace-queued-past-timeout`: one embeddings call that a saturated vLLM queued
past its client's 30 s timeout, seen from both ends.

- `client-spans.otlp.jsonl`: real. The openai SDK (1.109.1 in the recording), instrumented by
  opentelemetry-instrumentation-openai-v2, calls a local stand-in for vLLM with `timeout=30` and
  gives up (`APITimeoutError`, its traceback kept as `client-traceback.txt`); the span is encoded by the OTLP exporter's own encoder, as
  `otel_client.py` writes them. The client carries its trace to the server in a W3C `traceparent`
  header, put on the request by OpenTelemetry's own propagator (`opentelemetry.propagate.inject`).
- `vllm-spans.otlp.jsonl`: the stand-in's request span as vLLM writes it (`--otlp-traces-endpoint`):
  `llm_request`, kind SERVER, started in the trace of the `traceparent` the server received
  (vllm/tracing.py `extract_trace_context`), with the attributes of
  `OutputProcessor.do_tracing` (v1/engine/output_processor.py: gen_ai.request.id, the latencies
  in seconds, the token counts), made by the OpenTelemetry SDK and encoded as the client's.
- `vllm.log`: vLLM 0.11's lines (FORMATS.md §1; `--enable-log-requests`): start-up, the metrics
  line every 10 s (`Running: 256 reqs, Waiting: 41 reqs, GPU KV cache usage: 98.7%`), the request's
  `Received request embd-…` and `Added request embd-….` at the time it arrived, other clients'
  access lines. The figures are chosen; the times are the recording's own.

The stand-in holds the request 42 s, as the saturated server did; the run takes about that long.

    python3 -m venv /tmp/otel && /tmp/otel/bin/pip install openai opentelemetry-sdk \
        opentelemetry-instrumentation-openai-v2 opentelemetry-exporter-otlp-proto-common
    /tmp/otel/bin/python samples/tools/trace_bundle.py samples/trace-queued-past-timeout
"""

from __future__ import annotations

import argparse
import json
import secrets
import threading
import time
import traceback
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
from opentelemetry import propagate
from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind
from otel_client import OtlpJsonFile, free_port

MODEL = "Qwen3-Embedding-4B"
HELD_S = 42.4          # the request's time in the server: queued 41.7 s, then 0.6 s of prefill
QUEUED_S = 41.7
CLIENT_TIMEOUT_S = 30.0
arrived: dict = {}


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        arrived.update(at=time.time_ns(), traceparent=self.headers.get("traceparent"), inputs=body.get("input"))
        time.sleep(HELD_S)            # queued behind the running requests, then served
        try:
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.end_headers()
            self.wfile.write(b'{"object":"list","data":[],"model":"' + MODEL.encode() + b'"}')
        except OSError:
            pass                      # the client is gone


def stamp(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, tz=timezone.utc).strftime("%m-%d %H:%M:%S")


def write_log(path: Path, start_ns: int, request_id: str) -> None:
    pid, core = 3999075, 3999312
    api = f"(APIServer pid={pid})"
    lines = [
        f"{api} INFO {stamp(start_ns - 600 * 10**9)} [api_server.py:1880] vLLM API server version 0.11.0",
        f"{api} INFO {stamp(start_ns - 600 * 10**9)} [utils.py:233] non-default args: {{'model_tag': '/models/{MODEL}', "
        f"'task': 'embed', 'max_num_seqs': 256, 'enable_log_requests': True, 'otlp_traces_endpoint': 'http://otel-collector:4317', "
        f"'served_model_name': ['{MODEL}']}}",
        f"(EngineCore_DP0 pid={core}) INFO {stamp(start_ns - 560 * 10**9)} [gpu_model_runner.py:2602] Model loading took 7.5587 GiB "
        "and 3.214516 seconds",
        f"{api} INFO {stamp(start_ns - 540 * 10**9)} [api_server.py:1971] Starting vLLM API server 0 on http://0.0.0.0:8000",
        f"{api} INFO:     Application startup complete.",
    ]
    waiting = [0, 3, 12, 27, 38, 41, 44]
    kv = [61.2, 84.9, 95.8, 98.3, 98.7, 99.1, 98.9]
    for k in range(7):
        t = start_ns + (k - 3) * 10 * 10**9
        lines.append(f"{api} INFO {stamp(t)} [loggers.py:123] Engine 000: Avg prompt throughput: {3800.0 + 40 * k:.1f} "
                     f"tokens/s, Avg generation throughput: 0.0 tokens/s, Running: 256 reqs, Waiting: {waiting[k]} reqs, "
                     f"GPU KV cache usage: {kv[k]}%, Prefix cache hit rate: 0.0%")
        for j in range(3):
            lines.append(f'{api} INFO:     10.0.3.{17 + j}:{51000 + 3 * k + j} - "POST /v1/embeddings HTTP/1.1" 200 OK')
        if k == 3:
            prompt = repr(" ".join(arrived.get("inputs") or []))
            lines.append(f"{api} INFO {stamp(start_ns)} [logger.py:49] Received request {request_id}: prompt: {prompt}, "
                         "params: PoolingParams(dimensions=None, normalize=None, activation=None), prompt_token_ids: None, "
                         "prompt_embeds shape: None, lora_request: None.")
            lines.append(f"{api} INFO {stamp(start_ns)} [async_llm.py:352] Added request {request_id}.")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out", type=Path)
    a = p.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    port = free_port()
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()

    client_provider = TracerProvider(resource=Resource.create({"service.name": "rag-indexer"}))
    client_provider.add_span_processor(SimpleSpanProcessor(OtlpJsonFile(a.out / "client-spans.otlp.jsonl", "hex")))
    OpenAIInstrumentor().instrument(tracer_provider=client_provider)
    import openai

    def carry(request: httpx.Request) -> None:
        propagate.inject(request.headers)        # the W3C traceparent of the current (client) span

    client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="EMPTY", timeout=CLIENT_TIMEOUT_S,
                           max_retries=0, http_client=httpx.Client(event_hooks={"request": [carry]}))
    try:
        client.embeddings.create(model=MODEL, input=["what is the capital of france"])
    except openai.APITimeoutError as e:
        print(f"client: {type(e).__name__}: {e}")
        (a.out / "client-traceback.txt").write_text(traceback.format_exc(), encoding="utf-8")
    client_provider.shutdown()
    while "at" not in arrived or time.time_ns() < arrived["at"] + int(HELD_S * 1e9):
        time.sleep(0.5)

    # the server's side, as vLLM writes it
    request_id = f"embd-{secrets.token_hex(16)}"
    server_provider = TracerProvider(resource=Resource.create({"service.name": "unknown_service"}))
    server_provider.add_span_processor(SimpleSpanProcessor(OtlpJsonFile(a.out / "vllm-spans.otlp.jsonl", "hex")))
    tracer = server_provider.get_tracer("vllm.llm_engine")
    parent = propagate.extract({"traceparent": arrived["traceparent"]})
    start = arrived["at"]
    span = tracer.start_span("llm_request", kind=SpanKind.SERVER, context=parent, start_time=start)
    span.set_attributes({
        "gen_ai.response.model": MODEL, "gen_ai.request.id": request_id, "gen_ai.request.n": 1,
        "gen_ai.usage.prompt_tokens": 9, "gen_ai.usage.completion_tokens": 0,
        "gen_ai.latency.time_in_queue": QUEUED_S, "gen_ai.latency.time_to_first_token": HELD_S - 0.1,
        "gen_ai.latency.e2e": HELD_S, "gen_ai.latency.time_in_model_prefill": round(HELD_S - QUEUED_S - 0.1, 3),
        "gen_ai.latency.time_in_model_decode": 0.0, "gen_ai.latency.time_in_model_inference": round(HELD_S - QUEUED_S - 0.1, 3),
    })
    span.end(end_time=start + int(HELD_S * 1e9))
    server_provider.shutdown()
    write_log(a.out / "vllm.log", start, request_id)
    server.shutdown()
    print(f"wrote {a.out}: trace {arrived['traceparent']}, request {request_id}")


if __name__ == "__main__":
    main()
