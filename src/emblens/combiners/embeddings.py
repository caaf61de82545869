"""Embedding figures that need more than one exchange: which inputs lack a prefix their model
expects, and which vector size was expected. Columns only; `embed.missing_prefix` and
`embed.dimension_mismatch` decide and word the finding.

Columns written on `http` rows:
- req_prefix_missing: unprefixed inputs where a prefix is expected, with req_prefix_basis saying
  why: `family` (a family that prefixes both sides, E5, nomic), `mixed` (a queries-only family,
  and one request mixes inputs with and without the prefix), `others` (no known family, but other
  inputs to the model carry a prefix); req_prefix_family and req_prefix_expected name the family
  and its prefixes.
- resp_dim_expected: the size the request asked for (`dimensions`), the model's known size, or
  the size other calls to the model usually got; resp_dim_basis says which (requested, known,
  usual); resp_dim_mismatch when the returned size differs.

Facts: `context_error_embedding`, a context-length error a few lines from the words of an embedding call
in the same input (an app's or a gateway's wording of vLLM's or LiteLLM's error does not say which call
it was; the sentence above it does).
"""

from __future__ import annotations

from types import MappingProxyType

import polars as pl

from emblens.combiners.facts import Fact
from emblens.combiners.routes import near
from emblens.knowledge.modeldata import ModelData

FACTS = MappingProxyType({
    "context_error_embedding": Fact("bool", "a context-length error stands a few lines from the words of an embedding "
                                            "call, in the same input (an app's or a gateway's wording, which does not "
                                            "say which call it was)"),
})

MAX_SCAN = 200_000        # rows scanned (vectorised)
MAX_ERRORS = 50           # context-length lines looked around
NEAR_LINES = 5            # lines between the error and the words of the embedding call
CONTEXT_ERROR = (r"(?i)maximum context length is \d+ tokens|context length is only \d+ tokens|ContextWindowExceeded"
                 r"|exceeds? (?:the )?(?:model'?s? )?(?:max(?:imum)? )?context (?:length|window|size)"
                 # llama.cpp's (llama-box's) "decoding exceeds the available context size", Ollama's silent truncation
                 r"|exceeds the available context size|truncating input prompt")
EMBEDDING_CALL = r"(?i)\bembed(?:ding|dings)?\b|/api/embed\b|\bembedder\b"


def figures(events: pl.DataFrame) -> dict[str, object]:
    if events.height == 0 or "text" not in events.columns:
        return {}
    text = pl.coalesce(pl.col("message"), pl.col("text")) if "message" in events.columns else pl.col("text")
    scan = events.head(MAX_SCAN)
    errors = scan.filter(text.fill_null("").str.contains(CONTEXT_ERROR)).select("source", "line").head(MAX_ERRORS)
    if errors.height == 0:
        return {}
    said = scan.filter(near(errors, NEAR_LINES) & text.fill_null("").str.contains(EMBEDDING_CALL)).height > 0
    return {"context_error_embedding": True} if said else {}


def derive(events: pl.DataFrame, models: ModelData) -> pl.DataFrame:
    http = events.filter((pl.col("kind") == "http") & pl.col("req_model").is_not_null())
    if http.height == 0:
        return events
    per_model = http.group_by("req_model").agg(
        pl.col("req_prefixed").sum().alias("prefixed"),
        pl.col("resp_dim").drop_nulls().mode().first().alias("usual_dim"),
        pl.col("resp_dim").drop_nulls().n_unique().alias("dim_kinds"),
    )
    rows = []
    for model, prefixed, usual, kinds in per_model.iter_rows():
        fam = models.family(model)
        known = models.dimension(model)
        if fam is not None and fam.sides == "both":
            basis = "all", "family"
        elif fam is not None and (prefixed or 0) > 0:
            basis = "mixed", "mixed"
        elif fam is None and (prefixed or 0) > 0:
            basis = "all", "others"
        else:
            basis = None, None
        expected = ",".join(p.strip() for p in fam.prefixes) if fam is not None and basis[1] != "others" else None
        if known is not None:
            dim, dim_basis = known, "known"
        elif (kinds or 0) > 1 and usual is not None:
            dim, dim_basis = usual, "usual"
        else:
            dim, dim_basis = None, None
        rows.append((model, basis[0], basis[1], fam.name if fam is not None and basis[1] else None, expected, dim, dim_basis))
    info = pl.DataFrame(rows, schema={"req_model": pl.String, "_mode": pl.String, "_basis": pl.String, "_fam": pl.String,
                                      "_expected": pl.String, "_dim": pl.Int64, "_dim_basis": pl.String}, orient="row")
    out = events.with_row_index("_i").join(info, on="req_model", how="left")
    is_http = pl.col("kind") == "http"
    unpref = pl.col("req_unprefixed").fill_null(0)
    missing = (
        pl.when(~is_http).then(None)
        .when(pl.col("_mode") == "all").then(unpref)
        .when((pl.col("_mode") == "mixed") & (pl.col("req_prefixed").fill_null(0) > 0)).then(unpref)
        .otherwise(None)
    )
    asked = pl.col("req_dimensions")
    expected = pl.when(~is_http).then(None).when(asked.is_not_null()).then(asked).otherwise(pl.col("_dim"))
    basis = pl.when(~is_http).then(None).when(asked.is_not_null()).then(pl.lit("requested")).otherwise(pl.col("_dim_basis"))
    flagged = missing > 0
    out = out.with_columns(
        pl.when(flagged).then(missing).otherwise(pl.col("req_prefix_missing")).alias("req_prefix_missing"),
        pl.when(flagged).then(pl.col("_fam")).otherwise(pl.col("req_prefix_family")).alias("req_prefix_family"),
        pl.when(flagged).then(pl.col("_expected")).otherwise(pl.col("req_prefix_expected")).alias("req_prefix_expected"),
        pl.when(flagged).then(pl.col("_basis")).otherwise(pl.col("req_prefix_basis")).alias("req_prefix_basis"),
        pl.coalesce(pl.col("resp_dim_expected"), expected).alias("resp_dim_expected"),
        pl.coalesce(pl.col("resp_dim_basis"), basis).alias("resp_dim_basis"),
    ).sort("_i")
    out = out.with_columns(
        pl.when(pl.col("resp_dim").is_not_null() & pl.col("resp_dim_expected").is_not_null())
        .then(pl.col("resp_dim") != pl.col("resp_dim_expected"))
        .otherwise(pl.col("resp_dim_mismatch")).alias("resp_dim_mismatch")
    )
    return out.drop("_i", "_mode", "_basis", "_fam", "_expected", "_dim", "_dim_basis")
