"""A report never shows a placeholder where a value is unknown: the sentence is worded without it.

"(path: not in the evidence)", "(api_key_required: not visible in these logs)", "Did you mean
`{served name}`?", "port not shown" read as if the value were missing from the evidence by
accident; a person pastes the report into a postmortem. `PORT` in a remedy's command (`--port
PORT`) is the form of a command a person types, not a value, and is allowed."""

from __future__ import annotations

from pathlib import Path

import pytest

from emblens.diagnose import analyze
from emblens.fixtures import PLACEHOLDER
from emblens.rules.loader import load_rules


# `emblens rules test` holds every positive fixture to the same (`emblens.fixtures.PLACEHOLDER`)
@pytest.fixture(scope="module")
def ruleset():
    return load_rules()


def _placeholders(paths, ruleset) -> list[str]:
    a = analyze([str(p) for p in paths], ruleset=ruleset)
    return [f"{f.rule}: {m.group(0)!r} in {text[:160]!r}" for f in a.findings for text in (f.summary, *f.remedy)
            for m in PLACEHOLDER.finditer(text)]


@pytest.mark.parametrize("text", [
    # requests' HTTPError: the 401 rule fires on a line that names no path the rule reads, and no server
    "Traceback (most recent call last):\n  File \"/home/u/app.py\", line 12, in <module>\n    r.raise_for_status()\n"
    "requests.exceptions.HTTPError: 401 Client Error: Unauthorized for url: http://localhost:8000/v1/embeddings\n",
    # requests' 404: the path is in the URL it names
    "requests.exceptions.HTTPError: 404 Client Error: Not Found for url: http://localhost:8000/embeddings\n",
    # a 404 for a model with nothing that says what is served
    "openai.NotFoundError: Error code: 404 - {'object': 'error', 'message': 'The model `bge-m4` does not exist.', "
    "'type': 'NotFoundError', 'param': None, 'code': 404}\n",
    # a refused connection whose port is nowhere
    "openai.APIConnectionError: Connection error.\nhttpx.ConnectError: [Errno 111] Connection refused\n",
])
def test_a_finding_whose_values_are_unknown_is_worded_without_them(tmp_path: Path, ruleset, text):
    p = tmp_path / "client.txt"
    p.write_text(text, encoding="utf-8")
    a = analyze([str(p)], ruleset=ruleset)
    assert a.findings
    assert _placeholders([p], ruleset) == []


def test_a_tiny_share_of_requests_reads_as_a_percentage():
    from types import SimpleNamespace

    from emblens.report.view import rate

    f = SimpleNamespace(requests=3, requests_seen=600_000)
    assert rate(f) == "3 of 600,000 requests (< 0.01%)"
    assert rate(SimpleNamespace(requests=3, requests_seen=2_000)) == "3 of 2,000 requests (0.15%)"


def test_the_html_report_shows_code_and_bold_not_raw_backticks_and_asterisks(tmp_path):
    from emblens.report import render

    p = tmp_path / "client.txt"
    p.write_text("openai.NotFoundError: Error code: 404 - {'object': 'error', 'message': 'The model `bge-m4` does not "
                 "exist.', 'type': 'NotFoundError', 'param': None, 'code': 404}\n<script>alert(1)</script> `x`\n",
                 encoding="utf-8")
    html = render(analyze([str(p)]), "html")
    body = html.split("<section id=\"summary\">", 1)[1].split("</section>", 1)[0]
    assert "<code>bge-m4</code>" in body and "`bge-m4`" not in body
    assert "<script>" not in html


def test_a_proxy_that_failed_a_call_is_said_without_an_unknown_status(tmp_path, ruleset):
    p = tmp_path / "client.txt"
    p.write_text("export HTTPS_PROXY=http://proxy.corp:3128\nrequests.exceptions.ProxyError: HTTPSConnectionPool("
                 "host='127.0.0.1', port=8000): Max retries exceeded (Caused by ProxyError('Unable to connect to proxy'))\n",
                 encoding="utf-8")
    found = analyze([str(p)], ruleset=ruleset).findings
    assert found[0].rule == "net.proxy_env"
    assert " unknown" not in found[0].summary and "failed at a proxy" in found[0].summary


def test_no_rule_text_has_a_placeholder_for_a_value_it_does_not_know(ruleset):
    """Every rule's and cause's message, remedy and vars, rendered knowing nothing but the count:
    a default such as `(not shown)`, `{org}/{model}` or `(default)` would print where the value is
    unknown (xinference's "cannot be run on engine" printed "architecture `(not shown)`")."""
    from emblens.rules import templates

    shown = []
    for rule in ruleset.rules:
        for part in rule.parts:
            texts = [getattr(part, "message", None), *(getattr(part, "remedy", None) or ()),
                     *(source for _, source in getattr(part, "vars", ()) or ())]
            for text in filter(None, texts):
                out = templates.render(text, {"count": 1, "sources": ["a.log"], "first_seen": None, "last_seen": None})
                shown += [f"{rule.id} ({part.path}): {m.group(0)!r} in {out[:120]!r}" for m in PLACEHOLDER.finditer(out)]
    assert shown == []


def test_an_engine_that_cannot_run_a_model_is_said_without_an_architecture_it_does_not_know(tmp_path, ruleset):
    p = tmp_path / "issue.md"
    p.write_text('pip install xinference, then: "Model jina-reranker-v3 cannot be run on engine sentence_transformers"\n',
                 encoding="utf-8")
    assert analyze([str(p)], ruleset=ruleset).findings
    assert _placeholders([p], ruleset) == []
