"""`emblens collect`: gather the evidence where the server runs into one zip that `emblens
analyze` reads, with a manifest.json that says what was collected, from where, and what was not
and why.

Secrets: every member of the zip (logs, command outputs, the HAR, mitmproxy captures, the
manifest) goes through the run's one `Redactor`, so a value masked in one file is masked in all
of them. Text is masked in blocks of whole lines, a block never ending where a secret's name
could still reach the lines after it (`redact.TRIGGERS`, `redact.MAX_FOLLOWING`), so memory stays
flat on a big log. Members are staged in a private temporary zip and masked once more when the
bundle is written, with everything the run has learnt by then: a key first met in the last file
is masked in the first one too.

Bounds: every command runs in a session of its own with a deadline (`children.run`: the whole
process group is killed at the deadline, and a pipe held open by a process it left behind is not
waited on), and only the end of its output is kept as it streams (the last `tail` lines, at most
`max_bytes`). A missing tool, a refusal or a hang is a line of the manifest, never a failure of
the whole collection.

Files: only regular files are read (a FIFO or a device is refused, never opened blocking), never
through a link that leads out of the folder named (`--log /var/log/vllm/*.log` does not follow
`vllm.log.1 -> /root/secret`). The bundle is written through `outfiles.replacing` (a private
temporary file created exclusively without following links, renamed into place), and one run at
a time holds a lock beside it: a second run to the same path stops at once with one line.

    plan = Plan(logs=["/var/log/vllm.log"], url="http://127.0.0.1:8000/v1")
    manifest = collect(plan, Path("bundle.zip"))

No printing here: `say` receives one line per step (the CLI writes them to stderr).
"""

from __future__ import annotations

import contextlib
import glob
import gzip
import json
import os
import platform
import re
import shutil
import socket
import stat
import tempfile
import time
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import polars as pl

from emblens import outfiles
from emblens._version import __version__
from emblens.errors import EmblensError
from emblens.events import redact
from emblens.events.redact import Redactor
from emblens.frontends import children
from emblens.patterns.ascii import contains

try:
    import fcntl
except ImportError:          # Windows has no fcntl: there, two runs to one path are not kept apart
    fcntl = None  # type: ignore[assignment]

TAIL_LINES = 5000
MAX_BYTES = 64 * 1024 * 1024        # kept of one log or one command's output
TIMEOUT_S = 30.0                    # each command
MAX_FILES = 200                     # files a --log glob may bring
MAX_FLOWS = 100000                  # flows of one capture
BLOCK = 1 << 20                     # bytes of text masked at once
MAX_BLOCK = 16 << 20                # a block that never finds a safe end is masked whole at this size
SERVER_PATTERN = re.compile(r"vllm|sglang|text-embeddings-router|text_embeddings_router")
SERVER_LAUNCH = re.compile(r"\bvllm\s+serve\b|vllm\.entrypoints|sglang\.launch_server|\bsglang\s+serve\b|"
                           r"text[-_]embeddings[-_]router")
MAX_SERVERS = 10                    # running servers looked at
PACKAGES = ("vllm", "sglang", "torch", "transformers", "openai", "flashinfer-python", "xformers",
            "sentence-transformers", "tokenizers", "huggingface-hub")
# what runs in the server's Python: package versions from metadata (nothing is imported), as pip freeze writes them
VERSIONS_SCRIPT = (
    "import importlib.metadata as m, sys\n"
    f"for n in {PACKAGES!r}:\n"
    "    try: print(n + '==' + m.version(n))\n"
    "    except Exception: pass\n"
    "print('# python ' + sys.version.split()[0])\n"
)
SECRET_ENV = re.compile(r"(?i)key|token|secret|passw|pwd|credential|auth|cookie|session|private|signature|dsn|"
                        r"(?:^|_)pass(?:_|$)")
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
Say = Callable[[str], None]


@dataclass
class Plan:
    docker: list[str] = field(default_factory=list)
    k8s: list[str] = field(default_factory=list)
    namespace: str | None = None
    container: str | None = None
    logs: list[str] = field(default_factory=list)
    journal: list[str] = field(default_factory=list)
    url: str | None = None
    api_key: str | None = None
    key_var: str | None = None
    add: list[str] = field(default_factory=list)
    tail: int = TAIL_LINES
    timeout_s: float = TIMEOUT_S
    max_bytes: int = MAX_BYTES
    gpu: bool = True
    discover: bool = True      # with no --docker/--k8s/--log/--journal: look for running servers


@dataclass
class Ran:
    ok: bool
    out: children.Tail
    why: str = ""           # when not ok: not found, exit status and its stderr, timed out

    @property
    def truncated(self) -> bool:
        return self.out.truncated

    def data(self) -> bytes:
        return self.out.data()


def run(argv: list[str], timeout_s: float, max_bytes: int = MAX_BYTES, stderr_too: bool = False,
        tail: int = 0) -> Ran:
    """A command with a deadline and a cap on what is kept of its output (the last `tail` lines,
    at most `max_bytes`). Never raises for the command's failure."""
    out = children.Tail(max_bytes, tail)
    exe = shutil.which(argv[0])
    if exe is None:
        return Ran(False, out, f"{argv[0]}: not found")
    shown = " ".join(argv[:3])
    try:
        ended = children.run([exe, *argv[1:]], timeout_s, out, merge_stderr=stderr_too)
    except OSError as e:
        return Ran(False, out, f"{argv[0]}: cannot run: {e.strerror or e}")
    if ended.timed_out:
        return Ran(False, out, f"{shown}: timed out after {timeout_s:g} s (stopped)")
    left = " (a process it started kept its output open; not waited for)" if ended.left_open else ""
    if ended.status != 0:
        said = (ended.err or out.data()[-4096:]).decode("utf-8", "replace").strip().splitlines()
        return Ran(False, out, f"{shown}: exit status {ended.status}" + (f": {said[-1][:200]}" if said else "") + left)
    return Ran(True, out, left.strip(" ()"))


# -- masking ------------------------------------------------------------------------------------
_TRIGGER_SEARCH = redact.TRIGGERS


def _safe_end(lines: list[str]) -> int:
    """How many of `lines` can be masked without the lines after them: a line that may name a
    secret whose value is on the lines after it (a trigger) keeps itself and what follows back,
    and so does a trigger within reach of the lines kept back."""
    reach = redact.MAX_FOLLOWING
    end = len(lines)
    while end > 0:
        start = max(0, end - reach)
        hits = contains(pl.Series(lines[start:end], dtype=pl.String), _TRIGGER_SEARCH)
        if not hits.any():
            return end
        end = start + hits.arg_true()[0]
    return 0


class Masker:
    """Masks a stream of bytes into another, in blocks of whole lines, through the run's
    redactor (`mask`: a list of lines in, the same number of lines out)."""

    def __init__(self, mask: Callable[[list[str]], list[str]], write: Callable[[bytes], object], *,
                 whole: bool = True) -> None:
        self.mask = mask
        self.write = write
        self.whole = whole         # False: the lines hold no name a later line needs (the second pass)
        self.buf = bytearray()
        self.held: list[str] = []  # lines kept back for the next block: their names may reach it
        self.bytes = 0
        self.lines = 0

    def feed(self, data: bytes) -> None:
        self.buf += data
        while len(self.buf) >= BLOCK and self._block(final=False):
            pass

    def close(self) -> tuple[int, int]:
        self._block(final=True)
        return self.bytes, self.lines

    def _emit(self, lines: list[str], last_newline: bool = True) -> None:
        if not lines:
            return
        out = "\n".join(self.mask(lines)) + ("\n" if last_newline else "")
        data = out.encode("utf-8", "replace")
        self.write(data)
        self.bytes += len(data)
        self.lines += out.count("\n")

    def _block(self, final: bool) -> bool:
        """Mask what can be masked now; whether anything was."""
        at = self.buf.rfind(b"\n")
        if at < 0 and not final:
            # a line longer than a block: masked in pieces, cut where no secret is cut in two
            cut = _long_line_cut(self.buf)
            piece, self.buf = bytes(self.buf[:cut]), self.buf[cut:]
            self._emit(self.held)
            self.held = []
            self._emit([piece.decode("utf-8", "replace")], last_newline=False)
            return True
        whole, rest = bytes(self.buf[:at + 1]), self.buf[at + 1:]
        self.buf = bytearray()
        lines = self.held + whole.decode("utf-8", "replace").split("\n")[:-1]
        if final:
            tail = [rest.decode("utf-8", "replace")] if rest else []
            self.held = []
            if tail:
                self._emit(lines + tail, last_newline=False)
            else:
                self._emit(lines)
            return True
        self.buf = rest
        end = _safe_end(lines) if self.whole else len(lines)
        if end == 0 and sum(len(x) for x in lines) >= MAX_BLOCK:
            end = len(lines)        # a name on every line: masked as it is (the second pass still masks what it learnt)
        self._emit(lines[:end])
        self.held = lines[end:]
        return True


_TRIGGER_END = re.compile(redact.TRIGGERS)


def _long_line_cut(buf: bytearray) -> int:
    """Where to cut a line longer than a block: after a space or tab, where the text before the cut
    does not end with a secret's name or an auth word (the value would go to the next piece); a
    line with no such place is cut at the block's size."""
    at = len(buf)
    for _ in range(64):
        at = max(buf.rfind(b" ", 0, at), buf.rfind(b"\t", 0, at))
        if at <= 0:
            break
        if not _TRIGGER_END.search(bytes(buf[max(0, at - 512):at + 1]).decode("utf-8", "replace")):
            return at + 1
    return min(len(buf), BLOCK)


class Bundle:
    """The zip being made. Members are masked as they come into a private staging zip, then masked
    once more into the bundle, with every value the run has learnt by then."""

    def __init__(self, path: Path, say: Say) -> None:
        self.path = path
        self.say = say
        self.redactor = Redactor()    # masks every member; the manifest says what it masked
        self.known: dict[str, str] = {}   # secrets known by other means (the --url key) -> shape
        self.collected: list[dict] = []
        self.missing: list[dict] = []
        self.names: set[str] = set()
        self.kinds: dict[str, str] = {}    # member -> "text" or "flows"
        folder = path.parent if str(path.parent) else Path(".")
        try:
            # unnamed where it can be (mkstemp's O_EXCL | O_NOFOLLOW, 0600, unlinked at once otherwise)
            self.stage_file = tempfile.TemporaryFile(dir=folder, prefix=f".{path.name}.", suffix=".stage")
        except OSError as e:
            raise EmblensError(f"cannot write {path}: {e.strerror or e}") from None
        self.stage = zipfile.ZipFile(self.stage_file, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1)

    # -- masking --------------------------------------------------------------------------------------
    def remember(self, value: str, kind: str) -> None:
        """A secret known by other means: masked in every member from now on, and in those before."""
        v = value.strip()
        if len(v) >= 6 and redact.shape(v) != v:
            self.known[v] = self.redactor.remember(v, kind)

    def _known(self, lines: pl.Series) -> pl.Series:
        if not self.known:
            return lines
        return lines.str.replace_many(list(self.known), list(self.known.values()))

    def mask_lines(self, lines: list[str]) -> list[str]:
        r = self.redactor
        s = pl.Series(lines, dtype=pl.String)
        return self._known(r.series(r.next_lines(s))).to_list()

    def remask_lines(self, lines: list[str]) -> list[str]:
        """The second pass: text masked once already; only the values learnt since are left."""
        s = pl.Series(lines, dtype=pl.String)
        return self._known(self.redactor.series(s, pl.Series([], dtype=pl.UInt32))).to_list()   # no line needs the catalogue again

    def mask(self, text: str) -> str:
        """One short string (a source, a reason, a name)."""
        out = self.redactor.text(text)
        for value, shape in self.known.items():
            out = out.replace(value, shape)
        return out

    def holds_secret(self, text: str) -> bool:
        """Whether `text` still holds a value the run knows to be secret."""
        return self.remask_lines([text])[0] != text

    # -- members ---------------------------------------------------------------------------------------
    def name(self, wanted: str) -> str:
        wanted = re.sub(r"[^\w.\-/]+", "_", self.mask(wanted)).strip("/") or "file"
        wanted = "/".join(p for p in wanted.split("/") if p not in ("", ".", "..")) or "file"
        name, n = wanted, 1
        while name in self.names or name == "manifest.json":
            n += 1
            stem, dot, ext = wanted.rpartition(".")
            name = f"{stem}-{n}.{ext}" if dot else f"{wanted}-{n}"
        self.names.add(name)
        return name

    def stream(self, wanted: str, chunks: Iterable[bytes], source: str, *, truncated: bool = False,
               note: str = "") -> str:
        """A text member from pieces of bytes, masked in blocks of whole lines."""
        name = self.name(wanted)
        with self.stage.open(name, "w", force_zip64=True) as f:
            m = Masker(self.mask_lines, f.write)
            for chunk in chunks:
                m.feed(chunk)
            size, lines = m.close()
        self.kinds[name] = "text"
        entry = {"file": name, "from": self.mask(source), "bytes": size, "lines": lines, "truncated": truncated}
        if note:
            entry["note"] = self.mask(note)
        self.collected.append(entry)
        self.say(f"collected {name} ({_size(size)}) from {entry['from'][:100]}")
        return name

    def text(self, wanted: str, data: bytes | str, source: str, *, truncated: bool = False, note: str = "") -> str:
        raw = data.encode("utf-8", "replace") if isinstance(data, str) else data
        return self.stream(wanted, [raw], source, truncated=truncated, note=note)

    def miss(self, what: str, why: str) -> None:
        entry = {"what": self.mask(what), "why": self.mask(why)}
        self.missing.append(entry)
        self.say(f"not collected: {entry['what']}: {entry['why']}")

    # -- the bundle ------------------------------------------------------------------------------------
    def close(self, manifest: dict) -> dict:
        """Write the bundle: every staged member masked once more, then the manifest. Returns the
        manifest as written."""
        self.stage.close()
        self.stage_file.seek(0)
        sizes: dict[str, tuple[int, int]] = {}
        with zipfile.ZipFile(self.stage_file) as stage, outfiles.replacing(self.path, private=True) as f, \
                zipfile.ZipFile(f, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as z:
            for name in stage.namelist():
                with stage.open(name) as src, z.open(name, "w", force_zip64=True) as dst:
                    if self.kinds.get(name) == "flows":
                        sizes[name] = (_remask_flows(self, src, dst), 0)
                    else:
                        m = Masker(self.remask_lines, dst.write, whole=False)
                        while chunk := src.read(BLOCK):
                            m.feed(chunk)
                        sizes[name] = m.close()
            for entry in self.collected:
                if entry["file"] in sizes:
                    entry["bytes"] = sizes[entry["file"]][0]
                    if self.kinds.get(entry["file"]) == "text":
                        entry["lines"] = sizes[entry["file"]][1]
            manifest = {**manifest, "collected": self.collected, "not_collected": self.missing,
                        "masked": self.redactor.take()}
            manifest = _masked_json(self, manifest)
            z.writestr("manifest.json", json.dumps(manifest, indent=2))
        self.stage_file.close()
        return manifest

    def abort(self) -> None:
        with contextlib.suppress(Exception):
            self.stage.close()
        with contextlib.suppress(OSError):
            self.stage_file.close()


def _masked_json(b: Bundle, value):
    """Every string of a JSON document (its keys too) through the run's masking."""
    if isinstance(value, str):
        return b.mask(value)
    if isinstance(value, dict):
        return {b.mask(str(k)): _masked_json(b, v) for k, v in value.items()}
    if isinstance(value, list):
        return [_masked_json(b, v) for v in value]
    return value


def _size(n: int) -> str:
    return f"{n / 1048576:.1f} MiB" if n >= 1048576 else f"{n / 1024:.1f} KiB" if n >= 1024 else f"{n} B"


# -- one run at a time ------------------------------------------------------------------------------
@contextlib.contextmanager
def _only_run(out: Path) -> Iterator[None]:
    """An exclusive lock on a file beside the bundle for the whole run: a second run to the same
    path fails at once instead of mixing its files with this one's."""
    if fcntl is None:
        yield
        return
    lock = out.with_name(f".{out.name}.lock")
    busy = f"{out}: another emblens collect is writing it now (wait for it, or write to another file)"
    for _ in range(3):
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT | _NOFOLLOW | _NONBLOCK | _CLOEXEC, 0o600)
        except OSError as e:
            where = f" ({lock.name})" if os.path.lexists(lock) else ""
            raise EmblensError(f"cannot write {out}: {e.strerror or e}{where}") from None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise EmblensError(f"cannot write {out}: {lock.name} is not a regular file")
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                raise EmblensError(busy) from None
            try:
                now = os.stat(lock, follow_symlinks=False)
            except FileNotFoundError:
                now = None
            if now is None or (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino):
                # the file was removed by a run that just ended: this lock guards nothing, try again
                os.close(fd)
                fd = -1
                continue
            try:
                yield
            finally:
                with contextlib.suppress(OSError):
                    os.unlink(lock)      # while still held: a run that opened it before sees it gone
            return
        finally:
            if fd >= 0:
                os.close(fd)
    raise EmblensError(busy)


# -- files ------------------------------------------------------------------------------------------
class Refused(Exception):
    """A file collect will not read; the message says why, in a few words."""


def _folder_of(pattern: str) -> str:
    """The folder a --log or --add names: the part of the pattern before its first wildcard."""
    parts = Path(pattern).parts
    fixed: list[str] = []
    for part in parts[:-1]:
        if glob.has_magic(part):
            break
        fixed.append(part)
    return str(Path(*fixed)) if fixed else "."


def open_regular(path: str, folder: str) -> tuple[int, os.stat_result]:
    """A descriptor of `path` to read, when it is a regular file this process may read that lies in
    `folder` (a link is followed only where it stays inside). Raises Refused."""
    if not os.path.lexists(path):
        raise Refused("no such file")
    real = os.path.realpath(path)
    base = os.path.realpath(folder)
    try:
        inside = os.path.commonpath([real, base]) == base
    except ValueError:
        inside = False
    if not inside:
        raise Refused(f"a link to {real}, outside {base}: not followed (name that file itself to collect it)")
    try:
        # O_NOFOLLOW: a link swapped in since is not followed; O_NONBLOCK: a FIFO does not hang the open
        fd = os.open(real, os.O_RDONLY | _NOFOLLOW | _NONBLOCK | _CLOEXEC)
    except OSError as e:
        raise Refused(f"cannot read: {e.strerror or e}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise Refused("not a regular file (a folder, FIFO, socket or device is not read)")
        with contextlib.suppress(OSError):
            opened = os.readlink(f"/proc/self/fd/{fd}")
            if opened != real:
                raise Refused(f"changed while it was opened (it is now {opened})")
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd, st


def _file_end(fd: int, size: int, tail: int, max_bytes: int) -> children.Tail:
    """The end of a regular file, read backwards only as far as the last `tail` lines need."""
    pos, pieces, newlines, got = size, [], 0, 0
    while pos > 0 and got <= max_bytes and (not tail or newlines <= tail):
        n = min(children.CHUNK, pos, max_bytes + 1 - got)
        pos -= n
        piece = os.pread(fd, n, pos)
        pieces.append(piece)
        got += len(piece)
        newlines += piece.count(b"\n")
    before = os.pread(fd, 1, pos - 1) if pos > 0 else None
    kept = children.Tail(max_bytes, tail, before=before or None)
    for piece in reversed(pieces):
        kept.feed(piece)
    return kept


def _gz_end(fd: int, tail: int, max_bytes: int, timeout_s: float) -> tuple[children.Tail, bool]:
    """The end of a gzip file, decompressed as a stream; the second value: it ran out of time."""
    kept = children.Tail(max_bytes, tail)
    deadline = time.monotonic() + timeout_s
    with os.fdopen(os.dup(fd), "rb") as raw, gzip.GzipFile(fileobj=raw) as f:
        while chunk := f.read(children.CHUNK):
            kept.feed(chunk)
            if time.monotonic() > deadline:
                return kept, True
    return kept, False


# -- sources -------------------------------------------------------------------------------------
def _output(b: Bundle, wanted: str, r: Ran, source: str) -> str:
    """A command's output as a member, masked as it streams into the bundle."""
    return b.stream(wanted, r.out.pieces(), source, truncated=r.truncated, note=r.why)


def docker(b: Bundle, plan: Plan, name: str, versions: dict) -> None:
    r = run(["docker", "logs", "--timestamps", "--tail", str(plan.tail), name], plan.timeout_s, plan.max_bytes,
            stderr_too=True, tail=plan.tail)
    got = r.out.total > 0
    if r.ok or got:
        _output(b, f"docker/{name}.log", r, f"docker logs --timestamps --tail {plan.tail} {name}")
    if not r.ok:
        b.miss(f"docker logs {name}", r.why)
        if "not found" in r.why and not got:
            return
    r = run(["docker", "inspect", name], plan.timeout_s, 4 * 1024 * 1024)
    if not r.ok:
        b.miss(f"docker inspect {name}", r.why)
    elif r.truncated:
        b.miss(f"docker inspect {name}", "longer than 4 MiB: not read")
    else:
        try:
            doc = json.loads(r.data())
            summary = inspect_summary(doc[0] if isinstance(doc, list) and doc else doc)
        except (ValueError, TypeError, KeyError, AttributeError) as e:
            b.miss(f"docker inspect {name}", f"not the JSON docker writes ({type(e).__name__})")
        else:
            b.text(f"docker/{name}.inspect.txt", summary, f"docker inspect {name} (image, command line, env with "
                   "secret values masked, restarts, shm size)")
    r = run(["docker", "exec", name, "python3", "-c", VERSIONS_SCRIPT], plan.timeout_s, 65536)
    if r.ok:
        _output(b, f"docker/{name}.versions.txt", r, f"docker exec {name} python3 (package versions)")
        versions.update(_parse_versions(r.data()))
    else:
        b.miss(f"versions in container {name}", r.why)


def inspect_summary(doc: dict) -> str:
    """The parts of `docker inspect` that explain a model server's failure, as `key: value` lines
    (the command line as one line, so the rules read it like a pasted command)."""
    cfg = doc.get("Config") or {}
    host = doc.get("HostConfig") or {}
    state = doc.get("State") or {}
    cmd = [str(a) for a in (*(cfg.get("Entrypoint") or []), *(cfg.get("Cmd") or []))]
    ran = [str(a) for a in (*([doc["Path"]] if doc.get("Path") else []), *(doc.get("Args") or []))]
    lines = [
        f"name: {str(doc.get('Name', '')).lstrip('/')}",
        f"image: {cfg.get('Image', '')}",
        f"command: {_command_line(cmd)}",
        *([f"process: {_command_line(ran)}"] if ran and ran != cmd else []),
        f"state: {state.get('Status', '?')} (exit code {state.get('ExitCode', '?')}, OOMKilled {state.get('OOMKilled', '?')}, "
        f"started {state.get('StartedAt', '?')}, finished {state.get('FinishedAt', '?')})",
        f"restart count: {doc.get('RestartCount', '?')}",
        f"shm size: {host.get('ShmSize', '?')} bytes" + (" (ipc: host)" if host.get("IpcMode") == "host" else ""),
        f"network mode: {host.get('NetworkMode', '?')}",
        f"ports: {json.dumps(host.get('PortBindings') or {})}",
        f"gpus: {json.dumps(host.get('DeviceRequests') or [])}",
        "env:",
    ]
    for item in cfg.get("Env") or []:
        name, _, value = str(item).partition("=")
        lines.append(f"  {name}={_env_value(name, value)}")
    return "\n".join(lines) + "\n"


def _command_line(argv: list[str]) -> str:
    """A command line as one line, a secret flag's value reduced to its shape whatever the flag's
    spelling (`--api-key X`, `--api_key=X`, `--hf_token X`): the run's masking reads it again."""
    out: list[str] = []
    secret_next = False
    for arg in argv:
        if secret_next:
            out.append(redact.shape(arg))      # a shape (`<key: 32 chars>`) reads as one word, unquoted
            secret_next = False
            continue
        m = re.match(r"--?([A-Za-z0-9][\w.\-]*)(=(.*))?$", arg, re.S)
        if m and redact.secret_name(m.group(1)):
            if m.group(2) is not None:
                out.append(f"{arg[:m.start(2)]}={redact.shape(m.group(3))}")
                continue
            secret_next = True
        out.append(_quote(arg))
    return " ".join(out)


def _env_value(name: str, value: str) -> str:
    if (SECRET_ENV.search(name) or redact.secret_name(name)) and not re.search(r"(?i)max_?tokens?|tokenizer|num_tokens", name):
        return redact.shape(value) if value else "<empty>"
    return value


def _quote(arg: str) -> str:
    return arg if arg and not re.search(r"\s|['\"]", arg) else json.dumps(arg)


def k8s(b: Bundle, plan: Plan, pod: str, versions: dict) -> None:
    where = [*(["-n", plan.namespace] if plan.namespace else []), *(["-c", plan.container] if plan.container else [])]
    shown = " ".join(where)
    r = run(["kubectl", "logs", "--timestamps", f"--tail={plan.tail}", pod, *where], plan.timeout_s, plan.max_bytes,
            tail=plan.tail)
    if r.ok:
        _output(b, f"k8s/{pod}.log", r, f"kubectl logs --timestamps --tail={plan.tail} {pod} {shown}".strip())
    else:
        b.miss(f"kubectl logs {pod}", r.why)
        if "not found" in r.why and not r.out.total:
            return
    r = run(["kubectl", "logs", "--timestamps", "--previous", f"--tail={plan.tail}", pod, *where], plan.timeout_s,
            plan.max_bytes, tail=plan.tail)
    if r.ok and r.data().strip():
        _output(b, f"k8s/{pod}.previous.log", r, f"kubectl logs --previous {pod} {shown}".strip())
    else:
        b.miss(f"kubectl logs --previous {pod}", r.why or "no previous container (it has not restarted)")
    ns = ["-n", plan.namespace] if plan.namespace else []
    r = run(["kubectl", "describe", "pod", pod, *ns], plan.timeout_s, 4 * 1024 * 1024)
    if r.ok:
        b.text(f"k8s/{pod}.describe.txt", _mask_env_block(r.data().decode("utf-8", "replace")),
               f"kubectl describe pod {pod} {' '.join(ns)}".strip(), truncated=r.truncated)
    else:
        b.miss(f"kubectl describe pod {pod}", r.why)
    r = run(["kubectl", "exec", pod, *where, "--", "python3", "-c", VERSIONS_SCRIPT], plan.timeout_s, 65536)
    if r.ok:
        _output(b, f"k8s/{pod}.versions.txt", r, f"kubectl exec {pod} -- python3 (package versions)")
        versions.update(_parse_versions(r.data()))
    else:
        b.miss(f"versions in pod {pod}", r.why)


_ENV_LINE = re.compile(r"^([ \t]+)([A-Za-z_][A-Za-z0-9_]*):([ \t]+)(\S.*)$", re.M)


def _mask_env_block(text: str) -> str:
    """kubectl describe lists a container's env as `      NAME:  value`: secret names lose their value."""
    return _ENV_LINE.sub(lambda m: f"{m[1]}{m[2]}:{m[3]}{_env_value(m[2], m[4])}" if SECRET_ENV.search(m[2]) else m[0], text)


def logs(b: Bundle, plan: Plan, pattern: str) -> None:
    pattern = os.path.expanduser(pattern)
    paths = sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]
    if not paths:
        b.miss(f"--log {pattern}", "no file matches")
        return
    folder = _folder_of(pattern)
    for path in paths[:MAX_FILES]:
        try:
            fd, st = open_regular(path, folder)
        except Refused as e:
            b.miss(f"--log {path}", str(e))
            continue
        gz = path.endswith(".gz")
        late = False
        try:
            if gz:
                kept, late = _gz_end(fd, plan.tail, plan.max_bytes, plan.timeout_s)
            else:
                kept = _file_end(fd, st.st_size, plan.tail, plan.max_bytes)
            pieces = kept.pieces()
        except (OSError, EOFError, zlib.error) as e:
            b.miss(f"--log {path}", f"cannot read: {getattr(e, 'strerror', None) or e}")
            continue
        finally:
            os.close(fd)
        name = os.path.basename(path)
        name = name[:-3] if gz else name
        note = f"the last {plan.tail:,} lines (at most {_size(plan.max_bytes)})" if kept.truncated else ""
        if late:
            note = f"decompressed for {plan.timeout_s:g} s and stopped: the last lines read by then"
        b.stream(f"logs/{name}", pieces, path + (" (decompressed)" if gz else ""), truncated=kept.truncated or late,
                 note=note)
    if len(paths) > MAX_FILES:
        b.miss(f"--log {pattern}", f"{len(paths) - MAX_FILES} more files than the {MAX_FILES} taken")


def journal(b: Bundle, plan: Plan, unit: str) -> None:
    r = run(["journalctl", "-u", unit, "-o", "short-iso", "--no-pager", "-n", str(plan.tail)], plan.timeout_s,
            plan.max_bytes, tail=plan.tail)
    if r.ok:
        _output(b, f"journal/{unit}.log", r, f"journalctl -u {unit} -o short-iso -n {plan.tail}")
    else:
        b.miss(f"journalctl -u {unit}", r.why)


def url(b: Bundle, plan: Plan) -> None:
    from emblens.frontends.httprec import Recorder, bases

    try:
        base = bases(plan.url or "")
    except ValueError as e:
        b.miss(f"--url {plan.url}", str(e))
        return
    # the four requests share one budget: --timeout is what the step may take
    deadline = time.monotonic() + plan.timeout_s
    rec = Recorder(timeout_s=min(plan.timeout_s, 10.0), max_requests=4, mask=b.redactor.text)
    auth = {"Authorization": f"Bearer {plan.api_key}"} if plan.api_key else {}
    # emblens's own requests are not a client's: one sent without a key on purpose is marked so (the
    # analysis keeps it as a line, not as a request the auth rules would blame on the client)
    plain = "sent without a key, as a monitor does"
    models_why = None if auth else "no key was given to collect (OPENAI_API_KEY or --api-key-env)"
    for path, headers, why in ((f"{base.api}/models", auth, models_why), (f"{base.root}/health", {}, plain),
                               (f"{base.root}/version", {}, plain), (f"{base.root}/metrics", {}, plain)):
        left = deadline - time.monotonic()
        if left <= 0.05:
            b.miss(f"GET {path}", f"not sent: the {plan.timeout_s:g} s of --timeout were spent")
            continue
        a = rec.request("GET", path, headers=headers, timeout_s=min(left, 10.0), on_purpose=why)
        if a.status is None:
            b.miss(f"GET {path}", a.error or "no answer")
            if "refused" in (a.error or ""):
                break
        elif path.endswith("/metrics") and a.status == 200:
            content = rec.entries[-1]["response"]["content"]
            content["text"] = "\n".join(str(content.get("text") or "").splitlines()[:200]) + "\n"
            content["comment"] = "the first 200 lines"
    if rec.entries:
        b.text("url/exchanges.har", json.dumps(rec.har(), indent=1),
               f"GET /v1/models, /health, /version, /metrics on {plan.url}" + (f" (key from {plan.key_var})" if plan.key_var else ""))


def gpu(b: Bundle, plan: Plan) -> dict:
    if shutil.which("nvidia-smi") is None:
        b.miss("nvidia-smi", "not found (no NVIDIA driver on this machine, or not on PATH)")
        return {}
    found: dict = {}
    for args, name, what in ((["-q", "-x"], "gpu/nvidia-smi-q.xml", "nvidia-smi -q -x"),
                             ([], "gpu/nvidia-smi.txt", "nvidia-smi"),
                             (["--query-compute-apps=pid,process_name,used_memory", "--format=csv"],
                              "gpu/compute-apps.csv", "nvidia-smi --query-compute-apps=pid,process_name,used_memory --format=csv")):
        r = run(["nvidia-smi", *args], plan.timeout_s, 16 * 1024 * 1024)
        if r.ok:
            _output(b, name, r, what)
            if not args:
                m = re.search(rb"Driver Version: (\S+)\s+CUDA Version: (\S+)", r.data())
                if m:
                    found = {"driver": m[1].decode(), "cuda": m[2].decode()}
        else:
            b.miss(what, r.why)
    return found


def _is_emblens(argv: list[str], proc: Path, me: int) -> bool:
    """Whether a process is emblens itself or one it started: by the program it runs and by its
    parent, never by a path that happens to hold the word (a server started from `~/emblens/.venv`
    is a server)."""
    try:
        # /proc/PID/stat: "pid (comm) state ppid ..."; comm may hold spaces and parentheses
        if int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1]) == me:
            return True
    except (OSError, ValueError, IndexError):
        pass
    names = [Path(a).name for a in argv[:3]]
    if names and names[0] in ("emblens", "emblens.exe"):
        return True
    # python [-X opt] path/to/emblens …, or python -m emblens …
    if names and names[0].startswith("python"):
        rest = argv[1:4]
        return any(Path(a).name in ("emblens", "emblens.exe") for a in rest) or \
            any(a == "-m" and i + 1 < len(rest) and rest[i + 1].split(".")[0] == "emblens" for i, a in enumerate(rest))
    return False


def discover(b: Bundle, plan: Plan, versions: dict) -> None:
    """Running vLLM / SGLang / TEI servers on this machine: their command lines, the log file
    their output goes to when it is a file, and the versions in their own Python."""
    proc = Path("/proc")
    if not proc.is_dir():
        b.miss("running servers", "no /proc on this system: name the logs with --log")
        return
    me = os.getpid()
    found: list[tuple[bool, int, Path, str]] = []
    for d in proc.iterdir():
        if not d.name.isdigit() or int(d.name) == me:
            continue
        try:
            argv = [a.decode("utf-8", "replace") for a in (d / "cmdline").read_bytes().split(b"\0") if a]
        except OSError:
            continue
        line = _command_line(argv)      # NUL-separated: a flag's value is the next item, whatever its spelling
        if SERVER_PATTERN.search(line) and not _is_emblens(argv, d, me):
            # a server's own command line first, then anything else that names one (a script, a download)
            found.append((not SERVER_LAUNCH.search(line), int(d.name), d, line))
    found.sort(key=lambda f: f[:2])
    for _, _, d, line in found[:MAX_SERVERS]:
        b.text(f"processes/{d.name}.cmdline.txt", f"$ {line}\n", f"/proc/{d.name}/cmdline (a running server)")
        for fd in ("1", "2"):
            try:
                target = os.readlink(d / "fd" / fd)
            except OSError:
                continue
            if target.startswith("/") and not target.startswith("/dev/") and os.path.isfile(target):
                logs(b, plan, glob.escape(target))
                break
        python = _trusted_python(d)
        if python:
            r = run([python, "-c", VERSIONS_SCRIPT], plan.timeout_s, 65536)
            if r.ok:
                _output(b, f"processes/{d.name}.versions.txt", r, f"{python} (the server's Python: package versions)")
                versions.update(_parse_versions(r.data()))
    if len(found) > MAX_SERVERS:
        b.miss("running servers", f"{len(found) - MAX_SERVERS} more processes that name vLLM, SGLang or TEI than the "
               f"{MAX_SERVERS} taken (name the logs with --log)")
    if not found:
        b.miss("running servers", "no vLLM, SGLang or TEI process found on this machine (name the logs with --log, "
               "--docker, --k8s or --journal)")


def _trusted_python(d: Path) -> str | None:
    """The server's Python, when running it is safe: a file named python*, owned by root or by
    this user and writable by no one else (collect may run as root; another user's program is
    not run with its rights)."""
    try:
        python = os.readlink(d / "exe")
        st = os.stat(python)
    except OSError:
        return None
    if "python" not in Path(python).name or not stat.S_ISREG(st.st_mode):
        return None
    if st.st_uid not in (0, os.getuid()) or st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return None
    return python


def local_versions(b: Bundle, plan: Plan, versions: dict) -> None:
    python = shutil.which("python3") or shutil.which("python")
    if python is None:
        b.miss("package versions", "no python3 on PATH")
        return
    r = run([python, "-c", VERSIONS_SCRIPT], plan.timeout_s, 65536)
    if r.ok:
        _output(b, "versions.txt", r, f"{python} (package versions, from their metadata)")
        versions.update(_parse_versions(r.data()))
    else:
        b.miss("package versions", r.why)


def _parse_versions(out: bytes) -> dict:
    found = {}
    for line in out.decode("utf-8", "replace").splitlines()[:100]:
        name, sep, version = line.partition("==")
        if sep:
            found[name.strip()[:60]] = version.strip()[:60]
        elif line.startswith("# python "):
            found["python"] = line[9:].strip()[:30]
    return found


def add(b: Bundle, plan: Plan, path: str) -> None:
    p = os.path.expanduser(path)
    try:
        fd, st = open_regular(p, _folder_of(glob.escape(p)))
    except Refused as e:
        b.miss(f"--add {path}", str(e))
        return
    try:
        if st.st_size > plan.max_bytes:
            b.miss(f"--add {path}", f"larger than {_size(plan.max_bytes)}")
            return
        head = os.pread(fd, 8192, 0)
        if Path(p).suffix.lower() in (".flow", ".mitm", ".dump") or re.match(rb"\d{1,12}:\d{1,6}:[a-z_]{1,40};", head[:64]):
            _add_flows(b, fd, p)
            return
        if b"\0" in head:
            b.miss(f"--add {path}", "a binary file emblens cannot mask (add a text file, a HAR or a mitmproxy capture)")
            return

        def chunks() -> Iterator[bytes]:
            at = 0
            while at < st.st_size and (piece := os.pread(fd, min(children.CHUNK, st.st_size - at), at)):
                at += len(piece)
                yield piece

        b.stream(f"added/{os.path.basename(p)}", chunks(), f"{path} (added by you)")
    finally:
        os.close(fd)


def _add_flows(b: Bundle, fd: int, p: str) -> None:
    """A mitmproxy capture is rewritten with every credential masked (as the live addon saves flows)."""
    try:
        from mitmproxy import io as mio
    except ImportError as e:
        b.miss(f"--add {p}", f"mitmproxy is needed to mask a capture ({e})")
        return
    name = b.name(f"added/{os.path.basename(p)}")
    n = 0
    why = ""
    with os.fdopen(os.dup(fd), "rb") as f, b.stage.open(name, "w", force_zip64=True) as out:
        w = mio.FlowWriter(out)
        try:
            for flow in mio.FlowReader(f).stream():
                if n >= MAX_FLOWS:
                    why = f"the first {MAX_FLOWS:,} flows"
                    break
                if hasattr(flow, "request"):
                    w.add(redact.masked_flow(flow, b.redactor.text))
                    n += 1
        except Exception as e:      # a hostile or damaged capture: what mitmproxy raises is not one type
            why = f"not a mitmproxy capture emblens can read ({type(e).__name__})"
    b.kinds[name] = "flows"
    if not n:
        b.miss(f"--add {p}", why or "no HTTP flows in it")
    b.collected.append({"file": name, "from": b.mask(f"{p} (added by you; {n} flows, credentials masked)"),
                        "bytes": 0, "lines": 0, "truncated": bool(why), **({"note": b.mask(why)} if why else {})})
    b.say(f"collected {name} ({n} flows, credentials masked)")


def _remask_flows(b: Bundle, src, dst) -> int:
    """The second pass over a capture: a flow that holds a value learnt since it was masked is
    masked again; one that still holds it (the key outside any text mitmproxy gives) is left out."""
    from mitmproxy import io as mio

    w = mio.FlowWriter(dst)
    written = dropped = 0
    for flow in mio.FlowReader(src).stream():
        blob = _serialised(mio, flow)
        if b.holds_secret(blob.decode("utf-8", "replace")):
            flow = redact.masked_flow(flow, b.redactor.text)
            blob = _serialised(mio, flow)
            if b.holds_secret(blob.decode("utf-8", "replace")):
                dropped += 1
                continue
        w.add(flow)
        written += len(blob)
    if dropped:
        b.miss(f"{dropped} flow(s) of a capture", "they held a secret emblens could not mask in place: left out")
    return written


def _serialised(mio, flow) -> bytes:
    import io

    out = io.BytesIO()
    mio.FlowWriter(out).add(flow)
    return out.getvalue()


def collect(plan: Plan, out: Path, say: Say = lambda _: None) -> dict:
    """Write the bundle to `out` and return its manifest. Raises EmblensError (one line) when `out`
    cannot be written or another run is writing it."""
    t0 = time.perf_counter()
    with _only_run(out):
        b = Bundle(out, say)
        versions: dict = {}
        try:
            if plan.api_key:      # a server or a log that echoes the --url key, in any words, has it masked
                b.remember(plan.api_key, "--url key")
            for name in plan.docker:
                docker(b, plan, name, versions)
            for pod in plan.k8s:
                k8s(b, plan, pod, versions)
            for pattern in plan.logs:
                logs(b, plan, pattern)
            for unit in plan.journal:
                journal(b, plan, unit)
            named = plan.docker or plan.k8s or plan.logs or plan.journal
            if not named and plan.discover:
                discover(b, plan, versions)
            if not plan.docker and not plan.k8s:
                local_versions(b, plan, versions)
            if plan.url:
                url(b, plan)
            if plan.gpu:
                versions.update(gpu(b, plan))
            for path in plan.add:
                add(b, plan, path)
            manifest = {
                "emblens": "collect",
                "version": __version__,
                "created": datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z"),
                "host": socket.gethostname()[:100],
                "platform": platform.platform()[:100],
                "seconds": round(time.perf_counter() - t0, 2),
                "limits": {"tail_lines": plan.tail, "max_bytes": plan.max_bytes, "timeout_s": plan.timeout_s},
                "versions": versions,
            }
            return b.close(manifest)
        finally:
            b.abort()
