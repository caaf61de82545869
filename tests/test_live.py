"""The live addon: with mitmproxy's own test helpers, and once end to end (local test server, real
mitmdump, a real HTTP client) on 127.0.0.1."""

import http.client
import json
import logging
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from mitmproxy.test import tflow

from emblens.diagnose import analyze
from emblens.frontends.live.addon import EmblensAddon

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "samples" / "tools"))
from localnet import free_port, wait_port  # noqa: E402


def _unauthorized(i: int):
    f = tflow.tflow(resp=True)
    f.request.method, f.request.path = "POST", "/v1/embeddings"
    f.request.headers["authorization"] = f"Bearer sk-wrong-key-{i:04d}-abcdefgh"
    f.request.content = b'{"model": "Qwen3-Embedding-4B", "input": ["query: a"]}'
    f.response.status_code = 401
    f.response.content = b'{"error": "Unauthorized"}'
    return f


def test_findings_are_printed_once_and_counted_and_traffic_is_untouched(tmp_path, caplog, mitm_context):
    addon = EmblensAddon()
    with mitm_context(addon) as tctx:
        tctx.configure(addon, emblens_report=str(tmp_path / "r.md"), emblens_json=str(tmp_path / "r.json"),
                       emblens_save=str(tmp_path / "flows.mitm"))
        caplog.set_level(logging.INFO, logger="emblens")
        for i in range(8):
            f = _unauthorized(i)
            before = f.get_state()
            addon.response(f)
            assert f.get_state() == before          # never modifies traffic
            addon._drain()
            addon._evaluate(announce=True)
        addon.done()
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("emblens: [")]
    assert lines[0].startswith("emblens: [auth.invalid_key] The server rejected the API key")
    assert sum("auth.invalid_key] The server" in m for m in lines) == 1      # printed once
    assert [m for m in lines[1:]] == ["emblens: [auth.invalid_key] seen 2 times now",
                                      "emblens: [auth.invalid_key] seen 4 times now",
                                      "emblens: [auth.invalid_key] seen 8 times now"]
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["findings"][0]["rule"] == "auth.invalid_key" and report["findings"][0]["count"] == 8
    assert "sk-wrong-key" not in (tmp_path / "r.md").read_text() + (tmp_path / "r.json").read_text()
    # the saved flows say the same to `emblens analyze`
    again = analyze([str(tmp_path / "flows.mitm")])
    assert [(f.rule, f.count) for f in again.findings] == [("auth.invalid_key", 8)]


def test_live_findings_say_how_many_of_the_requests_seen_they_concern_and_what_was_masked(tmp_path, mitm_context):
    """The live addon's analysis is built by the same function as `emblens analyze`: its findings
    carry "3 of 5 requests" and the report says what was masked."""
    addon = EmblensAddon()
    with mitm_context(addon) as tctx:
        tctx.configure(addon, emblens_report=str(tmp_path / "r.md"), emblens_json=str(tmp_path / "r.json"))
        for i in range(3):
            f = _unauthorized(i)      # the server echoes the key it refused
            f.response.content = b'{"error": {"message": "Incorrect API key provided: sk-wrong-key-%04d-abcdefgh"}}' % i
            addon.response(f)
        for _ in range(2):
            ok = tflow.tflow(resp=True)
            ok.request.method, ok.request.path = "GET", "/v1/models"
            ok.response.status_code = 200
            ok.response.content = b'{"object": "list", "data": [{"id": "Qwen3-Embedding-4B", "object": "model"}]}'
            addon.response(ok)
        addon._drain()
        addon._evaluate(announce=False)
        top = addon.analysis.findings[0]
        assert (top.rule, top.requests, top.requests_seen) == ("auth.invalid_key", 3, 5)
        assert addon.analysis.traffic.total() == 5
        addon.done()
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["findings"][0]["requests"] == {"matched": 3, "seen": 5}
    assert report["masked"].get("echoed API key") == 3 and report["traffic"]["by_status"] == {"200": 2, "401": 3}
    text = (tmp_path / "r.md").read_text()
    assert "3 of 5 requests (60%)" in text and "echoed API key" in text and "sk-wrong-key" not in text + str(report)


def test_errors_inside_the_addon_never_reach_mitmproxy(tmp_path, caplog, monkeypatch, mitm_context):
    addon = EmblensAddon()
    with mitm_context(addon) as tctx:
        tctx.configure(addon, emblens_report="", emblens_json="")
        broken = tflow.tflow(resp=True)
        broken.request = None                      # flow_row cannot read this
        addon.response(broken)
        addon.error(tflow.tflow(err=True))         # a flow that ended in an error is fine
        addon._drain()

        def boom(*a, **k):
            raise RuntimeError("rule engine exploded")

        monkeypatch.setattr("emblens.rules.engine.evaluate", boom)
        addon._wake.set()
        addon.done()                               # logs, does not raise
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert "could not read a flow" in messages and "rule engine exploded" in messages


def test_memory_is_bounded_by_the_window(tmp_path, mitm_context):
    addon = EmblensAddon()
    with mitm_context(addon) as tctx:
        tctx.configure(addon, emblens_window="100", emblens_report="", emblens_json="")
        for i in range(300):
            addon.response(_unauthorized(i))
        addon._drain()
        assert len(addon._rows) == 100 and addon.seen == 300
        addon._evaluate(announce=False)
        assert addon.analysis.inputs[0].note == "last 100 of 300 exchanges"


def _post(url: str, body: dict, key: str) -> int:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json", "Authorization": f"Bearer {key}"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def test_end_to_end_real_mitmdump_in_front_of_a_server(tmp_path):
    mitmdump = Path(sys.executable).parent / "mitmdump"
    if not mitmdump.exists():
        pytest.skip("mitmdump is not installed next to this Python")
    sport, pport = free_port(), free_port()
    server = subprocess.Popen([sys.executable, str(REPO / "samples/tools/mock_server.py"), str(sport), "model"])
    live = subprocess.Popen(
        [sys.executable, "-m", "emblens", "live", "--upstream", f"http://127.0.0.1:{sport}", "--port", str(pport),
         "--report", str(tmp_path / "live.md"), "--json", str(tmp_path / "live.json"), "--save", str(tmp_path / "flows.mitm")],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        wait_port(sport)
        wait_port(pport)
        base = f"http://127.0.0.1:{pport}/v1"
        with urllib.request.urlopen(base + "/models", timeout=10) as r:
            assert json.load(r)["data"][0]["id"] == "Qwen3-Embedding-4B"   # traffic passes unchanged
        codes = [_post(base + "/embeddings", {"model": "qwen3-embedding-4b", "input": ["query: hi"]}, "EMPTY") for _ in range(6)]
        assert codes == [404] * 6
        time.sleep(2.5)   # the rules run every second
    finally:
        live.send_signal(signal.SIGTERM)
        out, _ = live.communicate(timeout=60)
        server.terminate()
        server.wait()
    assert live.returncode == 0, out
    printed = [line for line in out.splitlines() if "emblens: [model.not_found] The requested model" in line]
    assert len(printed) == 1 and "Did you mean `Qwen3-Embedding-4B`" in printed[0], out
    live_report = json.loads((tmp_path / "live.json").read_text())
    saved = analyze([str(tmp_path / "flows.mitm")])
    assert [(f["rule"], f["count"]) for f in live_report["findings"]] == [(f.rule, f.count) for f in saved.findings]
    assert [f["summary"] for f in live_report["findings"]] == [f.summary for f in saved.findings]
    assert "## Root cause" in (tmp_path / "live.md").read_text()


SSE_GAP_S = 2.0


def _sse_server(port: int):
    """A chat-completions stream as vLLM sends it: one event, a pause, the rest."""
    import http.server
    import threading

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):
            self.rfile.read(int(self.headers.get("content-length", 0)))
            self.send_response(200)
            self.send_header("content-type", "text/event-stream")
            self.send_header("transfer-encoding", "chunked")
            self.end_headers()
            for i, event in enumerate((b'data: {"choices":[{"delta":{"content":"Hel"}}]}\n\n',
                                       b'data: {"choices":[{"delta":{"content":"lo"}}]}\n\n', b"data: [DONE]\n\n")):
                if i == 1:
                    time.sleep(SSE_GAP_S)
                self.wfile.write(b"%x\r\n%s\r\n" % (len(event), event))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_a_streamed_answer_passes_through_as_a_stream_and_saves_masked(tmp_path):
    import http.client
    import os
    import stat

    mitmdump = Path(sys.executable).parent / "mitmdump"
    if not mitmdump.exists():
        pytest.skip("mitmdump is not installed next to this Python")
    sport, pport = free_port(), free_port()
    server = _sse_server(sport)
    saved = tmp_path / "flows.mitm"
    live = subprocess.Popen(
        [sys.executable, "-m", "emblens", "live", "--upstream", f"http://127.0.0.1:{sport}", "--port", str(pport),
         "--report", str(tmp_path / "live.md"), "--json", str(tmp_path / "live.json"), "--save", str(saved)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    secret = "sk-live-stream-Zq8vT2mLwX4pR7nK1sD9"
    try:
        wait_port(pport)
        conn = http.client.HTTPConnection("127.0.0.1", pport, timeout=20)
        started = time.monotonic()
        conn.request("POST", "/v1/chat/completions?key=Qk5jHg8fDs2aZx7c", body=json.dumps({"model": "m", "stream": True}),
                     headers={"content-type": "application/json", "authorization": f"Bearer {secret}",
                              "cookie": "session=Sv7bNm4kLj1hGf8d"})
        resp = conn.getresponse()
        first = resp.read1(65536)
        first_at = time.monotonic() - started
        rest = resp.read()
        total = time.monotonic() - started
        conn.close()
        time.sleep(1.5)     # the flow reaches the addon's worker
    finally:
        live.send_signal(signal.SIGTERM)
        out, _ = live.communicate(timeout=60)
        server.shutdown()
    assert first.startswith(b"data: ") and b"Hel" in first
    assert first_at < SSE_GAP_S / 2 and total >= SSE_GAP_S, (first_at, total)   # the first event did not wait
    assert b"[DONE]" in rest
    assert live.returncode == 0, out
    assert "credentials are masked" in out
    assert stat.S_IMODE(os.stat(saved).st_mode) == 0o600
    raw = saved.read_bytes()
    for value in (secret, "Qk5jHg8fDs2aZx7c", "Sv7bNm4kLj1hGf8d"):
        assert value.encode() not in raw, value
    back = analyze([str(saved)])
    assert back.inputs and back.inputs[0].events == 1, (out[-3000:], back.skipped)


def test_streamed_bodies_keep_a_bounded_head_for_the_rules(mitm_context):
    from emblens.formats.records import flow_row
    from emblens.frontends.live.addon import STREAM_OVER, TEE_BYTES, _should_stream

    addon = EmblensAddon()
    with mitm_context(addon):
        f = tflow.tflow(resp=True)
        f.request.path = "/v1/chat/completions"
        f.response.status_code = 400
        f.response.headers["content-type"] = "text/event-stream"
        f.response.headers.pop("content-length", None)
        addon.responseheaders(f)
        assert callable(f.response.stream)
        chunks = [b'data: {"error": {"message": "This model\'s maximum context length is 2048 tokens"}}\n\n'] + [b"x" * 4096] * 100
        assert [f.response.stream(c) for c in chunks] == chunks          # passed through unchanged
        f.response.content = None                                         # mitmproxy keeps no body for a stream
        row = flow_row(f)
        assert "maximum context length" in (row["resp_error"] or row["text"])
        assert len(f.emblens_response_head) == TEE_BYTES
    big = tflow.tflow().request
    big.headers["content-length"] = str(STREAM_OVER + 1)
    small = tflow.tflow().request
    small.headers["content-length"] = "100"
    assert _should_stream(big) and not _should_stream(small)


def test_save_raw_without_save_is_a_one_line_error():
    r = subprocess.run([sys.executable, "-m", "emblens", "live", "--upstream", "http://127.0.0.1:9", "--save-raw"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and r.stderr.strip() == "emblens: error: --save-raw needs --save FILE", r.stderr


def test_escape_sequences_in_live_traffic_are_never_printed(caplog, mitm_context):
    addon = EmblensAddon()
    with mitm_context(addon) as tctx, caplog.at_level(logging.WARNING, logger="emblens"):
        tctx.configure(addon, emblens_report="", emblens_json="")
        for i in range(3):
            f = tflow.tflow(resp=True)
            f.request.method, f.request.path = "POST", "/v1/embeddings"
            f.request.content = json.dumps({"model": "evil\x1b]52;c;cHduZWQ=\x07model", "input": ["a"]}).encode()
            f.response.status_code = 404
            f.response.content = json.dumps({"object": "error", "message": f"The model `evil\x1b]0;t\x07model{i}` does not exist.",
                                             "type": "NotFoundError", "param": None, "code": 404}).encode()
            addon.response(f)
        addon._drain()
        addon._evaluate(announce=True)
    printed = "\n".join(r.getMessage() for r in caplog.records)
    assert "emblens: [model.not_found]" in printed and "evil\\x1b]" in printed, printed
    assert "\x1b" not in printed and "\x07" not in printed


def test_bad_addon_options_and_a_busy_port_stop_start_up_with_one_line(tmp_path):
    import socket

    mitmdump = Path(sys.executable).parent / "mitmdump"
    if not mitmdump.exists():
        pytest.skip("mitmdump is not installed next to this Python")
    addon = subprocess.run([sys.executable, "-m", "emblens", "addon-path"], capture_output=True, text=True).stdout.strip()
    for option, says in (("emblens_interval=abc", "--set emblens_interval=abc: expected a whole number"),
                         ("emblens_intervl=5", "--set emblens_intervl: no such option (did you mean emblens_interval?)")):
        r = subprocess.run([str(mitmdump), "-s", addon, "--listen-host", "127.0.0.1", "-p", "0", "--set", option,
                            "--set", "emblens_report=", "--set", "emblens_json="],
                           capture_output=True, text=True, timeout=60, cwd=tmp_path)
        out = r.stdout + r.stderr
        assert r.returncode != 0 and f"emblens: error: {says}" in out, out
        assert "Traceback" not in out
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        r = subprocess.run([sys.executable, "-m", "emblens", "live", "--upstream", "http://127.0.0.1:9", "--port", str(port)],
                           capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert r.returncode == 2 and r.stderr.strip().endswith("choose another port with --port"), r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def _live(tmp_path, upstream: str, *extra: str):
    pport = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "emblens", "live", "--upstream", upstream, "--port", str(pport),
         "--report", str(tmp_path / "live.md"), "--json", str(tmp_path / "live.json"), *extra],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    wait_port(pport)
    return proc, f"http://127.0.0.1:{pport}/v1"


def _stop(proc) -> str:
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    # the rules ran in their own process, which printed the summary and wrote the reports
    assert "rules process" not in out and "exchanges read" in out, out
    return out


def test_live_with_the_upstream_down_reports_the_refused_connection_naming_the_upstream(tmp_path):
    if not (Path(sys.executable).parent / "mitmdump").exists():
        pytest.skip("mitmdump is not installed next to this Python")
    dead = free_port()                          # nothing listens there
    proc, base = _live(tmp_path, f"http://127.0.0.1:{dead}")
    try:
        time.sleep(2.0)                         # the ask for /v1/models at start already finds it down
        for _ in range(2):                      # clients get "Connection error." (the proxy closes the connection)
            with pytest.raises((urllib.error.URLError, ConnectionError, http.client.HTTPException)):
                _post(base + "/embeddings", {"model": "m", "input": "hi"}, "EMPTY")
        time.sleep(2.5)
    finally:
        out = _stop(proc)
    printed = [line for line in out.splitlines() if "emblens: [net.connection_refused] Nothing was listening" in line]
    assert len(printed) == 1 and f"could not connect to its upstream 127.0.0.1:{dead}" in printed[0], out
    report = json.loads((tmp_path / "live.json").read_text())
    top = report["findings"][0]
    # the ask at start, the two calls, and the start-up check that the proxy listens: each connection refused
    assert top["rule"] == "net.connection_refused" and top["role"] == "root_cause" and top["count"] >= 3, top
    assert any("asked by emblens at start" in e["text"] for e in top["evidence"])


@pytest.mark.parametrize("mode, key", [("model", "EMPTY"), ("auth+model", "s3cret-demo-key")])
def test_live_asks_the_upstream_for_its_models_so_the_did_you_mean_is_real(tmp_path, mode, key):
    """The client never calls /v1/models itself; the addon asks. A server that wants a key ("auth+model")
    lists its models to the addon with the key of the client's requests, which no output holds."""
    if not (Path(sys.executable).parent / "mitmdump").exists():
        pytest.skip("mitmdump is not installed next to this Python")
    sport = free_port()
    server = subprocess.Popen([sys.executable, str(REPO / "samples/tools/mock_server.py"), str(sport), mode])
    try:
        wait_port(sport)
        proc, base = _live(tmp_path, f"http://127.0.0.1:{sport}")
        try:
            time.sleep(1.0)
            codes = [_post(base + "/embeddings", {"model": "qwen3-embedding-4b", "input": ["hi"]}, key) for _ in range(3)]
            assert codes == [404] * 3
            time.sleep(2.5)
        finally:
            out = _stop(proc)
    finally:
        server.terminate()
        server.wait()
    printed = [line for line in out.splitlines() if "emblens: [model.not_found]" in line]
    assert len(printed) == 1 and "Did you mean `Qwen3-Embedding-4B`" in printed[0] and "the served name" not in printed[0], out
    report = (tmp_path / "live.md").read_text() + (tmp_path / "live.json").read_text()
    assert "s3cret-demo-key" not in report and "s3cret-demo-key" not in out


def test_a_502_from_mitmproxy_itself_is_a_gateway_error_naming_the_upstream(tmp_path):
    from emblens.diagnose import analyze as run

    a = run([REPO / "rules/http/gateway_error.pos-mitmproxy-upstream-closed.flow"])
    assert a.findings[0].rule == "http.gateway_error"
    assert "answered 502 Bad Gateway to 1 request" in a.findings[0].summary and "127.0.0.1:59998" in a.findings[0].summary
    a = run([REPO / "rules/net/connection_refused.pos-mitmproxy-upstream-down.flow"])
    assert [(f.rule, f.role) for f in a.findings] == [("net.connection_refused", "root_cause"), ("http.gateway_error", "symptom")]
    assert "upstream 127.0.0.1:59999" in a.findings[0].summary

