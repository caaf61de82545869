"""The CLI as a user meets it: exit codes, one-line errors, formats, rule commands."""

import json
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from emblens.cli import app

runner = CliRunner()
SAMPLE = Path(__file__).resolve().parents[1] / "samples" / "model-name-mismatch.zip"


def run(*args):
    return runner.invoke(app, list(args))


def test_missing_path_is_one_line_and_exit_2():
    r = subprocess.run([sys.executable, "-m", "emblens", "analyze", "no/such/bundle.zip"], capture_output=True, text=True)
    assert r.returncode == 2
    assert r.stderr.strip() == "emblens: error: no/such/bundle.zip: no such file or folder"
    assert "Traceback" not in r.stderr


def test_not_a_zip_is_one_line_and_exit_2(tmp_path):
    bad = tmp_path / "bundle.zip"
    bad.write_bytes(b"PK\x03\x04 this is not really a zip")
    r = subprocess.run([sys.executable, "-m", "emblens", "analyze", str(bad)], capture_output=True, text=True)
    assert r.returncode == 2
    assert len(r.stderr.strip().splitlines()) == 1 and "not a readable zip" in r.stderr


def test_json_report_follows_the_contract():
    r = run("analyze", str(SAMPLE), "--format", "json")
    assert r.exit_code == 0, r.output
    report = json.loads(r.output)
    assert set(report) >= {"version", "inputs", "findings", "unexplained"}
    top = report["findings"][0]
    assert top["rule"] == "model.not_found"
    assert set(top) >= {"rule", "title", "severity", "confidence", "role", "explained_by", "count", "first_seen",
                        "last_seen", "summary", "remedy", "evidence"}
    assert "Did you mean `Qwen3-Embedding-4B`" in top["summary"]
    assert all(set(e) == {"source", "line", "text"} for e in top["evidence"])
    kinds = {i["source"].rsplit("/", 1)[-1]: i["kind"] for i in report["inputs"]}
    assert kinds == {"client-traceback.txt": "python-traceback", "vllm-server.log": "vllm-log"}


def test_markdown_is_postmortem_shaped():
    r = run("analyze", str(SAMPLE), "--format", "markdown")
    assert r.exit_code == 0
    md = r.output
    for heading in ("# emblens report", "**Summary:**", "## Root cause: The requested model is not served",
                    "**Evidence**", "**Remedy**", "## Coverage"):
        assert heading in md
    assert "client-traceback.txt:13` " in md


def test_text_fits_80_columns():
    r = run("analyze", str(SAMPLE))
    assert r.exit_code == 0
    assert "MOST LIKELY CAUSE model.not_found" in r.output
    assert max(len(line) for line in r.output.splitlines()) <= 80


def test_fail_on(tmp_path):
    assert run("analyze", str(SAMPLE), "--fail-on", "error", "-o", str(tmp_path / "r.txt")).exit_code == 1
    healthy = tmp_path / "vllm.log"
    healthy.write_text((Path(__file__).resolve().parents[1] / "rules/auth/invalid_key.neg-vllm0.11-healthy.log").read_text())
    assert run("analyze", str(healthy), "--fail-on", "info").exit_code == 0


def test_broken_rule_names_file_and_line(tmp_path):
    (tmp_path / "mine.yaml").write_text(
        "id: my.rule\ntitle: t\nseverity: error\nmeans: something long enough to mean it\n"
        "match:\n  any:\n    - {kind: http, htp_status: 500}\nmessage: m\nremedy: [fix]\n"
    )
    r = subprocess.run([sys.executable, "-m", "emblens", "analyze", str(SAMPLE), "--rules", str(tmp_path)],
                       capture_output=True, text=True)
    assert r.returncode == 2
    assert f"{tmp_path / 'mine.yaml'}:7: unknown column or node 'htp_status'" in r.stderr
    lint = subprocess.run([sys.executable, "-m", "emblens", "rules", "lint", str(tmp_path)], capture_output=True, text=True)
    assert lint.returncode == 2 and "mine.yaml:7:" in lint.stderr


def test_yaml_syntax_error_names_line(tmp_path):
    (tmp_path / "bad.yaml").write_text("id: a.b\ntitle: [unclosed\n")
    r = run("rules", "lint", str(tmp_path))
    assert r.exit_code == 2


def test_user_rule_folder_is_used(tmp_path):
    rule = tmp_path / "slow_embeddings.yaml"
    rule.write_text(
        "id: site.embed_404\ntitle: Embedding 404s\nseverity: warning\n"
        "means: Our gateway answers 404 on embeddings when a tenant is not provisioned.\n"
        "match: {kind: http, http_status: 404, http_path: /v1/embeddings}\n"
        "message: '{count} embedding calls got 404 on {http_path}'\nremedy: [Provision the tenant.]\n"
    )
    (tmp_path / "slow_embeddings.pos-a.log").write_text("x")
    (tmp_path / "slow_embeddings.neg-a.log").write_text("x")
    r = run("analyze", str(SAMPLE), "--rules", str(tmp_path), "--format", "json")
    ids = [f["rule"] for f in json.loads(r.output)["findings"]]
    assert "site.embed_404" in ids
    assert run("rules", "show", "site.embed_404", "--rules", str(tmp_path)).exit_code == 0


def test_rules_list_and_show():
    out = run("rules", "list").output
    assert "auth.empty_key" in out and "gpu.oom" in out
    show = run("rules", "show", "auth.empty_key")
    written = (Path(__file__).resolve().parents[1] / "rules/auth/empty_key.yaml").read_text()
    assert show.exit_code == 0 and written.strip() in show.output      # as written, match block included
    oom = run("rules", "show", "gpu.oom").output
    assert "# cause other_process (order 10):" in oom and "when:" in oom and "match:" in oom
    bad = run("rules", "show", "gpu.oomm")
    assert bad.exit_code == 2 and "did you mean `gpu.oom`?" in bad.output


def test_events_dump(tmp_path):
    for ext in ("parquet", "csv", "jsonl"):
        out = tmp_path / f"events.{ext}"
        r = run("events", str(SAMPLE), "--output", str(out))
        assert r.exit_code == 0, r.output
        assert out.stat().st_size > 0
    import polars as pl

    table = pl.read_parquet(tmp_path / "events.parquet")
    assert table.height > 400 and {"source", "line", "ts", "origin", "kind", "level", "message"} <= set(table.columns)
    assert run("events", str(SAMPLE), "--output", str(tmp_path / "x.txt")).exit_code == 2
