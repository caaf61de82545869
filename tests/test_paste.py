"""Evidence as people paste it: one markdown file holding prose, fenced log excerpts, a traceback,
an nvidia-smi table and curl commands, with the decorations pasting adds."""

from pathlib import Path

import polars as pl

from emblens.diagnose import analyze, load_events

REPO = Path(__file__).resolve().parents[1]
GPU_SAMPLE = REPO / "samples" / "gpu-held-by-another-process"
CLIENT = REPO / "samples" / "model-name-mismatch" / "client-traceback.txt"


def _fenced(*parts: tuple[str, str]) -> str:
    out = ["The server will not start and my client fails too. Logs below.", ""]
    for title, text in parts:
        out += [f"**{title}**", "", "```", text.rstrip("\n"), "```", ""]
    return "\n".join(out)


def test_one_markdown_paste_names_the_root_cause_its_files_name(tmp_path):
    files = [GPU_SAMPLE / "vllm.log", GPU_SAMPLE / "nvidia-smi.txt", CLIENT]
    separate = analyze([str(f) for f in files])
    paste = tmp_path / "issue.md"
    paste.write_text(_fenced(*((f.name, f.read_text()) for f in files)))
    together = analyze([str(paste)])
    assert [f.rule for f in together.findings][:1] == [f.rule for f in separate.findings][:1] == ["gpu.memory_held"]
    assert {f.rule for f in together.findings} == {f.rule for f in separate.findings}
    (info,) = together.inputs
    assert info.kind == "paste" and "vllm-log 1" in info.note and "nvidia-smi 1" in info.note
    assert "python-traceback 1" in info.note
    # line numbers are the markdown file's own: the nvidia-smi row quoted is on the line that holds it
    row = next(e for f in together.findings for e in f.evidence if "180233" in e.text)
    assert "180233" in paste.read_text().splitlines()[row.line - 1]


def test_quote_markers_indentation_and_nested_fences(tmp_path):
    inner = _fenced(("server", '(APIServer pid=7) INFO:     127.0.0.1:1 - "POST /v1/embeddings HTTP/1.1" 404 Not Found'))
    quoted = "\n".join("> " + line for line in inner.splitlines())
    paste = tmp_path / "reply.md"
    paste.write_text("As reported above:\n\n````\n" + quoted + "\n````\n")
    events, (info,), _ = load_events([str(paste)])
    http = events.filter(pl.col("kind") == "http")
    assert http["http_status"].to_list() == [404] and http["origin"].to_list() == ["vllm"]
    assert info.unparsed <= 3


def test_a_lone_access_line_and_a_curl_command_in_prose(tmp_path):
    """A curl command without an Authorization header and one pasted access line: the key is missing."""
    paste = tmp_path / "issue.md"
    paste.write_text(
        "Request:\n```bash\ncurl -X 'POST' \\\n  'http://localhost:8000/v1/chat/completions' \\\n"
        "  -H 'Content-Type: application/json' \\\n  -d '{\n  \"model\": \"m\"\n}'\n```\n\n"
        "Response from server:\n"
        ' (APIServer pid=3999075) INFO:     127.0.0.1:46686 - "GET /v1/chat/completions HTTP/1.1" 401 Unauthorized\n')
    a = analyze([str(paste)])
    assert a.findings[0].rule == "auth.missing_key"
    request = a.events.filter((pl.col("origin") == "client") & (pl.col("kind") == "http"))
    assert request["http_path"].to_list() == ["/v1/chat/completions"] and request["auth_scheme"].to_list() == [None]
    assert request["line"].to_list() == [3]


def test_httpx_log_lines_are_client_requests_with_their_host(tmp_path):
    log = tmp_path / "app.log"
    log.write_text('14:40:49,551 httpx INFO HTTP Request: POST http://localhost:11434/v1/chat/completions "HTTP/1.1 502 Bad Gateway"\n')
    events, _, _ = load_events([str(log)])
    row = events.filter(pl.col("kind") == "http").row(0, named=True)
    assert (row["http_host"], row["http_port"], row["http_path"], row["http_status"], row["origin"]) == (
        "localhost", 11434, "/v1/chat/completions", 502, "client")
    assert analyze([str(log)]).findings[0].rule == "net.proxy_env"


def test_when_no_rule_fires_the_report_leads_with_the_root_exception(tmp_path):
    from typer.testing import CliRunner

    from emblens.frontends.cli import app

    tb = tmp_path / "tb.txt"
    tb.write_text('Traceback (most recent call last):\n  File "a.py", line 3, in <module>\n    f()\nKeyError: \'data\'\n\n'
                  "The above exception was the direct cause of the following exception:\n\n"
                  'Traceback (most recent call last):\n  File "a.py", line 9, in <module>\n    main()\n'
                  "RuntimeError: embedding batch failed\n")
    a = analyze([str(tb)])
    assert a.findings == [] and (a.lead.what, a.lead.evidence.line) == ("KeyError", 4)
    text = CliRunner().invoke(app, ["analyze", str(tb)]).output
    assert "No rule matched, but the inputs hold errors. Start from this one:\n  KeyError: 'data'" in text
    md = CliRunner().invoke(app, ["analyze", str(tb), "-f", "markdown"]).output
    assert "Start from `KeyError` at" in md


def test_a_pasted_start_command_and_environment_become_facts(tmp_path):
    paste = tmp_path / "issue.md"
    paste.write_text(
        "Server, started in docker:\n\n```bash\n"
        "export HTTP_PROXY=http://bob:hunter2@proxy.corp:3128\n"
        "export NO_PROXY=\n"
        "docker run --gpus all -e VLLM_API_KEY=tok-1234567890abcdef -p 8000:8000 \\\n"
        "  vllm/vllm-openai:v0.8.5 --model /models/Qwen3-Embedding-8B \\\n"
        "  --served-model-name qwen3-emb emb \\\n"
        "  --task embed --gpu-memory-utilization 0.85 --max-model-len 8192 --port 8001\n"
        "```\n\nclient:\n\n```\n"
        "openai.NotFoundError: Error code: 404 - {'object': 'error', 'message': 'The model `Qwen3-Embedding-8B` does not "
        "exist.', 'type': 'NotFoundError', 'param': None, 'code': 404}\n```\n"
    )
    a = analyze([str(paste)])
    facts = a.facts.as_values()
    assert facts["served_models"] == ["qwen3-emb", "emb"] and facts["model_paths"] == ["/models/Qwen3-Embedding-8B"]
    assert facts["listen_port"] == 8001 and facts["max_model_len"] == 8192 and facts["api_key_required"] is True
    assert facts["server_command"] == "vllm" and facts["cmd_task"] == "embed" and facts["mem_share"] == 0.85
    # the proxy is named without its user and password; the empty NO_PROXY is still a fact
    assert facts["proxy_env"] == "HTTP_PROXY=http://proxy.corp:3128" and facts["no_proxy"] == ""
    assert a.findings[0].rule == "model.not_found" and "`qwen3-emb`" in a.findings[0].summary
    shown = "\n".join(e.text for f in a.findings for e in f.evidence)
    assert "hunter2" not in shown and "tok-1234567890abcdef" not in shown


def test_sglang_and_tei_commands(tmp_path):
    paste = tmp_path / "cmd.txt"
    paste.write_text("python3 -m sglang.launch_server --model-path Qwen/Qwen2.5-7B-Instruct --port 30000 "
                     "--mem-fraction-static 0.7 --tp 2 --context-length 4096\n")
    facts = analyze([str(paste)]).facts.as_values()
    assert facts["server_command"] == "sglang" and facts["served_models"] == ["Qwen/Qwen2.5-7B-Instruct"]
    assert facts["listen_port"] == 30000 and facts["max_model_len"] == 4096
    assert facts["cmd_memory_share"] == 0.7 and facts["cmd_tensor_parallel"] == 2 and facts["mem_share"] == 0.7
    paste.write_text("docker run --gpus all -p 8080:80 ghcr.io/huggingface/text-embeddings-inference:1.5 "
                     "--model-id BAAI/bge-m3 --max-input-length 8192\n")
    facts = analyze([str(paste)]).facts.as_values()
    assert facts["served_models"] == ["BAAI/bge-m3"] and facts["max_model_len"] == 8192
