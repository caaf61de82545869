"""The other servers' own logs as formats: Ollama, llama.cpp's server, LM Studio, LocalAI and Infinity.
Each is recognised from its lines, read into the event table's columns (time, level, message, HTTP
status and path) and states the facts its lines give (port, version, context, models); none of
them takes text of another format; and a bundle of an Ollama log and its client's traceback names
the cause."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import polars as pl
import pytest

from emblens import analyze, load_events
from emblens.formats import registry
from emblens.ingest.sniff import sniff

RULES = Path(__file__).resolve().parents[1] / "rules"

OLLAMA = """\
Jul 02 10:03:39 dev-box ollama[3813757]: 2024/07/02 10:03:39 routes.go:1064: INFO server config env="map[CUDA_VISIBLE_DEVICES: OLLAMA_CONTEXT_LENGTH:4096 OLLAMA_HOST:http://0.0.0.0:11434 OLLAMA_ORIGINS:[http://localhost https://localhost app://*] OLLAMA_SCHED_SPREAD:false]"
Jul 02 10:03:39 dev-box ollama[3813757]: time=2024-07-02T10:03:39.049-05:00 level=INFO source=images.go:730 msg="total blobs: 0"
Jul 02 10:03:39 dev-box ollama[3813757]: time=2024-07-02T10:03:39.051-05:00 level=INFO source=routes.go:1111 msg="Listening on [::]:11434 (version 0.1.48)"
Jul 02 10:04:12 dev-box ollama[3813757]: time=2024-07-02T10:04:12.201-05:00 level=INFO source=server.go:368 msg="starting llama server" cmd="/tmp/ollama1842/runners/cuda_v11/ollama_llama_server --model /usr/share/ollama/.ollama/models/blobs/sha256-8eeb52dfb3bb --ctx-size 8192 --batch-size 512 --embedding --log-disable --n-gpu-layers 33 --parallel 4 --port 40213"
Jul 02 10:04:13 dev-box ollama[3813757]: llama_new_context_with_model: n_ctx      = 8192
Jul 02 10:04:15 dev-box ollama[3813757]: time=2024-07-02T10:04:15.112-05:00 level=INFO source=server.go:604 msg="llama runner started in 2.91 seconds"
Jul 02 10:04:15 dev-box ollama[3813757]: [GIN] 2024/07/02 - 10:04:15 | 200 |  3.002113841s |       127.0.0.1 | POST     "/api/chat"
Jul 02 10:05:01 dev-box ollama[3813757]: time=2024-07-02T10:05:01.730-05:00 level=ERROR source=sched.go:443 msg="error loading llama server" error="llama runner process has terminated: signal: killed"
Jul 02 10:05:01 dev-box ollama[3813757]: [GIN] 2024/07/02 - 10:05:01 | 500 |  713.529814ms |       127.0.0.1 | POST     "/api/embed"
"""

LLAMACPP = """\
build: 4747 (c392e509) with cc (GCC) 13.3.0 for x86_64-linux-gnu
main: HTTP server is listening, hostname: 127.0.0.1, port: 8080, http threads: 15
srv    load_model: loading model '/models/qwen2.5-7b-instruct-q4_k_m.gguf'
llama_init_from_model: n_ctx         = 8192
slot         init: id  0 | task -1 | new slot n_ctx_slot = 4096
main: model loaded
main: server is listening on http://127.0.0.1:8080 - starting the main loop
slot launch_slot_: id  0 | task 0 | processing task
srv    send_error: task id = 0, error: the request exceeds the available context size. try increasing the context size or enable context shift
srv  log_server_r: request: POST /v1/chat/completions 127.0.0.1 400
"""

LLAMACPP_JSON = """\
{"tid":"139861209878528","timestamp":1721128471,"level":"INFO","function":"main","line":2517,"msg":"build info","build":3400,"commit":"97bdd26e"}
{"tid":"139861209878528","timestamp":1721128473,"level":"INFO","function":"init","line":714,"msg":"new slot","id_slot":0,"n_ctx_slot":2048}
{"tid":"139861209878528","timestamp":1721128473,"level":"INFO","function":"main","line":3396,"msg":"HTTP server listening","hostname":"0.0.0.0","port":"8080","n_threads_http":"17"}
{"tid":"139861209878528","timestamp":1721128507,"level":"ERR","function":"send_error","line":1369,"msg":"task error","id_multi":-1,"id_task":14,"error":"input is too large to process. increase the physical batch size"}
{"tid":"139860705165312","timestamp":1721128507,"level":"INFO","function":"log_server_request","line":2458,"msg":"request","remote_addr":"172.18.0.5","remote_port":51830,"status":500,"method":"POST","path":"/v1/embeddings","params":{}}
"""

LMSTUDIO = """\
[2026-08-05 06:35:30][INFO][LM STUDIO SERVER] Success! HTTP server listening on port 1234
2025-06-15 23:12:20 [DEBUG] 
Received request: POST to /v1/embeddings with body  {
  "input": "CUDA out of memory is what my notes say",
  "model": "text-embedding-nomic-embed-text-v1.5"
}
2025-06-15 23:12:21 [ERROR] 
Unexpected endpoint or method. (OPTIONS /v1/completions). Returning 200 anyway
[2023-11-12 11:36:53.608] [ERROR] Unexpected endpoint or method. (GET /v1//models). Returning 200 anyway.
"""

LOCALAI = """\
5:37AM INF LocalAI version: v2.20.1 (a9c521eb41dc2dd63769e5362f05d9ab5d8bec50)
5:37AM INF LocalAI API is listening! Please connect to the endpoint for API documentation. endpoint=http://0.0.0.0:8080
5:38AM INF Loading model 'mistral-7b-instruct-v0.2.Q4_K_M.gguf' with backend llama-cpp
5:38AM DBG GRPC(mistral-7b-instruct-v0.2.Q4_K_M.gguf-127.0.0.1:37239): stdout {"timestamp":1745071171,"level":"INFO","function":"initialize","line":583,"message":"new slot","slot_id":0,"n_ctx_slot":4096}
5:38AM ERR Server error error="could not load model: rpc error: code = Unavailable desc = error reading from server: EOF" ip=172.17.0.1 latency=8.612345612s method=POST status=500 url=/v1/chat/completions
"""

LOCALAI_XLOG = """\
Dec 21 19:33:13 INFO  LocalAI version version="v3.9.0 (c37785b78c21288482ec797e4be0ef6b37190b3c)" 
Dec 21 19:33:14 INFO  LocalAI is started and running address=":8080" 
Dec 21 19:34:02 INFO  HTTP request method="POST" path="/v1/embeddings" status=500 
"""

INFINITY = """\
INFO:     Started server process [1]
INFO     2025-03-11 08:14:02,115 infinity_emb INFO:        infinity_server.py:84
         Creating 1 engines: ['BAAI/bge-small-en-v1.5']
INFO     2025-03-11 08:14:06,044 infinity_emb INFO: model    select_model.py:106
         warmed up, between 682.15-3809.52 embeddings/sec at
         batch_size=32
INFO     2025-03-11 08:14:06,051 infinity_emb INFO:        infinity_server.py:98
         ♾️  Infinity - Embedding Inference Server
         Version 0.0.77
         http://0.0.0.0:7997/docs
INFO:     Application startup complete.
INFO:     Uvicorn running on http://0.0.0.0:7997 (Press CTRL+C to quit)
INFO:     172.18.0.4:41570 - "POST /embeddings HTTP/1.1" 200 OK
INFO:     172.18.0.4:41584 - "POST /rerank HTTP/1.1" 400 Bad Request
"""

SAMPLES = {"ollama-log": OLLAMA, "llamacpp-server-log": LLAMACPP, "lmstudio-log": LMSTUDIO, "localai-log": LOCALAI,
           "infinity-log": INFINITY}
NEW = tuple(SAMPLES)


def events_of(tmp_path: Path, text: str, name: str = "server.log") -> tuple[pl.DataFrame, object]:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    events, inputs, skipped = load_events([path])
    assert not skipped
    return events, inputs[0]


@pytest.mark.parametrize("name", NEW)
def test_each_server_log_is_recognised_and_every_line_read(tmp_path, name):
    picked, _ = sniff(SAMPLES[name].encode())
    assert picked is not None and picked.name == name
    _, info = events_of(tmp_path, SAMPLES[name])
    assert info.kind == name and info.unparsed == 0


def test_the_new_formats_are_model_servers_with_their_own_origins():
    servers = registry.servers()
    assert {"ollama", "llamacpp", "lmstudio", "localai", "infinity"} <= set(servers)
    assert {"ollama", "lmstudio", "localai", "infinity"} <= set(registry.local_time())
    assert "llamacpp" not in registry.local_time()      # its stamps are Unix time


def test_no_new_format_takes_another_formats_text():
    others = [f for f in registry.REGISTRY if f.samples and f.name not in NEW]
    plain = ["2024-01-01 10:00:00 [INFO] app started", "2024-01-01 10:00:01 [ERROR] could not reach the database",
             "time=2024-01-01T10:00:00Z level=INFO msg=started", "Traceback (most recent call last):"]
    mine = [f for f in registry.REGISTRY if f.name in NEW]
    for fmt in others:
        picked, _ = sniff(("\n".join(fmt.samples) + "\n").encode())
        assert picked.name == fmt.name
        assert all(m.sniff(list(fmt.samples)) < fmt.sniff(list(fmt.samples)) for m in mine), fmt.name
    assert all(m.sniff(plain) == 0 for m in mine)


def test_ollama_lines_times_requests_and_facts(tmp_path):
    events, _ = events_of(tmp_path, OLLAMA)
    err = events.filter(pl.col("level") == "ERROR").row(0, named=True)
    assert err["origin"] == "ollama" and err["logger"] == "sched.go:443"
    assert err["message"] == 'error loading llama server error="llama runner process has terminated: signal: killed"'
    assert err["ts"] == datetime(2024, 7, 2, 15, 5, 1, 730000)          # -05:00 moved to UTC
    gin = events.filter(pl.col("http_status") == 500).row(0, named=True)
    assert (gin["kind"], gin["http_method"], gin["http_path"], gin["http_client"]) == ("http", "POST", "/api/embed", "127.0.0.1")
    assert gin["ts"] == datetime(2024, 7, 2, 15, 5, 1)                   # gin's local stamp, by the slog lines' zone
    assert gin["latency_ms"] == pytest.approx(713.529814)
    env = dict(events.filter(pl.col("fact") == "env").select("env_name", "env_value").rows())
    assert env == {"OLLAMA_HOST": "http://0.0.0.0:11434", "OLLAMA_ORIGINS": "[http://localhost https://localhost app://*]"}
    config = events.filter(pl.col("fact") == "args").row(0, named=True)
    assert (config["command_host"], config["listen_port"], config["max_model_len"]) == ("0.0.0.0", 11434, 4096)
    facts = analyze([tmp_path / "server.log"]).facts.as_values()
    assert facts["ollama_version"] == "0.1.48" and facts["listen_ports"] == [11434] and facts["engine"] == "ollama"
    # --ctx-size 8192 shared by --parallel 4: 2048 tokens per request (the runner's n_ctx = 8192 likewise)
    assert facts["max_model_len"] == 2048
    assert facts["model_paths"] == ["/usr/share/ollama/.ollama/models/blobs/sha256-8eeb52dfb3bb"]
    assert facts["server_loading"] and facts["server_ready"] and facts["server_log"]


def test_llamacpp_text_and_json_lines(tmp_path):
    events, _ = events_of(tmp_path, LLAMACPP)
    req = events.filter(pl.col("kind") == "http").row(0, named=True)
    assert (req["http_method"], req["http_path"], req["http_status"], req["http_client"]) == ("POST", "/v1/chat/completions", 400, "127.0.0.1")
    err = events.filter(pl.col("level") == "ERROR").row(0, named=True)
    assert err["logger"] == "send_error" and "exceeds the available context size" in err["message"]
    facts = analyze([tmp_path / "server.log"]).facts.as_values()
    assert facts["listen_ports"] == [8080] and facts["max_model_len"] == 4096 and facts["llamacpp_version"] == "b4747"
    assert facts["model_paths"] == ["/models/qwen2.5-7b-instruct-q4_k_m.gguf"] and facts["server_ready"]

    events, _ = events_of(tmp_path, LLAMACPP_JSON, "old.log")
    req = events.filter(pl.col("kind") == "http").row(0, named=True)
    assert (req["http_status"], req["http_path"], req["ts"]) == (500, "/v1/embeddings", datetime(2024, 7, 16, 11, 15, 7))
    assert req["message"] == "request: POST /v1/embeddings 172.18.0.5 500"
    err = events.filter(pl.col("level") == "ERROR").row(0, named=True)
    assert err["message"] == "task error: input is too large to process. increase the physical batch size"
    facts = analyze([tmp_path / "old.log"]).facts.as_values()
    assert facts["listen_ports"] == [8080] and facts["max_model_len"] == 2048 and facts["llamacpp_version"] == "b3400"


def test_lmstudio_entries_are_one_event_each_and_bodies_are_not_read(tmp_path):
    events, _ = events_of(tmp_path, LMSTUDIO)
    assert events.height == 4
    listen = events.filter(pl.col("fact") == "listen").row(0, named=True)
    assert (listen["listen_port"], listen["logger"], listen["ts"]) == (1234, "LM STUDIO SERVER", datetime(2026, 8, 5, 6, 35, 30))
    body = events.filter(pl.col("kind") == "http").row(0, named=True)
    assert (body["http_method"], body["http_path"], body["level"]) == ("POST", "/v1/embeddings", "DEBUG")
    assert "CUDA" not in "".join(events["message"].to_list())             # the user's text in a body stays out
    unexpected = events.filter(pl.col("level") == "ERROR").sort("line")
    assert unexpected["http_path"].to_list() == ["/v1/completions", "/v1//models"]
    assert unexpected["http_status"].to_list() == [200, 200]                # LM Studio answers an unknown route with 200
    assert unexpected["text"][0] == ("2025-06-15 23:12:21 [ERROR] Unexpected endpoint or method. (OPTIONS /v1/completions). "
                                     "Returning 200 anyway")
    assert unexpected["ts"][1] == datetime(2023, 11, 12, 11, 36, 53, 608000)


def test_localai_zerolog_and_xlog_lines(tmp_path):
    events, _ = events_of(tmp_path, LOCALAI)
    req = events.filter(pl.col("kind") == "http").row(0, named=True)
    assert (req["level"], req["http_method"], req["http_path"], req["http_status"], req["http_client"]) == \
        ("ERROR", "POST", "/v1/chat/completions", 500, "172.17.0.1")
    assert req["resp_error"] == "could not load model: rpc error: code = Unavailable desc = error reading from server: EOF"
    assert req["latency_ms"] == pytest.approx(8612.345612) and req["ts_text"] == "5:38AM"
    facts = analyze([tmp_path / "server.log"]).facts.as_values()
    assert facts["localai_version"] == "v2.20.1" and facts["listen_ports"] == [8080] and facts["max_model_len"] == 4096
    assert facts["model_paths"] == ["mistral-7b-instruct-v0.2.Q4_K_M.gguf"]

    events, info = events_of(tmp_path, LOCALAI_XLOG, "new.log")
    assert info.kind == "localai-log"
    req = events.filter(pl.col("kind") == "http").row(0, named=True)
    assert (req["http_method"], req["http_path"], req["http_status"], req["ts_text"]) == ("POST", "/v1/embeddings", 500, "12-21 19:34:02")
    facts = analyze([tmp_path / "new.log"]).facts.as_values()
    assert facts["localai_version"] == "v3.9.0" and facts["listen_ports"] == [8080]


def test_infinity_rich_records_are_joined(tmp_path):
    events, _ = events_of(tmp_path, INFINITY)
    warmed = events.filter(pl.col("message").str.starts_with("model warmed up")).row(0, named=True)
    assert warmed["message"] == "model warmed up, between 682.15-3809.52 embeddings/sec at batch_size=32"
    assert (warmed["logger"], warmed["ts"]) == ("select_model.py:106", datetime(2025, 3, 11, 8, 14, 6, 44000))
    assert warmed["text"] == ("2025-03-11 08:14:06,044 infinity_emb INFO: model warmed up, between 682.15-3809.52 "
                              "embeddings/sec at batch_size=32")
    bad = events.filter(pl.col("http_status") == 400).row(0, named=True)
    assert (bad["http_method"], bad["http_path"], bad["ts"]) == ("POST", "/rerank", datetime(2025, 3, 11, 8, 14, 6))
    facts = analyze([tmp_path / "server.log"]).facts.as_values()
    assert facts["served_models"] == ["BAAI/bge-small-en-v1.5"] and facts["listen_ports"] == [7997]
    assert facts["infinity_version"] == "0.0.77" and facts["server_ready"]


def test_an_ollama_log_and_its_clients_traceback_name_the_model_that_was_never_pulled(tmp_path):
    bundle = RULES / "model" / "not_found_ollama.pos-ollama0.5-bundle"
    analysis = analyze([bundle])
    kinds = {Path(i.source).name: i.kind for i in analysis.inputs}
    assert kinds == {"ollama.log": "ollama-log", "client.txt": "python-traceback"}
    # the same two files pasted into one comment
    paste = tmp_path / "issue.md"
    paste.write_text("Ollama says:\n\n```\n" + (bundle / "ollama.log").read_text(encoding="utf-8") + "```\n\nand my script:\n\n```\n"
                     + (bundle / "client.txt").read_text(encoding="utf-8") + "```\n", encoding="utf-8")
    pasted = analyze([paste])
    assert "ollama-log" in (pasted.inputs[0].note or "")
    for result in (analysis, pasted):
        lead = result.findings[0]
        assert (lead.rule, lead.cause, lead.role) == ("model.not_found", "ollama", "root_cause")
        assert "llama3.1:8b" in lead.summary
        # the server's 404s on /api/chat are that failure seen from the server, not a cause of their own
        assert all(f.role != "root_cause" for f in result.findings[1:])
        assert result.facts.as_values()["ollama_version"] == "0.5.7"


@pytest.mark.parametrize("routine", [0, 50_000])      # read whole (a small log) and through the prefilter (a large one)
def test_vllm_request_logging_quotes_the_users_text_and_no_failure_is_read_from_it(tmp_path, routine):
    """FORMATS.md: request logging writes the prompt (`Received request …: prompt: '…'`); a prompt
    that talks about an out-of-memory error or a missing model is the user's text, not the server's."""
    head = ("INFO 11-20 09:00:00 [api_server.py:1880] vLLM API server version 0.11.0\n"
            "INFO 11-20 09:00:01 [api_server.py:1881] args: Namespace(model='m', served_model_name=['emb'], port=8000)\n")
    asked = ("INFO 11-20 09:00:05 [logger.py:43] Received request chatcmpl-1a2b: prompt: 'my job died with "
             "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB. And the model `llama` does not "
             "exist. Why?', params: SamplingParams(n=1, temperature=0.7, max_tokens=512), prompt_token_ids: None, "
             "lora_request: None.\n"
             "INFO 11-20 09:00:05 [async_llm.py:270] Added request chatcmpl-1a2b.\n"
             'INFO:     127.0.0.1:5000 - "POST /v1/chat/completions HTTP/1.1" 200 OK\n'
             "INFO 11-20 09:00:06 [async_llm.py:301] Finished request chatcmpl-1a2b.\n")
    ok = 'INFO:     127.0.0.1:5000 - "POST /v1/chat/completions HTTP/1.1" 200 OK\n'
    log = tmp_path / "server.log"
    log.write_text(head + asked * 3 + ok * routine, encoding="utf-8")
    a = analyze([str(log)])
    assert a.findings == [], [(f.rule, f.summary[:80]) for f in a.findings]
    assert a.inputs[0].lines == 2 + 12 + routine and a.inputs[0].unparsed == 0
    assert a.traffic.total() == 3 + routine
    # the event table still has every line (`emblens events`)
    events, _, _ = load_events([str(log)])
    assert events.filter(pl.col("text").str.contains("Received request", literal=True)).height == 3


def test_a_pasted_region_counts_its_request_logging_lines_as_read(tmp_path):
    """In a paste, the lines a format counts without keeping (its request logging) are read, not
    unparsed: the coverage of a pasted vLLM excerpt is what it was when they were kept."""
    paste = tmp_path / "issue.md"
    paste.write_text("The server says:\n```\nINFO 03-12 09:29:12 async_llm_engine.py:211] Added request 75337c34.\n"
                     "INFO 03-12 09:29:12 async_llm_engine.py:188] Finished request 75337c34.\n"
                     "ERROR 03-12 09:29:12 serving_chat.py:196] Error in preprocessing prompt inputs\n"
                     "and then it hangs here\n```\n", encoding="utf-8")
    info = analyze([str(paste)]).inputs[0]
    assert info.kind == "paste" and info.unparsed <= 1 and info.events >= 5, info      # the prose line alone may be unread
