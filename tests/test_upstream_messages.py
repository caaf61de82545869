"""The upstream messages (rules/data/messages): what the software in the path really says, harvested
from its source. Every message's own instance, read as an analysis reads a pasted file, is found
as that message's id, and every id's rule fires on it."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest
import yaml

from emblens import diagnose
from emblens.knowledge import upstream
from emblens.rules.loader import UPSTREAM_SIGNAL, load_rules
from emblens.run import Run

RULES = Path(__file__).resolve().parents[1] / "rules"
# the catalogue's ids: those with a rule, and the fourth wave's two whose rules come with the traces
# (issue 31); messages that evidence those are kept and fire once their rules exist
CATALOGUE_IDS = {r.id for r in load_rules().rules} | {"server.overloaded", "gateway.misconfigured"}
RULED = {r.id for r in load_rules().rules}


@pytest.fixture(scope="module")
def ruleset():
    return load_rules()


def test_at_least_800_messages_from_15_projects_each_with_its_source(ruleset):
    messages = ruleset.messages.messages
    assert len(messages) >= 800, len(messages)
    assert len({m.project for m in messages}) >= 15
    assert len({m.repository for m in messages}) >= 15
    for m in messages:
        assert m.source and m.versions and m.repository, m
        assert m.id == "none" or m.id in CATALOGUE_IDS, (m.project, m.template, m.id)


def test_every_file_is_as_the_readme_says():
    for path in upstream.files([RULES]):
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        assert set(doc) >= {"project", "repository", "messages"}, path
        seen = set()
        for d in doc["messages"]:
            assert set(d) >= set(upstream.REQUIRED), (path, d)
            assert set(d) <= {*upstream.REQUIRED, "kind", "note", "repository"}, (path, d)
            assert d["template"] not in seen, (path, d["template"])
            seen.add(d["template"])


def test_every_instance_fits_its_template(ruleset):
    for m in ruleset.messages.messages:
        parts = re.split(r"\{[A-Za-z_0-9]*\}", m.template)
        rx = ".+?".join(re.escape(p) for p in parts)
        assert re.fullmatch(rx, m.instance, re.S), (m.project, m.template, m.instance)


def test_every_instance_read_from_a_paste_is_its_own_id(ruleset, tmp_path):
    """All instances in one pasted file, read as `analyze` reads (prefilter, masking): each line
    is found as its message's id (another message of the same id may be the one found)."""
    messages = [m for m in ruleset.messages.messages if len(m.anchor.encode()) >= upstream.MIN_ANCHOR]
    paste = tmp_path / "paste.txt"
    paste.write_text("\n".join(" ".join(m.instance.split()) for m in messages) + "\n", encoding="utf-8")
    run = Run(diagnose.settings(), ruleset=ruleset)
    events = diagnose.read([paste], run, keywords=ruleset.prefilter).events
    got = dict(zip(events["line"].to_list(), events["msg_id"].to_list()))
    def nested(m: upstream.Message, found: str | None) -> bool:
        """The instance quotes another message, surer than its own (SGLang's `Capture cuda graph
        failed: {e}` around PyTorch's out-of-memory message), or of an id that is the cause of its own
        (Ollama's `llama runner process has terminated: {}` around the model loader's error): that one
        is the cause."""
        cause = m.id in ruleset.messages.explains.get(found or "", ())
        return any(o.id == found and (o.words > m.words or cause) and o.search(m.instance) is not None for o in messages)

    wrong = [(m.project, m.template, m.id, got.get(i)) for i, m in enumerate(messages, 1)
             if m.id in RULED and got.get(i) != m.id and not nested(m, got.get(i))]
    assert not wrong, f"{len(wrong)} of {len(messages)}: {wrong[:10]}"
    # most messages are catalogued: a harvest of `none` alone would prove nothing
    assert sum(m.id != "none" for m in messages) >= 600


def test_every_id_with_messages_fires_from_one_of_them_alone(ruleset, tmp_path):
    """End to end: one instance per id, alone in a file, and the id is among the findings."""
    by_id: dict[str, upstream.Message] = {}
    for m in ruleset.messages.messages:
        if m.id in RULED and len(m.anchor.encode()) >= upstream.MIN_ANCHOR:
            by_id.setdefault(m.id, m)
    assert len(by_id) >= 30
    missed = []
    for rid, m in sorted(by_id.items()):
        path = tmp_path / f"{rid}.txt"
        path.write_text(m.instance + "\n", encoding="utf-8")
        a = diagnose.analyze([path], ruleset=ruleset)
        if rid not in [f.rule for f in a.findings]:
            missed.append((rid, m.instance, [f.rule for f in a.findings]))
    assert not missed, missed


def test_every_id_with_messages_has_the_signal_and_list_counts_them(ruleset):
    counts = Counter(m.id for m in ruleset.messages.messages)
    for rule in ruleset.rules:
        has = any(s.name == UPSTREAM_SIGNAL for s in rule.signals)
        assert has == bool(counts.get(rule.id)), rule.id
    from typer.testing import CliRunner

    from emblens.frontends.cli import app

    out = CliRunner().invoke(app, ["rules", "list"]).output
    assert f"({counts['net.timeout']} upstream messages)" in out
    assert f"{len(ruleset.messages)} upstream messages from" in out


def test_a_line_holding_a_wrapper_and_the_failure_it_wraps_is_the_failure():
    m = upstream.load(upstream.files([RULES]))
    line = ("HTTPConnectionPool(host='localhost', port=1234): Max retries exceeded with url: /v1/chat/completions "
            "(Caused by ReadTimeoutError(\"HTTPConnectionPool(host='localhost', port=1234): Read timed out. (read timeout=600)\"))")
    import polars as pl

    found = m.match(pl.Series([line]))["msg"][0]
    assert m.messages[found].id == "net.timeout"


def test_a_message_inside_a_json_error_body_is_found(tmp_path):
    body = tmp_path / "answer.json"
    body.write_text('{"error": {"message": "openai.APIConnectionError: Connection error.\\nhttpx.ConnectError: '
                    '[Errno 111] Connection refused", "type": "BadRequestError", "code": 400}}\n', encoding="utf-8")
    a = diagnose.analyze([body])
    assert a.findings and a.findings[0].rule == "net.connection_refused"


def test_a_message_whose_closing_full_stop_was_not_written_is_still_the_message(ruleset):
    """Loggers and pastes drop a message's last full stop (LM Studio's DEBUG line, a cut paste)."""
    import polars as pl

    ended = [m for m in ruleset.messages.messages if m.id != "none" and m.template.rstrip().endswith(".")
             and m.instance.rstrip().endswith(".")]
    assert len(ended) > 100
    cut = pl.Series([m.instance.rstrip()[:-1] for m in ended])
    found = ruleset.messages.match(cut)["msg"].to_list()
    missed = [m.instance for m, i in zip(ended, found) if i is None or ruleset.messages.messages[i].id != m.id]
    assert len(missed) <= len(ended) // 50, missed[:5]


def test_a_line_holding_only_a_wrappers_words_is_read_for_what_it_wraps(tmp_path):
    """`Input validation error: {}` (TGI's and TEI's wrapper, no failure of its own) must not make a
    line known and silent: the words it wraps are read as an unknown line's, here TEI's input limit
    with its `Given: N` cut off by the paste."""
    from emblens.diagnose import analyze

    paste = tmp_path / "issue.md"
    paste.write_text("the embedding server always returns the error 【 Input validation error: inputs must have less "
                     "than 512 tokens】, which parameter raises it?\n")
    top = analyze([paste]).findings[0]
    assert top.rule == "embed.input_too_long" and top.cause == "possible"


def test_a_status_a_message_fixes_must_be_the_lines_to_be_near(ruleset):
    # LangChain4j's `status code: 404; body: {body}` is a model Ollama lacks; a 500 with the same words is not
    near = ruleset.messages.nearest.near
    got = near("weaviate: Unexpected status code: 500, with response body: {'error': 'vector lengths do not agree'}")
    assert got is None or "404" not in got.message.template
    hit = near("RuntimeException: status code: 404; body: model is gone")
    assert hit is not None and "404" in hit.message.template


def test_a_long_message_retyped_in_other_case_is_still_the_message_and_a_short_one_is_not(tmp_path):
    # an issue's title, lower-cased: llama.cpp's pooling error
    p = tmp_path / "title.md"
    p.write_text("llama-server: pooling type 'none' is not OAI compatible. please use a different pooling type\n")
    a = diagnose.analyze([str(p)])
    assert a.findings and a.findings[0].rule == "embed.wrong_model_type"
    # a short message's words in other case are any sentence ("Model {} not exist." is not "a model that does not exist")
    q = tmp_path / "prose.md"
    q.write_text("Running a model that does not exist gives the following stack trace:\n")
    b = diagnose.analyze([str(q)])
    assert "msg_template" not in b.events.columns or b.events["msg_template"].null_count() == b.events.height
