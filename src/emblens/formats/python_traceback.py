"""Python traceback anatomy (CPython 3.11+, also when pasted without indentation), and the step
that assembles the chains of every line format's kept rows: which line is an exception, which
chain it belongs to, its root and what the caller finally saw."""

from __future__ import annotations

import re

import polars as pl

TB_HEADER = re.compile(r"^\s*(?:Exception Group )?Traceback \(most recent call last\):\s*$")
TB_CAUSE = re.compile(r"^\s*The above exception was the direct cause of the following exception:\s*$")
TB_CONTEXT = re.compile(r"^\s*During handling of the above exception, another exception occurred:\s*$")
EXC_LINE = re.compile(
    r"^(?P<type>(?:[A-Za-z_]\w*\.)*(?:[A-Za-z_]\w*(?:Error|Exception|Exit|Timeout|Interrupt|Refused|Failure|Warning)"
    r"|OutOfMemoryError|Exception)|(?:[a-z_]\w*\.)+[A-Z]\w*)(?:: (?P<msg>.*))?$"
)
TB_FRAME = r"^\s*File \"[^\"]*\", line \d+|^\s+\S|^\s*[\^~]+\s*$"
TB_NOTABLE = (
    r"Traceback \(most recent call last\)|The above exception was the direct cause|"
    r"During handling of the above exception|(?:^|[\s\]:`])(?:[A-Za-z_]\w*\.)*(?:[A-Za-z_]\w*(?:Error|Exception|Exit|Timeout|Interrupt)|Exception):"
)



def assemble_tracebacks(rows: pl.DataFrame) -> pl.DataFrame:
    """Find Python traceback chains in the kept rows and mark their exception lines.

    Walks only the kept rows (a prefiltered few), keyed by the producing process so that
    interleaved tracebacks of two vLLM processes are not merged. The exception that starts a chain
    is its root; the last one is what the caller finally saw.
    """
    bodies = rows["body"].to_list()
    keys = rows["key"].to_list() if "key" in rows.columns else [None] * len(bodies)
    state: dict[object, str] = {}          # key -> "tb" (inside a traceback) | "sep" (after a separator)
    open_chain: dict[object, list[int]] = {}
    chains: list[list[int]] = []
    links: dict[int, str] = {}              # row -> how it links to the previous exception
    exc: dict[int, tuple[str, str]] = {}
    trace_rows: set[int] = set()
    for i, body in enumerate(bodies):
        if body is None:
            continue
        k = keys[i]
        if TB_HEADER.match(body):
            if state.get(k) != "sep" and open_chain.get(k):
                chains.append(open_chain.pop(k))
            state[k] = "tb"
            trace_rows.add(i)
            continue
        if TB_CAUSE.match(body) or TB_CONTEXT.match(body):
            state[k] = "sep"
            links[i] = "cause" if TB_CAUSE.match(body) else "context"
            trace_rows.add(i)
            continue
        stripped = body.strip("` ")
        m = EXC_LINE.match(stripped) if body[:1] not in (" ", "\t") else None
        if m is None:
            if state.get(k) == "tb":
                trace_rows.add(i)  # a frame or source line inside the traceback
            continue
        if m.group("msg") is None and state.get(k) != "tb":
            continue  # a bare word like `ValueError` outside a traceback is not evidence
        exc[i] = (m.group("type"), (m.group("msg") or "").strip())
        if state.get(k) == "tb":
            open_chain.setdefault(k, []).append(i)
        else:
            if open_chain.get(k):
                chains.append(open_chain.pop(k))
            chains.append([i])
        state[k] = "done"
    chains.extend(c for c in open_chain.values() if c)
    n = len(bodies)
    cols: dict[str, list] = {c: [None] * n for c in (
        "exc_type", "exc_message", "exc_chain", "exc_root_type", "exc_root_message", "exc_outer_type", "exc_position")}
    groups: list = [None] * n
    for number, chain in enumerate(chains, 1):
        types = [exc[i][0] for i in chain]
        chain_text = " -> ".join(types)
        root, outer = chain[0], chain[-1]
        for pos, i in enumerate(chain):
            cols["exc_type"][i], cols["exc_message"][i] = exc[i]
            cols["exc_chain"][i] = chain_text
            cols["exc_root_type"][i], cols["exc_root_message"][i] = exc[root]
            cols["exc_outer_type"][i] = exc[outer][0]
            groups[i] = number
            cols["exc_position"][i] = (
                "only" if len(chain) == 1 else "root" if pos == 0 else "outer" if pos == len(chain) - 1 else "cause"
            )
    kind = rows["kind"].to_list() if "kind" in rows.columns else [None] * n
    for i in trace_rows:
        if kind[i] in (None, "log", "unparsed"):
            kind[i] = "trace"
    for i in exc:
        if cols["exc_type"][i] is not None:
            kind[i] = "exception"
    out = rows.with_columns(
        *[pl.Series(c, v, dtype=pl.String) for c, v in cols.items()],
        pl.Series("kind", kind, dtype=pl.String),
        pl.Series("exc_group", groups, dtype=pl.Int64),
    )
    # Exception lines inherit the time of the nearest earlier stamped line of the same process.
    if "ts" in out.columns:
        out = out.with_columns(
            pl.when(pl.col("kind").is_in(["exception", "trace"]) & pl.col("ts").is_null())
            .then(pl.col("ts").forward_fill().over("key") if "key" in out.columns else pl.col("ts").forward_fill())
            .otherwise(pl.col("ts"))
            .alias("ts")
        )
    return out
