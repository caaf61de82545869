"""Analyses in one process leak nothing into each other: each run keeps its own masking (the
user's patterns and the tally), regex budget, clock and rule selection, so two analyses on two
threads, or one after another, give exactly what each gives alone. A fleet runs many in one
process; the live addon runs beside `analyze` in tests and tools."""

from __future__ import annotations

import threading
from pathlib import Path

import polars as pl

from emblens import analyze, load_events
from emblens.report import to_json

SECRET = "ACME-7d1f9a3c2b"


def _server_log(path: Path, lines: int) -> Path:
    """A vLLM log with a tenant token only the user's own pattern knows, 401s, a 404 for a model
    and enough routine lines that reading it takes a while (so two runs overlap)."""
    head = [
        "INFO 11-20 09:14:01 [api_server.py:1880] vLLM API server version 0.11.0",
        "INFO 11-20 09:14:02 [utils.py:233] non-default args: {'model': '/models/Qwen3-Embedding-4B', "
        "'served_model_name': ['Qwen3-Embedding-4B'], 'api_key': ['sk-server-key-abcdefghijkl']}",
        "INFO 11-20 09:14:30 [launcher.py:44] Route: /v1/embeddings, Methods: POST",
        "INFO:     Application startup complete.",
    ]
    body = []
    for i in range(lines):
        s = i % 60
        body.append(f'INFO 11-20 09:{15 + i // 6000:02d}:{s:02d} [logger.py:71] tenant {SECRET} request embd-{i} received')
        body.append('INFO:     10.0.3.7:51422 - "POST /v1/embeddings HTTP/1.1" 200 OK')
        if i % 500 == 0:
            body.append(f"ERROR 11-20 09:{15 + i // 6000:02d}:{s:02d} [serving.py:120] tenant {SECRET} quota lookup failed")
            body.append('INFO:     10.0.3.7:51422 - "POST /v1/embeddings HTTP/1.1" 401 Unauthorized')
            body.append('INFO:     10.0.3.9:40110 - "POST /v1/embeddings HTTP/1.1" 404 Not Found')
    path.write_text("\n".join(head + body) + "\n", encoding="utf-8")
    return path


def _both(first, second):
    """Run two calls at once (released together by a barrier); their results in order."""
    out: list = [None, None]
    errors: list = []
    barrier = threading.Barrier(2)

    def go(i, call):
        try:
            barrier.wait()
            out[i] = call()
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=go, args=(i, c)) for i, c in enumerate((first, second))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    return out


def test_two_threads_keep_their_own_redaction_patterns_and_tallies(tmp_path):
    patterns = tmp_path / "mine.txt"
    patterns.write_text(r"tenant (ACME-[0-9a-f]+)" + "\n", encoding="utf-8")
    a = _server_log(tmp_path / "a.log", 12_000)    # some 40,000 lines: reading takes long enough that the runs overlap
    b = _server_log(tmp_path / "b.log", 12_000)
    alone_a, _, _ = load_events([a], redact_patterns=str(patterns))
    alone_b, _, _ = load_events([b])
    assert not alone_a["text"].str.contains(SECRET, literal=True).any()
    assert alone_b["text"].str.contains(SECRET, literal=True).sum() == 12_024
    for _ in range(3):
        (ea, _, _), (eb, _, _) = _both(lambda: load_events([a], redact_patterns=str(patterns)), lambda: load_events([b]))
        leaked = ea.filter(pl.col("text").str.contains(SECRET, literal=True)).height
        assert leaked == 0, f"{leaked} row(s) of the run with --redact hold the secret"
        assert ea.equals(alone_a) and eb.equals(alone_b)


def test_two_threads_keep_their_own_clock_selection_and_masked_counts(tmp_path):
    patterns = tmp_path / "mine.txt"
    patterns.write_text(r"tenant (ACME-[0-9a-f]+)" + "\n", encoding="utf-8")
    log = _server_log(tmp_path / "vllm.log", 20_000)
    one = dict(tz="Europe/Berlin", select=["auth"], redact_patterns=str(patterns), year=2025)
    two = dict(tz="America/New_York", select=["model"], year=2024)
    alone = [to_json(analyze([log], **one)), to_json(analyze([log], **two))]
    assert '"auth.' in alone[0] and '"model.' not in alone[0] and '"model.not_found"' in alone[1]
    assert "your pattern" in alone[0] and "your pattern" not in alone[1]
    assert "2025-11-20T08:" in alone[0] and "2024-11-20T14:" in alone[1]
    for _ in range(3):
        together = _both(lambda: to_json(analyze([log], **one)), lambda: to_json(analyze([log], **two)))
        assert together == alone


def test_one_after_another_each_gives_what_it_gives_alone(tmp_path):
    patterns = tmp_path / "mine.txt"
    patterns.write_text(r"tenant (ACME-[0-9a-f]+)" + "\n", encoding="utf-8")
    log = _server_log(tmp_path / "vllm.log", 2_000)
    masked = to_json(analyze([log], redact_patterns=str(patterns)))
    plain = to_json(analyze([log]))
    assert "your pattern" in masked and SECRET not in masked
    assert "your pattern" not in plain and SECRET in plain
    assert to_json(analyze([log], redact_patterns=str(patterns))) == masked
    assert to_json(analyze([log])) == plain
    events, _, _ = load_events([log])
    assert events["text"].str.contains(SECRET, literal=True).sum() == 2_004
