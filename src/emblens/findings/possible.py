"""Never silent: when no rule names an error-level cause but the evidence holds error-like lines,
the harvested message nearest to each of them names a *possible* cause.

A line is compared with the upstream messages (`emblens.knowledge.upstream`) as Drain compares a
line with its templates: the values a program fills in (numbers, quoted strings, paths, ids) are
set aside and the rest are words; a message is near when most of its fixed words are in the line.
A message that is `none` (not a failure) wins like any other, and then the line is left alone: it
is known, and it is not a cause. The best match becomes a finding of the message's id, with a
confidence that says how near it was (never above `MAX_CONFIDENCE`), a summary that names the
message it matched, and the id's remedy.

A line holding a message exactly (`msg_id`) whose id no rule reads is a possible cause too.
"""

from __future__ import annotations

import polars as pl

from emblens.findings import confidence as conf
from emblens.findings.unexplained import without
from emblens.knowledge.upstream import Messages, Near

MAX_LINES = 2_000        # error-like lines compared (distinct texts, the first ones)
MAX_POSSIBLE = 2         # possible causes reported
MAX_CONFIDENCE = 0.6

# error-like: what a person would read as a failure, in any kind of line
_ERRORISH = (r"(?i)\b(?:error|errno|exception|failed|failure|fatal|refused|denied|forbidden|unauthori[sz]ed|"
             r"timed? ?out|timeout|cannot|can't|could not|couldn't|unable|invalid|not found|no such|"
             r"not supported|unsupported|exceed(?:s|ed)?|too (?:large|long|many|old)|out of memory|oom|"
             r"traceback|panic|killed|crash(?:ed)?|abort(?:ed)?|unavailable|bad gateway|not allowed|"
             r"missing|mismatch|insufficient)\b|错误|失败|异常|超时|拒绝|"
             # a status said as one: `HTTP/1.1 502`, `status=404`, `Error code: 401`, `状态码: 403`, `| 400 |`
             r"(?i:HTTP/\d(?:\.\d)?|status(?:[ _]?code)?|code|状态码)[\s=:\"]{1,3}[45]\d\d\b|\|\s*[45]\d\d\s*\|")


def error_like(events: pl.DataFrame, covered: set) -> pl.DataFrame:
    """The lines a person would read as errors, whatever their kind, less those a finding matched;
    distinct texts, the first `MAX_LINES`."""
    if events.height == 0:
        return events
    text = pl.coalesce(pl.col("message"), pl.col("text")).fill_null("")
    # a line its program labelled INFO or WARNING is not an error by its words alone; one with no
    # level (a paste's prose, a printed line) is
    unlabelled = pl.col("level").is_null() | ~pl.col("level").is_in(["DEBUG", "INFO", "WARNING", "NOTICE", "TRACE"])
    is_error = (
        pl.col("level").is_in(["ERROR", "CRITICAL", "FATAL"]).fill_null(False)
        | (pl.col("kind") == "exception")
        | ((pl.col("kind") == "http") & (pl.col("http_status") >= 400)).fill_null(False)
        | (pl.col("kind").is_in(["unparsed", "log"]) & unlabelled & text.str.contains(_ERRORISH)).fill_null(False)
        | (pl.col("msg_id").is_not_null() & (pl.col("msg_id") != "none"))
    ) & (pl.col("kind") != "fact") & (pl.col("msg_id").is_null() | (pl.col("msg_id") != "none"))   # known, and no failure
    rows = without(events.filter(is_error).with_columns(text.alias("_text")), covered)
    return rows.unique("_text", keep="first", maintain_order=True).head(MAX_LINES)


def possible(events: pl.DataFrame, ruleset, facts, findings: list) -> list:
    """Possible causes (findings of low confidence) when no finding is an error; else []."""
    from emblens.rules.engine import _finding

    messages: Messages | None = getattr(ruleset, "messages", None)
    if not messages or events.height == 0 or any(f.severity == "error" for f in findings):
        return []
    if "msg_id" not in events.columns:
        return []
    rules = {}
    for r in ruleset.rules:
        rules.setdefault(r.id, r)
    covered = set().union(*(f.matched for f in findings)) if findings else set()
    lines = error_like(events, covered)
    if lines.height == 0:
        return []
    index = messages.nearest
    by_text = {m.label: m for m in messages.messages}
    best: dict[str, tuple[Near, dict]] = {}
    for row in lines.iter_rows(named=True):
        exact = by_text.get(row.get("msg_template") or "")
        near = Near(exact, 1.0, True) if exact is not None else index.near(row["_text"])
        if near is None or near.message.id == "none" or near.message.id not in rules:
            continue
        have = best.get(near.message.id)
        if have is None or near.cover > have[0].cover:
            best[near.message.id] = (near, row)
    out = []
    values = facts.as_values()
    for id_, (near, row) in sorted(best.items(), key=lambda kv: -kv[1][0].cover)[:MAX_POSSIBLE]:
        rule = rules[id_]
        matched = lines.filter((pl.col("source") == row["source"]) & (pl.col("line") == row["line"])).drop("_text")
        f = _finding(rule, None, matched, values)
        how = "holds" if near.exact else f"is near ({near.cover:.0%} of its words)"
        f.summary = (f"Possibly: {rule.title.rstrip('.')}. No rule matched this line, but it {how} "
                     f"{near.message.label}, which {near.message.project} writes for this failure "
                     f"({near.message.source}, {near.message.versions}).")
        f.confidence = round(min(MAX_CONFIDENCE, conf.initial(0.3 + 0.3 * near.cover, sources=1)), 2)
        f.cause = "possible"
        out.append(f)
    return out
