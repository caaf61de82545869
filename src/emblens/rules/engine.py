"""Run compiled rules over the event table: findings with evidence, counts and quoted values;
and the error lines no rule explained, grouped by template so nothing is hidden.

Every rule's match, its supporting nodes and its causes' conditions are evaluated in one polars
pass. When a rule fires, the first of its causes (in order) whose `when` holds on the matched
events words the finding.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import MappingProxyType

import polars as pl

from emblens.combiners import Facts
from emblens.findings import confidence
from emblens.knowledge import upstream
from emblens.patterns import literals
from emblens.patterns.backtracking import REGEX_TIMEOUT_S, RegexBudget
from emblens.patterns.backtracking import compiled as _backtracking
from emblens.patterns.linear import rust_ok
from emblens.rules import templates
from emblens.rules import tree as t
from emblens.rules.compiler import Compiler
from emblens.rules.loader import Part, Rule, RuleSet

MAX_EVIDENCE = 5
MAX_SUPPORTING = 2
CONTEXT_NAMES = ("count", "sources", "first_seen", "last_seen")   # values every template may use
MESSAGE_NAMES = ("msg_project",)    # values a harvested message gives, where one matched (`_message_values`)
CUE_NAMES = ("cue_says",)           # what a cue's words say, in a possible cause a cue found (findings.possible)
# a harvested message's placeholders are named as its source names them; a rule's templates say
# what they mean once (`asked` tokens, `max` the context; `asked` the model a request named),
# whichever program wrote the value: per id, the source's name -> the rule's
VALUE_NAMES = MappingProxyType({
    "request.context_length_exceeded": MappingProxyType({
        "max_model_len": "max", "context_len": "max", "n_ctx": "max", "max_req_input_len": "max", "num_ctx": "max",
        "total_tokens": "asked", "input_token_num": "asked", "n_keep": "asked", "n_prompt_tokens": "asked",
        "n_tokens": "asked", "token_num": "prompt", "max_tokens": "completion", "max_new_tokens": "completion",
        # TabbyAPI: the prompt's length, the model's max_seq_len, the cache an ExLlamaV3 job needs and has
        "context_to_check": "prompt", "max_seq_len": "max", "required_tokens": "asked", "cache_capacity": "max"}),
    "model.not_found": MappingProxyType({"model": "asked", "model_name": "asked", "name": "asked"}),
})


@dataclass
class Evidence:
    source: str
    line: int
    text: str
    ts: datetime | None = None
    stamp: str | None = None     # the time as written (shown when it carries no year that could be settled)


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
    cause: str | None = None               # the cause file that worded it, when the rule has causes
    role: str = "finding"                  # root_cause | symptom | finding
    explained_by: str | None = None
    requests: int | None = None            # how many of the matched events are HTTP exchanges...
    requests_seen: int | None = None       # ...of all the requests its sources saw (emblens.combiners.traffic)
    matched: set = field(default_factory=set, repr=False)   # (source, line) of every matched event
    chains: set = field(default_factory=set, repr=False)    # (source, exc_group) of matched chains
    path: list = field(default_factory=list)   # emblens.findings.path.Step: the request it rests on, source by source
    path_request: str | None = None           # that request's key (a trace id or a request id)
    path_steps: int = 0                       # the steps found (path holds the first MAX_STEPS)


def evaluate(ruleset: RuleSet, events: pl.DataFrame, facts: Facts, budget: RegexBudget | None = None) -> list[Finding]:
    """The findings of every rule that fires on `events`, unranked; `budget` is the run's time for
    the backtracking regex engine."""
    if events.height == 0 or not ruleset.rules:
        return []
    compiler = Compiler(facts, absent(ruleset, events), budget)
    exprs: list[pl.Expr] = []
    for i, rule in enumerate(ruleset.rules):
        exprs.append(compiler.node(rule.match).alias(f"m{i}"))
        for j, part in enumerate(rule.parts):
            if part.supporting is not None:
                exprs.append(compiler.node(part.supporting).alias(f"s{i}.{j}"))
            if part.when is not None:
                exprs.append(compiler.node(part.when).alias(f"w{i}.{j}"))
    # with_columns, not select: a rule that is a constant (folded by the compiler) still gets a
    # value for every row, even when every rule is one
    masks = events.with_columns(exprs).select(e.meta.output_name() for e in exprs)
    values = facts.as_values()
    findings = []
    for i, rule in enumerate(ruleset.rules):
        hit = masks[f"m{i}"]
        if not hit.any():
            continue
        matched = events.filter(hit).sort(["ts", "source", "line"], nulls_last=True)
        if not _enough(matched, rule):
            continue
        parts = list(rule.parts)
        cause = next((p for p in rule.causes if (masks[f"w{i}.{parts.index(p)}"] & hit).any()), None)
        finding = _finding(rule, cause, matched, values)
        owner = cause if cause is not None and cause.supporting is not None else rule.head
        if owner.supporting is not None:
            _support(finding, events.filter(masks[f"s{i}.{parts.index(owner)}"] & ~hit))
        findings.append(finding)
    return findings


def absent(ruleset: RuleSet, events: pl.DataFrame) -> frozenset[tuple[str, str]]:
    """(column, pattern) of the rules' regexes that cannot match any value of their column here:
    none of the pattern's literals occurs in it. Finding that is one pass over each text column;
    compiling them all would cost polars 40-70 ms a run (its cache keeps 32 patterns a thread)."""
    found = {column: {p: literals.literals(p) for p in patterns}
             for column, patterns in ruleset.regexes.items() if column in events.columns}
    seen = literals.present_in(events, {c: {s for f in fs.values() if f for s in f} for c, fs in found.items()})
    return frozenset((c, p) for c, fs in found.items() for p, f in fs.items() if not literals.could_match(f, seen[c]))


def _support(finding: Finding, rows: pl.DataFrame) -> None:
    """Quote what other sources say in favour of a finding (the server's --api-key, the served
    names), sources not yet quoted first; the finding then counts as seen in those sources too."""
    if rows.height == 0:
        return
    quoted = {e.source for e in finding.evidence}
    picked = []
    for source, line, text, ts, stamp in rows.sort(["source", "line"]).select("source", "line", "text", "ts", "ts_text").rows():
        if len(picked) >= MAX_SUPPORTING:
            break
        if source not in quoted or len(picked) == 0:
            picked.append(Evidence(source, line, (text or "").strip(), ts, stamp))
            quoted.add(source)
    new_sources = [e.source for e in picked if e.source not in finding.sources]
    finding.evidence = finding.evidence[: MAX_EVIDENCE - len(picked)] + picked
    if new_sources:
        finding.sources = finding.sources + new_sources
        finding.confidence = confidence.raised(finding.confidence)


def _enough(matched: pl.DataFrame, rule: Rule) -> bool:
    if occurrences(matched) < rule.count_min:
        return False
    if rule.within_s is None or rule.count_min == 1:
        return True
    # some window of `within` seconds holds count_min matches (a counted row holds `repeat` of them)
    rows = (matched.select("ts", weight().alias("w")).filter(pl.col("ts").is_not_null()).sort("ts")
            .with_columns(pl.col("w").cum_sum().alias("upto")))
    if rows.height == 0 or rows["upto"][-1] < rule.count_min:
        return False
    ts, upto = rows["ts"], rows["upto"]
    # for each row, the matches from the first row at most `within` before it up to it
    start = ts.search_sorted(ts - timedelta(seconds=rule.within_s), side="left")
    before = pl.concat([pl.Series([0], dtype=upto.dtype), upto]).gather(start)
    return bool(((upto - before) >= rule.count_min).any())


def _captures(rule: Rule, matched: pl.DataFrame) -> dict[str, str]:
    """The most common value of each named group of the rule's patterns among the matched events.
    polars' engine takes the patterns it accepts (it compiles them in microseconds, where the
    backtracking engine takes milliseconds); the others are searched with a time limit."""
    found: dict[str, Counter] = {}
    for col, pattern in t.captures(rule.match):
        values = matched[col].drop_nulls().head(200)
        if rust_ok(pattern):
            groups = values.str.extract_groups(pattern)
            for name in groups.struct.fields:
                if not name.isdigit():        # an unnamed group
                    for v in groups.struct.field(name).to_list():
                        if v is not None:
                            found.setdefault(name, Counter())[v] += 1
            continue
        rx = _backtracking(pattern)
        for value in values.to_list():
            try:
                m = rx.search(value, timeout=REGEX_TIMEOUT_S)
            except TimeoutError:
                break      # one slow value: the others would be as slow
            if m:
                for name, v in m.groupdict().items():
                    if v is not None:
                        found.setdefault(name, Counter())[v] += 1
    return {name: c.most_common(1)[0][0] for name, c in found.items()}


def names_used(source: str) -> frozenset[str]:
    """The values a template refers to."""
    return templates.names(source)


def _column_values(matched: pl.DataFrame, wanted: set[str]) -> dict[str, object]:
    """The most common value of each wanted column among the matched events (a counted row
    weighs as the lines it stands for; the smallest of equally common values)."""
    out: dict[str, object] = {}
    for col in wanted & set(matched.columns):
        s = matched.select(pl.col(col), weight().alias("w")).filter(pl.col(col).is_not_null())
        if s.height:
            if s[col].dtype == pl.Boolean:
                out[col] = bool(s[col][0])
                continue
            top = s.group_by(col).agg(pl.col("w").sum())
            out[col] = top.filter(pl.col("w") == pl.col("w").max())[col].sort()[0]
    return out


def weight() -> pl.Expr:
    """How many lines an event stands for: `repeat` for a server log's counted access lines, else 1."""
    return pl.col("repeat").fill_null(1)


def occurrences(matched: pl.DataFrame) -> int:
    """How many times it happened: a traceback chain counts once, however many of its lines matched
    (its frames' code lines with it);
    a counted row of access lines as many times as the lines it stands for; a request seen from
    both ends (a capture's exchange, the server's access line) once (`requests_once`)."""
    chained = matched.filter(pl.col("exc_group").is_not_null())
    alone = matched.filter(pl.col("exc_group").is_null())
    if chained.height and alone.height:     # a traceback's frame line (`raise APITimeoutError(...)`) is part of its chain
        alone = alone.filter(~((pl.col("kind") == "trace") & pl.col("source").is_in(chained["source"].unique().implode())))
    http = pl.col("kind") == "http"
    single = alone.filter(~http).select(weight().sum()).item() if alone.height else 0
    return int(single or 0) + requests_once(alone.filter(http)) + chained.select("source", "exc_group").n_unique()


def requests_once(http: pl.DataFrame) -> int:
    """The requests that rows of kind `http` stand for, a request seen from both ends counted once:
    a server writes an access line for each request a capture (curl -v, a HAR, a proxy) saw, so of
    each status the larger count of the two sides is the number of requests.

    >>> rows = pl.DataFrame({"origin": ["vllm", "client", "client"], "http_status": [404, 404, 401], "repeat": [None, None, None]})
    >>> requests_once(rows)
    2
    """
    if not http.height:
        return 0
    from emblens.formats.registry import servers

    per = (http.group_by(pl.col("http_status"), pl.col("origin").is_in(list(servers())).alias("server"))
           .agg(weight().sum().alias("n")))
    return int(per.group_by("http_status").agg(pl.col("n").max()).get_column("n").sum() or 0)


def _finding(rule: Rule, cause: Part | None, matched: pl.DataFrame, facts: dict[str, object]) -> Finding:
    ts = matched["ts"].drop_nulls()
    first = ts.min() if ts.len() else None
    last = ts.max() if ts.len() else None
    sources = matched["source"].unique(maintain_order=True).to_list()
    var_sources = list(rule.head.vars) + (list(cause.vars) if cause is not None else [])
    message = (cause.message if cause is not None and cause.message else None) or rule.message
    remedy = (cause.remedy if cause is not None and cause.remedy else None) or rule.remedy
    used: set[str] = set()
    for source in [message, *remedy, *(s for _, s in var_sources)]:
        used |= names_used(source)
    count = occurrences(matched)
    context: dict[str, object] = {**facts, **_column_values(matched, used), **_captures(rule, matched)}
    context.update(count=count, sources=sources, first_seen=first, last_seen=last)
    _message_values(matched, context)
    for name, source in var_sources:
        context[name] = templates.render(source, context)
    conf = cause.confidence if cause is not None and cause.confidence is not None else rule.confidence
    return Finding(
        rule=rule.id, title=rule.title, severity=rule.severity,
        confidence=confidence.initial(conf, sources=len(sources), words_only=_words_only(matched)),
        count=count, first_seen=first, last_seen=last,
        summary=templates.render(message, context), remedy=[r for s in remedy if (r := templates.render(s, context).strip())],   # a step may apply only sometimes
        means=rule.means, evidence=_pick_evidence(matched),
        references=list(rule.references) + (list(cause.references) if cause is not None else []),
        explains=list(rule.explains) + [r for r in (cause.explains if cause is not None else ()) if r not in rule.explains],
        sources=sources, cause=cause.name if cause is not None else None,
        matched=set(zip(matched["source"].to_list(), matched["line"].to_list(), strict=True)),
        chains={(s, g) for s, g in zip(matched["source"].to_list(), matched["exc_group"].to_list(), strict=True) if g is not None},
    )


def _words_only(matched: pl.DataFrame) -> bool:
    """Whether only words matched: every event a line that nothing parsed (a paste's prose, an
    unlabelled printed line), with no status, exception, level or format of its own."""
    structured = (pl.col("kind").is_in(["http", "exception", "gpu", "fact", "trace"])
                  | pl.col("level").is_not_null() | (pl.col("origin") != "generic"))
    return matched.height > 0 and not matched.select(structured.fill_null(False).any()).item()


def _message_values(matched: pl.DataFrame, context: dict[str, object]) -> None:
    """What a harvested upstream message gives where the rule's own patterns gave nothing: the
    values its placeholders took, and the message as the `cause` a rule's text quotes."""
    if "msg_id" not in matched.columns:
        return
    row = matched.filter(pl.col("msg_id").is_not_null() & (pl.col("msg_id") != "none")).head(1)
    if row.height == 0:
        return
    for part in (row["msg_values"][0] or "").split("; "):
        name, _, value = part.partition("=")
        if name.isidentifier() and value:
            context.setdefault(name, value)
            alias = VALUE_NAMES.get(row["msg_id"][0], {}).get(name)
            if alias is not None:
                context.setdefault(alias, value)
    if "msg_template" in row.columns and row["msg_template"][0]:
        context.setdefault("msg_project", upstream.project_of(row["msg_template"][0]))
    said = (row["message"][0] or row["text"][0] or "").strip()
    if said:
        context.setdefault("cause", said[:300])


def _pick_evidence(matched: pl.DataFrame) -> list[Evidence]:
    """A few lines that show the problem: one per source first, then by time."""
    rows = matched.select("source", "line", "text", "ts", "ts_text").rows()
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
    return [Evidence(source, line, (text or "").strip(), ts, stamp) for source, line, text, ts, stamp in picked]
