"""A person's words that the software works in spite of the error they paste.

An issue about a noisy log ("causes errors like … to always be emitted at startup. But the plugin is
working fine in spite of this") quotes a real error line, and a rule reads it rightly: Ollama did
refuse the connection. Yet no call of theirs failed, and a report that states the refusal as the
root cause answers a question nobody asked. When the input that holds a finding's evidence also says
that it works in spite of the error, that the error is harmless, cosmetic or noise, or (in Chinese)
that it does not affect use, the finding is kept as a *possible* cause, at most `MAX_CONFIDENCE`,
with the words that made it so and where they are.

A sentence that tells what the software should do instead ("instead of returning an error for invalid
model names it answers with the loaded model", "it should return a 404") describes the error it wants,
not one it met: a finding whose every line of evidence is such a sentence is dropped (`WANTED_ERROR`).

The words are found vectorised, in the first `MAX_ROWS` rows of the inputs the findings cite.
"""

from __future__ import annotations

import re
from dataclasses import replace

import polars as pl

from emblens.events import redact
from emblens.findings.named import short

MAX_CONFIDENCE = 0.5
MAX_ROWS = 20_000
MAX_QUOTE = 160

_THIS = r"(?:this|these|that|those|it|them|the (?:errors?|warnings?|messages?|logs?|lines?))"
WORKS_ANYWAY = (
    # "is working fine in spite of this", "works normally despite these errors"
    r"(?i)\b(?:works?|working|runs?|running|functions?|functioning)\s+(?:just )?(?:fine|normally|correctly|perfectly"
    r"|as expected|ok|okay|well)\s*,?\s*(?:in spite of|despite|regardless of|even with)\s+" + _THIS + r"\b"
    # "the errors are harmless", "this warning is just noise", "the message seems to be a false positive"
    r"|\b(?:errors?|warnings?|messages?|log lines?|logs?)\s+(?:is|are|seems?|seem to be|appears? to be|looks?)\s+"
    r"(?:harmless|cosmetic|benign|spurious|just noise|noise|a false positive|false positives)\b"
    # "despite these errors, everything works"
    r"|\b(?:despite|in spite of) (?:this|these|the) (?:errors?|messages?|logs?|warnings?),? (?:everything|it|the "
    r"(?:app|plugin|server|model|service)) (?:still )?(?:works?|is working|runs?|is running)\b"
    # "报错但不影响使用" (an error, but it does not affect use)
    r"|不影响(?:使用|功能|正常使用|运行)"
)


# the error a sentence asks for: "instead of returning an error", "should raise an exception", "should return a 404"
WANTED_ERROR = (r"(?i)\b(?:instead of|rather than)\s+(?:returning|raising|throwing|giving|showing|reporting)\s+(?:an?\s+)?"
                r"(?:\w+\s+)?(?:error|exception|4\d\d)\b|\bshould\s+(?:return|raise|throw|give|show|report)\s+(?:an?\s+)?"
                r"(?:\w+\s+)?(?:error|exception|4\d\d)\b")
_WANTED = re.compile(WANTED_ERROR)


def calmed(findings: list, events: pl.DataFrame) -> list:
    """The findings, those at error level whose inputs say the software works in spite of the error
    made possible causes (copies; the others as they are)."""
    findings = [f for f in findings if not (f.evidence and all(_WANTED.search(e.text or "") for e in f.evidence))]
    sources = {s for f in findings if f.severity == "error" and f.cause != "possible" for s in (f.sources or ())}
    if not sources or events.height == 0:
        return findings
    said = (events.filter(pl.col("source").is_in(list(sources)) & pl.col("text").is_not_null())
            .head(MAX_ROWS).select("source", "line", pl.col("text").str.extract(f"({WORKS_ANYWAY})", 1).alias("words"))
            .drop_nulls("words"))
    if said.height == 0:
        return findings
    first = {}
    for source, line, words in said.iter_rows():
        first.setdefault(source, (line, words))
    out = []
    for f in findings:
        where = next((s for s in (f.sources or ()) if s in first), None)
        if f.severity != "error" or f.cause == "possible" or where is None:
            out.append(f)
            continue
        line, words = first[where]
        quote = redact.printable((words or "").strip()[:MAX_QUOTE])
        out.append(replace(
            f, cause="possible", confidence=min(f.confidence, MAX_CONFIDENCE),
            summary=(f"Possibly: {f.summary.rstrip()} The same input says the software works in spite of it "
                     f"(\"{quote}\", {short(where)}:{line}): a noisy log rather than a failed call, unless a call "
                     "did fail.")))
    return out
