"""Make the traffic fixtures with the real programs: mock server -> real mitmdump (reverse proxy,
`-w`) -> real openai client or curl; HAR exported by mitmdump itself (`--set hardump=`); curl -v
transcripts from real curl. Everything listens on 127.0.0.1.

    python capture.py --mitm11 /path/venv11/bin/mitmdump --mitm10 /path/venv10/bin/mitmdump \\
        --openai /path/openai-venv/bin/python [--only NAME]

Writes the fixtures next to their rules (rules/<area>/<name>.pos-*.flow, ...). The cases are the
table CASES below: (fixture path, mock scenario, mitmdump version, steps).
"""

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from localnet import free_port, wait_port

HERE = Path(__file__).resolve().parent
RULES = HERE.parent.parent / "rules"
KEY = "s3cret-demo-key"
Q = "query: how do I proof bread dough overnight?"
P = "passage: Proofing dough in the fridge overnight slows the yeast and deepens the flavour."


def embed(model="Qwen3-Embedding-4B", inputs=(Q,), **kw):
    return {"call": "embed", "model": model, "input": list(inputs), **kw}


def curl(*args):
    return {"call": "curl", "args": list(args)}


MODELS = {"call": "models"}
# (fixture, scenario, mitmdump version, steps)
CASES = [
    ("auth/invalid_key.pos-openai1.109.flow", "auth", 11, [embed(key="sk-wrong-0123456789abcdef")]),
    ("auth/invalid_key.neg-healthy-auth.flow", "auth", 11, [embed(key=KEY), MODELS | {"key": KEY}]),
    ("auth/empty_key.pos-curl.flow", "auth", 11, [curl("-H", "Authorization: Bearer ", "-H", "Content-Type: application/json",
                                                       "-d", json.dumps({"model": "Qwen3-Embedding-4B", "input": [Q]}), "/v1/embeddings")]),
    ("auth/missing_key.pos-curl.flow", "auth", 10, [curl("-H", "Content-Type: application/json",
                                                         "-d", json.dumps({"model": "Qwen3-Embedding-4B", "input": [Q]}), "/v1/embeddings")]),
    ("auth/header_scheme.pos-x-api-key.flow", "auth", 11, [curl("-H", f"X-API-Key: {KEY}", "-H", "Content-Type: application/json",
                                                                "-d", json.dumps({"model": "Qwen3-Embedding-4B", "input": [Q]}), "/v1/embeddings")]),
    ("auth/header_scheme.pos-raw-key.flow", "auth", 11, [curl("-H", f"Authorization: {KEY}", "-H", "Content-Type: application/json",
                                                              "-d", json.dumps({"model": "Qwen3-Embedding-4B", "input": [Q]}), "/v1/embeddings")]),
    ("auth/header_scheme.neg-wrong-key.flow", "auth", 11, [embed(key="sk-wrong-0123456789abcdef")]),
    ("auth/forbidden.pos-openai1.109.flow", "forbidden", 11, [embed()]),
    ("model/not_found.pos-openai1.109-models.flow", "model", 10, [MODELS, embed(model="qwen3-embedding-4b")]),
    ("model/not_found.neg-healthy.flow", "ok", 10, [MODELS, embed(), embed(inputs=[Q, P])]),
    ("http/wrong_path.pos-no-v1.flow", "ok", 11, [embed() | {"base_url_suffix": ""}]),
    ("http/rate_limited.pos-openai1.109.flow", "ratelimit", 11, [embed()]),
    ("http/gateway_error.pos-502.flow", "gateway502", 11, [embed()]),
    ("http/payload_too_large.pos-413.flow", "toolarge", 11, [embed()]),
    ("embed/input_too_long.pos-openai1.109.flow", "toolong", 11, [embed()]),
    ("embed/bad_input.pos-empty-list.flow", "badinput", 11, [embed(inputs=[])]),
    ("embed/unsupported_param.pos-strict.flow", "strict", 11, [embed(extra_body={"max_tokens": 16, "temperature": 0})]),
    ("embed/unsupported_param.pos-ignored.flow", "ok", 11, [embed(extra_body={"temperature": 0.2})]),
    ("embed/unsupported_param.neg-dimensions.flow", "ok", 11, [embed(dimensions=2560)]),
    ("embed/missing_prefix.pos-e5-mixed.flow", "ok", 11, [embed(model="multilingual-e5-large", inputs=[Q, P]),
                                                          embed(model="multilingual-e5-large", inputs=["how do I proof bread dough overnight?"])]),
    ("embed/missing_prefix.pos-nomic-none.flow", "ok", 11, [embed(model="nomic-embed-text-v1.5", inputs=["how do I proof bread dough overnight?"])]),
    ("embed/missing_prefix.neg-e5-consistent.flow", "ok", 11, [embed(model="multilingual-e5-large", inputs=[Q]),
                                                               embed(model="multilingual-e5-large", inputs=[P, P])]),
    ("embed/missing_prefix.neg-qwen3-documents.flow", "ok", 11, [
        embed(inputs=["Instruct: Given a web search query, retrieve relevant passages that answer the query\nQuery: how do I proof dough?"]),
        embed(inputs=["Proofing dough in the fridge overnight slows the yeast.", "Bread flour has more protein."])]),
    ("embed/dimension_mismatch.pos-small-model.flow", "dims", 11, [embed()]),
    ("embed/dimension_mismatch.pos-dimensions-ignored.flow", "ok", 11, [embed(dimensions=512)]),
    ("embed/dimension_mismatch.neg-healthy.flow", "ok", 10, [embed(), embed(inputs=[Q, P])]),
    # cross-source bundles: the capture beside a server log or a client traceback
    ("auth/invalid_key.pos-capture-and-vllm/capture.flow", "auth", 11, [embed(key="sk-wrong-0123456789abcdef")]),
    ("model/not_found.pos-traceback-and-models/models.flow", "ok", 11, [MODELS]),
]
# the other members of those bundles
EXTRA = [
    ("auth/invalid_key.pos-capture-and-vllm/vllm.log", ["vllm_log.py", "--version", "0.11", "--requests", "40", "--api-key", KEY]),
    ("model/not_found.pos-traceback-and-models/client.txt", "model/not_found.pos-openai1.109.txt"),
]
# curl -v transcripts, straight to the mock server: (fixture, scenario, curl args)
CURL_CASES = [
    ("auth/header_scheme.pos-curl-v.txt", "auth", ["-H", f"X-API-Key: {KEY}", "-H", "Content-Type: application/json",
                                                   "-d", json.dumps({"model": "Qwen3-Embedding-4B", "input": [Q]}), "/v1/embeddings"]),
    ("model/not_found.pos-curl-v.txt", "model", ["-H", "Authorization: Bearer EMPTY", "-H", "Content-Type: application/json",
                                                 "-d", json.dumps({"model": "Qwen3-Embedding", "input": [Q]}), "/v1/embeddings"]),
    ("http/wrong_path.pos-curl-v.txt", "ok", ["-H", "Content-Type: application/json",
                                              "-d", json.dumps({"model": "Qwen3-Embedding-4B", "input": [Q]}), "/embeddings"]),
    ("net/connection_refused.pos-curl-v.txt", None, ["/v1/models"]),
    ("http/wrong_path.neg-healthy-curl-v.txt", "ok", ["/v1/models"]),
]
# HAR files exported by mitmdump from a capture: (fixture, flow fixture it is made from)
HAR_CASES = [
    ("model/not_found.pos-openai1.109-models.har", "model/not_found.pos-openai1.109-models.flow"),
    ("auth/invalid_key.pos-openai1.109.har", "auth/invalid_key.pos-openai1.109.flow"),
    ("embed/missing_prefix.pos-e5-mixed.har", "embed/missing_prefix.pos-e5-mixed.flow"),
]


def server(scenario: str) -> tuple[subprocess.Popen, int]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(HERE / "mock_server.py"), str(port), scenario])
    wait_port(port)
    return proc, port


def run_steps(steps, base: str, openai_python: str) -> None:
    sdk = [s for s in steps if s["call"] in ("embed", "models")]
    for s in steps:
        if s["call"] == "curl":
            *opts, path = s["args"]
            subprocess.run(["curl", "-s", "-o", "/dev/null", *opts, base + path], check=False)
    if sdk:
        for s in sdk:
            suffix = s.pop("base_url_suffix", "/v1")
            s["base_url"] = base + suffix
        subprocess.run([openai_python, str(HERE / "traffic_client.py"), base + "/v1", json.dumps(sdk)], check=False)


def capture(fixture: str, scenario: str, mitmdump: str, steps, openai_python: str) -> None:
    srv, sport = server(scenario)
    pport = free_port()
    out = RULES / fixture
    out.parent.mkdir(parents=True, exist_ok=True)
    proxy = subprocess.Popen([mitmdump, "-q", "--mode", f"reverse:http://127.0.0.1:{sport}", "--listen-host", "127.0.0.1",
                              "-p", str(pport), "-w", str(out)])
    try:
        wait_port(pport)
        run_steps(steps, f"http://127.0.0.1:{pport}", openai_python)
    finally:
        proxy.send_signal(signal.SIGINT)
        proxy.wait(timeout=20)
        srv.terminate()
        srv.wait()
    print(f"{fixture}: {out.stat().st_size} bytes")


def curl_transcript(fixture: str, scenario: str | None, args) -> None:
    srv = None
    if scenario is None:
        port = free_port()  # nothing listens there: connection refused
    else:
        srv, port = server(scenario)
    *opts, path = args
    try:
        r = subprocess.run(["curl", "-v", *opts, f"http://127.0.0.1:{port}{path}"], capture_output=True, text=True)
    finally:
        if srv:
            srv.terminate()
            srv.wait()
    cmd = "$ curl -v " + " ".join(f"'{a}'" if " " in a or "{" in a else a for a in opts) + f" http://127.0.0.1:{port}{path}"
    (RULES / fixture).write_text(cmd + "\n" + r.stderr + r.stdout + ("\n" if r.stdout and not r.stdout.endswith("\n") else ""))
    print(f"{fixture}: curl exit {r.returncode}")


def har(fixture: str, flow: str, mitmdump: str) -> None:
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "out.har"
        subprocess.run([mitmdump, "-q", "-n", "-r", str(RULES / flow), "--set", f"hardump={out}"], check=True)
        shutil.copy(out, RULES / fixture)
    print(f"{fixture}: from {flow}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mitm11", required=True)
    p.add_argument("--mitm10", required=True)
    p.add_argument("--openai", required=True, help="python of a venv with the openai package")
    p.add_argument("--only", help="only fixtures whose path contains this")
    a = p.parse_args()
    os.environ.pop("OPENAI_API_KEY", None)
    for fixture, scenario, version, steps in CASES:
        if not a.only or a.only in fixture:
            capture(fixture, scenario, a.mitm11 if version == 11 else a.mitm10, [dict(s) for s in steps], a.openai)
    for fixture, scenario, args in CURL_CASES:
        if not a.only or a.only in fixture:
            curl_transcript(fixture, scenario, args)
    for fixture, how in EXTRA:
        if not a.only or a.only in fixture:
            if isinstance(how, list):
                (RULES / fixture).write_bytes(subprocess.run([sys.executable, str(HERE / how[0]), *how[1:]],
                                                             capture_output=True, check=True).stdout)
            else:
                shutil.copy(RULES / how, RULES / fixture)
            print(f"{fixture}: written")
    for fixture, flow in HAR_CASES:
        if not a.only or a.only in fixture:
            har(fixture, flow, a.mitm11)


if __name__ == "__main__":
    main()
