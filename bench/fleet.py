"""The fleet benchmark: N replicas of vLLM logs (`samples/tools/fleet.py`: incidents planted in
about one replica in five) analysed by `emblens fleet` with each engine, side by side: seconds,
replicas/s, MB/s, the driver's peak memory and the largest worker's, and whether every engine
found the same findings (`findings.parquet`, row for row) and exactly the planted root causes.

    python bench/fleet.py --replicas 1000 --engines serial,pool,ray [--requests 300] [--jobs 2]

Each engine runs in a fresh process that runs the CLI's `fleet` command and then reports its own
peak RSS (the driver) and its children's (the pool's workers; Ray's are not its children, so its
workers are not counted there). Inputs are written to bench/out/fleet/ (ignored by git) and reused.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "out" / "fleet"
sys.path.insert(0, str(HERE.parent / "samples" / "tools"))

DRIVER = r"""
import json, resource, sys, time
from typer.testing import CliRunner
from emblens.frontends.cli import app
start = time.perf_counter()
r = CliRunner().invoke(app, sys.argv[1:])
wall = time.perf_counter() - start
if r.exit_code not in (0, 1):
    print(r.output[-3000:], file=sys.stderr)
    raise SystemExit(r.exit_code)
self_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
kids_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(json.dumps({"seconds": wall, "driver_mib": self_kb / 1024, "workers_mib": kids_kb / 1024}))
"""


def fleet(n: int, requests: int) -> tuple[Path, dict]:
    import fleet as fleetgen

    folder = OUT / f"fleet-{n}x{requests}"
    planted_file = OUT / f"fleet-{n}x{requests}-planted.json"
    if not planted_file.exists():
        shutil.rmtree(folder, ignore_errors=True)
        planted = fleetgen.make_fleet(folder, n, requests=requests)
        planted_file.write_text(json.dumps(planted))
    return folder, json.loads(planted_file.read_text())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--replicas", type=int, default=1000)
    p.add_argument("--requests", type=int, default=300, help="requests in each replica's log (default 300)")
    p.add_argument("--engines", default="serial,pool", help="serial, pool, ray (comma-separated)")
    p.add_argument("--jobs", type=int, default=2)
    a = p.parse_args()
    import polars as pl

    folder, planted = fleet(a.replicas, a.requests)
    size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
    expected = {k: v for k, v in planted.items() if v}
    print(f"{a.replicas:,} replicas, {size / 2**20:,.1f} MiB, {len(expected)} with a planted incident; jobs {a.jobs}")
    print(f"{'engine':>7} {'seconds':>8} {'replicas/s':>10} {'MB/s':>7} {'driver MiB':>10} {'worker MiB':>10}  same findings")
    first = None
    for engine in a.engines.split(","):
        out = OUT / f"out-{engine}"
        shutil.rmtree(out, ignore_errors=True)
        args = ["fleet", str(folder), "--engine", engine, "--jobs", str(a.jobs), "--out", str(out), "-q", "-f", "json",
                "-o", str(out.with_suffix(".json"))]
        start = time.perf_counter()
        r = subprocess.run([sys.executable, "-c", DRIVER, *args], capture_output=True, text=True, check=False)
        wall = time.perf_counter() - start
        if r.returncode != 0:
            print(f"{engine:>7} failed ({r.returncode}): {r.stderr.strip()[-400:]}")
            continue
        m = json.loads(r.stdout.strip().splitlines()[-1])
        rows = pl.read_parquet(out / "findings.parquet").drop("summary")     # summaries quote no machine detail
        roots = dict(rows.filter(pl.col("role") == "root_cause").select("replica", "rule").iter_rows())
        same = "first" if first is None else ("yes" if rows.equals(first) else "NO")
        first = rows if first is None else first
        planted_ok = "planted: exact" if roots == expected else f"planted: {len(set(roots.items()) ^ set(expected.items()))} differ"
        print(f"{engine:>7} {wall:>8.1f} {a.replicas / wall:>10.1f} {size / 1e6 / wall:>7.1f} {m['driver_mib']:>10.0f} "
              f"{m['workers_mib'] if engine == 'pool' else float('nan'):>10.0f}  {same}, {planted_ok}", flush=True)


if __name__ == "__main__":
    main()
