"""SGLang's crash dumps (`--crash-dump-folder DIR`): when the server dies, its tokenizer manager
pickles the requests of the last 5 minutes to `DIR/<HOSTNAME>/crash_dump_<time>.pkl`
(python/sglang/srt/managers/tokenizer_manager.py `dump_requests_before_crash`):
`{"server_args": ServerArgs, "requests": [(obj, out_dict, created_time, finished_time), ...]}`,
a finished request with its output, an unfinished one with `{}`.

A pickle runs code when it is loaded, so a dump is never loaded here: its opcodes are walked
(`pickletools.genops`, which only decodes them), within bounds, and counted. Each request is the
tuple that ends in its two times (two floats, then TUPLE); it is unfinished when its output dict
is empty. The server's model path, host and port are the strings that follow those names in
`server_args`; nothing else of it is read (it may hold `api_key`), and nothing of the requests
(their prompts). The dump becomes one event that says what it holds and the command of SGLang's
that replays it (scripts/playground/replay_request_dump.py), which the report's fix quotes.
"""

from __future__ import annotations

import io
import pickletools
import re
from typing import BinaryIO

import polars as pl

from emblens.events.schema import frame
from emblens.formats.records import RecordError, RecordSource, _read_all
from emblens.reading.context import Counts, SourceContext

MAX_DUMP_BYTES = 512 * 1024 * 1024
MAX_OPS = 50_000_000          # opcodes walked; the rest counted as not read
_HEAD = re.compile(rb"^\x80[\x02-\x05]")
_STRINGS = frozenset({"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "SHORT_BINSTRING", "BINSTRING", "STRING"})
_INTS = frozenset({"BININT", "BININT1", "BININT2", "INT", "LONG1"})
_MEMO_GETS = frozenset({"BINGET", "LONG_BINGET", "GET"})
_MEMO_PUTS = frozenset({"BINPUT", "LONG_BINPUT", "PUT"})
_SKIP = frozenset({"MEMOIZE", "BINPUT", "LONG_BINPUT", "PUT", "FRAME"})
_VALUES = _STRINGS | _INTS | _MEMO_GETS
SETTINGS = ("model_path", "served_model_name", "host", "port")
REPLAY = "python3 scripts/playground/replay_request_dump.py --input-file {file} --host {host} --port {port} --parallel 128"
REPLAY_SAID = "Replay them against a test server: "   # what the event says before the command (combiners.dumps reads it)


def walk(data: bytes) -> dict:
    """What a dump holds, from its opcodes only: `requests`, `unfinished`, the server's settings
    (`SETTINGS`), the request classes seen, and `complete` (False when the walk stopped early)."""
    out: dict = {"requests": 0, "unfinished": 0, "classes": {}, "complete": True}
    memo: dict[int, object] = {}
    last: list[tuple[str, object]] = []     # the significant opcodes before this one (name, value)
    pending_key: str | None = None
    in_settings = True
    top: object = None                       # what the previous opcode pushed (for MEMOIZE)
    try:
        for n, (op, arg, _pos) in enumerate(pickletools.genops(io.BytesIO(data))):
            if n >= MAX_OPS:
                out["complete"] = False
                break
            name = op.name
            if name == "MEMOIZE":
                memo[len(memo)] = top
                continue
            if name in _MEMO_PUTS:
                memo[int(arg)] = top
                continue
            if name in _SKIP:
                continue
            value: object = None
            if name in _STRINGS:
                value = arg if isinstance(arg, str) else arg.decode("utf-8", "replace") if isinstance(arg, bytes) else None
            elif name in _MEMO_GETS:
                value = memo.get(int(arg))
            elif name in _INTS:
                value = arg
            elif name == "STACK_GLOBAL" and len(last) >= 2 and all(isinstance(v, str) for _n, v in last[-2:]):
                value = ("class", f"{last[-2][1]}.{last[-1][1]}")
            elif name == "GLOBAL" and isinstance(arg, str):
                value = ("class", arg.replace(" ", "."))
            elif name in ("NEWOBJ", "REDUCE", "NEWOBJ_EX"):
                cls = next((v for _n, v in reversed(last[-3:]) if isinstance(v, tuple) and v[0] == "class"), None)
                if cls is not None:
                    out["classes"][cls[1]] = out["classes"].get(cls[1], 0) + 1
            elif name == "TUPLE" and len(last) >= 2 and all(n_ == "BINFLOAT" and isinstance(v, float) and v > 1e9
                                                            for n_, v in last[-2:]):
                out["requests"] += 1
                if len(last) >= 3 and last[-3][0] == "EMPTY_DICT":
                    out["unfinished"] += 1
            elif name == "BINFLOAT":
                value = arg
            if in_settings:
                if pending_key is not None and name in _VALUES:
                    if value is not None and not isinstance(value, tuple):
                        out.setdefault(pending_key, value)
                    pending_key = None
                elif isinstance(value, str) and value in SETTINGS:
                    pending_key = value
                if value == "requests":
                    in_settings = False
            top = value
            last.append((name, value))
            if len(last) > 8:
                del last[0]
    except (ValueError, EOFError, KeyError, IndexError, TypeError, OverflowError):
        out["complete"] = False               # truncated or corrupt: what was read is kept
    return out


class SGLangCrashDump(RecordSource):
    __slots__ = ()
    name = "sglang-crash-dump"
    origin = "sglang"

    def sniff_bytes(self, head: bytes) -> float:
        if not _HEAD.match(head):
            return 0.0
        return 0.95 if b"requests" in head[:1 << 16] and (b"server_args" in head[:1 << 16] or b"sglang" in head[:1 << 16]) else 0.0

    def parse_stream(self, stream: BinaryIO, ctx: SourceContext) -> tuple[pl.DataFrame, Counts]:
        counts = Counts()
        data = _read_all(stream, MAX_DUMP_BYTES)
        found = walk(data)
        if not found["requests"] and not found["classes"]:
            raise RecordError("a pickle with no SGLang requests in it")
        file = ctx.label.replace("\\", "/").rsplit("/", 1)[-1].rsplit(":", 1)[-1]
        mask = ctx.redactor.text
        host = str(found.get("host") or "127.0.0.1")
        host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
        replay = REPLAY.format(file=file, host=mask(host), port=found.get("port") or 30000)
        kinds = ", ".join(f"{v} {k.rsplit('.', 1)[-1]}" for k, v in sorted(found["classes"].items())
                          if k.endswith("ReqInput"))
        text = (f"SGLang's crash dump {file}: {found['requests']} request(s) of the 5 minutes before the crash, "
                f"{found['unfinished']} unfinished when it died" + (f" ({kinds})" if kinds else "")
                + (f"; model {mask(str(found['model_path']))}" if found.get("model_path") else "")
                + ("; read only in part" if not found["complete"] else "")
                + f" (its opcodes read, never loaded). {REPLAY_SAID}{replay}")
        row = {"source": ctx.label, "line": 1, "kind": "log", "level": "ERROR", "origin": "sglang", "message": text,
               "text": text}
        counts.lines = counts.events = counts.recognised = 1
        if not found["complete"]:
            counts.stopped = "the dump ends early or is corrupt: the requests before that point are counted"
        return frame([row]), counts
