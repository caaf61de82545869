"""`emblens live` loses nothing on the way out, and what it saves holds no secret.

Stopped by Ctrl-C or SIGTERM sent to its whole process group (a terminal and a service manager
both do that), by a closed terminal, after its upstream went away, or with its rules process
killed: the report covers every exchange the proxy saw, holds the finding it printed live, no
traceback is printed, and the flow file is whole (mitmproxy's own reader reads every flow back).
The end-to-end tests run a real mitmdump in front of a small server on 127.0.0.1."""

import base64
import http.server
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from mitmproxy import http as mhttp
from mitmproxy.io import FlowReader
from mitmproxy.test import tflow
from mitmproxy.websocket import WebSocketMessage
from wsproto.frame_protocol import Opcode

from emblens.frontends.live.addon import EmblensAddon

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "samples" / "tools"))
from localnet import free_port, wait_port  # noqa: E402

SERVED = "Qwen3-Embedding-4B"
DIMS = 2560          # what this model returns: traffic that is fine apart from the wrong names
needs_mitmdump = pytest.mark.skipif(not (Path(sys.executable).parent / "mitmdump").exists(),
                                    reason="mitmdump is not installed next to this Python")


# -- a small upstream, in this process ------------------------------------------------------------
class _Upstream(http.server.BaseHTTPRequestHandler):
    """Answers as vLLM does: the served models, a vector for the served name, a 404 for another."""

    protocol_version = "HTTP/1.1"

    def _send(self, code: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self._send(200, {"object": "list", "data": [{"id": SERVED, "object": "model"}]})

    def do_POST(self):
        model = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))) or b"{}").get("model")
        if model == SERVED:
            self._send(200, {"object": "list", "data": [{"object": "embedding", "index": 0, "embedding": [0.5] * DIMS}],
                             "model": SERVED, "usage": {"prompt_tokens": 2, "total_tokens": 2}})
        else:
            self._send(404, {"object": "error", "message": f"The model `{model}` does not exist.",
                             "type": "NotFoundError", "param": None, "code": 404})

    def log_message(self, *args):
        pass


def _upstream():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), _Upstream)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _post(base: str, model: str) -> int:
    req = urllib.request.Request(base + "/embeddings", data=json.dumps({"model": model, "input": ["query: hi"]}).encode(),
                                 headers={"content-type": "application/json", "authorization": "Bearer EMPTY"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


class _Live:
    """`emblens live` in a process group of its own, its output read as it comes."""

    def __init__(self, tmp_path: Path, upstream_port: int) -> None:
        self.port = free_port()
        self.paths = {"md": tmp_path / "live.md", "json": tmp_path / "live.json", "flows": tmp_path / "flows.mitm"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "emblens", "live", "--upstream", f"http://127.0.0.1:{upstream_port}", "--port", str(self.port),
             "--report", str(self.paths["md"]), "--json", str(self.paths["json"]), "--save", str(self.paths["flows"])],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True, cwd=tmp_path)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=lambda: self.lines.extend(self.proc.stdout), daemon=True)
        self._reader.start()
        wait_port(self.port)
        self.base = f"http://127.0.0.1:{self.port}/v1"

    def wait_for(self, text: str, timeout: float = 15) -> str:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            for line in list(self.lines):
                if text in line:
                    return line
            time.sleep(0.1)
        raise AssertionError(f"never printed {text!r}:\n{''.join(self.lines)}")

    def stop(self, signum: int = signal.SIGINT) -> str:
        """`signum` to the whole group, as a terminal's Ctrl-C or a service manager's SIGTERM is sent."""
        os.killpg(self.proc.pid, signum)
        try:
            self.proc.wait(timeout=60)
        finally:
            self.kill()
        self._reader.join(timeout=10)
        return "".join(self.lines)

    def kill(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _send_traffic(live: _Live, n: int) -> None:
    """`n` calls: every third one asks for the lowercase name the server does not serve."""
    codes = [_post(live.base, SERVED.lower() if i % 3 == 0 else SERVED) for i in range(n)]
    assert codes.count(404) == len(range(0, n, 3)) and codes.count(200) == n - codes.count(404)


def _check_nothing_lost(live: _Live, out: str, n: int, announced: list[str]) -> dict:
    assert live.proc.returncode == 0, out
    assert "Traceback" not in out and "KeyboardInterrupt" not in out, out
    assert sum("exchanges read" in line for line in out.splitlines()) == 1, out       # one closing line
    report = json.loads(live.paths["json"].read_text())
    assert report["traffic"]["requests"] == n, (report["traffic"], report["inputs"], out)
    rules = [f["rule"] for f in report["findings"]]
    for rule in announced:
        assert rule in rules, (rule, rules)
    assert "## Root cause" in live.paths["md"].read_text()
    with open(live.paths["flows"], "rb") as fh:
        flows = list(FlowReader(fh).stream())
    assert len(flows) == n and all(f.response is not None for f in flows)
    assert sum(f.response.status_code == 404 for f in flows) == len(range(0, n, 3))
    assert not list(live.paths["flows"].parent.glob(".flows.mitm.*")), "a temporary flow file was left behind"
    return report


# -- the ways of stopping ------------------------------------------------------------------------
@needs_mitmdump
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=["ctrl-c", "sigterm", "hangup"])
def test_stopping_the_whole_group_reports_every_exchange_and_saves_every_flow(tmp_path, signum):
    server = _upstream()
    live = _Live(tmp_path, server.server_address[1])
    n = 30
    try:
        _send_traffic(live, n)
        announced = live.wait_for("emblens: [model.not_found] The requested model is not served")
        assert f"Did you mean `{SERVED}`" in announced
        out = live.stop(signum)
    finally:
        live.kill()
        server.shutdown()
    _check_nothing_lost(live, out, n, ["model.not_found"])


@needs_mitmdump
def test_after_the_upstream_goes_away_ctrl_c_still_reports_everything(tmp_path):
    server = _upstream()
    live = _Live(tmp_path, server.server_address[1])
    n = 24
    try:
        _send_traffic(live, n)
        live.wait_for("emblens: [model.not_found]")
        server.shutdown()
        server.server_close()                 # the server is gone: the proxy's connections are refused
        for _ in range(2):
            with pytest.raises((urllib.error.URLError, ConnectionError, OSError)):
                _post(live.base, SERVED)
        live.wait_for("emblens: [net.connection_refused]")
        out = live.stop(signal.SIGINT)
    finally:
        live.kill()
    _check_nothing_lost(live, out, n, ["model.not_found", "net.connection_refused"])


def _children(pid: int) -> list[tuple[int, str]]:
    """(pid, command line) of every process below `pid`."""
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        try:
            kids = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
        except OSError:
            continue
        for kid in map(int, kids):
            try:
                found.append((kid, Path(f"/proc/{kid}/cmdline").read_bytes().replace(b"\0", b" ").decode()))
            except OSError:
                continue
            todo.append(kid)
    return found


@needs_mitmdump
@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="finds the rules process through /proc")
def test_a_killed_rules_process_costs_no_exchange(tmp_path):
    server = _upstream()
    live = _Live(tmp_path, server.server_address[1])
    n = 18
    try:
        _send_traffic(live, n)
        live.wait_for("emblens: [model.not_found]")
        rules = [pid for pid, cmd in _children(live.proc.pid) if "-m emblens.frontends.live.rules_process" in cmd]
        assert len(rules) == 1, _children(live.proc.pid)
        os.kill(rules[0], signal.SIGKILL)
        out = live.stop(signal.SIGINT)
    finally:
        live.kill()
        server.shutdown()
    _check_nothing_lost(live, out, n, ["model.not_found"])
    assert "the report is made here" in out


def test_a_report_folder_that_is_not_there_is_one_line_and_exit_2_before_anything_runs(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "emblens", "live", "--upstream", "http://127.0.0.1:9", "--port", str(free_port()),
                             "--json", str(tmp_path / "no-such-folder" / "r.json")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True, cwd=tmp_path)
    try:
        out, err = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail("emblens live started with a report folder that does not exist; it would only fail on exit")
    assert proc.returncode == 2 and len(err.strip().splitlines()) == 1, err
    assert err.startswith("emblens: error: --json ") and "no-such-folder" in err and "does not exist" in err, err


# -- in the addon, with mitmproxy's test helpers ---------------------------------------------------
def _not_found(i: int):
    f = tflow.tflow(resp=True)
    f.request.method, f.request.path = "POST", "/v1/embeddings"
    f.request.content = json.dumps({"model": "qwen3-embedding-4b", "input": [f"query: {i}"]}).encode()
    f.response.status_code = 404
    f.response.content = json.dumps({"object": "error", "message": "The model `qwen3-embedding-4b` does not exist.",
                                     "type": "NotFoundError", "param": None, "code": 404}).encode()
    return f


def _ok(i: int):
    f = tflow.tflow(resp=True)
    f.request.method, f.request.path = "POST", "/v1/embeddings"
    f.request.content = json.dumps({"model": SERVED, "input": [f"query: {i}"]}).encode()
    f.response.status_code = 200
    f.response.content = json.dumps({"object": "list", "data": [{"embedding": [0.5] * DIMS}], "model": SERVED}).encode()
    return f


def test_a_finding_printed_live_stays_in_the_report_after_its_exchanges_leave_the_window(tmp_path, caplog, mitm_context):
    addon = EmblensAddon()
    with mitm_context(addon) as tctx, caplog.at_level(logging.WARNING, logger="emblens"):
        tctx.configure(addon, emblens_window="100", emblens_report=str(tmp_path / "r.md"), emblens_json=str(tmp_path / "r.json"))
        for i in range(5):
            addon.response(_not_found(i))
        addon._drain()
        addon._evaluate(announce=True)
        for i in range(150):               # the window keeps 100: the five 404s leave it
            addon.response(_ok(i))
        addon._drain()
        addon.done()
    printed = [r.getMessage() for r in caplog.records if r.getMessage().startswith("emblens: [model.not_found]")]
    assert printed, [r.getMessage() for r in caplog.records]
    report = json.loads((tmp_path / "r.json").read_text())
    found = {f["rule"]: f for f in report["findings"]}
    assert "model.not_found" in found and found["model.not_found"]["count"] == 5, report["findings"]
    assert "model.not_found" in report["inputs"][0]["note"] and "last 100 of 155" in report["inputs"][0]["note"]
    assert "model.not_found" in (tmp_path / "r.md").read_text()


def test_a_report_that_cannot_be_written_leaves_the_previous_one_whole_and_the_other_is_written(tmp_path, caplog, monkeypatch, mitm_context):
    md, js = tmp_path / "r.md", tmp_path / "r.json"
    md.write_text("PREVIOUS REPORT\n")
    # a report whose text cannot be written out stops that report midway, as a full disk would
    monkeypatch.setattr("emblens.report.to_markdown", lambda _analysis: "# emblens report\n\nbroken \udcff here\n")
    addon = EmblensAddon()
    with mitm_context(addon) as tctx:
        tctx.configure(addon, emblens_report=str(md), emblens_json=str(js))
        for i in range(3):
            addon.response(_not_found(i))
        addon.done()                          # logs, does not raise
    assert md.read_text() == "PREVIOUS REPORT\n"
    assert json.loads(js.read_text())["traffic"]["requests"] == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json", "r.md"]      # no temporary file left
    assert any("emblens: error: " in r.getMessage() and "r.md" in r.getMessage() for r in caplog.records)


# -- saved flows: no secret in any shape -----------------------------------------------------------
SECRETS = {
    "quoted bearer": "Qb7mX2kLp9Rw4Tz8Vn3H",
    "ApiKey scheme": "Ak4nP8sDq2Lw7Zx5Cv1B",
    "websocket protocol": "Ws9kR3mT7pL2xQ5vN8bZ",
    "websocket text message": "Wm5tY8uI2oP4aS6dF1gH",
    "websocket binary message": "Wb3nM6qE9rT2yU5iO8pA",
    "multipart field": "Mp2vB7nX4cZ9kL1jH6gF",
    "api key header, echoed in a later flow": "Ek8wQ3eR6tY1uI4oP7aS",
    "basic password": "Bp6zX1cV4bN7mQ2wE5rT",
    "query key": "Qk5jHg8fDs2aZx7cVb1N",
    "trailer": "Tr5hJ8kL2mN4bV7cX9zQ",
}


def _b64(value: str) -> list[bytes]:
    raw = value.encode()
    return [base64.b64encode(raw).rstrip(b"="), base64.urlsafe_b64encode(raw).rstrip(b"=")]


def _flows_with_secrets():
    s = SECRETS
    quoted = tflow.tflow(resp=True)
    quoted.request.method, quoted.request.path = "POST", "/v1/embeddings"
    quoted.request.headers["authorization"] = f'Bearer "{s["quoted bearer"]}"'
    quoted.response.status_code = 401
    # the server echoes the key it refused, in words no pattern knows
    quoted.response.content = json.dumps({"detail": f"tenant {s['quoted bearer']} is not enabled"}).encode()

    apikey = tflow.tflow(resp=True)
    apikey.request.headers["Authorization"] = f"ApiKey {s['ApiKey scheme']}"
    apikey.response.headers["x-echo"] = f"for {s['ApiKey scheme']}"

    ws = tflow.twebsocketflow(messages=False)
    ws.request.path = "/v1/realtime?model=gpt-realtime"
    ws.request.headers["sec-websocket-protocol"] = f"realtime, openai-insecure-api-key.{s['websocket protocol']}, openai-beta.realtime-v1"
    ws.response.headers["sec-websocket-protocol"] = "realtime"
    ws.websocket.messages = [
        WebSocketMessage(Opcode.TEXT, True, json.dumps({"type": "session.update", "session": {"api_key": s["websocket text message"]}}).encode()),
        WebSocketMessage(Opcode.TEXT, False, json.dumps({"type": "error", "message": f"{s['websocket protocol']} was revoked"}).encode()),
        WebSocketMessage(Opcode.BINARY, True, b"\x00\x01\xfe auth token=" + s["websocket binary message"].encode() + b" \xff\x00"),
    ]

    form = tflow.tflow(resp=True)
    form.request.method, form.request.path = "POST", "/v1/audio/transcriptions"
    form.request.headers["content-type"] = "multipart/form-data; boundary=XyZbOuNdArY"
    form.request.content = (
        b"--XyZbOuNdArY\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nwhisper-1\r\n"
        b"--XyZbOuNdArY\r\nContent-Disposition: form-data; name=\"api_key\"\r\n\r\n" + s["multipart field"].encode() + b"\r\n"
        b"--XyZbOuNdArY\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\n"
        b"Content-Type: audio/wav\r\n\r\nRIFF\x00\x01\x02\x03WAVE\r\n--XyZbOuNdArY--\r\n")

    first = tflow.tflow(resp=True)
    first.request.headers["x-api-key"] = s["api key header, echoed in a later flow"]
    later = tflow.tflow(resp=True)
    later.response.status_code = 403
    later.response.content = json.dumps({"detail": f"project of {s['api key header, echoed in a later flow']} is closed"}).encode()

    basic = tflow.tflow(resp=True)
    basic.request.headers["authorization"] = "Basic " + base64.b64encode(f"admin:{s['basic password']}".encode()).decode()

    query = tflow.tflow(resp=True)
    query.request.path = f"/v1/models?api_key={s['query key']}&limit=5"

    trailer = tflow.tflow(resp=True)
    trailer.response.trailers = mhttp.Headers(x_upstream_token=s["trailer"])
    return [quoted, apikey, ws, form, first, later, basic, query, trailer]


def _hook(addon, name: str, *args) -> None:
    """Call a hook as mitmproxy does: only when the addon has it."""
    if hasattr(addon, name):
        getattr(addon, name)(*args)


def test_saved_flows_hold_no_secret_raw_or_base64_and_read_back_whole(tmp_path, mitm_context):
    saved = tmp_path / "flows.mitm"
    flows = _flows_with_secrets()
    addon = EmblensAddon()
    with mitm_context(addon) as tctx:
        tctx.configure(addon, emblens_report="", emblens_json="", emblens_save=str(saved))
        for f in flows:
            _hook(addon, "response", f)
            if f.websocket is not None:
                _hook(addon, "websocket_end", f)
        addon.done()
    data = saved.read_bytes()
    for what, secret in SECRETS.items():
        assert secret.encode() not in data, what
        for encoded in _b64(secret):
            assert encoded not in data, f"{what} (base64)"
    with open(saved, "rb") as fh:
        back = list(FlowReader(fh).stream())
    assert len(back) == len(flows)
    ws = next(f for f in back if f.websocket is not None)
    assert len(ws.websocket.messages) == 3 and "openai-insecure-api-key." in ws.request.headers["sec-websocket-protocol"]
    assert ws.websocket.messages[2].content.startswith(b"\x00\x01\xfe auth token=")      # binary kept but the key
    form = next(f for f in back if f.request.path == "/v1/audio/transcriptions")
    assert b'name="model"\r\n\r\nwhisper-1\r\n' in form.request.content and b"RIFF\x00\x01\x02\x03WAVE" in form.request.content
    quoted = back[0]
    assert quoted.request.headers["authorization"].startswith("Bearer <") and b"is not enabled" in quoted.response.content
    # what is not secret stays as it was
    assert next(f for f in back if f.request.path.startswith("/v1/models?")).request.query["limit"] == "5"
