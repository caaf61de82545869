"""Traces as evidence (issue 31): OTLP/JSON spans read as events, so the rules that read words,
statuses and exceptions read spans too. The sample is real: the openai SDK 1.109.1 instrumented by
opentelemetry-instrumentation-openai-v2 2.4b0, calling `samples/tools/mock_server.py` once as it
should and in four ways a call fails (`samples/tools/otel_client.py`)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import polars as pl

from emblens.diagnose import analyze, load_events

DATA = Path(__file__).parent / "data" / "traces"
CLIENT = DATA / "openai-client.otlp.jsonl"


def test_client_spans_name_each_failure_once_from_its_own_span():
    a = analyze([CLIENT])
    found = {f.rule: f for f in a.findings}
    assert set(found) == {"model.not_found", "auth.invalid_key", "net.timeout"}
    assert all(f.count == 1 for f in a.findings)            # the span and its exception event are one failure
    assert found["net.timeout"].evidence[0].text == "APITimeoutError: Request timed out."
    assert found["auth.invalid_key"].evidence[0].line == 2
    assert a.inputs[0].kind == "otlp-json" and a.inputs[0].unparsed == 0
    # the refused connection (the SDK says only "Connection error.") is not lost: it is listed
    assert any("APIConnectionError: Connection error." in u.template for u in a.unexplained)


def test_a_span_is_an_event_with_its_ids_model_server_and_duration():
    events, inputs, _ = load_events([CLIENT])
    spans = events.filter(pl.col("kind") == "log")
    assert spans.height == 5 and set(spans["origin"]) == {"client"}
    assert spans["trace_id"].str.contains(r"^[0-9a-f]{32}$").all() and spans["span_id"].str.contains(r"^[0-9a-f]{16}$").all()
    slow = spans.filter(pl.col("line") == 4).row(0, named=True)
    assert slow["req_model"] == "Qwen3-Embedding-4B" and slow["http_host"] == "127.0.0.1" and slow["http_port"] > 0
    assert 1_400 < slow["latency_ms"] < 3_000          # the client's timeout was 1.5 s
    failed = events.filter(pl.col("kind") == "exception")
    assert sorted(failed["exc_type"]) == ["APIConnectionError", "APITimeoutError", "AuthenticationError", "NotFoundError"]
    assert events["ts"].is_not_null().all()


def _rewrite(doc: dict, ids) -> dict:
    for rs in doc["resourceSpans"]:
        for ss in rs["scopeSpans"]:
            for span in ss["spans"]:
                for key in ("traceId", "spanId", "parentSpanId"):
                    if span.get(key):
                        span[key] = ids(span[key])
    return doc


def test_base64_ids_a_pretty_printed_export_and_tempo_read_the_same(tmp_path):
    lines = CLIENT.read_text().splitlines()
    b64 = tmp_path / "b64.jsonl"
    b64.write_text("\n".join(json.dumps(_rewrite(json.loads(x), lambda h: base64.b64encode(bytes.fromhex(h)).decode()))
                             for x in lines) + "\n")
    cols = ["line", "kind", "text", "trace_id", "span_id", "latency_ms"]
    plain = load_events([CLIENT])[0].select(cols)
    assert load_events([b64])[0].select(cols).equals(plain)
    pretty = tmp_path / "one.json"
    pretty.write_text(json.dumps(json.loads(lines[3]), indent=2))
    one = load_events([pretty])[0]
    assert one.select(cols[1:]).equals(plain.filter(pl.col("line") == 4).select(cols[1:]))
    tempo = tmp_path / "tempo.json"
    tempo.write_text(json.dumps({"batches": json.loads(lines[1])["resourceSpans"]}))
    assert load_events([tempo])[0].select(cols[1:]).equals(plain.filter(pl.col("line") == 2).select(cols[1:]))


def test_a_secret_in_a_span_never_reaches_an_output(tmp_path):
    doc = json.loads(CLIENT.read_text().splitlines()[1])
    span = doc["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    span["status"]["message"] = "Error code: 401 - Incorrect API key provided: sk-proj-Zx81Qp0aB7cD2eF3gH4iJ5kL6mN7oP8q"
    log = tmp_path / "spans.jsonl"
    log.write_text(json.dumps(doc) + "\n")
    from emblens.report import render
    a = analyze([log])
    for fmt in ("text", "json", "markdown", "html"):
        assert "sk-proj-Zx81Qp0aB7cD2eF3gH4iJ5kL6mN7oP8q" not in render(a, fmt)
    assert "sk-proj-Zx81Qp0aB7cD2eF3gH4iJ5kL6mN7oP8q" not in load_events([log])[0].write_csv()
    assert a.findings and a.findings[0].rule == "auth.invalid_key"


def test_a_file_that_is_not_otlp_json_is_skipped_with_a_reason(tmp_path):
    bad = tmp_path / "spans.json"
    bad.write_text('{"resourceSpans": [ {"resource": \n' + "x" * 100 + "\n")
    a = analyze([bad])
    assert not a.inputs and [s.reason for s in a.skipped] == ["cannot read: not OTLP/JSON: a line that is not JSON"]


def test_jaegers_export_of_the_same_spans_gives_the_same_events():
    """`openai-client.jaeger.json` is the sample's spans as Jaeger stores them (typed tags,
    `span.kind`, `otel.status_code`; `samples/tools/otlp_to_jaeger.py`): the same events, to the
    microsecond Jaeger keeps."""
    cols = ["line", "kind", "level", "origin", "trace_id", "span_id", "req_model", "http_host", "http_port", "exc_type",
            "exc_message"]
    otlp = load_events([CLIENT])[0]
    jaeger, inputs, _ = load_events([DATA / "openai-client.jaeger.json"])
    assert inputs[0].kind == "jaeger-json"
    assert jaeger.select(cols).equals(otlp.select(cols))
    assert (jaeger["latency_ms"] - otlp["latency_ms"]).abs().max() < 0.002
    found = sorted(f.rule for f in analyze([DATA / "openai-client.jaeger.json"]).findings)
    assert found == ["auth.invalid_key", "model.not_found", "net.timeout"]


def test_a_bundle_of_client_spans_server_spans_and_log_names_the_queue_then_the_logs_alone_name_the_cache(tmp_path):
    """The client's span of a timed-out call, vLLM's request span of the same trace (queued 41.7 s)
    and the server's log (KV cache 99.6 % full), zipped: server.overloaded first, with both ends'
    figures and both spans as evidence. Without the spans (the log and the client's traceback), the
    metrics lines still name it, with less confidence."""
    import zipfile

    rules = Path(__file__).parents[1] / "rules" / "server"
    spans = rules / "overloaded_queue.pos-vllm-span-queued-41.7s-openai-span"
    logs = rules / "overloaded_kv_full.pos-vllm0.11-kv-99-openai1.109"
    bundle = tmp_path / "incident.zip"
    with zipfile.ZipFile(bundle, "w") as z:
        z.write(spans / "client-spans.otlp.jsonl", "client-spans.otlp.jsonl")
        z.write(spans / "vllm-spans.otlp.jsonl", "vllm-spans.otlp.jsonl")
        z.write(logs / "vllm.log", "vllm.log")
    top = analyze([bundle]).findings[0]
    assert top.rule == "server.overloaded" and top.cause == "queued_past_timeout"
    assert "gave up after 1.5 s" in top.summary and "queued this request 41.7 s" in top.summary
    assert {e.source.rsplit(":", 1)[-1] for e in top.evidence} == {"client-spans.otlp.jsonl", "vllm-spans.otlp.jsonl"}
    alone = analyze([logs]).findings[0]
    assert alone.rule == "server.overloaded" and alone.cause == "kv_cache_full" and "99.6% full" in alone.summary
    assert alone.confidence < top.confidence


def test_a_vllm_service_span_is_the_servers_own(tmp_path):
    doc = json.loads(CLIENT.read_text().splitlines()[3])
    doc["resourceSpans"][0]["resource"]["attributes"].append({"key": "service.name", "value": {"stringValue": "vllm"}})
    log = tmp_path / "server.jsonl"
    log.write_text(json.dumps(doc) + "\n")
    assert set(load_events([log])[0]["origin"]) == {"vllm"}
