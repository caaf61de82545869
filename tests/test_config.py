"""Settings kept beside a project ([tool.emblens] or emblens.toml), relative --since, and shell
completion: what users of ruff and pytest expect of a command-line tool."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "samples" / "model-name-mismatch.zip"


def emblens(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "emblens", *args], capture_output=True, text=True, timeout=60, cwd=cwd,
                          env={**os.environ, "EMBLENS_NO_CONFIG": "", **(env or {})})


def test_pyproject_settings_apply_from_a_subfolder_and_the_command_line_wins(tmp_path):
    rules = tmp_path / "ops" / "rules" / "team"
    rules.mkdir(parents=True)
    (rules / "model_check.yaml").write_text(
        "id: team.model_check\ntitle: Our model check\nseverity: warning\nmeans: x\nconfidence: 0.5\n"
        "match: {text: {contains: 'does not exist'}}\nmessage: our rule saw it\nremedy: [ask the platform team]\n",
        encoding="utf-8")
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "svc"\n\n[tool.emblens]\nrules = ["ops/rules"]\n'
                                             'ignore = ["model.not_found"]\nfail-on = "warning"\n', encoding="utf-8")
    work = tmp_path / "src" / "deep"
    work.mkdir(parents=True)
    r = emblens("analyze", str(SAMPLE), "-f", "json", cwd=work)
    assert r.returncode == 1, r.stderr                                       # fail-on from the file
    assert f"emblens: note: settings from {tmp_path / 'pyproject.toml'} [tool.emblens]: rules, ignore, fail-on" in r.stderr
    rules_seen = [f["rule"] for f in json.loads(r.stdout)["findings"]]
    assert "model.not_found" not in rules_seen and "team.model_check" in rules_seen
    # the command line wins; --no-config reads none
    r = emblens("analyze", str(SAMPLE), "-f", "json", "--ignore", "team.*", "--fail-on", "info", "-q", cwd=work)
    rules_seen = [f["rule"] for f in json.loads(r.stdout)["findings"]]
    assert "model.not_found" in rules_seen and "team.model_check" not in rules_seen and r.stderr == ""
    r = emblens("analyze", str(SAMPLE), "-f", "json", "--no-config", cwd=work)
    assert r.returncode == 0 and "settings from" not in r.stderr
    assert json.loads(r.stdout)["findings"][0]["rule"] == "model.not_found"


def test_emblens_toml_is_found_first_and_a_wrong_key_is_one_line(tmp_path):
    (tmp_path / "pyproject.toml").write_text('[tool.emblens]\nselect = ["auth"]\n', encoding="utf-8")
    (tmp_path / "emblens.toml").write_text('ingore = "model.*"\n', encoding="utf-8")
    r = emblens("analyze", str(SAMPLE), cwd=tmp_path)
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.strip() == (f"emblens: error: {tmp_path / 'emblens.toml'}: unknown key 'ingore' (did you mean "
                                "`ignore`?); the keys are rules, select, ignore, redact, tz, fail-on, year")
    for text, says in (('tz = "Mars/Base"\n', "tz: unknown time zone 'Mars/Base'"), ("select = 3\n", "select must be a list of strings"),
                       ('fail-on = "fatal"\n', "fail-on must be error, warning or info"), ("[broken\n", "not valid TOML")):
        (tmp_path / "emblens.toml").write_text(text, encoding="utf-8")
        r = emblens("analyze", str(SAMPLE), "-q", cwd=tmp_path)
        assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and says in r.stderr, r.stderr
    r = emblens("analyze", str(SAMPLE), "--config", str(tmp_path / "nope.toml"), cwd=tmp_path)
    assert r.returncode == 2 and "no such settings file" in r.stderr


def test_a_pyproject_without_our_table_is_not_ours(tmp_path):
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "svc"\n[tool.ruff]\nline-length = 100\n', encoding="utf-8")
    r = emblens("analyze", str(SAMPLE), cwd=tmp_path)
    assert r.returncode == 0 and "settings from" not in r.stderr


def test_relative_since_counts_back_from_now(tmp_path):
    log = tmp_path / "server.log"
    now = datetime.now(timezone.utc)
    lines = [f"{(now - timedelta(hours=h)):%Y-%m-%dT%H:%M:%S}.000Z ERROR request failed: CUDA out of memory" for h in (5, 0)]
    log.write_text("\n".join(lines) + "\n", encoding="utf-8")
    recent = json.loads(emblens("analyze", str(log), "--since", "1h", "-f", "json", cwd=tmp_path).stdout)
    assert recent["findings"] and [e["line"] for e in recent["findings"][0]["evidence"]] == [2]
    r = emblens("analyze", str(log), "--until", "10h", "-f", "json", cwd=tmp_path)
    assert json.loads(r.stdout)["findings"] == []
    assert "holds none of the 2 events with a time" in r.stderr     # an empty window is said, not silent


@pytest.mark.parametrize("words, cword, want", [
    ("emblens ana", 1, "analyze"),
    ("emblens analyze x --format ", 4, "sarif"),
    ("emblens rules show model.n", 3, "model.not_found"),
    ("emblens analyze x --ignore au", 4, "auth.invalid_key"),
])
def test_shell_completion_offers_commands_formats_and_rule_ids(tmp_path, words, cword, want):
    r = emblens(cwd=tmp_path, env={"_EMBLENS_COMPLETE": "complete_bash", "COMP_WORDS": words, "COMP_CWORD": str(cword)})
    assert want in r.stdout.split(), (r.stdout, r.stderr)
