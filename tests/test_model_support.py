"""A model newer than the server release that runs it (findings.support, data/model_support.yaml)."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import polars as pl
import pytest

from emblens.diagnose import analyze
from emblens.findings.support import said_versions
from emblens.rules.loader import load_rules


def _rows(*lines: str) -> pl.DataFrame:
    return pl.DataFrame({"source": ["issue.md"] * len(lines), "line": list(range(1, len(lines) + 1)),
                         "text": list(lines), "message": [None] * len(lines)},
                        schema={"source": pl.String, "line": pl.Int64, "text": pl.String, "message": pl.String})


@pytest.mark.parametrize(("line", "software", "version"), [
    ('"vllm==0.10.1.1",', "vllm", "0.10.1.1"),
    ("vLLM Version: 0.6.3.post1", "vllm", "0.6.3.post1"),          # collect_env
    ("vllm                              0.6.3", "vllm", "0.6.3"),   # pip list
    ("docker run --gpus all vllm/vllm-openai:v0.8.5 --model Qwen/Qwen2.5-VL-7B-Instruct", "vllm", "0.8.5"),
    ("sglang: 0.4.6.post1", "sglang", "0.4.6.post1"),               # python -m sglang.check_env
    ("image: lmsysorg/sglang:v0.4.3-cu124", "sglang", "0.4.3"),
    ("ollama version is 0.5.13", "ollama", "0.5.13"),               # ollama -v
    ("    image: ollama/ollama:0.6.2", "ollama", "0.6.2"),
    ("version: 4567 (1d36b367)", "llamacpp", "b4567"),              # llama-server --version
    ("main: build = 3912 (4d5ed834)", "llamacpp", "b3912"),
    ("llama-b5123-bin-win-cuda-cu12.4-x64.zip", "llamacpp", "b5123"),
    ("- `transformers` version: 4.51.0", "transformers", "4.51.0"),  # transformers-cli env
    ("ghcr.io/huggingface/text-embeddings-inference:cpu-1.5", "tei", "1.5"),
])
def test_the_versions_people_paste_are_read(line, software, version):
    assert said_versions(_rows(line), {})[software].version == version


@pytest.mark.parametrize("line", ["vllm serve Qwen/Qwen3-8B --port 8000", "pip install -U vllm", "from vllm import LLM",
                                  "ollama run llama3.2:3b", "INFO 05-01 vllm.entrypoints.openai.api_server: 12 requests"])
def test_a_name_without_a_version_gives_none(line):
    assert said_versions(_rows(line), {}) == {}


def test_an_issue_template_field_gives_the_version_on_a_later_line():
    got = said_versions(_rows("### OS", "", "Linux", "### Ollama version", "", " 0.5.13", "### GPU"), {})
    assert got["ollama"].version == "0.5.13" and got["ollama"].line == 6


def test_every_family_in_the_table_is_read_from_source_and_matches_no_other_family():
    support = load_rules().models.support
    assert len(support) >= 40
    names = {f.name for f in support}
    assert len(names) == len(support)
    for fam in support:
        assert fam.since, fam.name
        for key, version in fam.since:
            assert re.search(r"\d", version) and fam.sources.get(key), (fam.name, key)
    # the ids and tags people write: each is named by one family only (Qwen3-VL is not Qwen3, Qwen2.5-VL not Qwen2.5)
    for name, family in [("Qwen/Qwen3-VL-235B-A22B-Instruct", "Qwen3-VL"), ("Qwen/Qwen2.5-VL-7B-Instruct", "Qwen2.5-VL"),
                         ("google/gemma-3-27b-it", "Gemma 3"), ("openai/gpt-oss-20b", "gpt-oss")]:
        hits = [f.name for f in support if re.search(f.match, name, re.I)]
        assert hits and hits[0].startswith(family), (name, hits)
    for name in ("Qwen/Qwen3-8B", "Qwen/Qwen2.5-7B-Instruct", "meta-llama/Llama-2-7b-chat-hf"):
        assert not [f.name for f in support if re.search(f.match, name, re.I) and "VL" in f.name], name


PASTE = """# AttributeError: 'Qwen3VLMoeModel' object has no attribute 'language_model.embed_tokens'

 "vllm==VERSION",
 "transformers @ git+https://github.com/huggingface/transformers.git"
Model: Qwen/Qwen3-VL-235B-A22B-Instruct
i'm using pipeline parallel >1

```
(EngineCore_0 pid=2240) ERROR 09-24 10:11:12 [core.py:700] AttributeError: 'Qwen3VLMoeModel' object has no attribute 'language_model.embed_tokens'
```
"""


def test_a_model_newer_than_the_vllm_release_is_the_possible_cause(tmp_path):
    p = tmp_path / "issue.md"
    p.write_text(PASTE.replace("VERSION", "0.10.1.1"))
    first = analyze([str(p)]).findings[0]
    assert first.rule == "model.unsupported_architecture" and first.cause == "possible"
    assert "Qwen/Qwen3-VL-235B-A22B-Instruct" in first.summary and "vLLM 0.10.1.1" in first.summary
    assert "0.11.0" in first.remedy[0]


def test_the_same_model_on_a_release_that_supports_it_is_no_such_cause(tmp_path):
    p = tmp_path / "issue.md"
    p.write_text(PASTE.replace("VERSION", "0.11.0"))
    assert "model.unsupported_architecture" not in {f.rule for f in analyze([str(p)]).findings}


def test_a_release_and_a_newer_model_without_any_failure_claim_nothing(tmp_path):
    p = tmp_path / "notes.md"
    p.write_text("We run vllm==0.10.1.1 in production.\nNext quarter we plan to try Qwen/Qwen3-VL-8B-Instruct.\n")
    assert analyze([str(p)]).findings == []


def test_a_server_list_of_supported_architectures_names_no_model(tmp_path):
    p = tmp_path / "error.txt"
    p.write_text("vllm==0.10.1.1\nValueError: Model architectures ['FooForCausalLM'] are not supported for now. "
                 "Supported architectures: ['LlamaForCausalLM', 'Qwen3VLForConditionalGeneration']\n")
    findings = analyze([str(p)]).findings
    assert findings[0].rule == "model.unsupported_architecture" and findings[0].cause != "possible"
    assert "Qwen3VL" not in findings[0].summary


def test_a_rules_folder_extends_the_table_and_a_broken_one_is_one_line_and_exit_2(tmp_path):
    import subprocess
    import sys

    rules = tmp_path / "rules"
    (rules / "data").mkdir(parents=True)
    (rules / "embed_404.yaml").write_text(
        "id: site.embed_404\ntitle: Embedding 404s\nseverity: warning\n"
        "means: Our gateway answers 404 on embeddings when a tenant is not provisioned.\n"
        "match: {kind: http, http_status: 404, http_path: /v1/embeddings}\n"
        "message: '{count} embedding calls got 404 on {http_path}'\nremedy: [Provision the tenant.]\n")
    table = rules / "data" / "model_support.yaml"
    table.write_text("families:\n  - name: Acme-VL\n    match: 'acme[-_ ]?vl'\n    since: {vllm: '0.20.0'}\n"
                     "    source: {vllm: 'our own build notes'}\n")
    paste = tmp_path / "issue.md"
    paste.write_text("vllm==0.12.0\nvllm serve acme/Acme-VL-7B\nRuntimeError: Engine core initialization failed\n")
    r = subprocess.run([sys.executable, "-m", "emblens", "analyze", str(paste), "--rules", str(rules), "--format", "json"],
                       capture_output=True, text=True)
    assert r.returncode in (0, 1), r.stderr
    assert "Acme-VL" in r.stdout and "0.20.0" in r.stdout
    table.write_text("families:\n  - name: Bad\n    match: 'x'\n    since: {vlm: '1.0'}\n")
    r = subprocess.run([sys.executable, "-m", "emblens", "analyze", str(paste), "--rules", str(rules)],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "model_support.yaml" in r.stderr and "vlm" in r.stderr


def test_every_route_in_the_table_names_its_first_release_and_where_it_was_read():
    routes = load_rules().models.routes
    assert len(routes) >= 15
    assert len({(r.server, r.route) for r in routes}) == len(routes)
    for r in routes:
        assert r.route.startswith("/") and r.source, r
        assert re.fullmatch(r"\d+\.\d+\.\d+|b\d{3,5}", r.since), r


def test_a_route_newer_than_the_server_is_the_cause_and_an_older_one_is_not(tmp_path):
    """A 404 on Ollama's /api/chat from a 0.1.13 server (the route came in 0.1.14) is the release;
    the same 404 from a release that has the route is a model the server lacks."""
    def report(version: str) -> dict:
        log = tmp_path / f"ollama-{version}.log"
        log.write_text(f"2023/12/05 10:01:02 routes.go:787: Listening on 127.0.0.1:11434 (version {version})\n"
                       '[GIN] 2023/12/05 - 10:01:09 | 404 |       6.01µs |       127.0.0.1 | POST     "/api/chat"\n'
                       '[GIN] 2023/12/05 - 10:01:12 | 200 |  1.201337s |       127.0.0.1 | POST     "/api/generate"\n')
        r = subprocess.run([sys.executable, "-m", "emblens", "analyze", str(log), "--format", "json"],
                           capture_output=True, text=True)
        assert r.returncode in (0, 1), r.stderr
        return json.loads(r.stdout)["findings"][0]
    old = report("0.1.13")
    assert old["rule"] == "client.version_outdated" and old["cause"] == "route_newer"
    assert "0.1.14" in old["summary"] and "0.1.13" in old["summary"]
    assert report("0.1.17")["rule"] == "model.not_found"


def test_a_malformed_route_table_is_one_line_naming_the_file(tmp_path):
    rules = tmp_path / "rules"
    (rules / "data").mkdir(parents=True)
    (rules / "probe_404.yaml").write_text(
        "id: site.probe_404\ntitle: Probe 404s\nseverity: warning\nmeans: Our probe's path is gone.\n"
        "match: {kind: http, http_status: 404, http_path: /probe}\nmessage: '{count} probes got 404'\nremedy: [Fix the probe.]\n")
    (rules / "data" / "model_support.yaml").write_text("routes:\n  - {server: olama, route: /api/chat, since: 0.1.14}\n")
    paste = tmp_path / "issue.md"
    paste.write_text("curl http://localhost:11434/api/chat\n404 page not found\n")
    r = subprocess.run([sys.executable, "-m", "emblens", "analyze", str(paste), "--rules", str(rules)],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "model_support.yaml" in r.stderr and "olama" in r.stderr


def test_ollamas_no_route_answer_names_the_call_beside_it_not_a_route_shown_working_elsewhere(tmp_path):
    """Gin's `404 page not found` with no version: the route of the call pasted beside it is newer than
    the server; a route another input shows answering is not what the 404 answered."""
    paste = tmp_path / "issue.md"
    paste.write_text('## Chat with a model: Not Working\n### Response is "404 page not found"\n```\n'
                     "curl http://localhost:11434/api/chat -d '{\"model\": \"llama2\", \"messages\": []}'\n```\n")
    r = subprocess.run([sys.executable, "-m", "emblens", "analyze", str(paste), "--format", "json"], capture_output=True, text=True)
    top = json.loads(r.stdout)["findings"][0]
    assert top["rule"] == "client.version_outdated" and "0.1.14" in top["summary"], top["summary"]
    works = tmp_path / "curl.txt"
    works.write_text("$ curl -s http://127.0.0.1:11434/api/chat -d '{\"model\":\"llama2\",\"messages\":[]}'\n"
                     '{"model":"llama2","message":{"role":"assistant","content":"hi"},"done":true}   # works\n')
    doctor = tmp_path / "doctor.txt"
    doctor.write_text("Embedding:      FAIL  ollama/nomic-embed-text api_base=http://127.0.0.1:11434\n"
                      "                (probe failed: OpenAI API error: 404 page not found)\n")
    r = subprocess.run([sys.executable, "-m", "emblens", "analyze", str(works), str(doctor), "--format", "json"],
                       capture_output=True, text=True)
    assert all(f["rule"] != "client.version_outdated" for f in json.loads(r.stdout)["findings"])


def test_llama_servers_no_route_answer_names_the_call_only_where_llama_cpp_answered(tmp_path):
    """llama-server answers a path it has no handler for with `File Not Found`: beside llama.cpp's name
    (its `Server:` header) the OpenAI route of the pasted call is newer than the build; the same words from
    a server that is not named llama.cpp say nothing of its release."""
    body = ("```bash\ncurl -i http://localhost:8080/v1/embeddings -H 'Content-Type: application/json' "
            "-d '{\"input\": \"hello\"}'\n```\n\n```\nHTTP/1.1 404 Not Found\nContent-Type: text/plain\n{server}"
            "\nFile Not Found\n```\n")
    paste = tmp_path / "issue.md"
    paste.write_text(body.replace("{server}", "Server: llama.cpp"))
    r = subprocess.run([sys.executable, "-m", "emblens", "analyze", str(paste), "--format", "json"], capture_output=True, text=True)
    top = json.loads(r.stdout)["findings"][0]
    assert top["rule"] == "client.version_outdated" and "b2004" in top["summary"], top["summary"]
    assert "File Not Found" in top["summary"]
    paste.write_text(body.replace("{server}", "Server: Werkzeug/3.0.1 Python/3.11.4"))
    r = subprocess.run([sys.executable, "-m", "emblens", "analyze", str(paste), "--format", "json"], capture_output=True, text=True)
    assert all(f["rule"] != "client.version_outdated" for f in json.loads(r.stdout)["findings"])
