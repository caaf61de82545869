"""Secrets planted in every kind of input never reach any output; their shape still does."""

import json
import re
import zipfile

from typer.testing import CliRunner

from emblens.cli import app

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
    from emblens.redact import mask_text

    assert mask_text("OpenAI(api_key='EMPTY')") == "OpenAI(api_key='EMPTY')"
    assert mask_text("Illegal header value b'Bearer '") == "Illegal header value b'Bearer '"
    assert mask_text("Bearer <key: 12 chars>") == "Bearer <key: 12 chars>"
