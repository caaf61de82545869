"""`emblens probe` and `emblens collect --url` against servers that misbehave on purpose: a body
that drips a byte every half second, headers that never end (slowloris), a server that accepts and
says nothing, JSON nested 200,000 deep, an answer far longer than MAX_BODY, headers past the caps,
and a 401 that echoes the key it was sent (in its body and its headers, raw and base64).

Each exchange has one deadline for the whole of it, so the commands end within their --timeout
plus 2 s whatever the server does; each bound is one line; the key probe is given never reaches
stdout, stderr or a file it writes. The stand-in servers listen on 127.0.0.1 only, on threads of
this test, and give up after `LIFETIME` seconds, so that code without the deadlines fails these
tests instead of hanging them.
"""

from __future__ import annotations

import base64
import json
import socket
import socketserver
import threading
import time
import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from emblens.frontends.cli import app

KEY = "Hx4wQ9tRb2Lm7Vc5Nz8K"          # what the 401 stand-in echoes; must never be shown or written
KEY_B64 = base64.b64encode(KEY.encode()).decode()
PASSWORD = "Pw9kDq3Lx7Zt"             # in the URL's user-info
LIFETIME = 8.0                        # "forever", for a command whose deadline is 2 or 3 s


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.stopping = threading.Event()
        super().__init__(("127.0.0.1", 0), _Handler)


class _Handler(socketserver.BaseRequestHandler):
    """Reads the request's head, then answers as the server's mode says."""

    def handle(self) -> None:
        server: _Server = self.server     # type: ignore[assignment]
        self.stopping = server.stopping
        self.sock: socket.socket = self.request
        self.sock.settimeout(LIFETIME)
        head = b""
        try:
            while b"\r\n\r\n" not in head and len(head) < 65536:
                chunk = self.sock.recv(4096)
                if not chunk:
                    return
                head += chunk
            self.head = head.decode("latin-1")
            getattr(self, server.mode)()
        except OSError:
            pass          # the client went away: what the deadlines are for

    def _keep_up(self, every: float, send) -> None:
        """Call `send` every `every` seconds until the test ends or LIFETIME has passed."""
        end = time.monotonic() + LIFETIME
        while time.monotonic() < end and not self.stopping.wait(every):
            send()

    def _answer(self, status: str, body: bytes, headers: str = "") -> None:
        self.sock.sendall(f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                          f"{headers}Connection: close\r\n\r\n".encode("latin-1") + body)

    def drip(self) -> None:
        self.sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n")
        self._keep_up(0.5, lambda: self.sock.sendall(b" "))

    def slowloris(self) -> None:
        self.sock.sendall(b"HTTP/1.1 200 OK\r\n")
        n = iter(range(10**6))
        self._keep_up(0.3, lambda: self.sock.sendall(f"X-Pad-{next(n)}: x\r\n".encode()))

    def silent(self) -> None:
        self.stopping.wait(LIFETIME)

    def nested(self) -> None:
        self._answer("200 OK", b"[" * 200_000)

    def huge(self) -> None:
        self._answer("200 OK", b'{"object": "list", "data": [' + b'{"id": "m"}, ' * 200_000 + b'{"id": "m"}]}')

    def wide(self) -> None:
        # 90 header lines of 60 KB: each under http.client's own limits (64 KiB a line, 100 lines)
        self.sock.sendall(b"HTTP/1.1 200 OK\r\n" + b"".join(b"X-Pad-%d: %s\r\n" % (i, b"x" * 60_000) for i in range(90))
                          + b"Content-Length: 2\r\n\r\n{}")

    def echo401(self) -> None:
        # a gateway that quotes what it was sent, in words and headers the catalogue has no name for
        if self.head.startswith("GET /health "):
            return self._answer("200 OK", b"")
        sent = next((line.split(":", 1)[1].strip() for line in self.head.split("\r\n")
                     if line.lower().startswith("authorization:")), "")
        got = sent.removeprefix("Bearer ").strip()
        body = json.dumps({"error": {"message": f"rejected {got} (not on the allow list)", "type": "Unauthorized"}})
        b64 = base64.b64encode(got.encode("latin-1")).decode()
        self._answer("401 Unauthorized", body.encode("latin-1"), f"X-Seen: {got}\r\nX-Seen-Encoded: {b64}\r\n")


@pytest.fixture
def stand_in():
    """mode -> the base URL of a stand-in server in that mode (stopped when the test ends)."""
    servers: list[_Server] = []

    def start(mode: str) -> str:
        s = _Server(mode)
        threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        servers.append(s)
        return f"http://127.0.0.1:{s.server_address[1]}/v1"

    yield start
    for s in servers:
        s.stopping.set()
        s.shutdown()
        s.server_close()


@pytest.fixture(scope="module", autouse=True)
def _rules_loaded():
    """Load the rule set once before the timed runs (the first load of a session builds the cache)."""
    from emblens.rules.loader import load_rules

    load_rules([])


def emblens(*args: str, env: dict | None = None):
    """The CLI in this process (no interpreter start-up in the timings), and how long it took."""
    t0 = time.monotonic()
    r = CliRunner().invoke(app, list(args), env=env)
    r.seconds = time.monotonic() - t0
    return r


def _no_traceback(r) -> None:
    assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)
    assert "Traceback" not in r.stdout + r.stderr


def _har(path: Path) -> list[dict]:
    with zipfile.ZipFile(path) as z:
        return json.loads(z.read("probe.har"))["log"]["entries"]


def _check(report: dict, check_id: str) -> dict:
    return next(c for c in report["probe"]["checks"] if c["id"] == check_id)


# -- time: one deadline for each whole exchange -----------------------------------------------------
@pytest.mark.parametrize("mode, said", [
    ("drip", "the body was still coming"),
    ("slowloris", "headers were still coming"),
    ("silent", "(no answer)"),
])
def test_probe_ends_within_its_timeout_against_a_server_that_never_finishes(stand_in, tmp_path, mode, said):
    url = stand_in(mode)
    r = emblens("probe", url, "--timeout", "2", "--out", str(tmp_path / "p.zip"), "-f", "json")
    _no_traceback(r)
    assert r.seconds < 2 + 2, f"probe took {r.seconds:.1f} s against the {mode} server"
    assert r.exit_code == 1, r.stderr      # a FAIL check: probe's exit status says so
    report = json.loads(r.stdout)
    health = _check(report, "health")
    assert health["outcome"] == "fail" and "timed out after 2 s" in health["detail"] and said in health["detail"]
    # the one line on stderr for that check, and one saying why nothing more was sent
    lines = [line for line in r.stderr.splitlines() if "timed out after 2 s" in line]
    assert any(line.startswith("emblens: FAIL health:") for line in lines), r.stderr
    assert "each further request would wait as long" in _check(report, "limit")["detail"]
    entries = _har(tmp_path / "p.zip")
    assert len(entries) == 1 and said in entries[0]["response"]["_error"]     # nothing sent after the first
    assert report["findings"][0]["rule"] == "net.timeout"


@pytest.mark.parametrize("mode", ["drip", "slowloris", "silent"])
def test_collect_url_ends_within_its_timeout_against_a_server_that_never_finishes(stand_in, tmp_path, mode):
    url = stand_in(mode)
    (tmp_path / "server.log").write_text("INFO started\n")
    # --log and --no-gpu: no search for the servers running on this machine, no nvidia-smi; the
    # time measured is the URL's
    r = emblens("collect", "--url", url, "--timeout", "3", "--log", str(tmp_path / "server.log"), "--no-gpu",
                "-o", str(tmp_path / "b.zip"), "-q")
    _no_traceback(r)
    assert r.seconds < 3 + 2, f"collect took {r.seconds:.1f} s against the {mode} server"
    assert r.exit_code == 0, r.stderr
    with zipfile.ZipFile(tmp_path / "b.zip") as z:
        manifest = json.loads(z.read("manifest.json"))
        entries = json.loads(z.read("url/exchanges.har"))["log"]["entries"]
    assert len(entries) == 1 and "timed out after 3 s" in entries[0]["response"]["_error"]
    missed = " | ".join(str(m) for m in manifest["not_collected"])
    assert "timed out after 3 s" in missed and "not sent" in missed


# -- size: headers, body and JSON depth are capped -------------------------------------------------
def test_probe_reads_deeply_nested_json_as_not_json(stand_in, tmp_path):
    url = stand_in("nested")
    r = emblens("probe", url, "--out", str(tmp_path / "p.zip"), "-f", "json")
    _no_traceback(r)
    assert r.exit_code == 1, r.stderr      # a FAIL check: probe's exit status says so
    models = _check(json.loads(r.stdout), "models")
    assert models["outcome"] == "fail" and "nested more than 64 levels deep" in models["detail"]
    assert any(line.startswith("emblens: FAIL models:") and "nested more than" in line for line in r.stderr.splitlines())
    entry = next(e for e in _har(tmp_path / "p.zip") if e["request"]["url"].endswith("/v1/models"))
    assert entry["response"]["status"] == 200 and "not read as JSON" in entry["response"]["_error"]


def test_probe_cuts_an_answer_longer_than_max_body_and_says_so(stand_in, tmp_path):
    from emblens.frontends.httprec import MAX_BODY

    url = stand_in("huge")
    r = emblens("probe", url, "--out", str(tmp_path / "p.zip"), "-f", "json")
    _no_traceback(r)
    assert r.exit_code == 1, r.stderr      # a FAIL check: probe's exit status says so
    assert "cut: the answer is longer than 256 KiB" in _check(json.loads(r.stdout), "models")["detail"]
    entry = next(e for e in _har(tmp_path / "p.zip") if e["request"]["url"].endswith("/v1/models"))
    assert entry["response"]["bodySize"] == MAX_BODY
    assert entry["response"]["_error"].startswith("cut:") and entry["response"]["content"]["comment"].startswith("cut:")


def test_probe_stops_reading_headers_past_the_caps(stand_in, tmp_path):
    url = stand_in("wide")
    r = emblens("probe", url, "--out", str(tmp_path / "p.zip"), "-f", "json")
    _no_traceback(r)
    assert r.exit_code == 1, r.stderr      # a FAIL check: probe's exit status says so
    health = _check(json.loads(r.stdout), "health")
    assert health["outcome"] == "fail" and "more than 64 KiB of status line and headers" in health["detail"]
    assert "64 KiB" in _har(tmp_path / "p.zip")[0]["response"]["_error"]


# -- masking: the key probe was given, and the URL's user-info ---------------------------------------
def _everything(r, folder: Path) -> str:
    """stdout, stderr and every file the run wrote (the members of a zip, read)."""
    texts = [r.stdout, r.stderr]
    for path in sorted(folder.iterdir()):
        if path.suffix == ".zip":
            with zipfile.ZipFile(path) as z:
                texts += [z.read(n).decode("utf-8", "replace") for n in z.namelist()]
        else:
            texts.append(path.read_text(encoding="utf-8", errors="replace"))
    return "\n".join(texts)


def _leaks(text: str, *secrets: str) -> list[str]:
    return [s for s in secrets if s in text]


@pytest.mark.parametrize("value", [KEY, f'"{KEY}"', f"'{KEY}'"], ids=["plain", "double-quoted", "single-quoted"])
def test_probe_masks_the_key_a_401_echoes_in_its_body_and_headers(stand_in, tmp_path, value):
    url = stand_in("echo401").replace("http://", f"http://ops:{PASSWORD}@")
    out = tmp_path / "out"
    out.mkdir()
    r = emblens("probe", url, "--api-key-env", "MY_KEY", "--out", str(out / "p.zip"), "-o", str(out / "r.json"),
                "-o", str(out / "r.md"), "-o", str(out / "r.html"), "-o", "-", env={"MY_KEY": value})
    _no_traceback(r)
    assert r.exit_code == 1, r.stderr      # a FAIL check: probe's exit status says so
    everything = _everything(r, out)
    sent_b64 = base64.b64encode(value.encode()).decode()       # what the stand-in echoes, encoded
    assert _leaks(everything, KEY, KEY_B64, KEY_B64.rstrip("="), sent_b64.rstrip("="), PASSWORD) == []
    # what was echoed is there, masked: the rules still see a 401 with a key of this shape
    seen = [h["value"] for e in _har(out / "p.zip") for h in e["response"]["headers"] if h["name"] == "X-Seen" and h["value"]]
    assert seen and all("<key: " in v for v in seen)
    assert json.loads((out / "r.json").read_text())["findings"][0]["rule"] == "auth.invalid_key"


def test_probe_refuses_a_key_with_a_line_break_in_one_line_without_showing_it(stand_in):
    url = stand_in("echo401")
    r = emblens("probe", url, "--api-key-env", "MY_KEY", env={"MY_KEY": f"{KEY[:10]}\n{KEY[10:]}"})
    _no_traceback(r)
    assert r.exit_code == 2
    assert len(r.stderr.strip().splitlines()) == 1 and r.stderr.startswith("emblens: error: ")
    assert "MY_KEY" in r.stderr and _leaks(r.stdout + r.stderr, KEY[:10], KEY[10:]) == []


def test_probe_api_key_env_given_the_key_itself_does_not_show_it(stand_in):
    r = emblens("probe", stand_in("echo401"), "--api-key-env", f"sk-{KEY}")
    _no_traceback(r)
    assert r.exit_code == 2 and len(r.stderr.strip().splitlines()) == 1 and "name of the variable" in r.stderr
    assert _leaks(r.stdout + r.stderr, KEY) == []


def test_probe_dry_run_shows_no_password_of_the_url():
    r = emblens("probe", f"http://ops:{PASSWORD}@127.0.0.1:9/v1", "--dry-run", "--model", "m")
    _no_traceback(r)
    assert r.exit_code == 0 and "nothing is sent" in r.stdout
    assert _leaks(r.stdout + r.stderr, PASSWORD) == []
    assert "http://127.0.0.1:9/v1/models" in r.stdout
