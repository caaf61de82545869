"""The layout shows the pipeline's stages: each package says its role, the library never imports a
front end (nor typer), and the front ends do not import one another (they share the library, and
`frontends/httprec.py` for emblens's own HTTP exchanges)."""

from __future__ import annotations

import ast
from pathlib import Path

import emblens

SRC = Path(emblens.__file__).parent
PACKAGES = ("ingest", "reading", "formats", "events", "patterns", "knowledge", "combiners", "rules", "findings", "report",
            "frontends")


def _imports(path: Path) -> set[str]:
    """The emblens modules a file imports, anywhere in it (imports inside functions count)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("emblens")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("emblens"):
            out.add(node.module)
            out |= {f"{node.module}.{a.name}" for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module is None:
            raise AssertionError(f"{path}: relative import")
    return out


def _module(path: Path) -> str:
    rel = path.relative_to(SRC).with_suffix("")
    return ".".join(("emblens", *(rel.parts[:-1] if rel.name == "__init__" else rel.parts)))


def test_every_stage_is_a_package_that_says_what_it_is_for():
    for name in PACKAGES:
        init = SRC / name / "__init__.py"
        assert init.is_file(), name
        doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8")))
        assert doc and len(doc) > 40, f"emblens.{name} has no docstring saying its role"
    # beside the stages: the front door (`diagnose`, `run`, `settings`), and what every stage may use
    # (`errors`, `outfiles`: every file emblens writes is written whole or not at all)
    loose = sorted(p.name for p in SRC.glob("*.py"))
    assert loose == ["__init__.py", "__main__.py", "_version.py", "diagnose.py", "errors.py", "fixtures.py",
                     "outfiles.py", "run.py", "settings.py"], loose


def test_the_library_never_imports_a_front_end_or_typer():
    for path in SRC.rglob("*.py"):
        if "frontends" in path.relative_to(SRC).parts or path.name == "__main__.py":
            continue
        bad = {m for m in _imports(path) if m.startswith("emblens.frontends")}
        assert not bad, f"{_module(path)} imports {bad}"
        assert "import typer" not in path.read_text(encoding="utf-8"), path


def test_the_front_ends_do_not_import_one_another():
    fronts = {"collect": SRC / "frontends" / "collect.py", "probe": SRC / "frontends" / "probe.py",
              "live": SRC / "frontends" / "live"}
    for name, where in fronts.items():
        files = [where] if where.is_file() else sorted(where.glob("*.py"))
        for path in files:
            for other in fronts:
                if other == name:
                    continue
                bad = {m for m in _imports(path) if m.startswith(f"emblens.frontends.{other}")}
                assert not bad, f"{_module(path)} imports {bad}"
