"""The rule format as a rule author meets it: lint reports every problem with file:line and a
suggestion, the JSON Schema agrees with the loader, templates are sandboxed Jinja, and the
package has no import cycle."""

import ast
import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml
from typer.testing import CliRunner

from emblens.errors import RuleError
from emblens.frontends.cli import app
from emblens.rules.loader import load_rules, rule_files
from emblens.rules.schemagen import render, rule_schema
from emblens.rules.templates import render as render_template

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src" / "emblens"

GOOD = """\
id: site.embed_409
title: Embedding calls got 409 from our gateway
severity: warning
means: Our gateway answers 409 on embeddings while a tenant's quota is being moved.
match: {kind: http, http_status: 409, http_path: /v1/embeddings}
message: "{{ count }} embedding call(s) got 409 on {{ http_path }}"
remedy: [Provision the tenant.]
"""
BROKEN = {
    # a misspelt top-level key
    "typo_key.yaml": GOOD.replace("id: site.embed_409", "id: site.typo_key").replace("message:", "mesage:"),
    # a kind that does not exist, and a misspelt column
    "bad_kind.yaml": GOOD.replace("id: site.embed_409", "id: site.bad_kind").replace(
        "match: {kind: http, http_status: 409, http_path: /v1/embeddings}",
        "match:\n  all:\n    - {kind: htp}\n    - {http_stauts: 404}"),
    # a regex polars cannot compile and the backtracking engine cannot either, and an unknown fact
    "bad_regex.yaml": GOOD.replace("id: site.embed_409", "id: site.bad_regex").replace(
        "match: {kind: http, http_status: 409, http_path: /v1/embeddings}",
        "match:\n  any:\n    - message: {regex: \"(unclosed\"}\n    - facts: {served_model: {exists: true}}"),
}


VLLM = "INFO 11-20 09:14:02 [api_server.py:1839] vLLM API server version 0.11.0\n"


def _folder(tmp_path, files):
    for name, text in files.items():
        (tmp_path / name).write_text(text)
        stem = name.rsplit(".", 1)[0]
        (tmp_path / f"{stem}.pos-a.log").write_text(VLLM + 'INFO:     127.0.0.1:1 - "POST /v1/embeddings HTTP/1.1" 409 Conflict\n')
        (tmp_path / f"{stem}.neg-a.log").write_text(VLLM + 'INFO:     127.0.0.1:1 - "POST /v1/embeddings HTTP/1.1" 200 OK\n')
    return tmp_path


def test_lint_reports_every_broken_rule_with_line_and_suggestion(tmp_path):
    folder = _folder(tmp_path, BROKEN)
    r = subprocess.run([sys.executable, "-m", "emblens", "rules", "lint", str(folder)], capture_output=True, text=True)
    assert r.returncode == 2
    err = r.stderr
    assert f"{folder / 'typo_key.yaml'}:6: unknown key 'mesage' in a head rule file (did you mean `message`?)" in err
    assert f"{folder / 'typo_key.yaml'}:1: missing 'message'" in err
    assert f"{folder / 'bad_kind.yaml'}:7: kind is never 'htp'" in err and "(did you mean `http`?)" in err
    assert f"{folder / 'bad_kind.yaml'}:8: unknown column or node 'http_stauts'" in err and "(did you mean `http_status`?)" in err
    assert f"{folder / 'bad_regex.yaml'}:7: bad regex" in err
    assert f"{folder / 'bad_regex.yaml'}:8: unknown fact 'served_model' (did you mean `served_models`?)" in err
    assert "Traceback" not in err


def test_lint_checks_template_names_and_explains(tmp_path):
    text = GOOD.replace('"{{ count }} embedding call(s) got 409 on {{ http_path }}"', '"409 on {{ htp_path }}"')
    text += "explains: [auth.invalid_kye]\n"
    folder = _folder(tmp_path, {"mine.yaml": text})
    r = CliRunner().invoke(app, ["rules", "lint", str(folder)])
    assert r.exit_code == 2
    assert "template uses 'htp_path', which no column, fact, capture or var provides (did you mean `http_path`?)" in r.output
    assert "explains unknown rule id 'auth.invalid_kye' (did you mean `auth.invalid_key`?)" in r.output


def test_lint_passes_on_the_shipped_rules_and_a_good_folder(tmp_path):
    r = CliRunner().invoke(app, ["rules", "lint"])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(app, ["rules", "lint", str(_folder(tmp_path, {"good.yaml": GOOD}))])
    assert r.exit_code == 0, r.output


def test_analyze_with_a_broken_folder_is_one_line_naming_the_first_problem(tmp_path):
    folder = _folder(tmp_path, BROKEN)
    with pytest.raises(RuleError) as e:
        load_rules([folder])
    assert str(e.value).startswith(f"{folder / 'bad_kind.yaml'}:7: kind is never 'htp'")
    assert "more: run `emblens rules lint` on the folder" in str(e.value)


def test_json_schema_is_current_accepts_every_shipped_rule_and_rejects_the_broken(tmp_path):
    shipped = REPO / "rules" / "schema.json"
    assert json.loads(shipped.read_text()) == rule_schema(), "rules/schema.json is stale: emblens rules schema -o rules/schema.json"
    assert shipped.read_text() == render()
    validator = jsonschema.Draft202012Validator(rule_schema())
    files = rule_files(REPO / "rules")
    assert len(files) > 25
    for f in files:
        errors = list(validator.iter_errors(yaml.safe_load(f.read_text())))
        assert not errors, f"{f}: {errors[0].message}"
    for name, text in BROKEN.items():
        assert list(validator.iter_errors(yaml.safe_load(text))), f"the schema accepts {name}"
    assert not list(validator.iter_errors(yaml.safe_load(GOOD)))


def test_user_rule_replacing_a_builtin_gives_a_notice_and_duplicates_in_one_folder_are_errors(tmp_path):
    mine = (REPO / "rules/auth/forbidden.yaml").read_text().replace("confidence: 0.8", "confidence: 0.7")
    (tmp_path / "forbidden.yaml").write_text(mine)
    rules = load_rules([tmp_path])
    assert rules.get("auth.forbidden").confidence == 0.7
    assert any("replaces rule auth.forbidden" in n for n in rules.notices)
    (tmp_path / "forbidden_again.yaml").write_text(mine)
    with pytest.raises(RuleError, match=r"forbidden_again.yaml:2: id auth.forbidden is also defined in .*forbidden.yaml:2"):
        load_rules([tmp_path])


def test_templates_are_sandboxed_and_unknown_values_say_so():
    assert render_template("{{ x.__class__ }}", {"x": 1}) == "unknown"       # the sandbox hides it
    escaped = render_template("{{ x.__class__.__mro__ }}", {"x": 1})
    assert escaped.startswith("[template error: SecurityError") and "object" not in escaped.split("unsafe")[1]
    assert render_template("{{ asked | closest(names) }}", {"asked": "qwen3-embedding-4b", "names": ["Qwen3-Embedding-4B"]}) == "Qwen3-Embedding-4B"
    assert render_template("{{ n | num }} {{ flag }} {{ names | codes }} {{ missing | default('-') }}",
                           {"n": 13650.0, "flag": True, "names": ["a", "b"], "missing": None}) == "13,650 yes `a`, `b` -"
    assert render_template("{{ n | plural('request') }}, {{ m | plural('request') }}", {"n": 1, "m": 3}) == "1 request, 3 requests"


def _imports(path: Path, module: str) -> set[str]:
    """Modules of emblens a module imports, function-level imports included."""
    tree = ast.parse(path.read_text())
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("emblens")}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            if not base.startswith("emblens"):
                continue
            for a in node.names:   # `from emblens import schema` imports the submodule
                sub = f"{base}.{a.name}"
                out.add(sub if (SRC.parent / (sub.replace(".", "/") + ".py")).exists()
                        or (SRC.parent / sub.replace(".", "/")).is_dir() else base)
    return out


def test_no_import_cycle_in_the_package():
    graph = {}
    for path in SRC.rglob("*.py"):
        rel = path.relative_to(SRC.parent).with_suffix("")
        module = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
        graph[module] = _imports(path, module) - {module}
    assert len(graph) > 30
    # Tarjan's strongly connected components: any with more than one module is a cycle
    index, low, stack, on, cycles, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in graph:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    assert not cycles, cycles


def test_formats_do_not_import_rules_and_the_runner_is_outside_the_rules_package():
    for path in (SRC / "formats").glob("*.py"):
        rel = path.relative_to(SRC.parent).with_suffix("")
        assert not any(m.startswith("emblens.rules") for m in _imports(path, ".".join(rel.parts))), path
    assert not (SRC / "rules" / "fixtures.py").exists()


def test_rules_test_runs_the_fixtures_of_a_user_folder_only(tmp_path):
    r = CliRunner().invoke(app, ["rules", "test", str(_folder(tmp_path, {"good.yaml": GOOD}))])
    assert r.exit_code == 0, r.output
    assert r.output.splitlines()[-1] == "2 passed, 0 failed"
    (tmp_path / "good.pos-a.log").write_text(VLLM + 'INFO:     127.0.0.1:1 - "POST /v1/embeddings HTTP/1.1" 200 OK\n')
    r = CliRunner().invoke(app, ["rules", "test", str(tmp_path)])
    assert r.exit_code == 1 and "FAIL site.embed_409" in r.output and "did not fire" in r.output
