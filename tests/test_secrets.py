"""Secrets planted in every kind of input never reach any output; their shape still does."""

import html
import json
import re
import zipfile

from typer.testing import CliRunner

from emblens.frontends.cli import app

SECRETS = {
    "server": "Zq8vN3mK1pL6xR2tW9yB",
    "sk": "sk-proj-9fJ2kQ7mN4vB8xZ1cL5pR3tY6wA0",
    "bearer": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.s1gn4tur3",
    "password": "hunter2-correct-horse",
    "env": "qwen-Xk39sLmQp02nV7",
    "hf": "hf_AbCdEfGhIjKlMnOpQrStUvWxYz012345",
}


def _bundle(tmp_path):
    s = SECRETS
    vllm = (
        f"(APIServer pid=1) INFO 11-20 09:14:02 [utils.py:233] non-default args: {{'model': 'Qwen/Qwen3-Embedding-4B', 'api_key': ['{s['server']}'], 'hf_token': '{s['hf']}'}}\n"
        f"INFO 03-02 23:59:21 api_server.py:240] args: Namespace(host=None, port=8000, api_key='{s['server']}', model='m')\n"
        f"(APIServer pid=1) ERROR 11-20 09:15:00 [serving.py:1] request failed: headers={{'authorization': 'Bearer {s['bearer']}'}}\n"
        '(APIServer pid=1) INFO:     10.0.0.1:5000 - "POST /v1/embeddings HTTP/1.1" 401 Unauthorized\n'
    )
    client = (
        f"$ export QWEN_API_KEY={s['env']}\n$ export OPENAI_API_KEY=\"{s['sk']}\"\n"
        f"$ curl -H 'Authorization: Bearer {s['sk']}' https://admin:{s['password']}@gw.example/v1/embeddings\n"
        "Traceback (most recent call last):\n  File \"app.py\", line 3, in <module>\n"
        f"openai.AuthenticationError: Error code: 401 - {{'error': 'Unauthorized'}} (sent Authorization: Bearer {s['bearer']})\n"
    )
    path = tmp_path / "b.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("vllm.log", vllm)
        zf.writestr("client.txt", client)
    return path


def test_no_secret_in_any_output(tmp_path):
    bundle = _bundle(tmp_path)
    runner = CliRunner()
    outputs = []
    for fmt in ("text", "markdown", "json"):
        r = runner.invoke(app, ["analyze", str(bundle), "--format", fmt])
        assert r.exit_code == 0, r.output
        outputs.append(r.output)
    for ext in ("csv", "jsonl"):
        out = tmp_path / f"e.{ext}"
        assert runner.invoke(app, ["events", str(bundle), "-o", str(out)]).exit_code == 0
        outputs.append(out.read_text())
    everything = "\n".join(outputs)
    for name, secret in SECRETS.items():
        assert secret not in everything, name
        assert secret[6:14] not in everything, name  # no partial leak either
    report = json.loads(outputs[2])
    assert report["findings"][0]["rule"] == "auth.invalid_key"
    assert report["facts"]["api_key_required"] is True
    # the shape survives: length and scheme, never the value
    assert "<key: 20 chars>" in everything and re.search(r"<sk-key: \d+ chars>", everything)


def test_placeholder_keys_are_kept_visible():
    from emblens.events.redact import mask_text

    assert mask_text("OpenAI(api_key='EMPTY')") == "OpenAI(api_key='EMPTY')"
    assert mask_text("Illegal header value b'Bearer '") == "Illegal header value b'Bearer '"
    assert mask_text("Bearer <key: 12 chars>") == "Bearer <key: 12 chars>"


# -- the catalogue, planted in every input format, looked for in every output ----------------------
def _har(entries: list[tuple[str, str, str]]) -> str:
    items = []
    for i, (name, line, _secret) in enumerate(entries):
        hname, _, hvalue = line.partition(": ")
        items.append({
            "startedDateTime": "2025-11-20T09:14:02.000Z", "time": 12,
            "request": {"method": "POST", "url": f"http://127.0.0.1:8000/v1/embeddings?plant={i}",
                        "headers": [{"name": hname, "value": hvalue}, {"name": "x-note", "value": line}],
                        "postData": {"mimeType": "application/json", "text": json.dumps({"input": line, "plant": name})}},
            "response": {"status": 401, "statusText": "Unauthorized", "headers": [],
                         "content": {"mimeType": "application/json", "text": json.dumps({"error": line})}},
        })
    return json.dumps({"log": {"version": "1.2", "creator": {"name": "test"}, "entries": items}})


def _flows(path, entries) -> None:
    from mitmproxy import io as mio
    from mitmproxy.test import tflow

    with open(path, "wb") as f:
        writer = mio.FlowWriter(f)
        for i, (_name, line, _secret) in enumerate(entries):
            flow = tflow.tflow(resp=True)
            flow.request.path = f"/v1/embeddings?plant={i}"
            hname, _, hvalue = line.partition(": ")
            if hvalue and " " not in hname:
                flow.request.headers[hname] = hvalue
            flow.request.content = json.dumps({"input": line}).encode()
            flow.response.status_code = 401
            flow.response.content = json.dumps({"error": line}).encode()
            writer.add(flow)


def _span_attrs(i: int, line: str) -> dict:
    """What a client span may carry: the prompt and the messages (gen_ai.input.messages, the
    older gen_ai.prompt, OpenInference's llm.input_messages), a captured header, and the line."""
    return {"gen_ai.request.model": "Qwen3-Embedding-4B", "error.type": "AuthenticationError",
            "gen_ai.input.messages": json.dumps([{"role": "user", "parts": [{"type": "text", "content": line}]}]),
            "gen_ai.prompt": line, "llm.input_messages.0.message.content": line,
            "http.request.header.authorization": [line], "planted.index": i}


def _otlp(lines: list[str]) -> str:
    """One span per line: the line in the span's attributes, its status message and its exception event."""
    def value(v):
        return {"intValue": str(v)} if isinstance(v, int) else {"arrayValue": {"values": [{"stringValue": x} for x in v]}} \
            if isinstance(v, list) else {"stringValue": v}
    spans = [{"traceId": f"{i + 1:032x}", "spanId": f"{i + 1:016x}", "name": "chat Qwen3-Embedding-4B", "kind": "SPAN_KIND_CLIENT",
              "startTimeUnixNano": str(1_796_580_626_000_000_000 + i), "endTimeUnixNano": str(1_796_580_627_000_000_000 + i),
              "attributes": [{"key": k, "value": value(v)} for k, v in _span_attrs(i, line).items()],
              "events": [{"name": "exception", "attributes": [
                  {"key": "exception.type", "value": {"stringValue": "openai.AuthenticationError"}},
                  {"key": "exception.message", "value": {"stringValue": f"Error code: 401 - {line}"}},
                  {"key": "exception.stacktrace", "value": {"stringValue": f"Traceback (most recent call last):\n  {line}"}}]}],
              "status": {"code": "STATUS_CODE_ERROR", "message": line}} for i, line in enumerate(lines)]
    doc = {"resourceSpans": [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "rag"}}]},
                              "scopeSpans": [{"scope": {"name": "opentelemetry.instrumentation.openai_v2"}, "spans": spans}]}]}
    return json.dumps(doc) + "\n"


def _jaeger(lines: list[str]) -> str:
    """The same spans as Jaeger keeps them: typed tags, logs for the exception event."""
    spans = [{"traceID": f"{i + 1:032x}", "spanID": f"{i + 1:016x}", "operationName": "chat Qwen3-Embedding-4B",
              "startTime": 1_796_580_626_000_000 + i, "duration": 1_000_000, "processID": "p1",
              "tags": [{"key": k, "type": "int64" if isinstance(v, int) else "string", "value": v if not isinstance(v, list) else
                        json.dumps(v)} for k, v in _span_attrs(i, line).items()]
              + [{"key": "span.kind", "type": "string", "value": "client"},
                 {"key": "otel.status_code", "type": "string", "value": "ERROR"},
                 {"key": "otel.status_description", "type": "string", "value": line}],
              "logs": [{"timestamp": 1_796_580_626_500_000, "fields": [
                  {"key": "event", "type": "string", "value": "exception"},
                  {"key": "exception.type", "type": "string", "value": "openai.AuthenticationError"},
                  {"key": "exception.message", "type": "string", "value": f"Error code: 401 - {line}"}]}]}
             for i, line in enumerate(lines)]
    return json.dumps({"data": [{"traceID": "0" * 31 + "1", "spans": spans,
                                 "processes": {"p1": {"serviceName": "rag", "tags": []}}}]})


def _inputs(tmp_path) -> dict[str, list]:
    from emblens.events.redact import CATALOGUE

    lines = [line for _n, line, _s in CATALOGUE]
    vllm = "(APIServer pid=1) INFO 11-20 09:14:01 [api_server.py:1] vLLM API server version 0.11.0\n" + "".join(
        f"(APIServer pid=1) ERROR 11-20 09:14:02 [serving.py:1] plant {i}: {line}\n" for i, line in enumerate(lines))
    # a pretty-printed JSON body: each value on the line after its key
    vllm += "".join(f'  "{k}":\n    "{v}",\n' for k, v in (("api_key", "NxLn4kQ8rT2vW6yZ0bD3"), ("password", "NxLnPw9oIu6yTr3e")))
    curl = ("* Connected to localhost (127.0.0.1) port 8000\n> POST /v1/embeddings HTTP/1.1\n> Host: localhost:8000\n"
            + "".join(f"> {line}\n" for line in lines if ": " in line) + ">\n< HTTP/1.1 401 Unauthorized\n"
            "< content-type: application/json\n<\n" + "".join(f"{line}\n" for line in lines))
    smi = ("==============NVSMI LOG==============\n\nTimestamp                                 : Thu Nov 20 09:14:02 2025\n"
           "Driver Version                            : 550.54.15\nCUDA Version                              : 12.4\n\n"
           "Attached GPUs                             : 1\nGPU 00000000:01:00.0\n    Product Name                          : NVIDIA A10G\n"
           "    FB Memory Usage\n        Total                             : 23028 MiB\n        Used                              : 22000 MiB\n"
           "        Free                              : 1028 MiB\n    Processes\n" + "".join(
               f"        Process ID                        : {100 + i}\n            Type                          : C\n"
               f"            Name                          : {line}\n            Used GPU Memory               : 100 MiB\n"
               for i, line in enumerate(lines)))
    paste = ("My server fails, logs below.\n\n```\n" + vllm + "```\n\nand my client:\n\n```bash\n"
             + "".join(f"{line}\n" for line in lines) + "```\n")
    files = {"vllm.log": vllm, "curl-v.txt": curl, "nvidia-smi.txt": smi, "capture.har": _har(CATALOGUE), "issue.md": paste,
             "spans.otlp.jsonl": _otlp(lines), "trace.jaeger.json": _jaeger(lines)}
    out: dict[str, list] = {}
    for name, text in files.items():
        (tmp_path / name).write_text(text)
        out[name] = [str(tmp_path / name)]
    _flows(tmp_path / "capture.flow", CATALOGUE)
    out["capture.flow"] = [str(tmp_path / "capture.flow")]
    bundle = tmp_path / "bundle.zip"
    with zipfile.ZipFile(bundle, "w") as zf:
        for name in files:
            zf.write(tmp_path / name, f"evidence/{name}")
        zf.write(tmp_path / "capture.flow", "evidence/capture.flow")
    out["bundle.zip"] = [str(bundle)]
    return out


def test_every_catalogue_entry_in_every_input_format_reaches_no_output(tmp_path):
    import base64

    from emblens.events.redact import CATALOGUE

    secrets = [s for _n, _l, s in CATALOGUE] + ["NxLn4kQ8rT2vW6yZ0bD3", "NxLnPw9oIu6yTr3e"]
    assert len(CATALOGUE) >= 30
    runner = CliRunner()
    for fmt_name, paths in _inputs(tmp_path).items():
        outputs = {}
        for fmt in ("text", "markdown", "json", "html"):
            r = runner.invoke(app, ["analyze", *paths, "--format", fmt])
            assert r.exit_code in (0, 1), (fmt_name, fmt, r.output)
            outputs[fmt] = html.unescape(r.output) if fmt == "html" else r.output    # as a reader sees the page
        for ext in ("csv", "jsonl"):
            target = tmp_path / f"events-{fmt_name}.{ext}"
            r = runner.invoke(app, ["events", *paths, "-o", str(target)])
            assert r.exit_code == 0, (fmt_name, r.output)
            outputs[ext] = target.read_text()
        assert outputs["jsonl"].count("\n") >= 1 and not json.loads(outputs["json"])["skipped"], fmt_name
        if fmt_name in ("vllm.log", "issue.md", "bundle.zip", "spans.otlp.jsonl", "trace.jaeger.json"):   # the planted lines are there, masked
            assert "Ocp-Apim-Subscription-Key: <key: 32 chars>" in outputs["jsonl"], fmt_name
        for out_name, text in outputs.items():
            for secret in secrets:
                encoded = base64.b64encode(secret.encode()).decode().rstrip("=")
                assert secret not in text, (fmt_name, out_name, secret)
                assert encoded not in text, (fmt_name, out_name, "base64", secret)
                if len(secret) >= 16:     # no long piece of it either
                    assert secret[4:14] not in text, (fmt_name, out_name, "piece", secret)


def test_jwt_cookie_aws_secret_and_the_users_own_patterns_reach_no_output(tmp_path):
    jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.SflKxwRJSMeKKF2QT4fwpM"
    aws = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
    mine = "internal-0123456789ab"
    log = tmp_path / "vllm.log"
    log.write_text(
        "(APIServer pid=1) INFO 11-20 09:14:01 [api_server.py:1] vLLM API server version 0.11.0\n"
        f"(APIServer pid=1) ERROR 11-20 09:14:02 [serving.py:1] request failed: Cookie: session={jwt}; theme=dark\n"
        f"(APIServer pid=1) ERROR 11-20 09:14:03 [serving.py:1] env: AWS_SECRET_ACCESS_KEY={aws} ticket {mine}\n"
        f"(APIServer pid=1) ERROR 11-20 09:14:04 [serving.py:1] upstream said Set-Cookie: auth={jwt}; Path=/\n")
    patterns = tmp_path / "mine.txt"
    patterns.write_text("# our ticket tokens\ninternal-[0-9a-f]{12}\n")
    outputs = []
    for fmt in ("text", "markdown", "json", "html"):
        r = runner_invoke(["analyze", str(log), "--format", fmt, "--redact", str(patterns)])
        outputs.append(html.unescape(r) if fmt == "html" else r)
    events = tmp_path / "e.jsonl"
    runner_invoke(["events", str(log), "-o", str(events), "--redact", str(patterns)])
    outputs.append(events.read_text())
    for out in outputs:
        for secret in (jwt, aws, mine, jwt.split(".")[1], aws[5:20]):
            assert secret not in out
    report = json.loads(outputs[2])
    assert report["masked"]["cookie"] == 2 and f"your pattern ({patterns}:2)" in report["masked"]
    assert "Masked (values never shown):" in outputs[1] and "Masked (values never shown):" in outputs[0]
    # without the file, the user's own token is just text: the pattern is what masked it
    plain = runner_invoke(["analyze", str(log), "--format", "json"])
    assert mine in plain and "your pattern" not in plain


def runner_invoke(args):
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    return r.output
