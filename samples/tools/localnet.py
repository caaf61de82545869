"""Ports on 127.0.0.1 for the local test servers and proxies (used by capture.py, the live
benchmark and the live end-to-end test), and a stand-in for a running server (collect's tests)."""

import socket
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 30) -> None:
    """Return once something listens on 127.0.0.1:port; raise after `timeout` seconds."""
    end = time.time() + timeout
    while time.time() < end:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


def start_stand_in_server(log: Path, *args: str, python: str | None = None):
    """A process that looks like a running vLLM server to `emblens collect`: its command line is
    `PYTHON -c … vllm serve ARGS…`, its output (a vLLM version line) goes to `log`. Returns the
    Popen once the line is written; the caller kills it."""
    import subprocess
    import sys

    code = ("import sys, time; print('INFO 11-20 09:14:02 [api_server.py:1880] vLLM API server version 0.11.0', flush=True); "
            "time.sleep(60)")
    with open(log, "w") as out:
        proc = subprocess.Popen([python or sys.executable, "-c", code, "vllm", "serve", *args], stdout=out,
                                stderr=subprocess.STDOUT)
    for _ in range(100):
        if log.stat().st_size:
            break
        time.sleep(0.05)
    return proc
