"""The fleet report, built from the fleet's Parquet tables (`tables`), never from event tables:
root causes ranked by the replicas they affect and the requests that failed, each with its
replicas, when it was first seen and one line of evidence; the replicas with no finding but
error lines (grouped by template); the replicas that could not be analysed and what was skipped;
and, in HTML, a heat map of failing requests by replica and time.

`summary(tables)` gives the report as a dict (the JSON report); `render(doc, fmt)` the text,
Markdown and HTML forms of it. Every string from the inputs is masked and made printable here
again, whatever the tables hold.
"""

from __future__ import annotations

import html
import json
import textwrap
from datetime import datetime
from pathlib import Path

import polars as pl

from emblens._version import __version__
from emblens.events.redact import mask_text, printable
from emblens.rules.severity import SEVERITIES

SCHEMA = "emblens-fleet/1"
SHOWN = 20            # replicas named per cause; the rest counted
LISTED = 100          # failed replicas, skipped members and quiet templates listed; the rest counted
HEAT_ROWS = 60        # replicas in the heat map (those with the most failing requests)
HEAT_COLUMNS = 48     # time buckets in it


def _clean(value, limit: int = 400):
    """Masked, printable, and cut to `limit` characters (an ellipsis says where)."""
    if value is None:
        return None
    text = printable(mask_text(str(value)))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _iso(ts) -> str | None:
    return ts.isoformat(timespec="seconds") + "Z" if isinstance(ts, datetime) else None


def summary(paths: dict[str, Path], *, seconds: float | None = None, engine: str | None = None) -> dict:
    """The fleet report as a dict (its JSON form): `paths` are the tables `Tables.close` wrote."""
    replicas = pl.scan_parquet(paths["replicas"])
    findings = pl.scan_parquet(paths["findings"])
    counts = replicas.select(
        pl.len().alias("total"), (pl.col("status") == "ok").sum().alias("analysed"),
        (pl.col("status") != "ok").sum().alias("failed"), pl.col("bytes").sum().alias("bytes"),
        (pl.col("findings") > 0).sum().alias("with_findings"), pl.col("requests").sum().alias("requests"),
        pl.col("failed_requests").sum().alias("failed_requests")).collect().row(0, named=True)
    doc = {"schema": SCHEMA, "version": __version__, "engine": engine, "seconds": seconds,
           "replicas": {k: int(v or 0) for k, v in counts.items()}}
    doc["causes"] = _causes(findings)
    doc["quiet"] = _quiet(pl.scan_parquet(paths["unexplained"]), replicas)
    failed = replicas.filter(pl.col("status") != "ok").sort("replica").select("replica", "status", "reason").collect()
    doc["failed"] = [{"replica": _clean(r, 200), "status": s, "reason": _clean(why)} for r, s, why in failed.head(LISTED).iter_rows()]
    doc["failed_more"] = max(0, failed.height - LISTED)
    skipped = (replicas.select("replica", "skipped").explode("skipped").drop_nulls("skipped").sort("replica").collect())
    doc["skipped"] = [{"replica": _clean(r, 200), "what": _clean(w)} for r, w in skipped.head(LISTED).iter_rows()]
    doc["skipped_more"] = max(0, skipped.height - LISTED)
    doc["heat"] = _heat(pl.scan_parquet(paths["failing"]))
    return doc


def _causes(findings: pl.LazyFrame) -> list[dict]:
    """Findings that are not symptoms of another, by rule: replicas affected, requests failed, the
    first replicas by name, and the earliest line of evidence (one pass over the table)."""
    rank = {s: k for k, s in enumerate(SEVERITIES)}
    evidence = pl.struct("replica", "evidence_source", "evidence_line", "evidence_text", "summary")
    has_text = pl.col("evidence_text").is_not_null()
    by_rule = (findings.filter(pl.col("role") != "symptom").group_by("rule").agg(
        pl.col("replica").n_unique().alias("replicas"), pl.col("requests_matched").sum().alias("requests_failed"),
        pl.col("count").sum().alias("count"), pl.col("first_seen").min().alias("first_seen"),
        pl.col("last_seen").max().alias("last_seen"), pl.col("title").first().alias("title"),
        pl.col("severity").first().alias("severity"), (pl.col("role") == "root_cause").sum().alias("led"),
        pl.col("replica").unique().sort().head(SHOWN).alias("names"),
        evidence.filter(has_text).sort_by(pl.col("first_seen").filter(has_text), pl.col("replica").filter(has_text),
                                          nulls_last=True).first().alias("example"))
        .collect())
    out = []
    for row in by_rule.iter_rows(named=True):
        ex = row["example"]
        out.append({
            "rule": row["rule"], "title": _clean(row["title"]), "severity": row["severity"], "replicas": int(row["replicas"]),
            "led": int(row["led"]), "requests_failed": int(row["requests_failed"] or 0), "count": int(row["count"] or 0),
            "first_seen": _iso(row["first_seen"]), "last_seen": _iso(row["last_seen"]),
            "replica_names": [_clean(n, 200) for n in row["names"]], "more": max(0, int(row["replicas"]) - SHOWN),
            "example": None if ex is None or ex.get("replica") is None else {
                "replica": _clean(ex["replica"], 200), "source": _clean(ex["evidence_source"], 300),
                "line": ex["evidence_line"], "text": _clean(ex["evidence_text"], 500), "summary": _clean(ex["summary"], 600)},
        })
    out.sort(key=lambda c: (-c["replicas"], -c["requests_failed"], rank.get(c["severity"], 9), c["rule"]))
    return out


def _quiet(unexplained: pl.LazyFrame, replicas: pl.LazyFrame) -> list[dict]:
    """Error lines of replicas with no finding, grouped by template."""
    none = replicas.filter((pl.col("status") == "ok") & (pl.col("findings") == 0)).select("replica")
    rows = unexplained.join(none, on="replica", how="semi")
    groups = (rows.group_by("template").agg(
        pl.col("replica").n_unique().alias("replicas"), pl.col("count").sum().alias("count"),
        pl.col("replica").unique().sort().head(SHOWN).alias("names"),
        pl.col("replica").first().alias("ex_replica"), pl.col("example_source").first().alias("ex_source"),
        pl.col("example_line").first().alias("ex_line"), pl.col("example_text").first().alias("ex_text"))
        .sort("replicas", "count", "template", descending=[True, True, False]).collect())
    out = []
    for g in groups.head(LISTED).iter_rows(named=True):
        out.append({"template": _clean(g["template"], 300), "replicas": int(g["replicas"]), "count": int(g["count"]),
                    "replica_names": [_clean(n, 200) for n in g["names"]], "more": max(0, int(g["replicas"]) - SHOWN),
                    "example": {"replica": _clean(g["ex_replica"], 200), "source": _clean(g["ex_source"], 300),
                                "line": g["ex_line"], "text": _clean(g["ex_text"], 500)}})
    return out


def _heat(failing: pl.LazyFrame) -> dict:
    """Failing requests by replica and time bucket: the replicas with the most, the fleet's time
    span cut into at most HEAT_COLUMNS buckets."""
    span = failing.select(pl.col("minute").min().alias("a"), pl.col("minute").max().alias("b"),
                          pl.col("requests").sum().alias("n")).collect().row(0, named=True)
    if not span["n"]:
        return {"start": None, "bucket_minutes": None, "columns": 0, "rows": [], "more": 0}
    start, end = span["a"], span["b"]
    minutes = max(1, int((end - start).total_seconds() // 60) + 1)
    step = max(1, -(-minutes // HEAT_COLUMNS))
    columns = -(-minutes // step)
    top = (failing.group_by("replica").agg(pl.col("requests").sum().alias("n"))
           .sort("n", "replica", descending=[True, False]).collect())
    shown = top.head(HEAT_ROWS)
    cells = (failing.join(shown.lazy().select("replica"), on="replica", how="semi")
             .with_columns(((pl.col("minute") - pl.lit(start)).dt.total_minutes() // step).alias("col"))
             .group_by("replica", "col").agg(pl.col("requests").sum()).collect())
    grid = {r: [0] * columns for r in shown["replica"].to_list()}
    for r, c, n in cells.iter_rows():
        grid[r][min(int(c), columns - 1)] += int(n)
    return {"start": _iso(start), "bucket_minutes": step, "columns": columns,
            "rows": [{"replica": _clean(r, 200), "total": int(n), "cells": grid[r]} for r, n in shown.iter_rows()],
            "more": max(0, top.height - HEAT_ROWS)}


# -- rendering ------------------------------------------------------------------------------------------
def render(doc: dict, fmt: str, width: int = 80) -> str:
    if fmt == "json":
        return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
    if fmt == "markdown":
        return _markdown(doc)
    if fmt == "html":
        return _html(doc)
    return _text(doc, width)


def _names(c: dict) -> str:
    names = ", ".join(c["replica_names"])
    return names + (f" and {c['more']:,} more" if c["more"] else "")


def _head(doc: dict) -> str:
    r = doc["replicas"]
    line = (f"{r['total']:,} replica(s): {r['analysed']:,} analysed, {r['with_findings']:,} with findings, "
            f"{r['failed']:,} not analysed; {r['bytes'] / 2**20:,.1f} MiB read")
    if r["requests"]:
        line += f"; {r['requests']:,} requests, {r['failed_requests']:,} failed"
    if doc.get("interrupted"):
        line += f" ({doc['interrupted']})"
    return line


def _text(doc: dict, width: int) -> str:
    def wrap(text: str, first: str, rest: str | None = None) -> str:
        return textwrap.fill(text, width, initial_indent=first, subsequent_indent=rest if rest is not None else first,
                             break_on_hyphens=False)

    out = [f"emblens {doc['version']} fleet: " + _head(doc), ""]
    if not doc["causes"]:
        out.append("No known failure found on any replica.")
    for k, c in enumerate(doc["causes"], 1):
        out.append(f"{k}. {c['rule']} ({c['severity']}) on {c['replicas']:,} replica(s)"
                   + (f", {c['requests_failed']:,} failed request(s)" if c["requests_failed"] else "")
                   + (f", first seen {c['first_seen']}" if c["first_seen"] else ""))
        out.append(wrap(c["title"] or "", "   "))
        out.append(wrap("Replicas: " + _names(c), "   "))
        if c["example"]:
            e = c["example"]
            out.append(wrap(f"For example {e['replica']}: {e['source']}:{e['line']}", "   "))
            out.append(wrap(e["text"] or "", "     "))
        out.append("")
    if doc["quiet"]:
        out.append("Replicas with no finding but error lines, by template:")
        for q in doc["quiet"]:
            out.append(wrap(f"{q['template']}  ({q['count']:,} line(s) on {q['replicas']:,} replica(s): "
                            f"{_names(q)})", "  - ", "    "))
        out.append("")
    for title, items, more in (("Not analysed:", [f"{f['replica']}: {f['status']}: {f['reason']}" for f in doc["failed"]],
                                doc["failed_more"]),
                               ("Skipped inside replicas:", [f"{s['replica']}: {s['what']}" for s in doc["skipped"]],
                                doc["skipped_more"])):
        if items:
            out += [title, *(wrap(item, "  - ", "    ") for item in items)]
            out += [f"  and {more:,} more"] if more else []
            out.append("")
    return "\n".join(out).rstrip() + "\n"


def _md(s) -> str:
    return str(s).replace("|", "\\|").replace("\n", " ") if s is not None else ""


def _markdown(doc: dict) -> str:
    out = ["# emblens fleet report", "", _head(doc) + ".", ""]
    if doc["causes"]:
        out += ["## Root causes", "", "| # | cause | severity | replicas | failed requests | first seen |", "|---:|---|---|---:|---:|---|"]
        out += [f"| {k} | `{c['rule']}` {_md(c['title'])} | {c['severity']} | {c['replicas']:,} | {c['requests_failed']:,} | "
                f"{c['first_seen'] or ''} |" for k, c in enumerate(doc["causes"], 1)]
        out.append("")
        for c in doc["causes"]:
            out += [f"### `{c['rule']}`", "", f"Replicas: {_md(_names(c))}", ""]
            if c["example"]:
                e = c["example"]
                out += [f"For example, {_md(e['replica'])}, `{_md(e['source'])}:{e['line']}`:", "", "```",
                        (e["text"] or "").replace("```", "'''"), "```", ""]
    else:
        out += ["No known failure found on any replica.", ""]
    if doc["quiet"]:
        out += ["## Replicas with no finding but error lines", "", "| template | lines | replicas |", "|---|---:|---|"]
        out += [f"| `{_md(q['template'])}` | {q['count']:,} | {_md(_names(q))} |" for q in doc["quiet"]]
        out.append("")
    if doc["failed"] or doc["skipped"]:
        out += ["## Not analysed, or skipped", ""]
        out += [f"- {_md(f['replica'])}: {f['status']}: {_md(f['reason'])}" for f in doc["failed"]]
        out += [f"- {_md(s['replica'])}: {_md(s['what'])}" for s in doc["skipped"]]
        more = doc["failed_more"] + doc["skipped_more"]
        out += [f"- and {more:,} more"] if more else []
        out.append("")
    return "\n".join(out)


def _html(doc: dict) -> str:
    e = html.escape
    parts = [f"<h1>emblens fleet report</h1><p>{e(_head(doc))}</p>"]
    if doc["causes"]:
        parts.append("<h2>Root causes</h2><table><tr><th>#</th><th>cause</th><th>severity</th><th>replicas</th>"
                     "<th>failed requests</th><th>first seen</th><th>replicas affected</th><th>example</th></tr>")
        for k, c in enumerate(doc["causes"], 1):
            ex = c["example"]
            example = (f"<code>{e(ex['replica'] or '')}: {e(ex['source'] or '')}:{ex['line']}</code><pre>{e(ex['text'] or '')}</pre>"
                       if ex else "")
            parts.append(f"<tr><td>{k}</td><td><b>{e(c['rule'])}</b><br>{e(c['title'] or '')}</td><td class='sev-{e(c['severity'])}'>"
                         f"{e(c['severity'])}</td><td class=n>{c['replicas']:,}</td><td class=n>{c['requests_failed']:,}</td>"
                         f"<td>{e(c['first_seen'] or '')}</td><td>{e(_names(c))}</td><td>{example}</td></tr>")
        parts.append("</table>")
    else:
        parts.append("<p>No known failure found on any replica.</p>")
    heat = doc["heat"]
    if heat["rows"]:
        peak = max(max(r["cells"]) for r in heat["rows"]) or 1
        parts.append(f"<h2>Failing requests by replica and time</h2><p>From {e(heat['start'])}, one column per "
                     f"{heat['bucket_minutes']} minute(s); darker is more.</p><table class=heat>")
        span = heat["bucket_minutes"] * heat["columns"]
        parts.append(f"<tr><th></th><td class=axis colspan={heat['columns']}>{e(heat['start'] or '')}"
                     f"<span style='float:right'>+{span:,} min</span></td><th>total</th></tr>")
        for r in heat["rows"]:
            cells = "".join(f"<td style='background:rgba(192,32,32,{0 if n == 0 else 0.15 + 0.85 * n / peak:.2f})' "
                            f"title='{n:,}'></td>" for n in r["cells"])
            parts.append(f"<tr><th>{e(r['replica'])}</th>{cells}<td class=n>{r['total']:,}</td></tr>")
        parts.append("</table>")
        if heat["more"]:
            parts.append(f"<p>and {heat['more']:,} more replica(s) with failing requests</p>")
    if doc["quiet"]:
        parts.append("<h2>Replicas with no finding but error lines</h2><table><tr><th>template</th><th>lines</th><th>replicas</th>"
                     "<th>example</th></tr>")
        parts += [f"<tr><td><code>{e(q['template'])}</code></td><td class=n>{q['count']:,}</td><td>{e(_names(q))}</td>"
                  f"<td><pre>{e(q['example']['text'] or '')}</pre></td></tr>" for q in doc["quiet"]]
        parts.append("</table>")
    if doc["failed"] or doc["skipped"]:
        parts.append("<h2>Not analysed, or skipped</h2><ul>")
        parts += [f"<li>{e(f['replica'])}: {e(f['status'])}: {e(f['reason'] or '')}</li>" for f in doc["failed"]]
        parts += [f"<li>{e(s['replica'])}: {e(s['what'] or '')}</li>" for s in doc["skipped"]]
        parts.append("</ul>")
    style = ("body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse;margin:1em 0}"
             "td,th{border:1px solid #ccc;padding:4px 6px;vertical-align:top;text-align:left}td.n{text-align:right}"
             "pre{white-space:pre-wrap;margin:0;font-size:12px}table.heat td{width:10px;height:14px;padding:0}"
             "table.heat th{font-weight:normal;white-space:nowrap;padding:0 6px}table.heat td.n{width:auto;padding:0 6px}"
             "table.heat td.axis{width:auto;height:auto;padding:2px 4px;font-size:12px;color:#555}.sev-error,.sev-critical{color:#a00}")
    return ("<!doctype html><html lang=en><head><meta charset=utf-8><title>emblens fleet report</title>"
            "<meta http-equiv='Content-Security-Policy' content=\"default-src 'none'; style-src 'unsafe-inline'; "
            "base-uri 'none'; form-action 'none'\">"
            f"<meta name=viewport content='width=device-width'><style>{style}</style></head><body>"
            + "".join(parts) + "</body></html>\n")
