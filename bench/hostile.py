"""Hostile inputs at full size: time and peak memory of `emblens analyze` on each attack of the
hardening probe (archive bombs, pathological lines, nesting, huge members, rule-folder bombs).

    python bench/hostile.py                 # every case, inputs in bench/out/hostile/ (ignored by git)
    python bench/hostile.py tar_gz xml_4m   # some cases

Each case runs in its own process under a 120 s limit; the table gives seconds, peak RSS, the
exit code and the first skipped/incomplete note. The tests (tests/test_hostile.py) run the same
attacks at sizes that fit CI; this script is for the before/after figures in bench/README.md.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tarfile
import time
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "out" / "hostile"
MiB = 2**20
ROUTINE = b'(APIServer pid=1) INFO:     10.0.0.7:51234 - "POST /v1/embeddings HTTP/1.1" 200 OK\n'


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def tar_gz(d: Path) -> list[str]:
    p = d / "500x100k.tar.gz"
    if not p.exists():
        with tarfile.open(p, "w:gz") as tf:
            for i in range(500):
                data = b"".join(ROUTINE.replace(b"51234", str(i * 1000 + j).encode()) for j in range(1250))
                info = tarfile.TarInfo(f"logs/{i:03}.log")
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
    return [str(p)]


def mask_line(d: Path) -> list[str]:
    p = d / "token-400k.log"
    p.write_text("a" * 400_000 + " token: x\n")
    return [str(p)]


def smi_spaces(d: Path) -> list[str]:
    p = d / "smi-q-spaces.txt"
    p.write_text("==============NVSMI LOG==============\n\nDriver Version : 550.54.15\n" + " " * 6000 + "\n")
    return [str(p)]


def smi_row(d: Path) -> list[str]:
    p = d / "smi-row.txt"
    p.write_text("| NVIDIA-SMI 550.54.15    Driver Version: 550.54.15    CUDA Version: 12.4 |\n"
                 "|    0   N/A  N/A      1234      C   " + "python " * 7000 + "  100MiB |\n" * 2)
    return [str(p)]


def _xml(d: Path, mib: int) -> list[str]:
    p = d / f"smi-xml-{mib}m.xml"
    p.write_text('<?xml version="1.0" ?><nvidia_smi_log>\n' + "<?xml\n" * (mib * MiB // 6))
    return [str(p)]


def xml_1m(d: Path) -> list[str]:
    return _xml(d, 1)


def xml_4m(d: Path) -> list[str]:
    return _xml(d, 4)


def zip_bomb(d: Path) -> list[str]:
    p = d / "42.zip"
    if not p.exists():
        leaf = _zip({f"{i}.log": b"\0" * (64 * MiB) for i in range(16)})
        middle = _zip({f"{i}.zip": leaf for i in range(16)})
        p.write_bytes(_zip({f"{i}.zip": middle for i in range(16)}))
    return [str(p)]


def tracebacks(d: Path) -> list[str]:
    p = d / "tracebacks.log"
    if not p.exists():
        with open(p, "wb") as f:
            block = b"Traceback (most recent call last):\n" * 100_000
            for _ in range(100):
                f.write(block)
    return [str(p)]


def _line(d: Path, mib: int) -> list[str]:
    p = d / f"line-{mib}m.log"
    if not p.exists():
        with open(p, "wb") as f:
            piece = b"x" * MiB
            for _ in range(mib):
                f.write(piece)
            f.write(b"\n")
    return [str(p)]


def line_256m(d: Path) -> list[str]:
    return _line(d, 256)


def line_1g(d: Path) -> list[str]:
    return _line(d, 1024)


def har_objects(d: Path) -> list[str]:
    p = d / "objects.har"
    if not p.exists():
        with open(p, "wb") as f:
            f.write(b'{"log": {"creator": {}, "entries": [')
            piece = b"{}," * (MiB // 3)
            for _ in range(400):
                f.write(piece)
            f.write(b"{}]}}")
    return [str(p)]


def deep_json(d: Path) -> list[str]:
    har = d / "deep.har"
    har.write_text('{"log": {"creator": {}, "entries": ' + "[" * 200_000 + "]" * 200_000 + "}}")
    curl = d / "deep-curl.txt"
    curl.write_text("* Connected to localhost (127.0.0.1) port 8000\n> POST /v1/embeddings HTTP/1.1\n> Host: x\n>\n"
                    "< HTTP/1.1 400 Bad Request\n<\n" + "[" * 200_000 + "\n")
    good = d / "client.txt"
    good.write_bytes((HERE.parent / "samples/model-name-mismatch/client-traceback.txt").read_bytes())
    return [str(har), str(curl), str(good)]


def events_busy(d: Path) -> list[str]:
    p = d / "busy-2g.log"
    if not p.exists():
        with open(p, "wb") as f:
            block = ROUTINE * 100_000
            while f.tell() < 2048 * MiB:
                f.write(block)
    return ["EVENTS", str(p)]


def alias_bomb(d: Path) -> list[str]:
    rules = d / "bomb-rules"
    rules.mkdir(exist_ok=True)
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for x, y in zip("bcdefghi", "abcdefgh", strict=True):
        lines.append(f"{x}: &{x} [" + ",".join([f"*{y}"] * 9) + "]")
    lines = ["id: test.bomb", "title: bomb", "severity: error", "means: x", "match: {message: {contains: x}}",
             "message: x", "remedy: [x]", "x-bomb:"] + ["  " + line for line in lines] + ["  z: *i"]
    (rules / "bomb.yaml").write_text("\n".join(lines) + "\n")
    good = d / "client.txt"
    good.write_bytes((HERE.parent / "samples/model-name-mismatch/client-traceback.txt").read_bytes())
    return ["RULES", str(rules), str(good)]


def model_regex(d: Path) -> list[str]:
    rules = d / "regex-rules"
    (rules / "data").mkdir(parents=True, exist_ok=True)
    (rules / "data" / "embedding_models.yaml").write_text(
        "families:\n  - name: evil\n    match: '(a+)+$'\n    prefixes: ['q: ']\n")
    (rules / "x.yaml").write_text("id: test.x\ntitle: x\nseverity: error\nmeans: x\nmatch: {message: {contains: zzz}}\n"
                                  "message: x\nremedy: [x]\n")
    log = d / "model.log"
    log.write_text("INFO 11-20 09:14:02 [api_server.py:1] args: Namespace(model='" + "a" * 45 + "!')\n")
    return ["RULES", str(rules), str(log)]


def lookaround(d: Path) -> list[str]:
    rules = d / "slow-rules"
    rules.mkdir(exist_ok=True)
    (rules / "slow.yaml").write_text(
        "id: test.slow\ntitle: slow\nseverity: error\nmeans: x\nmatch: {text: {regex: '^ERROR (x|xx)+\\1y'}}\n"
        "message: x\nremedy: [x]\n")
    log = d / "slow.log"
    log.write_text(("ERROR " + "x" * 30 + "\n") * 2000)
    return ["RULES", str(rules), str(log)]


CASES = {f.__name__: f for f in (tar_gz, mask_line, smi_spaces, smi_row, xml_1m, xml_4m, zip_bomb, tracebacks,
                                 line_256m, line_1g, har_objects, deep_json, events_busy, alias_bomb, model_regex,
                                 lookaround)}


def run(args: list[str]) -> tuple[float, int, int, str]:
    if args[0] == "EVENTS":
        cmd = ["emblens", "events", args[1], "-o", str(OUT / "events.jsonl")]
    elif args[0] == "RULES":
        cmd = ["emblens", "analyze", "--rules", args[1], *args[2:], "--format", "json"]
    else:
        cmd = ["emblens", "analyze", *args, "--format", "json"]
    start = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        return 120.0, 0, -1, "timed out"
    took = time.monotonic() - start
    rss = resource_peak()
    note = ""
    try:
        doc = json.loads(out)
        notes = [f"{s['source']}: {s['reason']}" for s in doc.get("skipped", [])]
        notes += [f"{i['source']}: {i['note']}" for i in doc.get("coverage", {}).get("inputs", []) if i.get("note")]
        note = notes[0] if notes else (doc["findings"][0]["rule"] if doc.get("findings") else "no findings")
    except (ValueError, KeyError, TypeError, IndexError):
        note = (err.decode(errors="replace").strip().splitlines() or [""])[-1]
    return took, rss, proc.returncode, note


def resource_peak() -> int:
    import resource

    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024


def main() -> None:
    names = sys.argv[1:] or list(CASES)
    OUT.mkdir(parents=True, exist_ok=True)
    print(f"{'case':<12} {'seconds':>8} {'peak MiB':>9} {'exit':>5}  note")
    for name in names:
        args = CASES[name](OUT)
        # peak RSS of children is a running maximum: measure each case in a fresh Python
        code = ("import sys; sys.argv=['x']; sys.path.insert(0, %r); import hostile; "
                "import json; print(json.dumps(hostile.run(%r)))") % (str(HERE), args)
        res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        took, rss, rc, note = json.loads(res.stdout.strip().splitlines()[-1])
        print(f"{name:<12} {took:>8.1f} {rss:>9,} {rc:>5}  {note[:110]}", flush=True)


if __name__ == "__main__":
    main()
