"""The busy-server benchmark: a vLLM 0.11 log that is what a busy server writes, almost all
`200 OK` access lines and per-engine metrics lines, with a few incidents buried inside, against
ripgrep scanning the same bytes for the rules' patterns.

    python bench/busy.py --sizes 256,1024,4096 --kinds plain,zip,gzip,stdin
    python bench/busy.py --mix requests --sizes 860,1720     # a server that logs every request
    python bench/busy.py --mix sglang --sizes 860,1720       # SGLang, a line per prefill batch

For each size and kind it prints emblens's time, rg's time on the same bytes (`rg -c -f` the
rules' prefilter pattern; for a zip, `unzip -p | rg`; for gzip, `zcat | rg`), their ratio and
emblens's peak memory. Each is run `--runs` times, the two taking turns; the times are medians and
the peak is the highest (a shared machine moves a single run by 20-30 %). Inputs are written to bench/out/busy/ (ignored by git) and reused.

The log: a start-up (served name, port, the API key set), then minute after minute of traffic
from ~150 clients at ~100 requests/s over the paths a real deployment sees (embeddings, chat,
models, health, metrics), 0.3 % of them 4xx; a metrics line every 10 s per engine (two engines);
one minute in three has a `Received request` line. Buried at a third and two thirds: a burst of
404s for a misspelt model, and 401s from a client with an old key. At the end: a CUDA
out-of-memory traceback.

`--mix requests`: the same traffic from a server that logs every request it receives (vLLM's request
logging, FORMATS.md): each POST is preceded by its `Received request <id>: prompt: '…', params: …`
line, whose prompt is the user's text (some of them about errors), so some 45 % of the lines are not
`200 OK` access lines.

`--mix sglang`: the same traffic from SGLang 0.5 (FORMATS.md §2): every line stamped
(`[2025-11-20 09:15:03] INFO:     … 200 OK`), each request preceded by the scheduler's `Prefill batch,
#new-seq: …, token usage: …` line and a `Decode batch, …` line every 40 chat requests, so again
some 45 % of the lines are not `200 OK` access lines; the incidents are the same, and SGLang's
`Not enough memory` start-up failure at the end.
"""

from __future__ import annotations

import argparse
import gzip
import random
import shutil
import statistics
import subprocess
import sys
import time
import zipfile
from datetime import datetime, timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "out" / "busy"
TOOLS = HERE.parent / "samples" / "tools"
API = "(APIServer pid=3999075) "
PATHS = [("POST", "/v1/embeddings", 60), ("POST", "/v1/chat/completions", 25), ("GET", "/v1/models", 5),
         ("GET", "/health", 6), ("GET", "/metrics", 4)]
REASON = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 422: "Unprocessable Entity"}


def _access(rng: random.Random, status: int | None = None, path: tuple[str, str] | None = None) -> str:
    method, route = path or rng.choices([(m, p) for m, p, _ in PATHS], weights=[w for *_, w in PATHS])[0]
    if status is None:
        status = 200 if rng.random() > 0.003 else rng.choice([400, 422])
    client = f"10.{rng.randint(0, 3)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}:{rng.randint(32768, 60999)}"
    return f'{API}INFO:     {client} - "{method} {route} HTTP/1.1" {status} {REASON[status]}\n'


def _minute_blocks(rng: random.Random, n: int = 24, per_10s: int = 1000, mix: str = "busy") -> list[list[bytes]]:
    """`n` minutes of access lines, each as six 10-second slices (reused with new stamps)."""
    if mix == "sglang":
        return [[("".join(_batched(rng, k) for k in range(per_10s))).encode() for _ in range(6)] for _ in range(n)]
    if mix == "requests":
        return [[("".join(_logged(rng, k) for k in range(per_10s))).encode() for _ in range(6)] for _ in range(n)]
    return [[("".join(_access(rng) for _ in range(per_10s))).encode() for _ in range(6)] for _ in range(n)]


PROMPTS = ("what is the capital of france", "summarise: the deploy failed with CUDA out of memory on node 3",
           "translate 'the model does not exist' to German", "Represent this sentence for searching relevant passages: "
           "why does my client say Connection refused", "explain HTTP 401 Unauthorized in one line")


def _logged(rng: random.Random, k: int) -> str:
    """One request as a server with request logging writes it: for a POST, its `Received request`
    line (stamp left as @@STAMP@@, filled per slice), then the access line."""
    line = _access(rng)
    if '"POST ' not in line:
        return line
    kind = "embd" if "/embeddings" in line else "chatcmpl"
    params = ("PoolingParams(dimensions=None, normalize=None)" if kind == "embd" else
              f"SamplingParams(n=1, temperature=0.7, top_p=1.0, max_tokens={rng.choice([256, 512, 1024])})")
    return (f"{API}INFO @@STAMP@@ [logger.py:43] Received request {kind}-{rng.getrandbits(64):016x}{k}: prompt: "
            f"{rng.choice(PROMPTS)!r}, params: {params}, prompt_token_ids: None, lora_request: None.\n" + line)


def _batched(rng: random.Random, k: int) -> str:
    """One request as SGLang 0.5 logs it (stamps left as @@STAMP@@, filled per slice, a second
    apart within it): the scheduler's `Prefill batch` line for a POST, a `Decode batch` line now and
    then, the stamped access line."""
    stamp = f"[@@STAMP{k * 10 // 1000}@@"
    line = stamp + "] " + _access(rng).removeprefix(API)
    if '"POST ' not in line:
        return line
    out = (f"{stamp} TP0] Prefill batch, #new-seq: 1, #new-token: {rng.randint(6, 900)}, #cached-token: "
           f"{rng.choice([0, 0, 41, 128])}, token usage: {rng.uniform(0, 0.6):.2f}, #running-req: {rng.randint(0, 30)}, "
           f"#queue-req: {rng.randint(0, 3)}\n")
    if "/chat/" in line and k % 40 == 0:
        out += (f"{stamp} TP0] Decode batch, #running-req: {rng.randint(1, 30)}, #token: {rng.randint(100, 9000)}, "
                f"token usage: {rng.uniform(0, 0.6):.2f}, cuda graph: True, gen throughput (token/s): "
                f"{rng.uniform(100, 2000):.2f}, #queue-req: {rng.randint(0, 3)}\n")
    return out + line


SGLANG_HEAD = (
    "[2025-11-20 09:14:00] server_args=ServerArgs(model_path='Qwen/Qwen3-Embedding-4B', tokenizer_path="
    "'Qwen/Qwen3-Embedding-4B', host='0.0.0.0', port=30000, mem_fraction_static=0.88, served_model_name="
    "'Qwen/Qwen3-Embedding-4B', is_embedding=True, api_key='bench-key', tp_size=1)\n"
    "[2025-11-20 09:14:20 TP0] Load weight begin. avail mem=78.50 GB\n"
    "[2025-11-20 09:14:40 TP0] Load weight end. type=Qwen3ForCausalLM, dtype=torch.bfloat16, avail mem=70.31 GB, "
    "mem usage=8.19 GB.\n"
    "[2025-11-20 09:14:41 TP0] KV Cache is allocated. #tokens: 400000, K size: 27.47 GB, V size: 27.47 GB\n"
    "[2025-11-20 09:14:55] INFO:     Uvicorn running on http://0.0.0.0:30000 (Press CTRL+C to quit)\n"
    "[2025-11-20 09:14:58] The server is fired up and ready to roll!\n")
SGLANG_FAIL = (
    "[@@DAY@@ TP0] Scheduler hit an exception: Traceback (most recent call last):\n"
    '  File "/sgl-workspace/sglang/python/sglang/srt/managers/scheduler.py", line 2533, in run_scheduler_process\n'
    "    scheduler = Scheduler(server_args, port_args, gpu_id, tp_rank, moe_ep_rank, pp_rank, dp_rank)\n"
    "RuntimeError: Not enough memory. Please try to increase --mem-fraction-static.\n"
    "[@@DAY@@] Received sigquit from a child process. It usually means the child failed.\n")


def _metrics(t: datetime, engine: int, rng: random.Random) -> bytes:
    return (f"{API}INFO {t:%m-%d %H:%M:%S} [loggers.py:123] Engine {engine:03d}: Avg prompt throughput: "
            f"{rng.uniform(2000, 9000):.1f} tokens/s, Avg generation throughput: {rng.uniform(0, 900):.1f} tokens/s, "
            f"Running: {rng.randint(0, 40)} reqs, Waiting: {rng.randint(0, 3)} reqs, GPU KV cache usage: "
            f"{rng.uniform(1, 60):.1f}%, Prefix cache hit rate: {rng.uniform(0, 50):.1f}%\n").encode()


def make_log(size_mib: int, mix: str = "busy") -> Path:
    OUT.mkdir(parents=True, exist_ok=True)
    log = OUT / {"busy": f"vllm-busy-{size_mib}m.log", "sglang": f"sglang-busy-{size_mib}m.log"}.get(mix, f"vllm-{mix}-{size_mib}m.log")
    if log.exists() and log.stat().st_size >= size_mib * 2**20:
        return log
    rng = random.Random(7)
    if mix == "sglang":
        return _sglang_log(log, size_mib, rng)
    head = subprocess.run([sys.executable, str(TOOLS / "vllm_log.py"), "--version", "0.11", "--requests", "0",
                           "--api-key", "bench-key", "--start", "2025-11-20 09:14:00"], capture_output=True, check=True).stdout
    oom = subprocess.run([sys.executable, str(TOOLS / "vllm_log.py"), "--version", "0.11", "--requests", "5", "--incident",
                          "oom"], capture_output=True, check=True).stdout
    oom = b"".join(line + b"\n" for line in oom.splitlines() if b"ERROR" in line or b"Traceback" in line)
    blocks = _minute_blocks(rng, mix=mix)
    target = size_mib * 2**20 - len(oom)
    t = datetime(2025, 11, 20, 9, 15)
    incidents = {"404": target // 3, "401": 2 * target // 3}
    with open(log, "wb") as f:
        f.write(head)
        minute = 0
        while f.tell() < target:
            block = blocks[minute % len(blocks)]
            for k, piece in enumerate(block):
                f.write(_metrics(t + timedelta(seconds=10 * k), 0, rng))
                f.write(_metrics(t + timedelta(seconds=10 * k, milliseconds=400), 1, rng))
                f.write(piece.replace(b"@@STAMP@@", f"{t + timedelta(seconds=10 * k):%m-%d %H:%M:%S}".encode())
                        if mix != "busy" else piece)
            if minute % 3 == 0:
                f.write(f"{API}INFO {t:%m-%d %H:%M:%S} [logger.py:43] Received request embd-{minute:08x}: "
                        "prompt: 'what is the capital of france', params: None, prompt_token_ids: None\n".encode())
            for name, at in list(incidents.items()):
                if f.tell() >= at:
                    status, route = (404, ("POST", "/v1/embeddings")) if name == "404" else (401, ("POST", "/v1/chat/completions"))
                    f.write("".join(_access(rng, status, route) for _ in range(25)).encode())
                    del incidents[name]
            t += timedelta(minutes=1)
            minute += 1
        f.write(oom.replace(b"11-20", f"{t:%m-%d}".encode()))
    return log


def _sglang_log(log: Path, size_mib: int, rng: random.Random) -> Path:
    blocks = _minute_blocks(rng, mix="sglang")
    target = size_mib * 2**20 - 600
    t = datetime(2025, 11, 20, 9, 15)
    incidents = {"404": target // 3, "401": 2 * target // 3}
    with open(log, "wb") as f:
        f.write(SGLANG_HEAD.encode())
        minute = 0
        while f.tell() < target:
            for k, piece in enumerate(blocks[minute % len(blocks)]):
                for s in range(10):
                    piece = piece.replace(f"@@STAMP{s}@@".encode(), f"{t + timedelta(seconds=10 * k + s):%Y-%m-%d %H:%M:%S}".encode())
                f.write(piece)
            for name, at in list(incidents.items()):
                if f.tell() >= at:
                    status, route = (404, ("POST", "/v1/embeddings")) if name == "404" else (401, ("POST", "/v1/chat/completions"))
                    f.write("".join(f"[{t:%Y-%m-%d %H:%M:%S}] " + _access(rng, status, route).removeprefix(API)
                                    for _ in range(25)).encode())
                    del incidents[name]
            t += timedelta(minutes=1)
            minute += 1
        f.write(SGLANG_FAIL.replace("@@DAY@@", f"{t:%Y-%m-%d %H:%M:%S}").encode())
    return log


def make_kind(log: Path, kind: str) -> Path:
    if kind in ("plain", "stdin"):
        return log
    if kind == "zip":
        out = log.with_suffix(".zip")
        if not out.exists():
            with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, allowZip64=True) as z:
                z.write(log, f"logs/{log.name}")
        return out
    out = log.with_suffix(".log.gz")
    if not out.exists():
        with open(log, "rb") as src, gzip.open(out, "wb", compresslevel=6) as dst:
            shutil.copyfileobj(src, dst, 16 * 2**20)
    return out


def timed(cmd: str) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of a shell command line (its largest process)."""
    start = time.perf_counter()
    r = subprocess.run(["/usr/bin/time", "-f", "%M", "bash", "-c", cmd], capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    if r.returncode not in (0, 1):
        raise SystemExit(f"failed ({r.returncode}): {cmd}\n{r.stderr[-2000:]}")
    return wall, int(r.stderr.strip().splitlines()[-1]) / 1024


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="256,1024", help="MiB, comma-separated (256,1024,4096)")
    p.add_argument("--kinds", default="plain,zip", help="plain, zip, gzip, stdin (comma-separated)")
    p.add_argument("--runs", type=int, default=3, help="runs of each, taking turns (default 3): medians are shown")
    p.add_argument("--mix", default="busy", choices=("busy", "requests", "sglang"),
                   help="busy: almost all 200 OK access lines; requests: a server that logs every request; "
                        "sglang: SGLang 0.5 with a line per prefill batch")
    a = p.parse_args()
    if not shutil.which("rg"):
        raise SystemExit("ripgrep (rg) is needed: apt-get install ripgrep")
    from emblens.rules.loader import load_rules

    OUT.mkdir(parents=True, exist_ok=True)
    patterns = OUT / "patterns.txt"
    patterns.write_text(load_rules(()).keywords.replace("\\ ", " ").replace("\\\"", "\"") + "\n")   # escapes an older rg refuses
    emblens = f"{sys.executable} -m emblens analyze --format json -q"
    print(f"{'size':>6} {'kind':>6} {'input MiB':>9} {'rg s':>7} {'emblens s':>9} {'ratio':>6} {'peak MiB':>8}")
    for size in (int(s) for s in a.sizes.split(",")):
        log = make_log(size, a.mix)
        for kind in a.kinds.split(","):
            path = make_kind(log, kind)
            subprocess.run(["cat", str(path)], stdout=subprocess.DEVNULL, check=True)   # warm the page cache
            scan = {"plain": f"rg -c -f {patterns} {path}", "stdin": f"rg -c -f {patterns} {path}",
                    "zip": f"unzip -p {path} | rg -c -f {patterns}", "gzip": f"zcat {path} | rg -c -f {patterns}"}[kind]
            run = f"{emblens} - < {path}" if kind == "stdin" else f"{emblens} {path}"
            rg_times, em_times, peaks = [], [], []
            for _ in range(max(1, a.runs)):
                rg_times.append(timed(scan)[0])
                t, peak = timed(f"{run} > {OUT / 'report.json'}")
                em_times.append(t)
                peaks.append(peak)
            t_rg, t_em, peak = statistics.median(rg_times), statistics.median(em_times), max(peaks)
            print(f"{size:>6} {kind:>6} {path.stat().st_size / 2**20:>9,.0f} {t_rg:>7.2f} {t_em:>9.2f} "
                  f"{t_em / t_rg:>5.2f}x {peak:>8,.0f}", flush=True)


if __name__ == "__main__":
    main()
