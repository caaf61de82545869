"""Why a rule did or did not fire: `emblens analyze PATHS --explain ID` names the condition that
stopped it and the lines that nearly matched; a failing fixture says the same; `emblens rules test
--format json` gives the fixtures' outcomes to tools."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from emblens import diagnose
from emblens.frontends.cli import app
from emblens.rules.explain import explain_analysis, render_explanation
from emblens.rules.loader import load_rules
from emblens.run import Run

SAMPLES = Path(__file__).resolve().parents[1] / "samples"
runner = CliRunner()
# an access line with vLLM's words (a 404 to /v1/embeddings) written by a plain uvicorn app, not vLLM
NOT_VLLM = 'INFO:     10.0.3.250:55941 - "POST /v1/embeddings HTTP/1.1" 404 Not Found\n'


@pytest.fixture(scope="module")
def rules():
    return load_rules(())


def analyse(paths, rules):
    return diagnose.run([str(p) for p in paths], Run(ruleset=rules))


def test_a_rule_that_fires_is_explained_instead_of_the_report():
    r = runner.invoke(app, ["analyze", str(SAMPLES / "model-name-mismatch.zip"), "--explain", "model.not_found"])
    assert r.exit_code == 0, r.output
    assert r.output.startswith("Why model.not_found: The requested model is not served (error)")
    assert "It fired and is the root cause, first in the report" in r.output
    assert "vllm-server.log:100" in r.output          # a matched line, relative to the bundle
    assert "msg_id = \"model.not_found\" (signal upstream_messages" in r.output
    assert "ROOT CAUSE" not in r.output and "Coverage" not in r.output   # the explanation, not the report
    assert "\x1b" not in r.output


def test_a_rule_that_does_not_fire_names_the_condition_and_a_near_miss(tmp_path, rules):
    secret = "sk-proj-" + "abcdefghijklmnopqrstuvwxyz123456"
    (tmp_path / "app.log").write_text(NOT_VLLM.rstrip("\n") + f" \x1b]0;pwned\x07 api_key={secret}\n")
    why = explain_analysis(analyse([tmp_path / "app.log"], rules), "model.not_found", ruleset=rules)
    assert not why.fired
    stop = why.match.stop
    assert stop.node.label == 'origin = "vllm"' and stop.others and (stop.held, stop.of) == (3, 4)
    assert [(n.source, n.line, n.has) for n in stop.near] == [("app.log", 1, "origin: generic")]
    assert why.gist().startswith('first failing condition `origin = "vllm"` (model/not_found.yaml:')
    text = render_explanation(why)
    assert "It did not fire: no event satisfies its match (0 of" in text
    assert 'First condition that leaves no candidate: `origin = "vllm"`' in text
    assert "app.log:1  [origin: generic]  INFO: 10.0.3.250:55941" in text
    assert re.search(r'origin = "vllm": 0 / 0  \[model/not_found\.yaml:\d+\]   <- first to leave none', text)
    assert "\\x1b]0;pwned\\x07" in text and "\x1b" not in text and secret not in text     # shown, never acted on; masked


def test_an_unknown_id_is_one_line_with_a_suggestion_and_exit_2():
    r = subprocess.run([sys.executable, "-m", "emblens", "analyze", str(SAMPLES / "empty-key.zip"), "--explain",
                        "model.not_fond"], capture_output=True, text=True)
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("emblens: error: --explain model.not_fond: no rule has this id")
    assert "(did you mean `model.not_found`?)" in r.stderr


def test_an_id_only_a_cue_speaks_for_says_which_cue_read_which_line(tmp_path, rules):
    (tmp_path / "app.log").write_text(NOT_VLLM)
    text = render_explanation(explain_analysis(analyse([tmp_path / "app.log"], rules), "http.wrong_path", ruleset=rules))
    assert "Its rule did not fire, but it is named as a possible cause" in text
    assert "cue(s) read for http.wrong_path (rules/data/cues.yaml): the words say the server has no route" in text
    assert "read: it names the possible cause" in text
    # beside a surer finding (an error-level rule fired), the cue is not read
    (tmp_path / "client.txt").write_text("httpx.LocalProtocolError: Illegal header value b'Bearer '\n")
    text = render_explanation(explain_analysis(analyse([tmp_path / "app.log", tmp_path / "client.txt"], rules),
                                               "http.wrong_path", ruleset=rules))
    assert "not read: a surer finding spoke (auth.empty_key)" in text


def _broken_rules(folder: Path) -> Path:
    """A rule folder whose positive fixture has the rule's words but not its structure (a log line, not a 404)."""
    area = folder / "gateway"
    area.mkdir(parents=True)
    (area / "tenant_missing.yaml").write_text(
        "id: gateway.tenant_missing\ntitle: The gateway does not know this tenant\nseverity: error\n"
        "means: Our gateway answers 404 with unknown tenant.\nmatch:\n  all:\n    - {kind: http, http_status: 404}\n"
        "    - message: {regex: \"unknown tenant (?P<tenant>[\\\\w-]+)\"}\n"
        "message: \"{{ count }} request(s) were refused for tenant {{ tenant }}.\"\nremedy: [\"Provision {{ tenant }}.\"]\n")
    (area / "tenant_missing.pos-words-only.txt").write_text("gateway: request refused: unknown tenant acme-corp\n")
    (area / "tenant_missing.neg-healthy.txt").write_text("gateway: request served for tenant acme-corp\n")
    return folder


def test_a_failing_fixture_says_why_in_text_and_json(tmp_path):
    folder = _broken_rules(tmp_path / "my-rules")
    text = runner.invoke(app, ["rules", "test", str(folder)])
    assert text.exit_code == 1
    fail = next(line for line in text.output.splitlines() if line.startswith("FAIL"))
    assert 'did not fire (findings: none); why: first failing condition `kind = "http"`' in fail
    assert "near miss tenant_missing.pos-words-only.txt:1 [kind: log]: gateway: request refused" in fail
    r = runner.invoke(app, ["rules", "test", str(folder), "--format", "json"])
    assert r.exit_code == 1
    doc = json.loads(r.output)
    rule = doc["rules"]["gateway.tenant_missing"]
    assert {k: rule[k] for k in ("tp", "fp", "fn", "tn")} == {"tp": 0, "fp": 0, "fn": 1, "tn": 1}
    broken = next(f for f in rule["fixtures"] if not f["ok"])
    assert broken["fixture"] == "gateway/tenant_missing.pos-words-only.txt" and broken["expect"] == "fires"
    assert broken["detail"] == fail.split(" (fires): ", 1)[1]
    assert doc["totals"]["passed"] == 1 and doc["totals"]["failed"] == 1 and doc["cues"]["cases"] == []


def test_rules_test_json_on_the_built_in_rules_counts_as_the_text_does(monkeypatch):
    """Every built-in rule file's fixtures and every cue case, counted the same in JSON and in text.
    The fixtures' analyses are stood in for (tests/test_rules_fixtures.py runs them all; running them
    again here would cost CI 10-15 s): the first positive and the first negative fixture fail."""
    import os

    import emblens.fixtures as fixtures

    failing: dict[str, str] = {}

    def outcome(_ruleset, rule_id, part_path, fixture, expect):
        first = failing.setdefault(expect, fixture) == fixture
        return fixtures.FixtureResult(rule_id, part_path, fixture, expect, not first, "stood in" if not first else "broken")

    monkeypatch.setattr(os, "cpu_count", lambda: 1)      # in this process, where _run is stood in for
    monkeypatch.setattr(fixtures, "_run", outcome)
    r = runner.invoke(app, ["rules", "test", "--format", "json"])
    text = runner.invoke(app, ["rules", "test", "-q"])
    passed, failed = map(int, re.search(r"^(\d+) passed, (\d+) failed$", text.output, re.M).groups())
    doc = json.loads(r.output)
    assert (doc["totals"]["passed"], doc["totals"]["failed"]) == (passed, failed) and failed == 2
    assert r.exit_code == text.exit_code == 1
    assert (doc["totals"]["fn"], doc["totals"]["fp"], doc["cues"]["fn"], doc["cues"]["fp"]) == (1, 1, 0, 0)
    fixtures_seen = [f for rule in doc["rules"].values() for f in rule["fixtures"]]
    assert len(fixtures_seen) + len(doc["cues"]["cases"]) == passed + failed
    assert set(doc["rules"]) == {r.id for r in load_rules(()).rules}
    for rule in doc["rules"].values():
        assert sum(rule[k] for k in ("tp", "fp", "fn", "tn", "missing")) == len(rule["fixtures"])
    assert doc["totals"]["tp"] == sum(f["expect"] == "fires" and f["ok"] for f in fixtures_seen) + doc["cues"]["tp"]
    assert doc["cues"]["tp"] + doc["cues"]["tn"] == len(doc["cues"]["cases"]) > 100
