"""A pattern's literals (`emblens.patterns.literals`): every text the pattern matches holds one of them, so
leaving out a pattern none of whose literals occur changes no result, only what gets compiled."""

from pathlib import Path

import polars as pl
import pytest

from emblens.diagnose import analyze
from emblens.patterns import literals
from emblens.reading.lines import lines_frame
from emblens.report import to_dict
from emblens.rules import engine
from emblens.rules.loader import load_rules

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(("pattern", "expected"), [
    (r"CUDA out of memory", ("cuda out of memory",)),
    (r"(?i)cuda out of memory|OOM when allocating", ("cuda out of memory", "oom when allocating")),
    # the longest run a match must hold; a group repeated at least once counts, an optional one not
    (r"Input length \((\d+)\) exceeds", ("input length (",)),
    (r"(?:foo)?bar baz", ("bar baz",)),
    (r"(?:connect|timeout)+ z", ("connect", "timeout")),
    # an alternative without a literal of three characters: nothing to rely on
    (r"model .* not found|\d+ s", None),
    (r"[Ss]erver disconnected", ("erver disconnected",)),
    # case-insensitive k and s fold to the Kelvin sign and the long s: they split the literal
    (r"(?i)tokens exceeded", (" exceeded",)),
    (r"(?i:Task) failed at step", (" failed at step",)),
    (r"(?i)ß and more text", (" and more text",)),
    # Rust syntax that Python reads as literal text, or does not take: no literals
    (r"[[:alpha:]]+ failed", None),
    (r"\<word\> here", None),
    (r"\p{Greek}+ text", None),
    (r"abc(?i)def", None),
    (r"timeout{1, 3} after", None),
    (r"x{2}yz and more", ("yz and more",)),
    (r"\{\"error\": \{", ('{"error": {',)),
    (r"(?P<n>abc)\1", ("abc",)),
    (r"(?<=foo)barbaz", ("barbaz",)),
    (r"(", None),
])
def test_literals_of_a_pattern(pattern, expected):
    assert literals.literals(pattern) == expected


def _lines() -> pl.Series:
    """Every line of every rule fixture and corpus file, as emblens reads them."""
    files = [p for p in sorted((ROOT / "rules").glob("*/*.*")) if (".pos-" in p.name or ".neg-" in p.name)
             and not p.name.endswith(".expect.yaml") and p.suffix != ".flow"]
    files += [p for p in sorted((ROOT / "tests" / "corpus").glob("*/*")) if p.name != "case.yaml"]
    frames = [lines_frame(p.read_bytes()) for p in files if p.is_file()]
    return pl.concat([f["raw"] for f in frames if f.height]).unique()


@pytest.fixture(scope="module")
def lines() -> pl.Series:
    return _lines()


def test_every_line_a_rule_pattern_matches_holds_one_of_its_literals(lines):
    ruleset = load_rules()
    patterns = {p for ps in ruleset.regexes.values() for p in ps}
    patterns |= set(ruleset.prefilter.parts)
    checked = 0
    for pattern in sorted(patterns):
        found = literals.literals(pattern)
        if found is None:
            continue
        try:
            hit = lines.filter(lines.str.contains(pattern))
        except pl.exceptions.PolarsError:     # the backtracking engine's patterns
            continue
        if hit.len():
            checked += 1
            holds = hit.str.contains_any(list(found), ascii_case_insensitive=True)
            assert holds.all(), (pattern, found, hit.filter(~holds).to_list()[:3])
    assert checked > 100    # most of the rules' patterns match some fixture or corpus line


def test_the_narrowed_prefilter_keeps_exactly_the_lines_the_whole_one_keeps(lines):
    prefilter = load_rules().prefilter
    whole = lines.str.contains(prefilter.pattern)
    for piece in (lines.head(50), lines.slice(1000, 400), lines.filter(whole).head(30), lines):
        narrowed = prefilter.narrow(piece)
        expected = piece.str.contains(prefilter.pattern)
        got = piece.str.contains(narrowed) if narrowed else pl.Series([False] * piece.len())
        assert got.to_list() == expected.to_list()
    # a routine line: no part could match, so no regex is run at all
    assert prefilter.narrow(pl.Series(['10.0.0.1:5 - "GET /metrics HTTP/1.1" 200 OK'])) is None
    # many lines: the whole regex (compiled once a thread) is cheaper than looking for literals
    assert lines.len() > literals.NARROW_MAX_LINES and prefilter.narrow(lines) == prefilter.pattern


def test_literals_are_found_slice_by_slice_as_in_one_pass(lines, monkeypatch):
    wanted = {"message": {s for p in load_rules().regexes["message"] for s in (literals.literals(p) or ())}}
    frame = pl.DataFrame({"message": lines})
    whole = literals.present_in(frame, wanted)
    monkeypatch.setattr(literals, "SLICE_ROWS", 97)
    assert literals.present_in(frame, wanted) == whole and len(whole["message"]) > 20


@pytest.mark.parametrize("sample", sorted((ROOT / "samples").glob("*.zip")), ids=lambda p: p.stem)
def test_leaving_out_absent_patterns_changes_no_finding(sample, monkeypatch):
    ruleset = load_rules()
    pruned = to_dict(analyze([sample], ruleset=ruleset))
    left_out = []
    original = engine.absent

    def spy(rs, events):
        left_out.append(len(original(rs, events)))
        return frozenset()

    monkeypatch.setattr(engine, "absent", spy)
    full = to_dict(analyze([sample], ruleset=ruleset))
    assert left_out and left_out[0] > 0      # the sample does leave patterns out
    for report in (pruned, full):
        report.pop("generated_at", None)
        report.pop("elapsed_s", None)
    assert pruned["findings"] == full["findings"]
    assert pruned["unexplained"] == full["unexplained"]


FOLDED = """id: custom.FOLD
title: A rule that folds to a constant
severity: warning
confidence: 0.5
means: The server printed its listening port.
match:
  all:
    - facts: {listen_port: 8000}
    - PART
message: "{{ count }} line(s)."
remedy: ["Nothing to do."]
"""


def test_rules_that_fold_to_a_constant_still_have_a_value_for_every_row(tmp_path):
    """The compiler folds what it knows before the query (a fact test, a regex whose literals do
    not occur): a rule that becomes `true` matches every event, one that becomes `false` none,
    even when every rule run is such a constant."""
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "always.yaml").write_text(FOLDED.replace("FOLD", "always").replace("- PART", "- facts: {listen_port: {gt: 1}}"))
    (rules / "never.yaml").write_text(FOLDED.replace("FOLD", "never").replace("PART", "message: {regex: 'zebra crossing'}"))
    log = tmp_path / "vllm.log"
    log.write_text("(APIServer pid=7) INFO 11-20 09:14:02 [api_server.py:1] Starting vLLM API server 0 on http://0.0.0.0:8000\n"
                   '(APIServer pid=7) INFO:     10.0.3.7:51422 - "POST /v1/embeddings HTTP/1.1" 404 Not Found\n' * 1)
    a = analyze([log], rule_dirs=[rules], select=["custom.always", "custom.never"])
    assert [f.rule for f in a.findings] == ["custom.always"]
    assert a.findings[0].count == a.events.height == 2


def test_the_prefilter_keeps_a_line_holding_only_an_upstream_message_by_plain_string_search():
    ruleset = load_rules()
    prefilter = ruleset.prefilter
    anchor = next(m.anchor for m in ruleset.messages.messages if m.id == "model.load_failed" and len(m.anchor) > 20)
    assert anchor in prefilter.fixed and all(anchor not in p for p in prefilter.parts)
    lines = pl.Series([f"[worker 3] {anchor} (see above)", "INFO:     routine line"])
    assert prefilter.keep(lines).to_list() == [True, False]
