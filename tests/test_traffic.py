"""Traffic evidence: mitmproxy flow files (10 and 11), HAR, curl -v; odd bodies; broken files;
secrets; findings that combine a capture with a server log or a client traceback."""

import json
import zipfile

from mitmproxy import io as mio
from mitmproxy.test import tflow
from typer.testing import CliRunner

from emblens.diagnose import analyze, load_events
from emblens.frontends.cli import app

RULES = "rules"


def _flow_file(path, flows):
    with open(path, "wb") as f:
        w = mio.FlowWriter(f)
        for fl in flows:
            w.add(fl)
    return path


def _embed_flow(status=200, request=b'{"model": "Qwen3-Embedding-4B", "input": ["query: a"]}', response=b"{}",
                ctype="application/json", auth="Bearer EMPTY"):
    f = tflow.tflow(resp=True)
    f.request.method, f.request.path = "POST", "/v1/embeddings"
    f.request.headers["authorization"] = auth
    f.request.content = request
    f.response.status_code = status
    f.response.headers["content-type"] = ctype
    f.response.content = response
    return f


def test_flow_files_of_mitmproxy_10_and_11_both_load(repo):
    # captured with mitmdump 10.4.2 (format 20) and 11.0.2 (format 21)
    for name, fmt in (("auth/missing_key.pos-curl.flow", b"2:20#"), ("auth/empty_key.pos-curl.flow", b"2:21#")):
        path = repo / RULES / name
        assert b"7:version;" + fmt in path.read_bytes()
        events, inputs, skipped = load_events([str(path)], keep_all=False)
        assert not skipped and inputs[0].kind == "mitmproxy-flows"
        row = events.filter(events["kind"] == "http").row(0, named=True)
        assert row["http_path"] == "/v1/embeddings" and row["http_status"] == 401


def test_streaming_and_non_json_bodies_do_not_break_anything(tmp_path):
    sse = b'data: {"id":"c1","choices":[{"delta":{"content":"Hi"}}]}\n\ndata: [DONE]\n\n'
    flows = [
        _embed_flow(response=sse, ctype="text/event-stream"),
        _embed_flow(request=b"\xff\xfe not json", response=b"<html>oops</html>", ctype="text/html", status=500),
        _embed_flow(request=b"", response=b""),
    ]
    path = _flow_file(tmp_path / "odd.flow", flows)
    a = analyze([str(path)])
    assert a.inputs[0].events == 3 and not a.skipped
    assert {f.rule for f in a.findings} <= {"http.gateway_error"}


def test_truncated_flow_file_keeps_the_exchanges_before_the_cut(tmp_path):
    whole = _flow_file(tmp_path / "whole.flow", [_embed_flow(status=401, auth="Bearer sk-wrong-0123456789abcdef")] * 3)
    data = whole.read_bytes()
    cut = tmp_path / "cut.flow"
    cut.write_bytes(data[: len(data) - 40])
    a = analyze([str(cut)])
    assert a.inputs[0].events == 2 and "read stopped after record 2" in a.inputs[0].note
    assert a.findings[0].rule == "auth.invalid_key"


def test_garbage_that_looks_like_a_flow_is_skipped_with_a_reason(tmp_path):
    bad = tmp_path / "bad.flow"
    bad.write_bytes(b"12:7:version;x" + bytes(range(256)))
    good = tmp_path / "client.txt"
    good.write_text("openai.APIConnectionError: Connection error.\n")
    result = CliRunner().invoke(app, ["analyze", str(bad), str(good), "-f", "json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["base"] == str(tmp_path) + "/" and [s["source"] for s in report["skipped"]] == ["bad.flow"]
    assert report["skipped"][0]["reason"].startswith("cannot read:")


def test_har_with_bom_and_a_sanitized_export(tmp_path, repo):
    har = json.loads((repo / RULES / "auth/invalid_key.pos-openai1.109.har").read_text())
    for e in har["log"]["entries"]:  # what a browser's default export does
        e["request"]["headers"] = [h for h in e["request"]["headers"] if h["name"].lower() != "authorization"]
    path = tmp_path / "sanitized.har"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(har).encode())
    a = analyze([str(path)])
    row = a.events.filter(a.events["kind"] == "http").row(0, named=True)
    assert a.inputs[0].kind == "har" and row["auth_scheme"] == "not recorded"
    # absent because stripped is not "missing": only the 401 itself is reported
    assert [f.rule for f in a.findings] == ["auth.invalid_key"]


def test_capture_and_server_log_make_one_finding_with_evidence_from_both(repo):
    a = analyze([str(repo / RULES / "auth/invalid_key.pos-capture-and-vllm")])
    f = a.findings[0]
    assert f.rule == "auth.invalid_key" and len(a.findings) == 1
    sources = {e.source.rsplit("/", 1)[-1] for e in f.evidence}
    assert sources == {"capture.flow", "vllm.log"}
    assert any("'api_key': ['<key: 15 chars>']" in e.text for e in f.evidence)


def test_traceback_and_models_answer_make_one_finding_with_did_you_mean(repo):
    a = analyze([str(repo / RULES / "model/not_found.pos-traceback-and-models")])
    f = a.findings[0]
    assert f.rule == "model.not_found" and len(a.findings) == 1
    assert {e.source.rsplit("/", 1)[-1] for e in f.evidence} == {"client.txt", "models.flow"}
    assert "Did you mean `Qwen3-Embedding-4B`" in f.summary


def test_curl_transcript_fields(repo):
    events, _, _ = load_events([str(repo / RULES / "auth/header_scheme.pos-curl-v.txt")], keep_all=False)
    row = events.row(0, named=True)
    assert (row["http_method"], row["http_path"], row["http_status"]) == ("POST", "/v1/embeddings", 401)
    assert row["auth_scheme"] is None and row["auth_other_headers"] == "X-API-Key: <key: 15 chars>"
    assert row["req_model"] == "Qwen3-Embedding-4B" and row["req_input_count"] == 1
    refused, _, _ = load_events([str(repo / RULES / "net/connection_refused.pos-curl-v.txt")], keep_all=False)
    assert refused.row(0, named=True)["resp_error"].startswith("curl: (7) Failed to connect")


def test_missing_prefix_names_count_and_a_clipped_example_never_the_text(tmp_path):
    long_q = "how do I proof bread dough overnight in a cold kitchen?"
    flows = [
        _embed_flow(request=json.dumps({"model": "multilingual-e5-large", "input": ["query: a b c", "passage: d e f"]}).encode()),
        _embed_flow(request=json.dumps({"model": "multilingual-e5-large", "input": [long_q, "short one"]}).encode()),
    ]
    a = analyze([str(_flow_file(tmp_path / "p.flow", flows))])
    f = next(f for f in a.findings if f.rule == "embed.missing_prefix")
    assert "sent 2 input(s) without a prefix" in f.summary
    assert "how do I proof bread… (55 chars)" in f.summary
    report = CliRunner().invoke(app, ["analyze", str(tmp_path / "p.flow"), "-f", "json"]).stdout
    assert long_q not in report and "short one" not in report


def test_secrets_in_captures_never_reach_any_output(tmp_path, repo):
    bundle = tmp_path / "captures.zip"
    with zipfile.ZipFile(bundle, "w") as zf:
        for name in ("auth/header_scheme.pos-x-api-key.flow", "auth/header_scheme.pos-raw-key.flow",
                     "auth/invalid_key.pos-openai1.109.har", "auth/header_scheme.pos-curl-v.txt",
                     "auth/invalid_key.neg-healthy-auth.flow"):
            zf.write(repo / RULES / name, name.replace("/", "-"))
    outputs = []
    runner = CliRunner()
    for fmt in ("text", "markdown", "json"):
        outputs.append(runner.invoke(app, ["analyze", str(bundle), "-f", fmt]).stdout)
    for ext in ("jsonl", "csv"):
        out = tmp_path / f"events.{ext}"
        runner.invoke(app, ["events", str(bundle), "--output", str(out)])
        outputs.append(out.read_text())
    text = "\n".join(outputs)
    assert "auth.header_scheme" in text
    for secret in ("s3cret-demo-key", "sk-wrong-0123456789abcdef"):
        assert secret not in text
    assert "X-API-Key: <key: 15 chars>" in text and "<sk-key: 25 chars>" in text
