"""Accuracy on the corpus of real incidents (tests/corpus): how often emblens names the cause
the thread established, read three ways, as users hand evidence over.

    python bench/accuracy.py              # the summary, per-class and per-source tables
    python bench/accuracy.py --cases      # one line per case and way, misses first

Ways: `zip` (the case's files zipped), `folder` (the files as they are), `paste` (one markdown
file: a sentence, a heading per file and its content in a fence, as a GitHub comment holds it).
top-1: findings[0] is an expected id and the report quotes every `quote` value.
recall: the share of a case's classes found among its findings. false alarms: findings whose id
is none of the case's classes (an explained symptom of an expected root cause is not counted).

The composition table counts cases by what they show (`KINDS`: a regex over the thread URL, the
classes, the evidence text, and what case.yaml states from the thread: its cause and the names of
its versions; `kinds:` in a case.yaml overrides it), and cases with two or more evidence files.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import zipfile
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO / "tests" / "corpus"
WAYS = ("zip", "folder", "paste")
# what a case counts as in the composition table: (where to look, regex), any hit counts
# "case" is what case.yaml states from the thread: the cause and the versions' names (a GPUStack or
# Xinference thread whose server was SGLang counts as SGLang even when the paste never names it)
KINDS = {
    "sglang": [("url", r"sgl-project/"), ("text", r"(?i)\bsglang\b"), ("case", r"(?i)\bsglang\b")],
    # a client's own exception: its frames (openai, httpx, requests, aiohttp, ollama's client, LiteLLM, LangChain,
    # LlamaIndex) or its error types, including requests/urllib3's connection and HTTP errors and aiohttp's
    "client traceback": [("text", r"[/\\](?:openai|httpx|requests|aiohttp|ollama|litellm|langchain\w*|llama_index)[/\\]\w+|"
                                  r"\bopenai\.[A-Za-z.]*(?:Error|InV1)\b|APIConnectionError|APIRemovedInV1|"
                                  r"litellm\.\w*(?:Error|Exception)|requests\.exceptions\.|httpx\.\w+Error|Error code: \d{3} - |"
                                  r"\bollama\._types\.\w+Error|aiohttp\.client_exceptions\.|urllib3\.exceptions\.|"
                                  r"Error: HTTPS?ConnectionPool\(host=|\b\d{3} Client Error: [\w ]+ for url: ")],
    "embedding": [("classes", r"\bembed\."), ("text", r"(?i)/v1/embeddings|\bembeddings?\b")],
    "multimodal": [("classes", r"\bmm\."), ("text", r"(?i)image_url|limit[_-]mm[_-]per[_-]prompt|pixel_values|<image>|"
                                                       r"\b(?:llava|internvl|mllama|qwen2(?:\.5)?-?vl|vision)|-vl\b|\bvlm\b")],
    "gateway/proxy": [("classes", r"net\.proxy_env|http\.gateway_error"),
                      ("text", r"(?i)\b(?:nginx|openresty|squid|litellm|envoy|traefik|ingress|http_proxy|https_proxy)\b")],
}


@dataclass
class Case:
    name: str
    path: Path
    url: str
    expect: list[str]
    classes: list[str]
    quote: list[str]
    files: list[Path] = field(default_factory=list)
    kinds: list[str] | None = None    # as case.yaml states them; else computed (see KINDS)
    stated: str = ""                  # case.yaml's cause and the names of its versions

    def kind_set(self) -> set[str]:
        if self.kinds is not None:
            return set(self.kinds)
        text = "\n".join(f.read_bytes().decode("utf-8", "replace") for f in self.files)
        where = {"url": self.url, "classes": " ".join(self.classes + self.expect), "text": text, "case": self.stated}
        return {k for k, tests in KINDS.items() if any(re.search(rx, where[w]) for w, rx in tests)}


@dataclass
class Result:
    case: str
    way: str
    top: str | None
    ok: bool
    found: set[str]
    false_alarms: list[str]
    crashed: str | None = None
    why: str = ""
    silent: bool = False       # "No known failure found" although the evidence holds an error-like line
    hedged: bool = False       # every error-level claim on a healthy or unrelated case is a possible cause ("Possibly: …")


def cases(root: Path = CORPUS) -> list[Case]:
    out = []
    for d in sorted(p for p in root.iterdir() if p.is_dir()):
        meta = yaml.safe_load((d / "case.yaml").read_text(encoding="utf-8"))
        files = sorted(p for p in d.rglob("*") if p.is_file() and p.name != "case.yaml")
        out.append(Case(d.name, d, meta["url"], list(meta["expect"]), list(meta.get("classes") or meta["expect"]),
                        [str(q) for q in meta.get("quote") or []], files, meta.get("kinds"),
                        " ".join([str(meta.get("cause") or ""), *map(str, meta.get("versions") or {})])))
    return out


def composition(chosen: list[Case]) -> dict[str, int]:
    """Cases with two or more evidence files, and cases per kind (see KINDS)."""
    kinds = Counter(k for c in chosen for k in c.kind_set())
    return {"two or more evidence files": sum(len(c.files) >= 2 for c in chosen), **{k: kinds[k] for k in KINDS}}


def as_paste(case: Case, out: Path) -> Path:
    """All of a case's files in one markdown comment, as a user pastes them into an issue."""
    parts = ["I get an error calling the server; here is what I have.", ""]
    for f in case.files:
        text = f.read_bytes().decode("utf-8", "replace")
        fence = "````" if "```" in text else "```"
        parts += [f"### {f.relative_to(case.path)}", "", fence, text.rstrip("\n"), fence, ""]
    path = out / f"{case.name}.md"
    path.write_text("\n".join(parts), encoding="utf-8")
    return path


def as_zip(case: Case, out: Path) -> Path:
    path = out / f"{case.name}.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for f in case.files:
            zf.write(f, f"{case.name}/{f.relative_to(case.path)}")
    return path


def run_case(case: Case, way: str, ruleset, tmp: Path) -> Result:
    from emblens.diagnose import analyze
    from emblens.report import to_json

    if way == "zip":
        paths = [as_zip(case, tmp)]
    elif way == "paste":
        paths = [as_paste(case, tmp)]
    else:
        paths = [str(f) for f in case.files]
    try:
        a = analyze([str(p) for p in paths], ruleset=ruleset)
        to_json(a)   # the report must render too
    except Exception as e:  # a crash is what this counts
        return Result(case.name, way, None, False, set(), [], crashed=f"{type(e).__name__}: {e}")
    from emblens.findings.possible import error_like

    silent = not a.findings and a.lead is None and error_like(a.events, set()).height > 0
    ids = [f.rule for f in a.findings]
    top = a.findings[0] if a.findings else None
    text = " ".join([top.summary, *top.remedy, *(e.text for e in top.evidence)]) if top else ""
    missing = [q for q in case.quote if q not in text]
    if not case.expect:
        # a healthy log, or an error outside the catalogue: right when nothing is claimed at error level
        claimed = [f for f in a.findings if f.severity == "error"]
        ok, why = not claimed, f"claims {claimed[0].rule}" if claimed else ""
        return Result(case.name, way, top.rule if top else None, ok, set(), [f.rule for f in claimed], why=why,
                      silent=silent, hedged=bool(claimed) and all(f.cause == "possible" for f in claimed))
    ok = top is not None and top.rule in case.expect and not missing
    why = ("no finding" if top is None else f"top {top.rule}" if top.rule not in case.expect
           else f"does not quote {missing}" if missing else "")
    false = [f.rule for f in a.findings if f.rule not in case.classes and f.explained_by not in case.expect]
    return Result(case.name, way, top.rule if top else None, ok, set(ids) & set(case.classes), false, why=why, silent=silent)


def run(selected: list[Case] | None = None, ways=WAYS, jobs: int | None = None) -> list[Result]:
    """Every case each way, in order. `jobs` worker processes (default: the cores, at most 4),
    each loading the rules once: the cases are independent analyses."""
    import os

    units = [(case, way) for case in (selected if selected is not None else cases()) for way in ways]
    jobs = jobs or min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
    if jobs > 1 and len(units) >= 40:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor
        from concurrent.futures.process import BrokenProcessPool

        try:
            with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn"), initializer=_worker_start) as pool:
                return list(pool.map(_worker_run, units, chunksize=8))
        except BrokenProcessPool:     # a script that calls this without `if __name__ == "__main__":` cannot spawn
            print("accuracy: worker processes could not start; running in this process", file=sys.stderr)
    from emblens.rules.loader import load_rules

    ruleset = load_rules()
    with tempfile.TemporaryDirectory() as tmp:
        return [run_case(case, way, ruleset, Path(tmp)) for case, way in units]


_WORKER: dict = {}    # in a worker process of `run`: its rule set and temporary folder


def _worker_start() -> None:
    import shutil
    from multiprocessing.util import Finalize

    from emblens.rules.loader import load_rules

    _WORKER["ruleset"] = load_rules()
    _WORKER["tmp"] = Path(tempfile.mkdtemp(prefix="emblens-accuracy-"))
    Finalize(None, shutil.rmtree, args=(_WORKER["tmp"], True), exitpriority=10)    # at the worker's exit


def _worker_run(unit: tuple[Case, str]) -> Result:
    case, way = unit
    return run_case(case, way, _WORKER["ruleset"], _WORKER["tmp"])


def summary(results: list[Result], all_cases: list[Case]) -> dict[str, dict[str, float]]:
    by_case = {c.name: c for c in all_cases}
    out = {}
    for way in WAYS:
        rs = [r for r in results if r.way == way]
        if not rs:
            continue
        classes = sum(len(by_case[r.case].classes) for r in rs)
        out[way] = {
            "cases": len(rs), "top1": sum(r.ok for r in rs) / len(rs),
            "recall": sum(len(r.found) for r in rs) / max(classes, 1),
            "false_alarms": sum(len(r.false_alarms) for r in rs), "crashes": sum(r.crashed is not None for r in rs),
        }
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cases", action="store_true", help="one line per case and way")
    p.add_argument("--corpus", type=Path, default=CORPUS, help="a folder of cases (default tests/corpus); "
                   "a batch of new cases is scored here cold, before anything changes for it")
    p.add_argument("names", nargs="*", help="only these cases")
    a = p.parse_args(argv)
    all_cases = cases(a.corpus)
    chosen = [c for c in all_cases if not a.names or c.name in a.names]
    results = run(chosen)
    threads = len({c.url.split("#")[0] for c in chosen})
    print(f"{len(chosen)} cases from {threads} threads\n")
    print(f"{'way':<8}{'top-1':>8}{'recall':>8}{'false alarms':>14}{'crashes':>9}")
    for way, s in summary(results, all_cases).items():
        print(f"{way:<8}{s['top1']:>8.0%}{s['recall']:>8.0%}{s['false_alarms']:>14}{s['crashes']:>9}")
    per_class: dict[str, Counter] = defaultdict(Counter)
    by_case = {c.name: c for c in chosen}
    for r in results:
        for cls in by_case[r.case].expect[:1] or ["(healthy or outside the catalogue)"]:
            per_class[cls]["n"] += 1
            per_class[cls]["ok"] += r.ok
    print(f"\n{'expected root cause':<34}{'runs':>6}{'top-1':>8}")
    for cls, c in sorted(per_class.items()):
        print(f"{cls:<34}{c['n']:>6}{c['ok'] / c['n']:>8.0%}")
    per_source: dict[str, Counter] = defaultdict(Counter)
    for r in results:
        repo = "/".join(by_case[r.case].url.split("/")[3:5])
        per_source[repo]["n"] += 1
        per_source[repo]["ok"] += r.ok
    print(f"\n{'thread source':<34}{'runs':>6}{'top-1':>8}")
    for repo, c in sorted(per_source.items()):
        print(f"{repo:<34}{c['n']:>6}{c['ok'] / c['n']:>8.0%}")
    print(f"\n{'composition':<34}{'cases':>6}")
    for k, n in composition(chosen).items():
        print(f"{k:<34}{n:>6}")
    if a.cases:
        print()
        for r in sorted(results, key=lambda r: (r.ok, r.case, r.way)):
            mark = "ok  " if r.ok else "MISS"
            alarms = f"  false alarms: {', '.join(r.false_alarms)}" if r.false_alarms else ""
            print(f"{mark} {r.case:<44} {r.way:<7} {r.crashed or r.why or r.top}{alarms}")
    return 1 if any(r.crashed for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
