"""Start-up: how long `emblens analyze` takes before it reads its first byte, and on a 1 KB input.

    python bench/startup.py [--runs 7]

Prints the median of each, over separate processes (each one a cold interpreter, with a warm
file cache and a warm rule cache):
- the bare interpreter (`python -c pass`), the floor under everything;
- `import polars` alone, the floor under anything that analyses with it;
- every module `emblens analyze` imports, then loading the built-in rules (in one process,
  timed phase by phase);
- `emblens --version` and `emblens analyze` on a 1 KB vLLM log, the whole process: the text
  report (which imports rich) and the JSON one (which does not).

Bytecode must be writable (PYTHONDONTWRITEBYTECODE unset), as it is after `pip install`:
otherwise every run compiles emblens's sources anew and measures that instead.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PHASES = """
import time
t0 = time.perf_counter()
import emblens.frontends.cli
t1 = time.perf_counter()
import polars, emblens.diagnose, emblens.combiners, emblens.rules.engine
import emblens.report
t2 = time.perf_counter()
from emblens.rules.loader import load_rules
load_rules()
t3 = time.perf_counter()
print(t1 - t0, t2 - t1, t3 - t2)
"""

LOG = (
    "INFO 11-20 09:14:02 [api_server.py:1880] vLLM API server version 0.11.0\n"
    "(APIServer pid=4101) INFO:     10.0.3.7:51422 - \"POST /v1/embeddings HTTP/1.1\" 404 Not Found\n"
) * 6


def _wall(cmd: list[str], env: dict[str, str]) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, check=False)
    return time.perf_counter() - t


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=7, help="processes per figure (default 7)")
    args = p.parse_args()
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    py = sys.executable
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "server.log"
        log.write_text(LOG)
        # one run first, to write bytecode and the rule cache
        subprocess.run([py, "-m", "emblens", "analyze", str(log)], capture_output=True, env=env, check=False)
        rows: list[tuple[str, list[float]]] = [
            ("python -c pass", [_wall([py, "-c", "pass"], env) for _ in range(args.runs)]),
            ("python -c 'import polars'", [_wall([py, "-c", "import polars"], env) for _ in range(args.runs)]),
        ]
        phases = []
        for _ in range(args.runs):
            out = subprocess.run([py, "-c", PHASES], capture_output=True, text=True, env=env, check=True).stdout
            phases.append([float(x) for x in out.split()])
        for i, name in enumerate(["  import emblens.frontends.cli (typer)", "  import the analysis (polars, rules engine)",
                                  "  load the built-in rules (cached)"]):
            rows.append((name, [ph[i] for ph in phases]))
        rows.append(("  all three, in one process", [sum(ph) for ph in phases]))
        rows.append(("emblens --version", [_wall([py, "-m", "emblens", "--version"], env) for _ in range(args.runs)]))
        rows.append(("emblens analyze (1 KB log)",
                     [_wall([py, "-m", "emblens", "analyze", str(log)], env) for _ in range(args.runs)]))
        rows.append(("emblens analyze -f json (1 KB log)",
                     [_wall([py, "-m", "emblens", "analyze", "-f", "json", str(log)], env) for _ in range(args.runs)]))
    print(f"{'what':<46} {'median s':>9} {'min s':>7} {'max s':>7}")
    for name, xs in rows:
        print(f"{name:<46} {statistics.median(xs):>9.3f} {min(xs):>7.3f} {max(xs):>7.3f}")


if __name__ == "__main__":
    main()
