"""One replica analysed by `diagnose.run`, as `emblens analyze` would, and turned into rows: only
rows come back to the driver (findings, the replica's coverage, its failing requests by minute,
its unexplained error lines), never the event table. A replica that cannot be read, raises, or
runs past its time is one row saying so; the fleet goes on.

Runs in a worker process (the pool's or Ray's): it must be importable and picklable, and loads the
rule set once per process.
"""

from __future__ import annotations

import functools
import os
import re
import signal
import socket
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from emblens.errors import InputError
from emblens.frontends.fleet.replicas import Replica, filesystem, is_url
from emblens.settings import Settings


@dataclass(frozen=True)
class Conf:
    """What every task is given: the settings `emblens analyze` would use, the time a replica may
    take, and where to write its event table (`--events`), if anywhere."""

    settings: Settings
    timeout_s: float = 600.0
    events_dir: str | None = None
    storage: dict | None = None      # fsspec's options for object storage (`endpoint_url`)


class _TimedOut(Exception):
    pass


def _ruleset(settings: Settings):
    """The rule set of these settings, loaded once a worker process (rule sets are immutable):
    keyed by the folders and the size and time of every file in them, so an edited rule is read."""
    stamp = tuple((str(p), p.stat().st_mtime_ns, p.stat().st_size) for d in settings.rule_dirs
                  for p in sorted(Path(d).rglob("*")) if p.is_file())
    return _load_rules(settings.rule_dirs, settings.include_builtin, stamp)


@functools.lru_cache(maxsize=4)
def _load_rules(rule_dirs: tuple, include_builtin: bool, stamp: tuple):  # noqa: ARG001 (stamp: the cache key)
    from emblens.rules.loader import load_rules

    return load_rules(rule_dirs, include_builtin=include_builtin)


def run_replica(replica: Replica, conf: Conf) -> dict:
    """The rows of one replica: {"replica": {...}, "findings": [...], "unexplained": [...],
    "failing": [...]}. Never raises for the replica's own sake."""
    start = time.perf_counter()
    worker = f"{socket.gethostname()}:{os.getpid()}"
    base = _identity(replica, worker)
    limits = conf.settings.limits
    if replica.size > limits.max_total_bytes:
        return failed_rows(replica, "limit", f"{replica.size:,} bytes, over the {limits.max_total_bytes:,} bytes an "
                           "analysis reads", seconds=_since(start), worker=worker)
    if not replica.files:
        return failed_rows(replica, "empty", "no file in it", seconds=_since(start), worker=worker)
    alarm = _alarm(conf.timeout_s)
    try:
        from emblens import diagnose
        from emblens.run import Run

        with _local(replica, conf) as (files, root):
            analysis = diagnose.run(files, Run(conf.settings, ruleset=_ruleset(conf.settings)))
            rows = _rows(replica, analysis, base, root)
            if conf.events_dir:
                _write_events(replica, analysis, conf.events_dir)
    except _TimedOut:
        return failed_rows(replica, "timeout", f"still running after {conf.timeout_s:g} s (--replica-timeout)",
                           seconds=_since(start), worker=worker)
    except Exception as e:     # one replica's failure is its row, never the fleet's
        from emblens.errors import EmblensError
        from emblens.events.redact import mask_text, printable

        said = str(e) if isinstance(e, EmblensError) else f"emblens could not analyse it ({type(e).__name__}: {e})"
        return failed_rows(replica, "unreadable" if isinstance(e, EmblensError) else "failed",
                           printable(mask_text(_named(said, replica)))[:300], seconds=_since(start), worker=worker)
    finally:
        _disarm(alarm)
    rows["replica"]["seconds"] = _since(start)
    return rows


def _named(message: str, replica: Replica) -> str:
    """A message with the replica's paths (or the folder its objects were fetched into) named
    as the replica."""
    message = message.replace(replica.root, replica.name).removeprefix(replica.name + ": ")
    return re.sub(r"\S*emblens-replica-[^/\s]+/", replica.name.replace("\\", "/") + "/", message)


@contextmanager
def _local(replica: Replica, conf: Conf):
    """(the replica's files as local paths, the folder they are relative to): as they are, or,
    for object storage, fetched by this worker into a temporary folder (the same layout below
    the replica's prefix), removed after."""
    if not is_url(replica.root):
        yield list(replica.files), replica.root
        return
    fs, _ = filesystem(replica.root, conf.storage)
    with tempfile.TemporaryDirectory(prefix="emblens-replica-") as tmp:
        files = []
        for url in replica.files:
            rel = url[len(replica.root) + 1:] if url.startswith(replica.root + "/") else url.rsplit("/", 1)[-1]
            local = Path(tmp) / rel
            local.parent.mkdir(parents=True, exist_ok=True)
            try:
                fs.get_file(filesystem(url, conf.storage)[1], str(local))
            except (OSError, ValueError) as e:
                raise InputError(f"{replica.name}/{rel}: cannot read it from object storage ({e})") from None
            files.append(str(local))
        yield files, tmp


def _since(start: float) -> float:
    return round(time.perf_counter() - start, 3)


def _identity(replica: Replica, worker: str | None) -> dict:
    """The columns of a replica's row that say which replica it is and where it ran."""
    return {"replica": replica.name, "location": replica.root, "files": len(replica.files), "bytes": replica.size,
            "worker": worker}


def failed_rows(replica: Replica, status: str, reason: str, *, seconds: float | None = None,
                worker: str | None = None) -> dict:
    """The rows of a replica that was not analysed: its row, saying why; nothing else."""
    return {"replica": {**_identity(replica, worker), "status": status, "reason": reason, "seconds": seconds},
            "findings": [], "unexplained": [], "failing": []}


def _alarm(seconds: float):
    """A timer that interrupts this task in its process's main thread (where the pool and Ray run
    tasks); nothing where there is no such timer or this is not the main thread."""
    if not hasattr(signal, "setitimer") or seconds <= 0:
        return None
    try:
        def ring(*_):
            raise _TimedOut()
        old = signal.signal(signal.SIGALRM, ring)
    except ValueError:      # not the main thread
        return None
    signal.setitimer(signal.ITIMER_REAL, seconds)
    return old


def _disarm(old) -> None:
    if old is not None:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def _rel(source: str, root: str) -> str:
    """A member's label relative to the replica's folder or bundle."""
    root = str(root)
    if source.startswith(root.rstrip("/") + "/"):
        return source[len(root.rstrip("/")) + 1:]
    if source.startswith(root):
        return Path(root).name + source[len(root):]
    return source


def _rows(replica: Replica, analysis, base: dict, root: str) -> dict:
    """The rows of an analysis; members' labels relative to `root` (the replica's folder, or the
    temporary folder its objects were fetched into)."""
    import polars as pl

    events = analysis.events
    name = replica.name
    findings = []
    for f in analysis.findings:
        e = f.evidence[0] if f.evidence else None
        findings.append({
            "replica": name, "rule": f.rule, "title": f.title, "severity": f.severity, "confidence": float(f.confidence),
            "role": f.role, "explained_by": f.explained_by, "cause": f.cause, "count": int(f.count),
            "first_seen": f.first_seen, "last_seen": f.last_seen, "summary": f.summary,
            "requests_matched": getattr(f, "requests", None) or None, "requests_seen": getattr(f, "requests_seen", None) or None,
            "evidence_source": _rel(e.source, root) if e else None, "evidence_line": e.line if e else None,
            "evidence_text": e.text if e else None,
        })
    unexplained = [{"replica": name, "template": u.template, "count": int(u.count),
                    "example_source": _rel(u.example.source, root), "example_line": u.example.line,
                    "example_text": u.example.text} for u in analysis.unexplained]
    seen = analysis.traffic
    by_status: list[dict] = []
    failing: list[dict] = []
    if seen is not None and seen.requests.height:
        req = seen.requests
        by_status = [{"status": int(s), "requests": int(n)} for s, n in
                     req.group_by("status").agg(pl.col("requests").sum()).sort("status").iter_rows() if s is not None]
        bad = (req.filter((pl.col("status") >= 400) & pl.col("ts").is_not_null())
               .group_by("ts", "status").agg(pl.col("requests").sum()).sort("ts", "status"))
        failing = [{"replica": name, "minute": ts, "status": int(s), "requests": int(n)} for ts, s, n in bad.iter_rows()]
    errors = 0
    first = last = None
    if events.height:
        errors = int(events.select((pl.col("level").is_in(["ERROR", "CRITICAL"]) |
                                    (pl.col("kind") == "exception")).sum()).item())
        span = events.select(pl.col("ts").min().alias("a"), pl.col("ts").max().alias("b")).row(0)
        first, last = span
    row = {**base, "status": "ok", "reason": None,
           "inputs": [{"source": _rel(i.source, root), "kind": i.kind, "lines": int(i.lines), "events": int(i.events)}
                      for i in analysis.inputs],
           "lines": sum(int(i.lines) for i in analysis.inputs), "events": int(events.height),
           "requests": sum(r["requests"] for r in by_status), "requests_by_status": by_status,
           "failed_requests": sum(r["requests"] for r in by_status if r["status"] >= 400), "errors": errors,
           "first_ts": first, "last_ts": last,
           "skipped": [f"{_rel(s.label, root)}: {s.reason}" for s in analysis.skipped],
           "findings": len(analysis.findings), "root_cause": analysis.findings[0].rule if analysis.findings else None,
           "notices": list(analysis.notices)}
    return {"replica": row, "findings": findings, "unexplained": unexplained, "failing": failing}


def _write_events(replica: Replica, analysis, folder: str) -> None:
    """The replica's event table (masked, as `emblens events` writes it) as one Parquet file."""
    import hashlib

    import polars as pl

    from emblens import outfiles

    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in replica.name)[:80]
    digest = hashlib.sha1(replica.name.encode("utf-8")).hexdigest()[:8]
    path = Path(folder) / f"{safe}-{digest}.parquet"
    events = analysis.events.with_columns(pl.lit(replica.name).alias("replica"))
    with outfiles.replacing(path) as f:
        events.write_parquet(f)
