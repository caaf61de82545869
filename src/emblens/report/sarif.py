"""SARIF 2.1.0 for code scanning (`emblens analyze --format sarif`, `-o x.sarif`): one result per
finding, at its first evidence line, with the rule's title, meaning and remedy as rule metadata. It
says what the JSON report says (the same masked text, sources, times), and no text in it can act
in a terminal: control, invisible and bidi characters are shown as `\\x1b`, `\\u202e` (`printable`).

What GitHub's code scanning reads, and what it asks for, follows "SARIF support for code scanning"
(github/docs, content/code-security/code-scanning/integrating-with-code-scanning/
sarif-support-for-code-scanning.md at 058fa63bfe93d4d06889d0d18c601d6c56b66c56):

- required there: `$schema`, `version`, `runs[].tool.driver.name` and `.rules[]`, `results[]`;
  per rule `id`, `shortDescription.text`, `fullDescription.text` (each at most 1,024
  characters), `help.text`; per result `message.text`, `locations[]` (only the first is used, so a
  finding's further evidence goes to `relatedLocations`), `partialFingerprints`, and
  `artifactLocation.uri` with `region.startLine`. Required values may not be empty strings.
- `partialFingerprints`: code scanning "only uses the `primaryLocationLineHash`". The upload
  action computes one from the file in the checkout when it is missing, which a log inside a
  bundle is not, and a log line changes from run to run with its times and ids. So emblens sets it
  itself: a hash of the rule, the evidence's source (as the JSON report names it) and the template
  of the evidence line (numbers, strings, hex and paths set aside, as the unexplained errors are
  grouped), so that the same failure in the next run is the same alert.
- `properties.tags` (filter), `properties.problem.severity` (error, warning, recommendation: for
  results that are not security results); `security-severity` is not set, since that would make
  these security results. `precision` is not set either: a rule has a confidence per finding,
  not a measured false-positive rate.
- the region is a whole line (`startLine` only; SARIF reads a region without columns as the
  whole line, and the docs' own example has such a region), with the line's masked text as its
  snippet.

Locations. `artifactLocation.uri` is the source as emblens read it (the JSON report's `base` +
`source`), URI-escaped (RFC 3986, forward slashes). A path given relative is relative to where
emblens ran (`uriBaseId` `%SRCROOT%`, as GitHub's examples name it; its absolute URI is left out,
as SARIF 3.14.14 allows, so the file does not depend on the machine); code scanning reads a
relative path as relative to the repository root, which it is when emblens runs in the checkout.
An absolute path becomes a `file:` URI. A member of an archive (`bundle.zip:logs/x.log`) is a
nested artifact, as SARIF 3.24 and 3.4.3 describe one: `run.artifacts` holds the archive and the
member with `parentIndex` pointing at the archive, the member's `uri` is its name in the archive
(`logs/x.log`, with no `uriBaseId`), and the result's location carries the artifact's `index`. An
archive is recognised by its name (.zip, .tar, .tar.gz, .tgz, .gz, or stdin); a label that does
not split that way is used whole, its `:` escaped.

Nothing is hidden: `invocations[0]` lists each skipped input as a tool execution notification
(with its reason) and the run's notices as configuration notifications; the masked count is in
the run's properties.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from types import MappingProxyType
from urllib.parse import quote

import polars as pl

from emblens._version import __version__
from emblens.events.redact import printable
from emblens.findings.unexplained import _template
from emblens.report.jsonreport import _SHOWN, _escape
from emblens.report.markdown import safe
from emblens.report.view import _iso, common_prefix, relative

SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
SRCROOT = "%SRCROOT%"
LEVELS = MappingProxyType({"error": "error", "warning": "warning", "info": "note"})
PROBLEM_SEVERITY = MappingProxyType({"error": "error", "warning": "warning", "info": "recommendation"})
MAX_DESCRIPTION = 1024          # GitHub's limit on shortDescription and fullDescription
_ARCHIVE = re.compile(r"(?i)(?:\.zip|\.tar|\.tar\.gz|\.tgz|\.gz|<stdin>)$")
_SEMVER = re.compile(r"\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?")


def to_sarif(analysis) -> str:
    """The analysis as a SARIF 2.1.0 log (JSON text, indent 2, ending in a newline)."""
    log = {"$schema": SCHEMA, "version": "2.1.0", "runs": [_run(analysis)]}
    # every text went through `printable`; this also escapes what a key or a value missed
    return _SHOWN.sub(_escape, json.dumps(log, indent=2, ensure_ascii=False)) + "\n"


def _run(analysis) -> dict:
    base = common_prefix(analysis)
    artifacts = _Artifacts()
    for i in analysis.inputs:
        extra = {"kind": i.kind, "events": i.events, "unparsed": i.unparsed}
        if i.note:
            extra["note"] = printable(i.note)
        artifacts.add(i.source, roles=["analysisTarget"], properties=extra)
    rules: dict[str, int] = {}
    descriptors: list[dict] = []
    for f in analysis.findings:
        if f.rule not in rules:
            rules[f.rule] = len(descriptors)
            descriptors.append(_rule(f))
    results = [_result(f, rules[f.rule], artifacts, base) for f in analysis.findings]
    skipped = [_notification("warning", f"Skipped {printable(s.label)}: {printable(s.reason)}",
                             artifacts.location(s.label.removesuffix(":…"))) for s in analysis.skipped]
    notices = [_notification("note", printable(n)) for n in getattr(analysis, "notices", None) or []]
    invocation: dict = {"executionSuccessful": True}
    if skipped:
        invocation["toolExecutionNotifications"] = skipped
    if notices:
        invocation["toolConfigurationNotifications"] = notices
    driver = {"name": "emblens", "version": __version__}
    if _SEMVER.fullmatch(__version__):
        driver["semanticVersion"] = __version__
    driver["rules"] = descriptors
    run: dict = {"tool": {"driver": driver}, "invocations": [invocation]}
    if artifacts.used_base:
        run["originalUriBaseIds"] = {SRCROOT: {"description": {
            "text": "The folder emblens ran in: the paths of the inputs given relative to it are relative to it."}}}
    run["artifacts"] = artifacts.items
    run["results"] = results
    masked = dict(getattr(analysis, "masked", {}) or {})
    run["properties"] = {"masked": {printable(k): v for k, v in masked.items()}}
    return run


def _rule(f) -> dict:
    """The reportingDescriptor of a finding's rule."""
    title = _capped(printable(f.title))
    means = _capped(printable(" ".join(f.means.split()))) or title
    steps = [printable(s) for s in f.remedy]
    references = [printable(r) for r in f.references]
    text = markdown = "\n".join(f"{n}. {s}" for n, s in enumerate(steps, 1)) or means
    if references:
        text += "\n\nReferences:\n" + "\n".join(references)
        markdown += "\n\nReferences:\n\n" + "\n".join(f"- <{r}>" if _url(r) else f"- {r}" for r in references)
    area = f.rule.split(".", 1)[0]
    return {
        "id": f.rule,
        "name": "".join(w.capitalize() for w in re.split(r"[._-]+", f.rule) if w)[:255],
        "shortDescription": {"text": title},
        "fullDescription": {"text": means},
        "help": {"text": text, "markdown": _markdown(markdown)},
        "defaultConfiguration": {"level": LEVELS.get(f.severity, "warning")},
        "properties": {"tags": [area], "problem.severity": PROBLEM_SEVERITY.get(f.severity, "warning")},
    }


def _result(f, rule_index: int, artifacts: _Artifacts, base: str) -> dict:
    summary = printable(f.summary)
    if f.role == "root_cause":
        text = f"Root cause: {summary}"
    elif f.role == "symptom" and f.explained_by:
        text = f"Symptom, explained by {printable(f.explained_by)}: {summary}"
    else:
        text = summary
    evidence = [e for e in f.evidence if e.line >= 1]
    result: dict = {"ruleId": f.rule, "ruleIndex": rule_index, "level": LEVELS.get(f.severity, "warning"),
                    "message": {"text": text}}
    if evidence:
        result["locations"] = [_evidence_location(evidence[0], artifacts)]
        if evidence[1:]:
            result["relatedLocations"] = [{"id": n, **_evidence_location(e, artifacts)}
                                          for n, e in enumerate(evidence[1:], 1)]
    elif f.sources:
        result["locations"] = [artifacts.location(f.sources[0])]
    first = evidence[0] if evidence else None
    result["partialFingerprints"] = {"primaryLocationLineHash": fingerprint(
        f.rule, relative(first.source, base) if first else "", first.text if first else "")}
    props: dict = {"confidence": f.confidence, "role": f.role, "count": f.count,
                   "first_seen": _iso(f.first_seen), "last_seen": _iso(f.last_seen),
                   "explained_by": f.explained_by}
    if f.cause:
        props["cause"] = f.cause
    if getattr(f, "requests", None) and getattr(f, "requests_seen", None):
        props["requests"] = {"matched": f.requests, "seen": f.requests_seen}
    result["properties"] = props
    return result


def _evidence_location(e, artifacts: _Artifacts) -> dict:
    where = artifacts.location(e.source)
    where["physicalLocation"]["region"] = {"startLine": e.line, "snippet": {"text": printable(e.text)}}
    return where


def fingerprint(rule: str, source: str, text: str) -> str:
    """A finding's identity across runs: its rule, its first evidence's source, and that line with
    numbers, quoted strings, hex and paths set aside (a pid or a time differs from run to run)."""
    template = pl.select(_template(pl.lit(text, dtype=pl.String))).item() or ""
    return hashlib.sha256("\0".join((rule, source, template)).encode()).hexdigest()[:32]


def _notification(level: str, text: str, location: dict | None = None) -> dict:
    out: dict = {"level": level, "message": {"text": text}}
    if location is not None:
        out["locations"] = [location]
    return out


class _Artifacts:
    """`run.artifacts`: each input, and each archive that holds one (a member's parent)."""

    def __init__(self) -> None:
        self.items: list[dict] = []
        self._index: dict[tuple[str, ...], int] = {}
        self.used_base = False

    def add(self, label: str, *, roles: list[str] | None = None, properties: dict | None = None) -> int:
        parts = split(label)
        parent = None
        for depth in range(1, len(parts) + 1):
            key = tuple(parts[:depth])
            if key not in self._index:
                self._index[key] = len(self.items)
                item: dict = {"location": self._uri(parts[depth - 1], top=depth == 1)}
                if parent is not None:
                    item["parentIndex"] = parent
                self.items.append(item)
            parent = self._index[key]
        item = self.items[parent]
        if roles:
            item["roles"] = roles
        if properties:
            item["properties"] = properties
        return parent

    def location(self, label: str) -> dict:
        """A location object for `label` (its artifact added when new)."""
        parts = split(label)
        index = self._index.get(tuple(parts))
        if index is None:
            index = self.add(label)
        return {"physicalLocation": {"artifactLocation": {**self._uri(parts[-1], top=len(parts) == 1), "index": index}}}

    def _uri(self, path: str, *, top: bool) -> dict:
        if top and os.path.isabs(path):
            return {"uri": Path(path).as_uri()}
        uri = quote(printable(path).replace(os.sep, "/"), safe="/")
        if uri.startswith("//"):          # would read as a host name
            uri = "/" + uri[1:].replace("/", "%2F", 1)
        if not top:
            return {"uri": uri}
        self.used_base = True
        return {"uri": uri, "uriBaseId": SRCROOT}


def split(label: str) -> list[str]:
    """A source label as its archive, the archives nested in it, and the member:
    'b.zip:inner.tar.gz:logs/x.log' -> ['b.zip', 'inner.tar.gz', 'logs/x.log'].

    >>> split("samples/model-name-mismatch.zip:model-name-mismatch/vllm.log")
    ['samples/model-name-mismatch.zip', 'model-name-mismatch/vllm.log']
    >>> split("logs/12:30.log"), split("<stdin>:x.log")
    (['logs/12:30.log'], ['<stdin>', 'x.log'])
    """
    parts, start = [], 0
    for m in re.finditer(":", label):
        if m.start() > start and m.end() < len(label) and _ARCHIVE.search(label, start, m.start()):
            parts.append(label[start:m.start()])
            start = m.end()
    parts.append(label[start:])
    return parts


def _capped(text: str) -> str:
    return text if len(text) <= MAX_DESCRIPTION else text[: MAX_DESCRIPTION - 1] + "…"


def _url(text: str) -> bool:
    return re.fullmatch(r"https?://[^\s<>]+", text) is not None


def _markdown(text: str) -> str:
    """Markdown that renders no HTML, link or image from a rule's or an input's text, except the
    references' own autolinks."""
    out = []
    for line in text.split("\n"):
        m = re.fullmatch(r"- <(https?://[^\s<>]+)>", line)
        out.append(line if m else safe(line))
    return "\n".join(out)
