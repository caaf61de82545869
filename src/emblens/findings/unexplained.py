"""The error lines no rule explained, grouped by template (numbers, strings, paths and ids set
aside) so that nothing is hidden: an explained exception explains its whole chain."""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from emblens.rules.engine import Evidence, Finding, weight


@dataclass
class Unexplained:
    template: str
    count: int
    example: Evidence


def _template(expr: pl.Expr) -> pl.Expr:
    return (
        expr.str.replace_all(r"'[^']*'|\"[^\"]*\"|`[^`]*`", "<str>")
        .str.replace_all(r"0x[0-9a-fA-F]+|\b[0-9a-f]{8,}\b", "<hex>")
        .str.replace_all(r"(?:/[\w.@+-]+){2,}", "<path>")
        .str.replace_all(r"\d+(?:\.\d+)?", "<n>")
        .str.replace_all(r"\s+", " ")
        .str.strip_chars()
        .str.slice(0, 200)
    )


def without(rows: pl.DataFrame, covered: set) -> pl.DataFrame:
    """`rows` less those at a (source, line) that a finding matched."""
    if not covered or rows.height == 0:
        return rows
    keys = pl.DataFrame(list(covered), schema={"source": pl.String, "line": pl.Int64}, orient="row")
    return rows.join(keys, on=["source", "line"], how="anti")


def unexplained(events: pl.DataFrame, findings: list[Finding]) -> list[Unexplained]:
    if events.height == 0:
        return []
    is_error = (
        (pl.col("level").is_in(["ERROR", "CRITICAL"]) & pl.col("kind").is_in(["log", "unparsed"]))
        | ((pl.col("kind") == "exception") & pl.col("exc_position").is_in(["outer", "only"]))
        | ((pl.col("kind") == "http") & (pl.col("http_status") >= 400))
    )
    errors = without(events.filter(is_error.fill_null(False)), set().union(*(f.matched for f in findings)) if findings else set())
    chains = set().union(*(f.chains for f in findings)) if findings else set()
    if chains and errors.height:
        # an explained exception explains the whole chain it belongs to
        keys = pl.DataFrame(list(chains), schema={"source": pl.String, "exc_group": pl.Int64}, orient="row")
        errors = errors.join(keys, on=["source", "exc_group"], how="anti")
    if errors.height == 0:
        return []
    grouped = (
        errors.with_columns(_template(pl.col("message")).alias("_tpl"))
        .group_by("_tpl", maintain_order=True)
        .agg(weight().sum().alias("n"), pl.col("source").first(), pl.col("line").first(), pl.col("text").first())
        .sort("n", descending=True, maintain_order=True)
    )
    return [
        Unexplained(tpl, n, Evidence(src, line, (text or "").strip()))
        for tpl, n, src, line, text in grouped.select("_tpl", "n", "source", "line", "text").rows()
    ]
