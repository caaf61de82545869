"""A long fuzzing pass over every adapter and the bundle reader, outside CI: the properties of
tests/test_fuzz.py (arbitrary bytes and mutated real samples never raise, stay in the time
budget, never cost the good member beside a bad one) with many random examples each.

    python bench/fuzz.py                  # 300 examples per property
    python bench/fuzz.py --examples 2000

Prints each property's example count and the total, and the peak memory of the run.
"""

import argparse
import os
import re
import resource
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=300)
    args = parser.parse_args()
    env = {**os.environ, "EMBLENS_FUZZ_EXAMPLES": str(args.examples)}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--hypothesis-show-statistics",
                           str(REPO / "tests/test_fuzz.py")], env=env, capture_output=True, text=True, cwd=REPO)
    total = 0
    for name, block in re.findall(r"tests/test_fuzz\.py::(\S+):\n(.*?)(?=\ntests/|\Z)", proc.stdout, re.S):
        n = sum(int(x) for x in re.findall(r"(\d+) passing, \d+ failing", block))
        total += n
        print(f"{name:<58} {n:>6} inputs")
    print(f"{'total':<58} {total:>6} inputs; pytest exit {proc.returncode}; "
          f"peak memory {resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024} MiB")
    if proc.returncode != 0:
        print(proc.stdout[-4000:])
        sys.exit(1)


if __name__ == "__main__":
    main()
