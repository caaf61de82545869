"""A person's words that the software works in spite of the error they paste make a finding from that
input a possible cause (emblens.findings.calm); words about something else leave it stated."""

from __future__ import annotations

import pytest

from emblens.diagnose import analyze

NOISE = ("causes errors like\n```\nERROR:notebook_intelligence.llm_providers.ollama_llm_provider:Error updating "
         "supported Ollama models: Failed to connect to Ollama. Please check that Ollama is downloaded, running and "
         "accessible. https://ollama.com/download\n```\nto always be emitted at startup.\n\n{words}\n")


@pytest.mark.parametrize("words", [
    "But the plugin is working fine in spite of this, so the line should be a warning at most.",
    "The errors are harmless: chat works with the provider I configured.",
    "启动时总是打印这个错误，但不影响使用。",
])
def test_an_error_the_paste_says_is_harmless_is_a_possible_cause(tmp_path, words):
    p = tmp_path / "issue.md"
    p.write_text(NOISE.format(words=words), encoding="utf-8")
    top = analyze([str(p)]).findings[0]
    assert top.rule == "net.connection_refused"
    assert top.cause == "possible" and top.confidence <= 0.5
    assert "works in spite of it" in top.summary and "issue.md:" in top.summary


@pytest.mark.parametrize("words", [
    "It works fine with the OpenAI provider, but with Ollama every chat fails.",
    "Despite this error the app starts; then no model can be selected.",
])
def test_words_that_do_not_say_it_works_in_spite_of_the_error_leave_the_cause_stated(tmp_path, words):
    p = tmp_path / "issue.md"
    p.write_text(NOISE.format(words=words), encoding="utf-8")
    top = analyze([str(p)]).findings[0]
    assert top.rule == "net.connection_refused"
    assert top.cause != "possible" and top.confidence > 0.5
    assert "works in spite of it" not in top.summary


def test_the_words_in_another_input_leave_this_inputs_cause_stated(tmp_path):
    (tmp_path / "client.txt").write_text(NOISE.format(words=""), encoding="utf-8")
    (tmp_path / "notes.md").write_text("The warnings are harmless.\n", encoding="utf-8")
    top = analyze([str(tmp_path / "client.txt"), str(tmp_path / "notes.md")]).findings[0]
    assert top.rule == "net.connection_refused" and top.cause != "possible"
