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

A line no message is near may still say its cause in the field's words (`emblens.knowledge.cues`:
"vector dimension mismatch, expected 512, actual 3072" from a vector store nobody harvested, "the
model is not pulled" in a paste): the surest cue its words hold names a possible cause, less sure
than a message would (`CUE_SHARE` of its weight).

When a rule found only a symptom, a possible cause may still join it, as long as its id is the
symptom's cause (`explains:`): a start-up or load failure (`GENERIC`) takes one from a line near a
message or a cue, a refused connection (`REFUSED`) one from the settings.

When no line names a cause, the settings a paste shows may (`SETTINGS_CONFIDENCE`): a client in a
container given a loopback address, a client given the LAN address of an Ollama or LM Studio that
listens on the loopback, a base URL that is a bare host and port where what was called was not found,
SGLang serving a vision-language model without the chat template its release needs.
"""

from __future__ import annotations

import re

import polars as pl

from emblens.combiners.client import ollama_pulled
from emblens.findings import confidence as conf
from emblens.findings.calm import WANTED_ERROR
from emblens.findings.unexplained import without
from emblens.formats.commands import CJK_TEXT
from emblens.formats.messages import IMAGE_FRAME, error_row
from emblens.knowledge.cues import Cue, Cues
from emblens.knowledge.upstream import Messages, Near

MAX_LINES = 2_000        # error-like lines compared (distinct texts, the first ones)
MAX_POSSIBLE = 2         # possible causes reported
MAX_CONFIDENCE = 0.6
CUE_SHARE = 0.8          # a cue's words count for less than a harvested message's
_OS_WORDS = re.compile(r"errlist|strerror")          # a message the C library words (errno texts)
GENERIC = frozenset({"engine.startup_failed", "model.load_failed"})   # symptoms whose cause a nearby line may name
REFUSED = frozenset({"net.connection_refused"})     # a symptom whose cause the settings may name
PROXIED = frozenset({"auth.forbidden", "http.gateway_error"})   # answers a proxy gives in a server's place



def error_like(events: pl.DataFrame, covered: set) -> pl.DataFrame:
    """The lines a person would read as errors, whatever their kind, less those a finding matched;
    distinct texts, the first `MAX_LINES`."""
    if events.height == 0:
        return events
    text = pl.coalesce(pl.col("message"), pl.col("text")).fill_null("")
    rows = without(events.filter(error_row()).with_columns(text.alias("_text")), covered)
    rows = rows.filter(~pl.col("_text").str.contains(WANTED_ERROR))     # the error a sentence wants, not one met
    if ollama_pulled(events):
        # Ollama's CLI asks /api/show before it pulls a model it lacks: that 404 is the CLI finding out
        rows = rows.filter(~((pl.col("http_status").fill_null(0) == 404) & (pl.col("http_path") == "/api/show")).fill_null(False))
    return rows.unique("_text", keep="first", maintain_order=True).head(MAX_LINES)


def _with_outside(events: pl.DataFrame, covered: set, messages: Messages, lines: pl.DataFrame) -> pl.DataFrame:
    """`lines` with the lines holding an error the operating system words and no catalogue id covers
    (`[Errno 13] Permission denied`): no cause by themselves, but the cues may read one in the words around
    them (the model cache's path)."""
    labels = [m.label for m in messages.messages if m.id == "none" and _OS_WORDS.search(m.source or "")]
    if not labels or "msg_template" not in events.columns:
        return lines
    text = pl.coalesce(pl.col("message"), pl.col("text")).fill_null("")
    rows = without(events.filter(pl.col("msg_template").is_in(labels).fill_null(False)
                                 & (pl.col("kind") != "fact")).with_columns(text.alias("_text")), covered)
    if lines.height:
        rows = rows.filter(~pl.col("_text").is_in(lines["_text"].implode()))
    if rows.height == 0:
        return lines
    rows = rows.unique("_text", keep="first", maintain_order=True).head(MAX_LINES)
    return pl.concat([lines, rows.select(lines.columns)], how="vertical_relaxed") if lines.height else rows


def prose(events: pl.DataFrame, covered: set, seen: pl.DataFrame) -> pl.DataFrame:
    """The lines no program labelled (a paste's sentences, a printed line) that are not among
    `seen` (the error-like lines) nor matched by a finding; distinct texts, the first `MAX_LINES`."""
    if events.height == 0:
        return events
    text = pl.coalesce(pl.col("message"), pl.col("text")).fill_null("")
    rows = events.filter(pl.col("kind").is_in(["unparsed", "log"]) & pl.col("level").is_null()
                         & (pl.col("msg_id").is_null() | (pl.col("msg_id") != "none")))
    rows = without(rows.with_columns(text.alias("_text")), covered)
    # a sentence that says what the software should do instead ("instead of returning an error for invalid model
    # names it …", "it should raise an error") describes the error it wants, not one it met
    rows = rows.filter(~pl.col("_text").str.contains(WANTED_ERROR))
    if seen.height:
        rows = rows.filter(~pl.col("_text").is_in(seen["_text"].implode()))
    return rows.unique("_text", keep="first", maintain_order=True).head(MAX_LINES)


def possible(events: pl.DataFrame, ruleset, facts, findings: list) -> list:
    """Possible causes (findings of low confidence) when no finding is an error; else []."""
    found = _possible(events, ruleset, facts, findings)
    if found and _browser_at_root(events):
        # the only refusals are a browser's GET of the server's root (`/`, `/?…`, `/favicon.ico`): an API
        # server has no page there, and a person who opened it got the 404 every such server answers
        found = [f for f in found if f.rule != "http.wrong_path"]
    return found


# a browser's look at the server (its root, its icon), not a route a client calls; a health check's GET of `/` is not
_ROOT_PATH = r"^/(?:\?[^\s]*)?$|^/favicon\.ico$"
_PROBE = r"(?i)kube-probe|health-?check|ELB-|GoogleHC|Consul Health|uptime"


def _browser_at_root(events: pl.DataFrame) -> bool:
    if events.height == 0 or not {"http_status", "http_path"} <= set(events.columns):
        return False
    refused = events.filter((pl.col("http_status").fill_null(0) == 404) & pl.col("http_path").is_not_null())
    if refused.height == 0:
        return False
    method = pl.col("http_method").fill_null("GET") if "http_method" in refused.columns else pl.lit("GET")
    return bool(refused.select((pl.col("http_path").str.contains(_ROOT_PATH) & (method == "GET")
                                & ~pl.col("text").fill_null("").str.contains(_PROBE)).all()).item())


def _possible(events: pl.DataFrame, ruleset, facts, findings: list) -> list:
    from emblens.rules.engine import _finding

    messages: Messages | None = getattr(ruleset, "messages", None)
    if not messages or events.height == 0 or "msg_id" not in events.columns:
        return []
    # when rules found an error, only a cause of it may be added: a line near TEI's "Model is not supported"
    # beside the engine's "Could not create backend" names what the start-up failure (a symptom) came from
    # (only for the findings whose own remedy is "read the first error above": a refused connection or a proxy's
    # 502 is a symptom too, but its cause is seldom in the same log)
    found = {f.rule for f in findings if f.severity == "error"}
    if found and found <= REFUSED:
        # a refused or failed connection: the settings may say why (a client in a container given localhost)
        return _settings_cause(events, facts, {r.id: r for r in reversed(ruleset.rules)}, found)
    if found & PROXIED and found <= PROXIED | REFUSED:
        # a 403 or a 502 for a call to a server on this machine: a proxy the words name may have answered it
        # (or the gateway itself, with no backend to send it to: its causes the rules' `explains:` name)
        wanted: set[str] | None = {"net.proxy_env"} | {c for c, ex in messages.explains.items() if ex & found}
    elif found - GENERIC:
        return []
    else:
        wanted = {c for c, ex in messages.explains.items() if ex & found} if found else None
    if wanted is not None and not wanted:
        return []
    rules = {}
    for r in ruleset.rules:
        rules.setdefault(r.id, r)
    covered = set().union(*(f.matched for f in findings)) if findings else set()
    lines = error_like(events, covered)
    cues: Cues | None = getattr(ruleset, "cues", None)
    if cues:
        lines = _with_outside(events, covered, messages, lines)
    said = prose(events, covered, lines) if cues else lines.clear()
    if wanted is not None:
        rules = {k: v for k, v in rules.items() if k in wanted}
    values = facts.as_values()
    support = getattr(getattr(ruleset, "models", None), "support", ())
    # (a start-up failure a rule already gave its cause, an import that failed, needs no release)
    specific = any(f.cause not in (None, "possible") for f in findings if f.rule in found)
    newer = _model_newer_than_server(events, values, rules, support) \
        if not specific and (found or lines.height or values.get("failure_said") or _asks_support(events)) else None
    # two facts side by side (a model's size and another vector size; a model name in two cases beside a 404)
    pair = (_dimension_disagrees(events, values, rules, getattr(ruleset, "models", None))
             or _model_case_differs(events, values, rules)) if not specific else None
    if lines.height == 0 and said.height == 0:
        return _with_newer(_ranked(_from_settings(events, facts, rules, findings), pair), newer)
    index = messages.nearest
    by_text = {m.label: m for m in messages.messages}
    # per id: (score, what spoke: a Near or a Cue, the row); a message's score is its cover
    best: dict[str, tuple[float, Near | Cue, dict]] = {}
    unspoken: list[int] = []
    after = _next_lines(events, lines)
    for k, row in enumerate(lines.iter_rows(named=True)):
        exact = by_text.get(row.get("msg_template") or "")
        near = Near(exact, 1.0, True) if exact is not None else index.near(row["_text"])
        if near is None and not _ENDS_SENTENCE.search(row["_text"]) and (more := after.get((row["source"], row["line"]))):
            # a message a terminal or a paste wrapped over two lines: the line and the next, read as one
            # (a little less near than a line that holds the message alone, so that line is the one shown);
            # not after a line that ends a sentence: "…but the image failed to start. What is the reason?" and
            # "The startup command is as follows:" are a person's two sentences, not llama-swap's
            # `failed to start command '…': …` wrapped
            joined = index.near(f"{row['_text']} {more}")
            near = Near(joined.message, round(joined.cover * 0.95, 2)) if joined is not None else None
        if near is None or (near.message.id == "none" and (not near.exact or (row.get("said_status") or 0) >= 400
                                                            or _OS_WORDS.search(near.message.source or ""))):
            # no message, or only near one that is no failure ("Input prompt exceeds maximum length" is Open
            # WebUI's own limit; "Prompt exceeds maximum context length" is not it): the cues may read the line;
            # an exchange a format parsed only when it called an API route (a browser's `GET /` or
            # `/favicon.ico` answered 404 beside a server's routes is no wrong path); a failure no catalogue id
            # covers (an OS error, `[Errno 13] Permission denied`) may still say one with the words around it
            # (the model cache's path)
            if row.get("kind") != "http" or _API.search(row.get("http_path") or ""):
                unspoken.append(k)
            continue
        if near.message.id == "none" or near.message.id not in rules:
            continue
        have = best.get(near.message.id)
        if have is None or near.cover > have[0]:
            best[near.message.id] = (near.cover, near, row)
    if cues and (unspoken or said.height):
        # the error-like lines no message is near, then the prose (read by the cues that are `alone`)
        rest = pl.concat([lines[unspoken], said.select(lines.columns)], how="vertical_relaxed") if said.height \
            else lines[unspoken]
        errors = pl.Series([True] * len(unspoken) + [False] * (rest.height - len(unspoken)), dtype=pl.Boolean)
        rows = rest.rows(named=True)
        for i, cue in cues.best(rest["_text"], errors, events.select("text")):
            if cue.id not in rules:
                continue
            score = CUE_SHARE * cue.weight
            have = best.get(cue.id)
            if have is None or score > have[0]:
                best[cue.id] = (score, cue, rows[i])
    if not best:
        return _with_newer(_ranked(_from_settings(events, facts, rules, findings), pair), newer)
    out = []
    seen = _seen(events, values)
    pool = pl.concat([lines, said.select(lines.columns)], how="vertical_relaxed") if said.height else lines
    for id_, (score, why, row) in sorted(best.items(), key=lambda kv: -kv[1][0])[:MAX_POSSIBLE]:
        rule = rules[id_]
        matched = pool.filter((pl.col("source") == row["source"]) & (pl.col("line") == row["line"])).drop("_text")
        # (a cue's words reach the rule's remedy as `cue_says`: a step that applies only to what they say)
        f = _finding(rule, None, matched, values if isinstance(why, Near) else {**values, "cue_says": why.says})
        if isinstance(why, Near):
            how = "holds" if why.exact else f"is near ({why.cover:.0%} of its words)"
            f.summary = (f"Possibly: {rule.title.rstrip('.')}. No rule matched this line, but it {how} "
                         f"{why.message.label}, which {why.message.project} writes for this failure "
                         f"({why.message.source}, {why.message.versions}).")
            f.confidence = round(min(MAX_CONFIDENCE, conf.initial(0.3 + 0.3 * why.cover, sources=1)), 2)
        else:
            f.summary = (f"Possibly: {rule.title.rstrip('.')}. No rule or known message matched this line, but "
                         f"{why.says}.")
            f.confidence = round(min(MAX_CONFIDENCE, conf.initial(score, sources=1)), 2)
        if seen:
            f.summary += f" Seen in these inputs: {seen}."
        f.cause = "possible"
        out.append(f)
    if out and out[0].rule in REFUSED | {"net.timeout"} and "net.wrong_host_docker" in rules:
        # a refused connection or a timeout the words name, and the paste puts the app in a container pointed at
        # the loopback: that is why the call got nowhere
        where = _container_loopback(events, values, rules)
        if where is not None:
            out = [where, *out][:MAX_POSSIBLE]
    out = _ranked(out, pair)
    if newer is not None:
        # a line only near a message of few fixed words (Python's "'X' object has no attribute 'Y'") ranks after
        # it; any other line or cue that names a cause ranks by its confidence
        out = [f for f in out if f.rule != newer.rule]
        weak = all(isinstance(why, Near) and not why.exact and len(why.message.fixed_words) <= FEW_WORDS
                   for id_, (_, why, _) in best.items() if id_ != newer.rule)
        if weak and out:
            newer.confidence = round(min(MAX_CONFIDENCE, max(newer.confidence, max(f.confidence for f in out) + 0.01)), 2)
        out = sorted([newer, *out], key=lambda f: -f.confidence)[:MAX_POSSIBLE]
    return out


_API = re.compile(r"^/(?:v\d|api|embed|rerank|score|generate|chat|completions|tokenize|pooling|classify)")
MAX_SEEN = 3             # values of each kind a possible cause names


def _seen(events: pl.DataFrame, facts: dict) -> str:
    """What the evidence names that a person checks first when the cause is only possible: the
    addresses called, the models asked for and served, the paths refused, a proxy set. The lines
    that failed come first; each kind at most `MAX_SEEN` values (events are masked already)."""
    cols = set(events.columns)
    failing = pl.col("said_status").fill_null(0) >= 400 if "said_status" in cols else pl.lit(False)
    if "http_status" in cols:
        failing = failing | (pl.col("http_status").fill_null(0) >= 400)
    rows = events.sort(failing, descending=True, maintain_order=True) if events.height else events

    def first(expr: pl.Expr) -> list[str]:
        got = rows.select(expr.alias("v")).drop_nulls()["v"].to_list()
        return list(dict.fromkeys(v for v in got if v))[:MAX_SEEN]

    parts: list[str] = []
    if {"said_host", "said_port"} <= cols:
        addresses = first(pl.when(pl.col("said_port").is_not_null())
                          .then(pl.concat_str([pl.col("said_host").fill_null(""), pl.lit(":"), pl.col("said_port").cast(pl.String)]))
                          .otherwise(pl.col("said_host")))
        if addresses:
            parts.append("address " + ", ".join(addresses))
    asked = first(pl.col("req_model")) if "req_model" in cols else []
    if "msg_values" in cols:
        asked += [v for v in first(pl.col("msg_values").str.extract(r"(?:^|; )model=([^;]+)")) if v not in asked]
    if asked:
        parts.append("model asked for " + ", ".join(f"`{m}`" for m in asked[:MAX_SEEN]))
    served = [m for m in facts.get("served_models") or [] if m not in asked][:MAX_SEEN]
    if served:
        parts.append("served " + ", ".join(f"`{m}`" for m in served))
    # a URL with a port and a path (a server's, not a link to docs), as the failing lines write it; CJK text and
    # full-width punctuation end it (`…/v1，也加入了令牌`)
    urls = first(pl.col("text").str.slice(0, 4096).str.extract(r"(https?://[A-Za-z0-9_.\[\]:-]+:\d{1,5}/[^\s'\"`)\]>,;" + CJK_TEXT + r"]+)", 1))
    if urls:
        parts.append("URL " + ", ".join(urls))
    if {"http_path", "http_status"} <= cols:
        refused = first(pl.when(pl.col("http_status").fill_null(0) >= 400).then(pl.col("http_path")))
        if refused:
            parts.append("path refused " + ", ".join(refused))
    if facts.get("timeouts_seen"):
        parts.append("timeout " + str(facts["timeouts_seen"]))
    if {"env_name", "env_value"} <= cols:
        proxies = first(pl.when(pl.col("env_name").str.contains(r"(?i)^(?:https?|all)_proxy$"))
                        .then(pl.concat_str([pl.col("env_name"), pl.lit("="), pl.col("env_value")])))
        if proxies:
            parts.append(", ".join(proxies))
    return "; ".join(parts)


# -- what the settings say, when no line does ------------------------------------------------------------
SETTINGS_CONFIDENCE = 0.35
_LOOPBACK = re.compile(r"^[a-z][a-z0-9+.-]*://(?:localhost|127\.\d+\.\d+\.\d+|0\.0\.0\.0|\[::1\])(?::\d+)?(?:/|$)", re.I)


def _settings_finding(rules: dict, id_: str, rows: pl.DataFrame, values: dict, says: str, first: str,
                      replacing: bool = False):
    """A possible cause the settings or a paste's words name: the finding of `id_` on `rows` at
    `SETTINGS_CONFIDENCE`, whose summary says that no rule or message named the cause and what did
    (`says`), with `first` as its first remedy (in place of the rule's own first one when `replacing`)."""
    from emblens.rules.engine import _finding

    rule = rules[id_]
    f = _finding(rule, None, rows, values)
    f.summary = f"Possibly: {rule.title.rstrip('.')}. No rule or known message names the cause, but {says}"
    f.remedy = [first, *f.remedy[1 if replacing else 0:]]
    f.confidence = SETTINGS_CONFIDENCE
    f.cause = "possible"
    return f


def _settings_cause(events: pl.DataFrame, facts, rules: dict, found: set[str]) -> list:
    """A possible cause the settings show of the error-level findings `found` (only one whose id is
    their cause: a client in a container given localhost is why its connection was refused)."""
    values = facts.as_values()
    f = _container_loopback(events, values, rules)
    return [f] if f is not None and found <= set(rules[f.rule].explains) else []


def _from_settings(events: pl.DataFrame, facts, rules: dict, findings: list) -> list:
    """A possible cause the pasted settings show when no line of the evidence names one. Only when
    nothing else was found: settings are context, not a failure."""
    if findings or events.height == 0 or "text" not in events.columns:
        return []
    values = facts.as_values()
    for check in (_container_loopback, _loopback_listener, _lan_address_of_local_server, _bare_base_url, _route_in_base_url,
                  _native_base_url, _ollama_embed_field, _sglang_vlm_without_template):
        if (f := check(events, values, rules)) is not None:
            return [f]
    return []


def _model_newer_than_server(events: pl.DataFrame, values: dict, rules: dict, support) -> object | None:
    """The evidence names a model family and a server release older than the first one whose source
    supports that family (findings.support), and something failed."""
    from emblens.findings import support as model_support

    if "model.unsupported_architecture" not in rules or not support:
        return None
    newer = model_support.newer_model(events, values, support)
    if newer is None:
        return None
    source, line = newer.row
    rows = events.filter((pl.col("source") == source) & (pl.col("line") == line)).head(1)
    if newer.said.source is not None:
        rows = pl.concat([rows, events.filter((pl.col("source") == newer.said.source)
                                              & (pl.col("line") == newer.said.line)).head(1)], how="vertical_relaxed")
    server = model_support.NAMES[newer.software]
    where = f" ({newer.source})" if newer.source else ""
    f = _settings_finding(
        rules, "model.unsupported_architecture", rows.unique(["source", "line"], maintain_order=True), values,
        f"the evidence names the model `{newer.named}` ({newer.family}) and {server} {newer.said.version}, and "
        f"{server} supports {newer.family} from {newer.since} on{where}: the model is newer than the server release.",
        f"Upgrade {server} to {newer.since} or later (a newer image or `pip install -U`), the first release that "
        f"supports {newer.family}.")
    f.confidence = NEWER_CONFIDENCE
    return f


def _with_newer(settings: list, newer) -> list:
    """What the settings show about where the call went, and the release: the settings' cause comes first,
    and the release only when it is not what that cause is a symptom of (an Ollama too old for the model
    still answers; a client given an address nothing listens on is refused whatever the release)."""
    if newer is None:
        return settings
    if any(f.rule in newer.explains for f in settings):
        return settings
    return [*settings, newer][:MAX_POSSIBLE]


# -- an embedding model's size and a vector size the evidence gives, side by side ----------------------------
DIM_CONFIDENCE = 0.45     # two facts that disagree (a model's known size, another size given), not a line naming it
MAX_DIM_ROWS = 400        # lines read for sizes and model names
# a vector size said in a setting, a schema or prose: `dimension: 1536`, `embedding_dims=768`, `vector(1536)`,
# `VectorParams(size=1536`, `768-dim`, `1536 dimensions`, `a Vector of 768 byte dimension`, `dimension 1024`, `维度 1024`
_DIM_SAID = re.compile(
    r"(?i)(?:\b(?:dim(?:ension)?s?|dimensionality|embed(?:ding)?_?dim(?:ension)?s?|vector_?(?:size|dim(?:ension)?s?)|"
    r"embedding_?(?:size|length)|n_?dims?|ndims?|output_dimensionality)\b[\"']?\s*[=:]\s*[\"']?(?P<a>\d{2,5})\b"
    r"|\bvector\s*\(\s*(?P<b>\d{2,5})\s*\)"
    r"|\bVectorParams\s*\(\s*size\s*=\s*(?P<c>\d{2,5})\b"
    r"|(?<![\w.:/-])(?P<d>\d{2,5})(?:[- ][a-z]+)?[- ]?(?:d\b|dims?\b|dimensions?\b|dimensional\b|-?维)"
    r"|\bdim(?:ension)?s?(?:ionality)?\s+(?:of\s+|is\s+|was\s+)?(?P<e>\d{2,5})\b"
    r"|维度\s*(?:为|是|[:：=])?\s*(?P<f>\d{2,5})\b)")
_DIM_CONTEXT = r"(?i)dim|vector|维"
# the stores an index of one vector size lives in: two embedding models of different sizes beside one is a mismatch
_STORES = (r"(?i)\b(?:milvus|qdrant|chroma(?:db)?|pgvector|weaviate|faiss|lancedb|elasticsearch|opensearch|redis(?:search)?|"
           r"pinecone|vespa|collection|knowledge base|index)\b|知识库|向量库")
_DIM_FAILED = (r"(?i)mismatch|does(?:n't| not) (?:fit|match)|do(?:n't| not) match|\bno (?:results|hits|matches)\b|"
               r"\b0 (?:hits|results)\b|\bempty\b|refus|reject|\bwrong\b|bad request|assert|不一致|不匹配")


def _sizes(text: str) -> list[int]:
    out = []
    for m in _DIM_SAID.finditer(text[:4096]):
        n = int(next(g for g in m.groups() if g))
        if 32 <= n <= 16384 and not 1990 <= n <= 2030:
            out.append(n)
    return out


def _dimension_disagrees(events: pl.DataFrame, values: dict, rules: dict, models) -> object | None:
    """An embedding model whose size the model data knows named beside another vector size (an index of 1536
    and nomic-embed-text, which gives 768), or two vector sizes given side by side, and something failed."""

    if "embed.dimension_mismatch" not in rules or models is None or not models.dimensions:
        return None
    text = pl.col("text").fill_null("").str.slice(0, 4096)
    names = [n for n, _ in models.dimensions]
    rows = events.filter(text.str.contains(_DIM_CONTEXT) | text.str.contains_any(names, ascii_case_insensitive=True))
    if "msg_id" in rows.columns:
        # a line a known message outside the catalogue explains (a store's own check listing the model names it
        # takes: Weaviate's `… only be used with V3 embedding models: [text-embedding-3-small …]`) names no model in use
        rows = rows.filter(pl.col("msg_id").is_null() | (pl.col("msg_id") != "none"))
    if rows.height == 0 or not rows.select((text.str.contains(_DIM_CONTEXT) | text.str.contains(_STORES)).any()).item():
        return None
    if not events.select((text.str.contains(_FAILED) | text.str.contains(_DIM_FAILED)).any()).item():
        return None
    known = dict(models.dimensions)
    named_rx = re.compile(r"(?i)(?<![\w.-])(" + "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True))
                          + r")(?![\w.-])")
    named: dict[str, tuple[int, tuple[str, int]]] = {}
    sizes: dict[int, tuple[str, int]] = {}
    for row in rows.head(MAX_DIM_ROWS).select("source", "line", "text").iter_rows():
        body = (row[2] or "")[:4096]
        for m in named_rx.finditer(body):
            named.setdefault(m.group(1).lower(), (known[m.group(1).lower()], row[:2]))
        for n in _sizes(body):
            sizes.setdefault(n, row[:2])
    gives = {d for d, _ in named.values()}
    other = [n for n in sizes if n not in gives]
    if named and other:
        model, (dim, at) = next(iter(named.items()))
        size = other[0]
        picked = [at, sizes[size]]
        says = (f"the evidence names `{model}`, which gives {dim}-dimensional vectors, and a vector size of {size}: an "
                f"index or collection built for one size refuses (or silently misses) vectors of the other.")
        first = (f"Make the index match the model: {dim} for {model} (recreate the collection or table at {dim}, or "
                 f"re-embed with the model the index was built for); a default of 1536 is OpenAI's size, not this model's.")
    elif len(sizes) >= 2 and not named:
        a, b = list(sizes)[:2]
        picked = [sizes[a], sizes[b]]
        says = (f"the evidence gives two vector sizes, {a} and {b}: vectors of one size do not fit an index of the other.")
        first = ("Make the index size and the embedding model's output size the same: recreate the collection or table "
                 "at the model's size, or re-embed with the model the index was built for.")
    elif len(gives) >= 2:
        (m1, (d1, at1)), (m2, (d2, at2)) = [(k, v) for k, v in named.items()][:2]
        if d1 == d2:
            pairs = [(k, v) for k, v in named.items() if v[0] != d1]
            if not pairs:
                return None
            m2, (d2, at2) = pairs[0]
        picked = [at1, at2]
        says = (f"the evidence names two embedding models of different sizes, `{m1}` ({d1}) and `{m2}` ({d2}): vectors "
                f"from one do not fit an index built with the other.")
        first = ("Use one embedding model for an index: re-embed the documents with the model now configured, or "
                 "switch back to the one the index was built with.")
    else:
        return None
    keys = pl.DataFrame(picked, schema={"source": pl.String, "line": pl.Int64}, orient="row").unique(maintain_order=True)
    f = _settings_finding(rules, "embed.dimension_mismatch", events.join(keys, on=["source", "line"], how="semi"),
                          values, says, first)
    f.confidence = DIM_CONFIDENCE
    return f


# a paste that asks about support or says a model is not registered: the symptom a release too old gives, in words
_SUPPORT_SAID = (r"(?i)\b(?:how (?:can|do|to) (?:i |we )?(?:support|run|serve|use|load)|(?:is|are|does|do) (?:\w+ )?(?:not )?"
                 r"support(?:ed)?|unsupported|not supported|unregistered|not registered|not recogni[sz]ed|"
                 r"unknown (?:model|architecture)|(?:can(?:no|')t|cannot|unable to|fails? to) (?:load|run|serve|start))\b|不支持")


def _asks_support(events: pl.DataFrame) -> bool:
    return bool(events.height and "text" in events.columns
                and events.select(pl.col("text").fill_null("").str.slice(0, 4096).str.contains(_SUPPORT_SAID).any()).item())


_ENDS_SENTENCE = re.compile(r"[.?!。？！]\s*$")


def _next_lines(events: pl.DataFrame, lines: pl.DataFrame) -> dict[tuple[str, int], str]:
    """For each of `lines`, the text of the line after it in its source (a message may go on there)."""
    if lines.height == 0 or "text" not in events.columns:
        return {}
    following = (events.select("source", (pl.col("line") - 1).alias("line"), pl.col("text").str.slice(0, 1024).alias("_next"))
                 .unique(["source", "line"], keep="first", maintain_order=True))
    got = lines.select("source", "line").join(following, on=["source", "line"], how="left")
    return {(s, n): t for s, n, t in got.iter_rows() if t and t.strip()}


# a served model's name as people write it: letters, then parts joined by - _ . : holding a digit (`Qwen3-32B`)
_MODEL_NAME = re.compile(r"(?<![\w./:@-])([A-Za-z][A-Za-z0-9]*(?:[-_.:][A-Za-z0-9]+)+)(?![\w/:@-]|\.\w)")
_NOT_SERVED = r"(?i)\b404\b|not found|does ?n[o']t exist|no such model|unknown model|invalid model"


def _model_case_differs(events: pl.DataFrame, values: dict, rules: dict):
    """One line writes a model's name twice in different case (`Qwen3-32B` and `qwen3-32b`) and the
    evidence says a model was not found: servers compare the name exactly (vLLM, lmdeploy, llama.cpp's
    --alias, LM Studio), so the spelling not served is a 404."""
    if "model.not_found" not in rules or events.height == 0:
        return None
    text = pl.col("text").fill_null("").str.slice(0, 4096)
    if not events.select(text.str.contains(_NOT_SERVED).any()).item():
        return None
    for row in events.filter(text.str.contains(r"[A-Z][\w.-]*\d|\d[\w.-]*[A-Z]")).head(MAX_DIM_ROWS).select(
            "source", "line", "text").iter_rows():
        spelled: dict[str, str] = {}
        for m in _MODEL_NAME.finditer((row[2] or "")[:4096]):
            name = m.group(1)
            if not any(c.isdigit() for c in name) or len(name) < 5:
                continue
            first = spelled.setdefault(name.lower(), name)
            if first != name:
                at = events.filter((pl.col("source") == row[0]) & (pl.col("line") == row[1]))
                f = _settings_finding(
                    rules, "model.not_found", at, values,
                    f"the evidence writes the model's name two ways, `{first}` and `{name}`, and a model was not "
                    f"found: servers compare the name exactly, case included, so the spelling they do not serve is "
                    f"unknown to them.",
                    f"Send the name exactly as the server lists it (GET /v1/models), case included; to accept both, "
                    f"serve the model under both names (vLLM: --served-model-name {first} {name}).")
                f.confidence = DIM_CONFIDENCE
                return f
    return None


def _ranked(out: list, pair) -> list:
    """`out` with a possible cause two facts side by side give (`pair`), by confidence, one per id."""
    if pair is None:
        return out
    return sorted([pair, *(f for f in out if f.rule != pair.rule)], key=lambda f: -f.confidence)[:MAX_POSSIBLE]


NEWER_CONFIDENCE = 0.45   # two facts side by side (a model, a release older than its support), not a line naming it
FEW_WORDS = 4             # a message of this many fixed words or fewer says little about its cause


def _container_loopback(events: pl.DataFrame, values: dict, rules: dict):
    """A client the evidence puts in a container, given a loopback address for the model server (inside
    the container that is the container itself): a base URL the settings give, or, when the paste says
    the app (a UI, a gateway) runs in Docker, the loopback address it names, and the call got nowhere."""

    if "net.wrong_host_docker" not in rules:
        return None
    url = values.get("base_url_env")
    row = None
    if values.get("container_seen") and isinstance(url, str) and _LOOPBACK.search(url):
        row = events.filter((pl.col("kind") == "fact") & pl.col("text").str.contains(url, literal=True)).head(1)
    here = "localhost" if isinstance(url, str) and "localhost" in url.lower() else "that address"
    if row is not None and row.height:
        says = (f"its settings do: the client's base URL is {url}, and the evidence puts the client in a container, "
                f"where {here} is the container itself.")
    else:
        url, row = _app_in_container_loopback(events, bool(values.get("container_seen")))
        if row is None:
            return None
        here = "localhost" if "localhost" in url.lower() else "127.0.0.1"
        says = (f"the evidence describes one: the app runs in a container and is pointed at {url}, and the call got "
                f"nowhere; inside the container, {here} is the container itself, not the machine where the model "
                f"server listens.")
    port = re.search(r":(\d+)", url)
    return _settings_finding(
        rules, "net.wrong_host_docker", row, values, says,
        f"Give the app http://host.docker.internal:{port.group(1) if port else 'PORT'} instead (on Linux, start its "
        f"container with --add-host=host.docker.internal:host-gateway, or use the host's LAN address), and make "
        f"the model server listen on 0.0.0.0 rather than 127.0.0.1.", replacing=True)


# a UI or gateway said to run in Docker (its issue template's answer, or a sentence naming it), as people write it
_APPS = (r"open[- ]?webui|flowise|dify|maxkb|one-?api|new-?api|fastgpt|anything-?llm|librechat|n8n|ragflow|litellm|"
         r"langflow|lobe-?chat|nextchat|chatgpt-next-web|bolt(?:\.diy)?|perplexica|khoj|quivr|onyx|danswer|big-agi|"
         r"chatbot-ui|sillytavern|letta|kotaemon|lightrag|cherry studio|chatchat|bisheng|coze|hoarder|karakeep|"
         r"paperless-ai|continue|tabby|aider|gpt-researcher|openui|privategpt|localgpt|h2ogpt|openhands|agent-zero|"
         r"verba|surfsense|open-notebook|home assistant|frigate|activepieces|windmill|mindsdb|langchain-chatchat|"
         r"chat-?ollama|ollama-webui|hollama|jan|page ?assist|chatbox|typebot|botpress|rasa")
_APP_IN_CONTAINER = (r"(?i)\b(?:" + _APPS + r")\b[^\n]{0,60}\b(?:docker|container|compose)\b"
                     r"|\b(?:docker|container)\b[^\n]{0,40}\b(?:" + _APPS + r")\b"
                     r"|^\W*(?:installation(?: method)?|deployment(?: method)?|install(?:ed)? (?:via|with)|how are you "
                     r"running [\w .-]+\??)\s*[:：]?\s*docker\b|^\W*docker \((?:local|remote)|\bdocker (?:terminal|console) (?:says|shows|prints)\b"
                     r"|(?:" + _APPS + r")[^\n]{0,30}(?:docker|容器)\s*(?:部署|安装|运行)"
                     # a line a container's log holds (docker compose's `service-1  | `), a dockerized app, a pod,
                     # an app whose documented install is Docker
                     r"|^[\w.-]+[-_]\d+\s+\|\s|\b(?:dockeri[sz]ed|containeri[sz]ed)\b|\bpods?\b"
                     # (ASCII word boundaries: the name may touch Chinese text, 操作fastgpt对话)
                     r"|(?-u:\b)(?:ragflow|dify|maxkb|fastgpt|one-?api|new-?api|bisheng)(?-u:\b)"
                     # a stack frame of code under an image's working directory (Node's `at f (/app/…)`)
                     r"|" + IMAGE_FRAME)
_LOOPBACK_SAID = (r"(?i)(?:https?://)?(?:localhost|127\.0\.0\.1):(?:11434|1234|8000|8080|30000|9997|7997|5000|8001|4000|13000|5001|1337)\b"
                  # urllib3's words: HTTPConnectionPool(host='localhost', port=11434)
                  r"|host='(?:localhost|127\.0\.0\.1)', port=(?:11434|1234|8000|8080|30000|9997|7997|5000|8001|4000|13000|5001|1337)\b")
_GOT_NOWHERE = (r"(?i)connection error|connection refused|econnrefused|fetch fail|could not be reached|not responding|network (?:problem|error)|"
                r"connect(?:ion)? failed|failed to connect|can(?:no|')t connect|unable to connect|not found|timed? ?out|"
                r"could ?n[o']t (?:retrieve|reach|load) (?:the )?models?|make sure [\w .-]{1,30} is running|"
                r"\b(?:both|all|still|it|they) fail(?:s|ed)?\b|does(?: not|n't) work|not working|could ?n[o']?t connect|"
                r"unable to establish a connection|连接失败|无法连接|连不上|连接不上|地址无效|域名无效|请求失败|调用失败|测试失败")


def _app_in_container_loopback(events: pl.DataFrame, container_seen: bool) -> tuple[str | None, pl.DataFrame | None]:
    """(the loopback address, its line) when a line says a UI or gateway runs in a container, another
    names a model server's loopback address and port, and a line says the call got nowhere."""
    if events.height == 0 or "text" not in events.columns:
        return None, None
    text = pl.col("text").fill_null("").str.slice(0, 4096)
    # ...or the input names such an app on one line and shows a container elsewhere (the fact `container_seen`:
    # "ChatOllama is unable to establish a connection with http://127.0.0.1:11434" and "我 win10 用的 docker desktop")
    said = events.select(text.str.contains(_APP_IN_CONTAINER).any().alias("app"),
                         text.str.contains(_GOT_NOWHERE).any().alias("nowhere"),
                         text.str.contains(r"(?i)(?-u:\b)(?:" + _APPS + r")(?-u:\b)").any().alias("named")).row(0)
    if not (said[1] and (said[0] or (said[2] and container_seen))):
        return None, None
    where = events.filter(text.str.contains(_LOOPBACK_SAID)).head(1)
    if where.height == 0:
        return None, None
    said = re.search(_LOOPBACK_SAID, where["text"][0]).group(0)
    if said.startswith("host="):
        said = re.sub(r"host='([^']+)', port=(\d+)", r"\1:\2", said)
    return said, where


# Ollama listens on 127.0.0.1:11434 unless OLLAMA_HOST says otherwise, LM Studio on localhost:1234 unless "Serve on
# Local Network" is on: a client on another machine (a phone, a second PC, a container on another host) that calls
# the server's LAN address is refused or times out
_LAN_LOCAL_SERVER = (r"(?:https?://)?(?:192\.168|10|172\.(?:1[6-9]|2\d|3[01]))\.\d+\.\d+(?:\.\d+)?:(?:11434|1234)\b")
_LISTENS_WIDE = (r"(?i)OLLAMA_HOST\s*[=:]\s*[\"']?(?:0\.0\.0\.0|::|\*|\[::\])|--host[= ]0\.0\.0\.0|serve on local network|"
                 r"listening on (?:\[::\]|0\.0\.0\.0):")
_FAILED = (r"(?i)\berror|\bfail|refused|timed? ?out|timeout|can(?:no|')t|\bunable|invalid host|not (?:work|reach|connect|find)|"
           r"失败|错误|无法|超时")


# a server shown listening on the loopback only: ss / netstat rows, Ollama's and llama-server's own start-up lines
_LISTENS_LOOPBACK = (r"(?i)\bLISTEN\w*\s+\d+\s+\d+\s+(?:127\.0\.0\.1|\[::1\]|localhost):(\d{2,5})\b"
                     r"|\bTCP\s+(?:127\.0\.0\.1|\[::1\]):(\d{2,5})\s+\S+\s+LISTENING\b"
                     r"|\bListening on (?:127\.0\.0\.1|\[::1\]|localhost):(\d{2,5})\b"
                     r"|\bserver is listening on https?://(?:127\.0\.0\.1|localhost):(\d{2,5})\b")
_FROM_ELSEWHERE = r"(?i)host\.docker\.internal|--add-host|host-gateway"


def _loopback_listener(events: pl.DataFrame, values: dict, rules: dict):
    """The evidence shows the server listening on 127.0.0.1 only, and a client that calls it from a
    container (through host.docker.internal) or from another machine (a LAN address)."""

    if "net.connection_refused" not in rules:
        return None
    text = pl.col("text").fill_null("").str.slice(0, 4096)
    where = events.filter(text.str.contains(_LISTENS_LOOPBACK)).head(1)
    if where.height == 0:
        return None
    said = events.select(text.str.contains(_FROM_ELSEWHERE).any().alias("docker"),
                         text.str.contains(_LAN_LOCAL_SERVER).any().alias("lan"),
                         text.str.contains(_LISTENS_WIDE).any().alias("wide")).row(0)
    if said[2] or not (said[0] or said[1] or values.get("container_seen")):
        return None
    m = re.search(_LISTENS_LOOPBACK, where["text"][0])
    port = next(g for g in m.groups() if g)
    whence = "a container, through the host's network address" if said[0] or values.get("container_seen") \
        else "another machine"
    return _settings_finding(
        rules, "net.connection_refused", where, values,
        f"the evidence describes one: the server listens on 127.0.0.1:{port} only, and the client calls it from "
        f"{whence}, which never reaches the host's loopback, so the connection is refused.",
        f"Make the server listen on every interface (Ollama: OLLAMA_HOST=0.0.0.0:{port} in its service's "
        f"environment; vLLM, SGLang, llama-server: --host 0.0.0.0), then call it through host.docker.internal "
        f"or the machine's LAN address.")


def _lan_address_of_local_server(events: pl.DataFrame, values: dict, rules: dict):
    """A client given the LAN address of an Ollama or LM Studio, a call that failed, and nothing that says
    the server listens beyond the loopback."""

    if "net.connection_refused" not in rules:
        return None
    text = pl.col("text").fill_null("").str.slice(0, 4096)
    said = events.select(text.str.contains(_LISTENS_WIDE).any().alias("wide"),
                         text.str.contains(_FAILED).any().alias("failed")).row(0)
    if said[0] or not said[1]:
        return None
    where = events.filter(text.str.contains(_LAN_LOCAL_SERVER)).head(1)
    if where.height == 0:
        return None
    address = re.search(_LAN_LOCAL_SERVER, where["text"][0]).group(0)
    ollama = address.endswith(":11434")
    return _settings_finding(
        rules, "net.connection_refused", where, values,
        f"the evidence describes one: the client calls {address}, the LAN address of the machine running "
        f"{'Ollama' if ollama else 'LM Studio'}, and the call failed; "
        + ("Ollama listens on 127.0.0.1:11434 only unless OLLAMA_HOST says otherwise"
           if ollama else "LM Studio serves localhost only unless 'Serve on Local Network' is on")
        + ", so calls from another machine are refused.",
        ("On the server machine set OLLAMA_HOST=0.0.0.0:11434 in the environment Ollama starts with (systemd: "
         "Environment=\"OLLAMA_HOST=0.0.0.0:11434\" in `systemctl edit ollama`; Windows and macOS: a user "
         "environment variable, then quit and restart Ollama)" if ollama else
         "In LM Studio's Developer tab, turn on 'Serve on Local Network'")
        + ", and allow the port through the server machine's firewall.")


# a client's base URL setting that is a bare host and port: an OpenAI-style client appends /chat/completions,
# /embeddings or /models to it, without the /v1 an OpenAI-compatible server's routes start with (Ollama's own API
# takes the bare host, so its port counts only under an OpenAI setting's name)
_BASE_SETTING = (r"""(?i)(?P<name>\b[A-Z][A-Z0-9_]*(?:BASE_URL|API_BASE|BASE)\b|\bbase_?url\b|\bapi_?base(?:_url)?\b|"""
                 r"""\bopenai_api_base\b|--api[_-]base\b|--base[_-]url\b)["']?\s*[=:]?\s*["']?"""
                 r"""(?P<url>https?://[^\s"'/]+?:\d{2,5})/?(?=["'\s,)""" + CJK_TEXT + r"""]|$)""")
_NO_ROUTE = (r"(?i)\b404\b|not found|can(?:no|')t be found|cannot find|can't find|\bno models?\b|"
             r"does(?: not|n't) (?:see|show|list)|not (?:listed|showing)|找不到|不存在")


# a base URL that already ends in a route: the client appends its own (…/v1/chat/completions/chat/completions)
_ROUTE_BASE = re.compile(_BASE_SETTING.split("(?P<url>")[0] + r"(?P<url>https?://[^\s\"']+?/(?:v1/)?"
                         r"(?:chat/completions|completions|embeddings|api/(?:chat|generate|embed(?:dings)?)))/?(?=[\"'\s,)" + CJK_TEXT + r"]|$)")


def _route_in_base_url(events: pl.DataFrame, values: dict, rules: dict):
    """A client's base URL that already names a route, and something failed."""

    if "http.wrong_path" not in rules:
        return None
    text = pl.col("text").fill_null("").str.slice(0, 4096)
    if not events.select((text.str.contains(_NO_ROUTE) | text.str.contains(_FAILED)).any()).item():
        return None
    m, row = _setting_row(events, _ROUTE_BASE, r"(?i)base|--api")
    if m is None:
        return None
    url = m.group("url")
    root = url.split("/api/")[0] + ("/v1" if "openai" in m.group("name").lower() else "") if "/api/" in url else url[:url.find("/v1/") + 3] if "/v1/" in url \
        else url.rsplit("/", 2 if url.endswith("/chat/completions") else 1)[0]
    return _settings_finding(
        rules, "http.wrong_path", row, values,
        f"its settings do: {m.group('name')} is {url}, which already names a route. Clients append their own "
        f"route (/chat/completions, /embeddings) to the base URL, so the call went to a path the server does not have.",
        f"Set {m.group('name')} to the server root, {root}, and let the client add the route.")


def _setting_row(events: pl.DataFrame, rx: re.Pattern, literal: str) -> tuple[re.Match | None, pl.DataFrame | None]:
    """The setting `rx` finds in the first of the rows holding `literal` (200 at most) that has one, and that row."""
    text = pl.col("text").fill_null("").str.slice(0, 4096)
    for row in events.filter(text.str.contains(literal).fill_null(False)).head(200).iter_rows(named=True):
        if (m := rx.search((row["text"] or "")[:4096])) is not None:
            return m, events.filter((pl.col("source") == row["source"]) & (pl.col("line") == row["line"]))
    return None, None


# Ollama's native API prefix given to an OpenAI-style client as its base URL (`api_base: http://localhost:11434/api`):
# the SDK posts to /api/embeddings or /api/chat/completions, Ollama's own routes or none, and the answer is not
# OpenAI's shape (`'NoneType' object is not iterable`) or a 404
_NATIVE_BASE = re.compile(_BASE_SETTING.split("(?P<url>")[0] + r"(?P<url>https?://[^\s\"'/]+:11434/api)/?"
                          r"(?=[\"'\s,)" + CJK_TEXT + r"]|$)")


def _native_base_url(events: pl.DataFrame, values: dict, rules: dict):
    """An OpenAI-style client (the input names OpenAI) given Ollama's native /api prefix as its base URL,
    and something failed."""

    if "http.wrong_path" not in rules:
        return None
    text = pl.col("text").fill_null("").str.slice(0, 4096)
    said = events.select((text.str.contains(_NO_ROUTE) | text.str.contains(_FAILED)).any().alias("failed"),
                         text.str.contains(r"(?i)openai").any().alias("openai")).row(0)
    if not all(said):
        return None
    m, row = _setting_row(events, _NATIVE_BASE, r":11434/api")
    if m is None:
        return None
    url = m.group("url")
    return _settings_finding(
        rules, "http.wrong_path", row, values,
        f"its settings do: {m.group('name')} is {url}, Ollama's native API, given to an OpenAI-style client. "
        f"The client appends /embeddings or /chat/completions to it, which are not Ollama's OpenAI-compatible "
        f"routes: those are under /v1.",
        f"Set {m.group('name')} to {url[:-len('/api')]}/v1.")


def _bare_base_url(events: pl.DataFrame, values: dict, rules: dict):
    """A client's base URL given as a bare host and port, and the evidence says what was called was not found."""

    if "http.wrong_path" not in rules:
        return None
    text = pl.col("text").fill_null("").str.slice(0, 4096)
    if not events.select(text.str.contains(_NO_ROUTE).any()).item():
        return None
    rx = re.compile(_BASE_SETTING)
    for row in events.filter(text.str.contains(r"(?i)base|--api").fill_null(False)).head(200).iter_rows(named=True):
        for m in rx.finditer((row["text"] or "")[:4096]):
            url = m.group("url")
            if url.endswith(":11434") and "openai" not in m.group("name").lower():
                continue
            return _settings_finding(
                rules, "http.wrong_path", events.filter((pl.col("source") == row["source"]) & (pl.col("line") == row["line"])),
                values,
                f"its settings do: {m.group('name')} is {url}, a bare host and port. OpenAI-style clients append "
                f"/chat/completions, /embeddings or /models to it, and an OpenAI-compatible server has those "
                f"routes under /v1, so what was called was not found.",
                f"Set {m.group('name')} to {url}/v1.")
    return None


# Ollama's two embedding routes read different fields: /api/embeddings (the first) reads `prompt`, /api/embed
# (0.3 and later) reads `input`; the other field is ignored and the answer is an empty vector or list
_OLLAMA_EMBED_ROUTES = (("/api/embeddings", '"prompt"', '"input"'), ("/api/embed", '"input"', '"prompt"'))


def _ollama_embed_field(events: pl.DataFrame, values: dict, rules: dict):
    """A pasted call to one of Ollama's embedding routes that carries the other route's field."""

    if "embed.bad_input" not in rules:
        return None
    text = pl.col("text").fill_null("").str.slice(0, 4096)
    for route, wants, sent in _OLLAMA_EMBED_ROUTES:
        pattern = re.escape(route) + (r"(?:[\s\"'?]|$)" if route == "/api/embed" else "")
        said = events.select(text.str.contains(pattern).any().alias("route"),
                             text.str.contains(re.escape(sent) + r"\s*:").any().alias("sent"),
                             text.str.contains(re.escape(wants) + r"\s*:").any().alias("wants")).row(0)
        if not (said[0] and said[1]) or said[2]:
            continue
        row = events.filter(text.str.contains(re.escape(sent) + r"\s*:")).head(1)
        other = '/api/embed with "input"' if route == "/api/embeddings" else '/api/embeddings with "prompt"'
        return _settings_finding(
            rules, "embed.bad_input", row, values,
            f"the request does: it calls Ollama's {route} with {sent}, and {route} reads {wants}; Ollama ignores the "
            f"other field and answers with an empty embedding.",
            f"Send the text as {wants} to {route} (or call {other}).")
    return None


# SGLang builds a vision-language prompt with a conversation template of its own; releases before it matched one
# to the model path (sglang/srt/conversation.py's `register_conv_template_matching_function`s, in 0.4.6 and later)
# needed `--chat-template NAME`, and without it the image tokens are placed wrong: answers unrelated to the
# image or the prompt, worse scores than transformers, or errors. The names and paths as SGLang matches them.
SGLANG_VLM_TEMPLATES = (
    (r"internvl2_5", "internvl-2-5"), (r"llama.*3\.2.*vision", "llama_3_vision"), (r"janus", "janus-pro"),
    (r"llava-v1\.5|llava-next-video-7b", "vicuna_v1.1"), (r"pixtral", "mistral"), (r"deepseek.*vl2", "deepseek-vl2"),
    (r"gme.*qwen.*vl", "gme-qwen2-vl"), (r"qwen.*vl", "qwen2-vl"),
    (r"llava-v1\.6-34b|llava-v1\.6-yi-34b|llava-next-video-34b|llava-onevision-qwen2", "chatml-llava"),
    (r"gemma-3.*it", "gemma-it"), (r"minicpm-v", "minicpmv"), (r"minicpm-o", "minicpmo"), (r"kimi.*vl", "kimi-vl"),
)
SGLANG_MATCHES_TEMPLATES = "0.4.6"
_VLM_ALT = "|".join(f"(?:{p})" for p, _ in SGLANG_VLM_TEMPLATES)
_VLM_PATH = re.compile(r"[\w./-]*(?:" + _VLM_ALT + r")[\w.-]*", re.I)
# what a person says when the template is wrong: no error line at all, only answers that are off
_OFF = (r"(?i)\b(?:wrong|worse|unrelated|irrelevant|off[- ]topic|garbage|gibberish|nonsense|hallucinat\w*|ignor\w*|"
        r"cannot|can't|does(?: not|n't) (?:work|see|answer|match)|not work\w*|fail\w*|errors?|exception|nothing to do with|"
        r"not related|bad (?:answers?|results?|outputs?|quality)|degrad\w*|dropp?(?:s|ed)? from)\b|乱码|答非所问|不对|错误")


def _sglang_vlm_without_template(events: pl.DataFrame, values: dict, rules: dict):
    """SGLang started for a vision-language model without --chat-template, in a release that does not
    pick the template from the model path itself, and the paste says the answers or the calls go wrong."""
    from emblens.rules.operators import version_key

    if "model.chat_template_missing" not in rules or values.get("server_command") != "sglang" \
            or values.get("cmd_chat_template"):
        return None
    version = values.get("sglang_version")
    if isinstance(version, str) and version_key(version) >= version_key(SGLANG_MATCHES_TEMPLATES):
        return None
    text = pl.coalesce(pl.col("message"), pl.col("text")).fill_null("")
    paths = [p for p in values.get("model_paths") or [] if _VLM_PATH.search(str(p))]
    where = events.filter(text.str.contains("(?i)" + _VLM_ALT))
    if not paths and where.height == 0:
        return None
    if events.filter(text.str.contains(_OFF)).height == 0:
        return None
    # the model as the command gives it, else the fullest name a line gives (`Qwen/Qwen2-VL-7B-Instruct-AWQ`
    # before a sentence's `Qwen2-VL`)
    named = [m.group(0) for t in where["text"].head(50).to_list() for m in _VLM_PATH.finditer(t or "")]
    model = str(paths[0]) if paths else max(named, key=lambda m: ("/" in m, len(m)))
    name = next(n for p, n in SGLANG_VLM_TEMPLATES if re.search(p, model, re.I))
    line = model.rsplit("/", 1)[-1]
    row = where.filter(pl.col("text").str.contains(line, literal=True)).head(1) if where.height else where
    return _settings_finding(
        rules, "model.chat_template_missing", row if row.height else where.head(1), values,
        f"its settings do: SGLang{' ' + version if isinstance(version, str) else ''} serves the vision-language model "
        f"`{model}` without --chat-template, and SGLang releases before {SGLANG_MATCHES_TEMPLATES} do not pick its "
        f"template themselves, so images and prompts are laid out wrong.",
        f"Start SGLang with --chat-template {name} (the template SGLang has for this model), or upgrade "
        f"SGLang to {SGLANG_MATCHES_TEMPLATES} or later, which picks it from the model path.")
