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

A rule folder may come from anyone, so a template also runs on a budget (`Budget`): a `range` of
at most MAX_RANGE numbers, MAX_STEPS loop steps, calls and operators in all, MAX_OUTPUT
characters of any text it builds, and MAX_SECONDS of time. A template that runs past one stops
and prints `[template error: ...]` in place of its text; the rest of the analysis goes on.
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import re
import shutil
import time
from datetime import datetime
from functools import lru_cache
from pathlib import Path

from jinja2 import FunctionLoader, StrictUndefined, TemplateError, Undefined, meta, nodes, pass_context
from jinja2.bccache import FileSystemBytecodeCache
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

from emblens.errors import RuleError
from emblens.events import redact
from emblens.patterns.memo import Memo

UNKNOWN = "unknown"   # what an unknown value prints as (the fixture runner looks for it)
ERROR = "[template error: "   # how a template that failed starts its text (the CLI names the rule on stderr)

# What one rendering of a template may spend. Rule texts are a sentence or two: these are far above
# what any of them needs and far below what would stall a run.
MAX_RANGE = 1000            # numbers in one range()
MAX_STEPS = 20_000          # loop steps, calls, operators and range numbers, in all
MAX_OUTPUT = 64 * 1024      # characters of the text, and of any text or list it builds on the way
MAX_SECONDS = 2.0


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
    >>> closest("bge\u200b-m3", ["bge-m3"])
    'bge-m3'
    >>> print(closest("bge-m3", ["bge\u200b-m3"]))
    bge\\u200b-m3
    >>> closest(None, ["emb"]), bool(closest(None, ["a", "b"]))
    ('emb', False)

    A name with an invisible character (a zero-width space, a bidi control) is shown with it
    escaped, so a suggestion never looks the same as what was asked.
    """
    if isinstance(candidates, Undefined) or not candidates:
        return Unknown()
    names = [redact.printable(str(c)) for c in (candidates if isinstance(candidates, (list, tuple)) else [candidates])]
    if isinstance(asked, Undefined) or not asked:     # nothing asked that is known: only a sole name is the one
        return names[0] if len(names) == 1 else Unknown()
    # names are short; difflib is quadratic in the length of what it compares
    norm = {re.sub(r"[^a-z0-9]", "", n.lower().rsplit("/", 1)[-1])[:200]: n for n in names[:1000]}
    key = re.sub(r"[^a-z0-9]", "", redact.printable(str(asked)).lower().rsplit("/", 1)[-1])[:200]
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
        _check_joined(value, "`, `")
        return ", ".join(f"`{v}`" for v in value)
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return value


# -- the budget ---------------------------------------------------------------------------------------
_BUDGET = "emblens budget"   # its key among a rendering's values: not a name a template can write


class Exhausted(SecurityError):
    """A template ran past its budget."""


class Budget:
    """What one rendering has left: steps and time."""

    __slots__ = ("steps", "deadline")

    def __init__(self) -> None:
        self.steps = MAX_STEPS
        self.deadline = time.monotonic() + MAX_SECONDS

    def spend(self, n: int = 1) -> None:
        self.steps -= n
        if self.steps < 0:
            raise Exhausted(f"stopped after {MAX_STEPS:,} steps (loops, calls, range numbers)")
        if time.monotonic() > self.deadline:
            raise Exhausted(f"stopped after {MAX_SECONDS:g} s")


def _budget(context) -> Budget | None:
    budget = context.get(_BUDGET) if context is not None else None
    return budget if isinstance(budget, Budget) else None


def _size(value: object) -> int:
    return len(value) if isinstance(value, (str, list, tuple, dict, set, frozenset)) else 0


def _too_big(what: str = "text") -> Exhausted:
    return Exhausted(f"a {what} longer than {MAX_OUTPUT:,} characters")


def _check_size(value: object) -> object:
    if _size(value) > MAX_OUTPUT:
        raise _too_big("value" if not isinstance(value, str) else "text")
    return value


def bounded_range(*args: int) -> range:
    """range() of at most MAX_RANGE numbers."""
    r = range(*args)
    if len(r) > MAX_RANGE:
        raise Exhausted(f"range() of {len(r):,} numbers (at most {MAX_RANGE:,})")
    return r


def _concat(pieces) -> str:
    """Joins a template's output, or the output of a block, macro or `set`, and stops once it
    passes MAX_OUTPUT (the top level is a generator: it stops there, not after building it all)."""
    out, total = [], 0
    for piece in pieces:
        total += len(piece)
        if total > MAX_OUTPUT:
            raise _too_big()
        out.append(piece)
    return "".join(out)


@pass_context
def _each(context, iterable):
    """What a `for` loop walks: each step is spent from the budget."""
    budget = _budget(context)
    if budget is None or isinstance(iterable, Undefined):
        yield from iterable
        return
    for item in iterable:
        budget.spend()
        yield item


@pass_context
def _join(context, values) -> str:
    """The `~` operator: its parts as text, at most MAX_OUTPUT characters."""
    budget = _budget(context)
    if budget is not None:
        budget.spend()
    return _concat(str(v) for v in values)


# a printf or format spec with a width or precision of six digits or more, or one taken from the
# arguments (`*`, `{:{w}}`): text no message needs
_WIDE_SPEC = re.compile(r"%[-#0 +]*(?:\d{6,}|\*)|%[-#0 +]*\d*\.(?:\d{6,}|\*)|\{[^{}]*:[^{}]*(?:\d{6,}|\{)")
# the filters and text methods whose arguments say how big a text or list to build
_SIZED = frozenset(("center", "ljust", "rjust", "zfill", "expandtabs", "indent", "batch", "slice", "format"))


def _check_call(name: str, value: object, args: tuple, kwargs: dict) -> None:
    """Refuse, before it runs, a filter or text method that would build a huge text or list in one
    step: `center(10**9)`, a format width of a million, `replace` or `join` of huge parts."""
    if name in _SIZED:
        for a in (*args, *kwargs.values()):
            if isinstance(a, int) and not isinstance(a, bool) and abs(a) > MAX_OUTPUT:
                raise Exhausted(f"a size of {a:,} (at most {MAX_OUTPUT:,})")
        if name == "format" and isinstance(value, str) and _WIDE_SPEC.search(value):
            raise Exhausted("a format width or precision of a million or more")
        if name == "indent" and isinstance(value, str):
            width = next((a for a in (*args, *kwargs.values()) if isinstance(a, int) and not isinstance(a, bool)), 4)
            if (value.count("\n") + 1) * abs(width) > MAX_OUTPUT:
                raise _too_big()
    elif name == "replace" and isinstance(value, str) and len(args) >= 2 and isinstance(args[0], str):
        old, new = args[0], str(args[1])
        if (value.count(old) if old else len(value) + 1) * len(new) > MAX_OUTPUT:
            raise _too_big()
    elif name == "join":
        if isinstance(value, str):        # the text method: sep.join(parts)
            sep, parts = value, args[0] if args else ()
        else:                             # the filter: parts | join(sep)
            sep, parts = (args[0] if args else kwargs.get("d", "")), value
        _check_joined(parts, str(sep))
    elif name == "codes":
        _check_joined(value, "`, `")


def _check_joined(parts: object, sep: str) -> None:
    """Refuse to join a list whose parts would make a text longer than MAX_OUTPUT."""
    if isinstance(parts, (list, tuple)):
        if sum(len(p) if isinstance(p, str) else 8 for p in parts) + len(sep) * len(parts) > MAX_OUTPUT:
            raise _too_big()


def _guard_filter(name: str, f):
    """A filter whose sizes are checked before it runs and whose result is checked after."""
    skip = 1 if getattr(f, "jinja_pass_arg", None) is not None else 0   # context, eval context or environment

    @functools.wraps(f)
    def guarded(*args, **kwargs):
        if len(args) > skip:
            _check_call(name, args[skip], args[skip + 1:], kwargs)
        return _check_size(f(*args, **kwargs))

    return guarded


class _Environment(ImmutableSandboxedEnvironment):
    """The sandbox, with every loop, call and operator spending from the rendering's `Budget` and
    every text it builds bounded (see the module's docstring)."""

    intercepted_binops = frozenset(("*", "**", "%", "+"))
    concat = staticmethod(_concat)

    def _parse(self, source, name, filename):
        tree = super()._parse(source, name, filename)
        # every loop walks its iterable through `_each`, every `~` joins through `_join`
        for loop in tree.find_all(nodes.For):
            loop.iter = nodes.Filter(loop.iter, "emblens_each", [], [], None, None, lineno=loop.iter.lineno)
            loop.iter.set_environment(self)
        for node in list(tree.find_all(nodes.Concat)):
            parts = nodes.List(node.nodes, lineno=node.lineno)
            node.nodes = [nodes.Filter(parts, "emblens_join", [], [], None, None, lineno=node.lineno)]
            node.nodes[0].set_environment(self)
            parts.set_environment(self)
        return tree

    def call(__self, __context, __obj, *args, **kwargs):   # jinja2's own signature (the names keep clear of kwargs)
        budget = _budget(__context)
        if budget is not None:
            budget.spend()
        # what jinja2 adds to a call made in a loop or block: its context's variables, not arguments
        plain = {k: v for k, v in kwargs.items() if k not in ("_loop_vars", "_block_vars")}
        if __obj is bounded_range:
            r = bounded_range(*args, **plain)
            if budget is not None:
                budget.spend(len(r))
            return r
        method = getattr(__obj, "__wrapped__", __obj)   # str.format comes wrapped by the sandbox
        if isinstance(getattr(method, "__self__", None), str):
            _check_call(method.__name__, method.__self__, args, plain)
        return _check_size(super().call(__context, __obj, *args, **kwargs))

    def call_binop(self, context, operator: str, left, right):
        budget = _budget(context)
        if budget is not None:
            budget.spend()
        if operator == "*":
            for seq, n in ((left, right), (right, left)):
                if isinstance(seq, (str, list, tuple)) and isinstance(n, int) and len(seq) * n > MAX_OUTPUT:
                    raise _too_big()
        elif operator == "**":
            if isinstance(left, int) and isinstance(right, int) and abs(left) > 1 and right > 0 \
                    and right * abs(left).bit_length() > 4096:
                raise Exhausted("a number of more than 4,096 bits")
        elif operator == "%" and isinstance(left, str):
            _check_call("format", left, right if isinstance(right, tuple) else (right,), {})
        return _check_size(super().call_binop(context, operator, left, right))


def _environment(undefined: type[Undefined]) -> _Environment:
    env = _Environment(undefined=undefined, finalize=show, autoescape=False, keep_trailing_newline=False)
    env.filters.update(closest=closest, num=num, codes=codes, shape=shape, plural=plural)
    env.filters.update({name: _guard_filter(name, f) for name, f in env.filters.items()})
    env.filters.update(emblens_each=_each, emblens_join=_join)
    env.globals["range"] = bounded_range
    env.globals.pop("lipsum", None)       # lipsum(n=10**9) would write a book
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
    fails at render time, or runs past its budget, says so in the text rather than breaking the
    report."""
    values = {k: v for k, v in context.items() if v is not None and v != "" and v != []}
    values[_BUDGET] = Budget()
    try:
        return collapse(compile_template(source).render(values))
    except Exhausted as e:
        return f"{ERROR}{e}]"
    except RecursionError:
        return f"{ERROR}calls nested too deep]"
    except Exception as e:   # a template comes from a rules folder: whatever it raises, the analysis goes on
        return f"{ERROR}{type(e).__name__}: {redact.printable(str(e))[:120]}]"
