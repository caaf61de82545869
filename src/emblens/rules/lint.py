"""`emblens rules lint`: every problem in every rule file of a folder, in one run.

Beyond what loading checks (keys, nodes, columns, operators, values of closed columns, facts,
regexes in the engine that runs them, template syntax), lint checks what only matters to the
folder as a whole: ids in `explains:` that no rule has, names a template uses that no column,
fact, capture or var provides, the fixtures beside each file, and the explanation text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from emblens.errors import RuleError
from emblens.events.schema import SCHEMA
from emblens.rules import builtin_dir, spec
from emblens.rules import tree as t
from emblens.rules.engine import CONTEXT_NAMES, CUE_NAMES, MESSAGE_NAMES, VALUE_NAMES, names_used
from emblens.rules.loader import Part, Rule, assemble, read_folders


@dataclass
class Report:
    errors: list[str] = field(default_factory=list)    # file:line: what is wrong
    notes: list[str] = field(default_factory=list)     # advice


def lint(directory: Path) -> Report:
    """Lint the rule files of `directory`, against the built-in rules when it is another folder
    (so its files may add signals or causes to built-in ids, or replace them)."""
    from emblens.fixtures import fixtures_for

    report = Report()
    errors: list[RuleError] = []
    notices: list[str] = []
    builtin = builtin_dir().resolve()
    folders = [directory] if directory.resolve() == builtin else [builtin_dir(), directory]
    read = read_folders(folders, errors, report.notes)
    rules = assemble(read, errors, notices)
    report.notes += notices
    known = {r.id for r in rules}
    mine = {str(p.path) for folder, parts in read if folder.resolve() == directory.resolve() for p in parts}
    # the values the folders' harvested messages give, per id: a rule quotes them (`cause`, `{n_ctx}`...)
    from emblens.knowledge import upstream

    given: dict[str, set[str]] = {}
    for m in upstream.load(upstream.files(folders)).messages:
        given.setdefault(m.id, {"cause", *VALUE_NAMES.get(m.id, {}).values()}).update(
            n for n in re.findall(r"\{(\w+)\}", m.template))
    for rule in rules:
        for part in rule.parts:
            if part.path not in mine:
                continue
            for rid in part.explains:
                if rid not in known:
                    errors.append(RuleError(f"explains unknown rule id {rid!r}{spec.suggest(rid, known)}", path=part.path, line=part.line))
            for problem in _template_names(rule, part, given.get(rule.id, set())):
                errors.append(RuleError(problem, path=part.path, line=part.line))
            kinds = {e for _, e in fixtures_for(part.path)}
            for expect, name in (("fires", "positive (NAME.pos-*)"), ("silent", "negative (NAME.neg-*)")):
                if expect not in kinds:
                    errors.append(RuleError(f"no {name} fixture beside the rule file", path=part.path, line=part.line))
            if part.kind == "head" and len(part.means) < 20:
                errors.append(RuleError("`means` must explain the problem in a sentence or two", path=part.path, line=part.line))
    report.errors = [str(e) for e in sorted(errors, key=lambda e: (e.path or "", e.line or 0))]
    return report


def _template_names(rule: Rule, part: Part, given: set[str] = frozenset()) -> list[str]:
    """Names a part's templates use that nothing provides (a typo such as `servd_models`);
    `given`: the names the id's harvested messages provide."""
    provided = set(SCHEMA) | set(spec.FACTS) | set(CONTEXT_NAMES) | set(MESSAGE_NAMES) | set(CUE_NAMES) | set(given)
    for node in [rule.match, *(p.supporting for p in rule.parts if p.supporting is not None)]:
        for _, pattern in t.captures(node):
            provided |= set(_groups(pattern))
    provided |= {name for p in rule.parts for name, _ in p.vars}
    sources = [s for _, s in part.vars] + ([part.message] if part.message else []) + list(part.remedy or ())
    out = []
    for source in sources:
        for name in sorted(names_used(source) - provided):
            if not name.endswith(spec.VERSION_SUFFIX):
                out.append(f"template uses {name!r}, which no column, fact, capture or var provides"
                           f"{spec.suggest(name, provided)}")
    return out


def _groups(pattern: str) -> list[str]:
    import re

    return re.findall(r"\(\?P<(\w+)>", pattern)
