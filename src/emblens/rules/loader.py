"""Load rule files: YAML (safely) → validated, frozen `Rule` objects, errors as `file:line:`.

The format, in short (README.md has the full reference):

    id: model.not_found            # catalogue id
    title: ...                     # one line
    severity: error                # error | warning | info
    means: ...                     # what it means, in plain words
    match: <node>                  # which events are evidence (see compiler.py)
    where: {fact: predicate}       # optional: conditions on the facts
    count: {min: 3, within: 60s}   # optional: how many matches, in what window
    message: ...                   # summary; {placeholders} quote values seen
    remedy: [step, ...]            # concrete fix steps, placeholders allowed
    explains: [id, ...]            # findings this one is the root cause of
    supporting: <node>             # optional: other events quoted once it fires (the server's
                                   #   --api-key line, the /v1/models answer), from other sources
    references: [url, ...]
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from emblens.errors import RuleError
from emblens.rules import builtin_dir

SEVERITIES = ("error", "warning", "info")
ID_RE = re.compile(r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$")
TOP_KEYS = {
    "id", "title", "severity", "means", "match", "where", "count", "message", "remedy", "explains",
    "references", "confidence", "supporting",
}
REQUIRED = ("id", "title", "severity", "means", "match", "message", "remedy")


class LineDict(dict):
    """A mapping that remembers the line of itself and of each key."""

    line: int = 0
    key_lines: dict


class _Loader(yaml.SafeLoader):
    pass


def _mapping(loader: _Loader, node: yaml.MappingNode) -> LineDict:
    loader.flatten_mapping(node)
    out = LineDict()
    out.line = node.start_mark.line + 1
    out.key_lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in out:
            raise RuleError(f"duplicate key {key!r}", path=getattr(loader, "name", None), line=key_node.start_mark.line + 1)
        out[key] = loader.construct_object(value_node, deep=True)
        out.key_lines[key] = key_node.start_mark.line + 1
    return out


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


def line_of(node: object, key: str | None = None, default: int = 1) -> int:
    if isinstance(node, LineDict):
        if key is not None and key in node.key_lines:
            return node.key_lines[key]
        return node.line
    return default


@dataclass(frozen=True)
class Rule:
    id: str
    title: str
    severity: str
    means: str
    match: dict
    message: str
    remedy: tuple[str, ...]
    path: str
    line: int
    where: dict = field(default_factory=dict)
    count_min: int = 1
    within_s: float | None = None
    explains: tuple[str, ...] = ()
    references: tuple[str, ...] = ()
    confidence: float = 0.8
    supporting: dict | None = None     # events quoted as evidence too, once the rule has fired


@dataclass
class RuleSet:
    rules: list[Rule]
    notes: list[str] = field(default_factory=list)     # lint notes (fallback regexes, ...)

    def get(self, rule_id: str) -> Rule | None:
        return next((r for r in self.rules if r.id == rule_id), None)

    def keywords(self) -> str | None:
        """One regex of every text pattern the rules look for: the line prefilter."""
        from emblens.rules.compiler import keywords

        return keywords(self.rules)


def _duration(value: object, path: str, line: int) -> float:
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*", str(value))
    if not m:
        raise RuleError(f"`within` must be a duration like 30s, 5m or 1h, not {value!r}", path=path, line=line)
    n = float(m.group(1))
    return n * {"ms": 0.001, "s": 1, "m": 60, "h": 3600, None: 1}[m.group(2)]


def parse_rule(data: object, path: str) -> Rule:
    if not isinstance(data, LineDict):
        raise RuleError("a rule file must hold one mapping (id, title, severity, ...)", path=path, line=1)
    for key in data:
        if key not in TOP_KEYS:
            raise RuleError(f"unknown key {key!r}; allowed: {', '.join(sorted(TOP_KEYS))}", path=path, line=line_of(data, key))
    for key in REQUIRED:
        if key not in data or data[key] in (None, "", []):
            raise RuleError(f"missing {key!r}", path=path, line=data.line)
    rid = str(data["id"])
    if not ID_RE.match(rid):
        raise RuleError(f"id {rid!r} must look like area.name (lowercase)", path=path, line=line_of(data, "id"))
    if data["severity"] not in SEVERITIES:
        raise RuleError(f"severity must be one of {', '.join(SEVERITIES)}", path=path, line=line_of(data, "severity"))
    remedy = data["remedy"]
    remedy = (remedy,) if isinstance(remedy, str) else tuple(str(r) for r in remedy)
    count = data.get("count") or {}
    if count and not isinstance(count, dict):
        raise RuleError("`count` must be a mapping like {min: 3, within: 60s}", path=path, line=line_of(data, "count"))
    for key in count:
        if key not in ("min", "within"):
            raise RuleError(f"unknown key {key!r} in count; allowed: min, within", path=path, line=line_of(count, key))
    count_min = count.get("min", 1)
    if not isinstance(count_min, int) or count_min < 1:
        raise RuleError("count.min must be a whole number of at least 1", path=path, line=line_of(count, "min"))
    within = _duration(count["within"], path, line_of(count, "within")) if "within" in count else None
    where = data.get("where") or {}
    if not isinstance(where, dict):
        raise RuleError("`where` must map fact names to predicates", path=path, line=line_of(data, "where"))
    explains = data.get("explains") or []
    refs = data.get("references") or []
    conf = data.get("confidence", 0.8)
    if not isinstance(conf, (int, float)) or not 0 < conf <= 1:
        raise RuleError("confidence must be a number in (0, 1]", path=path, line=line_of(data, "confidence"))
    if not isinstance(data["match"], dict):
        raise RuleError("`match` must be a mapping", path=path, line=line_of(data, "match"))
    supporting = data.get("supporting")
    if supporting is not None and not isinstance(supporting, dict):
        raise RuleError("`supporting` must be a match node (a mapping)", path=path, line=line_of(data, "supporting"))
    rule = Rule(
        id=rid, title=str(data["title"]).strip(), severity=data["severity"], means=str(data["means"]).strip(),
        match=data["match"], message=str(data["message"]).strip(), remedy=remedy, path=path, line=data.line,
        where=where, count_min=count_min, within_s=within, explains=tuple(explains), references=tuple(refs),
        confidence=float(conf), supporting=supporting,
    )
    from emblens.rules.compiler import validate

    validate(rule)
    return rule


def load_file(path: Path) -> Rule:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise RuleError(f"cannot read: {e}", path=str(path)) from None
    loader = _Loader(text)
    loader.name = str(path)
    try:
        data = loader.get_single_data()
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        raise RuleError(f"YAML: {e.problem or e.context}", path=str(path), line=(mark.line + 1) if mark else 1) from None
    except yaml.YAMLError as e:
        raise RuleError(f"YAML: {e}", path=str(path), line=1) from None
    finally:
        loader.dispose()
    return parse_rule(data, str(path))


def rule_files(directory: Path) -> list[Path]:
    """Rule files of a folder; its `data/` subfolder holds data the rules use, not rules."""
    return sorted(
        p for p in directory.rglob("*")
        if p.suffix in (".yaml", ".yml") and p.is_file() and p.relative_to(directory).parts[0] != "data"
    )


def load_rules(dirs: Sequence[str | Path] = (), *, include_builtin: bool = True) -> RuleSet:
    """Load the built-in rules and those in `dirs`; a user rule with a built-in id replaces it."""
    folders = ([builtin_dir()] if include_builtin else []) + [Path(d) for d in dirs]
    by_id: dict[str, Rule] = {}
    for folder in folders:
        if not folder.is_dir():
            raise RuleError("not a folder of rules", path=str(folder))
        files = rule_files(folder)
        if not files and folder != builtin_dir():
            raise RuleError("no rule files (*.yaml) in this folder", path=str(folder))
        for f in files:
            rule = load_file(f)
            by_id[rule.id] = rule
    rules = list(by_id.values())
    from emblens.rules.compiler import fallback_notes

    return RuleSet(rules, notes=fallback_notes(rules))
