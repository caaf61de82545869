"""Cues: the field's own words for a cause, read where no rule or harvested message spoke."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from emblens.diagnose import analyze
from emblens.errors import RuleError
from emblens.knowledge import cues as cue_data
from emblens.rules.loader import load_rules


@pytest.fixture(scope="module")
def ruleset():
    return load_rules()


def test_every_cue_meets_its_examples_and_counters(ruleset):
    assert len(ruleset.cues) >= 35
    assert cue_data.check(ruleset.cues) == []
    # every id a cue names is a rule's, and most of the catalogue has one
    ids = {r.id for r in ruleset.rules}
    assert set(ruleset.cues.ids()) <= ids
    assert len(ruleset.cues.ids()) >= 30


def _findings(tmp_path: Path, text: str, ruleset, name: str = "paste.md"):
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return analyze([str(p)], ruleset=ruleset).findings


@pytest.mark.parametrize("text, expected", [
    # a vector store nobody harvested: the words say two sizes differ
    ("lance error: Invalid user input: query dim(768) doesn't match the column vector vector dim(1024)\n",
     "embed.dimension_mismatch"),
    # a paste's prose, no error word a program wrote
    ("I got 403 while requesting the ollama api on localhost from the background.js of a chrome extension.\n",
     "auth.forbidden"),
    ("Ошибка: Stream timeout: no data from API for 30s\n", "net.timeout"),
    ("On the 8 GB card the server OOMs as soon as an image is sent.\n", "gpu.oom"),
    ('"POST /v1/chat/completions HTTP/1.1" 401 Unauthorized\n', "auth.invalid_key"),
    ("ollama的nomic-embed-text维度为768，但是pg数据库会报错 expected 1536 dimensions\n", "embed.dimension_mismatch"),
])
def test_a_line_in_the_fields_words_names_a_possible_cause(tmp_path, ruleset, text, expected):
    found = _findings(tmp_path, text, ruleset)
    assert found and found[0].rule == expected, [(f.rule, f.summary) for f in found]
    f = found[0]
    assert f.cause == "possible" and f.confidence <= 0.6
    assert f.summary.startswith("Possibly:") and "the words say" in f.summary
    assert f.evidence and f.evidence[0].text.strip()


@pytest.mark.parametrize("text", [
    # a start-up dump of settings is not an empty key
    "2025-01-01T10:00:00.000000Z  INFO text_embeddings_router: router/src/main.rs:175: Args { model_id: \"BAAI/bge-m3\", "
    "api_key: None, hostname: \"0.0.0.0\", port: 80 }\n",
    # a header that names a timeout is not one
    "curl http://litellm:4000/rerank -H 'timeout: 30' -d @body.json\n",
    # localhost and docker in a sentence that says nothing failed
    "I run vLLM in docker and call it on localhost:8000, and it works well.\n",
])
def test_words_that_say_no_failure_name_no_cause(tmp_path, ruleset, text):
    found = _findings(tmp_path, text, ruleset, name="notes.txt")
    assert [f.rule for f in found if f.severity == "error"] == []


def test_a_rule_that_fires_leaves_the_cues_unread(tmp_path, ruleset):
    # vLLM's own message names the cause; the cue for "timed out" on the next line adds nothing
    text = ("openai.NotFoundError: Error code: 404 - {'object': 'error', 'message': 'The model `bge-m4` does not exist.', "
            "'type': 'NotFoundError', 'param': None, 'code': 404}\nthe retry timed out as well\n")
    found = _findings(tmp_path, text, ruleset, name="client.txt")
    assert found[0].rule == "model.not_found" and found[0].cause != "possible"
    assert not any(f.cause == "possible" for f in found)


def test_a_small_inputs_every_line_is_an_event(tmp_path, ruleset):
    # the prefilter keeps only lines a rule could match in a large log; a paste is read whole
    p = tmp_path / "paste.md"
    p.write_text("The request keeps failing after the upgrade.\nNothing else changed on the host.\n", encoding="utf-8")
    a = analyze([str(p)], ruleset=ruleset)
    assert a.events.height == 2


def _folder(tmp_path: Path) -> Path:
    """A user's rule folder: one rule (a copy of the built-in gpu.oom) and a data folder."""
    from emblens.rules import builtin_dir

    folder = tmp_path / "myrules"
    (folder / "data").mkdir(parents=True)
    (folder / "oom.yaml").write_text((builtin_dir() / "gpu" / "oom.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    return folder


@pytest.mark.parametrize("doc, message", [
    ({"cues": [{"id": "gpu.oom", "regex": "(?i)oom", "weight": 0.9, "says": "x", "examples": ["oom"]}]}, "weight 0.9"),
    ({"cues": [{"id": "gpu.oom", "regex": "(unclosed oom", "weight": 0.5, "says": "x", "examples": ["oom"]}]},
     "regex not accepted"),
    ({"cues": [{"id": "gpu.nothing", "regex": "oom", "weight": 0.5, "says": "x", "examples": ["oom"]}]},
     "no rule has this id"),
    ({"cues": [{"id": "gpu.oom", "weight": 0.5, "says": "x", "examples": ["oom"]}]}, "lacks regex"),
    ({"nothing": []}, "holds a `cues` list"),
])
def test_a_malformed_cue_file_is_one_clear_error_naming_it(tmp_path, doc, message):
    folder = _folder(tmp_path)
    (folder / "data" / "cues.yaml").write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(RuleError) as e:
        load_rules([folder])
    assert message in str(e.value) and "cues.yaml" in str(e.value)


def test_rules_test_counts_the_cue_examples(tmp_path):
    from typer.testing import CliRunner

    from emblens.frontends.cli import app

    folder = _folder(tmp_path)
    (folder / "data" / "cues.yaml").write_text(json.dumps({"cues": [
        {"id": "gpu.oom", "regex": "(?i)\\bran out of vram\\b", "weight": 0.5, "says": "the words say VRAM ran out",
         "examples": ["the card ran out of VRAM", "nothing here"]}]}), encoding="utf-8")
    r = CliRunner().invoke(app, ["rules", "test", str(folder), "-q"])
    assert r.exit_code == 1
    assert "FAIL cue" in r.output and "'nothing here' gives nothing" in r.output


def test_a_cue_with_beside_words_reads_a_line_only_when_the_inputs_hold_them(tmp_path, ruleset):
    """"A model that does not exist" is a model the server could not load when the inputs start a
    server; without a start command in them the same words stay a request's unknown model."""
    said = "Running a model that does not exist gives the following stack trace:\n"
    alone = _findings(tmp_path, said, ruleset, name="issue.md")
    assert alone and alone[0].rule == "model.not_found" and alone[0].cause == "possible"
    (tmp_path / "server.log").write_text("$ vllm serve neuralmagic/Llama-3-8B-FP8-nope --port 8000\n"
                                         "INFO 02-19 03:45:18 api_server.py:840] vLLM API server version 0.7.2\n",
                                         encoding="utf-8")
    both = analyze([str(tmp_path / "issue.md"), str(tmp_path / "server.log")], ruleset=ruleset).findings
    assert both and both[0].rule == "model.load_failed" and both[0].cause == "possible"
    assert "the model the server was started with does not exist" in both[0].summary


def test_a_users_cue_with_beside_words_is_read_by_its_context(tmp_path):
    import polars as pl

    path = tmp_path / "cues.yaml"
    path.write_text("cues:\n  - id: net.timeout\n    regex: 'the job stalled'\n    weight: 0.6\n    says: our batch job's words\n"
                    "    beside: 'batch-runner v\\d'\n    examples: ['the job stalled']\n", encoding="utf-8")
    mine = cue_data.load([path], known_ids={"net.timeout"})
    lines = pl.Series(["the job stalled"])
    assert mine.best(lines, context=pl.DataFrame({"text": ["nothing here"]})) == []
    assert mine.best(lines, context=pl.DataFrame({"text": ["batch-runner v2 started"]}))[0][1].beside
    assert mine.best(lines) != [] and cue_data.check(mine) == []      # its own examples: the context is taken as held
    # a beside pattern polars cannot run (look-around) is read by `regex`
    path.write_text(path.read_text(encoding="utf-8").replace("batch-runner v\\d", "batch-runner(?= v\\d)"), encoding="utf-8")
    mine = cue_data.load([path], known_ids={"net.timeout"})
    assert mine.best(lines, context=pl.DataFrame({"text": ["batch-runner v2 started"]}))
    assert mine.best(lines, context=pl.DataFrame({"text": ["batch-runner started"]})) == []


def test_a_cue_with_unless_words_is_not_read_where_the_inputs_rule_its_cause_out(tmp_path, ruleset):
    """"I can't connect from another PC" is a server listening on the loopback only, unless the paste
    shows it listening on every interface (then a firewall or the network is in the way)."""
    said = "Hello, I'm using ollama on windows but I can't connect to the server from another PC on the local network.\n"
    alone = _findings(tmp_path, said, ruleset, name="issue.md")
    assert alone and alone[0].rule == "net.connection_refused" and alone[0].cause == "possible"
    assert "loopback only" in alone[0].summary
    wide = _findings(tmp_path, said + "I set `OLLAMA_HOST=0.0.0.0` and restarted it.\n", ruleset, name="wide.md")
    assert not any("loopback only" in f.summary for f in wide)
    # a user's cue: its unless words are read the same way
    import polars as pl

    path = tmp_path / "cues.yaml"
    path.write_text("cues:\n  - id: net.timeout\n    regex: 'the job stalled'\n    weight: 0.6\n    says: our batch job's words\n"
                    "    unless: 'batch-runner v\\d'\n    examples: ['the job stalled']\n", encoding="utf-8")
    mine = cue_data.load([path], known_ids={"net.timeout"})
    lines = pl.Series(["the job stalled"])
    assert mine.best(lines, context=pl.DataFrame({"text": ["batch-runner v2 started"]})) == []
    assert mine.best(lines, context=pl.DataFrame({"text": ["nothing here"]}))


@pytest.mark.parametrize("text, quoted", [
    # a rule's finding: the client's own timeout, as its code sets it
    ("client = httpx.AsyncClient(timeout=15.0)\nTraceback (most recent call last):\n"
     "httpx.ReadTimeout: The read operation timed out\n", "`timeout=15.0`"),
    # a possible cause: the settings an environment file gives
    ("EMBEDDING_TIMEOUT=60\nLLM_TIMEOUT=180\nthe worker keeps saying: stream timeout, no data\n", "`LLM_TIMEOUT=180`"),
    # a gateway's message with the duration it gave up after
    ("litellm.Timeout: Timeout Error: OpenAIException - Error code: 504 - {'error': 'Upstream timeout after 30s'}\n",
     "`timeout after 30s`"),
])
def test_a_timeout_finding_quotes_the_timeouts_the_evidence_sets(tmp_path, ruleset, text, quoted):
    found = _findings(tmp_path, text, ruleset, name="client.txt")
    assert found and found[0].rule == "net.timeout", [(f.rule, f.summary) for f in found]
    assert quoted in found[0].summary, found[0].summary


def test_the_words_of_a_server_not_started_for_embeddings_name_it(tmp_path, ruleset):
    found = _findings(tmp_path, "I started vLLM with Llama3-8B-Instruct and I can see that the embedding API is not loaded\n",
                      ruleset)
    assert found and found[0].rule == "embed.wrong_model_type" and found[0].cause == "possible"


def test_a_permission_error_beside_the_hubs_download_is_the_models_cache_not_written(tmp_path, ruleset):
    """`PermissionError` said alone ("fails with OSError: PermissionError") is the model's cache only when the
    paste's traceback runs through the Hub's download; the remedy then is a writable cache or HOME."""
    said = "The pod crash-loops: loading the model fails with OSError: PermissionError.\n"
    alone = _findings(tmp_path, said, ruleset, name="issue.md")
    assert not alone or alone[0].rule != "model.load_failed"
    with_hub = said + ('```\nTraceback (most recent call last):\n  File "/usr/local/lib/python3.12/dist-packages/'
                       'huggingface_hub/file_download.py", line 1008, in hf_hub_download\n'
                       '    return _hf_hub_download_to_cache_dir(\n```\n')
    both = _findings(tmp_path, with_hub, ruleset, name="issue.md")
    assert both and both[0].rule == "model.load_failed" and both[0].cause == "possible"
    assert "writable cache" in both[0].remedy[0] and "HOME" in both[0].remedy[0]
