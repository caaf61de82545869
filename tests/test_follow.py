"""`emblens analyze --follow`: a finding printed within 2 s of its lines being appended, memory
flat while a million routine lines go by, rotation said, the -o reports written on Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

START = ("INFO 11-20 09:00:00 [api_server.py:1880] vLLM API server version 0.11.0\n"
         "INFO 11-20 09:00:01 [api_server.py:1881] args: Namespace(model='Qwen/Qwen3-Embedding-0.6B', "
         "served_model_name=['emb'], port=8000)\n")
OK = 'INFO:     127.0.0.1:5000 - "POST /v1/embeddings HTTP/1.1" 200 OK\n'
METRICS = ("INFO 11-20 09:{m:02d}:05 [loggers.py:123] Engine 000: Avg prompt throughput: 10.0 tokens/s, Avg generation "
           "throughput: 0.0 tokens/s, Running: 1 reqs, Waiting: 0 reqs, GPU KV cache usage: 1.0%, Prefix cache hit rate: 0.0%\n")
INCIDENT = ('INFO:     127.0.0.1:5001 - "POST /v1/embeddings HTTP/1.1" 404 Not Found\n'
            "ERROR 11-20 09:40:00 [serving_embedding.py:120] Error with model error=ErrorInfo(message='The model "
            "`qwen3-embed` does not exist.', type='NotFoundError', param=None, code=404)\n")


def _rss_mib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) // 1024 for line in f if line.startswith("VmRSS"))


def _start(*args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "emblens", "analyze", "--follow", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, **kw)


def _lines_within(p: subprocess.Popen, seconds: float, want: int = 1) -> list[bytes]:
    """The lines p printed on stdout within `seconds`, as soon as `want` of them are there."""
    os.set_blocking(p.stdout.fileno(), False)
    got, end = b"", time.monotonic() + seconds
    while time.monotonic() < end and got.count(b"\n") < want:
        got += p.stdout.read() or b""
        time.sleep(0.02)
    return got.splitlines()


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads memory from /proc")
def test_a_finding_appears_within_2_s_and_memory_stays_flat_over_a_million_routine_lines(tmp_path):
    log = tmp_path / "server.log"
    log.write_text(START, encoding="utf-8")
    report = tmp_path / "report.json"
    p = _start(str(log), "-f", "json", "-o", str(report), "-q")
    try:
        time.sleep(1.5)              # started and following
        rss = []
        with open(log, "a", encoding="utf-8") as f:
            for minute in range(10):                  # 10 x 100,000 routine lines: access lines and metrics
                f.write((METRICS.format(m=minute) + OK * 999) * 100)
                f.flush()
                time.sleep(0.3)
                rss.append(_rss_mib(p.pid))
            time.sleep(1.0)                           # every routine line read
            rss.append(_rss_mib(p.pid))
            assert _lines_within(p, 0.1) == []        # nothing to say about routine lines
            f.write(INCIDENT)
            f.flush()
            t0 = time.monotonic()
        lines = _lines_within(p, 2.0)
        latency = time.monotonic() - t0
        assert lines, "no finding within 2 s"
        first = json.loads(lines[0])
        assert first["rule"] == "model.not_found" and first["again"] is False, first
        assert "qwen3-embed" in first["summary"] and latency < 2.0
        assert first["evidence"][0]["line"] > 1_000_000          # lines are numbered in the whole file
        # flat: no growth with the lines read. The first readings hold the reader's warm-up (polars' pools, the
        # first whole chunks: at most MAX_CHUNK bytes a poll, and on a slower machine it falls behind and reads
        # whole chunks, so when the early peak comes moves with the machine); over the last 400,000 lines and the
        # settled reading after them memory stays within 30 MiB, and no reading passes a bound
        late = rss[-5:]
        assert max(late) - min(late) < 30 and late[-1] <= max(rss[:-1]), rss
        assert max(rss) < 400, rss
    finally:
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=30)
    assert p.returncode == 0, err
    assert b"Traceback" not in err
    written = json.loads(report.read_text(encoding="utf-8"))
    assert written["findings"][0]["rule"] == "model.not_found"
    assert written["traffic"]["requests"] >= 999_000 + 1    # every routine request was counted


def test_standard_input_until_it_ends_and_text_lines(tmp_path):
    r = subprocess.run([sys.executable, "-m", "emblens", "analyze", "--follow", "-", "--fail-on", "error"],
                       input=(START + OK * 10 + INCIDENT).encode(), capture_output=True, timeout=60)
    lines = r.stdout.decode().splitlines()
    assert r.returncode == 1                                 # --fail-on as for analyze
    assert len(lines) == 1 and " ROOT CAUSE model.not_found (error, " in lines[0] and lines[0].endswith("[stdin:13]")
    assert "input ended: 1 finding(s)" in r.stderr.decode()


def test_a_truncated_file_is_read_again_from_its_start_and_said(tmp_path):
    log = tmp_path / "server.log"
    log.write_text(START + OK * 100, encoding="utf-8")
    p = _start(str(log), "-q")
    try:
        time.sleep(1.5)
        log.write_text(START, encoding="utf-8")             # truncated, as copytruncate rotation does
        time.sleep(1.0)
        with open(log, "a", encoding="utf-8") as f:
            f.write(INCIDENT)
        lines = _lines_within(p, 3.0)
        assert lines and b"model.not_found" in lines[0]
        assert lines[0].endswith((f"[{log}:3]".encode(), f"[{log}:4]".encode()))     # numbered in the new file
    finally:
        p.send_signal(signal.SIGINT)
        _out, err = p.communicate(timeout=30)
    assert b"was truncated or replaced: reading it again from its start" in err


@pytest.mark.parametrize("args, says", [
    (["{tmp}"], "--follow reads files that grow (or - for standard input), not a folder"),
    (["{tmp}/missing.log"], "no such file"),
    (["{tmp}/server.log", "-f", "html"], "--follow prints findings as text or JSON lines, not html"),
])
def test_what_cannot_be_followed_is_one_line_and_exit_2(tmp_path, args, says):
    (tmp_path / "server.log").write_text(START, encoding="utf-8")
    r = subprocess.run([sys.executable, "-m", "emblens", "analyze", "--follow", *(a.format(tmp=tmp_path) for a in args)],
                       capture_output=True, timeout=60)
    err = r.stderr.decode()
    assert r.returncode == 2 and err.count("\n") == 1 and says in err, err


def test_a_binary_file_beside_a_log_is_said_once_and_the_log_still_followed(tmp_path):
    (tmp_path / "core.bin").write_bytes(b"\x00\x01\x02\xff" * 4096)
    log = tmp_path / "server.log"
    log.write_text(START, encoding="utf-8")
    p = _start(str(tmp_path / "core.bin"), str(log), "-q")
    try:
        time.sleep(1.5)
        with open(log, "a", encoding="utf-8") as f:
            f.write(INCIDENT)
        lines = _lines_within(p, 3.0)
        assert lines and b"model.not_found" in lines[0]
    finally:
        p.send_signal(signal.SIGINT)
        _out, err = p.communicate(timeout=30)
    assert err.count(b"core.bin: cannot be followed: binary file") == 1, err
