"""Write a fleet of replica logs with incidents planted in a known subset, for `emblens fleet`'s
tests and bench/fleet.py.

Each replica is a vLLM 0.11 server's log (`vllm_log.py`: a start-up, routine traffic, and, for the
planted replicas, one incident); `planted` maps each replica to the root cause `emblens analyze`
names for its incident (None: a healthy replica). Layouts:

    folders   FLEET/pod-0000/vllm.log               (one level: `emblens fleet FLEET`)
    bundles   FLEET/pod-0000.zip                    (one bundle per replica)
    nested    FLEET/<ns>/pod-0000/logs/vllm.log     (`--replica '{ns}/{pod}/**'`)

    python samples/tools/fleet.py OUT --replicas 1000 [--requests 300] [--layout folders] [--broken 2]

`--broken N` adds N replicas that cannot be read (a zip cut short).
"""

from __future__ import annotations

import argparse
import io
import json
import random
import sys
import zipfile
from datetime import datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import vllm_log

# incident → the root cause emblens names for it (checked by tests/test_fleet.py against `analyze`)
PLANTED = {"unauthorized": "auth.invalid_key", "model_404": "model.not_found", "oom": "gpu.oom",
           "too_long": "embed.input_too_long", "wrong_path": "http.wrong_path"}
SHARE = (("unauthorized", 0.08), ("model_404", 0.05), ("oom", 0.03), ("too_long", 0.03), ("wrong_path", 0.02))


def replica_log(incident: str, seed: int, requests: int, start: datetime) -> bytes:
    out = io.StringIO()
    rng = random.Random(seed)
    log = vllm_log.Log("0.11", start, out)
    vllm_log.startup(log, "/models/Qwen3-Embedding-4B", "Qwen3-Embedding-4B", 8000, None)
    failure = vllm_log.startup_failures("/models/Qwen3-Embedding-4B").get(incident)
    if failure:
        delay, frames, exc = failure
        log.tick(delay)
        log.traceback("EngineCore_DP0", 3999312, "core.py:708", frames, exc)
        out.write("(APIServer pid=3999075) RuntimeError: Engine core initialization failed. See root cause above. "
                  "Failed core proc(s): {'EngineCore_DP0': 1}\n")
    else:
        vllm_log.loaded(log, 8000)
        vllm_log.traffic(log, rng, requests, incident)
    return out.getvalue().encode()


def incidents(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        x, acc, pick = rng.random(), 0.0, "none"
        for name, share in SHARE:
            acc += share
            if x < acc:
                pick = name
                break
        out.append(pick)
    return out


def make_fleet(folder: Path, n: int, *, seed: int = 7, requests: int = 300, layout: str = "folders",
               broken: int = 0) -> dict[str, str | None]:
    """Write the fleet; return {replica name: planted root cause or None}."""
    folder.mkdir(parents=True, exist_ok=True)
    planted: dict[str, str | None] = {}
    start = datetime(2026, 11, 20, 9, 0)
    for k, incident in enumerate(incidents(n, seed)):
        pod = f"pod-{k:04d}"
        data = replica_log(incident, seed * 100_003 + k, requests, start + timedelta(minutes=k % 240))
        if layout == "folders":
            path = folder / pod / "vllm.log"
            name = pod
        elif layout == "nested":
            ns = ("prod", "staging", "batch")[k % 3]
            path = folder / ns / pod / "logs" / "vllm.log"
            name = f"{ns}/{pod}"
        elif layout == "bundles":
            path = folder / f"{pod}.zip"
            name = path.name
        else:
            raise SystemExit(f"unknown layout {layout}")
        path.parent.mkdir(parents=True, exist_ok=True)
        if layout == "bundles":
            with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
                z.writestr("logs/vllm.log", data)
        else:
            path.write_bytes(data)
        planted[name] = PLANTED.get(incident)
    for k in range(broken):
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
            z.writestr("logs/vllm.log", replica_log("none", k, requests, start))
        name = f"broken-{k:02d}.zip"
        (folder / name).write_bytes(buf.getvalue()[: len(buf.getvalue()) // 3])
        planted[name] = "broken"
    return planted


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out", type=Path)
    p.add_argument("--replicas", type=int, default=100)
    p.add_argument("--requests", type=int, default=300)
    p.add_argument("--layout", choices=("folders", "bundles", "nested"), default="folders")
    p.add_argument("--broken", type=int, default=0)
    p.add_argument("--seed", type=int, default=7)
    a = p.parse_args()
    planted = make_fleet(a.out, a.replicas, seed=a.seed, requests=a.requests, layout=a.layout, broken=a.broken)
    (a.out.parent / f"{a.out.name}-planted.json").write_text(json.dumps(planted, indent=1))
    print(f"wrote {len(planted)} replicas to {a.out}; planted: {a.out.parent / (a.out.name + '-planted.json')}")


if __name__ == "__main__":
    main()
