"""The CLI as a user meets it: exit codes, one-line errors, formats, rule commands."""

import json
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from emblens.frontends.cli import app

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
    assert "ROOT CAUSE model.not_found" in r.output
    # text wraps at 80; a path or file:line never does (it is copied or clicked whole), so only
    # those lines may be longer
    long = [line for line in r.output.splitlines() if len(line) > 80]
    assert all(line.startswith("Paths below are in ") or " " not in line.strip() for line in long), long
    assert "    client-traceback.txt:13\n" in r.output and "    vllm-server.log:100\n" in r.output


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


def test_a_messages_file_that_is_not_yaml_is_one_line_naming_it(tmp_path):
    """A rule folder's data/messages file with a YAML error: exit 2 and one line naming the file and
    the line, never a traceback."""
    (tmp_path / "site.yaml").write_text(
        "id: site.embed_404\ntitle: Embedding 404s\nseverity: warning\n"
        "means: Our gateway answers 404 on embeddings when a tenant is not provisioned.\n"
        "match: {kind: http, http_status: 404, http_path: /v1/embeddings}\n"
        "message: '{count} embedding calls got 404 on {http_path}'\nremedy: [Provision the tenant.]\n"
    )
    (tmp_path / "data" / "messages").mkdir(parents=True)
    bad = tmp_path / "data" / "messages" / "mine.yaml"
    bad.write_text("project: Mine\nmessages:\n  - template: model {} is gone: id: model.not_found\n")
    r = subprocess.run([sys.executable, "-m", "emblens", "analyze", str(SAMPLE), "--rules", str(tmp_path)],
                       capture_output=True, text=True)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert f"{bad}: line 3 the messages are not YAML" in r.stderr


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


def _emblens(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "emblens", *args], capture_output=True, text=True, cwd=cwd)


def test_bad_option_values_are_one_line_and_exit_2():
    for args, words in ((["--fail-on", "ERROR"], "--fail-on"), (["--format", "pdf"], "--format"),
                        (["--bogus"], "No such option: --bogus"), (["--since", "yesterday"], "--since 'yesterday'"),
                        (["--select", "auht"], "did you mean `auth`")):
        r = _emblens("analyze", str(SAMPLE), *args)
        assert r.returncode == 2, (args, r.stderr)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("emblens: error: ") and words in lines[0], (args, r.stderr)
        assert r.stdout == ""


def test_the_format_follows_the_output_extension_and_several_outputs_are_written(tmp_path):
    r = _emblens("analyze", str(SAMPLE), "-o", "r.json", "-o", "r.md", "-o", "r.txt", "-q", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / "r.json").read_text())["findings"][0]["rule"] == "model.not_found"
    assert (tmp_path / "r.md").read_text().startswith("# emblens report")
    assert (tmp_path / "r.txt").read_text().startswith("emblens ")
    assert r.stderr.splitlines() == ["emblens: wrote r.json (json)", "emblens: wrote r.md (markdown)", "emblens: wrote r.txt (text)"]
    # --format wins over the extension; - is stdout; an unknown extension is an error, not text in a .pdf;
    # a name without an extension (or /dev/null) gets text
    r = _emblens("analyze", str(SAMPLE), "--format", "json", "-o", "-", "-q")
    assert json.loads(r.stdout)["findings"]
    r = _emblens("analyze", str(SAMPLE), "-o", "report.pdf", cwd=tmp_path)
    assert r.returncode == 2 and "no report format for .pdf" in r.stderr and not (tmp_path / "report.pdf").exists()
    r = _emblens("analyze", str(SAMPLE), "-o", "report", "-o", "/dev/null", "-q", cwd=tmp_path)
    assert r.returncode == 0 and (tmp_path / "report").read_text().startswith("emblens ")


def test_events_to_stdout():
    r = _emblens("events", str(SAMPLE), "-o", "-", "-q")
    assert r.returncode == 0
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert rows and all("source" in row for row in rows)
    assert "written to stdout" in r.stderr


def test_select_ignore_and_time_window(tmp_path):
    a = json.loads(run("analyze", str(SAMPLE), "--format", "json", "--select", "model").output)
    assert [f["rule"] for f in a["findings"]] == ["model.not_found"]
    a = json.loads(run("analyze", str(SAMPLE), "--format", "json", "--ignore", "model.*").output)
    assert "model.not_found" not in [f["rule"] for f in a["findings"]]
    # a time window (kubectl --timestamps gives full times): the OOM at 09:15 is outside 09:00-09:10
    log = tmp_path / "vllm.log"
    log.write_text(
        "2025-11-20T09:00:00.000000Z INFO 11-20 09:00:00 [api_server.py:1] vLLM API server version 0.11.0\n"
        '2025-11-20T09:05:00.000000Z (APIServer pid=1) INFO:     10.0.0.1:5000 - "POST /v1/embeddings HTTP/1.1" 401 Unauthorized\n'
        "2025-11-20T09:15:00.000000Z ERROR 11-20 09:15:00 [core.py:1] torch.OutOfMemoryError: CUDA out of memory. Tried to "
        "allocate 2.00 GiB. GPU 0 has a total capacity of 23.68 GiB of which 1.00 GiB is free.\n")
    both = json.loads(run("analyze", str(log), "--format", "json").output)
    early = json.loads(run("analyze", str(log), "--format", "json", "--until", "2025-11-20T09:10").output)
    late = json.loads(run("analyze", str(log), "--format", "json", "--since", "2025-11-20 09:10:00Z").output)
    assert {"gpu.oom", "auth.invalid_key"} <= {f["rule"] for f in both["findings"]}
    assert [f["rule"] for f in early["findings"]] == ["auth.invalid_key"], early["findings"]
    assert [f["rule"] for f in late["findings"]] == ["gpu.oom"], late["findings"]


def test_the_published_report_schema_is_the_models_and_every_report_follows_it():
    import jsonschema

    from emblens.report.models import Report, schema

    published = Path(__file__).resolve().parents[1] / "src/emblens/report/report.schema.json"
    assert json.loads(published.read_text()) == schema(), "regenerate: python -m emblens.report.models > " + str(published)
    for sample in sorted(SAMPLE.parent.glob("*.zip")):
        report = json.loads(run("analyze", str(sample), "--format", "json").output)
        jsonschema.validate(report, schema())
        Report.model_validate(report)
        assert report["schema_version"] == "1.4" and report["findings"][0]["role"] == "root_cause"


def test_a_vllm_log_alone_gets_its_year_from_when_it_was_written(tmp_path):
    import os
    from datetime import datetime

    log = tmp_path / "vllm.log"
    log.write_text("INFO 12-30 23:59:00 [api_server.py:1] vLLM API server version 0.11.0\n"
                   "ERROR 12-31 09:15:00 [core.py:1] torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB. "
                   "GPU 0 has a total capacity of 23.68 GiB of which 1.00 GiB is free.\n")
    written = datetime(2026, 1, 2, 10, 0).timestamp()      # copied off the server two days into the new year
    os.utime(log, (written, written))
    report = json.loads(run("analyze", str(log), "--format", "json").output)
    assert report["findings"][0]["first_seen"] == "2025-12-31T09:15:00Z"      # December: the year before
    assert report["timeline"][0]["ts"] == "2025-12-31T09:15:00Z"
    report = json.loads(run("analyze", str(log), "--format", "json", "--year", "2024").output)
    assert report["findings"][0]["first_seen"] == "2024-12-31T09:15:00Z"
    # `events` and `analyze` agree
    out = tmp_path / "e.jsonl"
    assert run("events", str(log), "-o", str(out)).exit_code == 0
    stamps = [json.loads(line)["ts"] for line in out.read_text().splitlines()]
    assert "2025-12-31 09:15:00" in " ".join(str(s).replace("T", " ") for s in stamps), stamps
