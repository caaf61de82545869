"""The one fixture runner, used by `emblens rules test` and by pytest.

Each rule file has its fixtures beside it, named after it: for `rules/auth/empty_key.yaml`,
`empty_key.pos-<label>.<ext>` must make the rule fire and rank first (the root cause), and
`empty_key.neg-<label>.<ext>` must leave it silent. A fixture may be a folder
(`empty_key.pos-bundle/`), read as one bundle. For a cause file (`oom_kv_cache.yaml`, `cause:
kv_cache`), a positive fixture must be worded by that cause and a negative one must not be.

A fixture may say more about what it expects in a sidecar, `<fixture name>.expect.yaml`:

    evidence:                      # lines the finding must quote (source: the end of its label)
      - {source: nvidia-smi.txt, line: 19}
    summary: ["uses 13,650 MiB of 24,150 MiB"]   # text the summary must contain
    remedy: ["below the free share"]   # text some remedy step must contain
    cause: other_process           # the cause that must word it
    facts: {gpu_other_pid: 180233, gpu_other_mib: 13650}          # figures the combiners computed
    role: root_cause               # root_cause | finding
    symptoms: [engine.startup_failed]                             # findings it must explain

The rules are loaded once for a whole run.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cache, partial
from pathlib import Path

import yaml

from emblens.knowledge.yamlsafe import safe_load
from emblens.rules.loader import FIXTURE_NAME, UPSTREAM_SIGNAL, Part, Rule, RuleSet
from emblens.rules.templates import UNKNOWN

EXPECT_SUFFIX = ".expect.yaml"
EXPECT_KEYS = frozenset({"evidence", "summary", "remedy", "cause", "facts", "role", "symptoms"})


@dataclass
class FixtureResult:
    rule: str
    part: str            # the rule file the fixture belongs to
    fixture: str
    expect: str          # "fires" or "silent"
    ok: bool
    detail: str


def fixtures_for(part_path: str) -> list[tuple[Path, str]]:
    """(fixture, "fires" | "silent") beside a rule file, named after it."""
    path = Path(part_path)
    out = []
    for p in sorted(path.parent.iterdir()):
        m = FIXTURE_NAME.match(p.name)
        if m and m.group("stem") == path.stem and not p.name.endswith((".yaml", ".yml")):
            out.append((p, "fires" if m.group("kind") == "pos" else "silent"))
    return out


def _expectations(fixture: Path) -> dict:
    side = fixture.with_name(fixture.name + EXPECT_SUFFIX)
    if not side.is_file():
        return {}
    data = safe_load(side.read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict) or set(data) - EXPECT_KEYS:
        raise ValueError(f"{side}: expected a mapping with keys among {', '.join(sorted(EXPECT_KEYS))}")
    return data


def run_fixtures(ruleset: RuleSet, rules: list[Rule] | None = None, *, jobs: int = 1,
                 dirs: Sequence[str | Path] = (), under: Path | None = None) -> Iterator[FixtureResult]:
    """A FixtureResult per fixture of every part of every rule (or of `rules`; of the rule files
    inside `under`, when given), in order. With `jobs` > 1 the fixtures run in that many worker
    processes, each loading the rules (the built-in ones and `dirs`, as `ruleset` was) once."""
    units = []
    for rule in rules if rules is not None else ruleset.rules:
        for part in rule.parts:
            if part.name == UPSTREAM_SIGNAL:       # its messages' instances are tested by tests/test_upstream_messages.py
                continue
            if under is not None and not Path(part.path).resolve().is_relative_to(under.resolve()):
                continue
            fixtures = fixtures_for(part.path)
            for expect, name in (("fires", "positive (NAME.pos-*)"), ("silent", "negative (NAME.neg-*)")):
                if not any(e == expect for _, e in fixtures):
                    units.append(FixtureResult(rule.id, part.path, part.path, expect, False,
                                               f"no {name} fixture beside the rule file"))
            units += [(rule.id, part.path, str(path), expect) for path, expect in fixtures]
    if jobs <= 1 or len(units) < 8:
        for unit in units:
            yield unit if isinstance(unit, FixtureResult) else _run(ruleset, *unit)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    context = multiprocessing.get_context("spawn")   # polars' threads do not survive fork
    with ProcessPoolExecutor(jobs, mp_context=context) as pool:
        todo = [u for u in units if not isinstance(u, FixtureResult)]
        done = pool.map(partial(_run_in_worker, dirs=tuple(map(str, dirs))), todo, chunksize=4)
        for unit in units:
            yield unit if isinstance(unit, FixtureResult) else next(done)


@cache
def _worker_rules(dirs: tuple[str, ...]) -> RuleSet:
    """The rules of a worker process, loaded once (the built-in ones and `dirs`)."""
    from emblens.rules.loader import load_rules

    return load_rules(dirs)


def _run_in_worker(unit: tuple[str, str, str, str], dirs: tuple[str, ...]) -> FixtureResult:
    return _run(_worker_rules(dirs), *unit)


def _run(ruleset: RuleSet, rule_id: str, part_path: str, fixture: str, expect: str) -> FixtureResult:
    from emblens import diagnose
    from emblens.run import Run

    rule = ruleset.get(rule_id)
    part = next(p for p in rule.parts if p.path == part_path)  # type: ignore[union-attr]
    try:
        analysis = diagnose.run([fixture], Run(ruleset=ruleset))
        ok, detail = check(analysis, rule, part, expect, _expectations(Path(fixture)), ruleset=ruleset)  # type: ignore[arg-type]
        if ok and not analysis.findings and analysis.lead is None:
            from emblens.findings.possible import error_like

            if error_like(analysis.events, set()).height:    # never silent (issue 25)
                ok, detail = False, "no finding and no line to start from, though an error-like line is there"
    except (ValueError, yaml.YAMLError) as e:
        ok, detail = False, str(e)
    return FixtureResult(rule_id, part_path, fixture, expect, ok, detail)


# what a report must never show where a value is unknown: the sentence is worded without it
# (`PORT` in a remedy's command, `--port PORT`, is the form of a command a person types, and allowed)
PLACEHOLDER = re.compile(r"not in the evidence|not visible in these|not in the client error|\(not shown\)|not shown\)|"
                         r"\(name not shown\)|\(address not recorded\)|\(path not in the log\)|\{[a-z_ ]+\}|"
                         r"<served name>|: \?[ .)]|`\?`")


def check(analysis, rule: Rule, part: Part, expect: str, wants: dict, *, ruleset: RuleSet | None = None) -> tuple[bool, str]:
    """Whether the analysis of a fixture meets what it expects, and what it shows. With `ruleset`
    (the rules it ran), a positive fixture that failed says why, as `--explain` does: the first
    condition that failed and a near-miss line, or what ranked above, or the cause that came first."""
    ids = [f.rule for f in analysis.findings]
    mine = next((f for f in analysis.findings if f.rule == rule.id), None)
    if expect == "silent":
        if part.kind == "cause":
            ok = mine is None or mine.cause != part.name
            return ok, ("not worded by this cause" if ok else f"worded by cause {part.name}: {mine.summary}")  # type: ignore[union-attr]
        return mine is None, "silent" if mine is None else f"fired: {mine.summary}"

    def why(about: str | None = None) -> str:
        if ruleset is None:
            return ""
        from emblens.rules.explain import explain_analysis

        return "; why: " + explain_analysis(analysis, rule.id, ruleset=ruleset, part=about).gist()
    if mine is None:
        return False, f"did not fire (findings: {', '.join(ids) or 'none'}){why()}"
    if ids[0] != rule.id:
        return False, f"fired but ranked below {ids[0]} (findings: {', '.join(ids)}){why()}"
    text = " ".join([mine.summary, *mine.remedy])
    if UNKNOWN in text.split() or re.search(r"\{\{|\{%|\[template error", text):
        return False, f"message has unfilled values: {mine.summary} / {' '.join(mine.remedy)}"
    if found := PLACEHOLDER.search(text):
        return False, f"message shows a placeholder ({found.group(0)!r}) where a sentence without the value is wanted: {text}"
    cause = wants.get("cause", part.name if part.kind == "cause" else None)
    if cause is not None and mine.cause != cause:
        return False, f"worded by cause {mine.cause or '(none)'}, expected {cause}: {mine.summary}{why(cause)}"
    if part.kind == "head" and "cause" not in wants and rule.causes and mine.cause is not None:
        return False, f"worded by cause {mine.cause}; a fixture of the rule file itself expects no cause (or say `cause:`)"
    problems = []
    for ev in wants.get("evidence", []):
        if not any(e.source.endswith(str(ev["source"])) and e.line == ev["line"]
                   and str(ev.get("contains", "")) in e.text for e in mine.evidence):
            quoted = "; ".join(f"{e.source}:{e.line}" for e in mine.evidence)
            problems.append(f"does not quote {ev['source']}:{ev['line']} (quotes {quoted})")
    for phrase in wants.get("summary", []):
        if phrase not in mine.summary:
            problems.append(f"summary lacks {phrase!r}: {mine.summary}")
    for phrase in wants.get("remedy", []):
        if not any(phrase in step for step in mine.remedy):
            problems.append(f"no remedy step holds {phrase!r}: {mine.remedy}")
    values = analysis.facts.as_values()
    for name, value in (wants.get("facts") or {}).items():
        got = values.get(name)
        if got != value and not (isinstance(got, float) and isinstance(value, (int, float)) and abs(got - value) < 1e-6):
            problems.append(f"fact {name} is {got!r}, expected {value!r}")
    if "role" in wants and mine.role != wants["role"]:
        problems.append(f"role is {mine.role}, expected {wants['role']}")
    for symptom in wants.get("symptoms", []):
        if not any(f.rule == symptom and f.explained_by == rule.id for f in analysis.findings):
            problems.append(f"does not explain {symptom} (findings: {', '.join(ids)})")
    if problems:
        return False, "; ".join(problems)
    return True, mine.summary
