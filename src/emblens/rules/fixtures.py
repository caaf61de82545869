"""The one fixture runner, used by `emblens rules test` and by pytest.

A rule `rules/auth/empty_key.yaml` has its fixtures beside it, named after it:
`empty_key.pos-<label>.<ext>` must make the rule fire and be ranked first (the root cause);
`empty_key.neg-<label>.<ext>` must not make it fire. A fixture may be a folder
(`empty_key.pos-bundle/`) holding several files, read together as one bundle.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from emblens.rules.loader import Rule, RuleSet, rule_files

FIXTURE_RE = re.compile(r"^(?P<stem>[^.]+)\.(?P<kind>pos|neg)(?:[-.].*)?$")


@dataclass
class FixtureResult:
    rule: str
    fixture: str
    expect: str          # "fires" or "silent"
    ok: bool
    detail: str


def fixtures_for(rule: Rule) -> list[tuple[Path, str]]:
    path = Path(rule.path)
    stem = path.stem
    out = []
    for p in sorted(path.parent.iterdir()):
        m = FIXTURE_RE.match(p.name)
        if m and m.group("stem") == stem and p.suffix not in (".yaml", ".yml"):
            out.append((p, "fires" if m.group("kind") == "pos" else "silent"))
    return out


def run_fixtures(ruleset: RuleSet, *, rule_dirs=(), include_builtin: bool = True, only: list[Rule] | None = None):
    """Yield a FixtureResult per fixture of every rule (or of `only`)."""
    from emblens.analysis import analyze

    for rule in only if only is not None else ruleset.rules:
        fixtures = fixtures_for(rule)
        if not any(e == "fires" for _, e in fixtures):
            yield FixtureResult(rule.id, rule.path, "fires", False, "no positive fixture (NAME.pos-*.EXT) beside the rule")
        if not any(e == "silent" for _, e in fixtures):
            yield FixtureResult(rule.id, rule.path, "silent", False, "no negative fixture (NAME.neg-*.EXT) beside the rule")
        for path, expect in fixtures:
            analysis = analyze([str(path)], rule_dirs=rule_dirs, include_builtin=include_builtin)
            ids = [f.rule for f in analysis.findings]
            mine = next((f for f in analysis.findings if f.rule == rule.id), None)
            if expect == "fires":
                if mine is None:
                    ok, detail = False, f"did not fire (findings: {', '.join(ids) or 'none'})"
                elif ids[0] != rule.id:
                    ok, detail = False, f"fired but ranked below {ids[0]} (findings: {', '.join(ids)})"
                elif "unknown" in mine.summary.split() or re.search(r"\{[?a-z_]", mine.summary):
                    ok, detail = False, f"message has unfilled values: {mine.summary}"
                else:
                    ok, detail = True, mine.summary
            else:
                ok = mine is None
                detail = "silent" if ok else f"fired: {mine.summary}"
            yield FixtureResult(rule.id, str(path), expect, ok, detail)


def lint(directory: Path) -> tuple[list[str], list[str]]:
    """Load every rule file in `directory`, collecting errors instead of stopping at the first.

    Returns (errors, notes): errors are `file:line: what` lines, notes are advice.
    """
    from emblens.errors import RuleError
    from emblens.rules.compiler import fallback_notes
    from emblens.rules.loader import load_file, load_rules

    errors: list[str] = []
    rules: list[Rule] = []
    for f in rule_files(directory):
        try:
            rules.append(load_file(f))
        except RuleError as e:
            errors.append(str(e))
    known = {r.id for r in rules}
    try:
        known |= {r.id for r in load_rules(()).rules}
    except RuleError:
        pass
    seen: dict[str, str] = {}
    for r in rules:
        if r.id in seen:
            errors.append(f"{r.path}:{r.line}: id {r.id} is also defined in {seen[r.id]}")
        seen[r.id] = r.path
        for e in r.explains:
            if e not in known:
                errors.append(f"{r.path}:{r.line}: explains unknown rule id {e!r}")
        kinds = {e for _, e in fixtures_for(r)}
        for expect, name in (("fires", "positive (NAME.pos-*)"), ("silent", "negative (NAME.neg-*)")):
            if expect not in kinds:
                errors.append(f"{r.path}:{r.line}: no {name} fixture beside the rule")
        if len(r.remedy) < 1 or len(r.means) < 20:
            errors.append(f"{r.path}:{r.line}: `means` and `remedy` must explain the problem and the fix")
    return errors, fallback_notes(rules)
