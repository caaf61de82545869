"""Write a crash dump shaped as SGLang's `--crash-dump-folder` writes it
(python/sglang/srt/managers/tokenizer_manager.py, `dump_requests_before_crash`): a pickle of
`{"server_args": ServerArgs, "requests": [(obj, out_dict, created_time, finished_time), ...]}`,
the requests of the last 5 minutes (finished ones with their output, unfinished ones with `{}`),
saved as `<folder>/<HOSTNAME>/crash_dump_YYYY-mm-dd_HH-MM-SS.pkl`.

SGLang is not installed here: its classes are stood in for by dataclasses of the same module,
name and fields (`sglang.srt.managers.io_struct.GenerateReqInput`, `EmbeddingReqInput`,
`sglang.srt.server_args.ServerArgs`), so the opcodes are those pickle writes for the real ones.

    python samples/tools/sglang_crash_dump.py OUT.pkl [--finished 25] [--unfinished 12]
"""

from __future__ import annotations

import argparse
import dataclasses
import pickle
import sys
import types
from pathlib import Path


def _module(name: str) -> types.ModuleType:
    mod = types.ModuleType(name)
    sys.modules[name] = mod
    return mod


for _parent in ("sglang", "sglang.srt", "sglang.srt.managers"):
    _module(_parent)
io_struct = _module("sglang.srt.managers.io_struct")
server_args = _module("sglang.srt.server_args")


@dataclasses.dataclass
class GenerateReqInput:
    text: str | None = None
    input_ids: list | None = None
    sampling_params: dict | None = None
    rid: str | None = None
    return_logprob: bool = False
    stream: bool = False
    log_metrics: bool = True
    modalities: list | None = None
    lora_path: str | None = None


@dataclasses.dataclass
class EmbeddingReqInput:
    text: str | None = None
    input_ids: list | None = None
    rid: str | None = None
    log_metrics: bool = True


@dataclasses.dataclass
class ServerArgs:
    model_path: str = "Qwen/Qwen3-8B"
    served_model_name: str = "Qwen/Qwen3-8B"
    host: str = "0.0.0.0"
    port: int = 30000
    mem_fraction_static: float = 0.88
    max_running_requests: int | None = None
    crash_dump_folder: str | None = "/tmp/crash_dump"
    api_key: str | None = None


for cls, mod in ((GenerateReqInput, io_struct), (EmbeddingReqInput, io_struct), (ServerArgs, server_args)):
    cls.__module__ = mod.__name__
    setattr(mod, cls.__name__, cls)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out", type=Path)
    p.add_argument("--finished", type=int, default=25)
    p.add_argument("--unfinished", type=int, default=12)
    p.add_argument("--api-key", default=None, help="the server's --api-key, kept in server_args as SGLang keeps it")
    a = p.parse_args()
    t0 = 1_763_630_000.0
    requests = []
    for i in range(a.finished + a.unfinished):
        obj = GenerateReqInput(text=f"Summarise the attached contract, section {i}", rid=f"{i:032x}",
                               sampling_params={"max_new_tokens": 512, "temperature": 0.7})
        done = i < a.finished
        out = {"text": "The section says ...", "meta_info": {"id": obj.rid, "finish_reason": {"type": "stop"},
                                                              "prompt_tokens": 812, "completion_tokens": 96}} if done else {}
        requests.append((obj, out, t0 + i, t0 + i + (4.0 if done else 40.0)))
    dump = {"server_args": ServerArgs(api_key=a.api_key), "requests": requests}
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_bytes(pickle.dumps(dump))
    print(f"wrote {a.out}: {a.finished} finished, {a.unfinished} unfinished")


if __name__ == "__main__":
    main()
