"""Why a rule did or did not fire: `emblens analyze PATHS --explain ID`, and the gist a failing
positive fixture's FAIL line gives (`emblens rules test`, `emblens.fixtures`).

Every node of the rule's match tree (its signals OR-ed in), and of each cause's `when`, is
evaluated on the event table the engine saw: how many events satisfy it alone, and how many
candidates it leaves where it stands. In an `all`, the first condition that leaves no candidate is
the one that stopped the rule; the lines that satisfy every other condition but not that one are
its near misses (the right words, the wrong kind or status). A rule that matched is followed
through its `count`, its causes and the ranking (symptom of, ranked below); an id no rule fired
for is followed to the upstream messages and cues that could have named it a possible cause
(`emblens.findings.possible`), and why they did not.

    why = explain(ruleset, analysis.events, analysis.facts, "model.not_found", findings=analysis.findings)
    print(render_explanation(why))
    why.gist()      # one line: the first failing condition and a near miss

Lines from the inputs and the facts' values are masked (`redact.mask_text`); rule texts are shown
as `emblens rules show` shows them; everything is `printable`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from emblens.combiners import Facts
from emblens.errors import RuleError
from emblens.events.redact import mask_text, printable
from emblens.patterns.backtracking import RegexBudget
from emblens.rules import tree as t
from emblens.rules.compiler import Compiler
from emblens.rules.engine import _enough, absent, occurrences  # the engine's own count test: one way to count
from emblens.rules.loader import UPSTREAM_SIGNAL, Part, Rule, RuleSet
from emblens.rules.spec import SEVERITIES, suggest

MAX_NEAR = 5            # near-miss lines shown per stopping condition
MAX_TEXT = 160          # characters of a line shown
MAX_VALUE = 70          # characters of a rule's value (a regex) in a node's label
MAX_CUE_LINES = 5_000   # distinct lines a cue is looked for in


@dataclass
class Line:
    """A line of the inputs, as an explanation quotes it: masked, printable, on one line, clipped."""

    source: str
    line: int
    text: str
    has: str = ""       # the value of the column its condition tested (`kind: log`): why it missed

    def __str__(self) -> str:
        return f"{self.source}:{self.line}  " + (f"[{self.has}]  " if self.has else "") + self.text


@dataclass
class Node:
    """One node of a tree and what it does on the event table."""

    label: str              # `http_status = 404`, `all of 3`, `not`, `facts.server_ready = true`
    where: str              # the rule file and line it was written at
    alone: int              # events satisfying it on its own
    left: int               # candidates it leaves where it stands (within the conditions around it)
    children: list[Node] = field(default_factory=list)
    note: str = ""          # what it was compared with: a fact's value, the ready line, a pattern never compiled
    path: tuple[int, ...] = ()   # where it sits in its tree (child indices)
    stops: bool = False     # the condition that stopped the tree


@dataclass
class Stop:
    """The condition that stopped a tree: in an `all`, the first one that leaves no candidate."""

    node: Node
    before: int             # candidates just before it
    near: list[Line]        # lines that satisfy every other condition but not it (or those ahead of it)
    how: str                # what the near misses satisfy: "satisfy every other condition of its `all` (3 of 4)"
    held: int               # conditions of its `all` the near misses satisfy...
    of: int                 # ...of how many
    others: bool            # the near misses satisfy every other condition of its `all`

    @property
    def far(self) -> bool:
        """Nothing came near: no line met the conditions beside this one."""
        return not self.near and not self.held

    def gist(self) -> str:
        where = f" ({self.node.where})" if self.node.where else ""
        if self.far:
            return (f"nothing came near (no line met the other conditions of any alternative); e.g. "
                    f"`{_clip(self.node.label, 100)}`{where} holds on none of the {self.before:,} event(s) it was tried on")
        text = (f"first failing condition `{_clip(self.node.label, 100)}`{where}: {self.before:,} candidate(s) before it, "
                "none after")
        if self.near:
            n = self.near[0]
            text += f"; near miss {n.source}:{n.line}" + (f" [{n.has}]" if n.has else "") + f": {_clip(n.text, 100)}"
        return text


@dataclass
class Tree:
    """A match or a cause's `when`, evaluated."""

    what: str               # "match", "cause kv_cache (order 20, gpu/oom_kv_cache.yaml)"
    holds: int              # events it holds on (a cause: among the matched events)
    root: Node
    stop: Stop | None
    status: str = ""        # a cause: "words the finding", "holds, but cause X comes first"


@dataclass
class Explanation:
    """Why a rule id fired or did not, on one event table (`explain`; `render_explanation` lays it out)."""

    rule: str
    title: str
    severity: str
    events: int                     # events in the table
    fired: bool
    verdict: str                    # one sentence
    match: Tree | None = None
    matched: list[Line] = field(default_factory=list)   # a few matched lines
    matched_events: int = 0
    occurrences: int = 0
    count: str = ""                 # what `count:` asks, when it stopped the rule
    causes: list[Tree] = field(default_factory=list)
    cause: str | None = None        # the cause that worded the finding
    about: str | None = None        # the cause this explanation is asked about (a cause file's fixture)
    cause_gist: str = ""            # why that cause did not word it
    said: list[str] = field(default_factory=list)       # upstream messages and cues
    notes: list[str] = field(default_factory=list)      # selection, time window, what the table holds
    base: str = ""                  # the path every source shares, left out of the lines quoted

    def gist(self) -> str:
        """One line: the verdict and, where it did not fire, the first failing condition and a near miss."""
        if self.about and self.cause_gist:
            return self.cause_gist
        if self.fired:
            return self.verdict
        if self.count:
            return f"{self.verdict} {self.count}"
        if self.match is not None and self.match.stop is not None:
            return self.match.stop.gist()
        return self.verdict


# -- explaining ----------------------------------------------------------------------------------------
def explain(ruleset: RuleSet, events: pl.DataFrame, facts: Facts, rule_id: str, *, findings: Sequence = (),
            rules: RuleSet | None = None, before_window: pl.DataFrame | None = None, part: str | None = None,
            budget: RegexBudget | None = None) -> Explanation:
    """Why `rule_id` fired or did not on `events` (the table the engine saw) with `facts`.

    `ruleset`: the rules the analysis ran; `rules`: every rule known (when --select/--ignore
    narrowed `ruleset`; default `ruleset`); `findings`: the analysis's ranked findings;
    `before_window`: the table before --since/--until, when a window was set; `part`: the cause
    whose wording is in question (a cause file's fixture). Raises RuleError for an unknown id, with
    a did-you-mean."""
    every = rules if rules is not None else ruleset
    rule = every.get(rule_id)
    if rule is None:
        raise _unknown(rule_id, every)
    return _Explainer(ruleset, events, facts, findings, budget).rule(rule, selected=ruleset.get(rule_id) is not None,
                                                                      before_window=before_window, about=part)


def explain_analysis(analysis, rule_id: str, *, ruleset: RuleSet, rules: RuleSet | None = None,
                     part: str | None = None) -> Explanation:
    """`explain` on an Analysis (`diagnose.run`; `keep_window=True` keeps the table the time window cut)."""
    return explain(ruleset, analysis.events, analysis.facts, rule_id, findings=analysis.findings, rules=rules,
                   before_window=getattr(analysis, "before_window", None), part=part)


def explain_inputs(paths: Sequence, settings, rule_ids: Sequence[str], *, progress=None) -> tuple[object, list[Explanation]]:
    """The analysis of `paths` under `settings` and an explanation of each id (what `emblens analyze
    --explain` prints instead of the report). The ids are checked before anything is read: an
    unknown one raises RuleError naming the closest id."""
    from emblens import diagnose
    from emblens.rules.loader import load_rules
    from emblens.run import Run

    every = load_rules(settings.rule_dirs, include_builtin=settings.include_builtin)
    for rid in rule_ids:
        if every.get(rid) is None:
            raise _unknown(rid, every)
    run = Run(settings, ruleset=every)
    analysis = diagnose.run(paths, run, progress=progress, keep_window=True)
    return analysis, [explain_analysis(analysis, rid, ruleset=run.ruleset, rules=every) for rid in dict.fromkeys(rule_ids)]


def _unknown(rule_id: str, rules: RuleSet) -> RuleError:
    return RuleError(f"--explain {_clip(rule_id, 80)}: no rule has this id{suggest(rule_id, [r.id for r in rules.rules])}; "
                     "`emblens rules list` shows the ids")


class _Explainer:
    def __init__(self, ruleset: RuleSet, events: pl.DataFrame, facts: Facts, findings: Sequence,
                 budget: RegexBudget | None) -> None:
        self.ruleset, self.events, self.facts, self.findings = ruleset, events, facts, list(findings)
        self.values = facts.as_values()
        self.absent = absent(ruleset, events) if events.height else frozenset()
        self.compiler = Compiler(facts, self.absent, budget if budget is not None else RegexBudget())
        self.masks: dict[int, pl.Series] = {}
        self.prefix = _prefix(events)

    # -- masks: every node of the trees at hand, in one pass over the table
    def prepare(self, roots: list[t.Node]) -> None:
        todo: dict[int, t.Node] = {}
        for root in roots:
            for node in _nodes(root):
                if id(node) not in self.masks:
                    todo[id(node)] = node
        if not todo:
            return
        if self.events.height == 0:
            for k in todo:
                self.masks[k] = pl.Series([], dtype=pl.Boolean)
            return
        names = {k: f"n{i}" for i, k in enumerate(todo)}
        exprs = [self.compiler.node(node).alias(names[k]) for k, node in todo.items()]
        got = self.events.with_columns(exprs).select(list(names.values()))
        for k, name in names.items():
            self.masks[k] = got[name].fill_null(False)

    def mask(self, node: t.Node) -> pl.Series:
        return self.masks[id(node)]

    def everything(self) -> pl.Series:
        return pl.Series([True] * self.events.height, dtype=pl.Boolean)

    # -- one rule
    def rule(self, rule: Rule, *, selected: bool, before_window: pl.DataFrame | None, about: str | None) -> Explanation:
        events = self.events
        whens = [c.when for c in rule.causes if c.when is not None]
        self.prepare([rule.match, *whens])
        hit = self.mask(rule.match)
        x = Explanation(rule.id, rule.title, rule.severity, events.height, fired=False, verdict="", about=about,
                        base=printable(self.prefix))
        labels: dict[int, tuple[str, str | None]] = {}
        if rule.signals:
            labels[id(rule.match)] = ("the rule file's match or a signal's", None)
            labels[id(rule.head.match)] = ("rule file", None)
        for s in rule.signals:
            upstream = sum(m.id == rule.id for m in self.ruleset.messages.messages)
            labels[id(s.match)] = ((f"signal {s.name}: a line holds one of this id's {upstream} upstream messages", "rules/data/messages")
                                   if s.name == UPSTREAM_SIGNAL else (f"signal {s.name}", None))
        root, stop = self.node(rule.match, self.everything(), labels, whole=True)
        if stop is None and not hit.any() and events.height:
            stop = Stop(root, events.height, [], "", 0, 1, False)
        x.match = Tree("match", int(hit.sum()), root, None if hit.any() else stop)
        _mark(root, x.match.stop)
        matched = events.filter(hit) if events.height else events
        x.matched_events = matched.height
        if matched.height:
            x.matched = self.lines(hit)
            x.occurrences = occurrences(matched)
        enough = matched.height > 0 and _enough(matched.sort(["ts", "source", "line"], nulls_last=True), rule)
        if matched.height and not enough:
            within = f" within {_seconds(rule.within_s)}" if rule.within_s and rule.count_min > 1 else ""
            x.count = (f"`count` asks for at least {rule.count_min} occurrence(s){within}; the match holds on "
                       f"{x.occurrences} ({matched.height} event(s)), not enough")
            if within and (timed := matched["ts"].drop_nulls().len()) < matched.height:
                x.count += f" (only events with a time count within a window: {timed} of them have one)"
        mine = [f for f in self.findings if f.rule == rule.id]
        finding = next((f for f in mine if f.cause != "possible"), None) or (mine[0] if mine else None)
        x.fired = finding is not None and finding.cause != "possible"
        if enough and rule.causes:
            x.causes, chosen = self.causes(rule, hit)
            x.cause = chosen.name if chosen is not None else None
        elif rule.causes:
            x.notes.append(f"its {len(rule.causes)} cause(s) ({', '.join(str(c.name) for c in rule.causes)}) are tried "
                           "only once its match holds often enough")
        if not selected:
            x.notes.append("--select/--ignore left this rule out: it was not run; below is what it would have "
                           "matched (lines only it reads may not have been kept from a large log)")
            x.fired = False
        if before_window is not None and before_window.height > events.height:
            x.notes.append(self.window(rule, before_window, int(hit.sum())))
        x.verdict = self.verdict(x, finding, enough, selected)
        if about is not None:
            x.cause_gist = self.cause_gist(x, about)
        x.said = self.said(rule, finding)
        return x

    def verdict(self, x: Explanation, finding, enough: bool, selected: bool) -> str:
        if self.events.height == 0:
            return "It did not fire: no events were read."
        if not selected:
            return ("It was not run (--select/--ignore); on these events it would "
                    + ("have fired." if enough else "not have fired either."))
        if finding is not None and finding.cause == "possible":
            return (f"Its rule did not fire, but it is named as a possible cause (confidence {finding.confidence:.2f}): "
                    f"{_clip(_mask(finding.summary), 220)}")
        if x.matched_events == 0:
            return f"It did not fire: no event satisfies its match (0 of {self.events.height:,} events)."
        if not enough:
            return "It did not fire: its match holds, but not often enough."
        if finding is None:     # cannot happen with the engine's own findings; said rather than hidden
            return "Its match holds, but the analysis has no finding of it."
        return "It fired" + self.rank(finding)

    def rank(self, f) -> str:
        ids = [g.rule for g in self.findings]
        top = self.findings[0]
        where = f" (confidence {f.confidence:.2f}, seen {f.count}x)"
        if f.role == "symptom":
            return (f" and is a symptom: {f.explained_by} explains it (its `explains:` lists {f.rule}), so the report "
                    f"shows it under {f.explained_by}{where}.")
        if top is f:
            return f" and is the root cause, first in the report{where}."
        why = _outranked(f, top, self.findings)
        return f" but ranks {ids.index(f.rule) + 1} of {len(ids)}{where}, below {top.rule}: {why}."

    def causes(self, rule: Rule, hit: pl.Series) -> tuple[list[Tree], Part | None]:
        out, chosen = [], None
        for cause in rule.causes:
            if cause.when is None:
                continue
            node, stop = self.node(cause.when, hit, {})
            holds = int((self.mask(cause.when) & hit).sum())
            if stop is None and not holds and hit.any():
                stop = Stop(node, int(hit.sum()), self.lines(hit), "the matched events it was tried on", 0, 1, False)
            tree = Tree(f"cause {cause.name} (order {cause.order}, {_file(cause.path)})", holds, node,
                        None if holds else stop)
            _mark(node, tree.stop)
            if holds and chosen is None:
                chosen = cause
                tree.status = "it words the finding"
            elif holds:
                tree.status = f"it holds, but cause {chosen.name} comes first"   # type: ignore[union-attr]
            else:
                tree.status = "it does not hold"
            out.append(tree)
        return out, chosen

    def cause_gist(self, x: Explanation, about: str) -> str:
        if x.cause == about:
            return ""
        tree = next((c for c in x.causes if c.what.startswith(f"cause {about} ")), None)
        if tree is None:
            return ""
        if tree.holds:
            return f"cause {about}'s `when` holds, but cause {x.cause} comes first (lower `order`)"
        if tree.stop is not None:
            return f"cause {about}'s `when` does not hold on the matched events: {tree.stop.gist()}"
        return f"cause {about}'s `when` does not hold on the matched events"

    def window(self, rule: Rule, before: pl.DataFrame, inside: int) -> str:
        other = Compiler(self.facts, frozenset(), RegexBudget())
        n = int(before.select(other.node(rule.match).fill_null(False).sum()).item()) if before.height else 0
        cut = before.height - self.events.height
        if n > inside:
            return (f"the time window (--since/--until) left out {cut:,} event(s); {n - inside:,} of them "
                    f"{'satisfies' if n - inside == 1 else 'satisfy'} the match")
        return f"the time window (--since/--until) left out {cut:,} event(s); none of them satisfies the match"

    # -- a tree, node by node
    def node(self, node: t.Node, ctx: pl.Series, labels: dict[int, tuple[str, str | None]],
             path: tuple[int, ...] = (), *, whole: bool = False) -> tuple[Node, Stop | None]:
        """The report of `node` within `ctx` (the candidates the conditions around it left), and the
        condition that stops it there, if one does. `path`: where the node sits (child indices);
        `whole`: `ctx` is the whole table (no condition around it)."""
        own = self.mask(node)
        inside = own & ctx
        out = Node(self.label(node), _where(node), int(own.sum()), int(inside.sum()), note=self.note(node), path=path)
        if id(node) in labels:
            name, where = labels[id(node)]
            out.label = f"{out.label} ({name})"
            out.where = where if where is not None else out.where
        stop: Stop | None = None
        match node:
            case t.AllOf(children=children):
                masks = [self.mask(c) for c in children]
                n, cum = len(children), ctx
                for i, child in enumerate(children):
                    before = cum
                    cum = cum & masks[i]
                    child_node, _ = self.node(child, before, labels, (*path, i), whole=whole and i == 0)
                    out.children.append(child_node)
                    if stop is not None or not before.any() or cum.any():
                        continue
                    others = ctx
                    for j, m in enumerate(masks):
                        if j != i:
                            others = others & m
                    missed = others & ~masks[i]
                    near: pl.Series | None
                    if missed.any():
                        near, how, held = missed, f"satisfy every other condition of its `all` ({n - 1} of {n})", n - 1
                    elif i > 0:
                        near, how, held = before, f"satisfy the {i} condition(s) before it", i
                    elif not whole:
                        near, how, held = before, "satisfy the conditions around it", 0
                    else:      # the first condition, tried on the whole table: no line is near
                        near, how, held = None, "", 0
                    column = child.column if isinstance(child, t.Field) else None
                    stop = Stop(child_node, int(before.sum()), self.lines(near, column=column) if near is not None else [],
                                how, held, n, bool(missed.any()))
                    if isinstance(child, (t.AllOf, t.AnyOf)):
                        # which of its own parts fails, on the lines that would have passed had it held
                        _, inner = self.node(child, near if near is not None else before, labels, (*path, i))
                        if inner is not None and (inner.near or near is None):
                            stop = inner
            case t.AnyOf(children=children):
                stops = []
                for i, child in enumerate(children):
                    child_node, child_stop = self.node(child, ctx, labels, (*path, i), whole=whole)
                    out.children.append(child_node)
                    if ctx.any() and not inside.any():
                        if child_stop is None:     # a lone condition: nothing else held beside it
                            child_stop = Stop(child_node, int(ctx.sum()), [], "", 0, 1, False)
                        stops.append((i, child_stop))
                if stops:
                    _, stop = max(stops, key=lambda s: (bool(s[1].near), s[1].held, s[1].others, -s[0]))
            case t.Not(child=child):
                child_node, _ = self.node(child, ctx, labels, (*path, 0), whole=whole)
                out.children.append(child_node)
        return out, stop

    def label(self, node: t.Node) -> str:
        match node:
            case t.AllOf(children=children):
                return f"all of {len(children)}"
            case t.AnyOf(children=children):
                return f"any of {len(children)}"
            case t.Not():
                return "not"
            case t.Order(how=how, mark=mark):
                return f"{how} {mark}"
            case t.FactTest(fact=fact, pred=pred):
                return f"facts.{fact} " + " and ".join(_op(op) for op in pred.ops)
            case t.Field(column=column, pred=pred):
                return f"{column} " + " and ".join(_op(op) for op in pred.ops)
        return type(node).__name__

    def note(self, node: t.Node) -> str:
        """What the node was compared with: the fact's value, the mark, the `$fact`s, a pattern
        none of whose words is in the column."""
        notes: list[str] = []
        match node:
            case t.FactTest(fact=fact):
                notes.append(f"the bundle's {fact} is {_fact(self.values.get(fact))}")
            case t.Order(mark=mark):
                marks = self.facts.ready if mark == "ready" else self.facts.loading
                notes.append(f"the {mark} line is {self.where(marks[0].source)}:{marks[0].line}" if marks
                             else f"no {mark} line was seen, so it never holds")
            case t.Field(column=column, pred=pred):
                if column not in self.events.columns and self.events.height:
                    notes.append("no such column in this table")
                for op in pred.ops:
                    if op.name == "regex" and (column, op.value) in self.absent:
                        notes.append(f"none of the pattern's literal words occurs in any {column}")
        if isinstance(node, (t.FactTest, t.Field)):
            for op in node.pred.ops:
                if isinstance(op.value, t.FactRef):
                    notes.append(f"${op.value.name} is {_fact(self.values.get(op.value.name))}")
        return "; ".join(notes)

    def lines(self, mask: pl.Series, limit: int = MAX_NEAR, *, column: str | None = None) -> list[Line]:
        """A few lines of the mask, one per distinct text, in table order; with `column`, each with
        its value of that column (what the condition that stopped them tested)."""
        if self.events.height == 0 or not mask.any():
            return []
        has = pl.col(column) if column in self.events.columns else pl.lit(None)
        rows = (self.events.filter(mask).select("source", "line", pl.coalesce(pl.col("text"), pl.col("message")).alias("t"),
                                                has.alias("has"))
                .unique("t", keep="first", maintain_order=True).head(limit))
        return [Line(self.where(s), n, _clip(_mask(txt or "")), f"{column}: {_fact(v) if v is not None else 'absent'}"
                     if column else "") for s, n, txt, v in rows.iter_rows()]

    def where(self, source: str) -> str:
        return printable(source.removeprefix(self.prefix) or source)

    # -- what else could have named it: upstream messages and cues
    def said(self, rule: Rule, finding) -> list[str]:
        from emblens.findings.possible import error_like

        out: list[str] = []
        events, rid = self.events, rule.id
        messages = [m for m in self.ruleset.messages.messages if m.id == rid]
        cues = [c for c in self.ruleset.cues.cues if c.id == rid]
        if not messages and not cues:
            return ["No upstream message or cue names this id: only its rule files speak for it."]
        surer = [f for f in self.findings if f.cause != "possible" and f.severity == "error"]
        covered = set().union(*(f.matched for f in self.findings if f.cause != "possible")) if self.findings else set()
        has_msg = "msg_id" in events.columns and events.height > 0
        possible = finding is not None and finding.cause == "possible"
        if messages:
            shown = "; ".join(printable(m.label) for m in messages[:3]) + (" …" if len(messages) > 3 else "")
            out.append(f"{len(messages)} upstream message(s) of the software in the path evidence {rid} "
                       f"(rules/data/messages), e.g. {shown}.")
            exact = events.filter(pl.col("msg_id") == rid) if has_msg else events.clear()
            if exact.height:
                out.append(f"{exact.height} line(s) hold one word for word, which the signal {UPSTREAM_SIGNAL} matches:")
                out += [f"  {ln}" for ln in self.lines(self._expr((pl.col("msg_id") == rid).fill_null(False)))]
            else:
                out.append("No line holds one of them word for word.")
        lines = error_like(events, covered) if has_msg else events.clear()
        near = self._near(rid, lines) if messages and lines.height else []
        if near:
            cover, row = near[0]
            out.append(f"{len(near)} error-like line(s) no finding explains are near one (the best: {cover:.0%} of its words):")
            out.append(f"  {Line(self.where(row['source']), row['line'], _clip(_mask(row['_text'])))}")
        if (near or cues) and not possible and finding is None:
            if surer:
                out.append("Possible causes were not looked for: a surer finding spoke ("
                           + ", ".join(f"{f.rule}, {f.severity}" for f in surer[:3]) + ").")
            elif near:
                out.append("A possible cause was looked for, but surer or nearer ones were named: "
                           + (", ".join(f.rule for f in self.findings if f.cause == "possible") or "none") + ".")
        if possible:
            out.append(f"It is named a possible cause: {_clip(_mask(finding.summary), 240)}")
        if cues:
            out += self._cues(rid, cues, lines, covered, surer, possible)
        return out

    def _expr(self, expr: pl.Expr) -> pl.Series:
        return self.events.select(expr.alias("m"))["m"]

    def _near(self, rid: str, lines: pl.DataFrame) -> list[tuple[float, dict]]:
        """The error-like lines nearest a message of `rid` (its best cover first)."""
        index = self.ruleset.messages.nearest
        got = []
        for row in lines.iter_rows(named=True):
            near = index.near(row["_text"])
            if near is not None and near.message.id == rid:
                got.append((near.cover, row))
        return sorted(got, key=lambda g: -g[0])

    def _cues(self, rid: str, cues: list, lines: pl.DataFrame, covered: set, surer: list, possible: bool) -> list[str]:
        from emblens.findings.possible import prose
        from emblens.knowledge.cues import Cues

        out = [f"{len(cues)} cue(s) read for {rid} (rules/data/cues.yaml): " + "; ".join(printable(c.says) for c in cues) + "."]
        events = self.events
        if events.height == 0:
            return out
        text = pl.coalesce(pl.col("message"), pl.col("text")).fill_null("")
        held = pl.col("msg_id") if "msg_id" in events.columns else pl.lit(None, dtype=pl.String)
        every = (events.select("source", "line", text.alias("_text"), held.alias("_msg"))
                 .unique("_text", keep="first", maintain_order=True).head(MAX_CUE_LINES))
        hits = [row for row in every.iter_rows(named=True) if any(c.search(row["_text"][:2048]) for c in cues)]
        if not hits:
            out.append("No line holds a cue's words.")
            return out
        error_texts = set(lines["_text"].to_list()) if lines.height else set()
        said = prose(events, covered, lines) if "msg_id" in events.columns else events.clear()
        prose_texts = set(said["_text"].to_list()) if said.height else set()
        by_line = {(f_src, f_line): f.rule for f in self.findings if f.cause != "possible" for f_src, f_line in f.matched}
        index = self.ruleset.messages.nearest
        everyone = Cues(tuple(self.ruleset.cues.cues))
        out.append(f"{len(hits)} line(s) hold a cue's words:")
        for row in hits[:MAX_NEAR]:
            key, txt = (row["source"], row["line"]), row["_text"]
            mine = [c for c in cues if c.search(txt[:2048])]
            if key in by_line:
                why = f"it is evidence of {by_line[key]} already"
            elif surer:
                why = f"not read: a surer finding spoke ({surer[0].rule})"
            elif txt not in error_texts and txt not in prose_texts:
                why = "not read: it does not look like an error line (its program labelled it) and is not prose"
            elif txt not in error_texts and not any(c.alone for c in mine):
                why = "not read: this cue reads only lines that look like errors"
            elif row["_msg"] is not None:
                why = (f"not read: it holds an upstream message of {row['_msg']}" if row["_msg"] != "none"
                       else "not read: it holds an upstream message that names no failure")
            elif txt in error_texts and (near := index.near(txt)) is not None and near.message.id != "none":
                why = f"not read: a message is nearer ({printable(near.message.label)}, {near.message.id})"
            else:
                best = everyone.best(pl.Series([txt]), pl.Series([txt in error_texts]))
                top = best[0][1] if best else None
                if top is not None and top.id != rid:
                    why = f"not read for it: a cue of {top.id} weighs more ({top.weight} > {max(c.weight for c in mine)})"
                elif possible:
                    why = "read: it names the possible cause"
                else:
                    why = "read, but surer possible causes were named"
            out.append(f"  {Line(self.where(row['source']), row['line'], _clip(_mask(txt)))}")
            out.append(f"    {why}")
        return out


# -- helpers ---------------------------------------------------------------------------------------------
def _mark(root: Node, stop: Stop | None) -> None:
    """Mark the node of `root` that `stop` names (it may come from a second look at a subtree)."""
    if stop is None:
        return
    node = root
    for i in stop.node.path[len(root.path):]:
        if i >= len(node.children):
            return
        node = node.children[i]
    node.stops = True


def _nodes(node: t.Node):
    yield node
    match node:
        case t.AnyOf(children=children) | t.AllOf(children=children):
            for c in children:
                yield from _nodes(c)
        case t.Not(child=child):
            yield from _nodes(child)


def _outranked(f, top, findings: list) -> str:
    """Why `top` leads the report rather than `f` (the ranking's order: severity, then what each
    explains, then confidence, then the earliest)."""
    from emblens.rules.rank import _descendants

    by_id = {g.rule: g for g in findings}
    if SEVERITIES.index(top.severity) < SEVERITIES.index(f.severity):
        return f"{top.rule} is {top.severity}, this is {f.severity}"
    if top.role == "root_cause" and f.role != "root_cause" and top.explains:
        mine, theirs = _descendants(f, by_id), _descendants(top, by_id)
        if theirs > mine:
            return f"{top.rule} explains {theirs} other finding(s), this {mine}"
    if top.confidence > f.confidence:
        return f"{top.rule} is surer (confidence {top.confidence:.2f} > {f.confidence:.2f})"
    if top.first_seen and f.first_seen and top.first_seen < f.first_seen:
        return f"{top.rule} was seen first"
    return f"{top.rule} comes first by id at equal rank"


def _op(op: t.Op) -> str:
    if op.name == "null":
        return "is absent"
    if op.name == "exists" and isinstance(op.value, bool):
        return "exists" if op.value else "does not exist"
    symbol = {"equals": "=", "not_equals": "!=", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}.get(op.name, op.name)
    return f"{symbol} {_value(op.value)}"


def _value(v: object) -> str:
    if isinstance(v, t.FactRef):
        return f"${v.name}"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return '"' + _clip(printable(v), MAX_VALUE) + '"'
    if isinstance(v, tuple):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    return printable(str(v))


def _fact(v: object) -> str:
    if v in (None, [], ""):
        return "unknown (a test of an unknown fact never holds)"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, list):
        return "[" + ", ".join(_clip(_mask(str(x)), 60) for x in v[:5]) + (", …" if len(v) > 5 else "") + "]"
    return _clip(_mask(str(v)), 80)


def _where(node: t.Node) -> str:
    return f"{_file(node.loc.path)}:{node.loc.line}" if node.loc.path else ""


def _file(path: str) -> str:
    """A rule file as an explanation names it: its area folder and name (`model/not_found.yaml`)."""
    p = Path(path)
    return printable(f"{p.parent.name}/{p.name}" if p.parent.name else p.name)


def _seconds(s: float) -> str:
    return f"{s:g} s"


def _mask(text: str) -> str:
    return mask_text(text)


def _clip(text: str, limit: int = MAX_TEXT) -> str:
    line = " ".join(printable(text).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _prefix(events: pl.DataFrame) -> str:
    """The path every source shares, up to a folder or archive boundary (as the report says it once)."""
    if events.height == 0 or "source" not in events.columns:
        return ""
    sources = events["source"].unique().to_list()
    prefix = os.path.commonprefix(sources)
    cut = max(prefix.rfind("/"), prefix.rfind(":"))
    return prefix[: cut + 1] if cut >= 0 else ""


# -- rendering -----------------------------------------------------------------------------------------
def render_explanation(x: Explanation) -> str:
    """The explanation as text for a terminal: the verdict, the match tree with what each node
    holds, the stopping condition and its near misses, the causes, messages and cues."""
    out: list[str] = [f"Why {x.rule}: {x.title} ({x.severity})"]
    if x.base:
        out.append(f"Paths below are in {x.base.rstrip('/:') or x.base}")
    out += ["", x.verdict]
    if x.count:
        out.append(x.count + ".")
    for note in x.notes:
        out.append(f"Note: {note}.")
    if x.match is not None and x.match.stop is not None and not x.fired:
        out += ["", *_stop_lines(x.match.stop)]
    if x.match is not None:
        out += ["", f"Match: {x.matched_events:,} of {x.events:,} events satisfy it "
                "(each node: events satisfying it alone / candidates left where it stands)"]
        out += _tree_lines(x.match.root, 1)
    if x.matched:
        out += ["", f"Matched lines ({x.matched_events:,} events, {x.occurrences:,} occurrence(s))"]
        out += [f"  {ln}" for ln in x.matched]
    if x.causes:
        out += ["", "Causes (tried in order on the matched events; the first whose `when` holds words the finding)"]
        for c in x.causes:
            out.append(f"  {c.what}: `when` holds on {c.holds:,} of the matched events; {c.status}")
            out += _tree_lines(c.root, 2)
            if c.stop is not None:
                out += [f"  {s}" for s in _stop_lines(c.stop)]
    if x.about and x.cause_gist:
        out += ["", x.cause_gist + "."]
    if x.said:
        out += ["", "Upstream messages and cues"]
        out += [f"  {s}" for s in x.said]
    return "\n".join(printable(line).rstrip() for line in out) + "\n"


def _stop_lines(stop: Stop) -> list[str]:
    where = f" ({stop.node.where})" if stop.node.where else ""
    if stop.far:
        lines = ["Nothing came near: no line met the other conditions of any alternative. The first tried, "
                 f"`{stop.node.label}`{where}, holds on none of the {stop.before:,} event(s) it was tried on."]
    else:
        lines = [f"First condition that leaves no candidate: `{stop.node.label}`{where}; "
                 f"{stop.before:,} candidate(s) before it, none after."]
    if stop.node.note:
        lines.append(f"  ({stop.node.note})")
    if stop.near:
        how = stop.how if stop.how.startswith("the ") else f"lines that {stop.how}, but not this one"
        lines.append(f"Near misses: {how}:")
        lines += [f"  {ln}" for ln in stop.near]
    return lines


def _tree_lines(node: Node, depth: int) -> list[str]:
    pad = "  " * depth
    mark = "   <- first to leave none" if node.stops else ""
    where = f"  [{node.where}]" if node.where else ""
    counts = f"{node.alone:,} / {node.left:,}"
    lines = [f"{pad}{node.label}: {counts}{where}{mark}"]
    if node.note:
        lines.append(f"{pad}  ({node.note})")
    for child in node.children:
        lines += _tree_lines(child, depth + 1)
    return lines

