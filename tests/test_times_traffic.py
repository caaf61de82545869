"""Times and traffic in the reports: access lines counted by minute and status over chunk
boundaries, rates against the traffic seen, raw stamps when the year stays unknown, --tz, and
the notes on sources far apart in time or with offset clocks."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import polars as pl
import pytest
from typer.testing import CliRunner

from emblens.combiners.time import span_notes
from emblens.diagnose import analyze, load_events
from emblens.frontends.cli import app
from emblens.reading.context import CHUNK_BYTES

PREFIX = "(APIServer pid=7) "


def busy_log(path, minutes: int, per_stamp: int = 100, stamps_per_minute: int = 6) -> dict:
    """A vLLM 0.11 log: a metrics line every 10 s, `per_stamp` access lines after each, the last
    of them a 404 (so a 404 sits just before the next stamp, where a chunk may begin)."""
    lines, expect = [], {"requests": 0, "404": []}
    t0 = datetime(2025, 11, 20, 9, 0, 0)
    for m in range(minutes):
        for k in range(stamps_per_minute):
            t = t0 + timedelta(minutes=m, seconds=10 * k)
            lines.append(f"{PREFIX}INFO {t:%m-%d %H:%M:%S} [loggers.py:123] Engine 000: Avg prompt throughput: 10.0 "
                         f"tokens/s, Avg generation throughput: 0.0 tokens/s, Running: 1 reqs, Waiting: 0 reqs, "
                         f"GPU KV cache usage: {m % 50 + k}.5%, Prefix cache hit rate: 1.0%")
            for i in range(per_stamp - 1):
                lines.append(f'{PREFIX}INFO:     10.0.3.{i % 250}:4{i:04d} - "POST /v1/embeddings HTTP/1.1" 200 OK')
            lines.append(f'{PREFIX}INFO:     10.0.3.9:50000 - "POST /v1/embeddings HTTP/1.1" 404 Not Found')
            expect["404"].append((len(lines), t))
            expect["requests"] += per_stamp
    path.write_text("\n".join(lines) + "\n")
    return expect


def test_access_lines_are_counted_by_minute_over_chunk_boundaries_and_take_the_last_stamp(tmp_path):
    log = tmp_path / "vllm.log"
    expect = busy_log(log, minutes=330)
    assert log.stat().st_size > 2 * CHUNK_BYTES      # several chunks, read on the worker threads
    a = analyze([log], year=2025)
    assert a.traffic.total() == expect["requests"]
    per_minute = a.traffic.per_minute()
    assert per_minute.filter(pl.col("class") == "2xx")["requests"].to_list() == [594] * 330
    assert per_minute.filter(pl.col("class") == "4xx")["requests"].to_list() == [6] * 330
    assert a.traffic.kv["kv"].max() == 54.5 and a.traffic.kv.height == 330
    # every 404 (each the last line before a stamp, so some begin a chunk) has the stamp before it
    events, _, _ = load_events([log], year=2025, keep_all=True)
    assert events.filter(pl.col("http_status") == 404).select("line", "ts").rows() == expect["404"]
    # analyze keeps the first and last five as lines, and counts the rest by minute
    kept = a.events.filter(pl.col("http_status") == 404)
    assert kept["repeat"].fill_null(1).sum() == len(expect["404"]) and kept.height <= 330 + 10
    assert kept.head(5).select("line", "ts").rows() == expect["404"][:5]
    assert kept.tail(5).select("line", "ts").rows() == expect["404"][-5:]
    f = a.findings[0] if a.findings else None
    assert f is None or f.requests_seen in (None, expect["requests"])


def test_a_finding_on_access_lines_says_how_many_of_the_requests_it_matched(tmp_path):
    log = tmp_path / "vllm.log"
    lines = [f"{PREFIX}INFO 11-20 09:14:02 [api_server.py:1839] vLLM API server version 0.11.0",
             f"{PREFIX}INFO 11-20 09:14:02 [utils.py:233] non-default args: {{'api_key': ['***'], 'port': 8000}}",
             f"{PREFIX}INFO 11-20 09:14:41 [loggers.py:123] Engine 000: Avg prompt throughput: 1.0 tokens/s"]
    lines += [f'{PREFIX}INFO:     10.0.3.{i % 200}:40000 - "POST /v1/embeddings HTTP/1.1" 200 OK' for i in range(1997)]
    lines += [f'{PREFIX}INFO:     10.0.3.7:40000 - "POST /v1/embeddings HTTP/1.1" 401 Unauthorized'] * 3
    log.write_text("\n".join(lines) + "\n")
    result = CliRunner().invoke(app, ["analyze", str(log), "--format", "json"])
    report = json.loads(result.stdout)
    top = report["findings"][0]
    assert top["rule"].startswith("auth.") and top["requests"] == {"matched": 3, "seen": 2000}
    assert report["traffic"]["requests"] == 2000 and report["traffic"]["by_status"] == {"200": 1997, "401": 3}
    text = CliRunner().invoke(app, ["analyze", str(log)]).stdout
    assert "matched 3 of 2,000 requests (0.15%)" in text
    md = CliRunner().invoke(app, ["analyze", str(log), "--format", "markdown"]).stdout
    assert "3 of 2,000 requests (0.15%)" in md


def test_without_any_year_the_timeline_shows_the_stamp_as_written():
    log = ("INFO 11-20 09:14:02 [api_server.py:1] vLLM API server version 0.11.0\n"
           "ERROR 11-20 09:15:00 [core.py:1] torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB. "
           "GPU 0 has a total capacity of 23.68 GiB of which 1.00 GiB is free.\n")
    result = CliRunner().invoke(app, ["analyze", "-", "--format", "json"], input=log)   # stdin: no file time
    report = json.loads(result.stdout)
    row = next(r for r in report["timeline"] if r["rule"])
    assert row["ts"] is None and row["stamp"] == "11-20 09:15:00"
    text = CliRunner().invoke(app, ["analyze", "-"], input=log).stdout
    assert "11-20 09:15:00 (year unknown)" in text and "time unknown" not in text.split("Timeline")[1].split("\n")[2]


def test_tz_moves_server_stamps_to_utc_and_leaves_zoned_times_alone(tmp_path):
    log = tmp_path / "vllm.log"
    log.write_text("ERROR 07-01 12:00:00 [core.py:1] torch.OutOfMemoryError: CUDA out of memory. Tried to allocate "
                   "2.00 GiB. GPU 0 has a total capacity of 23.68 GiB of which 1.00 GiB is free.\n")
    (tmp_path / "k.log").write_text("2025-07-01T12:00:00Z ERROR something failed\n")
    events, _, _ = load_events([tmp_path], year=2025, tz="Europe/Berlin")
    ts = dict(events.select("source", "ts").rows())
    assert ts[str(log)] == datetime(2025, 7, 1, 10, 0)               # CEST is UTC+2 in July
    report = json.loads(CliRunner().invoke(app, ["analyze", str(log), "--year", "2025", "--tz", "America/New_York",
                                                  "--format", "json"]).stdout)
    assert report["findings"][0]["first_seen"] == "2025-07-01T16:00:00Z"
    bad = CliRunner().invoke(app, ["analyze", str(log), "--tz", "Mars/Olympus"])
    assert bad.exit_code == 2 and "unknown time zone 'Mars/Olympus'" in bad.output


def _http(source, origin, times, status=401):
    return pl.DataFrame({"source": [source] * len(times), "ts": times, "origin": [origin] * len(times),
                         "kind": ["http"] * len(times), "http_status": [status] * len(times)},
                        schema={"source": pl.String, "ts": pl.Datetime("us"), "origin": pl.String, "kind": pl.String,
                                "http_status": pl.Int64})


def test_span_notes_name_sources_days_apart_and_a_whole_hour_clock_offset():
    t = datetime(2025, 11, 20, 9, 0)
    apart = pl.concat([_http("server.log", "vllm", [t, t + timedelta(minutes=5)]),
                       _http("capture.har", "capture", [t + timedelta(days=2), t + timedelta(days=2, minutes=1)])])
    notes = span_notes(apart)
    assert len(notes) == 1 and notes[0].startswith("server.log ends 1 d 23 h before capture.har begins")
    # the same three 401s, the server's clock two hours ahead (a log in CEST beside a UTC capture)
    calls = [t, t + timedelta(seconds=40), t + timedelta(minutes=3)]
    offset = pl.concat([_http("capture.flow", "capture", calls),
                        _http("server.log", "vllm", [c + timedelta(hours=2, seconds=1) for c in calls])])
    notes = span_notes(offset)
    assert any("server.log runs 2 h ahead of capture.flow" in n and "--tz" in n for n in notes)
    same = pl.concat([_http("capture.flow", "capture", calls), _http("server.log", "vllm", calls)])
    assert span_notes(same) == []


def test_routine_lines_are_counted_not_kept_and_events_still_lists_every_line(tmp_path):
    """2xx access lines and metrics lines are found by literal searches and counted; the regexes run
    on the rest. A metrics line whose figures look like a status (404.2 tokens/s) is not an event."""
    log = tmp_path / "vllm.log"
    lines = [f"{PREFIX}INFO 11-20 09:14:02 [api_server.py:1839] vLLM API server version 0.11.0",
             f"{PREFIX}INFO 11-20 09:14:41 [loggers.py:123] Engine 000: Avg prompt throughput: 10.0 tokens/s, Avg "
             "generation throughput: 404.2 tokens/s, Running: 1 reqs, Waiting: 0 reqs, GPU KV cache usage: 12.5%, "
             "Prefix cache hit rate: 1.0%"]
    lines += [f'{PREFIX}INFO:     10.0.3.{i}:40000 - "POST /v1/embeddings HTTP/1.1" 200 OK' for i in range(50)]
    lines += [f'{PREFIX}INFO:     10.0.3.7:40000 - "POST /v1/embeddings HTTP/1.0" 404 Not Found',
              f"{PREFIX}INFO 11-20 09:14:42 [logger.py:43] Received request embd-1: prompt: 'GET / HTTP/1.1\" 200 OK', "
              "params: None"]
    log.write_text("\n".join(lines) + "\n")
    a = analyze([log], year=2025)
    assert a.traffic.total() == 51 and a.traffic.kv["kv"].to_list() == [12.5]     # the prompt is no request
    kept = a.events["text"].to_list()
    assert not any("Avg prompt throughput" in t or '" 200 OK' in t for t in kept if "Received request" not in t)
    assert any("404 Not Found" in t for t in kept)
    assert a.inputs[0].events + a.inputs[0].unparsed == len(lines)
    events, _, _ = load_events([log], year=2025)
    assert events.height == len(lines) and events.filter(pl.col("http_status") == 200).height == 50


def _rule(folder, text: str):
    folder.mkdir(exist_ok=True)
    (folder / "burst.yaml").write_text(text)
    return folder


BURST = """id: custom.burst
title: A burst of 404s
severity: error
confidence: 0.9
means: Many requests for a missing model in a short time.
match: {kind: http, http_status: 404}
count: {min: COUNT, within: 60s}
message: "{{ count }} request(s) to {{ http_path }} were answered 404."
remedy: ["Fix the model name."]
"""


def test_failing_requests_are_counted_by_minute_with_exact_counts_windows_and_evidence(tmp_path):
    """A server answering 404 all day: the report's count, rate, first and last times and evidence
    are those of every line, while the table holds a row a minute; `within` stays exact to the minute."""
    log = tmp_path / "vllm.log"
    lines = [f"{PREFIX}INFO 11-20 09:00:00 [api_server.py:1839] vLLM API server version 0.11.0"]
    t0 = datetime(2025, 11, 20, 9, 0, 0)
    n404 = 0
    for m in range(240):                          # four hours, a 404 every 10 s and a 200 between
        for k in range(6):
            t = t0 + timedelta(minutes=m, seconds=10 * k)
            lines.append(f"{PREFIX}INFO {t:%m-%d %H:%M:%S} [loggers.py:123] Engine 000: Avg prompt throughput: 1.0 tokens/s")
            lines.append(f'{PREFIX}INFO:     10.0.3.{k}:4000{k} - "POST /v1/embeddings HTTP/1.1" 200 OK')
            lines.append(f'{PREFIX}INFO:     10.0.{m % 4}.{k}:5000{k} - "POST /v1/embedings HTTP/1.1" 404 Not Found')
            n404 += 1
    log.write_text("\n".join(lines) + "\n")
    a = analyze([log], year=2025)
    rows = a.events.filter(pl.col("http_status") == 404)
    assert rows.height <= 240 + 10 and rows["repeat"].fill_null(1).sum() == n404
    assert a.inputs[0].events + a.inputs[0].unparsed + a.inputs[0].blank == len(lines)
    top = a.findings[0]
    assert top.rule == "http.wrong_path" and top.count == n404
    assert top.requests == n404 and top.requests_seen == 2 * n404
    assert (top.first_seen, top.last_seen) == (t0, t0 + timedelta(minutes=239, seconds=50))
    assert [e.line for e in top.evidence][:3] == [4, 7, 10]
    assert all(u.count >= 1 for u in a.unexplained)
    # a 404 every 10 s: 60 s (both ends in) hold seven. A rule with a window needs every line's time,
    # so with one loaded nothing is counted into rows; one asking for 8 does not fire, for 7 it does
    for count, fires in ((8, False), (7, True)):
        rules = _rule(tmp_path / f"rules{count}", BURST.replace("COUNT", str(count)))
        b = analyze([log], year=2025, rule_dirs=[rules])
        assert ("custom.burst" in {f.rule for f in b.findings}) is fires, count
        assert b.events.filter(pl.col("http_status") == 404).height == n404


def test_counted_failing_requests_fall_back_to_hours_past_their_limit():
    """A log whose failing requests span more minutes than the row limit: the counted rows go by
    the hour, and every line is still counted."""
    from emblens.reading.bounds import Bounded, Collapse

    minutes = 3000
    raw = [f'{PREFIX}INFO:     10.0.0.1:4000 - "POST /v1/embeddings HTTP/1.1" 404 Not Found'] * minutes
    clock = [f"11-{20 + m // 1440:02d} {m // 60 % 24:02d}:{m % 60:02d}:00" for m in range(minutes)]
    kept = pl.DataFrame({"line": range(1, minutes + 1), "raw": raw, "_rec": [True] * minutes, "_clock": clock,
                         "_status": [404] * minutes}, schema_overrides={"line": pl.Int64, "_status": pl.Int64})
    collapse, out = Collapse(1000), Bounded(100_000)
    for start in range(0, minutes, 300):
        collapse.feed(kept.slice(start, 300), out)
    collapse.flush(out)
    rows = pl.concat([*out.parts(), *collapse.rows()], how="diagonal_relaxed")
    assert rows["repeat"].fill_null(1).sum() == minutes
    assert rows.height <= 5 + 5 + 1000 and rows.height < minutes // 2
    assert rows.sort("line")["line"].head(5).to_list() == [1, 2, 3, 4, 5]


def test_a_log_of_many_days_counts_its_failing_requests_by_the_hour(tmp_path):
    """Past `COUNTED_ROWS` minutes of counted rows, a member's failing requests go by the hour: the
    memory they take stops growing with the log's time span, and the counts stay exact."""
    from emblens.reading.context import COUNTED_ROWS

    minutes = COUNTED_ROWS + 5_000
    t0 = datetime(2025, 11, 1, 0, 0, 0)
    lines = []
    for m in range(minutes):
        t = t0 + timedelta(minutes=m)
        lines.append(f"{PREFIX}INFO {t:%m-%d %H:%M:%S} [loggers.py:123] Engine 000: Avg prompt throughput: 1.0 tokens/s")
        lines.append(f'{PREFIX}INFO:     10.0.0.{m % 200}:4000 - "POST /v1/embedings HTTP/1.1" 404 Not Found')
    log = tmp_path / "vllm.log"
    log.write_text("\n".join(lines) + "\n")
    a = analyze([log], year=2025)
    rows = a.events.filter(pl.col("http_status") == 404)
    assert rows["repeat"].fill_null(1).sum() == minutes
    assert rows.height <= minutes // 60 + 2 * 10 + 2
    top = a.findings[0]
    assert top.rule == "http.wrong_path" and top.count == minutes
    assert (top.first_seen, top.last_seen) == (t0, t0 + timedelta(minutes=minutes - 1))


def _logged(t: datetime, i: int, m: int) -> list[str]:
    """What a server with request logging writes before a request's access line (FORMATS.md):
    its prompt is the user's text, here quoting failures; some seconds apart, some the same."""
    t = t + timedelta(seconds=i // 3)
    prompt = ("why does my server say CUDA out of memory" if i % 2 else "summarise: 401 Unauthorized Incorrect API key")
    if m == 11 and i == 4:
        prompt = "z" * 70_000      # past the length cap: counted as cut
    stamp = f"{PREFIX}INFO {t:%m-%d %H:%M:%S}"
    out = [f"{stamp} [logger.py:43] Received request embd-{m:04d}{i}: prompt: {prompt!r}, params: PoolingParams("
           "dimensions=None), prompt_token_ids: None, lora_request: None."]
    if i % 3 == 0:
        out += [f"{stamp} [async_llm.py:261] Added request embd-{m:04d}{i}.",
                f"{stamp} [async_llm.py:300] Finished request embd-{m:04d}{i}."]
    return out


def _mixed_server_log(path, requests: bool = False) -> None:
    """A vLLM 0.11 log with every kind of line the fast path sets apart or keeps: `200 OK` access
    lines, other 2xx and HTTP/1.0 lines, 4xx, metrics, a stamped error, a key name whose value is
    on the next line, a traceback, blank lines and a line past the length cap. `requests`: with
    request logging, each embedding request's lines before its access line (`_logged`)."""
    lines = []
    t0 = datetime(2025, 11, 20, 9, 0, 0)
    for m in range(40):
        for k in range(3):
            t = t0 + timedelta(minutes=m, seconds=20 * k)
            lines.append(f"{PREFIX}INFO {t:%m-%d %H:%M:%S} [loggers.py:123] Engine 000: Avg prompt throughput: 1.0 "
                         f"tokens/s, Running: 1 reqs, GPU KV cache usage: {m + k}.0%, Prefix cache hit rate: 1.0%")
            for i in range(7):
                lines += _logged(t, i, m) if requests else []
                lines.append(f'{PREFIX}INFO:     10.0.3.{i}:4000 - "POST /v1/embeddings HTTP/1.1" 200 OK')
            lines.append(f'{PREFIX}INFO:     10.0.3.8:4000 - "GET /v1/models HTTP/1.0" 200 OK')
            lines.append(f'{PREFIX}INFO:     10.0.3.9:4000 - "POST /v1/files HTTP/1.1" 201 Created')
            if k == 1:
                lines.append(f'{PREFIX}INFO:     10.0.3.9:4000 - "POST /v1/embeddings HTTP/1.1" 404 Not Found')
                lines.append(f'{PREFIX}INFO:     10.0.3.9:4000 - "POST /v1/embeddings HTTP/1.1" 401 Unauthorized')
        if m % 7 == 3:
            lines += [f"{PREFIX}ERROR {t:%m-%d %H:%M:%S} [serving.py:99] request failed: engine dead, api_token:",
                      "  tok-9f8e7d6c5b4a39281706",
                      f'{PREFIX}INFO:     10.0.3.1:4000 - "POST /v1/embeddings HTTP/1.1" 200 OK',
                      "", "Traceback (most recent call last):", '  File "/x/api.py", line 3, in run',
                      "RuntimeError: CUDA error: an illegal memory access was encountered"]
        if m % 7 == 5:     # a key name before a `200 OK` line: the line after that is no value
            lines += [f"{PREFIX}ERROR {t:%m-%d %H:%M:%S} [serving.py:99] retry with session_id:",
                      f'{PREFIX}INFO:     10.0.3.1:4000 - "POST /v1/embeddings HTTP/1.1" 200 OK',
                      "  abc123def456 Traceback (most recent call last):"]
        if m == 20:
            lines.append(f"{PREFIX}WARNING {t:%m-%d %H:%M:%S} [x.py:1] " + "y" * 70_000)
    path.write_text("\n".join(lines) + "\n")


def _report(a) -> dict:
    from emblens.report import to_dict
    d = to_dict(a)
    return {k: d[k] for k in ("findings", "inputs", "traffic", "timeline")}


@pytest.mark.parametrize("requests", [False, True], ids=["plain", "request-logging"])
def test_a_server_log_in_small_chunks_and_spans_gives_what_it_gives_in_one(tmp_path, monkeypatch, requests):
    """The `200 OK` lines are only counted, and the other lines of several chunks are finished
    together (`Span`): neither may change what is counted, kept or found."""
    from emblens.reading import bounds, engine
    from emblens.reading import lines as reading_lines
    monkeypatch.setattr(reading_lines, "FOLD_FROM", 0 if requests else reading_lines.FOLD_FROM)
    log = tmp_path / "vllm.log"
    _mixed_server_log(log, requests)
    whole = analyze([log], year=2025)
    whole_events, _, _ = load_events([log], year=2025, keep_all=True)
    assert whole.inputs[0].lines > 1_000 and whole.traffic.total() > 1_000 and whole.findings
    monkeypatch.setattr(engine, "CHUNK_BYTES", 2048)
    monkeypatch.setattr(bounds.Span, "LINES", 60)     # chunks of 30 other lines or fewer wait for the next
    monkeypatch.setattr(bounds.Span, "CHUNKS", 3)
    small = analyze([log], year=2025)
    assert _report(small) == _report(whole)
    small_events, _, _ = load_events([log], year=2025, keep_all=True)
    assert small_events.equals(whole_events)
    masked = whole_events.filter(pl.col("line") == whole_events.filter(
        pl.col("text").str.ends_with("api_token:"))["line"][0] + 1)["text"][0]
    assert "tok-9f8e7d6c5b4a39281706" not in masked
    assert whole_events.filter(pl.col("text") == "  abc123def456 Traceback (most recent call last):").height == 5


@pytest.mark.parametrize("requests, colours", [(False, False), (True, False), (True, True)],
                         ids=["plain", "request-logging", "request-logging-coloured"])
def test_the_ok_lines_fast_path_counts_and_keeps_what_reading_every_line_does(tmp_path, monkeypatch, requests, colours):
    """`scan_chunk` sets the `... HTTP/1.1" 200 OK` lines apart with one suffix test, and cuts a
    request-logging server's request lines before their prompt, a run of them one row; `finish`
    on all the lines reads each of them whole. Both give the same kept lines, clocks, statuses and
    counts."""
    from emblens.formats.registry import REGISTRY
    from emblens.reading import engine
    from emblens.reading import lines as reading_lines
    from emblens.reading.chunks import Chunk
    from emblens.reading.context import SourceContext
    from emblens.reading.lines import lines_frame, unwrap
    from emblens.rules.loader import load_rules
    monkeypatch.setattr(reading_lines, "FOLD_FROM", 0 if requests else reading_lines.FOLD_FROM)
    log = tmp_path / "vllm.log"
    _mixed_server_log(log, requests)
    if colours:       # vLLM 0.11 colours its process prefix: the chunk takes the path that strips them
        log.write_text(log.read_text().replace(PREFIX, "\x1b[1;36m" + PREFIX.rstrip() + "\x1b[0;0m "))
    rules = load_rules()
    ctx = SourceContext("x", keywords=rules.keywords, models=rules.models)
    vllm = next(s for s in REGISTRY if s.name == "vllm-log")
    chunk = Chunk([log.read_bytes()])
    lines = unwrap(lines_frame(chunk))
    fast, fast_counts = engine.scan_chunk(vllm, chunk, ctx)
    full, full_counts = engine.finish(vllm, lines, lines.height, 0, ctx)
    assert fast.equals(full) and fast.height > 50
    assert "  abc123def456 Traceback (most recent call last):" in fast["raw"].to_list()
    for field in ("lines", "blank", "recognised", "cut", "clock_last"):
        assert getattr(fast_counts, field) == getattr(full_counts, field), field
    assert fast_counts.cut == 1 + 3 * requests      # a prompt past the cap, once a minute-slice of minute 11
    for frame in ("traffic", "kv"):
        a, b = (getattr(c, frame).sort(pl.all()) for c in (fast_counts, full_counts))
        assert a.equals(b), frame


def test_a_server_chunk_read_in_one_query_gives_what_its_frame_of_lines_gives(tmp_path):
    """`server_lines` reads a server log's chunk in one query instead of a frame of all its lines:
    for chunks cut anywhere (a line completed from the block before, a line left to the next, an
    OK line past the length cap) it gives the same other lines, line count and cut OK lines as
    `lines_frame`, `unwrap` and the suffix test; a chunk they must clean is left to them."""
    import io

    from emblens.formats.uvicorn import OK_LINE
    from emblens.reading.chunks import Chunk, read_chunks
    from emblens.reading.context import MAX_LINE_BYTES
    from emblens.reading.lines import lines_frame, server_lines, unwrap
    log = tmp_path / "vllm.log"
    _mixed_server_log(log)
    long_ok = b'INFO:     10.0.3.1:4000 - "GET /' + b"x" * 70_000 + b' HTTP/1.1" 200 OK\n'
    ok = b'INFO:     10.0.3.1:4000 - "POST /v1/embeddings HTTP/1.1" 200 OK\n'
    data = log.read_bytes() + ok * 50 + long_ok + ok * 50
    checked = cut = 0
    for size in (CHUNK_BYTES, 4096, 777):
        for chunk in read_chunks(io.BytesIO(data), size):
            lines = unwrap(lines_frame(chunk))
            is_ok = lines["raw"].str.ends_with(OK_LINE)
            too_long = lines["raw"].str.len_bytes() > MAX_LINE_BYTES
            other, n, ok_cut = server_lines(chunk, OK_LINE)
            assert n == lines.height and ok_cut == int((is_ok & too_long).sum())
            assert other.equals(lines.filter(~is_ok))
            checked += 1
            cut += ok_cut
    assert checked > 100 and cut == 1
    for text in (b"\x1b[32mINFO\x1b[0m:     10.0.3.1:4000 - \"GET /health HTTP/1.1\" 200 OK\n",
                 ok.replace(b"\n", b"\r\n"),
                 b'{"log":"INFO: x\\n","stream":"stdout","time":"2025-11-20T09:00:00.1Z"}\n',
                 b"2025-11-20T09:00:00.123456789Z " + ok,
                 b"INFO: \xff\xfe\n"):
        assert server_lines(Chunk([text * 300]), OK_LINE) is None, text[:20]


def test_routine_lines_are_cut_before_their_literal_and_a_run_of_them_is_one_row(tmp_path):
    """With request logging, `routine_rows` gives a request or metrics line only up to its
    literal (never a prompt), a metrics line's KV usage as read on the whole line, and a run of
    such lines that are the same once cut, with only OK lines between them, as one row standing
    for them all (`_weight`, the run's highest `_kv`); the other lines as they are."""
    import io

    from emblens.formats.uvicorn import OK_LINE
    from emblens.formats.vllm import VLLMLog
    from emblens.reading.chunks import read_chunks
    from emblens.reading.lines import lines_frame, routine_rows, server_lines, unwrap
    from emblens.reading.routine import KV_USAGE
    log = tmp_path / "vllm.log"
    _mixed_server_log(log, requests=True)
    marks = VLLMLog.requests + VLLMLog.metrics
    checked = folded = 0
    for size in (CHUNK_BYTES, 4096):
        for chunk in read_chunks(io.BytesIO(log.read_bytes()), size):
            lines = unwrap(lines_frame(chunk)).filter(~pl.col("raw").str.ends_with(OK_LINE))
            routine = lines["raw"].str.contains_any(list(marks)) & ~lines["raw"].str.contains("HTTP/1.", literal=True)
            other, long = routine_rows(server_lines(chunk, OK_LINE)[0], VLLMLog.requests, VLLMLog.metrics)
            assert long == int((routine & (lines["raw"].str.len_bytes() > 65_536)).sum())
            assert other.filter(pl.col("_kind").is_null()).select("line", "raw", "wrap_ts").equals(lines.filter(~routine))
            cut = other.filter(pl.col("_kind").is_not_null())
            assert int(cut["_weight"].sum()) == int(routine.sum())
            assert not cut["raw"].str.contains("prompt|CUDA|Unauthorized|zzz|throughput").any()
            whole = dict(zip(lines["line"], lines["raw"]))
            for line, text, kind, kv in zip(cut["line"], cut["raw"], cut["_kind"], cut["_kv"]):
                rest = whole[line][len(text):]
                assert whole[line].startswith(text) and rest.startswith(marks), whole[line][:120]
                assert kind == ("metric" if rest.startswith(VLLMLog.metrics) else "request")
                if kind == "metric":
                    assert kv == float(pl.Series([whole[line]]).str.extract(KV_USAGE, 1)[0])
            checked += cut.height
            folded += int((cut["_weight"] > 1).sum())
    assert checked > 100 and folded > 50
