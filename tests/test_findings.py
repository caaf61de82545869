"""Ranking is a pure function, and a finding's confidence is made up in one place."""

from __future__ import annotations

import copy
from pathlib import Path

from emblens import analyze
from emblens.findings import confidence
from emblens.rules.engine import evaluate
from emblens.rules.rank import rank

REPO = Path(__file__).resolve().parents[1]


def test_rank_leaves_the_findings_it_is_given_as_they_are():
    a = analyze([REPO / "samples/gpu-held-by-another-process.zip"])
    assert [f.role for f in a.findings].count("symptom") >= 1
    raw = evaluate(_rules(), a.events, a.facts)
    before = copy.deepcopy(raw)
    ranked = rank(raw)
    assert [(f.rule, f.role, f.explained_by, f.confidence) for f in raw] == \
           [(f.rule, f.role, f.explained_by, f.confidence) for f in before]
    assert all(f.role == "finding" and f.explained_by is None for f in raw)
    assert [(f.rule, f.role, f.confidence) for f in ranked] == [(f.rule, f.role, f.confidence) for f in a.findings]
    assert rank(raw) == ranked            # the same input ranks the same, however often


def _rules():
    from emblens.rules.loader import load_rules

    return load_rules()


def test_confidence_rises_by_one_step_per_corroboration_and_never_reaches_certainty():
    assert confidence.initial(0.8, sources=1) == 0.8 and confidence.initial(0.8, sources=3) == 0.85
    assert confidence.raised(0.85) == 0.9 and confidence.raised(0.98) == confidence.CAP == 0.99
    a = analyze([REPO / "samples/gpu-held-by-another-process.zip"])
    root = a.findings[0]
    assert root.role == "root_cause" and root.confidence <= confidence.CAP
