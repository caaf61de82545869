"""Ranking is a pure function, and a finding's confidence is made up in one place."""

from __future__ import annotations

import copy
from pathlib import Path

from emblens import analyze
from emblens.findings import confidence
from emblens.rules.engine import evaluate
from emblens.rules.rank import rank

REPO = Path(__file__).resolve().parents[1]


def test_rank_leaves_the_findings_it_is_given_as_they_are():
    a = analyze([REPO / "samples/gpu-held-by-another-process.zip"])
    assert [f.role for f in a.findings].count("symptom") >= 1
    raw = evaluate(_rules(), a.events, a.facts)
    before = copy.deepcopy(raw)
    ranked = rank(raw)
    assert [(f.rule, f.role, f.explained_by, f.confidence) for f in raw] == \
           [(f.rule, f.role, f.explained_by, f.confidence) for f in before]
    assert all(f.role == "finding" and f.explained_by is None for f in raw)
    assert [(f.rule, f.role, f.confidence) for f in ranked] == [(f.rule, f.role, f.confidence) for f in a.findings]
    assert rank(raw) == ranked            # the same input ranks the same, however often


def _rules():
    from emblens.rules.loader import load_rules

    return load_rules()


def test_confidence_rises_by_one_step_per_corroboration_and_never_reaches_certainty():
    assert confidence.initial(0.8, sources=1) == 0.8 and confidence.initial(0.8, sources=3) == 0.85
    assert confidence.raised(0.85) == 0.9 and confidence.raised(0.98) == confidence.CAP == 0.99
    a = analyze([REPO / "samples/gpu-held-by-another-process.zip"])
    root = a.findings[0]
    assert root.role == "root_cause" and root.confidence <= confidence.CAP


def test_ollamas_native_api_prefix_given_to_an_openai_client_is_a_wrong_path(tmp_path):
    # an OpenAI-style embedder pointed at Ollama's native /api prefix: the SDK posts to /api/embeddings, Ollama's own
    # route, and the answer is not OpenAI's shape
    paste = tmp_path / "issue.md"
    paste.write_text(
        "settings.yaml:\n```\nembeddings:\n  llm:\n    type: openai_embedding\n    model: nomic-embed-text\n"
        "    api_base: http://127.0.0.1:11434/api\n```\n\n```\n"
        '09:02:11,512 httpx INFO HTTP Request: POST http://127.0.0.1:11434/api/embeddings "HTTP/1.1 200 OK"\n'
        "09:02:11,514 graphrag.index ERROR error embedding text: 'NoneType' object is not iterable\n```\n",
        encoding="utf-8")
    found = analyze([paste]).findings
    assert found and found[0].rule == "http.wrong_path"
    assert "http://127.0.0.1:11434/v1" in " ".join(found[0].remedy)
    # the same prefix given to Ollama's own client is its API, not a wrong path
    native = tmp_path / "native.md"
    native.write_text("api_base: http://127.0.0.1:11434/api\nERROR embedding failed: model 'nomic-embed-text' not found\n",
                      encoding="utf-8")
    assert all("11434/v1" not in " ".join(f.remedy) for f in analyze([native]).findings)
