"""Every report of every fixture, sample and corpus case, written to a folder, so that a change
that must keep behaviour identical can be checked by comparing two such folders.

    python bench/snapshot.py write OUT             # about 1,700 reports; 2-4 minutes on 2 cores
    python bench/snapshot.py compare OLD NEW       # lists what differs; exit 1 when anything does

An event table whose rows are the same in every old column counts as the same (the columns it
gained are listed): a new column is new behaviour, a changed value is not.

Per unit (a rule fixture, a sample bundle, a corpus case read as a zip, a folder and a paste):
the JSON, Markdown, text and HTML reports, and for samples and corpus folders the event table
(`load_events`, as `emblens events` writes it, as JSON lines). The report's version is left out.
"""

from __future__ import annotations

import argparse
import difflib
import json
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))


def units(tmp: Path) -> list[tuple[str, list[str], bool]]:
    """(name, paths, with the event table) for every fixture, sample and corpus case."""
    import accuracy

    from emblens.fixtures import fixtures_for
    from emblens.rules.loader import load_rules

    out: list[tuple[str, list[str], bool]] = []
    seen: set[str] = set()
    for rule in load_rules().rules:
        for part in rule.parts:
            for path, _ in fixtures_for(part.path):
                rel = str(path.relative_to(REPO))
                if rel not in seen:
                    seen.add(rel)
                    out.append((rel, [str(path)], False))
    for p in sorted((REPO / "samples").iterdir()):
        if p.suffix == ".zip" or (p.is_dir() and p.name != "tools"):
            out.append((str(p.relative_to(REPO)), [str(p)], True))
    for case in accuracy.cases():
        out.append((f"corpus/{case.name}/zip", [str(accuracy.as_zip(case, tmp))], False))
        out.append((f"corpus/{case.name}/folder", [str(f) for f in case.files], True))
        out.append((f"corpus/{case.name}/paste", [str(accuracy.as_paste(case, tmp))], False))
    return out


def write(out: Path) -> int:
    from emblens.diagnose import analyze, load_events
    from emblens.report import render
    from emblens.rules.loader import load_rules

    ruleset = load_rules()
    out.mkdir(parents=True, exist_ok=True)
    # the zips and pastes are made at one fixed path, since reports name the folder their inputs share
    tmp = Path(tempfile.gettempdir()) / "emblens-snapshot-inputs"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    todo = units(tmp)
    for n, (name, paths, with_events) in enumerate(todo, 1):
        target = out / name.replace("/", "__")
        target.mkdir(exist_ok=True)
        try:
            a = analyze(paths, ruleset=ruleset)
        except Exception as e:  # what the snapshot records is what happened
            (target / "error.txt").write_text(f"{type(e).__name__}: {e}\n", encoding="utf-8")
            continue
        doc = json.loads(render(a, "json"))
        doc.pop("version", None)
        (target / "report.json").write_text(json.dumps(doc, indent=1, ensure_ascii=False), encoding="utf-8")
        for fmt, suffix in (("markdown", "md"), ("text", "txt"), ("html", "html")):
            (target / f"report.{suffix}").write_text(render(a, fmt, width=100), encoding="utf-8")
        if with_events:
            events, _, _ = load_events(paths)
            (target / "events.jsonl").write_text(events.write_ndjson(), encoding="utf-8")
        if n % 100 == 0:
            print(f"{n}/{len(todo)}", file=sys.stderr)
    print(f"wrote {len(todo)} units to {out}")
    return 0


def compare(old: Path, new: Path) -> int:
    a = {p.relative_to(old) for p in old.rglob("*") if p.is_file()}
    b = {p.relative_to(new) for p in new.rglob("*") if p.is_file()}
    differ = 0
    for rel in sorted(a ^ b):
        print(f"only in {'old' if rel in a else 'new'}: {rel}")
        differ += 1
    added: set[str] = set()
    for rel in sorted(a & b):
        x, y = (old / rel).read_text(encoding="utf-8"), (new / rel).read_text(encoding="utf-8")
        if x != y and rel.name == "events.jsonl" and _same_rows(x, y, added):
            continue
        if x != y:
            differ += 1
            if differ <= 20:
                diff = difflib.unified_diff(x.splitlines(), y.splitlines(), str(old / rel), str(new / rel), lineterm="", n=1)
                print("\n".join(list(diff)[:40]))
            else:
                print(f"differs: {rel}")
    if added:
        print(f"columns added to the event table (the rows are otherwise the same): {', '.join(sorted(added))}")
    print(f"{len(a & b)} files compared, {differ} differ")
    return 1 if differ else 0


def _same_rows(x: str, y: str, added: set[str]) -> bool:
    """Whether two event tables (JSON lines) hold the same rows in the old one's columns; the
    columns only the new one has are added to `added`."""
    xs, ys = x.splitlines(), y.splitlines()
    if len(xs) != len(ys):
        return False
    for one, two in zip(xs, ys):
        r, s = json.loads(one), json.loads(two)
        if any(s.get(k) != v for k, v in r.items()) or any(k not in s for k in r):
            return False
        added.update(k for k in s if k not in r)
    return True


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("write")
    w.add_argument("out", type=Path)
    c = sub.add_parser("compare")
    c.add_argument("old", type=Path)
    c.add_argument("new", type=Path)
    args = p.parse_args()
    return write(args.out) if args.cmd == "write" else compare(args.old, args.new)


if __name__ == "__main__":
    sys.exit(main())
