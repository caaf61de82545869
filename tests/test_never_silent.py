"""Never silent (issue 25): when no rule fires but the evidence holds an error-like line, the nearest
harvested upstream message names a *possible* cause, with less confidence, the line and the message
it matched; "No known failure found" only when no line reads as an error."""

from pathlib import Path

from typer.testing import CliRunner

from emblens.diagnose import analyze
from emblens.findings.possible import MAX_CONFIDENCE
from emblens.frontends.cli import app
from emblens.rules.loader import load_rules

REPO = Path(__file__).resolve().parents[1]
RULESET = load_rules(())


def _analyze(tmp_path, text, name="paste.txt"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return analyze([str(path)], ruleset=RULESET)


def test_a_reworded_upstream_message_is_a_possible_cause_naming_the_message(tmp_path):
    # vLLM says "Invalid repository ID or local directory specified: '…'"; a wrapper rewords it
    a = _analyze(tmp_path, "Error: Invalid repository ID or local directory: /models/qwen3-emb, check the path\n")
    top = a.findings[0]
    assert top.rule == "model.load_failed" and top.cause == "possible" and top.confidence <= MAX_CONFIDENCE
    assert top.summary.startswith("Possibly: The server could not load the model.")
    assert "vLLM's 'Invalid repository ID or local directory specified" in top.summary
    assert top.evidence[0].text.startswith("Error: Invalid repository ID")


def test_words_every_message_shares_make_no_message_near(tmp_path):
    # "model", "does", "not" are in many messages: sharing them is not nearness
    a = _analyze(tmp_path, "ERROR 12-01 10:00:00 [x.py:1] the cache does not have room to hold this model\n")
    assert not a.findings
    assert a.lead is not None and "does not have room" in a.lead.message


def test_a_line_nearest_a_message_that_is_not_a_failure_is_left_alone(tmp_path):
    from emblens.knowledge.upstream import words

    benign = next(m for m in RULESET.messages.messages if m.id == "none" and len(set(words(m.template))) >= 5)
    assert RULESET.messages.nearest.near(benign.instance).message.id == "none"
    a = _analyze(tmp_path, f"error: {benign.instance}\n")
    assert all(f.cause != "possible" for f in a.findings)


def test_a_rule_finding_leaves_no_room_for_a_possible_cause(tmp_path):
    a = _analyze(tmp_path, "openai.NotFoundError: Error code: 404 - {'error': {'message': 'The model `bge-m4` does not exist.'}}\n"
                           "Error: Invalid repository ID or local directory: /models/qwen3-emb\n")
    assert a.findings[0].rule == "model.not_found" and all(f.cause != "possible" for f in a.findings)


def test_of_two_messages_in_one_line_the_cause_wins_over_its_symptom(tmp_path):
    # TEI wraps the cause in its start-up failure: the architecture the release lacks is the root cause
    a = _analyze(tmp_path, "Error: Could not create backend\n\nCaused by:\n    Could not start backend: Model is not "
                           "supported: unknown variant `deberta-v2`, expected one of `bert`, `xlm-roberta` at line 21 column 28\n")
    assert a.findings[0].rule == "model.unsupported_architecture"
    assert any(f.rule == "engine.startup_failed" and f.explained_by == "model.unsupported_architecture" for f in a.findings)
    # ...but the same message with a value written out is the surer reading: LiteLLM's NotFoundError that
    # quotes FastAPI's route 404 is a path the server lacks, not a model it lacks
    b = _analyze(tmp_path, "litellm.NotFoundError: NotFoundError: OpenAIException - Error code: 404 - {'detail': 'Not Found'} "
                           "LiteLLM Retried: 5 times\n", "litellm.txt")
    assert b.findings[0].rule == "http.wrong_path"


def test_a_start_up_failure_takes_its_cause_from_a_line_near_a_message(tmp_path):
    # a rule reads the engine's generic start-up failure; the line above it is a reworded vLLM message whose id
    # explains it: that possible cause leads, and the start-up failure is its symptom
    a = _analyze(tmp_path, "ERROR 12-01 10:00:00 [core.py:1] Invalid repository ID or local directory: /models/qwen3-emb\n"
                           "(APIServer pid=1) RuntimeError: Engine core initialization failed. See root cause above. "
                           "Failed core proc(s): {}\n", "server.log")
    top = a.findings[0]
    assert top.rule == "model.load_failed" and top.cause == "possible"
    assert any(f.rule == "engine.startup_failed" and f.role == "symptom" for f in a.findings)
    # a refused connection is a symptom too, but its cause is seldom in the same lines: no possible cause joins it
    b = _analyze(tmp_path, "openai.APIConnectionError: Connection error.\nhttpx.ConnectError: [Errno 111] Connection refused\n"
                           "Error: Invalid repository ID or local directory: /models/qwen3-emb\n", "client.txt")
    assert b.findings[0].rule == "net.connection_refused" and all(f.cause != "possible" for f in b.findings)


def test_no_known_failure_only_without_an_error_like_line(tmp_path):
    runner = CliRunner()
    quiet = tmp_path / "quiet.log"
    quiet.write_text('INFO:     127.0.0.1:50000 - "POST /v1/embeddings HTTP/1.1" 200 OK\n')
    assert "No known failure found" in runner.invoke(app, ["analyze", str(quiet)]).stdout
    prose = tmp_path / "prose.md"
    prose.write_text("I call my server from a script and it prints\n\n    Error: 502\n\nthen stops.\n")
    out = runner.invoke(app, ["analyze", str(prose)]).stdout
    assert "No known failure found" not in out and "Error: 502" in out


# Every rule fixture is held to the same by the fixture runner (`emblens.fixtures._run`, so `emblens
# rules test` says it too): a fixture with an error-like line is never told nothing was found.


def test_the_fixture_runner_holds_every_fixture_to_never_silent(tmp_path, monkeypatch):
    from emblens.findings import lead
    from emblens.fixtures import _run

    monkeypatch.setattr(lead, "lead", lambda _events, _messages=None: None)    # as if no line were offered to start from

    rule = RULESET.get("model.not_found")
    part = rule.parts[0]
    silent = tmp_path / "not_found.neg-quiet-error.txt"
    silent.write_text("ERROR 12-01 10:00:00 [x.py:1] the cache does not have room to hold this model\n")
    result = _run(RULESET, rule.id, part.path, str(silent), "silent")
    assert not result.ok and "error-like line" in result.detail


COMPOSE_PASTE = """I run the app with docker compose and point it at Ollama on the same machine.

```yaml
services:
  app:
    image: example/rag-app:1.4
    environment:
      - OPENAI_BASE_URL={url}
      - OPENAI_API_KEY=ollama
```

The chat page never shows an answer. Ollama itself works from the terminal.
"""


def test_settings_that_put_a_loopback_base_url_in_a_container_are_a_possible_cause_when_no_line_says_one(tmp_path):
    a = _analyze(tmp_path, COMPOSE_PASTE.format(url="http://localhost:11434/v1"), "issue.md")
    top = a.findings[0]
    assert (top.rule, top.cause) == ("net.wrong_host_docker", "possible") and top.confidence < MAX_CONFIDENCE
    assert "its settings do: the client's base URL is http://localhost:11434/v1" in top.summary
    assert [(e.line, e.text.strip()) for e in top.evidence] == [(8, "OPENAI_BASE_URL=http://localhost:11434/v1")]
    # the host's own address from inside the container is no such setting
    assert not _analyze(tmp_path, COMPOSE_PASTE.format(url="http://host.docker.internal:11434/v1"), "issue.md").findings


def test_sglang_serving_a_vision_model_without_its_template_is_a_possible_cause_from_the_settings(tmp_path):
    launch = ("python3 -m sglang.launch_server --model-path /models/Qwen2.5-VL-7B-Instruct --port 30000 {extra}\n\n"
              "The answers have nothing to do with the image I send; with transformers they are right.\n")
    top = _analyze(tmp_path, launch.format(extra=""), "issue.md").findings[0]
    assert top.rule == "model.chat_template_missing" and top.cause == "possible"
    assert "--chat-template qwen2-vl" in top.remedy[0] and "/models/Qwen2.5-VL-7B-Instruct" in top.summary
    # with the template given, or on a release that picks it from the model path, the settings say nothing
    assert not _analyze(tmp_path, launch.format(extra="--chat-template qwen2-vl"), "given.md").findings
    newer = "sglang==0.4.9.post2\n" + launch.format(extra="")
    assert not _analyze(tmp_path, newer, "newer.md").findings
    # and a paste that says nothing went wrong is no failure
    assert not _analyze(tmp_path, launch.format(extra="").split("\n\n")[0] + "\nIt runs fine.\n", "fine.md").findings


def test_a_bare_base_url_with_nothing_found_is_a_possible_wrong_path(tmp_path):
    paste = 'export {name}="{url}"\npoetry run app server --port 80\n\nWith this the vLLM model can\'t be found.\n'
    top = _analyze(tmp_path, paste.format(name="VLLM_API_BASE", url="http://10.0.0.5:8000"), "issue.md").findings[0]
    assert top.rule == "http.wrong_path" and top.cause == "possible"
    assert top.remedy[0] == "Set VLLM_API_BASE to http://10.0.0.5:8000/v1."
    # a base URL that ends in /v1 says nothing, nor does Ollama's own API on its bare host
    assert not _analyze(tmp_path, paste.format(name="VLLM_API_BASE", url="http://10.0.0.5:8000/v1"), "v1.md").findings
    ollama = _analyze(tmp_path, paste.format(name="OLLAMA_BASE_URL", url="http://10.0.0.5:11434"), "ollama.md").findings
    assert not any(f.rule == "http.wrong_path" for f in ollama)


def test_a_known_failure_outside_the_catalogue_is_where_to_start_with_what_it_means(tmp_path):
    a = _analyze(tmp_path, 'POST /api/chat with an image\n{"error":"this model is missing data required for image input"}\n')
    assert not a.findings and a.lead is not None
    assert a.lead.what == "known error outside the catalogue" and "Ollama" in a.lead.message
    assert "vision-capable model" in a.lead.message and a.lead.evidence.line == 2
    out = CliRunner().invoke(app, ["analyze", str(tmp_path / "paste.txt")]).stdout
    assert "No known failure found" not in out and "known error outside the catalogue: Ollama" in out, out


def test_a_refused_connection_takes_its_cause_from_an_app_said_to_run_in_docker(tmp_path):
    paste = ("I installed the docker version of AnythingLLM, it runs on http://localhost:3001\n"
             "Ollama runs on the same machine on http://localhost:11434\n\n"
             "openai.APIConnectionError: Connection error.\nhttpx.ConnectError: [Errno 111] Connection refused\n")
    a = _analyze(tmp_path, paste, "issue.md")
    assert a.findings[0].rule == "net.wrong_host_docker" and a.findings[0].cause == "possible"
    assert "http://localhost:11434" in a.findings[0].summary
    assert any(f.rule == "net.connection_refused" and f.explained_by == "net.wrong_host_docker" for f in a.findings)
    # without the app in a container, the refused connection stays the finding
    b = _analyze(tmp_path, paste.replace("the docker version of ", ""), "plain.md")
    assert b.findings[0].rule == "net.connection_refused" and all(f.cause != "possible" for f in b.findings)


def test_a_server_shown_listening_on_the_loopback_for_a_client_in_a_container_is_a_possible_refusal(tmp_path):
    paste = ("Installed with docker run -d -p 3000:8080 --add-host=host.docker.internal:host-gateway "
             "ghcr.io/open-webui/open-webui:main\nNo models show up in the settings.\n\n"
             "$ ss -ltn | grep 11434\nLISTEN 0      4096       127.0.0.1:11434      0.0.0.0:*\n")
    top = _analyze(tmp_path, paste, "issue.md").findings[0]
    assert top.rule == "net.connection_refused" and top.cause == "possible"
    assert "127.0.0.1:11434 only" in top.summary and "OLLAMA_HOST=0.0.0.0:11434" in top.remedy[0]
    # a server listening on every interface is not the cause
    assert not _analyze(tmp_path, paste.replace("127.0.0.1:11434 ", "*:11434       "), "wide.md").findings


def test_a_call_to_an_ollama_embedding_route_with_the_other_routes_field_is_a_possible_bad_input(tmp_path):
    paste = ("curl http://localhost:11434/api/embed -d '{\n  \"model\": \"bge-m3\",\n  \"prompt\": \"Llamas are camelids\"\n}'\n"
             "{\"model\":\"bge-m3\",\"embeddings\":[]}\n\nThe embeddings are always empty.\n")
    top = _analyze(tmp_path, paste, "issue.md").findings[0]
    assert top.rule == "embed.bad_input" and top.cause == "possible" and '"prompt"' in top.evidence[0].text
    assert top.remedy[0] == 'Send the text as "input" to /api/embed (or call /api/embeddings with "prompt").'
    # the field the route reads says nothing
    assert not _analyze(tmp_path, paste.replace('"prompt"', '"input"'), "right.md").findings


def test_a_base_url_that_already_names_a_route_is_a_possible_wrong_path(tmp_path):
    paste = ('My api_config:\n```yaml\nqwen:\n    endpoints:\n      - api_base: "{url}"\n        api_key: "EMPTY"\n```\n'
             "The vLLM server answers curl, but gen_answer.py fails.\n")
    top = _analyze(tmp_path, paste.format(url="http://localhost:8000/v1/chat/completions"), "issue.md").findings[0]
    assert top.rule == "http.wrong_path" and top.cause == "possible"
    assert "already names a route" in top.summary
    assert top.remedy[0] == "Set api_base to the server root, http://localhost:8000/v1, and let the client add the route."
    # the server root is no wrong path
    assert not _analyze(tmp_path, paste.format(url="http://localhost:8000/v1"), "root.md").findings


def test_an_embedding_models_size_beside_another_vector_size_is_a_possible_dimension_mismatch(tmp_path):
    # nomic-embed-text gives 768 numbers; a table created at OpenAI's 1536 refuses them
    paste = ("Embedding model: nomic-embed-text (via Ollama), store: pgvector.\n"
             "The embeddings table is created as `embedding vector(1536)` and the first insert fails.\n")
    top = _analyze(tmp_path, paste, "issue.md").findings[0]
    assert top.rule == "embed.dimension_mismatch" and top.cause == "possible"
    assert "`nomic-embed-text`, which gives 768-dimensional vectors" in top.summary and "1536" in top.summary
    assert top.remedy[0].startswith("Make the index match the model: 768 for nomic-embed-text")
    # the same size is no mismatch, nor is a size beside a model with nothing failed
    assert not _analyze(tmp_path, paste.replace("1536", "768"), "same.md").findings
    calm = "Embedding model: nomic-embed-text; the table is `embedding vector(1536)`; search works well.\n"
    assert not _analyze(tmp_path, calm, "calm.md").findings
    # two sizes said side by side, no model named
    two = "Qdrant answers Bad Request: the collection has 1536 dimensions and the vectors have 1024 dimensions.\n"
    top = _analyze(tmp_path, two, "two.md").findings[0]
    assert top.rule == "embed.dimension_mismatch" and "1536 and 1024" in top.summary
    # two embedding models of different sizes, and the store that holds one index
    switched = "I switched the embedding model from bge-m3 to nomic-embed-text and now the Milvus insert fails.\n"
    top = _analyze(tmp_path, switched, "switched.md").findings[0]
    assert top.rule == "embed.dimension_mismatch" and "`bge-m3` (1024) and `nomic-embed-text` (768)" in top.summary


def test_an_os_error_on_the_model_cache_is_a_possible_load_failure_and_elsewhere_only_a_lead(tmp_path):
    # Python's errno text is a failure the catalogue has no id for; the cache's path beside it says which
    a = _analyze(tmp_path, "PermissionError: [Errno 13] Permission denied: "
                 "'/root/.cache/huggingface/hub/models--Qwen--Qwen3-Embedding-0.6B'\n")
    assert a.findings[0].rule == "model.load_failed" and a.findings[0].cause == "possible"
    assert "[Errno 13]" in a.findings[0].evidence[0].text
    b = _analyze(tmp_path, "PermissionError: [Errno 13] Permission denied: '/var/run/app.pid'\n", "pid.txt")
    assert not b.findings and b.lead is not None


def test_a_refusal_of_localhost_in_a_dockerized_app_is_a_docker_loopback(tmp_path):
    # the paste says the app was dockerized, and its compose log shows the refusal of localhost
    paste = ("privategpt-private-gpt-1  | requests.exceptions.ConnectionError: HTTPConnectionPool(host='localhost', "
             "port=11434): Max retries exceeded with url: /api/embeddings (Caused by NewConnectionError("
             "'<urllib3.connection.HTTPConnection object at 0x7f>: Failed to establish a new connection: "
             "[Errno 111] Connection refused'))\n")
    top = _analyze(tmp_path, "It fails when dockerized:\n```\n" + paste + "```\n", "issue.md").findings[0]
    assert top.rule == "net.wrong_host_docker" and "host.docker.internal:11434" in top.remedy[0]
    # the same refusal printed on the host is a refused connection
    plain = _analyze(tmp_path, paste.split("| ", 1)[1], "host.txt").findings[0]
    assert plain.rule == "net.connection_refused"


def test_a_message_wrapped_over_two_lines_is_read_as_one(tmp_path):
    paste = ("ValueError: To serve at least one request with the model's max seq len (262144), 36.0 GiB KV cache\n"
             "is needed, which is larger than the available KV cache memory (11.82 GiB). ... decrease max_model_len.\n")
    top = _analyze(tmp_path, paste, "sandbox.log").findings[0]
    assert top.rule == "gpu.oom" and "262144" in top.evidence[0].text


def test_words_that_say_the_app_did_not_send_its_key_name_a_missing_key_over_the_401(tmp_path):
    paste = ("# Api Key is not sent to Ollama\n\nOllama sits behind caddy, which answers 401 without the bearer token.\n"
             "[172.23.0.1]:46020 401 - POST /v1/embeddings\n")
    a = _analyze(tmp_path, paste, "issue.md")
    assert a.findings[0].rule == "auth.missing_key"
