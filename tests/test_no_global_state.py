"""No module of emblens holds state that one analysis could change and another then see: module-level
values are immutable (numbers, text, tuples, frozen sets, read-only mappings, compiled patterns,
frozen dataclasses), except the few listed below with why each is safe, and no function rebinds a
module's name (`global`). Per-run state lives in `emblens.run.Run`."""

from __future__ import annotations

import ast
import dataclasses
import enum
import importlib
import re
import types
from datetime import timedelta
from pathlib import Path

import polars as pl

import emblens

SRC = Path(emblens.__file__).parent

# module -> {name: why it may hold a mutable value}
ALLOWED = {
    "emblens.events.redact": {
        "_SEEN": "a bounded memo of the pure `_builtin` masking (text -> masked text and kinds): the same for every run",
    },
    "emblens.patterns.linear": {"MEMO": "a bounded memo of a pure answer: whether polars' engine takes a pattern"},
    "emblens.patterns.literals": {"MEMO": "a bounded memo of a pure answer: a pattern's literals"},
    "emblens.rules.templates": {
        "NAMES": "a bounded memo of a pure answer: the names a template uses",
        "ENV": "jinja2's environment: its caches hold compiled templates keyed by their text",
        "STRICT": "jinja2's environment for lint: the same",
        "_SOURCES": "template texts keyed by their hash (content-addressed: a name always holds the same text)",
    },
    "emblens.frontends.cli": {"app": "the typer application, built once at import",
                              "rules_app": "the typer group of `emblens rules`, built once at import"},
    "emblens.frontends.live.addon": {"log": "logging's logger for `emblens` (logging's own registry)"},
    "emblens.frontends.live.mitm_addon": {"addons": "mitmproxy's list of the addons of this mitmdump process"},
}

IMMUTABLE = (int, float, complex, str, bytes, bool, type(None), range, re.Pattern, timedelta, types.ModuleType,
             types.FunctionType, types.BuiltinFunctionType, type, property, staticmethod, classmethod,
             types.GenericAlias, types.UnionType, pl.DataType, Path, enum.Enum)


def _immutable(value, depth: int = 0) -> bool:
    if depth > 8:
        return False
    if isinstance(value, IMMUTABLE) or callable(value) and hasattr(value, "cache_info"):   # functools caches
        return True
    if type(value) is object:                         # a sentinel
        return True
    if getattr(type(value), "__slots__", None) == () and not hasattr(value, "__dict__"):
        return True                                   # an instance that holds nothing (the formats)
    if type(value).__module__ == "typing":           # Annotated[...], Optional[...] aliases
        return True
    if isinstance(value, (tuple, frozenset)):
        return all(_immutable(v, depth + 1) for v in value)
    if isinstance(value, types.MappingProxyType):
        return all(_immutable(k, depth + 1) and _immutable(v, depth + 1) for k, v in value.items())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        params = getattr(type(value), "__dataclass_params__", None)
        return bool(params and params.frozen) and all(
            _immutable(getattr(value, f.name), depth + 1) for f in dataclasses.fields(value))
    return False


def _modules() -> list[tuple[str, Path]]:
    out = [("emblens", SRC / "__init__.py")]
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC).with_suffix("")
        if rel.name == "__main__":
            continue
        parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
        if parts:
            out.append((".".join(("emblens", *parts)), path))
    return out


def _assigned(path: Path) -> set[str]:
    """The names a module's own top-level statements bind with `=` (inside top-level if/try too)."""
    names: set[str] = set()
    todo = list(ast.parse(path.read_text(encoding="utf-8")).body)
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.If, ast.Try)):
            todo += node.body + node.orelse + getattr(node, "finalbody", []) + \
                [s for h in getattr(node, "handlers", []) for s in h.body]
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        for target in targets:
            for n in ast.walk(target):
                if isinstance(n, ast.Name):
                    names.add(n.id)
    return names


def test_no_module_holds_mutable_state_but_the_listed_memos_and_registries():
    found = []
    for name, path in _modules():
        module = importlib.import_module(name)
        allowed = ALLOWED.get(name, {})
        for attr in sorted(_assigned(path)):
            if attr.startswith("__") or attr in allowed or attr not in vars(module):
                continue
            value = vars(module)[attr]
            if isinstance(value, types.MethodType) and any(value.__self__ is vars(module).get(a) for a in allowed):
                continue                              # a method of a listed memo (`known = MEMO.known`)
            if not _immutable(value):
                found.append(f"{name}.{attr}: {type(value).__name__}")
    assert not found, "module-level mutable values:\n" + "\n".join(found)


def test_no_function_rebinds_a_module_name():
    found = []
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Global):
                found.append(f"{path.relative_to(SRC)}:{node.lineno}: global {', '.join(node.names)}")
    assert not found, found


def test_the_allowed_names_exist_and_say_why():
    for module, names in ALLOWED.items():
        m = importlib.import_module(module)
        for attr, why in names.items():
            assert hasattr(m, attr), f"{module}.{attr} is listed but gone: take it off the list"
            assert len(why) > 20
