"""nvidia-smi in every form users paste (FORMATS.md §3): the default table (79 and 89 columns),
`-q` text (one or many GPUs, MIG), `--query-gpu`/`--query-compute-apps` CSV with or without
`noheader`/`nounits`, `-q -x` XML, and repeated snapshots (`-l 1` loops, a `timestamp` column).

Each snapshot becomes one `gpu` event per GPU (memory used/total/free, utilisation, a summary of
its processes) and one per process (pid, name, MiB), numbered by `gpu_snapshot`; driver and CUDA
versions become facts. Dumps are small, so this adapter reads the member whole (`WholeFileSource`)
and walks its lines; a line it cannot place is counted as unparsed, never an error.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import datetime

from emblens.formats.base import WholeFileSource
from emblens.reading.context import SourceContext

HEADER = re.compile(r"NVIDIA-SMI (?P<smi>\S+)\s+(?:Driver|KMD) Version: (?P<drv>\S+)\s+CUDA (?:UMD )?Version: (?P<cuda>\S+)")
GPU_ROW = re.compile(r"^\|\s+(?P<idx>\d+)\s+(?P<name>.+?)\s+(?:On|Off)\s+\|\s+(?P<bus>[0-9A-Fa-f]{8}:[0-9A-Fa-f]{2}:[0-9A-Fa-f]{2}\.\d)")
MEM_ROW = re.compile(r"^\|.*?\|\s*(?P<used>\d+)MiB\s*/\s*(?P<total>\d+)MiB\s*\|\s*(?P<util>\d+|N/A)%?")
PROC_ROW = re.compile(r"^\|\s+(?P<gpu>\d+)\s+(?P<gi>\S+)\s+(?P<ci>\S+)\s+(?P<pid>\d+)\s+(?P<type>C\+G|C|G)\s+(?P<name>.+?)\s+(?P<mem>\d+MiB|N/A)\s*\|$")
TABLE_NOISE = re.compile(
    r"^(?:[|+][-=+|]+[|+]|\|\s*(?:GPU\s+Name|Fan\s+Temp|GPU\s+GI|ID\s+ID|Processes:|No running processes found)"
    r".*\||\|[\s|]*(?:MIG M\.|Usage|Disabled|Enabled|N/A|Default)?[\s|]*\||\|\s+\|.*\|)$"
)
STAMP = re.compile(r"^(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun) \w{3} +\d{1,2} \d{2}:\d{2}:\d{2} \d{4}$")
Q_START = "==============NVSMI LOG=============="
Q_KV = re.compile(r"^(?P<indent> *)(?P<key>[^:]+?)\s*:\s*(?P<value>.*)$")
Q_GPU = re.compile(r"^GPU (?P<bus>[0-9A-Fa-f]{8}:[0-9A-Fa-f]{2}:[0-9A-Fa-f]{2}\.\d)$")
MIB = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(?:MiB)?\s*$")
# a pasted command: `nvidia-smi --query-gpu=index,memory.total,memory.used --format=csv,noheader,nounits`
QUERY_COMMAND = re.compile(r"nvidia-smi\b.*--query-(?:gpu|compute-apps)[= ](?P<fields>[\w.,]+)")
CSV_HINT = re.compile(r"memory\.(?:total|used|free)|used_gpu_memory|utilization\.gpu|pid, process_name")
GPU_WORDS = re.compile(r"NVIDIA|Tesla|Quadro|GeForce|RTX|\b[AHLBV]\d{2,3}\b")


def _mib(value: str | None) -> float | None:
    if value is None:
        return None
    m = MIB.match(value.replace("[", "").replace("]", ""))
    return float(m.group(1)) if m else None


def _stamp(text: str) -> datetime | None:
    for fmt in ("%a %b %d %H:%M:%S %Y", "%Y/%m/%d %H:%M:%S.%f", "%Y/%m/%d %H:%M:%S"):
        try:
            return datetime.strptime(" ".join(text.split()), fmt)
        except ValueError:
            continue
    return None


class _Rows:
    """Collects event rows and which lines were understood."""

    def __init__(self) -> None:
        self.rows: list[dict] = []
        self.used: set[int] = set()
        self.snapshot = 0
        self.ts: datetime | None = None
        self.versions: set[tuple[str, str]] = set()

    def version(self, line: int, driver: str | None, cuda: str | None, text: str) -> None:
        for software, v in (("nvidia_driver", driver), ("cuda", cuda)):
            if v and v != "N/A" and (software, v) not in self.versions:
                self.versions.add((software, v))
                self.rows.append({"kind": "fact", "fact": "version", "software": software, "software_version": v,
                                  "line": line, "text": text, "message": f"{software} {v}", "origin": "gpu", "level": "INFO"})

    def gpu(self, line: int, text: str, index: int | None, name: str | None, used: float | None, total: float | None,
            free: float | None = None, util: float | None = None, mig: str | None = None) -> None:
        if free is None and used is not None and total is not None:
            free = total - used
        row = {"kind": "gpu", "origin": "gpu", "line": line, "text": text, "ts": self.ts, "gpu_snapshot": self.snapshot,
               "gpu_index": index, "gpu_name": name, "gpu_mem_used_mib": used, "gpu_mem_total_mib": total,
               "gpu_mem_free_mib": free, "gpu_util_pct": util, "gpu_mig": mig, "level": "INFO"}
        self.rows.append(row)

    def proc(self, line: int, text: str, index: int | None, pid: int | None, typ: str | None, name: str | None,
             mem: float | None) -> None:
        self.rows.append({"kind": "gpu", "origin": "gpu", "line": line, "text": text, "ts": self.ts,
                          "gpu_snapshot": self.snapshot, "gpu_index": index, "gpu_proc_pid": pid, "gpu_proc_type": typ,
                          "gpu_proc_name": name, "gpu_proc_mem_mib": mem, "level": "INFO",
                          "message": f"GPU {index}: process {pid} {name} holds {mem:,.0f} MiB" if mem is not None
                          else f"GPU {index}: process {pid} {name}"})

    def finish(self) -> list[dict]:
        # each GPU row gets a summary of its snapshot's processes (largest first)
        procs: dict[tuple, list[dict]] = {}
        for r in self.rows:
            if r.get("gpu_proc_pid") is not None:
                procs.setdefault((r["gpu_snapshot"], r["gpu_index"]), []).append(r)
        for r in self.rows:
            if r["kind"] == "gpu" and r.get("gpu_proc_pid") is None:
                mine = sorted(procs.get((r["gpu_snapshot"], r["gpu_index"]), []), key=lambda p: -(p["gpu_proc_mem_mib"] or 0))
                r["gpu_processes"] = "; ".join(
                    f"{p['gpu_proc_pid']} {p['gpu_proc_name']} {p['gpu_proc_mem_mib'] or 0:,.0f} MiB" for p in mine) or None
                used, total = r.get("gpu_mem_used_mib"), r.get("gpu_mem_total_mib")
                mem = f"{used:,.0f} / {total:,.0f} MiB used" if used is not None and total is not None else "memory not reported"
                r["message"] = f"GPU {r['gpu_index']} {r.get('gpu_name') or ''}: {mem}".replace("  ", " ") + (
                    f"; processes: {r['gpu_processes']}" if r.get("gpu_processes") else "")
        return self.rows


class NvidiaSmi(WholeFileSource):
    __slots__ = ()
    name = "nvidia-smi"
    origin = "gpu"
    local_time = True        # nvidia-smi prints the machine's local time

    def sniff(self, head: list[str]) -> float:
        text = "\n".join(head[:200])
        if HEADER.search(text) or Q_START in text or "<nvidia_smi_log>" in text:
            return 0.98
        first = next((h for h in head if h.strip()), "")
        if CSV_HINT.search(first):
            return 0.97
        rows = [h for h in head if h.strip()]
        if rows and sum(1 for h in rows if h.count(",") >= 2 and GPU_WORDS.search(h)) >= 0.8 * len(rows):
            return 0.9
        return 0.0

    def parse_lines(self, lines: list[str], ctx: SourceContext) -> tuple[list[dict], set[int], str | None]:  # noqa: ARG002
        text = "\n".join(lines)
        out = _Rows()
        note = None
        try:
            if "<nvidia_smi_log" in text:
                _xml(text, out)
            elif Q_START in text:
                _query(lines, out)
            elif HEADER.search(text):
                _table(lines, out)
            else:
                _csv(lines, out)
        except (ValueError, KeyError, IndexError, TypeError, AttributeError) as e:  # a dump like no other
            note = f"nvidia-smi output not understood past what was read ({type(e).__name__})"
        return out.finish(), out.used, note


# nvidia-smi prints short lines (it truncates long process names); a longer line is not its output
# and is never given to the patterns above, whose cost grows with the line
MAX_SMI_LINE = 512


def _table(lines: list[str], out: _Rows) -> None:
    pending: dict | None = None
    for n, line in enumerate(lines, 1):
        if len(line) > MAX_SMI_LINE:
            continue
        s = line.rstrip()
        if STAMP.match(s.strip()):
            out.ts = _stamp(s.strip())
            out.used.add(n)
            continue
        m = HEADER.search(s)
        if m:
            out.snapshot += 1
            out.version(n, m.group("drv"), m.group("cuda"), s.strip())
            out.used.add(n)
            continue
        m = GPU_ROW.match(s)
        if m:
            pending = {"idx": int(m.group("idx")), "name": m.group("name").strip(), "line": n}
            out.used.add(n)
            continue
        m = MEM_ROW.match(s)
        if m and pending is not None:
            util = None if m.group("util") == "N/A" else float(m.group("util"))
            out.gpu(n, s.strip(), pending["idx"], pending["name"], float(m.group("used")), float(m.group("total")), util=util)
            out.used.add(n)
            pending = None
            continue
        if pending is not None and "Not Supported" in s:   # unified-memory parts report no memory
            out.gpu(n, s.strip(), pending["idx"], pending["name"], None, None)
            out.used.add(n)
            pending = None
            continue
        m = PROC_ROW.match(s)
        if m:
            mem = None if m.group("mem") == "N/A" else float(m.group("mem")[:-3])
            out.proc(n, s.strip(), int(m.group("gpu")), int(m.group("pid")), m.group("type"), m.group("name").strip(), mem)
            out.used.add(n)
            continue
        if TABLE_NOISE.match(s.strip()):
            out.used.add(n)


def _query(lines: list[str], out: _Rows) -> None:
    driver = cuda = None
    gpu: dict | None = None
    gpu_index = -1
    path: list[tuple[int, str]] = []       # (indent, section) above the current line
    proc: dict | None = None
    mig_depth = None

    def flush_proc() -> None:
        nonlocal proc
        if proc and gpu is not None and proc.get("pid") is not None:
            out.proc(proc["line"], proc["text"], gpu["index"], proc.get("pid"), proc.get("type"), proc.get("name"), proc.get("mem"))
        proc = None

    def flush_gpu() -> None:
        nonlocal gpu
        flush_proc()
        if gpu is not None:
            out.gpu(gpu.get("mem_line", gpu["line"]), gpu.get("mem_text", gpu["text"]), gpu["index"], gpu.get("name"),
                    gpu.get("used"), gpu.get("total"), gpu.get("free"), gpu.get("util"), gpu.get("mig"))
        gpu = None

    for n, line in enumerate(lines, 1):
        if not line.strip() or len(line) > MAX_SMI_LINE:
            continue
        if line.strip() == Q_START:
            flush_gpu()
            out.snapshot += 1
            gpu_index = -1
            out.used.add(n)
            continue
        m = Q_GPU.match(line.strip()) if not line.startswith(" ") else None
        if m:
            flush_gpu()
            gpu_index += 1
            gpu = {"index": gpu_index, "line": n, "text": line.strip()}
            path = []
            mig_depth = None
            out.used.add(n)
            continue
        kv = Q_KV.match(line)
        indent = len(line) - len(line.lstrip(" "))
        while path and path[-1][0] >= indent:
            path.pop()
        if mig_depth is not None and indent <= mig_depth:
            mig_depth = None
        if kv is None:
            section = line.strip()
            path.append((indent, section))
            if section == "MIG Devices":
                mig_depth = indent
            if section == "Processes" and gpu is not None:
                flush_proc()
            out.used.add(n)
            continue
        key, value = kv.group("key").strip(), kv.group("value").strip()
        out.used.add(n)
        sections = [p[1] for p in path]
        if gpu is None:
            if key == "Timestamp":
                out.ts = _stamp(value)
            elif key == "Driver Version":
                driver = value
            elif key == "CUDA Version":
                cuda = value
                out.version(n, driver, cuda, f"Driver Version: {driver}, CUDA Version: {cuda}")
            continue
        if mig_depth is not None:
            continue   # per-MIG-device figures: the GPU's own FB totals are what matters here
        if key == "Product Name":
            gpu["name"] = value
        elif key == "Current" and sections and sections[-1] == "MIG Mode":
            gpu["mig"] = value
        elif sections and sections[-1] == "FB Memory Usage":
            field = {"Total": "total", "Used": "used", "Free": "free"}.get(key)
            if field:
                gpu[field] = _mib(value)
                if field == "used":
                    gpu["mem_line"], gpu["mem_text"] = n, f"FB Memory Used: {value}"
        elif key == "Gpu" and sections and sections[-1] == "Utilization":
            gpu["util"] = _mib(value.replace("%", ""))
        elif key == "Processes" and value == "None":
            flush_proc()
        elif key == "Process ID":
            flush_proc()
            proc = {"pid": int(value) if value.isdigit() else None, "line": n, "text": line.strip()}
        elif proc is not None and key == "Type":
            proc["type"] = value
        elif proc is not None and key == "Name":
            proc["name"] = value
        elif proc is not None and key == "Used GPU Memory":
            proc["mem"] = _mib(value)
            proc["text"] = f"Process ID {proc.get('pid')} ({proc.get('name')}): Used GPU Memory {value}"
    flush_gpu()


MAX_XML_DOCS = 10_000   # `-l 1` for almost three hours; more is not one dump


def _xml(text: str, out: _Rows) -> None:
    # `-q -x -l 1` concatenates whole documents: parse each one
    marker = "<?xml" if "<?xml" in text else "<nvidia_smi_log"
    docs = [m.start() for m in re.finditer(re.escape(marker), text)][:MAX_XML_DOCS]
    first_line, counted_to = 1, 0
    for k, start in enumerate(docs):
        end = docs[k + 1] if k + 1 < len(docs) else len(text)
        chunk = text[start:end]
        first_line += text.count("\n", counted_to, start)    # counted from the last document, not the start
        counted_to = start
        body = re.sub(r"<!DOCTYPE[^>]*>", "", chunk)
        try:
            root = ET.fromstring(body.strip())
        except ET.ParseError:
            continue   # a truncated or broken document: its lines stay unparsed
        out.snapshot += 1
        out.ts = _stamp(root.findtext("timestamp") or "")
        driver, cuda = root.findtext("driver_version"), root.findtext("cuda_version")
        span = range(first_line, first_line + chunk.count("\n") + 1)
        out.used.update(span)

        def line_of(needle: str, default: int = first_line, chunk: str = chunk, first_line: int = first_line) -> int:
            at = chunk.find(needle)
            return first_line + chunk.count("\n", 0, at) if at >= 0 else default

        out.version(line_of("<driver_version>"), driver, cuda, f"driver_version {driver}, cuda_version {cuda}")
        for i, g in enumerate(root.findall("gpu")):
            fb = g.find("fb_memory_usage")
            used = _mib(fb.findtext("used")) if fb is not None else None
            total = _mib(fb.findtext("total")) if fb is not None else None
            free = _mib(fb.findtext("free")) if fb is not None else None
            util = _mib((g.findtext("utilization/gpu_util") or "").replace("%", ""))
            gid = g.get("id") or str(i)
            n = line_of(f'<gpu id="{gid}"')
            out.gpu(n, f"<gpu id=\"{gid}\"> {g.findtext('product_name')}: fb_memory_usage used {fb.findtext('used') if fb is not None else '?'} "
                       f"of {fb.findtext('total') if fb is not None else '?'}", i, g.findtext("product_name"), used, total, free, util,
                    g.findtext("mig_mode/current_mig"))
            for p in g.findall("processes/process_info"):
                pid = p.findtext("pid")
                out.proc(line_of(f"<pid>{pid}</pid>", n), f"<process_info> pid {pid} {p.findtext('process_name')} "
                         f"{p.findtext('used_memory')}", i, int(pid) if pid and pid.isdigit() else None,
                         p.findtext("type"), p.findtext("process_name"), _mib(p.findtext("used_memory")))


def _csv(lines: list[str], out: _Rows) -> None:
    header: list[str] | None = None
    last_stamp = None
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        cells = [c.strip() for c in line.split(",")]
        if command := QUERY_COMMAND.search(line):
            # the pasted command names the columns of the rows below it (`noheader` prints none)
            header = [c.strip() for c in command.group("fields").split(",") if c.strip()]
            out.used.add(n)
            continue
        if CSV_HINT.search(line) and not any(ch.isdigit() for ch in line.split(",")[0]):
            header = [re.sub(r"\s*\[.*\]$", "", c) for c in cells]
            out.used.add(n)
            continue
        cols = header or _guess(cells)
        if cols is None or len(cols) != len(cells):
            continue
        row = dict(zip(cols, cells))
        ts = _stamp(row["timestamp"]) if "timestamp" in row else None
        if "pid" in row:
            if not row["pid"].isdigit():
                continue
            out.proc(n, line.strip(), None, int(row["pid"]), None, row.get("process_name"),
                     _mib(row.get("used_gpu_memory") or row.get("used_memory")))
            out.used.add(n)
            continue
        if ts is not None:
            out.ts = ts
            if ts != last_stamp:
                out.snapshot += 1
                last_stamp = ts
        elif out.snapshot == 0 or row.get("index") in ("0", None):
            out.snapshot += 1
        idx = row.get("index")
        out.gpu(n, line.strip(), int(idx) if idx and idx.isdigit() else None, row.get("name"),
                _mib(row.get("memory.used")), _mib(row.get("memory.total")), _mib(row.get("memory.free")),
                _mib((row.get("utilization.gpu") or "").replace("%", "")))
        if row.get("driver_version"):
            out.version(n, row["driver_version"], None, line.strip())
        out.used.add(n)


def _guess(cells: list[str]) -> list[str] | None:
    """Columns of a `noheader` row: a name, an index, a timestamp; the memory figures by size
    (total is the largest; with three, used + free ≈ total)."""
    cols: list[str | None] = [None] * len(cells)
    numbers = []
    for i, c in enumerate(cells):
        if _stamp(c):
            cols[i] = "timestamp"
        elif GPU_WORDS.search(c) or re.search(r"[A-Za-z]{3}", c.replace("MiB", "")):
            cols[i] = "name"
        elif c.endswith("%"):
            cols[i] = "utilization.gpu"
        elif _mib(c) is not None:
            numbers.append(i)
    if "name" not in cols:
        return None
    small = [i for i in numbers if (_mib(cells[i]) or 0) < 64 and "MiB" not in cells[i]]
    if small and small[0] < cols.index("name"):
        cols[small[0]] = "index"
        numbers.remove(small[0])
    mem = sorted(numbers, key=lambda i: _mib(cells[i]) or 0)
    if len(mem) >= 2:
        cols[mem[-1]] = "memory.total"
        rest = mem[:-1]
        if len(rest) >= 2:
            a, b = rest[-2], rest[-1]
            cols[a if a < b else b], cols[b if a < b else a] = "memory.used", "memory.free"
        else:
            cols[rest[0]] = "memory.used"
    return [c or f"col{i}" for i, c in enumerate(cols)]
