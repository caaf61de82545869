"""Robustness: the same evidence, handed over the ways people really hand it over, must name the
same root cause.

    python bench/robustness.py                 # the pass rate per rule and per presentation
    python bench/robustness.py --units 40      # the first 40 units only (a quick look)
    python bench/robustness.py --failures      # also one line per failing (unit, presentation)
    python bench/robustness.py --every 6       # every 6th unit (what tests/test_robustness.py gates)

A unit is a positive fixture of a rule (`rules/*/NAME.pos-*`) or a corpus case (`tests/corpus/*`)
whose evidence, as it is, names an expected root cause (for a fixture: its rule's id; for a case:
one of `expect`). Units that already miss are counted apart: robustness is about the ones that
work. The key lines are the root finding's evidence lines (at most five) as the input file holds
them; for a curl -v transcript, the transcript (its request, status, headers and body are one piece
of evidence, and people paste it whole). Each presentation changes how the key lines are handed
over and keeps the unit's other files as they are: a cause that two pieces of evidence establish
(a container and a refused localhost, a proxy variable and a 502) still has both. Presentations:

- alone:     the key lines alone, as a plain text file
- quote:     in a markdown quote (`> `)
- indented:  indented by four spaces (a code block in markdown)
- json:      as a JSON string inside an error body (`{"error": {"message": …}}`)
- docker:    behind a compose prefix (`vllm-1  | `), as `docker compose logs` prints them
- kubectl:   behind an RFC 3339 stamp, as `kubectl logs --timestamps` prints them
- crlf:      the unit's files with CRLF line ends
- chinese:   inside a sentence of Chinese prose
- healthy:   the key lines among 1,000 lines of a healthy vLLM log (500 before, 500 after)
- cut:       the file that holds them, cut just after the last one (the unit's other files kept)

A presentation passes when the analysis's first finding is an expected id. Units whose evidence is
not text (captures, HAR, Parquet) get only the presentations of their text (their key lines are
emblens's rendering of an exchange, which a person would not paste): they count as `n/a` for the
others. The figures go to bench/README.md; `tests/test_robustness.py` gates the overall rate.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

import accuracy  # noqa: E402  (the corpus reader)

PRESENTATIONS = ("alone", "quote", "indented", "json", "docker", "kubectl", "crlf", "chinese", "healthy", "cut")
TEXT_SUFFIXES = {".txt", ".log", ".md", ".json", ".out", ".err", ".yaml", ".yml", ""}
MAX_KEY_LINES = 5
MAX_JOINED = 40                     # lines of one joined event taken with its first
MAX_TRANSCRIPT = 60                 # lines of a curl -v transcript taken as its key lines
TRANSCRIPT_ANSWER = "< HTTP/"        # how curl -v shows the answer's status line


@dataclass
class Unit:
    name: str                      # rule id and fixture, or the corpus case
    rule: str                      # the rule id a fixture belongs to, or the case's first expected id
    expect: list[str]
    files: list[Path]
    base: Path                     # the folder the files' relative names start from


@dataclass
class Outcome:
    unit: str
    rule: str
    presentation: str
    ok: bool | None                # None: not applicable
    top: str | None = None


@dataclass
class Key:
    path: Path                     # the file holding the key lines
    numbers: list[int] = field(default_factory=list)   # their 1-based line numbers
    lines: list[str] = field(default_factory=list)


def units(limit: int | None = None) -> list[Unit]:
    from emblens.fixtures import FIXTURE_NAME

    out: list[Unit] = []
    for path in sorted((REPO / "rules").glob("*/*")):
        m = FIXTURE_NAME.match(path.name)
        if not m or m.group("kind") != "pos" or path.name.endswith((".yaml", ".yml")):
            continue
        head = path.parent / f"{m.group('stem')}.yaml"
        if not head.is_file():
            continue
        rule = str((yaml.safe_load(head.read_text(encoding="utf-8")) or {}).get("id") or "")
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        out.append(Unit(f"{rule}:{path.name}", rule, [rule], files, path if path.is_dir() else path.parent))
    for case in accuracy.cases():
        out.append(Unit(f"corpus:{case.name}", case.expect[0], list(case.expect), list(case.files), case.path))
    return out[:limit] if limit else out


def _analyze(paths: list[Path], ruleset):
    from emblens.diagnose import analyze

    a = analyze([str(p) for p in paths], ruleset=ruleset)
    return a.findings[0] if a.findings else None


def _key(unit: Unit, finding) -> Key | None:
    """The file and lines of the root finding's evidence, as the file holds them."""
    by_path = {str(p): p for p in unit.files}
    for ev in finding.evidence:
        source = ev.source.split(":", 1)[0] if ev.source not in by_path else ev.source
        path = by_path.get(ev.source) or by_path.get(source)
        if path is None or path.suffix.lower() not in TEXT_SUFFIXES or not ev.line:
            continue
        numbers = sorted({e.line for e in finding.evidence if e.source == ev.source and e.line})[:MAX_KEY_LINES]
        lines = path.read_bytes().decode("utf-8", "replace").splitlines()
        if any(x.startswith(TRANSCRIPT_ANSWER) for x in lines[:MAX_TRANSCRIPT]):
            # an exchange (curl -v) is one piece of evidence: its request, status, headers and body are read together
            numbers = list(range(1, min(len(lines), MAX_TRANSCRIPT) + 1))
        else:
            # an event the reader joined from several lines (a JSON body under its log line) is one piece of
            # evidence: its following lines come with it, as far as the evidence's text holds them
            texts = {e.line: _squash(e.text) for e in finding.evidence if e.source == ev.source and e.line}
            numbers = sorted({m for n in numbers for m in _joined(lines, n, texts.get(n, ""))})
        picked = [lines[n - 1] for n in numbers if 0 < n <= len(lines)]
        if picked:
            return Key(path, numbers, picked)
    return None


def _squash(text: str) -> str:
    return " ".join(text.split())


def _joined(lines: list[str], n: int, text: str) -> list[int]:
    """Line `n` and the lines after it that the evidence's text goes on with (at most `MAX_JOINED`)."""
    out, rest = [n], text
    at = rest.find(_squash(lines[n - 1])[:40]) if 0 < n <= len(lines) else -1
    if at < 0:
        return out
    rest = rest[at + len(_squash(lines[n - 1])):]
    for m in range(n + 1, min(len(lines), n + MAX_JOINED) + 1):
        piece = _squash(lines[m - 1])
        if not piece or not rest.lstrip().startswith(piece[:24]):
            break
        out.append(m)
        rest = rest.lstrip()[len(piece):]
    return out


def _healthy(n: int, seed: int) -> list[str]:
    """`n` lines of a healthy vLLM 0.11 server: access lines and engine metrics."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        if i % 50 == 0:
            out.append(f"(APIServer pid=3999075) INFO 11-20 09:{i // 60 % 60:02d}:{i % 60:02d} [loggers.py:123] Engine 000: "
                       f"Avg prompt throughput: {rng.uniform(2000, 9000):.1f} tokens/s, Avg generation throughput: "
                       f"{rng.uniform(0, 900):.1f} tokens/s, Running: {rng.randint(0, 40)} reqs, Waiting: 0 reqs, "
                       f"GPU KV cache usage: {rng.uniform(1, 60):.1f}%, Prefix cache hit rate: {rng.uniform(0, 50):.1f}%")
        else:
            out.append(f'(APIServer pid=3999075) INFO:     10.0.{rng.randint(0, 255)}.{rng.randint(1, 254)}:'
                       f'{rng.randint(32768, 60999)} - "POST /v1/embeddings HTTP/1.1" 200 OK')
    return out


def presentations(unit: Unit, key: Key | None, tmp: Path) -> dict[str, list[Path] | None]:
    """Each presentation's input files (None: not applicable to this unit)."""
    out: dict[str, list[Path] | None] = {}
    d = tmp / "p"
    d.mkdir(parents=True, exist_ok=True)

    def one(name: str, lines: list[str], suffix: str = ".txt", newline: str = "\n") -> list[Path]:
        # the key lines handed over this way; the unit's other files (a second piece of evidence) as they are
        path = d / f"{name}{suffix}"
        path.write_bytes((newline.join(lines) + newline).encode("utf-8"))
        return [*(p for p in unit.files if key is None or p != key.path), path]

    text_files = [p for p in unit.files if p.suffix.lower() in TEXT_SUFFIXES]
    if key is None:
        out.update({p: None for p in PRESENTATIONS})
    else:
        k = key.lines
        out["alone"] = one("alone", k)
        out["quote"] = one("quote", [f"> {x}" for x in k], ".md")
        out["indented"] = one("indented", [f"    {x}" for x in k], ".md")
        out["json"] = one("json", [json.dumps({"error": {"message": "\n".join(k), "type": "BadRequestError",
                                                         "param": None, "code": 400}})], ".json")
        out["docker"] = one("docker", [f"vllm-1  | {x}" for x in k], ".log")
        out["kubectl"] = one("kubectl", [f"2025-11-20T09:14:{i:02d}.123456789Z {x}" for i, x in enumerate(k)], ".log")
        out["chinese"] = one("chinese", [f"我调用服务的时候报错了：{k[0]}", *k[1:], "请问这是什么原因？谢谢！"], ".md")
        healthy = _healthy(1000, hash(unit.name) & 0xFFFF)
        out["healthy"] = one("healthy", [*healthy[:500], *k, *healthy[500:]], ".log")
        lines = key.path.read_bytes().decode("utf-8", "replace").splitlines()
        cut = d / "cut"
        cut.mkdir(exist_ok=True)
        others = [p for p in unit.files if p != key.path]
        target = cut / key.path.name
        target.write_bytes(("\n".join(lines[: max(key.numbers)]) + "\n").encode("utf-8"))
        out["cut"] = [*others, target]
    if text_files:
        crlf = d / "crlf"
        crlf.mkdir(exist_ok=True)
        paths = []
        for p in unit.files:
            if p in text_files:
                target = crlf / p.relative_to(unit.base).as_posix().replace("/", "__")
                target.write_bytes(p.read_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))
                paths.append(target)
            else:
                paths.append(p)
        out["crlf"] = paths
    else:
        out["crlf"] = None
    return out


def run(selected: list[Unit], ruleset, jobs: int | None = None) -> tuple[list[Outcome], list[str]]:
    """Every presentation of every unit that names its cause as it is; and the units that don't.
    `jobs` worker processes (default: the cores, at most 4; each loads the built-in rules, so
    only when `ruleset` is those), in the units' order."""
    import os

    jobs = jobs or min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
    if jobs > 1 and len(selected) >= 20:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor
        from concurrent.futures.process import BrokenProcessPool

        try:
            with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn"), initializer=_worker_start) as pool:
                done = list(pool.map(_worker_run, selected, chunksize=2))
        except BrokenProcessPool:     # a script that calls this without `if __name__ == "__main__":` cannot spawn
            print("robustness: worker processes could not start; running in this process", file=sys.stderr)
            done = [_run_unit(unit, ruleset) for unit in selected]
    else:
        done = [_run_unit(unit, ruleset) for unit in selected]
    outcomes = [o for mine, _ in done for o in mine]
    missed = [why for _, why in done if why]
    return outcomes, missed


_WORKER: dict = {}    # in a worker process of `run`: its rule set


def _worker_start() -> None:
    from emblens.rules.loader import load_rules

    _WORKER["ruleset"] = load_rules()


def _worker_run(unit: Unit) -> tuple[list[Outcome], str | None]:
    return _run_unit(unit, _WORKER["ruleset"])


def _run_unit(unit: Unit, ruleset) -> tuple[list[Outcome], str | None]:
    """The outcomes of one unit's presentations, or why the unit is left out."""
    try:
        top = _analyze(unit.files, ruleset)
    except Exception as e:     # a crash is a miss of the unit, said as such
        return [], f"{unit.name}: crashed ({type(e).__name__})"
    if top is None or top.rule not in unit.expect:
        return [], f"{unit.name}: {'no finding' if top is None else top.rule}"
    key = _key(unit, top)
    outcomes: list[Outcome] = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, paths in presentations(unit, key, Path(tmp)).items():
            if paths is None:
                outcomes.append(Outcome(unit.name, unit.rule, name, None))
                continue
            try:
                got = _analyze(paths, ruleset)
            except Exception as e:
                outcomes.append(Outcome(unit.name, unit.rule, name, False, f"crash {type(e).__name__}"))
                continue
            rule = got.rule if got else None
            outcomes.append(Outcome(unit.name, unit.rule, name, rule in unit.expect, rule))
    return outcomes, None


def rate(outcomes: list[Outcome]) -> float:
    counted = [o for o in outcomes if o.ok is not None]
    return sum(o.ok for o in counted) / len(counted) if counted else 1.0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--units", type=int, help="only the first N units")
    p.add_argument("--every", type=int, default=1, help="only every Nth unit (tests/test_robustness.py runs every 6th)")
    p.add_argument("--failures", action="store_true", help="one line per failing (unit, presentation)")
    p.add_argument("names", nargs="*", help="only units whose name contains one of these")
    a = p.parse_args(argv)
    from emblens.rules.loader import load_rules

    chosen = [u for u in units(a.units) if not a.names or any(n in u.name for n in a.names)][::max(1, a.every)]
    outcomes, missed = run(chosen, load_rules())
    counted = [o for o in outcomes if o.ok is not None]
    print(f"{len(chosen)} units; {len(chosen) - len(missed)} name their cause as they are "
          f"({len(missed)} do not, left out); {len(counted)} presentations run, {len(outcomes) - len(counted)} n/a\n")
    print(f"{'presentation':<14}{'runs':>6}{'pass':>8}")
    by_p: dict[str, Counter] = defaultdict(Counter)
    for o in counted:
        by_p[o.presentation]["n"] += 1
        by_p[o.presentation]["ok"] += o.ok
    for name in PRESENTATIONS:
        c = by_p.get(name)
        if c:
            print(f"{name:<14}{c['n']:>6}{c['ok'] / c['n']:>8.0%}")
    print(f"\n{'rule':<36}{'runs':>6}{'pass':>8}")
    by_r: dict[str, Counter] = defaultdict(Counter)
    for o in counted:
        by_r[o.rule]["n"] += 1
        by_r[o.rule]["ok"] += o.ok
    for rule, c in sorted(by_r.items()):
        print(f"{rule:<36}{c['n']:>6}{c['ok'] / c['n']:>8.0%}")
    print(f"\noverall: {rate(outcomes):.1%} of {len(counted)}")
    if a.failures:
        print()
        for o in counted:
            if not o.ok:
                print(f"FAIL {o.unit} [{o.presentation}] -> {o.top}")
        for m in missed:
            print(f"MISS {m}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
