"""Write a vLLM server log in the line formats of FORMATS.md §1 (0.6.6, 0.11, 0.33).

Used for the rule fixtures, the samples and the benchmark: a start-up, then routine traffic
(access lines, metrics lines), optionally with an incident. Deterministic for a given seed.

    python vllm_log.py --version 0.11 --requests 2000 --incident unauthorized > vllm.log
"""

from __future__ import annotations

import argparse
import random
import sys
from datetime import datetime, timedelta

INCIDENTS = ("none", "unauthorized", "wrong_path", "model_404", "oom", "kv_cache", "kv_cache_old", "no_cache_blocks", "load_failed", "port_in_use", "too_long",
             "oom_fragmented", "oom_weights", "free_memory", "driver")


class Log:
    def __init__(self, version: str, start: datetime, out) -> None:
        self.version, self.t, self.out = version, start, out

    def tick(self, seconds: float) -> None:
        self.t += timedelta(seconds=seconds)

    def line(self, level: str, file: str, msg: str, proc: str = "APIServer", pid: int = 3999075) -> None:
        stamp = self.t.strftime("%m-%d %H:%M:%S")
        if self.version == "0.6.6":
            self.out.write(f"{level} {stamp} {file.split('/')[-1]}] {msg}\n")
        else:
            prefix = f"\x1b[1;36m({proc} pid={pid})\x1b[0;0m " if self.version == "0.11" else f"({proc} pid={pid}) "
            self.out.write(f"{prefix}{level} {stamp} [{file}] {msg}\n")

    def access(self, client: str, method: str, path: str, status: int, reason: str) -> None:
        text = f'INFO:     {client} - "{method} {path} HTTP/1.1" {status} {reason}'
        if self.version == "0.11":
            text = "\x1b[1;36m(APIServer pid=3999075)\x1b[0;0m " + text
        self.out.write(text + "\n")

    def traceback(self, proc: str, pid: int, file: str, frames: list[tuple[str, int, str, str]], exc: str) -> None:
        self.line("ERROR", file, "EngineCore failed to start." if proc.startswith("EngineCore") else "Exception in worker", proc, pid)
        self.line("ERROR", file, "Traceback (most recent call last):", proc, pid)
        for path, lineno, func, code in frames:
            self.line("ERROR", file, f'  File "{path}", line {lineno}, in {func}', proc, pid)
            self.line("ERROR", file, f"    {code}", proc, pid)
        self.line("ERROR", file, exc, proc, pid)


def startup(log: Log, model: str, served: str | None, port: int, api_key: str | None) -> None:
    args = {"model_tag": model, "port": port, "model": model}
    if served:
        args["served_model_name"] = [served]
    if api_key:
        args["api_key"] = [api_key]
    if log.version == "0.6.6":
        log.line("INFO", "api_server.py:585", "vLLM API server version 0.6.6.post1")
        log.line("INFO", "api_server.py:586", f"args: Namespace(host=None, port={port}, uvicorn_log_level='info', api_key={api_key!r}, "
                 f"model='{model}', served_model_name={[served] if served else None}, max_model_len=8192, gpu_memory_utilization=0.9)")
    else:
        log.line("INFO", "api_server.py:1839", "vLLM API server version 0.11.0" if log.version == "0.11" else f"vLLM server version 0.33.0, serving model {served or model}")
        log.line("INFO", "utils.py:233", f"non-default args: {args}")
        log.line("INFO", "model.py:547", "Resolved architecture: Qwen3ForCausalLM")
        log.line("INFO", "model.py:1510", "Using max model len 32768")
    log.tick(4)
    log.line("INFO", "gpu_model_runner.py:2602", f"Starting to load model {model}...", "EngineCore_DP0", 3999312)


def loaded(log: Log, port: int) -> None:
    log.tick(21)
    log.line("INFO", "default_loader.py:267", "Loading weights took 3.10 seconds", "EngineCore_DP0", 3999312)
    log.line("INFO", "gpu_model_runner.py:2653", "Model loading took 7.5532 GiB and 3.912781 seconds", "EngineCore_DP0", 3999312)
    log.tick(6)
    log.line("INFO", "gpu_worker.py:298", "Available KV cache memory: 62.05 GiB", "EngineCore_DP0", 3999312)
    log.line("INFO", "kv_cache_utils.py:1087", "GPU KV cache size: 451,824 tokens", "EngineCore_DP0", 3999312)
    log.tick(8)
    log.line("INFO", "api_server.py:1634", f"Starting vLLM API server 0 on http://0.0.0.0:{port}")
    log.line("INFO", "launcher.py:34", "Available routes are:")
    for route in ("/health", "/v1/models", "/v1/embeddings", "/v1/chat/completions"):
        log.line("INFO", "launcher.py:42", f"Route: {route}, Methods: POST" if route != "/health" else "Route: /health, Methods: GET")
    log.out.write(("\x1b[1;36m(APIServer pid=3999075)\x1b[0;0m " if log.version == "0.11" else "") + "INFO:     Started server process [3999075]\n")
    log.out.write(("\x1b[1;36m(APIServer pid=3999075)\x1b[0;0m " if log.version == "0.11" else "") + "INFO:     Waiting for application startup.\n")
    log.out.write(("\x1b[1;36m(APIServer pid=3999075)\x1b[0;0m " if log.version == "0.11" else "") + "INFO:     Application startup complete.\n")


def traffic(log: Log, rng: random.Random, n: int, incident: str) -> None:
    bad_at = set(rng.sample(range(n), k=min(n, 3))) if incident in ("unauthorized", "wrong_path", "model_404", "too_long") else set()
    for i in range(n):
        log.tick(rng.uniform(0.01, 0.4))
        client = f"10.0.3.{rng.randint(2, 250)}:{rng.randint(30000, 65000)}"
        if i in bad_at and incident == "unauthorized":
            log.access(client, "POST", "/v1/embeddings", 401, "Unauthorized")
        elif i in bad_at and incident == "wrong_path":
            log.access(client, "POST", "/v1/embedding", 404, "Not Found")
        elif i in bad_at and incident == "model_404":
            log.access(client, "POST", "/v1/embeddings", 404, "Not Found")
        elif i in bad_at and incident == "too_long":
            log.line("ERROR", "serving_embedding.py:213", "Error in preprocessing prompt inputs")
            log.line("ERROR", "serving_embedding.py:213", "ValueError: This model's maximum context length is 32768 tokens. However, you requested 40211 tokens in the input for embedding generation. Please reduce the length of the input.")
            log.access(client, "POST", "/v1/embeddings", 400, "Bad Request")
        else:
            log.access(client, "POST", "/v1/embeddings", 200, "OK")
        if i % 25 == 0:
            log.line("INFO", "loggers.py:123", f"Engine 000: Avg prompt throughput: {rng.uniform(100, 9000):.1f} tokens/s, Avg generation "
                     f"throughput: 0.0 tokens/s, Running: {rng.randint(0, 8)} reqs, Waiting: 0 reqs, GPU KV cache usage: "
                     f"{rng.uniform(0, 3):.1f}%, Prefix cache hit rate: {rng.uniform(0, 60):.1f}%")

PKG = "/usr/local/lib/python3.12/dist-packages"


def startup_failures(model: str) -> dict[str, tuple[float, list, str]]:
    """Incidents where the engine dies at start: (seconds in, traceback frames, exception line)."""
    return {
        "oom": (9, [(f"{PKG}/vllm/v1/engine/core.py", 699, "run_engine_core", "engine_core = EngineCoreProc(*args, **kwargs)"),
                    (f"{PKG}/torch/nn/modules/module.py", 1355, "to", "return self._apply(convert)")],
                "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 1.16 GiB. GPU 0 has a total capacity of 23.57 GiB of which 612.44 MiB is free. "
                "Process 2113 has 14.20 GiB memory in use. Including non-PyTorch memory, this process has 8.71 GiB memory in use. Of the allocated memory 8.29 GiB "
                "is allocated by PyTorch, and 43.12 MiB is reserved by PyTorch but unallocated. If reserved but unallocated memory is large try setting "
                "PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True to avoid fragmentation."),
        # the weights fit, but nothing is left for the KV cache (0.11 wording)
        "no_cache_blocks": (28, [(f"{PKG}/vllm/v1/core/kv_cache_utils.py", 665, "check_enough_kv_cache_memory", "raise ValueError(")],
                            "ValueError: No available memory for the cache blocks. Try increasing `gpu_memory_utilization` when "
                            "initializing the engine."),
        # the pre-0.8 check, in tokens
        "kv_cache_old": (30, [(f"{PKG}/vllm/engine/llm_engine.py", 423, "_initialize_kv_caches", "self.model_executor.initialize_cache(num_gpu_blocks, num_cpu_blocks)"),
                              (f"{PKG}/vllm/worker/worker.py", 263, "initialize_cache", "raise_if_cache_size_invalid(num_gpu_blocks,")],
                         "ValueError: The model's max seq len (32768) is larger than the maximum number of tokens that can be stored in KV cache (23648). "
                         "Try increasing `gpu_memory_utilization` or decreasing `max_model_len` when initializing the engine."),
        "kv_cache": (30, [(f"{PKG}/vllm/v1/core/kv_cache_utils.py", 686, "check_enough_kv_cache_memory", "raise ValueError(")],
                     "ValueError: To serve at least one request with the models's max seq len (32768), (4.50 GiB KV cache is needed, which is larger than the available KV cache memory (2.13 GiB). Based on the available memory, the estimated maximum model length is 15504. Try increasing `gpu_memory_utilization` or decreasing `max_model_len` when initializing the engine."),
        # PyTorch holds much reserved-but-unallocated memory: fragmentation, not a full card
        "oom_fragmented": (9, [(f"{PKG}/vllm/v1/engine/core.py", 699, "run_engine_core", "engine_core = EngineCoreProc(*args, **kwargs)"),
                               (f"{PKG}/vllm/v1/worker/gpu_model_runner.py", 2731, "_dummy_run", "outputs = self.model(")],
                           "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of 23.57 GiB of which 1.21 GiB is free. "
                           "Process 3999312 has 22.35 GiB memory in use. Including non-PyTorch memory, this process has 22.35 GiB memory in use. Of the allocated memory 15.62 GiB "
                           "is allocated by PyTorch, and 6.35 GiB is reserved by PyTorch but unallocated. If reserved but unallocated memory is large try setting "
                           "PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True to avoid fragmentation.  See documentation for Memory Management  (https://pytorch.org/docs/stable/notes/cuda.html#environment-variables)"),
        # the weights alone are larger than the card (run with --model of a 32B model on a 24 GiB GPU)
        "oom_weights": (6, [(f"{PKG}/vllm/model_executor/model_loader/default_loader.py", 269, "load_weights", "loaded_weights = model.load_weights(")],
                        "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 270.00 MiB. GPU 0 has a total capacity of 23.57 GiB of which 180.44 MiB is free. "
                        "Process 3999312 has 23.38 GiB memory in use. Including non-PyTorch memory, this process has 23.38 GiB memory in use. Of the allocated memory 22.98 GiB "
                        "is allocated by PyTorch, and 19.86 MiB is reserved by PyTorch but unallocated. If reserved but unallocated memory is large try setting "
                        "PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True to avoid fragmentation."),
        # something else already holds memory when vLLM checks at start (0.11 wording)
        "free_memory": (3, [(f"{PKG}/vllm/v1/worker/gpu_worker.py", 211, "init_device", "self.init_snapshot = MemorySnapshot()"),
                            (f"{PKG}/vllm/v1/worker/utils.py", 305, "request_memory", "raise ValueError(")],
                        "ValueError: Free memory on device (10.21/23.57 GiB) on startup is less than desired GPU memory utilization (0.9, 21.21 GiB). "
                        "Decrease GPU memory utilization or reduce GPU memory used by other processes."),
        # a CUDA 12.x build of torch on a host whose driver only speaks CUDA 11.x
        "driver": (2, [(f"{PKG}/vllm/v1/worker/gpu_worker.py", 174, "init_device", "torch.cuda.set_device(self.device)"),
                       (f"{PKG}/torch/cuda/__init__.py", 399, "set_device", "torch._C._cuda_setDevice(device)")],
                   "RuntimeError: CUDA error: CUDA driver version is insufficient for CUDA runtime version"),
        "load_failed": (2, [(f"{PKG}/vllm/model_executor/model_loader/default_loader.py", 246, "load_weights", "raise ValueError(")],
                        f"ValueError: Cannot find any model weights with `{model}`"),
    }


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", choices=("0.6.6", "0.11", "0.33"), default="0.11")
    p.add_argument("--requests", type=int, default=200)
    p.add_argument("--incident", choices=INCIDENTS, default="none")
    p.add_argument("--model", default="/models/Qwen3-Embedding-4B")
    p.add_argument("--served-name", default="Qwen3-Embedding-4B")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--api-key")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--start", default="2026-11-20T09:14:02")
    a = p.parse_args(argv)
    rng = random.Random(a.seed)
    log = Log(a.version, datetime.fromisoformat(a.start), sys.stdout)
    startup(log, a.model, a.served_name, a.port, a.api_key)
    failure = startup_failures(a.model).get(a.incident)
    if failure:
        delay, frames, exc = failure
        log.tick(delay)
        log.traceback("EngineCore_DP0", 3999312, "core.py:708", frames, exc)
        log.out.write("(APIServer pid=3999075) RuntimeError: Engine core initialization failed. See root cause above. Failed core proc(s): {'EngineCore_DP0': 1}\n")
        return
    loaded(log, a.port)
    if a.incident == "port_in_use":
        log.out.write("(APIServer pid=3999075) Traceback (most recent call last):\n")
        log.out.write('(APIServer pid=3999075)   File "/usr/local/lib/python3.12/dist-packages/vllm/entrypoints/openai/api_server.py", line 1878, in create_server_socket\n')
        log.out.write("(APIServer pid=3999075)     sock.bind(addr)\n")
        log.out.write("(APIServer pid=3999075) OSError: [Errno 98] Address already in use\n")
        return
    traffic(log, rng, a.requests, a.incident)


if __name__ == "__main__":
    main()
