"""A chunk as a frame of lines: colours and CRs removed, container wrappers (`kubectl logs
--timestamps`, docker's json-file driver, `docker compose logs` prefixes) unwrapped, and a server log's `200 OK` access lines set
apart in one query. Strings that outlive their chunk are copied (`fresh`)."""

from __future__ import annotations

import re
from collections import Counter

import polars as pl

from emblens.reading.chunks import Chunk, fresh
from emblens.reading.context import MAX_LINE_BYTES
from emblens.reading.routine import KV_USAGE, waiting

ANSI = r"\x1b\[[0-9;?]*[A-Za-z]"
ANSI_BYTES = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]")

# Container wrappers: `kubectl logs --timestamps` and docker's json-file driver.
KUBECTL_TS = r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})) "
DOCKER_OPEN = '{"log":"'
DOCKER_JSON = "^" + re.escape(DOCKER_OPEN)
# `docker compose logs`: each line behind its service's name and a bar (`vllm-1  | `, `open-webui  | `)
COMPOSE = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}\s+\| ?"


def lines_frame(chunk: Chunk | bytes, first_line: int = 1) -> pl.DataFrame:
    """One row per line: `line` (1-based), `raw` (ANSI colours and trailing CR removed)."""
    if isinstance(chunk, bytes):
        chunk = Chunk([chunk])
    try:
        df = pl.read_lines(chunk.parts, name="raw")
    except pl.exceptions.ComputeError:
        # undecodable bytes: replace them rather than lose the line
        df = pl.read_lines([p.decode("utf-8", "replace").encode("utf-8") for p in chunk.parts], name="raw")
    raw = df["raw"]
    if chunk.drop_first:            # the block's first row is the tail of the head part's line
        raw = pl.concat([raw.head(1), raw.slice(2)])
    if chunk.drop_last:             # cut line: it comes whole with the next chunk
        raw = raw.head(raw.len() - 1)
    if chunk.contains(b"\x1b"):
        raw = strip_ansi(raw, chunk.parts[-1])
    if chunk.contains(b"\r"):
        raw = raw.str.replace_all("\r", "", literal=True)
    return pl.DataFrame({"line": pl.int_range(first_line, first_line + raw.len(), dtype=pl.Int64, eager=True), "raw": raw})


def server_lines(chunk: Chunk, ok_line: str, requests: tuple[str, ...] = (),
                 metrics: tuple[str, ...] = ()) -> tuple[pl.DataFrame, int, int] | None:
    """A server log's chunk in one query: its lines that do not end in `ok_line` (`line`, numbered
    1..n in the chunk, `raw` written anew, `wrap_ts`), its number of lines, and how many lines
    longer than MAX_LINE_BYTES were cut here (OK lines, counted and never kept; routine lines cut
    by `routine_rows`). What `lines_frame`, `unwrap` and the
    OK test of `engine.scan_chunk` give, without a frame of all the chunk's lines or a dozen calls
    on it. None when the chunk needs them: colours, CRs, bytes that are not UTF-8, a container
    wrapper. When those lines are many, the routine ones among them are cut and folded (`routine_rows`)."""
    if chunk.contains(b"\x1b") or chunk.contains(b"\r"):
        return None
    try:
        df = pl.read_lines(chunk.parts, name="raw")
    except pl.exceptions.ComputeError:
        return None
    rows = df.height
    head = df["raw"].head(202).to_list()      # the first 200 lines, as `unwrap` sees them
    if chunk.drop_last and len(head) == rows:
        head.pop()
    if chunk.drop_first:
        del head[1:2]
    if wrapper(head[:200]) is not None:
        return None
    i = pl.col("i").cast(pl.Int64)
    raw = pl.col("raw")
    ok, long = raw.str.ends_with(ok_line), raw.str.len_bytes() > MAX_LINE_BYTES
    keep = ~ok | long
    if chunk.drop_first:       # the block's first row is the tail of the head part's line
        keep = keep & (i != 1)
    if chunk.drop_last:        # cut line: it comes whole with the next chunk
        keep = keep & (i != rows - 1)
    line = (i + 1 - (i >= 2).cast(pl.Int64)) if chunk.drop_first else i + 1
    # the lines are written anew (they outlive the chunk), but for a chunk with many: `routine_rows`
    # cuts them first, and writes what it gives anew
    fold = bool(requests or metrics) and rows - int(df.select(ok.sum()).item()) >= FOLD_FROM
    text = raw if fold else pl.concat_str([raw, pl.lit("")])
    part = (df.lazy().with_row_index("i").filter(keep)
            .select(line.alias("line"), text.alias("raw"), ok.alias("ok"), long.alias("long"))
            .collect())
    ok_cut = 0
    if part["long"].any():
        ok_cut = part.filter(pl.col("ok") & pl.col("long")).height
        part = part.filter(~pl.col("ok"))
    n = rows - chunk.drop_first - chunk.drop_last
    part = part.select("line", "raw", pl.lit(None, dtype=pl.Datetime("us")).alias("wrap_ts"))
    if fold:
        part, long_cut = routine_rows(part, requests, metrics)
        ok_cut += long_cut
    return part, n, ok_cut


# A chunk's other lines are cut and folded from this many: a busy server's chunk has a few hundred,
# where it would cost more calls than it saves
FOLD_FROM = 2_048


def routine_rows(part: pl.DataFrame, requests: tuple[str, ...], metrics: tuple[str, ...]) -> tuple[pl.DataFrame, int]:
    """The routine lines a server writes for each request or step, among a chunk's other lines
    (`server_lines`), cut and folded: they are only counted, never read (`Tally`).

    They are the lines holding one of `requests` (the format's `Source.requests`: vLLM's `]
    Received request <id>: prompt: '…'`, whose prompt is the user's text) or of `metrics` (vLLM's
    periodic `Avg prompt throughput: …`, SGLang's per-batch `Prefill batch, …`), and no access
    line. Such a line is given up to its literal (its level, stamp and logger: its clock, all that
    is read of it), with `_kind` ("request", "metric") and, for a metrics line, `_kv`, its KV-cache
    usage (`routine.KV_USAGE`, read on the whole line) and `_wait`, the requests it says wait (read
    on the last line of each run, below). A run of them the same once cut (the same
    kind, second and logger; only OK lines between them) is one row, standing for `_weight` lines,
    with the highest `_kv` of the run. A request-logging or per-batch log is half such lines, and
    their prompts were most of its bytes. Also returned: how many of the lines cut were longer than
    MAX_LINE_BYTES (counted as cut, as `engine.finish` counts the others)."""
    raw = pl.col("raw")
    access = raw.str.contains("HTTP/1.", literal=True)      # never cut: `Tally.marks` reads its status
    at_req, at_metric = _find(raw, requests), _find(raw, metrics)
    kind = pl.when(access).then(None).when(at_req.is_not_null()).then(pl.lit("request")).when(
        at_metric.is_not_null()).then(pl.lit("metric"))
    part = part.with_columns(kind.alias("_kind"), pl.coalesce(at_req, at_metric).alias("_at"),
                             pl.lit(None, dtype=pl.Float64).alias("_kv"))
    at = (part["_kind"] == "metric").fill_null(False).arg_true()
    if at.len():
        found = part["raw"].gather(at).str.extract_groups(KV_USAGE)
        part = part.with_columns(part["_kv"].scatter(at, found.struct.field("pct").cast(pl.Float64).fill_null(
            found.struct.field("share").cast(pl.Float64) * 100)))
    cut = pl.col("_kind").is_not_null()
    long = int(part.select((cut & (raw.str.len_bytes() > MAX_LINE_BYTES)).sum()).item())
    part = part.select("line", pl.when(cut).then(pl.concat_str([raw.str.head(pl.col("_at")), pl.lit("")])).otherwise(raw)
                       .alias("raw"), raw.alias("_whole"), "wrap_ts", "_kind", "_kv",
                       pl.lit(1, dtype=pl.Int64).alias("_weight"))
    kind, text = part["_kind"], part["raw"]
    same = (kind.is_not_null() & (kind == kind.shift(1)) & (text == text.shift(1))).fill_null(False)
    # the requests waiting, read on the last metrics line of each run (one second of one logger):
    # the queue moves little within a second, and reading every per-batch line doubled the cost
    last = ((kind == "metric") & ~same.shift(-1).fill_null(False)).fill_null(False).arg_true()
    wait = pl.repeat(None, part.height, dtype=pl.Int64, eager=True)
    if last.len():
        wait = wait.scatter(last, part["_whole"].gather(last).to_frame("raw").select(waiting(raw)).to_series())
    part = part.with_columns(wait.alias("_wait")).drop("_whole")
    if not same.any():      # written anew: the lines left uncut still point into the uncut lines' buffers
        return fresh(part), long
    run = (~same).cum_sum().alias("_run")
    first = [pl.col(c).first() for c in ("line", "raw", "wrap_ts", "_kind")]
    return fresh(part.with_columns(run).group_by("_run", maintain_order=True)
                 .agg(*first, pl.col("_kv").max(), pl.col("_wait").max(), pl.col("_weight").sum()).drop("_run")), long


def _find(raw: pl.Expr, literals: tuple[str, ...]) -> pl.Expr:
    """Where the first of `literals` starts in each line (null where none is)."""
    if not literals:
        return pl.lit(None, dtype=pl.Int64)
    # literal finds: a regex of the alternatives would be compiled anew on every chunk
    return pl.min_horizontal(*(raw.str.find(x, literal=True).cast(pl.Int64) for x in literals))


def strip_ansi(raw: pl.Series, chunk: bytes) -> pl.Series:
    """Remove ANSI colour codes. A log repeats a handful of sequences, so they are removed as
    literals (one Aho-Corasick pass) and the regex runs only on the rare lines still holding one."""
    seqs = sorted({m.decode("ascii") for m in ANSI_BYTES.findall(chunk, 0, 1 << 20)})
    if seqs:
        raw = raw.str.replace_many(seqs, [""] * len(seqs))
    left = raw.str.contains("\x1b", literal=True)
    if left.any():
        idx = left.arg_true()
        raw = raw.scatter(idx, raw.gather(idx).str.replace_all(ANSI, ""))
    return raw


def wrapper(head: list[str]) -> str | None:
    """"kubectl", "docker" or "compose" when most of these lines (a chunk's first 200) carry that container
    wrapper. Plain tests first (a stamp's dash at the 5th character, docker's opening), so that a
    chunk with neither, every chunk of most logs, costs no polars call here."""
    half = len(head) / 2
    if (sum(line[4:5] == "-" for line in head) > half
            and (pl.Series(head, dtype=pl.String).str.contains(KUBECTL_TS).mean() or 0) > 0.5):
        return "kubectl"
    if sum(line.startswith(DOCKER_OPEN) for line in head) > half:
        return "docker"
    if (sum(" | " in line[:72] or line[:72].rstrip().endswith(" |") for line in head) > half
            and (pl.Series(head, dtype=pl.String).str.contains(COMPOSE).mean() or 0) > 0.5):
        return "compose"
    return None


# a compose service that is a model server, by the names its images and services go by
_SERVER_SERVICE = re.compile(r"(?i)vllm|sglang|ollama|llama|tei\b|text-embeddings|text-generation|tgi\b|infinity|localai|"
                             r"xinference|lmdeploy|koboldcpp|triton|lm-?studio|embed|rerank|model|inference|server")
# COMPOSE's service name, without the replica number compose adds (`open-webui-1`)
_SERVICE = re.compile(r"^([A-Za-z0-9][A-Za-z0-9_.-]{0,62}?)(?:[-_]\d+)?\s+\| ?")


def client_service(head: list[str]) -> bool:
    """Whether the compose service most of these lines (a chunk's head) carry is not a model server's:
    a client's log (`open-webui  | `), where localhost is the client's own container."""
    names = Counter(m.group(1) for line in head if (m := _SERVICE.match(line)))
    return bool(names) and not _SERVER_SERVICE.search(names.most_common(1)[0][0])


_READ = "read"


def unwrap(lines: pl.DataFrame, kind: str | None = _READ) -> pl.DataFrame:
    """Strip kubectl timestamps, compose prefixes or docker json-file wrapping; the wrapper's time
    goes to `wrap_ts`. `kind`: the wrapper, as `wrapper` reads the chunk's head (None: none), read
    here unless the caller has read it."""
    raw = pl.col("raw")
    if kind == _READ:
        kind = wrapper(lines["raw"].head(200).to_list())
    if kind == "kubectl":
        stamp = raw.str.extract(KUBECTL_TS, 1)
        return lines.with_columns(
            raw.str.replace(KUBECTL_TS, "").alias("raw"),
            _iso(stamp).alias("wrap_ts"),
        )
    if kind == "compose":
        return lines.with_columns(raw.str.replace(COMPOSE, "").alias("raw"),
                                  pl.lit(None, dtype=pl.Datetime("us")).alias("wrap_ts"))
    if kind == "docker":
        is_json = raw.str.starts_with('{"log":')
        log = raw.str.json_path_match("$.log").str.strip_chars_end("\n").str.replace_all(ANSI, "").str.replace_all(r"\r", "")
        return lines.with_columns(
            pl.when(is_json).then(log).otherwise(raw).alias("raw"),
            _iso(pl.when(is_json).then(raw.str.json_path_match("$.time"))).alias("wrap_ts"),
        )
    return lines.with_columns(pl.lit(None, dtype=pl.Datetime("us")).alias("wrap_ts"))


def _iso(expr: pl.Expr) -> pl.Expr:
    return (
        expr.str.replace(r"(\.\d{6})\d+", "$1")
        .str.replace(r"Z$", "+00:00")
        .str.to_datetime("%Y-%m-%dT%H:%M:%S%.f%:z", strict=False, time_zone="UTC")
        .dt.replace_time_zone(None)
        .cast(pl.Datetime("us"))
    )
