"""Secrets found by meaning, not by list: a value is masked because what holds it is named like a
secret (any case, separator, number or plural; after `=`, `:`, a space, quotes, on the next line,
in a block scalar, a k8s name/value pair or a flag/value pair of a list), because of its own shape,
because it decodes to one, or because it was seen as one elsewhere in the run. Every shape below,
raw and base64-encoded, is absent from every report and export; a maintained detector set
(detect-secrets) is the second judge."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from emblens.frontends.cli import app

DOCKERCONFIG = base64.b64encode(b'{"auths":{"registry.example.com":{"username":"bot","password":"DcPw3Lk8Jh5Gf2Qa"}}}').decode()
B64CONFIG = base64.b64encode(b'{"api_key": "B64CfgKey9Qw3Er6Ty", "model": "m"}').decode()
# (what it is, the text holding it, the secret values that must never be shown)
CASES = [
    ("glued and short names", "QIANFAN_AK=AkQf7Tz2Lm9Wq4Rt6Yp1\nQIANFAN_SK=SkQf7Tz2Lm9Wq4Rt6Yp1Zx\nPGPASSWORD=Pg7vWq2LmZx9Tr4Ey\n",
     ["AkQf7Tz2Lm9Wq4Rt6Yp1", "SkQf7Tz2Lm9Wq4Rt6Yp1Zx", "Pg7vWq2LmZx9Tr4Ey"]),
    ("numbered and plural names", "OPENAI_API_KEY_2=Nm4Lk7Jh2Gf5Ds8Aq1\nAPI_SECRETS=Ap5Sc7Rt9Lm2Qz4Wx\n",
     ["Nm4Lk7Jh2Gf5Ds8Aq1", "Ap5Sc7Rt9Lm2Qz4Wx"]),
    ("k8s env pair", "          env:\n            - name: X_API_KEY\n              value: K8sXk3Vb7Nm2Qw9Lp4\n"
                     "            - name: HF_TOKEN\n              value: \"K8sHfQp2Wo5Ei8Ru1\"\n",
     ["K8sXk3Vb7Nm2Qw9Lp4", "K8sHfQp2Wo5Ei8Ru1"]),
    ("k8s inline args", '          args: ["--model", "BAAI/bge-m3", "--api-key", "K8sArgQw3Er6Ty9Ui2"]\n', ["K8sArgQw3Er6Ty9Ui2"]),
    ("kubectl describe args", "    Args:\n      --model\n      BAAI/bge-m3\n      --api-key\n      KdArgZx8Cv5Bn2Mq7\n"
                              "    Environment:\n      VLLM_API_KEY:  KdEnvLp3Ko6Ji9Hu2\n",
     ["KdArgZx8Cv5Bn2Mq7", "KdEnvLp3Ko6Ji9Hu2"]),
    ("docker inspect args and env", '        "Args": [\n            "--model",\n            "BAAI/bge-m3",\n            "--api_key",\n'
                                    '            "DiArgPo0Iu9Yt8Re7"\n        ],\n        "Env": [\n'
                                    '            "VLLM_API_KEY=DiEnvVk4Lk3Jh2Gf1",\n            "PATH=/usr/bin"\n        ],\n',
     ["DiArgPo0Iu9Yt8Re7", "DiEnvVk4Lk3Jh2Gf1"]),
    ("yaml block scalar", "llm:\n  api_key: |\n    YbSc4Ml7Nq2Wz9Xc\n  model: bge-m3\n", ["YbSc4Ml7Nq2Wz9Xc"]),
    ("base64 dockerconfigjson", "  .dockerconfigjson: " + DOCKERCONFIG + "\n", ["DcPw3Lk8Jh5Gf2Qa", DOCKERCONFIG[8:60]]),
    ("base64 json config", "CONFIG_B64=" + B64CONFIG + "\n", ["B64CfgKey9Qw3Er6Ty", B64CONFIG[4:40]]),
    ("a key split across two lines", 'export OPENAI_API_KEY="sk-proj-SpLt8Qw2Er5Ty7Ui\\\n9Op6As1Df4Gh3Jk"\n',
     ["sk-proj-SpLt8Qw2Er5Ty7Ui", "9Op6As1Df4Gh3Jk"]),
    ("flags with underscores", "python -m vllm.entrypoints.openai.api_server --api_key FlgUnd3Rw7Ty1Ui --hf_token Hft4Yu7Io0Pa3Sd\n",
     ["FlgUnd3Rw7Ty1Ui", "Hft4Yu7Io0Pa3Sd"]),
    ("a quoted bearer and an ApiKey scheme", 'Authorization: Bearer "QtBr7Xz4Cv1Bn8Mq"\nAuthorization: ApiKey AkSc9Lm2Nq5Wx8Ez\n',
     ["QtBr7Xz4Cv1Bn8Mq", "AkSc9Lm2Nq5Wx8Ez"]),
    ("a bare Baidu key", "client = Qianfan(ak='bce-v3/ALTAK-Bd7Kq2Lm9Wz4Xc1Vb/5f2e8a9c1d3b7e6f4a0c2d8e9b1f3a5c7d9e0b2f')\n"
                         "or bare: bce-v3/ALTAK-Bd8Kq3Lm0Wz5Xc2Vb/6f2e8a9c1d3b7e6f4a0c2d8e9b1f3a5c7d9e0b2a\n",
     ["ALTAK-Bd7Kq2Lm9Wz4Xc1Vb/5f2e8a9c1d3b7e6f4a0c2d8e9b1f3a5c7d9e0b2f", "Bd8Kq3Lm0Wz5Xc2Vb", "6f2e8a9c1d3b7e6f4a0c"]),
    ("a bare Zhipu key", "calling glm-4 with 2f9c4e1a7b3d6e8f0a1c2b3d4e5f6a7b.Zp8Xq2Lm5Wk9Rt3Y\n",
     ["2f9c4e1a7b3d6e8f0a1c2b3d4e5f6a7b.Zp8Xq2Lm5Wk9Rt3Y", "Zp8Xq2Lm5Wk9Rt3Y"]),
    ("a DSN whose password holds @", "DATABASE_URL=postgresql://app:Pa@ss-W0rd-42x@db.internal:5432/app\n"
                                      "connecting to postgresql://app:Pb@ss-W1rd-43y@db.internal:5432/app\n",
     ["Pa@ss-W0rd-42x", "ss-W0rd-42x", "Pb@ss-W1rd-43y", "ss-W1rd-43y"]),
    ("a DSN inside a JSON string", '{"dsn": "postgresql:\\/\\/app:JsDsn4Pw7Qz1Xc@db:5432\\/x"}\n', ["JsDsn4Pw7Qz1Xc"]),
    ("a credential header after a label", "X-Api-Key (from vault): LbHd6Qw3Er9Ty2Ui\n", ["LbHd6Qw3Er9Ty2Ui"]),
    ("an echo worded another way", "curl -H 'Authorization: Bearer EcWd5Rt8Yu1Io4Pa' http://127.0.0.1:8000/v1/models\n"
                                   '{"detail": "the token EcWd5Rt8Yu1Io4Pa was not accepted"}\n', ["EcWd5Rt8Yu1Io4Pa"]),
    ("an OpenSSH private key block", "-----BEGIN OPENSSH PRIVATE KEY-----\n"
                                      "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n"
                                      "QyNTUxOQAAACBVq2f8Lk3Jh7Gf1Ds4Aq9Zx6Cv3Bn0Mq8Wx5Ez2Rc7Tv4AAAAJgAAAAA\n"
                                      "-----END OPENSSH PRIVATE KEY-----\n",
     ["b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW",
      "QyNTUxOQAAACBVq2f8Lk3Jh7Gf1Ds4Aq9Zx6Cv3Bn0Mq8Wx5Ez2Rc7Tv4AAAAJgAAAAA"]),
    ("an indented multi-line INI value", "[database]\nuser = app\npassword =\n    IniMlPw4Qz7Wx1Ec\n    IniMlPw2Rt5Yu8Io\nhost = db\n",
     ["IniMlPw4Qz7Wx1Ec", "IniMlPw2Rt5Yu8Io"]),
    ("a high-entropy token next to an auth word", "using the auth token Ht7Kq2Lm9Wz4Xc1Vb8Np for the gateway\n",
     ["Ht7Kq2Lm9Wz4Xc1Vb8Np"]),
    ("vendor shapes of a maintained detector set", "sendgrid SG.Ab3Cd5Ef7Gh9Ij1Kl3Mn5O.Qr7St9Uv1Wx3Yz5Ab7Cd9Ef1Gh3Ij5Kl7Mn9Op1Qr3St5Uv\n"
                                                   "gitlab glpat-Xq2Lm5Wk9Rt3Yb7Nc4Vd1\n",
     ["SG.Ab3Cd5Ef7Gh9Ij1Kl3Mn5O.Qr7St9Uv1Wx3Yz5Ab7Cd9Ef1Gh3Ij5Kl7Mn9Op1Qr3St5Uv", "glpat-Xq2Lm5Wk9Rt3Yb7Nc4Vd1"]),
]
# a config printed over several lines by vLLM's logger, every line with its prefix (issue 27)
PREFIX = "(APIServer pid=100) ERROR 11-20 09:14:03 [cfg.py:11] "
MULTILINE_LOG = (f'{PREFIX}config = {{\n{PREFIX}  "api_key":\n{PREFIX}      "JSONMULTILINEkeyLLLL123456"\n'
                 f"{PREFIX}  password =\n{PREFIX}      PreFixPw7Qz2Wx5Ec\n")


def _outputs(tmp_path: Path, paths: list[str]) -> dict[str, str]:
    """Every report and every export of `paths`, as a reader sees them."""
    runner = CliRunner()
    out: dict[str, str] = {}
    for fmt in ("text", "markdown", "json", "html"):
        r = runner.invoke(app, ["analyze", *paths, "--format", fmt])
        assert r.exit_code == 0, r.output
        out[fmt] = html.unescape(r.output) if fmt == "html" else r.output
    for ext in ("csv", "jsonl", "parquet"):
        target = tmp_path / f"events.{ext}"
        r = runner.invoke(app, ["events", *paths, "-o", str(target)])
        assert r.exit_code == 0, r.output
        out[ext] = (pl.read_parquet(target).write_ndjson() if ext == "parquet" else target.read_text())
    return out


def _absent(outputs: dict[str, str], secrets: list[str], what: str) -> None:
    for name, text in outputs.items():
        for secret in secrets:
            assert secret not in text, (what, name, secret)
            encoded = base64.b64encode(secret.encode()).decode().rstrip("=")
            assert encoded not in text, (what, name, "base64", secret)


@pytest.mark.parametrize("what,text,secrets", CASES, ids=[c[0] for c in CASES])
def test_each_shape_reaches_no_report_and_no_export(tmp_path, what, text, secrets):
    for name, body in (("plain.txt", text), ("issue.md", f"My setup:\n\n```\n{text}```\n\nand it fails.\n")):
        path = tmp_path / name
        path.write_text(body, encoding="utf-8")
        _absent(_outputs(tmp_path, [str(path)]), secrets, f"{what} in {name}")


def test_a_value_on_the_line_after_its_name_is_masked_in_every_column_of_every_export(tmp_path):
    log = tmp_path / "vllm.log"
    log.write_text("(APIServer pid=100) INFO 11-20 09:14:01 [api_server.py:1] vLLM API server version 0.11.0\n" + MULTILINE_LOG)
    outputs = _outputs(tmp_path, [str(log)])
    _absent(outputs, ["JSONMULTILINEkeyLLLL123456", "PreFixPw7Qz2Wx5Ec"], "multi-line")
    rows = [json.loads(line) for line in outputs["jsonl"].splitlines()]
    value_line = next(r for r in rows if r["line"] == 4)
    assert value_line["text"].startswith(PREFIX), value_line["text"]      # the prefix is left as it was
    assert "<key: 26 chars>" in value_line["text"] and "<key: 26 chars>" in value_line["message"]


def test_every_catalogue_entry_split_over_two_lines_reaches_no_export(tmp_path):
    """Each catalogue line with its value moved to the next line, under a logger prefix and bare."""
    from emblens.events.redact import CATALOGUE

    lines, secrets = [], []
    for _name, line, secret in CATALOGUE:
        at = line.index(secret)
        head, tail = line[:at].rstrip(" \"'"), line[at:]
        if not head or head.endswith(("-----",)):
            continue
        lines += [f"{PREFIX}{head}", f"{PREFIX}    {tail}", head, f"    {tail}"]
        secrets.append(secret)
    log = tmp_path / "vllm.log"
    log.write_text("(APIServer pid=100) INFO 11-20 09:14:01 [api_server.py:1] vLLM API server version 0.11.0\n"
                   + "\n".join(lines) + "\n")
    assert len(secrets) >= 30
    _absent(_outputs(tmp_path, [str(log)]), secrets, "split catalogue")


def test_what_detect_secrets_finds_in_realistic_files_is_absent_from_every_output(tmp_path):
    from detect_secrets import SecretsCollection
    from detect_secrets.settings import default_settings

    files = {
        "deploy.yaml": "apiVersion: apps/v1\nkind: Deployment\nspec:\n  template:\n    spec:\n      containers:\n"
                       "        - name: vllm\n          image: vllm/vllm-openai:v0.11.0\n"
                       '          args: ["--model", "BAAI/bge-m3", "--api-key", "K8sArgQw3Er6Ty9Ui2"]\n'
                       "          env:\n            - name: X_API_KEY\n              value: K8sXk3Vb7Nm2Qw9Lp4\n"
                       '            - name: HF_TOKEN\n              value: "hf_K8sEnvAbCdEfGhIjKlMnOpQrStUv"\n',
        "settings.ini": "[server]\nhost = 0.0.0.0\nport = 8000\n\n[database]\nuser = app\npassword =\n    IniMlPw4Qz7Wx1Ec\n"
                        "    IniMlPw2Rt5Yu8Io\n\n[llm]\napi_key = IniApiKq4Wz8Xc2Vb6N\n",
        "app.env": "OPENAI_BASE_URL=http://127.0.0.1:8000/v1\nOPENAI_API_KEY_2=Nm4Lk7Jh2Gf5Ds8Aq1\nQIANFAN_AK=AkQf7Tz2Lm9Wq4Rt6Yp1\n"
                   "PGPASSWORD=Pg7vWq2LmZx9Tr4Ey\nAPI_SECRETS=Ap5Sc7Rt9Lm2Qz4Wx\n",
        "client.py": 'from openai import OpenAI\n\nclient = OpenAI(base_url="http://127.0.0.1:8000/v1", api_key="PyCliKey7Qw2Er5Ty8Ui")\n'
                     'db_password = "PyDbPw3Lk6Jh9Gf2Ds"\nresp = client.embeddings.create(model="bge-m3", input=["hello"])\n',
        "id_ed25519": "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n"
                      "QyNTUxOQAAACBVq2f8Lk3Jh7Gf1Ds4Aq9Zx6Cv3Bn0Mq8Wx5Ez2Rc7Tv4AAAAJgAAAAA\n-----END OPENSSH PRIVATE KEY-----\n",
    }
    found: dict[str, list[str]] = {}
    with default_settings():
        for name, text in files.items():
            path = tmp_path / name
            path.write_text(text, encoding="utf-8")
            collection = SecretsCollection()
            collection.scan_file(str(path))
            found[name] = []
            for secret in (s for secrets in collection.data.values() for s in secrets if s.secret_value):
                if secret.type == "Private Key":      # it reports the block's marker: the secret is the block's body
                    body = text.split("PRIVATE KEY-----\n", 1)[1].split("\n-----END", 1)[0]
                    found[name] += body.splitlines()
                else:
                    found[name].append(secret.secret_value)
    assert sum(len(v) for v in found.values()) >= 8, found          # the judge found something to judge
    for name, secrets in found.items():
        _absent(_outputs(tmp_path, [str(tmp_path / name)]), secrets, f"detect-secrets on {name}")


def test_the_vendor_shapes_are_the_installed_detect_secrets_own():
    from emblens.events import vendor_shapes

    source, shapes = vendor_shapes.generate()
    assert (source, shapes) == (vendor_shapes.SOURCE, vendor_shapes.SHAPES), \
        "src/emblens/events/vendor_shapes.py is stale: python -m emblens.events.vendor_shapes --write"
    assert len(shapes) >= 30


def test_a_secret_in_an_error_body_quoted_on_one_line_is_masked_up_to_the_next_escape(tmp_path):
    """`{"error": {"message": "…\\nAuthorization: Bearer sk-…\\napi_key=\\"…\\""}}`: the bearer value ends at
    the JSON escape, so the next field keeps its name and its value is masked too, in every output."""
    from typer.testing import CliRunner

    from emblens.frontends.cli import app

    body = tmp_path / "body.json"
    body.write_text('{"error": {"message": "request failed\\nAuthorization: Bearer sk-proj-Abcdef1234567890abcdef1234567890'
                    '\\napi_key=\\"JSONMULTILINEkeyLLLL123456\\"", "code": 401}}\n', encoding="utf-8")
    for fmt in ("text", "json", "markdown"):
        out = CliRunner().invoke(app, ["analyze", str(body), "-f", fmt]).stdout
        assert "Abcdef1234567890" not in out and "JSONMULTILINEkey" not in out, (fmt, out)
    events = tmp_path / "events.jsonl"
    CliRunner().invoke(app, ["events", str(body), "--output", str(events)])
    text = events.read_text(encoding="utf-8")
    assert "Abcdef1234567890" not in text and "JSONMULTILINEkey" not in text
