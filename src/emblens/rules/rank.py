"""Ranking: `explains:` edges make root causes and symptoms; the report leads with the most
likely root cause, each followed by the symptoms it explains. A pure function: the findings it
is given are left as they are, and it returns ranked copies with their roles set."""

from __future__ import annotations

from dataclasses import replace
from types import MappingProxyType

from emblens.findings import confidence
from emblens.rules.engine import Finding
from emblens.rules.spec import SEVERITIES

SEVERITY_ORDER = MappingProxyType({s: i for i, s in enumerate(SEVERITIES)})


def rank(findings: list[Finding], exchanges: frozenset = frozenset()) -> list[Finding]:
    """`exchanges`: the (source, line) of the events that are one request each (a captured flow,
    a HAR entry, an access line). A finding explains another only when they can be about the same
    request: if both rest on such events alone, they must share one (a request sent with
    `X-API-Key` explains its own 401, not another request's wrong key)."""
    findings = [replace(f) for f in findings]       # copies: the roles and confidences are set on these

    def related(f: Finding, g: Finding) -> bool:
        if not exchanges or not f.matched or not g.matched:
            return True
        if f.matched <= exchanges and g.matched <= exchanges:
            return bool(f.matched & g.matched)
        return True
    by_id = {f.rule: f for f in findings}

    def weight(f: Finding) -> tuple[int, bool]:
        # a possible cause (a cue's or a near message's words) stands one severity below an error: a
        # finding a rule or an exact message made leads it. Possible causes rank among themselves by how
        # sure their words are, whatever the severity of the rule they name (the line they read is an
        # error line either way: a version mismatch read from a TypeError is no lesser guess than an image)
        possible = f.cause == "possible"
        return (SEVERITY_ORDER["error"] + 1 if possible else SEVERITY_ORDER[f.severity]), possible

    def order_key(f: Finding):
        first = f.first_seen.timestamp() if f.first_seen else float("inf")
        return (*weight(f), -_descendants(f, by_id), -f.confidence, SEVERITY_ORDER[f.severity], first, f.rule)

    for f in findings:
        explainers = [
            g for g in findings
            if g is not f and f.rule in g.explains and g.rule not in f.explains  # a 2-cycle explains nothing
            and related(f, g)
        ]
        if explainers:
            best = min(explainers, key=order_key)
            f.role, f.explained_by = "symptom", best.rule
    for f in findings:
        if f.role != "symptom" and any(g.explained_by == f.rule for g in findings):
            f.role = "root_cause"
            f.confidence = confidence.raised(f.confidence)
    ordered: list[Finding] = []

    def place(f: Finding) -> None:
        if f in ordered:
            return
        ordered.append(f)
        for child in sorted((g for g in findings if g.explained_by == f.rule), key=order_key):
            place(child)

    for top in sorted((f for f in findings if f.role != "symptom"), key=lambda f: (*weight(f), f.role != "root_cause", order_key(f))):
        place(top)
    for f in sorted(findings, key=order_key):  # symptoms of a cycle, should one slip through
        place(f)
    # the top finding is the root cause the report leads with, whether or not it explains others:
    # one vocabulary for readers and for tools filtering on role
    if ordered and ordered[0].role == "finding":
        ordered[0].role = "root_cause"
    return ordered


def _descendants(f: Finding, by_id: dict[str, Finding], seen: set | None = None) -> int:
    seen = seen if seen is not None else {f.rule}
    n = 0
    for rid in f.explains:
        if rid in by_id and rid not in seen:
            seen.add(rid)
            n += 1 + _descendants(by_id[rid], by_id, seen)
    return n
