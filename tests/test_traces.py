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


SAMPLE = Path(__file__).parents[1] / "samples" / "trace-queued-past-timeout.zip"


def test_the_sample_follows_one_request_from_the_clients_span_to_the_servers_lines_and_span():
    """`samples/trace-queued-past-timeout` (samples/tools/trace_bundle.py): a real client span and
    traceback of a call that gave up after 30 s, vLLM's log and its request span. The report names
    server.overloaded with both ends' figures and the request's path, file and line in every
    source; without the spans the log's metrics lines name it, with less confidence."""
    from emblens.report import render

    a = analyze([SAMPLE])
    top = a.findings[0]
    assert top.rule == "server.overloaded" and top.cause == "queued_past_timeout"
    assert "gave up after 30 s" in top.summary and "queued this request 41.7 s" in top.summary
    assert "99.1% full" in top.summary and "44 requests waiting" in top.summary
    files = [s.source.rsplit("/", 1)[-1] for s in top.path]
    assert files == ["client-spans.otlp.jsonl", "vllm.log", "vllm.log", "vllm-spans.otlp.jsonl"]
    assert [s.side for s in top.path] == ["client", "server", "server", "server"]
    assert "Received request embd-" in top.path[1].text and "prompt" not in top.path[1].text   # cut after the id
    assert all(s.line > 0 for s in top.path)
    report = json.loads(render(a, "json"))
    path = report["findings"][0]["request_path"]
    assert path["request"] == top.path_request and [s["source"] for s in path["steps"]][0].endswith("client-spans.otlp.jsonl")
    assert all(report["findings"][i]["request_path"] is None for i in range(1, len(report["findings"])))
    text = render(a, "text")
    assert "Request path (trace " in text and "vllm.log:" in text
    assert "Request path" in render(a, "markdown") and "Request path" in render(a, "html")


def test_without_the_spans_the_logs_name_it_with_less_confidence(tmp_path):
    import zipfile
    with zipfile.ZipFile(SAMPLE) as z:
        for n in z.namelist():
            if n.endswith(("vllm.log", "client-traceback.txt")):
                (tmp_path / n.rsplit("/", 1)[-1]).write_bytes(z.read(n))
    alone = analyze([tmp_path]).findings[0]
    assert alone.rule == "server.overloaded" and alone.cause == "kv_cache_full"
    assert "99.1% full" in alone.summary and "44 requests waiting" in alone.summary and "1 request(s) timed out" in alone.summary
    assert alone.confidence < analyze([SAMPLE]).findings[0].confidence


def test_request_ids_are_read_from_text_and_unrelated_requests_are_never_joined(tmp_path):
    """vLLM's engine suffix is set aside; X-Request-Id and SGLang's rid are ids; two requests of
    the same server and path, seconds apart, stay two; a line with no id joins nothing."""
    a, b = "embd-" + "a" * 32, "embd-" + "b" * 32
    log = tmp_path / "vllm.log"
    log.write_text(
        f"(APIServer pid=1) INFO 12-06 18:10:26 [logger.py:49] Received request {a}: prompt: 'first', params: None\n"
        f"(APIServer pid=1) INFO 12-06 18:10:26 [async_llm.py:352] Added request {a}-0c1d2e3f.\n"
        f"(APIServer pid=1) INFO 12-06 18:10:27 [logger.py:49] Received request {b}: prompt: 'second', params: None\n"
        f"(APIServer pid=1) INFO 12-06 18:10:58 [async_llm.py:412] Aborted request {b}-9a8b7c6d.\n"
        "(APIServer pid=1) ERROR 12-06 18:10:59 [serving.py:1] something failed\n")
    other = tmp_path / "gateway.log"
    other.write_text('2026-12-06 18:10:26 INFO x-request-id: 6f1c2a8e-0d4b-4f7e-9c3a-2b5d8e7f1a90 upstream 503\n'
                     "2026-12-06 18:10:27 INFO Abort request rid=0123456789abcdef0123456789abcdef\n")
    events = analyze([tmp_path]).events          # as an analysis keeps them (`events` keeps every line whole)
    keyed = dict(zip(events["text"].to_list(), events["request"].to_list(), strict=True))
    by_key: dict = {}
    for text, key in keyed.items():
        by_key.setdefault(key, []).append(text)
    assert sorted(len(v) for k, v in by_key.items() if k in (a, b)) == [2, 2]
    assert "6f1c2a8e-0d4b-4f7e-9c3a-2b5d8e7f1a90" in by_key and "0123456789abcdef0123456789abcdef" in by_key
    assert [k for t, k in keyed.items() if "something failed" in t] == [None]
    assert not any("prompt" in t for t in keyed)            # the request lines are cut after the id


def test_a_prompt_in_a_spans_attributes_never_reaches_an_output(tmp_path):
    """gen_ai.input.messages (and the older gen_ai.prompt, OpenInference's llm.input_messages) hold
    the user's text: like a request body's inputs, it is never shown."""
    from emblens.report import render

    doc = json.loads(CLIENT.read_text().splitlines()[3])
    span = doc["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    prompt = "Quarterly revenue of Contoso Holdings fell 12 percent"
    span["attributes"] += [
        {"key": "gen_ai.input.messages", "value": {"stringValue": json.dumps([{"role": "user", "parts": [{"content": prompt}]}])}},
        {"key": "gen_ai.prompt", "value": {"stringValue": prompt}},
        {"key": "llm.input_messages.0.message.content", "value": {"stringValue": prompt}}]
    span["events"] = [{"name": "gen_ai.user.message", "attributes": [{"key": "content", "value": {"stringValue": prompt}}]}]
    log = tmp_path / "spans.jsonl"
    log.write_text(json.dumps(doc) + "\n")
    a = analyze([log])
    assert a.findings[0].rule == "net.timeout"
    for fmt in ("text", "json", "markdown", "html"):
        assert "Contoso" not in render(a, fmt)
    assert "Contoso" not in load_events([log])[0].write_csv()


ENVOY_DEFAULT = ('[2026-11-20T10:02:14.877Z] "POST /v1/embeddings HTTP/1.1" 503 UH 412 19 0 - "10.244.0.1" '
                 '"OpenAI/Python 1.109.1" "3c9b7e21-5f4a-4d0e-8b1c-7a2e9f6d0c35" "embed.example.internal" "-"')
ENVOY_ISTIO = ('[2026-11-20T10:02:14.877Z] "POST /v1/embeddings HTTP/1.1" 503 UH no_healthy_upstream - "-" 412 19 0 - '
               '"10.244.0.1" "OpenAI/Python 1.109.1" "3c9b7e21-5f4a-4d0e-8b1c-7a2e9f6d0c35" "embed.example.internal" "-" '
               'outbound|8000||vllm.default.svc.cluster.local - 10.96.12.40:8000 10.244.0.1:51322 - default')
ENVOY_JSON = ('{":authority":"embed.example.internal","bytes_received":412,"bytes_sent":19,"duration":0,"method":"POST",'
              '"protocol":"HTTP/1.1","response_code":503,"response_code_details":"no_healthy_upstream","response_flags":"UH",'
              '"start_time":"2026-11-20T10:02:14.877Z","upstream_host":null,"x-envoy-origin-path":"/v1/embeddings",'
              '"x-request-id":"3c9b7e21-5f4a-4d0e-8b1c-7a2e9f6d0c35"}')


def test_envoys_three_access_log_shapes_are_the_same_request(tmp_path):
    cols = ["kind", "origin", "ts", "level", "http_method", "http_path", "http_status", "http_host", "latency_ms", "request_id"]
    rows = []
    for name, line in (("default", ENVOY_DEFAULT), ("istio", ENVOY_ISTIO), ("json", ENVOY_JSON)):
        f = tmp_path / f"{name}.log"
        f.write_text(line + "\n")
        events, inputs, _ = load_events([f])
        assert inputs[0].kind == "envoy-access-log" and inputs[0].unparsed == 0, name
        rows.append(events.select(cols).row(0, named=True))
        assert "no healthy upstream" in events["resp_error"][0], name
        assert analyze([f]).findings[0].rule == "gateway.misconfigured", name
    assert rows[0] == rows[1] == rows[2]
    assert rows[0]["http_status"] == 503 and rows[0]["request_id"] == "3c9b7e21-5f4a-4d0e-8b1c-7a2e9f6d0c35"


def _dump(path: Path, *args: str) -> Path:
    import subprocess
    import sys

    tool = Path(__file__).parents[1] / "samples" / "tools" / "sglang_crash_dump.py"
    subprocess.run([sys.executable, str(tool), str(path), *args], check=True, capture_output=True)
    return path


def test_an_sglang_crash_dump_is_counted_from_its_opcodes_and_never_loaded(tmp_path):
    """A crash dump is a pickle: loading it would run what it says. It is walked, never loaded: a
    dump whose first object is `os.system(...)` leaves no trace; the requests are counted, the
    server's api_key and the prompts are not shown, and the replay command is given."""
    import pickle

    from emblens.report import render

    dump = _dump(tmp_path / "sglang-0" / "crash_dump_2026-01-10_13-31-02.pkl", "--finished", "25", "--unfinished", "12",
                 "--api-key", "s3cret-crash-key-0123")
    a = analyze([dump])
    assert a.inputs[0].kind == "sglang-crash-dump"
    text = a.events["text"][0]
    assert "37 request(s)" in text and "12 unfinished" in text and "model Qwen/Qwen3-8B" in text
    assert "replay_request_dump.py --input-file crash_dump_2026-01-10_13-31-02.pkl --host 127.0.0.1 --port 30000" in text
    for fmt in ("text", "json", "markdown", "html"):
        out = render(a, fmt)
        assert "s3cret-crash-key-0123" not in out and "Summarise the attached contract" not in out

    class Boom:
        def __reduce__(self):
            import os
            return (os.system, (f"touch {tmp_path / 'ran'}",))

    hostile = tmp_path / "crash_dump_hostile.pkl"
    hostile.write_bytes(pickle.dumps({"server_args": Boom(), "requests": [({"rid": "x"}, {}, 1.7e9, 1.7e9 + 1)]}))
    a = analyze([hostile])
    assert not (tmp_path / "ran").exists()
    assert a.inputs and "1 request(s)" in a.events["text"][0]
    cut = tmp_path / "crash_dump_cut.pkl"
    cut.write_bytes(dump.read_bytes()[: len(dump.read_bytes()) // 2])
    a = analyze([cut])
    assert a.inputs[0].note and "read only in part" in a.events["text"][0]


def test_with_no_shared_id_one_exchange_each_side_in_the_window_is_one_request_and_two_are_none(tmp_path):
    """Envoy's line and vLLM's access line of the same method and path, under two seconds apart,
    are the same request when nothing else could be; with two server lines in the window, neither
    is linked."""
    head = ("(APIServer pid=1) INFO 11-20 09:14:02 [api_server.py:1880] vLLM API server version 0.11.0\n"
            "(APIServer pid=1) INFO 11-20 09:20:07 [serving_embedding.py:101] the model does not exist\n")
    access = '(APIServer pid=1) INFO:     10.0.3.17:{} - "POST /v1/embeddings HTTP/1.1" 404 Not Found\n'
    later = "(APIServer pid=1) INFO 11-20 09:25:07 [serving_embedding.py:101] the model does not exist\n"
    (tmp_path / "envoy.log").write_text(
        '[2025-11-20T09:20:07.412Z] "POST /v1/embeddings HTTP/1.1" 404 - 50 146 3 2 "10.244.0.1" "curl/7.88.1" '
        '"3c9b7e21-5f4a-4d0e-8b1c-7a2e9f6d0c35" "10.0.3.5:8000" "10.244.1.17:8000"\n')
    (tmp_path / "vllm.log").write_text(head + access.format(51000) + later + access.format(51001))
    http = analyze([tmp_path]).events.filter(pl.col("kind") == "http").sort("source", "line")
    assert http["request"].to_list() == ["3c9b7e21-5f4a-4d0e-8b1c-7a2e9f6d0c35"] * 2 + [None]
    (tmp_path / "vllm.log").write_text(head + access.format(51000) + access.format(51001))
    http = analyze([tmp_path]).events.filter(pl.col("kind") == "http").sort("source", "line")
    assert http["request"].n_unique() == 2 and http.filter(pl.col("origin") == "vllm")["request"].is_null().all()


def test_vllms_journey_events_give_the_preemptions_of_the_request_that_timed_out(tmp_path):
    """With --enable-journey-tracing vLLM adds span events journey.QUEUED ... journey.FINISHED to its
    request span, each with num_preemptions: the finding says how often the request was preempted."""
    import zipfile

    with zipfile.ZipFile(SAMPLE) as z:
        for n in z.namelist():
            if not n.endswith("/"):
                (tmp_path / n.rsplit("/", 1)[-1]).write_bytes(z.read(n))
    spans = tmp_path / "vllm-spans.otlp.jsonl"
    doc = json.loads(spans.read_text())
    span = doc["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    start = int(span["startTimeUnixNano"])

    def event(name: str, k: int, n: int) -> dict:
        return {"timeUnixNano": str(start + k * 10**9), "name": f"journey.{name}",
                "attributes": [{"key": "event.type", "value": {"stringValue": name}},
                               {"key": "num_preemptions", "value": {"intValue": str(n)}}]}

    span["events"] = [event("QUEUED", 0, 0), event("SCHEDULED", 30, 0), event("PREEMPTED", 31, 1),
                      event("SCHEDULED", 35, 1), event("PREEMPTED", 36, 2), event("SCHEDULED", 40, 2),
                      event("PREEMPTED", 41, 3), event("FINISHED", 42, 3)]
    spans.write_text(json.dumps(doc) + "\n")
    top = analyze([tmp_path]).findings[0]
    assert top.cause == "queued_past_timeout" and "preempted 3 time(s)" in top.summary
    assert any("(3 preemptions)" in e.text for e in top.evidence)


def test_sglangs_request_root_span_is_the_servers_and_carries_its_rid(tmp_path):
    """SGLang (`--enable-trace`) starts a root span `Req <rid[:8]>` with `rid` and `module:
    sglang::…` in the trace of the request's traceparent (python/sglang/srt/tracing/trace.py): it is
    SGLang's span, its rid the request id, on the request's path after the client's span."""
    client = json.loads(CLIENT.read_text().splitlines()[3])          # the call that timed out
    span = client["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    rid = "7f3c9e52d1a04b6c8e2f0a1b2c3d4e5f"
    start = int(span["startTimeUnixNano"]) + 2_000_000
    server = {"resourceSpans": [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "sglang"}}]},
                                 "scopeSpans": [{"scope": {"name": "sglang"}, "spans": [{
                                     "traceId": span["traceId"], "spanId": "0f1e2d3c4b5a6978", "parentSpanId": span["spanId"],
                                     "name": f"Req {rid[:8]}", "kind": "SPAN_KIND_INTERNAL",
                                     "startTimeUnixNano": str(start), "endTimeUnixNano": str(start + 9_000_000_000),
                                     "attributes": [{"key": "rid", "value": {"stringValue": rid}},
                                                    {"key": "module", "value": {"stringValue": "sglang::tokenizer_manager"}}],
                                     "status": {}}]}]}]}
    (tmp_path / "client.otlp.jsonl").write_text(json.dumps(client) + "\n")
    (tmp_path / "sglang.otlp.jsonl").write_text(json.dumps(server) + "\n")
    events = analyze([tmp_path]).events
    mine = events.filter(pl.col("source").str.ends_with("sglang.otlp.jsonl")).row(0, named=True)
    assert mine["origin"] == "sglang" and mine["request_id"] == rid and mine["request"] == mine["trace_id"]
    top = analyze([tmp_path]).findings[0]
    assert top.rule == "net.timeout" and [s.side for s in top.path] == ["client", "server"]


def test_langfuses_observations_are_spans_and_their_prompts_are_never_read():
    """Langfuse's public API answer (`GET /api/public/observations`, its OpenAPI `Observation`):
    each ERROR observation is a failed span whose exception is its statusMessage; `input` and
    `output` (the prompt, the completion) are not read. `langfuse-observations.json` holds the
    sample's timed-out call as Langfuse stores it, and a 404 for a model."""
    from emblens.report import render

    path = DATA / "langfuse-observations.json"
    a = analyze([path])
    assert a.inputs[0].kind == "langfuse-json"
    assert [f.rule for f in a.findings] == ["model.not_found", "net.timeout"]
    assert a.events.filter(pl.col("line") == 1)["trace_id"].to_list()[0] == "143a62f20bff5e3c64faa15f9ca24a33"
    for fmt in ("text", "json", "markdown", "html"):
        assert "Contoso" not in render(a, fmt) and "capital of france" not in render(a, fmt)
