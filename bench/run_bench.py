"""Benchmark: `emblens analyze` against ripgrep (or grep -E) scanning the same bytes for the
rules' patterns. Prints both times, the ratio and emblens's peak memory.

    python bench/run_bench.py --size-mib 1024      # writes bench/out/bundle/ (ignored by git)
"""

import argparse
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
TOOLS = HERE.parent / "samples" / "tools"


def make_bundle(size_mib: int, out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    log = out / "vllm-server.log"
    if log.exists() and log.stat().st_size >= size_mib * 2**20 * 0.95:
        return out
    # one generated day of routine traffic, repeated to size, with incidents at the end
    day = subprocess.run([sys.executable, str(TOOLS / "vllm_log.py"), "--requests", "200000", "--incident", "unauthorized"],
                         capture_output=True, check=True).stdout
    with open(log, "wb") as f:
        while f.tell() < size_mib * 2**20:
            f.write(day)
        f.write(subprocess.run([sys.executable, str(TOOLS / "vllm_log.py"), "--incident", "oom"], capture_output=True, check=True).stdout)
    shutil.copy(HERE.parent / "rules/model/not_found.pos-openai1.109.txt", out / "client.txt")
    return out


def timed(cmd: list[str]) -> tuple[float, int]:
    start = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return time.perf_counter() - start, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size-mib", type=int, default=1024)
    a = p.parse_args()
    bundle = make_bundle(a.size_mib, HERE / "out" / "bundle")
    from emblens.rules.loader import load_rules

    pattern = load_rules(()).keywords.replace("\\ ", " ")  # ripgrep does not take an escaped space
    size = sum(f.stat().st_size for f in bundle.iterdir())
    subprocess.run(["cat", *map(str, bundle.iterdir())], stdout=subprocess.DEVNULL)  # warm the page cache
    if shutil.which("rg"):
        scan = ["rg", "-c", "-e", pattern, str(bundle)]
    else:
        scan = ["grep", "-rcE", pattern.replace("(?:", "(").replace("(?i:", "("), str(bundle)]
    t_scan, _ = timed(scan)
    t_emb, peak_kib = timed([sys.executable, "-m", "emblens", "analyze", str(bundle), "--format", "json", "-q"])
    print(f"input: {size / 2**20:,.0f} MiB in {bundle}")
    print(f"{scan[0]}: {t_scan:.2f} s   emblens analyze: {t_emb:.2f} s   ratio: {t_emb / t_scan:.2f}x")
    print(f"emblens peak memory: {peak_kib / 1024:,.0f} MiB")


if __name__ == "__main__":
    main()
