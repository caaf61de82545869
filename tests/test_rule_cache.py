"""The cache of loaded rule sets: a hit returns the same rules, any change to a rule file (even of
the same size) is a miss, and a cache that is damaged or cannot be written is ignored. Within one
process a load of unchanged files is the rule set loaded before (`forget` is a new process)."""

import shutil
from pathlib import Path

import pytest

from emblens.errors import RuleError
from emblens.rules import cache
from emblens.rules.loader import forget, load_rules

RULE = """id: custom.teapot
title: The server is a teapot
severity: error
confidence: 0.9
means: The server refuses to brew.
match: {kind: http, http_status: 418}
message: "{{ count }} request(s) were answered 418."
remedy: ["Ask for coffee elsewhere."]
"""


@pytest.fixture
def cache_dir(tmp_path, monkeypatch) -> Path:
    d = tmp_path / "cache"
    monkeypatch.setenv("EMBLENS_CACHE_DIR", str(d))
    return d


def _folder(tmp_path: Path, text: str = RULE) -> Path:
    d = tmp_path / "rules"
    d.mkdir(exist_ok=True)
    (d / "teapot.yaml").write_text(text)
    return d


def test_a_second_load_comes_from_the_cache_and_is_the_same(tmp_path, cache_dir):
    rules = _folder(tmp_path)
    first = load_rules([rules])
    entries = list(cache_dir.glob("rules-*.pickle"))
    assert len(entries) == 1
    assert oct(entries[0].stat().st_mode & 0o777) == "0o600"
    second = load_rules([rules])
    assert [r.id for r in second.rules] == [r.id for r in first.rules]
    assert second.keywords == first.keywords
    assert second.get("custom.teapot").message == first.get("custom.teapot").message


def test_a_changed_rule_of_the_same_size_is_read_again(tmp_path, cache_dir):
    rules = _folder(tmp_path)
    assert "418" in load_rules([rules]).get("custom.teapot").message
    changed = RULE.replace("418", "419")
    assert len(changed) == len(RULE)
    (rules / "teapot.yaml").write_text(changed)
    assert "419" in load_rules([rules]).get("custom.teapot").message
    assert len(list(cache_dir.glob("rules-*.pickle"))) == 2


def test_a_rule_error_is_reported_every_time_and_not_cached(tmp_path, cache_dir):
    rules = _folder(tmp_path, RULE.replace("severity: error", "severity: loud"))
    for _ in range(2):
        with pytest.raises(RuleError, match="severity"):
            load_rules([rules])
    assert not list(cache_dir.glob("rules-*.pickle"))


def test_a_damaged_entry_is_ignored_and_replaced(tmp_path, cache_dir):
    rules = _folder(tmp_path)
    load_rules([rules])
    (entry,) = cache_dir.glob("rules-*.pickle")
    entry.write_bytes(b"\x80\x05not a pickle")
    forget()                                     # as the next process finds it
    assert load_rules([rules]).get("custom.teapot") is not None
    assert entry.read_bytes()[:2] == b"\x80\x05" and len(entry.read_bytes()) > 100


def test_an_unwritable_cache_or_no_cache_still_loads(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("EMBLENS_CACHE_DIR", str(blocker / "cache"))
    assert load_rules().get("model.not_found") is not None
    monkeypatch.setenv("EMBLENS_NO_CACHE", "1")
    assert cache.folder() is None
    assert load_rules().get("model.not_found") is not None


def test_the_builtin_folder_is_part_of_the_key(tmp_path, cache_dir):
    rules = _folder(tmp_path)
    with_builtin = load_rules([rules])
    alone = load_rules([rules], include_builtin=False)
    assert len(with_builtin.rules) > len(alone.rules) == 1
    copy = tmp_path / "copy"
    shutil.copytree(rules, copy)
    assert cache.key([copy]) != cache.key([rules])


def test_a_cached_load_asks_polars_nothing_and_parses_no_template_again(tmp_path, cache_dir, monkeypatch):
    """Which engine takes each pattern, and which values each template uses, come with the cache."""
    from emblens.diagnose import analyze
    from emblens.patterns import linear
    from emblens.rules import templates

    first = load_rules()
    assert first.linear and all(isinstance(v, bool) for v in first.linear.values())
    assert first.names and all(isinstance(v, frozenset) for v in first.names.values())
    # a new process: nothing known, and asking polars or parsing a template is what must not happen
    monkeypatch.setattr(linear.MEMO, "answers", {})
    monkeypatch.setattr(templates.NAMES, "answers", {})
    asked = []
    monkeypatch.setattr(linear, "_ask", lambda p: asked.append(p) or True)
    monkeypatch.setattr(templates, "parse", lambda s: asked.append(s))
    forget()
    second = load_rules()
    assert second.linear == first.linear and second.names == first.names
    log = tmp_path / "vllm.log"
    log.write_text('(APIServer pid=7) INFO:     10.0.3.7:51422 - "POST /v1/embeddings HTTP/1.1" 404 Not Found\n' * 3)
    result = analyze([log], ruleset=second)
    assert result.rules_run > 20 and result.findings and asked == []


def test_a_cached_load_parses_no_pattern_for_its_literals_again(tmp_path, cache_dir, monkeypatch):
    """Each pattern's literals (the prefilter's and the engine's) come with the cache too."""
    from emblens.diagnose import analyze
    from emblens.patterns import literals

    first = load_rules()
    assert len(first.literals) > 200
    monkeypatch.setattr(literals.MEMO, "answers", {})
    parsed = []
    monkeypatch.setattr(literals, "_extract", lambda p: parsed.append(p))
    forget()
    second = load_rules()
    log = tmp_path / "vllm.log"
    log.write_text('(APIServer pid=7) INFO:     10.0.3.7:51422 - "POST /v1/embeddings HTTP/1.1" 404 Not Found\n' * 3)
    assert analyze([log], ruleset=second).findings and parsed == []


@pytest.fixture
def fresh_templates(monkeypatch):
    """The template module as a new process finds it (its bytecode folder is chosen once a process)."""
    from emblens.rules import templates

    monkeypatch.setattr(templates.ENV, "loader", None)
    monkeypatch.setattr(templates.ENV, "bytecode_cache", None)
    templates._bytecode.cache_clear()
    templates.compile_template.cache_clear()
    templates.ENV.cache.clear()
    yield templates
    templates._bytecode.cache_clear()
    templates.compile_template.cache_clear()
    templates.ENV.cache.clear()


def test_compiled_templates_are_kept_and_loaded_instead_of_compiled(cache_dir, fresh_templates, monkeypatch):
    templates = fresh_templates
    source = "{{ count }} request(s) to {{ model | codes }} were refused."
    assert templates.render(source, {"count": 3, "model": "m"}) == "3 request(s) to `m` were refused."
    (folder,) = cache_dir.glob("templates-*")
    assert oct(folder.stat().st_mode & 0o777) == "0o700"
    assert len(list(folder.iterdir())) == 1
    # a new process: the template is loaded, not compiled
    templates._bytecode.cache_clear()
    templates.compile_template.cache_clear()
    templates.ENV.cache.clear()
    compiled = []
    original = templates.ENV.compile
    monkeypatch.setattr(templates.ENV, "compile", lambda *a, **k: compiled.append(a) or original(*a, **k))
    assert templates.render(source, {"count": 4, "model": "n"}) == "4 request(s) to `n` were refused."
    assert compiled == []


def test_templates_render_without_a_writable_cache(tmp_path, fresh_templates, monkeypatch):
    templates = fresh_templates
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("EMBLENS_CACHE_DIR", str(blocker / "cache"))
    assert templates.render("{{ n | num }} left", {"n": 1234}) == "1,234 left"
    templates._bytecode.cache_clear()
    templates.compile_template.cache_clear()
    monkeypatch.setenv("EMBLENS_NO_CACHE", "1")
    assert templates.render("{{ n | num }} right", {"n": 5}) == "5 right"


def test_one_process_loads_unchanged_rules_once(tmp_path, cache_dir):
    rules = _folder(tmp_path)
    first = load_rules([rules])
    assert load_rules([rules]) is first                  # no hashing, no unpickling: the same rule set
    (rules / "teapot.yaml").write_text(RULE.replace("418", "419"))
    assert load_rules([rules]) is not first and "419" in load_rules([rules]).get("custom.teapot").message
