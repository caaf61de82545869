"""Benchmark: per-request latency the live addon adds. Sends the same requests through mitmdump
in reverse-proxy mode to a local test server, without and with the emblens addon, and prints the
median and p95 per request and the difference (target: median overhead <= 1 ms).

    python bench/live_overhead.py --requests 3000
"""

import argparse
import http.client
import json
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
MOCK = HERE.parent / "samples" / "tools" / "mock_server.py"
sys.path.insert(0, str(MOCK.parent))
from localnet import free_port, wait_port  # noqa: E402


def run(n: int, sport: int, addon: bool) -> list[float]:
    from emblens import mitm_addon

    pport = free_port()
    cmd = [str(Path(sys.executable).parent / "mitmdump"), "-q", "--mode", f"reverse:http://127.0.0.1:{sport}",
           "--listen-host", "127.0.0.1", "-p", str(pport)]
    if addon:
        cmd += ["-s", mitm_addon.__file__, "--set", "emblens_report=", "--set", "emblens_json="]
    proxy = subprocess.Popen(cmd)
    try:
        wait_port(pport)
        conn = http.client.HTTPConnection("127.0.0.1", pport, timeout=10)
        conn.connect()
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        body = json.dumps({"model": "Qwen3-Embedding-4B", "input": ["query: hello"]})
        times = []
        for i in range(n + 100):
            # a mix like real traffic: mostly model listings, some refused embeddings (401s)
            start = time.perf_counter()
            if i % 4:
                conn.request("GET", "/v1/models", headers={"Authorization": "Bearer s3cret-demo-key"})
            else:
                conn.request("POST", "/v1/embeddings", body=body, headers={"Authorization": "Bearer wrong", "Content-Type": "application/json"})
            conn.getresponse().read()
            if i >= 100:   # the first hundred warm up the proxy
                times.append((time.perf_counter() - start) * 1000)
        conn.close()
        return times
    finally:
        proxy.send_signal(signal.SIGINT)
        proxy.wait()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--requests", type=int, default=3000)
    a = p.parse_args()
    sport = free_port()
    server = subprocess.Popen([sys.executable, str(MOCK), str(sport), "auth"])
    try:
        wait_port(sport)
        plain = run(a.requests, sport, addon=False)
        with_addon = run(a.requests, sport, addon=True)
    finally:
        server.terminate()
    for name, t in (("without addon", plain), ("with addon", with_addon)):
        q = statistics.quantiles(t, n=20)
        print(f"{name:14s} median {statistics.median(t):.3f} ms   p95 {q[18]:.3f} ms   ({len(t)} requests)")
    print(f"overhead: median {statistics.median(with_addon) - statistics.median(plain):+.3f} ms per request")


if __name__ == "__main__":
    main()
