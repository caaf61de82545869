"""The JSON Schema of a rule file, generated from `spec.py` and the event schema, so editors
complete and check rule files (`rules/schema.json`; `emblens rules schema` prints it)."""

from __future__ import annotations

import json

from emblens.events.schema import SCHEMA
from emblens.rules import spec

SCALAR_TYPES = ("string", "number", "boolean")


def _pred(column: str | None) -> dict:
    """The schema of a predicate on a column (or a fact, when column is None)."""
    allowed = spec.enum_values(column) if column else None
    ctype = spec.column_type(column) if column else None
    value: dict = {"enum": list(allowed)} if allowed else {"type": list(SCALAR_TYPES)}
    fact_ref = {"type": "string", "pattern": r"^\$[a-z][a-z0-9_]*$"}
    one = {"anyOf": [value, fact_ref]} if not allowed else value
    many = {"anyOf": [one, {"type": "array", "items": one, "minItems": 1}]}
    ops: dict[str, dict] = {}
    for name, op in spec.OPS.items():
        if ctype is not None and ((op.text_only and ctype != "text") or (op.number_only and ctype not in ("number", "time"))):
            continue
        schema = {"regex": {"type": "string", "format": "regex"}, "number": {"anyOf": [{"type": "number"}, fact_ref]},
                  "bool": {"type": "boolean"}, "version": {"type": "string"}, "list": many if name in ("in", "not_in") or allowed else
                  {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}, "minItems": 1}]},
                  "scalar": one}[op.value]
        ops[name] = {**schema, "description": op.doc}
    return {"anyOf": [
        {"type": "null", "description": "absent"},
        one,
        {"type": "array", "items": one, "minItems": 1, "description": "one of these"},
        {"type": "object", "properties": ops, "additionalProperties": False, "minProperties": 1},
    ]}


def rule_schema() -> dict:
    node_props: dict[str, dict] = {
        "any": {"type": "array", "items": {"$ref": "#/$defs/node"}, "minItems": 1, "description": spec.NODES["any"]},
        "all": {"type": "array", "items": {"$ref": "#/$defs/node"}, "minItems": 1, "description": spec.NODES["all"]},
        "not": {"$ref": "#/$defs/node", "description": spec.NODES["not"]},
        "before": {"enum": list(spec.MARKS), "description": spec.NODES["before"]},
        "after": {"enum": list(spec.MARKS), "description": spec.NODES["after"]},
        "facts": {
            "type": "object", "minProperties": 1, "description": spec.NODES["facts"],
            "properties": {name: {"$ref": "#/$defs/fact_predicate", "description": f.doc} for name, f in spec.FACTS.items()},
            "patternProperties": {f"^[a-z][a-z0-9_]*{spec.VERSION_SUFFIX}$": {"$ref": "#/$defs/fact_predicate"}},
            "additionalProperties": False,
        },
    }
    defs: dict[str, dict] = {"fact_predicate": _pred(None), "predicate": _pred("message")}
    for column in SCHEMA:
        name = f"predicate_{column}"
        defs[name] = _pred(column)
        node_props[column] = {"$ref": f"#/$defs/{name}"}
    defs["node"] = {"type": "object", "properties": node_props, "additionalProperties": False, "minProperties": 1}
    texts = {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}, "minItems": 1}]}
    types = {
        "id": {"type": "string", "pattern": spec.ID_PATTERN},
        "name": {"type": "string", "pattern": spec.NAME_PATTERN},
        "text": {"type": "string", "minLength": 1},
        "template": {"type": "string", "minLength": 1},
        "templates": texts,
        "severity": {"enum": list(spec.SEVERITIES)},
        "node": {"$ref": "#/$defs/node"},
        "ids": {"type": "array", "items": {"type": "string", "pattern": spec.ID_PATTERN}},
        "urls": {"type": "array", "items": {"type": "string"}},
        "confidence": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
        "order": {"type": "integer"},
        "count": {"type": "object", "properties": {"min": {"type": "integer", "minimum": 1},
                                                   "within": {"type": ["string", "number"], "pattern": r"^\s*\d+(\.\d+)?\s*(ms|s|m|h)?\s*$"}},
                  "additionalProperties": False},
        "vars": {"type": "object", "propertyNames": {"pattern": spec.NAME_PATTERN}, "additionalProperties": {"type": "string"}},
    }
    props = {key: {**types[k.type], "description": k.doc} for key, k in spec.KEYS.items()}

    def part(kind: str) -> dict:
        p = spec.PARTS[kind]
        return {"required": list(p["required"]), "propertyNames": {"enum": list(p["allowed"])}}

    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "emblens rule file",
        "description": "One YAML file of an emblens rule: a head, a signal or a cause. See README.md, Rules.",
        "type": "object",
        "properties": props,
        "additionalProperties": False,
        "if": {"required": ["signal"]},
        "then": part("signal"),
        "else": {"if": {"required": ["cause"]}, "then": part("cause"), "else": part("head")},
        "$defs": defs,
    }


def render() -> str:
    return json.dumps(rule_schema(), indent=1, ensure_ascii=False) + "\n"
