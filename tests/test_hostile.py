"""Hostile input, each attack at a size that runs fast: no traceback, no hang, no unbounded
memory, and the good members beside a bad one are still analysed."""

import gzip
import io
import tarfile
import time
import zipfile
from pathlib import Path

from emblens import analyze
from emblens.ingest.bundle import read_members
from emblens.settings import Limits, MiB

SAMPLES = Path(__file__).resolve().parents[1] / "samples" / "model-name-mismatch"
GOOD = (SAMPLES / "client-traceback.txt").read_bytes()


def _zip_bytes(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _tar_gz(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


# -- archives --------------------------------------------------------------------------------------
def test_a_tar_gz_is_decompressed_once_not_once_per_member(tmp_path, monkeypatch):
    members = {f"logs/{i:03}.log": GOOD + f"# member {i}\n".encode() * 2000 for i in range(60)}
    path = _tar_gz(tmp_path / "many.tar.gz", members)
    opened = []
    real = gzip.GzipFile.__init__

    def counting(self, *a, **kw):
        opened.append(1)
        real(self, *a, **kw)

    monkeypatch.setattr(gzip.GzipFile, "__init__", counting)
    a = analyze([str(path)])
    assert len(a.inputs) == 60 and not a.skipped
    assert len(opened) <= 2          # one peek at the gzip header, one pass over the archive
    assert a.findings[0].rule == "model.not_found"


def test_a_truncated_tar_keeps_the_members_before_the_break(tmp_path):
    whole = tmp_path / "whole.tar"
    with tarfile.open(whole, "w") as tf:
        for name, data in (("a-client.txt", GOOD), ("b-big.log", b"INFO: x\n" * 50_000)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    data = whole.read_bytes()
    cut = tmp_path / "cut.tar"
    cut.write_bytes(data[: len(data) // 2])
    for path in (cut, tmp_path / "cut.tar.gz"):
        if path.suffix == ".gz":
            path.write_bytes(gzip.compress(data)[: len(gzip.compress(data)) // 2])
        a = analyze([str(path)])
        assert [i.source for i in a.inputs][:1] == [f"{path}:a-client.txt"], path
        assert a.findings and a.findings[0].rule == "model.not_found"
        assert any("b-big.log" in s.label or "truncated" in s.reason or "corrupt" in s.reason for s in a.skipped), a.skipped


def test_nested_zip_bomb_stops_at_the_ratio_budget_and_says_so(tmp_path):
    """42.zip-style: zips of zips of highly compressible leaves. The whole archive may expand to
    at most max_ratio times its size (never less than the floor); the rest is one notice."""
    leaf = _zip_bytes({f"{i}.log": b"INFO:     routine line\n" * (4 * MiB // 23) for i in range(8)})
    middle = _zip_bytes({f"{i}.zip": leaf for i in range(8)})
    top = tmp_path / "42.zip"
    top.write_bytes(_zip_bytes({f"{i}.zip": middle for i in range(8)} | {"0-client.txt": GOOD}))
    assert top.stat().st_size < 300_000          # 2 GiB of log lines inside
    started = time.monotonic()
    a = analyze([str(top)], limits=Limits(ratio_floor_bytes=16 * MiB))
    assert time.monotonic() - started < 30
    assert a.findings[0].rule == "model.not_found"         # the good member is still analysed
    notice = [s for s in a.skipped if "more member(s) not read" in s.reason]
    assert len(notice) == 1 and "archive bomb" in notice[0].reason
    assert len(a.skipped) < 20                              # one notice, not one line per leaf


def test_member_count_limit_holds_across_nesting(tmp_path):
    inner = _zip_bytes({f"{i}.txt": b"x\n" for i in range(40)})
    top = tmp_path / "n.zip"
    top.write_bytes(_zip_bytes({f"{i}.zip": inner for i in range(40)}))
    items = list(read_members([str(top)], Limits(max_members=100)))
    assert sum(1 for i in items if not hasattr(i, "reason")) == 100
    assert [i.reason for i in items if hasattr(i, "reason")][-1].endswith("over the limit of 100 members")


# -- rule folders ----------------------------------------------------------------------------------
RULE = "id: {id}\ntitle: t\nseverity: error\nmeans: m\nmatch: {{message: {{contains: {word}}}}}\nmessage: x\nremedy: [x]\n"


def _rules(tmp_path, files: dict[str, str]) -> Path:
    d = tmp_path / "rules"
    for name, text in files.items():
        (d / name).parent.mkdir(parents=True, exist_ok=True)
        (d / name).write_text(text)
    return d


def test_a_yaml_alias_bomb_in_a_rule_file_is_refused_at_its_line(tmp_path):
    import pytest

    from emblens.errors import RuleError
    from emblens.rules.loader import load_rules

    bomb = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    bomb += [f"{x}: &{x} [" + ",".join([f"*{y}"] * 9) + "]" for x, y in zip("bcdefghi", "abcdefgh")]
    text = RULE.format(id="test.bomb", word="x") + "x-notes:\n" + "".join(f"  {line}\n" for line in bomb)
    d = _rules(tmp_path, {"bomb.yaml": text})
    started = time.monotonic()
    with pytest.raises(RuleError, match=r"bomb\.yaml:10: .*aliases"):
        load_rules([d])
    assert time.monotonic() - started < 5


def test_model_data_regexes_run_in_the_linear_engine(tmp_path):
    import pytest

    from emblens.errors import RuleError
    from emblens.knowledge.modeldata import load

    data = tmp_path / "m.yaml"
    data.write_text("families:\n  - name: evil\n    match: '(a+)+$'\n    prefixes: ['q: ']\n")
    started = time.monotonic()
    assert load([data]).family("a" * 45 + "!") is None          # Python's re: 110 s on this name
    assert load([data]).family("A" * 20) is not None             # case ignored, as before
    assert time.monotonic() - started < 2
    look = tmp_path / "look.yaml"
    look.write_text("families:\n  - name: look\n    match: '(?=a)a'\n    prefixes: ['q: ']\n")
    with pytest.raises(RuleError, match="linear-time"):
        load([look])


def test_the_backtracking_engine_has_a_budget_per_run_not_per_line(tmp_path):
    from emblens.patterns.backtracking import REGEX_RUN_BUDGET_S

    rule = ("id: test.slow\ntitle: t\nseverity: error\nmeans: m\n"
            "match: {text: {regex: '^ERROR (x|xx)+\\1y'}}\nmessage: x\nremedy: [x]\n")
    d = _rules(tmp_path, {"slow.yaml": rule})
    log = tmp_path / "slow.log"
    log.write_text(("ERROR " + "x" * 30 + "\n") * 2000)       # 0.05 s per line (the timeout) without the budget
    started = time.monotonic()
    a = analyze([str(log)], rule_dirs=[d])
    assert time.monotonic() - started < REGEX_RUN_BUDGET_S + 10
    assert any("budget" in n for n in a.notices), a.notices


def test_two_rules_with_one_id_in_one_folder_is_an_error_naming_both(tmp_path):
    import pytest

    from emblens.errors import RuleError
    from emblens.rules.loader import load_rules

    d = _rules(tmp_path, {"a.yaml": RULE.format(id="test.same", word="x"), "sub/b.yaml": RULE.format(id="test.same", word="y")})
    with pytest.raises(RuleError) as e:
        load_rules([d])
    assert "a.yaml:1" in str(e.value) and "b.yaml:1" in str(e.value)
    # a user folder may still replace a built-in id, with a notice
    user = _rules(tmp_path / "u", {"mine.yaml": RULE.format(id="auth.missing_key", word="x")})
    assert any("replaces rule auth.missing_key" in n for n in load_rules([user]).notices)


# -- parsing ---------------------------------------------------------------------------------------
def _deep_flow(path: Path) -> None:
    """A real flow (written by mitmproxy's own writer) whose response body nests 100,000 deep."""
    from mitmproxy import io as mio
    from mitmproxy.test import tflow

    flow = tflow.tflow(resp=True)
    flow.request.path = "/v1/embeddings"
    flow.response.status_code = 400
    flow.response.headers["content-type"] = "application/json"
    flow.response.content = b"[" * 100_000 + b"]" * 100_000
    with open(path, "wb") as f:
        mio.FlowWriter(f).add(flow)


def test_json_nested_past_pythons_limit_never_stops_the_run(tmp_path):
    har = tmp_path / "deep.har"
    har.write_text('{"log": {"creator": {}, "entries": ' + "[" * 100_000 + "]" * 100_000 + "}}")
    curl = tmp_path / "deep-curl.txt"
    curl.write_text("* Connected to localhost (127.0.0.1) port 8000\n> POST /v1/embeddings HTTP/1.1\n> Host: x\n>\n"
                    "< HTTP/1.1 400 Bad Request\n< content-type: application/json\n<\n" + "[" * 60_000 + "\n")
    flow = tmp_path / "deep.flow"
    _deep_flow(flow)
    good = tmp_path / "client.txt"
    good.write_bytes(GOOD)
    a = analyze([str(har), str(curl), str(flow), str(good)])
    assert a.findings[0].rule == "model.not_found"
    reasons = {s.label: s.reason for s in a.skipped}
    assert "nested deeper" in reasons[str(har)]
    assert {i.source for i in a.inputs} >= {str(curl), str(flow), str(good)}   # read, the deep body left alone


def test_a_har_of_millions_of_objects_is_refused_before_it_is_parsed(tmp_path, monkeypatch):
    from emblens.formats import records

    monkeypatch.setattr(records, "MAX_HAR_OBJECTS", 1000)
    har = tmp_path / "objects.har"
    har.write_text('{"log": {"creator": {}, "entries": [' + "{}," * 5000 + "{}]}}")
    a = analyze([str(har), str(SAMPLES / "client-traceback.txt")])
    assert "more than 1,000 JSON objects" in a.skipped[0].reason
    assert a.findings[0].rule == "model.not_found"


def test_a_line_longer_than_the_cap_is_cut_and_counted_not_stored(tmp_path):
    from emblens.reading.context import MAX_LINE_BYTES

    log = tmp_path / "long.log"
    with open(log, "wb") as f:
        f.write(b"ERROR " + b"x" * (20 * MiB) + b"\n")          # one line longer than a read block
        f.write(b"WARNING " + b"y" * (MAX_LINE_BYTES * 3) + b"\n")
        f.write(GOOD)
    a = analyze([str(log)])
    assert "2 line(s) longer than 64 KiB cut" in a.inputs[0].note
    assert a.events["text"].str.len_bytes().max() <= MAX_LINE_BYTES
    assert a.findings[0].rule == "model.not_found"


def test_kept_lines_per_member_are_bounded_first_and_last_halves(tmp_path):
    log = tmp_path / "tracebacks.log"          # over the paste size: streamed as a log
    log.write_bytes(b"Traceback (most recent call last):\n" * 150_000 + GOOD)
    second = tmp_path / "more.log"
    second.write_bytes(b"Traceback (most recent call last):\n" * 150_000)
    a = analyze([str(log), str(second)], limits=Limits(kept_rows=1000, min_kept_rows=500, run_rows=1500))
    first, other = a.inputs
    assert "149,0" in first.note and "counted, not kept" in first.note, first.note
    assert "(the first and last 250 are)" in other.note, other.note    # what the run had left, not 1,000
    assert a.events.height <= 1000 + 500
    assert a.findings[0].rule == "model.not_found"        # the end of the log is still there


def test_pathological_nvidia_smi_dumps_are_read_in_linear_time(tmp_path):
    spaces = tmp_path / "q.txt"
    spaces.write_text("==============NVSMI LOG==============\n\nDriver Version : 550.54.15\n" + " " * 6000 + "\n")
    row = tmp_path / "table.txt"
    row.write_text("| NVIDIA-SMI 550.54.15    Driver Version: 550.54.15    CUDA Version: 12.4 |\n"
                   "|    0   N/A  N/A      1234      C   " + "python " * 7000 + "  100MiB |\n")
    xml = tmp_path / "smi.xml"
    xml.write_text('<?xml version="1.0" ?><nvidia_smi_log>\n' + "<?xml\n" * 200_000)
    started = time.monotonic()
    a = analyze([str(spaces), str(row), str(xml)])
    assert time.monotonic() - started < 10           # were 115 s, 35 s and 34 s at these sizes
    assert not [s for s in a.skipped if "cannot" in s.reason]


def test_utf16_logs_from_powershell_are_read(tmp_path):
    text = GOOD.decode()
    for enc in ("utf-16", "utf-16-le", "utf-16-be"):
        p = tmp_path / f"{enc}.txt"
        p.write_text(text, encoding=enc, newline="\r\n")
        a = analyze([str(p)])
        assert not a.skipped and a.inputs[0].kind.endswith("(UTF-16 text)"), enc
        assert a.findings[0].rule == "model.not_found"


# -- output ----------------------------------------------------------------------------------------
ESCAPES = ["\x1b]0;pwned-title\x07", "\x1b]52;c;cHduZWQ=\x07", "\x1bP+q544e\x1b\\", "\x1b[2J", "\x9b31m", "\x07"]


def test_escape_sequences_from_inputs_never_reach_any_output(tmp_path):
    from typer.testing import CliRunner

    from emblens.frontends.cli import app

    log = ("(APIServer pid=1) INFO 11-20 09:14:02 [api_server.py:1] vLLM API server version 0.11.0\n"
           + "".join(f"(APIServer pid=1) ERROR 11-20 09:14:0{i} [serving.py:1] boom {e} end\n" for i, e in enumerate(ESCAPES))
           + '(APIServer pid=1) INFO:     10.0.0.1:5000 - "POST /v1/embeddings HTTP/1.1" 404 Not Found\n')
    bundle = tmp_path / "b.zip"
    with zipfile.ZipFile(bundle, "w") as zf:
        zf.writestr("vllm\x1b]0;member-title\x07.log", log)
        zf.writestr("client.txt", GOOD.decode() + "openai.NotFoundError: \x1b]52;c;Y2xpcA==\x07\n")
        zf.writestr("bad\x1b[31m.bin", b"\0" * 100)
    runner = CliRunner()
    outputs = [runner.invoke(app, ["analyze", str(bundle), "--format", fmt]).output for fmt in ("text", "markdown", "json")]
    ev = tmp_path / "e.jsonl"
    runner.invoke(app, ["events", str(bundle), "-o", str(ev)])
    outputs.append(ev.read_text())
    for out in outputs:
        assert not any(ch in out for ch in "\x1b\x07\x9b"), out[:2000]
    assert "\\x1b]0;member-title\\x07" in outputs[1]          # shown, so the reader sees it was there
    assert '"findings"' in outputs[2] and json_ok(outputs[2])


def json_ok(text: str) -> bool:
    import json

    json.loads(text)
    return True


def test_rich_styling_still_works_with_colour_on(tmp_path):
    from emblens.report.text import to_text

    log = tmp_path / "c.txt"
    log.write_bytes(GOOD + b"note \x1b]0;t\x07\n")
    text = to_text(analyze([str(log)]), color=True)
    assert "\x1b[1m" in text or "\x1b[1;" in text        # rich's own bold
    assert "\x1b]" not in text and "\x07" not in text


def test_a_flow_claiming_a_huge_value_is_refused_before_it_is_allocated(tmp_path):
    flow = tmp_path / "huge.flow"
    flow.write_bytes(b"900000000:7:request;" + b"x" * 1000)
    started = time.monotonic()
    a = analyze([str(flow), str(SAMPLES / "client-traceback.txt")])
    assert time.monotonic() - started < 10
    assert "larger than 512 MiB" in a.skipped[0].reason, a.skipped
    assert a.findings[0].rule == "model.not_found"


def test_deeply_nested_rule_files_and_match_trees_are_errors_not_crashes(tmp_path):
    import pytest

    from emblens.errors import RuleError
    from emblens.rules.loader import MAX_DEPTH, load_rules

    deep_yaml = RULE.format(id="test.deep", word="x") + "x-deep: " + "[" * 50_000 + "]" * 50_000 + "\n"
    with pytest.raises(RuleError, match=r"deep\.yaml"):
        load_rules([_rules(tmp_path / "a", {"deep.yaml": deep_yaml})])
    tree = "{message: {contains: x}}"
    for _ in range(MAX_DEPTH + 5):
        tree = "{not: " + tree + "}"
    nested = RULE.format(id="test.tree", word="x").replace("match: {message: {contains: x}}", f"match: {tree}")
    with pytest.raises(RuleError, match=f"nested deeper than {MAX_DEPTH}"):
        load_rules([_rules(tmp_path / "b", {"tree.yaml": nested})])


def test_a_damaged_url_port_is_read_without_its_port(tmp_path):
    """Found by bench/fuzz.py: urlsplit's .port raises on a port that is not one, which ended the
    run (curl) or lost the exchange (HAR)."""
    seed = (Path(__file__).resolve().parents[1] / "rules/auth/header_scheme.pos-curl-v.txt").read_text()
    curl = tmp_path / "curl.txt"
    curl.write_text(seed.replace("-H 'Content-Type", "-H Content-Type", 1).replace("127.0.0.1:45529/v1", "127.0.0.1:99999/v1", 1))
    har = tmp_path / "h.har"
    har.write_text('{"log": {"creator": {}, "entries": [{"request": {"method": "GET", "url": "http://h:x\'/v1/models", '
                   '"headers": []}, "response": {"status": 401, "headers": [], "content": {}}}]}}')
    a = analyze([str(curl), str(har)])
    assert not a.skipped and [i.events for i in a.inputs if i.kind == "har"] == [1]
