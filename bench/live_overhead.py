"""Benchmark: the latency the live addon adds under a sustained load, and what it costs.

Sends an open-loop stream of requests (a fixed rate, whatever the answers' speed) through real
mitmdump in reverse-proxy mode to the local stand-in server, once without and once with the
emblens addon, and prints for each run the latency percentiles (p50, p95, p99, max), the
difference between the runs (the added latency), the proxy's CPU, the addon's own CPU (its
worker thread, as the addon reports it on exit) and how many exchanges the addon read and
dropped. Target: p95 added latency <= 2 ms at 500 requests/s, nothing dropped.

    python bench/live_overhead.py --rate 500 --seconds 60

Latency is measured from when a request was due, not from when it was sent, so a stalled proxy
cannot hide its stall by delaying the requests behind it (coordinated omission). The traffic is
a mix like a real deployment's: three model listings with the right key for each embedding call
with a wrong key (401). The load comes from a few keep-alive connections, as from a client pool.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
MOCK = HERE.parent / "samples" / "tools" / "mock_server.py"
sys.path.insert(0, str(MOCK.parent))
from localnet import free_port, wait_port  # noqa: E402

MODELS = b"GET /v1/models HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer s3cret-demo-key\r\n\r\n"
BODY = json.dumps({"model": "Qwen3-Embedding-4B", "input": ["query: hello"]}).encode()
EMBED = (b"POST /v1/embeddings HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer wrong\r\n"
         b"Content-Type: application/json\r\nContent-Length: " + str(len(BODY)).encode() + b"\r\n\r\n" + BODY)


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    m = re.search(rb"(?im)^content-length:\s*(\d+)", head)
    if m:
        await reader.readexactly(int(m.group(1)))
    return status


async def _connection(port: int, due: list[float], latencies: list[float], errors: list[str], warm: float) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for i, t in enumerate(due):
            delay = t - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            writer.write(EMBED if i % 4 == 0 else MODELS)
            try:
                await _read_response(reader)
            except (asyncio.IncompleteReadError, ConnectionError) as e:
                errors.append(type(e).__name__)
                return
            if t >= warm:
                latencies.append((time.perf_counter() - t) * 1000)
    finally:
        writer.close()


async def _load(port: int, rate: float, seconds: float, connections: int) -> tuple[list[float], list[str], float]:
    start = time.perf_counter() + 0.5
    n = int(rate * seconds)
    due = [start + i / rate for i in range(n)]
    latencies: list[float] = []
    errors: list[str] = []
    warm = start + min(5.0, seconds / 10)      # the first seconds warm the proxy up and are not counted
    await asyncio.gather(*(_connection(port, due[c::connections], latencies, errors, warm) for c in range(connections)))
    return latencies, errors, time.perf_counter() - start


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(sport: int, addon: bool, rate: float, seconds: float, connections: int, options=()) -> dict:
    from emblens.frontends.live import mitm_addon

    pport = free_port()
    out = Path(tempfile.mkdtemp(prefix="emblens-live-bench-"))
    cmd = [str(Path(sys.executable).parent / "mitmdump"), "--mode", f"reverse:http://127.0.0.1:{sport}",
           "--listen-host", "127.0.0.1", "-p", str(pport), "--set", "flow_detail=0", "--set", "termlog_verbosity=warn"]
    if addon:
        cmd += ["-s", mitm_addon.__file__, "--set", "emblens_report=", "--set", f"emblens_json={out / 'live.json'}"]
        for option in options:
            cmd += ["--set", option]
    log = open(out / "mitmdump.log", "w+")
    proxy = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_port(pport, timeout=60)
        time.sleep(1.0)
        cpu0 = _cpu_s(proxy.pid)
        latencies, errors, wall = asyncio.run(_load(pport, rate, seconds, connections))
        cpu = _cpu_s(proxy.pid) - cpu0
    finally:
        proxy.send_signal(signal.SIGINT)
        proxy.wait(timeout=60)
    log.seek(0)
    text = log.read()
    m = re.search(r"emblens: ([\d,]+) exchanges read, ([\d,]+) dropped; the analysis used ([\d.]+) s of CPU", text)
    report = {}
    if addon and (out / "live.json").exists():
        report = json.loads((out / "live.json").read_text())
    return {
        "latencies": latencies, "errors": errors, "wall": wall, "proxy_cpu": cpu,
        "read": int(m.group(1).replace(",", "")) if m else None,
        "dropped": int(m.group(2).replace(",", "")) if m else None,
        "addon_cpu": float(m.group(3)) if m else None,
        "findings": [f["rule"] for f in report.get("findings", [])],
        "log": text,
    }


def _pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rate", type=float, default=500, help="requests per second (default 500)")
    p.add_argument("--seconds", type=float, default=60, help="how long each run lasts (default 60)")
    p.add_argument("--connections", type=int, default=8, help="keep-alive connections the load is spread over")
    p.add_argument("--set", action="append", default=[], metavar="OPTION=VALUE",
                   help="an emblens option for the addon's run (emblens_interval=5000), repeatable")
    a = p.parse_args()
    sport = free_port()
    server = subprocess.Popen([sys.executable, str(MOCK), str(sport), "auth"], stderr=subprocess.DEVNULL)
    try:
        wait_port(sport)
        runs = {"without addon": run(sport, False, a.rate, a.seconds, a.connections),
                "with addon": run(sport, True, a.rate, a.seconds, a.connections, a.set)}
    finally:
        server.terminate()
    sent = int(a.rate * a.seconds)
    print(f"{a.rate:g} requests/s for {a.seconds:g} s ({sent:,} requests) over {a.connections} connections, "
          f"{os.cpu_count()} cores")
    print(f"{'':14s} {'p50':>8s} {'p95':>8s} {'p99':>8s} {'max':>8s}   proxy CPU   errors")
    for name, r in runs.items():
        t = r["latencies"]
        print(f"{name:14s} {statistics.median(t):7.2f}  {_pct(t, .95):7.2f}  {_pct(t, .99):7.2f}  {max(t):7.1f}   "
              f"{r['proxy_cpu']:6.1f} s   {len(r['errors'])}")
    base, live = runs["without addon"]["latencies"], runs["with addon"]["latencies"]
    print(f"{'added':14s} {statistics.median(live) - statistics.median(base):+7.2f}  "
          f"{_pct(live, .95) - _pct(base, .95):+7.2f}  {_pct(live, .99) - _pct(base, .99):+7.2f}   (ms)")
    r = runs["with addon"]
    if r["read"] is None:
        print("the addon's summary line was not found in mitmdump's output:\n" + r["log"][-2000:])
        sys.exit(1)
    print(f"addon: read {r['read']:,} exchanges (sent {sent:,}), dropped {r['dropped']:,}, "
          f"its worker used {r['addon_cpu']:.1f} s of CPU ({100 * r['addon_cpu'] / r['wall']:.0f} % of one core); "
          f"findings: {', '.join(r['findings']) or 'none'}")


if __name__ == "__main__":
    main()
