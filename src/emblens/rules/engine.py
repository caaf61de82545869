"""Run compiled rules over the event table: findings with evidence, counts and quoted values;
and the error lines no rule explained, grouped by template so nothing is hidden."""

from __future__ import annotations

import difflib
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

import polars as pl
import regex as slow_regex

from emblens.facts import Facts
from emblens.rules.compiler import Compiler, _fact_holds, capture_patterns
from emblens.rules.loader import Rule, RuleSet

MAX_EVIDENCE = 5


@dataclass
class Evidence:
    source: str
    line: int
    text: str
    ts: datetime | None = None


@dataclass
class Finding:
    rule: str
    title: str
    severity: str
    confidence: float
    count: int
    first_seen: datetime | None
    last_seen: datetime | None
    summary: str
    remedy: list[str]
    means: str
    evidence: list[Evidence]
    references: list[str]
    explains: list[str]
    sources: list[str]
    role: str = "finding"                  # root_cause | symptom | finding
    explained_by: str | None = None
    matched: set = field(default_factory=set, repr=False)   # (source, line) of every matched event
    chains: set = field(default_factory=set, repr=False)    # (source, exc_group) of matched chains


@dataclass
class Unexplained:
    template: str
    count: int
    example: Evidence


def evaluate(ruleset: RuleSet, events: pl.DataFrame, facts: Facts) -> list[Finding]:
    if events.height == 0:
        return []
    compiler = Compiler(facts)
    values = facts.as_values()
    rules = [r for r in ruleset.rules if all(_fact_holds(values.get(k), p, values) for k, p in r.where.items())]
    if not rules:
        return []
    # All rules in one pass: one boolean column per rule.
    masks = events.select(
        [compiler.node(r.match).alias(r.id) for r in rules]
        + [compiler.node(r.supporting).alias(f"{r.id}\x00supporting") for r in rules if r.supporting is not None]
    )
    findings = []
    for rule in rules:
        hit = masks[rule.id]
        if not hit.any():
            continue
        matched = events.filter(hit).sort(["ts", "source", "line"], nulls_last=True)
        if not _enough(matched, rule):
            continue
        finding = _finding(rule, matched, values)
        if rule.supporting is not None:
            _support(finding, events.filter(masks[f"{rule.id}\x00supporting"] & ~hit))
        findings.append(finding)
    return findings


MAX_SUPPORTING = 2


def _support(finding: "Finding", rows: pl.DataFrame) -> None:
    """Quote what other sources say in favour of a finding (the server's --api-key, the served
    names), sources not yet quoted first; the finding then counts as seen in those sources too."""
    if rows.height == 0:
        return
    quoted = {e.source for e in finding.evidence}
    picked = []
    for s, l, t, ts in rows.sort(["source", "line"]).select("source", "line", "text", "ts").rows():
        if len(picked) >= MAX_SUPPORTING:
            break
        if s not in quoted or len(picked) == 0:
            picked.append(Evidence(s, l, (t or "").strip(), ts))
            quoted.add(s)
    new_sources = [e.source for e in picked if e.source not in finding.sources]
    finding.evidence = finding.evidence[: MAX_EVIDENCE - len(picked)] + picked
    if new_sources:
        finding.sources = finding.sources + new_sources
        finding.confidence = round(min(0.99, finding.confidence + 0.05), 2)


def _enough(matched: pl.DataFrame, rule: Rule) -> bool:
    if occurrences(matched) < rule.count_min:
        return False
    if rule.within_s is None or rule.count_min == 1:
        return True
    ts = matched["ts"].drop_nulls().sort()
    if ts.len() < rule.count_min:
        return False
    # some window of `within` seconds holds count_min matches
    span = (ts.slice(rule.count_min - 1) - ts.head(ts.len() - rule.count_min + 1)).dt.total_microseconds()
    return bool((span <= rule.within_s * 1e6).any())


def _captures(rule: Rule, matched: pl.DataFrame) -> dict[str, str]:
    found: dict[str, Counter] = {}
    patterns = [(col, slow_regex.compile(p)) for col, p in capture_patterns(rule.match)]
    for col, rx in patterns:
        for value in matched[col].drop_nulls().head(200).to_list():
            m = rx.search(value, timeout=0.05)
            if m:
                for name, v in m.groupdict().items():
                    if v is not None:
                        found.setdefault(name, Counter())[v] += 1
    return {name: c.most_common(1)[0][0] for name, c in found.items()}


def _column_values(matched: pl.DataFrame) -> dict[str, object]:
    out: dict[str, object] = {}
    for col in matched.columns:
        s = matched[col].drop_nulls()
        if s.len():
            out[col] = s.mode().sort()[0] if s.dtype != pl.Boolean else bool(s[0])
    return out


def occurrences(matched: pl.DataFrame) -> int:
    """How many times it happened: a traceback chain counts once, however many of its lines matched."""
    chained = matched.filter(pl.col("exc_group").is_not_null())
    return matched.height - chained.height + chained.select("source", "exc_group").n_unique()


def _finding(rule: Rule, matched: pl.DataFrame, facts: dict[str, object]) -> Finding:
    ts = matched["ts"].drop_nulls()
    first = ts.min() if ts.len() else None
    last = ts.max() if ts.len() else None
    sources = matched["source"].unique(maintain_order=True).to_list()
    context: dict[str, object] = {**facts, **_column_values(matched), **_captures(rule, matched)}
    count = occurrences(matched)
    context.update(count=count, sources=sources, first_seen=first, last_seen=last)
    evidence = _pick_evidence(matched)
    confidence = min(0.99, rule.confidence + (0.05 if len(sources) > 1 else 0.0))
    return Finding(
        rule=rule.id, title=rule.title, severity=rule.severity, confidence=round(confidence, 2),
        count=count, first_seen=first, last_seen=last,
        summary=render(rule.message, context), remedy=[render(s, context) for s in rule.remedy],
        means=rule.means, evidence=evidence, references=list(rule.references), explains=list(rule.explains),
        sources=sources, matched=set(zip(matched["source"].to_list(), matched["line"].to_list())),
        chains={(s, g) for s, g in zip(matched["source"].to_list(), matched["exc_group"].to_list()) if g is not None},
    )


def _pick_evidence(matched: pl.DataFrame) -> list[Evidence]:
    """A few lines that show the problem: one per source first, then by time."""
    rows = matched.select("source", "line", "text", "ts").rows()
    picked, seen = [], set()
    for row in rows:
        if row[0] not in seen:
            picked.append(row)
            seen.add(row[0])
    for row in rows:
        if len(picked) >= MAX_EVIDENCE:
            break
        if row not in picked:
            picked.append(row)
    picked = picked[:MAX_EVIDENCE]
    return [Evidence(s, l, (t or "").strip(), ts) for s, l, t, ts in picked]


# -- message templates ---------------------------------------------------------------------------
_CONDITIONAL = re.compile(r"\{\?([a-z_][a-z0-9_]*):((?:[^{}]|\{[^{}]*\})*)\}")
_PLACEHOLDER = re.compile(r"\{([a-z_][a-z0-9_]*)(?:\(([^)]*)\))?(?:\|([^}]*))?\}")


def closest(asked: object, candidates: object) -> str | None:
    """The served name closest to what was asked; case and separators count for little."""
    if not asked or not candidates:
        return None
    names = [str(c) for c in (candidates if isinstance(candidates, list) else [candidates])]
    norm = {re.sub(r"[^a-z0-9]", "", n.lower().rsplit("/", 1)[-1]): n for n in names}
    key = re.sub(r"[^a-z0-9]", "", str(asked).lower().rsplit("/", 1)[-1])
    if key in norm:
        return norm[key]
    best = difflib.get_close_matches(key, list(norm), n=1, cutoff=0.5)
    return norm[best[0]] if best else names[0]


def _fmt(value: object) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(f"`{v}`" for v in value) if value else ""
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def render(template: str, context: dict[str, object]) -> str:
    """Fill `{name}`, `{name|fallback}`, `{closest(a, b)}` and `{?name: shown only when name is known}`."""
    template = _CONDITIONAL.sub(lambda m: m.group(2) if context.get(m.group(1)) not in (None, "", []) else "", template)

    def sub(m: re.Match[str]) -> str:
        name, args, fallback = m.group(1), m.group(2), m.group(3)
        if args is not None:
            if name == "closest":
                a, b = [x.strip() for x in args.split(",", 1)]
                value = closest(context.get(a), context.get(b))
            else:
                value = None
        else:
            value = context.get(name)
        if value in (None, "", []):
            return fallback if fallback is not None else "unknown"
        return _fmt(value)

    return _PLACEHOLDER.sub(sub, " ".join(template.split()))


# -- unexplained error lines ---------------------------------------------------------------------
def _template(expr: pl.Expr) -> pl.Expr:
    return (
        expr.str.replace_all(r"'[^']*'|\"[^\"]*\"|`[^`]*`", "<str>")
        .str.replace_all(r"0x[0-9a-fA-F]+|\b[0-9a-f]{8,}\b", "<hex>")
        .str.replace_all(r"(?:/[\w.@+-]+){2,}", "<path>")
        .str.replace_all(r"\d+(?:\.\d+)?", "<n>")
        .str.replace_all(r"\s+", " ")
        .str.strip_chars()
        .str.slice(0, 200)
    )


def unexplained(events: pl.DataFrame, findings: list[Finding]) -> list[Unexplained]:
    if events.height == 0:
        return []
    is_error = (
        (pl.col("level").is_in(["ERROR", "CRITICAL"]) & pl.col("kind").is_in(["log", "unparsed"]))
        | ((pl.col("kind") == "exception") & pl.col("exc_position").is_in(["outer", "only"]))
        | ((pl.col("kind") == "http") & (pl.col("http_status") >= 400))
    )
    errors = events.filter(is_error.fill_null(False))
    covered = set().union(*(f.matched for f in findings)) if findings else set()
    if covered and errors.height:
        keys = pl.DataFrame(list(covered), schema={"source": pl.String, "line": pl.Int64}, orient="row")
        errors = errors.join(keys, on=["source", "line"], how="anti")
    chains = set().union(*(f.chains for f in findings)) if findings else set()
    if chains and errors.height:
        # an explained exception explains the whole chain it belongs to
        keys = pl.DataFrame(list(chains), schema={"source": pl.String, "exc_group": pl.Int64}, orient="row")
        errors = errors.join(keys, on=["source", "exc_group"], how="anti")
    if errors.height == 0:
        return []
    grouped = (
        errors.with_columns(_template(pl.col("message")).alias("_tpl"))
        .group_by("_tpl", maintain_order=True)
        .agg(pl.len().alias("n"), pl.col("source").first(), pl.col("line").first(), pl.col("text").first())
        .sort("n", descending=True, maintain_order=True)
    )
    return [
        Unexplained(tpl, n, Evidence(src, line, (text or "").strip()))
        for tpl, n, src, line, text in grouped.select("_tpl", "n", "source", "line", "text").rows()
    ]
