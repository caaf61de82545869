"""A route the server release does not have yet: a 404 on a route newer than the server.

A client calls the route its documentation names today (Ollama's `/api/embed`, llama-server's
`/v1/rerank`); a server installed months before answers 404, as for a path that never existed. What
tells the two apart is the release: `data/model_support.yaml` says, per server, the first release
that registers each route (read from the servers' own history), and the evidence gives the
version (an issue template's "Ollama version" field, `ollama -v`, a start-up line). Without a version,
Ollama's router still tells: Gin answers a path it has no route for with a bare `404 page not found`,
and a model route of a release that has it answers JSON (`model "x" not found`).
"""

from __future__ import annotations

import re
from types import MappingProxyType

import polars as pl

from emblens.combiners.facts import Fact

FACTS = MappingProxyType({
    "route_newer": Fact("text", "a route answered 404 that the server gained in a later release than the one the "
                                "evidence gives (or than one whose router says it has no such path)"),
    "route_newer_server": Fact("text", "the server of `route_newer`, as the report names it"),
    "route_newer_since": Fact("text", "the first release of that server that has `route_newer`"),
    "route_newer_version": Fact("text", "the release the evidence gives for that server, if it gives one"),
    "route_newer_source": Fact("text", "where the first release of `route_newer` was read"),
    "route_newer_said": Fact("text", "without a version: the router's own answer for a path it has no route for "
                                     "(Ollama's `404 page not found`, llama-server's `File Not Found`)"),
})

MAX_SCAN = 200_000       # rows of the evidence scanned (vectorised) for a 404 and for the router's answer
MAX_ROWS = 500           # rows holding a 404 read for a route
MAX_TEXT = 2_048
NEAR_LINES = 10          # lines between a paste's "404 page not found" and the call it answered
NEAR_LINES_LLAMACPP = 40 # ...and llama-server's "File Not Found" (curl -i prints the headers and the JSON between)
NAMES = MappingProxyType({"ollama": "Ollama", "llamacpp": "llama.cpp"})
# Gin's answer for a path no route matches (Ollama), not a route's own 404 (JSON: `{"error":"model \"x\" not found…"}`)
NO_ROUTE = r"\b404 page not found\b"
# llama-server's answer for a path it has no handler for (examples/server/server.cpp's error handler, b1500 ... b4747:
# text/plain "File Not Found", then the JSON error {"code":404,"message":"File Not Found","type":"not_found_error"}),
# told apart from other servers' words by llama.cpp's name (`Server: llama.cpp`, llama-server) in the same lines
NO_ROUTE_LLAMACPP = r"\bFile Not Found\b"
_LLAMACPP = re.compile(r"(?i)llama-server|llama\.cpp|llama_cpp_server|\bllamacpp\b")


def figures(events: pl.DataFrame, values: dict, routes) -> dict[str, object]:
    if not routes or events.height == 0 or "text" not in events.columns:
        return {}
    from emblens.findings.support import said_versions
    from emblens.rules.operators import version_key

    text = (pl.coalesce(pl.col("message"), pl.col("text")) if "message" in events.columns else pl.col("text"))
    status = pl.col("http_status").fill_null(0) if "http_status" in events.columns else pl.lit(0)
    path = pl.col("http_path") if "http_path" in events.columns else pl.lit(None, dtype=pl.String)
    origin = pl.col("origin") if "origin" in events.columns else pl.lit(None, dtype=pl.String)
    port = pl.col("http_port") if "http_port" in events.columns else pl.lit(None, dtype=pl.Int64)
    scan = events.head(MAX_SCAN)
    rows = (scan
            .filter((status == 404) | text.fill_null("").str.contains(r"\b404\b"))
            .head(MAX_ROWS)
            .select(text.fill_null("").str.slice(0, MAX_TEXT).alias("t"), (status == 404).alias("answered"),
                    path.alias("path"), origin.alias("origin"), port.cast(pl.Int64, strict=False).alias("port")))
    if rows.height == 0:
        return {}
    table = {(r.server, r.route): r for r in routes}
    alternatives = "|".join(sorted({re.escape(r.route) for r in routes}, key=len, reverse=True))
    pattern = re.compile(r"(?<![\w/.-])(" + alternatives + r")(?![\w/-])")
    said_no_route = scan.filter(text.fill_null("").str.contains(NO_ROUTE)).select("source", "line").head(20)
    no_route = said_no_route.height > 0
    near_llama = near(scan.filter(text.fill_null("").str.contains(NO_ROUTE_LLAMACPP)).select("source", "line").head(20),
                       NEAR_LINES_LLAMACPP)
    llama_no_route = near_llama is not None and scan.filter(near_llama & text.fill_null("").str.contains(_LLAMACPP.pattern)).height > 0
    if (no_route or llama_no_route) and not rows.filter(pl.col("answered") & pl.col("path").is_not_null()).height:
        # Ollama's router (or llama-server's) said it has no such path, and no exchange names the path: the call is
        # the one a paste shows beside it (`curl http://localhost:11434/api/chat -d …` under `Response is "404 page
        # not found"`), in the same input and a few lines away (a route shown working elsewhere is not the one)
        close = pl.lit(False)
        if no_route:
            close = close | near(said_no_route, NEAR_LINES)
        if llama_no_route:
            close = close | near_llama
        called = (scan
                  .filter(close & text.fill_null("").str.contains(r"(?:^|[^\w/.-])(?:" + alternatives + r")\b"))
                  .head(MAX_ROWS)
                  .select(text.fill_null("").str.slice(0, MAX_TEXT).alias("t"), pl.lit(False).alias("answered"),
                          pl.lit(None, dtype=pl.String).alias("path"), origin.alias("origin"),
                          port.cast(pl.Int64, strict=False).alias("port")))
        rows = pl.concat([rows, called], how="vertical_relaxed")
    said = None
    for t, answered, p, org, prt in rows.iter_rows():
        found = [p.split("?", 1)[0]] if answered and p else [m.group(1) for m in pattern.finditer(t)]
        for route in found:
            servers = _servers(route, t, org, prt)
            if llama_no_route and "llamacpp" not in servers:
                servers.append("llamacpp")
            for server in servers:
                r = table.get((server, route))
                if r is None:
                    continue
                if said is None:
                    said = said_versions(events, values)
                version = said.get(server)
                if version is not None:
                    if version_key(version.version) < version_key(r.since):
                        return _facts(r, version.version)
                    continue
                if server == "ollama" and no_route:
                    return _facts(r, None, "404 page not found")
                if server == "llamacpp" and llama_no_route:
                    return _facts(r, None, "File Not Found")
    return {}


def near(said: pl.DataFrame, lines: int) -> pl.Expr | None:
    """The rows of the same input within `lines` of any of `said`'s (source, line)."""
    if said.height == 0:
        return None
    out = pl.lit(False)
    for source, line in said.iter_rows():
        out = out | ((pl.col("source") == source) & ((pl.col("line") - line).abs() <= lines))
    return out


def _servers(route: str, t: str, origin: str | None, port: int | None) -> list[str]:
    """The servers a 404 on `route` may be from: Ollama's own API is Ollama's; its OpenAI-compatible
    routes are when the call went to its port; llama-server's when its log or name stands there."""
    out = []
    if route.startswith("/api/") or origin == "ollama" or port == 11434 or ":11434" in t:
        out.append("ollama")
    if origin == "llamacpp" or _LLAMACPP.search(t):
        out.append("llamacpp")
    return out


def _facts(r, version: str | None, said: str | None = None) -> dict[str, object]:
    out = {"route_newer": r.route, "route_newer_server": NAMES.get(r.server, r.server),
           "route_newer_since": r.since, "route_newer_source": r.source}
    if version is not None:
        out["route_newer_version"] = version
    if said is not None:
        out["route_newer_said"] = said
    return out
