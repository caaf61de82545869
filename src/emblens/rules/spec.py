"""The rule format, described once: the keys a rule file may hold, the nodes and operators of a
match tree, and the values each takes. The loader checks files against it, lint suggests from
it, and `rules/schema.json` (for editors) is generated from it (`emblens rules schema`).

A rule id is made of one or more files:
- a *head* (one per id): title, severity, means, match, message, remedy, and the rest;
- *signal* files (`signal: NAME`): another way to recognise the same failure; their `match` is
  OR-ed into the head's (a user folder adds "HIP out of memory" to `gpu.oom` this way);
- *cause* files (`cause: NAME`): one specific cause of the failure. When the rule fires, the
  first cause (by `order`) whose `when` holds is chosen: its `vars` (and `message`, `remedy`,
  `supporting`, `confidence`, if given) replace the head's, and the finding names the cause.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from emblens.combiners import FACTS, VERSION_SUFFIX
from emblens.events.schema import ENUMS, SCHEMA
from emblens.rules.operators import OPERATORS
from emblens.rules.severity import SEVERITIES  # noqa: F401 - part of the spec

ID_PATTERN = r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$"
NAME_PATTERN = r"^[a-z][a-z0-9_]*$"


@dataclass(frozen=True)
class Key:
    """A top-level key of a rule file. `type` is one of: id, name, text, template, templates,
    severity, node, ids, urls, confidence, count, vars, order."""

    type: str
    doc: str


KEYS: Mapping[str, Key] = MappingProxyType({
    "id": Key("id", "catalogue id, area.name (auth.empty_key); several files may share one id"),
    "title": Key("text", "one line saying what went wrong"),
    "severity": Key("severity", "error (requests fail), warning (results degrade), info (advice)"),
    "means": Key("text", "what it means, in plain words: what happened and why it matters"),
    "match": Key("node", "which events are evidence (a match node)"),
    "count": Key("count", "how many matches it takes: {min: 3, within: 60s}"),
    "message": Key("template", "the summary, a Jinja template quoting the values seen"),
    "remedy": Key("templates", "fix steps, each a Jinja template naming the values seen"),
    "explains": Key("ids", "ids this rule is the root cause of (their findings become its symptoms)"),
    "supporting": Key("node", "events quoted as evidence too once the rule fires (the server's --api-key line)"),
    "references": Key("urls", "links to documentation or threads"),
    "confidence": Key("confidence", "how sure a match makes us, in (0, 1]; 0.8 by default"),
    "vars": Key("vars", "named Jinja templates rendered before message and remedy, which may use them"),
    "signal": Key("name", "this file adds another way to recognise the rule id's failure"),
    "cause": Key("name", "this file is one specific cause of the rule id's failure"),
    "when": Key("node", "a cause applies when this holds on the matched events and the facts"),
    "order": Key("order", "causes are tried in this order (lowest first); 100 by default"),
})
PARTS: Mapping[str, Mapping[str, tuple[str, ...]]] = MappingProxyType({
    # part: {"required": ..., "allowed": ...}
    "head": MappingProxyType({"required": ("id", "title", "severity", "means", "match", "message", "remedy"),
                              "allowed": ("id", "title", "severity", "means", "match", "count", "message", "remedy",
                                          "explains", "supporting", "references", "confidence", "vars")}),
    "signal": MappingProxyType({"required": ("id", "signal", "match"), "allowed": ("id", "signal", "match")}),
    "cause": MappingProxyType({"required": ("id", "cause", "when"),
                               "allowed": ("id", "cause", "when", "order", "vars", "message", "remedy", "supporting",
                                           "confidence", "references", "explains")}),
})
COUNT_KEYS = MappingProxyType({"min": "at least this many occurrences (a traceback chain counts once)",
                               "within": "all inside a window of this long: 30s, 5m, 1h"})

NODES: Mapping[str, str] = MappingProxyType({
    "any": "a list of nodes: at least one holds",
    "all": "a list of nodes: every one holds",
    "not": "a node that must not hold",
    "before": "ready or loading: the event comes before the server's ready (or loading) line",
    "after": "ready or loading: the event comes after it",
    "facts": "a mapping of fact names to predicates: conditions on the bundle's facts",
})
MARKS = ("ready", "loading")


# the operators of a predicate, one class each with its value, documentation and meaning
OPS = OPERATORS
# columns whose text comes straight from a line: only their patterns can prefilter lines
LINE_TEXT_COLUMNS = frozenset({"message", "text", "exc_message", "exc_root_message", "exc_type", "exc_root_type", "resp_error"})
FACT_TYPES = MappingProxyType({"text": "string", "number": "number", "bool": "boolean", "list": "array"})


def is_fact(name: str) -> bool:
    return name in FACTS or name.endswith(VERSION_SUFFIX)


def column_type(column: str) -> str:
    """text, number, bool or time: the kind of values a column holds."""
    dtype = SCHEMA[column]
    if dtype.is_numeric():
        return "number"
    if dtype.is_temporal():
        return "time"
    return "bool" if str(dtype) == "Boolean" else "text"


def enum_values(column: str) -> tuple[str, ...] | None:
    """The values a column can hold, where they are a closed set (rule lint checks against them):
    the schema's, and for `origin` the formats' (`formats.registry.origins`)."""
    if column == "origin":
        from emblens.formats.registry import origins

        return origins()
    return ENUMS.get(column)


def suggest(word: object, choices) -> str:
    """' (did you mean `x`?)' for the closest choice, or ''.

    >>> suggest("mesage", ["message", "means", "match"])
    ' (did you mean `message`?)'
    >>> suggest("zzz", ["message"])
    ''
    """
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return f" (did you mean `{close[0]}`?)" if close else ""
