"""Load rule files: YAML (safely, keeping lines) -> typed, frozen `Part`s -> `Rule`s by id.

Every problem is collected with its file and line, and a suggestion where a near name exists
(`mesage` -> did you mean `message`?); `load_rules` raises the first as a `RuleError` (with a
count of the others), `emblens rules lint` prints them all. The format is described in
`spec.py` and README.md ("Rules").
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from pathlib import Path

from emblens.errors import RuleError
from emblens.events.schema import SCHEMA
from emblens.knowledge import cues as cue_data
from emblens.knowledge import modeldata, upstream
from emblens.knowledge.modeldata import ModelData
from emblens.knowledge.yamlsafe import refuse_aliases
from emblens.patterns import linear, literals
from emblens.rules import builtin_dir, spec
from emblens.rules import templates as tpl
from emblens.rules import tree as t

MAX_DEPTH = 32                     # nesting of any/all/not in one match tree
MAX_RULE_FILE_BYTES = 1024 * 1024  # rule files are a few KiB
FIXTURE_NAME = re.compile(r"^(?P<stem>[^.]+)\.(?P<kind>pos|neg)(?:[-.].*)?$")
_ID = re.compile(spec.ID_PATTERN)
_NAME = re.compile(spec.NAME_PATTERN)


class LineDict(dict):
    """A mapping that remembers its own line and the line of each key."""

    line: int = 1
    key_lines: dict


@lru_cache(maxsize=1)
def _loader_class():
    """The safe loader, building `LineDict`s and refusing duplicate keys (PyYAML is imported here:
    a run whose rules come from the cache reads no YAML)."""
    import yaml

    from emblens.knowledge.yamlsafe import loader_class

    class _Loader(loader_class()):  # type: ignore[misc,valid-type]
        pass

    def _mapping(loader: _Loader, node: yaml.MappingNode) -> LineDict:
        loader.flatten_mapping(node)
        out = LineDict()
        out.line = node.start_mark.line + 1
        out.key_lines = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if key in out:
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
            out[key] = loader.construct_object(value_node, deep=True)
            out.key_lines[key] = key_node.start_mark.line + 1
        return out

    _Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)
    return _Loader


def _line(node: object, key: str | None = None, default: int = 1) -> int:
    if isinstance(node, LineDict):
        return node.key_lines.get(key, node.line) if key is not None else node.line
    return default


@dataclass(frozen=True)
class Part:
    """One rule file: a head, a signal or a cause (see spec.py)."""

    kind: str                              # head | signal | cause
    id: str
    path: str
    line: int
    name: str | None = None                # the signal's or cause's name
    title: str = ""
    severity: str = "error"
    means: str = ""
    match: t.Node | None = None
    message: str | None = None
    remedy: tuple[str, ...] | None = None
    explains: tuple[str, ...] = ()
    supporting: t.Node | None = None
    references: tuple[str, ...] = ()
    confidence: float | None = None
    count_min: int = 1
    within_s: float | None = None
    vars: tuple[tuple[str, str], ...] = ()
    when: t.Node | None = None
    order: int = 100


@dataclass(frozen=True)
class Rule:
    """A rule id: its head, and the signals and causes written for it (causes in order)."""

    head: Part
    signals: tuple[Part, ...] = ()
    causes: tuple[Part, ...] = ()

    id = property(lambda self: self.head.id)
    title = property(lambda self: self.head.title)
    severity = property(lambda self: self.head.severity)
    means = property(lambda self: self.head.means)
    message = property(lambda self: self.head.message or "")
    remedy = property(lambda self: self.head.remedy or ())
    explains = property(lambda self: self.head.explains)
    references = property(lambda self: self.head.references)
    confidence = property(lambda self: self.head.confidence if self.head.confidence is not None else 0.8)
    count_min = property(lambda self: self.head.count_min)
    within_s = property(lambda self: self.head.within_s)
    supporting = property(lambda self: self.head.supporting)
    path = property(lambda self: self.head.path)
    line = property(lambda self: self.head.line)

    @cached_property
    def match(self) -> t.Node:
        if not self.signals:
            return self.head.match  # type: ignore[return-value]
        return t.AnyOf((self.head.match, *(s.match for s in self.signals)), loc=self.head.match.loc)  # type: ignore[arg-type]

    @property
    def parts(self) -> tuple[Part, ...]:
        return (self.head, *self.signals, *self.causes)


@dataclass
class RuleSet:
    rules: list[Rule]
    models: ModelData = field(default_factory=ModelData)
    notes: list[str] = field(default_factory=list)     # advice: fallback regexes, ...
    notices: list[str] = field(default_factory=list)   # a user rule replacing a built-in one
    linear: dict[str, bool] = field(default_factory=dict)   # the patterns polars' engine takes (emblens.patterns.linear)
    names: dict[str, frozenset[str]] = field(default_factory=dict)   # the values each template uses (templates.names)
    literals: dict[str, tuple[str, ...] | None] = field(default_factory=dict)   # each pattern's literals (emblens.patterns.literals)
    messages: upstream.Messages = field(default_factory=upstream.Messages)   # what the software in the path says
    cues: cue_data.Cues = field(default_factory=cue_data.Cues)   # how the field words each cause

    def get(self, rule_id: str) -> Rule | None:
        return next((r for r in self.rules if r.id == rule_id), None)

    def select(self, select: Sequence[str] = (), ignore: Sequence[str] = ()) -> "RuleSet":
        """The rules whose id matches one of `select` (all when empty) and none of `ignore`.
        A pattern is an id, an area (`auth`) or a glob (`auth.*`, `*.oom`); one that matches no
        rule is an error, so a typo does not silently switch every rule off."""
        from fnmatch import fnmatchcase

        def hits(pattern: str) -> list[Rule]:
            glob = pattern if any(c in pattern for c in "*?[") else (pattern if "." in pattern else pattern + ".*")
            return [r for r in self.rules if fnmatchcase(r.id, glob)]

        for option, patterns in (("--select", select), ("--ignore", ignore)):
            for pattern in patterns:
                if not hits(pattern):
                    names = [r.id for r in self.rules] + sorted({r.id.split(".")[0] for r in self.rules})
                    raise RuleError(f"{option} {pattern}: matches no rule{spec.suggest(pattern, names)}")
        chosen = {r.id for p in select for r in hits(p)} if select else {r.id for r in self.rules}
        chosen -= {r.id for p in ignore for r in hits(p)}
        return RuleSet([r for r in self.rules if r.id in chosen], models=self.models, notes=self.notes, notices=self.notices,
                       linear=self.linear, names=self.names, literals=self.literals, messages=self.messages,
                       cues=self.cues)

    @cached_property
    def keywords(self) -> str | None:
        """One regex of every text pattern the rules look for: the line prefilter.

        Counted repetitions (`[^"]{0,120}`, `\\d{4}`) become `*` / `+`: the prefilter only has to
        keep a superset of the lines the rules match, and a union of many counted repetitions
        makes the regex engine's DFA blow up (20 s instead of 0.05 s on 4 MB of routine log),
        while `*` and `+` cost nothing. The rules themselves still match with their exact patterns."""
        pre = self.prefilter
        if not isinstance(pre, literals.Prefilter):
            return pre      # "." (a look-around pattern cannot prefilter: keep every line) or None
        return "|".join(p for p in (pre.pattern, pre.fixed_pattern) if p) or None

    @cached_property
    def prefilter(self) -> "literals.Prefilter | str | None":
        """`keywords` as a `literals.Prefilter`, which leaves out the parts no line at hand could
        match, with the upstream messages' anchors as plain strings beside them; "." where it
        cannot prefilter."""
        parts = self._keyword_parts()
        if parts is None:
            return "."   # a look-around pattern cannot prefilter: keep every line
        fixed = self.messages.anchors({r.id for r in self.rules})
        return literals.Prefilter(parts, fixed) if parts or fixed else None

    def _keyword_parts(self) -> list[str] | None:
        from emblens.patterns.linear import rust_ok

        patterns: list[str] = []
        for rule in self.rules:
            nodes = [rule.match] + [p.supporting for p in rule.parts if p.supporting is not None]
            for node in nodes:
                for p in t.text_patterns(node, spec.LINE_TEXT_COLUMNS):
                    if not rust_ok(p):
                        return None
                    p = uncounted(p)
                    if p not in patterns:
                        patterns.append(p)
        # what any line may say that rules read as columns (`said_status`, `said_error`): kept wherever it stands
        from emblens.formats.messages import SAID_KEEP

        patterns += [uncounted(p) for p in SAID_KEEP if uncounted(p) not in patterns]
        return patterns

    @cached_property
    def regexes(self) -> dict[str, tuple[str, ...]]:
        """Every regex the rules test, by the column it tests (the rule engine looks for their
        literals before it compiles them: `literals`)."""
        from emblens.rules.compiler import column_regexes

        out: dict[str, set[str]] = {}
        for rule in self.rules:
            for part in rule.parts:
                for node in (part.match, part.supporting, part.when):
                    for column, pattern in column_regexes(node) if node is not None else ():
                        out.setdefault(column, set()).add(pattern)
        return {column: tuple(sorted(patterns)) for column, patterns in out.items()}


_COUNTED = re.compile(r"(?<!\\)\{(\d+)(?:,(\d*))?\}")


def uncounted(pattern: str) -> str:
    """The pattern with every counted repetition widened to `*` (from 0) or `+`: a superset."""
    return _COUNTED.sub(lambda m: "*" if m.group(1) == "0" else "+", pattern)


# -- parsing one file ---------------------------------------------------------------------------
class _File:
    """Parses one rule file into a Part, collecting every problem."""

    def __init__(self, path: str, errors: list[RuleError], notes: list[str]) -> None:
        self.path, self.errors, self.notes = path, errors, notes

    def error(self, line: int, message: str) -> None:
        self.errors.append(RuleError(message, path=self.path, line=line))

    def loc(self, line: int) -> t.Loc:
        return t.Loc(self.path, line)

    # -- top level
    def part(self, data: object) -> Part | None:
        if not isinstance(data, LineDict):
            self.error(1, "a rule file must hold one mapping (id, title, severity, ...)")
            return None
        kind = "signal" if "signal" in data else "cause" if "cause" in data else "head"
        if "signal" in data and "cause" in data:
            self.error(_line(data, "cause"), "a file is a signal or a cause, not both")
            return None
        allowed, required = spec.PARTS[kind]["allowed"], spec.PARTS[kind]["required"]
        for key in data:
            if key not in allowed:
                where = [k for k, p in spec.PARTS.items() if key in p["allowed"]]
                hint = (f" (`{key}` belongs in a {where[0]} file)" if where and key in spec.KEYS
                        else spec.suggest(key, allowed))
                self.error(_line(data, key), f"unknown key {excerpt(key)} in a {kind} rule file{hint}")
        for key in required:
            if key not in data or data[key] in (None, "", [], {}):
                self.error(data.line, f"missing {key!r} (a {kind} rule file needs {', '.join(required)})")
        rid = str(data.get("id", ""))
        if rid and not _ID.match(rid):
            self.error(_line(data, "id"), f"id {excerpt(rid)} must look like area.name, lowercase (auth.empty_key)")
        values: dict = {"kind": kind, "id": rid, "path": self.path, "line": data.line}
        for key, value in data.items():
            if key in allowed and key != "id" and value not in (None, "", [], {}):
                got = self.value(key, value, _line(data, key))
                if got is not _BAD:
                    values.update(got)
        if kind != "head":
            values["name"] = str(data.get(kind) or "")
        try:
            return Part(**values)
        except TypeError:   # a required value was missing: already reported
            return None

    def value(self, key: str, value: object, line: int) -> dict | object:
        kind = spec.KEYS[key].type
        if kind in ("text", "name"):
            if not isinstance(value, str):
                self.error(line, f"`{key}` must be text")
                return _BAD
            if kind == "name" and not _NAME.match(value):
                self.error(line, f"`{key}` must be a lowercase name like other_process")
                return _BAD
            return {"name" if kind == "name" else key: value.strip()}
        if kind == "severity":
            if value not in spec.SEVERITIES:
                self.error(line, f"severity must be one of {', '.join(spec.SEVERITIES)}{spec.suggest(value, spec.SEVERITIES)}")
                return _BAD
            return {"severity": value}
        if kind == "node":
            node = self.node(value, line, 0)
            return _BAD if node is None else {key: node}
        if kind == "template":
            source = self.template(value, line, key)
            return _BAD if source is None else {key: source}
        if kind == "templates":
            items = [value] if isinstance(value, str) else value
            if not isinstance(items, list) or not items or not all(isinstance(i, str) for i in items):
                self.error(line, f"`{key}` must be a text or a list of texts")
                return _BAD
            for i, item in enumerate(items):
                self.template(item, line + (i + 1 if not isinstance(value, str) else 0), key)
            return {key: tuple(i.strip() for i in items)}
        if kind in ("ids", "urls"):
            items = [value] if isinstance(value, str) else value
            if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
                self.error(line, f"`{key}` must be a list of {'rule ids' if kind == 'ids' else 'links'}")
                return _BAD
            for i in items if kind == "ids" else ():
                if not _ID.match(i):
                    self.error(line, f"{excerpt(i)} in `{key}` is not a rule id (area.name)")
            return {key: tuple(items)}
        if kind == "confidence":
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
                self.error(line, "confidence must be a number in (0, 1]")
                return _BAD
            return {"confidence": float(value)}
        if kind == "order":
            if isinstance(value, bool) or not isinstance(value, int):
                self.error(line, "order must be a whole number")
                return _BAD
            return {"order": value}
        if kind == "count":
            return self.count(value, line)
        if kind == "vars":
            if not isinstance(value, dict):
                self.error(line, "`vars` maps names to templates")
                return _BAD
            out = []
            for name, source in value.items():
                vline = _line(value, name, line)
                if not isinstance(name, str) or not _NAME.match(name) or not isinstance(source, str):
                    self.error(vline, "each of `vars` is a lowercase name and a template (text)")
                    continue
                self.template(source, vline, f"vars.{name}")
                out.append((name, source.strip()))
            return {"vars": tuple(out)}
        raise AssertionError(kind)

    def template(self, value: object, line: int, key: str) -> str | None:
        if not isinstance(value, str):
            self.error(line, f"`{key}` must be text (a template)")
            return None
        try:
            tpl.check(value, path=self.path, line=line)
        except RuleError as e:
            self.errors.append(e)
            return None
        return value.strip()

    def count(self, value: object, line: int) -> dict | object:
        if not isinstance(value, dict):
            self.error(line, "`count` must be a mapping like {min: 3, within: 60s}")
            return _BAD
        out: dict = {}
        for key, v in value.items():
            kline = _line(value, key, line)
            if key == "min":
                if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                    self.error(kline, "count.min must be a whole number of at least 1")
                else:
                    out["count_min"] = v
            elif key == "within":
                m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*", str(v))
                if not m:
                    self.error(kline, f"`within` must be a duration like 30s, 5m or 1h, not {excerpt(v)}")
                else:
                    out["within_s"] = float(m.group(1)) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600, None: 1}[m.group(2)]
            else:
                self.error(kline, f"unknown key {excerpt(key)} in count; allowed: min, within{spec.suggest(key, spec.COUNT_KEYS)}")
        return out

    # -- match trees
    def node(self, value: object, line: int, depth: int) -> t.Node | None:
        if depth > MAX_DEPTH:
            self.error(line, f"match tree nested deeper than {MAX_DEPTH} levels")
            return None
        if not isinstance(value, dict) or not value:
            self.error(line, "a match node must be a non-empty mapping")
            return None
        line = _line(value, default=line)
        children: list[t.Node] = []
        for key, v in value.items():
            kline = _line(value, key, line)
            loc = self.loc(kline)
            child: t.Node | None = None
            if key in ("any", "all"):
                if not isinstance(v, list) or not v:
                    self.error(kline, f"`{key}` takes a non-empty list of nodes")
                    continue
                items = [self.node(c, _line(c, default=kline), depth + 1) for c in v]
                if all(i is not None for i in items):
                    child = (t.AnyOf if key == "any" else t.AllOf)(tuple(items), loc=loc)  # type: ignore[arg-type]
            elif key == "not":
                inner = self.node(v, _line(v, default=kline), depth + 1)
                child = t.Not(inner, loc=loc) if inner is not None else None
            elif key in ("before", "after"):
                if v not in spec.MARKS:
                    self.error(kline, f"`{key}` takes one of {', '.join(spec.MARKS)}{spec.suggest(v, spec.MARKS)}")
                    continue
                child = t.Order(key, v, loc=loc)
            elif key == "facts":
                if not isinstance(v, dict) or not v:
                    self.error(kline, "`facts` takes a mapping of fact names to predicates")
                    continue
                tests = []
                for name, pred in v.items():
                    fline = _line(v, name, kline)
                    if not spec.is_fact(str(name)):
                        self.error(fline, f"unknown fact {excerpt(name)}{spec.suggest(name, spec.FACTS)}")
                        continue
                    p = self.pred(pred, fline, None)
                    if p is not None:
                        tests.append(t.FactTest(str(name), p, loc=self.loc(fline)))
                if len(tests) == len(v):
                    child = tests[0] if len(tests) == 1 else t.AllOf(tuple(tests), loc=loc)
            elif key in SCHEMA:
                p = self.pred(v, kline, key)
                child = t.Field(key, p, loc=loc) if p is not None else None
            else:
                choices = [*spec.NODES, *SCHEMA]
                self.error(kline, f"unknown column or node {excerpt(key)}: not in the event schema and not one of "
                                  f"{', '.join(spec.NODES)}{spec.suggest(key, choices)}")
                continue
            if child is not None:
                children.append(child)
        if len(children) != len(value):
            return None
        return children[0] if len(children) == 1 else t.AllOf(tuple(children), loc=self.loc(line))

    def pred(self, value: object, line: int, column: str | None) -> t.Pred | None:
        loc = self.loc(line)
        if value is None:
            return t.Pred((t.Op("null", None, loc),))
        if not isinstance(value, dict):
            op = t.Op("in" if isinstance(value, list) else "equals",
                      tuple(value) if isinstance(value, list) else self.ref(value, line), loc)
            return t.Pred((op,)) if self.check_op(op, column) else None
        ops = []
        ok = True
        for name, v in value.items():
            oline = _line(value, name, line)
            if name not in spec.OPS:
                self.error(oline, f"unknown operator {excerpt(name)}{spec.suggest(name, spec.OPS)}; known: {', '.join(spec.OPS)}")
                ok = False
                continue
            if isinstance(v, list):
                v = tuple(v)
            op = t.Op(name, self.ref(v, oline), self.loc(oline))
            ok = self.check_op(op, column) and ok
            ops.append(op)
        if not ops:
            self.error(line, "an empty predicate: give a value, a list, or operators like {regex: ...}")
            return None
        return t.Pred(tuple(ops)) if ok else None

    def ref(self, value: object, line: int) -> object:
        if isinstance(value, str) and value.startswith("$"):
            if not spec.is_fact(value[1:]):
                self.error(line, f"unknown fact {excerpt(value)}{spec.suggest(value[1:], spec.FACTS)}")
            return t.FactRef(value[1:])
        return value

    def check_op(self, op: t.Op, column: str | None) -> bool:
        line = op.loc.line
        info = spec.OPS.get(op.name)
        ctype = spec.column_type(column) if column else None
        if info is not None and ctype is not None:
            if info.text_only and ctype != "text":
                self.error(line, f"`{op.name}` needs a text column; {column} holds {ctype} values")
                return False
            if info.number_only and ctype not in ("number", "time"):
                self.error(line, f"`{op.name}` needs a number column; {column} holds {ctype} values")
                return False
        if info is not None and info.takes_regex:
            return self.check_regex(op)
        if info is not None and info.value == "number" and not isinstance(op.value, (int, float, t.FactRef)):
            self.error(line, f"`{op.name}` takes a number")
            return False
        allowed = spec.enum_values(column) if column else None
        if allowed and info is not None and info.enumerated:
            values = op.value if isinstance(op.value, tuple) else (op.value,)
            for v in values:
                if not isinstance(v, t.FactRef) and v not in allowed:
                    self.error(line, f"{column} is never {excerpt(v)}; it is one of {', '.join(allowed)}{spec.suggest(v, allowed)}")
                    return False
        return True

    def check_regex(self, op: t.Op) -> bool:
        import regex as backtracking

        from emblens.patterns.backtracking import REGEX_TIMEOUT_S
        from emblens.patterns.linear import rust_ok

        if not isinstance(op.value, str):
            self.error(op.loc.line, f"`{op.name}` takes a regex (text)")
            return False
        if rust_ok(op.value):
            return True
        try:
            backtracking.compile(op.value)
        except backtracking.error as e:
            self.error(op.loc.line, f"bad regex: {_clip(e)}")
            return False
        self.notes.append(f"{self.path}:{op.loc.line}: regex {excerpt(op.value)} needs the backtracking engine (look-around or "
                          f"back-references): it runs with a {REGEX_TIMEOUT_S}s timeout per value and keeps every line")
        return True


_BAD = object()


# -- reading files -------------------------------------------------------------------------------
# A rules folder may come from anyone: a file is looked at (its kind, its size, where it really is)
# before a byte of it is read, and an error quotes at most a short, masked excerpt of what it holds.
EXCERPT = 40   # characters of a rule file's text that an error may quote
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)   # a FIFO put in place of a file after it was looked at: never wait on it


def excerpt(value: object) -> str:
    """A value from a rule file as an error quotes it: secrets masked, control and invisible
    characters shown, at most EXCERPT characters; text in quotes, as repr() would."""
    from emblens.events.redact import mask_text, printable

    text = printable(mask_text(value if isinstance(value, str) else repr(value)))
    if len(text) > EXCERPT:
        text = text[: EXCERPT - 1] + "…"
    return repr(text) if isinstance(value, str) else text


def file_problem(path: Path, folder: Path, limit: int = MAX_RULE_FILE_BYTES) -> str | None:
    """Why `path` is not to be read as a file of `folder`, from what stat says (nothing is read):
    a link or a path that leads outside the folder, something other than a regular file (a FIFO,
    a device), or more than `limit` bytes (a sparse file of gigabytes costs nothing to make)."""
    try:
        real = path.resolve(strict=True)
        if not real.is_relative_to(folder.resolve()):
            return "a link to a file outside the rules folder: not read"
        st = os.stat(real)
    except (OSError, RuntimeError) as e:    # RuntimeError: a loop of links
        return f"cannot read: {getattr(e, 'strerror', None) or type(e).__name__}"
    if not stat.S_ISREG(st.st_mode):
        return "not a regular file: not read"
    if st.st_size > limit:
        return f"larger than {limit // 1024:,} KiB: not a rule file"
    return None


def read_bytes(path: Path, folder: Path, limit: int = MAX_RULE_FILE_BYTES) -> bytes:
    """The bytes of a file of `folder`, after `file_problem` found none; the file is opened without
    following a link and looked at again through its descriptor (it may have changed since), and
    never more than `limit` bytes are read. Raises OSError with the reason."""
    problem = file_problem(path, folder, limit)
    if problem is not None:
        raise OSError(problem)
    fd = os.open(path.resolve(), os.O_RDONLY | _NOFOLLOW | _NONBLOCK)
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode) or st.st_size > limit:
            raise OSError("changed while it was read: not read")
        data = f.read(limit + 1)
    if len(data) > limit:
        raise OSError(f"larger than {limit // 1024:,} KiB: not a rule file")
    return data


def plain_folders(folders: Sequence[Path]) -> bool:
    """Whether every YAML file under the folders is a regular file inside its folder and within its
    size: only then may the rule cache hash them (it reads each whole); else the rules load
    uncached and the loader says what is wrong. One stat per file, from a walk that follows no link."""
    from emblens.rules import cache

    for folder in folders:
        for root, _dirs, files in os.walk(folder):
            top = os.path.relpath(root, folder).split(os.sep)[0]
            for name in files:
                if not name.endswith((".yaml", ".yml")):
                    continue
                path = os.path.join(root, name)
                limit = MAX_RULE_FILE_BYTES if top != "data" and not FIXTURE_NAME.match(name) else cache.MAX_BYTES
                try:
                    st = os.lstat(path)
                except OSError:
                    return False
                if stat.S_ISLNK(st.st_mode):
                    if file_problem(Path(path), folder, limit) is not None:
                        return False
                elif not stat.S_ISREG(st.st_mode) or st.st_size > limit:
                    return False
    return True


def read_file(path: Path, errors: list[RuleError], notes: list[str], folder: Path | None = None) -> Part | None:
    """Parse one rule file of `folder` (default: the file's own); problems go to `errors`, advice to `notes`."""
    try:
        data = read_bytes(path, folder if folder is not None else path.parent)
        text = re.sub(r"\r\n?", "\n", data.decode("utf-8"))
    except OSError as e:
        errors.append(RuleError(str(e) if not e.strerror else f"cannot read: {e.strerror}", path=str(path)))
        return None
    except UnicodeDecodeError as e:
        errors.append(RuleError(f"cannot read: not UTF-8 (byte {e.start})", path=str(path)))
        return None
    import yaml

    loader = _loader_class()(text)
    try:
        refuse_aliases(text)
        data = loader.get_single_data()
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        errors.append(RuleError(f"YAML: {_clip(e.problem or e.context)}", path=str(path), line=(mark.line + 1) if mark else 1))
        return None
    except (yaml.YAMLError, RecursionError) as e:
        errors.append(RuleError(f"YAML: {_clip(str(e)) or type(e).__name__}", path=str(path), line=1))
        return None
    finally:
        loader.dispose()
    return _File(str(path), errors, notes).part(data)


def _clip(text: object, limit: int = 160) -> str:
    """A parser's message (it may quote the file) on one line, masked and clipped."""
    from emblens.events.redact import mask_text, printable

    line = printable(mask_text(" ".join(str(text or "").split())))
    return line if len(line) <= limit else line[: limit - 1] + "…"


def rule_files(directory: Path) -> list[Path]:
    """Rule files of a folder: its `data/` subfolder holds data the rules use, and
    `NAME.pos-*.expect.yaml` files are fixture expectations, not rules."""
    return sorted(
        p for p in directory.rglob("*")
        if p.suffix in (".yaml", ".yml") and p.is_file() and p.relative_to(directory).parts[0] != "data"
        and not FIXTURE_NAME.match(p.name)
    )


# -- assembling ids -----------------------------------------------------------------------------
def assemble(folders: Sequence[tuple[Path, list[Part]]], errors: list[RuleError], notices: list[str]) -> list[Rule]:
    """Rules from the parts of each folder, in order: a later folder's head, signal or cause
    replaces an earlier one of the same id (and name), with a notice; within one folder the same
    id (or signal, or cause) twice is an error naming both files."""
    heads: dict[str, Part] = {}
    extras: dict[tuple[str, str, str], Part] = {}
    for _folder, parts in folders:
        seen: dict[tuple, Part] = {}
        for part in parts:
            key = (part.kind, part.id, part.name)
            if key in seen:
                first = seen[key]
                what = f"id {part.id}" if part.kind == "head" else f"{part.kind} {part.name!r} of {part.id}"
                errors.append(RuleError(f"{what} is also defined in {first.path}:{first.line}", path=part.path, line=part.line))
                continue
            seen[key] = part
            earlier = heads.get(part.id) if part.kind == "head" else extras.get(key)  # type: ignore[arg-type]
            if earlier is not None:
                notices.append(f"{part.path}: replaces {part.kind if part.kind != 'head' else 'rule'} "
                               f"{part.id}{'' if part.kind == 'head' else ' ' + str(part.name)} of {earlier.path}")
            if part.kind == "head":
                heads[part.id] = part
            else:
                extras[key] = part  # type: ignore[index]
    rules = []
    for rid, head in heads.items():
        signals = tuple(p for (k, i, _), p in extras.items() if i == rid and k == "signal")
        causes = tuple(sorted((p for (k, i, _), p in extras.items() if i == rid and k == "cause"), key=lambda p: (p.order, p.path)))
        rules.append(Rule(head, signals, causes))
    for (kind, rid, _), part in extras.items():
        if rid not in heads:
            errors.append(RuleError(f"{kind} {part.name!r} is for {rid}, which has no rule file (id, title, match, ...)"
                                    f"{spec.suggest(rid, heads)}", path=part.path, line=part.line))
    return rules


def folders_of(dirs: Sequence[str | Path], include_builtin: bool) -> list[Path]:
    return ([builtin_dir()] if include_builtin else []) + [Path(d) for d in dirs]


def read_folders(folders: Sequence[Path], errors: list[RuleError], notes: list[str]) -> list[tuple[Path, list[Part]]]:
    out = []
    for folder in folders:
        if not folder.is_dir():
            errors.append(RuleError("not a folder of rules", path=str(folder)))
            continue
        files = rule_files(folder)
        if not files and folder != builtin_dir():
            errors.append(RuleError("no rule files (*.yaml) in this folder", path=str(folder)))
        parts = [p for p in (read_file(f, errors, notes, folder) for f in files) if p is not None]
        out.append((folder, parts))
    return out


def load_rules(dirs: Sequence[str | Path] = (), *, include_builtin: bool = True) -> RuleSet:
    """The built-in rules and those in `dirs` (a user rule with a built-in id replaces it, with a
    notice), and the model data of their `data/` folders. Raises RuleError for the first problem.

    A rule set that loaded without error is cached (`emblens.rules.cache`), keyed by the content of
    every file it was read from, so the next run skips parsing and checking the rules."""
    from emblens.rules import cache

    folders = folders_of(dirs, include_builtin)
    stamp = cache.stamp(folders) if plain_folders(folders) else None
    if stamp is not None:          # the same files as a load of this process: the same rule set
        return _loaded(tuple(folders), stamp)
    return _load_keyed(folders)


@lru_cache(maxsize=4)
def _loaded(folders: tuple[Path, ...], stamp: str) -> RuleSet:  # noqa: ARG001 - the stamp is the memo's key
    """The rule set of `folders` as their files stand (`stamp`: their names, sizes and times): a
    process that analyses many inputs (the tests, `emblens fleet`'s serial engine, `follow`) loads
    it once, not once a run (hashing every file and reading the cache cost some 40 ms a run)."""
    return _load_keyed(list(folders))


def forget() -> None:
    """Forget the rule sets this process loaded, as a new process starts without them."""
    _loaded.cache_clear()


def _load_keyed(folders: Sequence[Path]) -> RuleSet:
    from emblens.rules import cache

    key = cache.key(folders) if plain_folders(folders) else None
    cached = cache.get(key)
    if isinstance(cached, RuleSet):
        linear.learn(getattr(cached, "linear", None) or {})
        literals.learn(getattr(cached, "literals", None) or {})
        tpl.learn_names(getattr(cached, "names", None) or {})
        return cached
    ruleset = _load(folders)
    if key is not None:
        _ = ruleset.keywords, ruleset.prefilter, ruleset.regexes   # cached with the rules (a tenth of a second to build)
        for patterns in ruleset.regexes.values():
            for pattern in patterns:
                literals.literals(pattern)
        ruleset.literals = literals.known()   # and each pattern's literals (parsed for the prefilter and the engine)
        ruleset.linear = linear.known()   # and which engine takes each pattern (0.1-0.2 s to ask polars again)
        ruleset.names = tpl.known_names()  # and what each template uses (parsed when the rules were checked)
        cache.put(key, ruleset)
    return ruleset


def _load(folders: Sequence[Path]) -> RuleSet:
    errors: list[RuleError] = []
    notes: list[str] = []
    notices: list[str] = []
    rules = assemble(read_folders(folders, errors, notes), errors, notices)
    if errors:
        first = errors[0]
        if len(errors) > 1:
            raise RuleError(f"{first} (and {len(errors) - 1} more: run `emblens rules lint` on the folder)")
        raise first
    data = [(d, d / modeldata.FILE) for d in reversed(folders)]
    for folder, path in data:
        problem = file_problem(path, folder) if path.exists() or path.is_symlink() else None
        if problem is not None:
            raise RuleError(problem, path=str(path))
    supports = [(d, d / modeldata.SUPPORT_FILE) for d in reversed(folders)]
    for folder, path in supports:
        problem = file_problem(path, folder) if path.exists() or path.is_symlink() else None
        if problem is not None:
            raise RuleError(problem, path=str(path))
    models = modeldata.load([p for _, p in data if p.is_file()], [p for _, p in supports if p.is_file()])
    found = [(d, p) for d in folders for p in upstream.files([d])]
    for folder, path in found:
        problem = file_problem(path, folder, upstream.MAX_FILE_BYTES)
        if problem is not None:
            raise RuleError(problem, path=str(path))
    edges: dict[str, set[str]] = {}
    for r in rules:
        edges.setdefault(r.id, set()).update(r.explains)
    messages = upstream.load([p for _, p in found]).with_explains(edges)
    cue_files = cue_data.files(folders)
    for path in cue_files:
        problem = file_problem(path, path.parent.parent, cue_data.MAX_FILE_BYTES)
        if problem is not None:
            raise RuleError(problem, path=str(path))
    from emblens.rules import builtin_dir

    cues = cue_data.load(cue_files, known_ids={r.id for r in rules}, trusted=builtin_dir())
    return RuleSet(with_messages(rules, messages, [p for _, p in found]), models=models, notes=notes, notices=notices,
                   messages=messages, cues=cues)


UPSTREAM_SIGNAL = "upstream_messages"   # the signal every id with harvested messages gets (`with_messages`)


def with_messages(rules: list[Rule], messages: upstream.Messages, paths: Sequence[Path]) -> list[Rule]:
    """Each rule whose id some upstream message evidences gets one more signal: any event whose text
    holds such a message (`msg_id`), whatever its kind or format. The words are the knowledge; the
    rule's own signals add the structure (a status, a parsed value) that a message alone lacks."""
    have = messages.ids()
    where = str(paths[0]) if paths else "data/messages"
    out = []
    for rule in rules:
        if rule.id not in have or any(s.name == UPSTREAM_SIGNAL for s in rule.signals):
            out.append(rule)
            continue
        loc = t.Loc(where, 1)
        node = t.Field("msg_id", t.Pred((t.Op("equals", rule.id, loc),)), loc=loc)
        signal = Part(kind="signal", id=rule.id, path=where, line=1, name=UPSTREAM_SIGNAL, match=node)
        out.append(Rule(rule.head, (*rule.signals, signal), rule.causes))
    return out
