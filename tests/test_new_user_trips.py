"""What a new user trips on (issue 26): nothing read must not look like nothing found; emblens's
own requests are not a client's; a start-up error or an early Ctrl-C costs neither a traceback nor
the last report; one request's cause does not explain another's failure. (A server started from a
folder named `emblens` is found by collect: tests/test_collect_probe.py.)"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "samples" / "tools"))
from localnet import free_port


def emblens(*args: str, stdin: bytes | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "emblens", *args], input=stdin, capture_output=True, timeout=timeout)


@pytest.mark.parametrize("make", ["empty folder", "empty file", "binary file", "empty stdin"])
def test_nothing_readable_is_one_line_and_exit_2_even_with_fail_on_info(tmp_path, make):
    stdin = None
    if make == "empty folder":
        target = tmp_path / "bundle"
        target.mkdir()
    elif make == "empty file":
        target = tmp_path / "server.log"
        target.write_bytes(b"")
    elif make == "binary file":
        target = tmp_path / "dump.bin"
        target.write_bytes(b"\x00\x01\x02\xff" * 64)
    else:
        target, stdin = "-", b""
    r = emblens("analyze", str(target), "--fail-on", "info", stdin=stdin)
    err = r.stderr.decode()
    assert r.returncode == 2, (r.returncode, r.stdout[:300], err)
    assert err.count("\n") == 1 and err.startswith("emblens: error: nothing could be read in ")
    assert "Traceback" not in err and r.stdout == b""


def test_a_readable_input_beside_an_unreadable_one_is_still_analysed(tmp_path):
    (tmp_path / "empty.log").write_bytes(b"")
    (tmp_path / "client.txt").write_text("openai.APIConnectionError: Connection error.\n"
                                         "httpx.ConnectError: [Errno 111] Connection refused\n", encoding="utf-8")
    r = emblens("analyze", str(tmp_path / "empty.log"), str(tmp_path / "client.txt"))
    assert r.returncode == 0 and b"net.connection_refused" in r.stdout and b"skipped" in r.stdout


needs_mitmdump = pytest.mark.skipif(not (Path(sys.executable).parent / "mitmdump").exists(),
                                    reason="mitmdump is not installed next to this Python")


@needs_mitmdump
def test_a_start_up_typo_in_the_addon_keeps_the_last_report(tmp_path):
    report = tmp_path / "emblens-report.md"
    report.write_text("# emblens report\n\nthe incident of yesterday\n", encoding="utf-8")
    addon = subprocess.run([sys.executable, "-m", "emblens", "addon-path"], capture_output=True, text=True).stdout.strip()
    r = subprocess.run([str(Path(sys.executable).parent / "mitmdump"), "-s", addon, "--mode", "reverse:http://127.0.0.1:9",
                        "--listen-host", "127.0.0.1", "-p", str(free_port()), "--set", "emblens_intervl=5"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "no such option (did you mean emblens_interval?)" in r.stdout + r.stderr
    assert report.read_text(encoding="utf-8") == "# emblens report\n\nthe incident of yesterday\n"
    assert "is kept as it was" in r.stdout + r.stderr


@needs_mitmdump
def test_ctrl_c_while_live_starts_is_one_line_not_a_traceback(tmp_path, delay=0.4):
    report = tmp_path / "r.md"
    report.write_text("kept\n", encoding="utf-8")
    # the terminal's Ctrl-C: SIGINT to the whole process group, while mitmdump is still importing
    proc = subprocess.Popen([sys.executable, "-m", "emblens", "live", "--upstream", "http://127.0.0.1:9", "--port",
                             str(free_port()), "--report", str(report), "--json", str(tmp_path / "r.json")],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    time.sleep(delay)
    os.killpg(proc.pid, signal.SIGINT)
    try:
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    text = out.decode("utf-8", "replace")
    assert "Traceback" not in text and "KeyboardInterrupt" not in text, text
    assert proc.returncode in (0, 130), (proc.returncode, text)
    if proc.returncode == 130:        # stopped before it listened: nothing seen, nothing replaced
        assert report.read_text(encoding="utf-8") == "kept\n"


@pytest.fixture
def keyed_server():
    """The stand-in server, requiring `Bearer s3cret-demo-key`; yields its base URL."""
    repo = Path(__file__).resolve().parents[1]
    from localnet import wait_port

    port = free_port()
    proc = subprocess.Popen([sys.executable, str(repo / "samples/tools/mock_server.py"), str(port), "auth+model"],
                            stderr=subprocess.DEVNULL)
    wait_port(port, timeout=20)
    yield f"http://127.0.0.1:{port}/v1"
    proc.terminate()
    proc.wait(timeout=10)


@pytest.mark.parametrize("key", [None, "s3cret-demo-key"])
def test_collect_url_never_blames_the_client_for_emblens_own_requests(tmp_path, keyed_server, key):
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    if key:
        env["OPENAI_API_KEY"] = key        # read as a client reads it, without --api-key-env
    bundle = tmp_path / "b.zip"
    r = subprocess.run([sys.executable, "-m", "emblens", "collect", "--url", keyed_server, "--no-gpu", "--log",
                        str(tmp_path / "none.log"), "-o", str(bundle)], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    a = subprocess.run([sys.executable, "-m", "emblens", "analyze", str(bundle), "-f", "json"], capture_output=True,
                       text=True, timeout=120)
    import json

    rules = [f["rule"] for f in json.loads(a.stdout)["findings"]]
    assert not [x for x in rules if x.startswith("auth.")], rules
    with zipfile.ZipFile(bundle) as z:
        har = json.loads(z.read("url/exchanges.har"))
    statuses = {e["request"]["url"].rsplit("/", 1)[-1]: e["response"]["status"] for e in har["log"]["entries"]}
    # with the key from OPENAI_API_KEY the server lists its models; without one it refuses, on purpose
    assert statuses["models"] == (200 if key else 401)
    assert key is None or key not in json.dumps(har)


def test_one_requests_cause_never_explains_another_requests_failure(tmp_path):
    """A capture of two requests: one sent its key as X-API-Key, the other a wrong Bearer key.
    Each is its own failure; the second is not a symptom of the first."""
    from emblens.diagnose import analyze
    from emblens.rules import builtin_dir

    flows = tmp_path / "session.flow"
    flows.write_bytes((builtin_dir() / "auth/header_scheme.pos-x-api-key.flow").read_bytes()
                      + (builtin_dir() / "auth/invalid_key.pos-openai1.109.flow").read_bytes())
    found = {f.rule: f for f in analyze([str(flows)]).findings}
    assert {"auth.header_scheme", "auth.invalid_key"} <= set(found)
    assert found["auth.invalid_key"].explained_by is None and found["auth.invalid_key"].role != "symptom"
    # the same request's own failures are still linked: its X-API-Key 401 is one failure, explained once
    alone = tmp_path / "one.flow"
    alone.write_bytes((builtin_dir() / "auth/header_scheme.pos-x-api-key.flow").read_bytes())
    one = analyze([str(alone)]).findings
    assert one[0].rule == "auth.header_scheme" and all(f.explained_by in (None, "auth.header_scheme") for f in one)


# -- the lesser ones: counts, windows, code ------------------------------------------------------------

CURL_404 = """\
$ curl -v http://127.0.0.1:8000/v1/embedding -H "Content-Type: application/json" -d '{"model": "emb", "input": "hello"}'
*   Trying 127.0.0.1:8000...
* Connected to 127.0.0.1 (127.0.0.1) port 8000
> POST /v1/embedding HTTP/1.1
> Host: 127.0.0.1:8000
> User-Agent: curl/8.5.0
> Accept: */*
> Content-Type: application/json
> Content-Length: 34
>
< HTTP/1.1 404 Not Found
< date: Thu, 20 Nov 2025 09:14:03 GMT
< server: uvicorn
< content-length: 22
< content-type: application/json
<
{"detail":"Not Found"}
* Connection #0 to host 127.0.0.1 left intact
"""
SERVER_LOG = """\
INFO 11-20 09:13:50 [api_server.py:1880] vLLM API server version 0.11.0
INFO 11-20 09:13:51 [api_server.py:1881] args: Namespace(model='Qwen/Qwen3-Embedding-0.6B', served_model_name=['emb'], port=8000)
INFO:     Started server process [100]
INFO:     Uvicorn running on http://0.0.0.0:8000 (Press CTRL+C to quit)
INFO:     127.0.0.1:51234 - "GET /v1/models HTTP/1.1" 200 OK
INFO:     127.0.0.1:51240 - "POST /v1/embedding HTTP/1.1" 404 Not Found
"""


def _analyze(paths, **options):
    from emblens.diagnose import analyze
    from emblens.report import to_dict

    return to_dict(analyze([str(p) for p in paths], **options))


def test_a_request_in_a_curl_transcript_and_in_the_server_log_is_one_request(tmp_path):
    (tmp_path / "curl.txt").write_text(CURL_404, encoding="utf-8")
    (tmp_path / "server.log").write_text(SERVER_LOG, encoding="utf-8")
    report = _analyze([tmp_path], year=2025)
    assert report["traffic"]["requests"] == 2 and report["traffic"]["by_status"] == {"200": 1, "404": 1}
    top = report["findings"][0]
    assert top["rule"] == "http.wrong_path" and top["count"] == 1
    assert top["requests"] == {"matched": 1, "seen": 2}
    assert top["summary"].startswith("1 request(s) hit a path")
    # both ends of it are still shown
    assert {(e["source"], e["line"]) for e in top["evidence"]} >= {("server.log", 6), ("curl.txt", 4)}


def test_since_and_until_bound_the_request_totals(tmp_path):
    lines = ["INFO 11-20 09:00:00 [api_server.py:1880] vLLM API server version 0.11.0",
             "INFO 11-20 09:00:01 [api_server.py:1881] args: Namespace(model='m', served_model_name=['emb'], port=8000)"]
    for minute in range(30):
        lines.append(f"INFO 11-20 09:{minute:02d}:05 [loggers.py:123] Engine 000: Avg prompt throughput: 10.0 tokens/s, "
                     "Avg generation throughput: 0.0 tokens/s, Running: 1 reqs, Waiting: 0 reqs, GPU KV cache usage: "
                     f"{minute}.0%, Prefix cache hit rate: 0.0%")
        lines += ['INFO:     127.0.0.1:5000 - "POST /v1/embeddings HTTP/1.1" 200 OK'] * 10
        if minute >= 20:
            lines.append('INFO:     127.0.0.1:5000 - "POST /v1/embeddings HTTP/1.1" 404 Not Found')
    (tmp_path / "server.log").write_text("\n".join(lines) + "\n", encoding="utf-8")
    from datetime import datetime

    whole = _analyze([tmp_path], year=2025)
    assert whole["traffic"]["requests"] == 310
    late = _analyze([tmp_path], year=2025, since=datetime(2025, 11, 20, 9, 25))
    assert late["traffic"]["requests"] == 55 and late["traffic"]["by_status"] == {"200": 50, "404": 5}
    assert late["findings"][0]["requests"] == {"matched": 5, "seen": 55}
    assert late["traffic"]["kv_cache_max_pct"] == 29.0
    early = _analyze([tmp_path], year=2025, until=datetime(2025, 11, 20, 9, 9, 59))
    assert early["traffic"]["requests"] == 100 and early["traffic"]["kv_cache_max_pct"] == 9.0


CLIENT_PY = '''\
import os
import time

from openai import OpenAI, APIConnectionError, AuthenticationError, NotFoundError

os.environ["OPENAI_BASE_URL"] = "http://localhost:8000/v1"
client = OpenAI(api_key=os.environ.get("OPENAI_API_KEY", "EMPTY"), timeout=30)


def embed(texts):
    for attempt in range(5):
        try:
            return client.embeddings.create(model="emb", input=texts)
        except AuthenticationError:
            raise SystemExit("401 Unauthorized: Incorrect API key provided")
        except NotFoundError as e:
            print("404 Not Found: The model does not exist. Did you pass --served-model-name?", e)
            raise
        except APIConnectionError:
            print("Connection error. [Errno 111] Connection refused: is vLLM running on port 8000?")
            time.sleep(1)
    raise RuntimeError("CUDA out of memory? the server kept failing")
'''


def test_python_source_in_a_bundle_is_code_not_a_log(tmp_path):
    (tmp_path / "client.py").write_text(CLIENT_PY, encoding="utf-8")
    (tmp_path / "script").write_text(CLIENT_PY, encoding="utf-8")      # no extension: told by its content
    report = _analyze([tmp_path])
    assert report["findings"] == [] and report["unexplained"] == []
    kinds = {i["source"]: i for i in report["inputs"]}
    for name in ("client.py", "script"):
        assert kinds[name]["kind"].startswith("python-source") and kinds[name]["unparsed"] == 0
        assert kinds[name]["events"] == 1                               # its base URL, as a paste's would be
    # a code block in a paste is still read with the paste's prose
    (tmp_path / "issue.md").write_text("My client:\n```python\n" + CLIENT_PY + "```\nand it prints\n```\n"
                                       "openai.APIConnectionError: Connection error.\n"
                                       "httpx.ConnectError: [Errno 111] Connection refused\n```\n", encoding="utf-8")
    assert any(f["rule"] == "net.connection_refused" for f in _analyze([tmp_path / "issue.md"])["findings"])


def test_a_fix_never_quotes_a_model_nobody_asked_for(tmp_path):
    lines = ["INFO 11-20 09:00:01 [api_server.py:1881] args: Namespace(model='m', served_model_name=['emb'], port=8000)"]
    lines += ['INFO:     127.0.0.1:5000 - "POST /v1/embeddings HTTP/1.1" 404 Not Found'] * 50
    (tmp_path / "server.log").write_text("\n".join(lines) + "\n", encoding="utf-8")
    top = _analyze([tmp_path])["findings"][0]
    assert top["rule"] == "model.not_found"
    assert 'model="emb"' in top["remedy"] and "unknown" not in top["remedy"], top["remedy"]
