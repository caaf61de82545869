"""A person's words that the software works in spite of the error they paste make a finding from that
input a possible cause (emblens.findings.calm); words about something else leave it stated."""

from __future__ import annotations

import pytest

from emblens.diagnose import analyze

NOISE = ("causes errors like\n```\nERROR:notebook_intelligence.llm_providers.ollama_llm_provider:Error updating "
         "supported Ollama models: Failed to connect to Ollama. Please check that Ollama is downloaded, running and "
         "accessible. https://ollama.com/download\n```\nto always be emitted at startup.\n\n{words}\n")


# (the words, whether they say the software works in spite of the error)
WORDS = (
    ("But the plugin is working fine in spite of this, so the line should be a warning at most.", True),
    ("The errors are harmless: chat works with the provider I configured.", True),
    ("启动时总是打印这个错误，但不影响使用。", True),
    ("It works fine with the OpenAI provider, but with Ollama every chat fails.", False),
    ("Despite this error the app starts; then no model can be selected.", False),
)


@pytest.mark.parametrize(("words", "harmless"), WORDS)
def test_an_error_the_paste_says_is_harmless_is_a_possible_cause_and_only_then(tmp_path, words, harmless):
    p = tmp_path / "issue.md"
    p.write_text(NOISE.format(words=words), encoding="utf-8")
    top = analyze([str(p)]).findings[0]
    assert top.rule == "net.connection_refused"
    assert (top.cause == "possible", top.confidence <= 0.5, "works in spite of it" in top.summary) == (harmless,) * 3
    assert not harmless or "issue.md:" in top.summary


def test_the_words_in_another_input_leave_this_inputs_cause_stated(tmp_path):
    (tmp_path / "client.txt").write_text(NOISE.format(words=""), encoding="utf-8")
    (tmp_path / "notes.md").write_text("The warnings are harmless.\n", encoding="utf-8")
    top = analyze([str(tmp_path / "client.txt"), str(tmp_path / "notes.md")]).findings[0]
    assert top.rule == "net.connection_refused" and top.cause != "possible"


# (a sentence of a feature request or a bug report, whether it tells of an error that happened)
WANTED = (
    ("Instead of returning an error for invalid model names, the server silently answers with the loaded model.", False),
    ("The server should return a 404 error when the model name does not exist.", False),
    ("I think it should raise an exception for an unknown model rather than guess.", False),
    ("Calling it with an invalid model name returns an error: model 'foo' not found.", True),
)


@pytest.mark.parametrize(("sentence", "met"), WANTED)
def test_the_error_a_sentence_wants_is_not_an_error_met(tmp_path, sentence, met):
    p = tmp_path / "issue.md"
    p.write_text(f"## What is the bug?\n{sentence}\n\n## Request sent\n```json\n{{\"model\": \"foo\", \"messages\": []}}\n```\n",
                 encoding="utf-8")
    a = analyze([str(p)])
    assert bool(a.findings or a.lead) == met, (a.findings, a.lead)
