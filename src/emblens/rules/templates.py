"""Message and remedy templates: Jinja2 in its immutable sandbox, so a rule file from a stranger
can format values but not reach Python.

Values: every fact (`served_models`, `gpu_other_pid`, ...), the most common value of each column
among the matched events (`http_status`, `req_model`, ...), the named groups of the rule's
regexes (`asked`), and `count`, `first_seen`, `last_seen`, `sources`. A value that is unknown is
undefined: `{{ x | default('fallback') }}`, `{% if x %}…{% endif %}`, `{% if x is defined %}`.
Printed values read naturally: yes/no for booleans, `a`, `b` for lists, 3 rather than 3.0.

Filters beside Jinja's own:
    {{ asked | closest(served_models) }}   the served name closest to what was asked
    {{ 13650.0 | num }} -> 13,650          thousands separators; {{ x | num(2) }} -> 10.21
    {{ names | codes }}                    `a`, `b` (a list, or comma-separated text)
    {{ token | shape }}                    a credential reduced to its shape: <key: 32 chars>
    {{ n | plural('request') }}            1 request, 3 requests
Whitespace in a template is collapsed to single spaces, as in a YAML folded string.
"""

from __future__ import annotations

import difflib
import hashlib
import re
import shutil
from datetime import datetime
from functools import lru_cache
from pathlib import Path

from jinja2 import FunctionLoader, StrictUndefined, TemplateError, Undefined, meta
from jinja2.bccache import FileSystemBytecodeCache
from jinja2.sandbox import ImmutableSandboxedEnvironment

from emblens.errors import RuleError
from emblens.events import redact
from emblens.patterns.memo import Memo

UNKNOWN = "unknown"   # what an unknown value prints as (the fixture runner looks for it)


class Unknown(Undefined):
    """An unknown value: prints as 'unknown', is false in `if`, is replaced by `default`."""

    __slots__ = ()

    def __str__(self) -> str:
        return UNKNOWN


def closest(asked: object, candidates: object) -> object:
    """The served name closest to what was asked; case and separators count for little.

    >>> closest("qwen3-embedding-4b", ["Qwen/Qwen3-Embedding-4B", "bge-m3"])
    'Qwen/Qwen3-Embedding-4B'
    >>> closest("bge_m3", ["Qwen3-Embedding-4B", "bge-m3"])
    'bge-m3'
    """
    if isinstance(asked, Undefined) or isinstance(candidates, Undefined) or not asked or not candidates:
        return Unknown()
    names = [str(c) for c in (candidates if isinstance(candidates, (list, tuple)) else [candidates])]
    norm = {re.sub(r"[^a-z0-9]", "", n.lower().rsplit("/", 1)[-1]): n for n in names}
    key = re.sub(r"[^a-z0-9]", "", str(asked).lower().rsplit("/", 1)[-1])
    if key in norm:
        return norm[key]
    best = difflib.get_close_matches(key, list(norm), n=1, cutoff=0.5)
    return norm[best[0]] if best else names[0]


def num(value: object, digits: int = 0) -> object:
    """Thousands separators and a fixed number of decimals.

    >>> num(13650.0), num(10.2149, 2)
    ('13,650', '10.21')
    """
    if isinstance(value, Undefined) or value is None:
        return Unknown()
    return f"{float(value):,.{max(0, int(digits))}f}"


def codes(value: object) -> object:
    if isinstance(value, Undefined) or value in (None, "", []):
        return Unknown()
    items = value if isinstance(value, (list, tuple)) else [v.strip() for v in str(value).split(",") if v.strip()]
    return ", ".join(f"`{v}`" for v in items)


def shape(value: object) -> object:
    return Unknown() if isinstance(value, Undefined) or value is None else redact.shape(str(value))


def plural(n: object, word: str, words: str | None = None) -> str:
    count = int(n) if not isinstance(n, Undefined) and n is not None else 0
    return f"{count:,} {word if count == 1 else (words or word + 's')}"


def show(value: object) -> object:
    """How a value prints in a message."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (list, tuple)):
        return ", ".join(f"`{v}`" for v in value)
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return value


def _environment(undefined: type[Undefined]) -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(undefined=undefined, finalize=show, autoescape=False, keep_trailing_newline=False)
    env.filters.update(closest=closest, num=num, codes=codes, shape=shape, plural=plural)
    return env


ENV = _environment(Unknown)
STRICT = _environment(StrictUndefined)   # lint: a template that cannot even be parsed


def collapse(source: str) -> str:
    return " ".join(source.split())


@lru_cache(maxsize=4096)
def compile_template(source: str):
    text = collapse(source)
    if _bytecode() is None:
        return ENV.from_string(text)
    name = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()
    _SOURCES[name] = text
    return ENV.get_template(name)


# Compiled templates are kept on disk with jinja2's own bytecode cache: compiling the two dozen
# templates of a few findings costs a run some 30 ms, loading them 1 ms. The folder sits beside the
# rule cache (`emblens.rules.cache.folder`, none with EMBLENS_NO_CACHE) and is named by everything
# the code depends on: emblens's version, jinja2's, Python's and this module's source.
KEEP_FOLDERS = 4
_SOURCES: dict[str, str] = {}     # template name (a hash of its text) -> text, for the loader


class _Bytecode(FileSystemBytecodeCache):
    def dump_bytecode(self, bucket) -> None:
        try:
            super().dump_bytecode(bucket)
        except OSError:      # a cache that cannot be written only costs time
            pass


@lru_cache(maxsize=1)
def _bytecode() -> _Bytecode | None:
    import sys

    import jinja2

    from emblens._version import __version__
    from emblens.rules import cache

    base = cache.folder()
    if base is None:
        return None
    h = hashlib.blake2b(digest_size=10)
    for part in (__version__, jinja2.__version__, sys.version):
        h.update(part.encode() + b"\0")
    try:
        h.update(Path(__file__).read_bytes())
        here = base / f"templates-{h.hexdigest()}"
        if not here.is_dir():
            here.mkdir(mode=0o700, parents=True, exist_ok=True)
            # other versions' folders: the newest few are kept (two installs side by side)
            others = sorted((d for d in base.glob("templates-*") if d != here), key=lambda d: d.stat().st_mtime)
            for old in others[:-KEEP_FOLDERS]:
                shutil.rmtree(old, ignore_errors=True)
    except OSError:
        return None
    ENV.loader = FunctionLoader(_SOURCES.get)
    ENV.bytecode_cache = _Bytecode(str(here))
    return ENV.bytecode_cache


@lru_cache(maxsize=4096)
def parse(source: str):
    """The template's syntax tree: enough to check it and to see which values it uses."""
    return ENV.parse(collapse(source))


def check(source: str, *, path: str, line: int) -> None:
    """Raise RuleError (file:line) when a template does not parse (it is compiled when first rendered)."""
    try:
        names(source)
    except TemplateError as e:
        lineno = getattr(e, "lineno", None) or 1
        raise RuleError(f"template: {e.message or e}", path=path, line=line + lineno - 1) from None


def names(source: str) -> frozenset[str]:
    """The values a template refers to. Remembered, and kept with the rule cache for the rules'
    templates (`known_names`, `learn_names`): parsing them again costs a run some 20-30 ms."""
    return NAMES(source)


NAMES = Memo(lambda source: frozenset(meta.find_undeclared_variables(parse(source))),
             lambda used: isinstance(used, frozenset))
known_names, learn_names = NAMES.known, NAMES.learn


def render(source: str, context: dict[str, object]) -> str:
    """Render a template; values that are None, empty or [] count as unknown. A template that
    fails at render time says so in the text rather than breaking the report."""
    values = {k: v for k, v in context.items() if v is not None and v != "" and v != []}
    try:
        return collapse(compile_template(source).render(values))
    except (TemplateError, TypeError, ValueError, ArithmeticError) as e:
        return f"[template error: {type(e).__name__}: {str(e)[:120]}]"
