"""`emblens collect`: gather the evidence where the server runs into one zip that `emblens
analyze` reads, with a manifest.json that says what was collected, from where, and what was not
and why.

Every file is masked as it is written (`redact.mask_text`: keys, tokens, passwords, env values
of secret names), so nothing secret enters the zip. Every command runs with a timeout and a cap
on what is kept (the last `tail` lines, at most `max_bytes`); a missing tool, a refusal or a hang
is a line of the manifest, never a failure of the whole collection.

    plan = Plan(logs=["/var/log/vllm.log"], url="http://127.0.0.1:8000/v1")
    manifest = collect(plan, Path("bundle.zip"))

No printing here: `say` receives one line per step (the CLI writes them to stderr).
"""

from __future__ import annotations

import glob
import gzip
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from emblens._version import __version__
from emblens.events import redact
from emblens.events.redact import Redactor

TAIL_LINES = 5000
MAX_BYTES = 64 * 1024 * 1024        # kept of one log or one command's output
TIMEOUT_S = 30.0                    # each command
MAX_FILES = 200                     # files a --log glob may bring
SERVER_PATTERN = re.compile(r"vllm|sglang|text-embeddings-router|text_embeddings_router")
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
    out: bytes
    why: str = ""           # when not ok: not found, exit status and its stderr, timed out
    truncated: bool = False


def run(argv: list[str], timeout_s: float, max_bytes: int = MAX_BYTES, stderr_too: bool = False,
        stdin: bytes | None = None) -> Ran:
    """A command with a timeout and a cap on its output. Never raises for the command's failure."""
    exe = shutil.which(argv[0])
    if exe is None:
        return Ran(False, b"", f"{argv[0]}: not found")
    try:
        proc = subprocess.Popen([exe, *argv[1:]], stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT if stderr_too else subprocess.PIPE,
                                stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                                start_new_session=True)
    except OSError as e:
        return Ran(False, b"", f"{argv[0]}: cannot run: {e.strerror}")
    try:
        out, err = proc.communicate(stdin, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        _kill(proc)
        out, err = proc.communicate()
        return Ran(False, out[-max_bytes:], f"{' '.join(argv[:3])}: timed out after {timeout_s:g} s (stopped)")
    truncated = len(out) > max_bytes
    out = out[-max_bytes:]
    if proc.returncode != 0:
        said = (err or out or b"").decode("utf-8", "replace").strip().splitlines()
        return Ran(False, out, f"{' '.join(argv[:3])}: exit status {proc.returncode}"
                   + (f": {said[-1][:200]}" if said else ""), truncated)
    return Ran(True, out, "", truncated)


def _kill(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except OSError:
        proc.kill()


def _tail_lines(data: bytes, n: int) -> bytes:
    if n <= 0:
        return data
    lines = data.splitlines(keepends=True)
    return b"".join(lines[-n:])


class Bundle:
    """The zip being written: every text goes through masking on its way in."""

    def __init__(self, path: Path, say: Say) -> None:
        self.path = path
        self.tmp = path.with_name(path.name + ".part")
        self.zip = zipfile.ZipFile(self.tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6)
        self.say = say
        self.redactor = Redactor()    # masks every text on its way in; the manifest says what it masked
        self.collected: list[dict] = []
        self.missing: list[dict] = []
        self.names: set[str] = set()

    def name(self, wanted: str) -> str:
        wanted = re.sub(r"[^\w.\-/]+", "_", wanted).strip("/") or "file"
        name, n = wanted, 1
        while name in self.names:
            n += 1
            stem, dot, ext = wanted.rpartition(".")
            name = f"{stem}-{n}.{ext}" if dot else f"{wanted}-{n}"
        self.names.add(name)
        return name

    def text(self, wanted: str, data: bytes | str, source: str, *, truncated: bool = False, note: str = "") -> str:
        text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
        masked = self.redactor.text(text)
        name = self.name(wanted)
        self.zip.writestr(name, masked.encode("utf-8"))
        entry = {"file": name, "from": self.redactor.text(source), "bytes": len(masked.encode("utf-8")),
                 "lines": masked.count("\n"), "truncated": truncated}
        if note:
            entry["note"] = note
        self.collected.append(entry)
        self.say(f"collected {name} ({_size(entry['bytes'])}) from {entry['from'][:100]}")
        return name

    def miss(self, what: str, why: str) -> None:
        self.missing.append({"what": self.redactor.text(what), "why": self.redactor.text(why)})
        self.say(f"not collected: {what}: {why}")

    def close(self, manifest: dict) -> None:
        self.zip.writestr("manifest.json", json.dumps(manifest, indent=2))
        self.zip.close()
        os.chmod(self.tmp, 0o600)
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        try:
            self.zip.close()
        finally:
            self.tmp.unlink(missing_ok=True)


def _size(n: int) -> str:
    return f"{n / 1048576:.1f} MiB" if n >= 1048576 else f"{n / 1024:.1f} KiB" if n >= 1024 else f"{n} B"


# -- sources -------------------------------------------------------------------------------------
def docker(b: Bundle, plan: Plan, name: str, versions: dict) -> None:
    r = run(["docker", "logs", "--timestamps", "--tail", str(plan.tail), name], plan.timeout_s, plan.max_bytes,
            stderr_too=True)
    if r.ok or r.out:
        b.text(f"docker/{name}.log", r.out, f"docker logs --timestamps --tail {plan.tail} {name}", truncated=r.truncated,
               note=r.why)
    if not r.ok:
        b.miss(f"docker logs {name}", r.why)
        if "not found" in r.why and not r.out:
            return
    r = run(["docker", "inspect", name], plan.timeout_s, 4 * 1024 * 1024)
    if not r.ok:
        b.miss(f"docker inspect {name}", r.why)
    else:
        try:
            doc = json.loads(r.out)
            summary = inspect_summary(doc[0] if isinstance(doc, list) and doc else doc)
        except (ValueError, TypeError, KeyError, AttributeError) as e:
            b.miss(f"docker inspect {name}", f"not the JSON docker writes ({e})")
        else:
            b.text(f"docker/{name}.inspect.txt", summary, f"docker inspect {name} (image, command line, env with "
                   "secret values masked, restarts, shm size)")
    r = run(["docker", "exec", name, "python3", "-c", VERSIONS_SCRIPT], plan.timeout_s, 65536)
    if r.ok:
        b.text(f"docker/{name}.versions.txt", r.out, f"docker exec {name} python3 (package versions)")
        versions.update(_parse_versions(r.out))
    else:
        b.miss(f"versions in container {name}", r.why)


def inspect_summary(doc: dict) -> str:
    """The parts of `docker inspect` that explain a model server's failure, as `key: value` lines
    (the command line as one line, so the rules read it like a pasted command)."""
    cfg = doc.get("Config") or {}
    host = doc.get("HostConfig") or {}
    state = doc.get("State") or {}
    cmd = [*(cfg.get("Entrypoint") or []), *(cfg.get("Cmd") or [])]
    lines = [
        f"name: {str(doc.get('Name', '')).lstrip('/')}",
        f"image: {cfg.get('Image', '')}",
        f"command: {' '.join(_quote(a) for a in cmd)}",
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


def _env_value(name: str, value: str) -> str:
    if SECRET_ENV.search(name) and not re.search(r"(?i)max_?tokens?|tokenizer|num_tokens", name):
        return redact.shape(value) if value else "<empty>"
    return value


def _quote(arg: str) -> str:
    return arg if arg and not re.search(r"\s|['\"]", arg) else json.dumps(arg)


def k8s(b: Bundle, plan: Plan, pod: str, versions: dict) -> None:
    where = [*(["-n", plan.namespace] if plan.namespace else []), *(["-c", plan.container] if plan.container else [])]
    shown = " ".join(where)
    r = run(["kubectl", "logs", "--timestamps", f"--tail={plan.tail}", pod, *where], plan.timeout_s, plan.max_bytes)
    if r.ok:
        b.text(f"k8s/{pod}.log", r.out, f"kubectl logs --timestamps --tail={plan.tail} {pod} {shown}".strip(),
               truncated=r.truncated)
    else:
        b.miss(f"kubectl logs {pod}", r.why)
        if "not found" in r.why and not r.out:
            return
    r = run(["kubectl", "logs", "--timestamps", "--previous", f"--tail={plan.tail}", pod, *where], plan.timeout_s,
            plan.max_bytes)
    if r.ok and r.out.strip():
        b.text(f"k8s/{pod}.previous.log", r.out, f"kubectl logs --previous {pod} {shown}".strip(), truncated=r.truncated)
    else:
        b.miss(f"kubectl logs --previous {pod}", r.why or "no previous container (it has not restarted)")
    ns = ["-n", plan.namespace] if plan.namespace else []
    r = run(["kubectl", "describe", "pod", pod, *ns], plan.timeout_s, 4 * 1024 * 1024)
    if r.ok:
        b.text(f"k8s/{pod}.describe.txt", _mask_env_block(r.out.decode("utf-8", "replace")),
               f"kubectl describe pod {pod} {' '.join(ns)}".strip())
    else:
        b.miss(f"kubectl describe pod {pod}", r.why)
    r = run(["kubectl", "exec", pod, *where, "--", "python3", "-c", VERSIONS_SCRIPT], plan.timeout_s, 65536)
    if r.ok:
        b.text(f"k8s/{pod}.versions.txt", r.out, f"kubectl exec {pod} -- python3 (package versions)")
        versions.update(_parse_versions(r.out))
    else:
        b.miss(f"versions in pod {pod}", r.why)


_ENV_LINE = re.compile(r"^([ \t]+)([A-Za-z_][A-Za-z0-9_]*):([ \t]+)(\S.*)$", re.M)


def _mask_env_block(text: str) -> str:
    """kubectl describe lists a container's env as `      NAME:  value`: secret names lose their value."""
    return _ENV_LINE.sub(lambda m: f"{m[1]}{m[2]}:{m[3]}{_env_value(m[2], m[4])}" if SECRET_ENV.search(m[2]) else m[0], text)


def logs(b: Bundle, plan: Plan, pattern: str) -> None:
    paths = sorted(glob.glob(os.path.expanduser(pattern))) if glob.has_magic(pattern) else [os.path.expanduser(pattern)]
    if not paths:
        b.miss(f"--log {pattern}", "no file matches")
        return
    for path in paths[:MAX_FILES]:
        p = Path(path)
        if not p.is_file():
            b.miss(f"--log {path}", "not a file" if p.exists() else "no such file")
            continue
        try:
            data, truncated = _read_tail(p, plan.max_bytes)
        except (OSError, EOFError, gzip.BadGzipFile) as e:
            b.miss(f"--log {path}", f"cannot read: {getattr(e, 'strerror', None) or e}")
            continue
        kept = _tail_lines(data, plan.tail)
        truncated = truncated or len(kept) < len(data)
        data = kept
        name = p.name[:-3] if p.name.endswith(".gz") else p.name
        b.text(f"logs/{name}", data, f"{path}" + (" (decompressed)" if p.name.endswith(".gz") else ""),
               truncated=truncated, note=f"the last {plan.tail:,} lines (at most {_size(plan.max_bytes)})" if truncated else "")
    if len(paths) > MAX_FILES:
        b.miss(f"--log {pattern}", f"{len(paths) - MAX_FILES} more files than the {MAX_FILES} taken")


def _read_tail(p: Path, max_bytes: int) -> tuple[bytes, bool]:
    if p.name.endswith(".gz"):
        with gzip.open(p, "rb") as f:
            data = f.read(max_bytes + 1)
            truncated = len(data) > max_bytes
            if truncated:      # keep the end: read on, holding the last max_bytes
                while chunk := f.read(8 * 1024 * 1024):
                    data = (data + chunk)[-max_bytes:]
            return data[-max_bytes:], truncated
    size = p.stat().st_size
    with open(p, "rb") as f:
        if size > max_bytes:
            f.seek(size - max_bytes)
            data = f.read(max_bytes)
            return data[data.find(b"\n") + 1:], True     # start at a whole line
        return f.read(max_bytes), False


def journal(b: Bundle, plan: Plan, unit: str) -> None:
    r = run(["journalctl", "-u", unit, "-o", "short-iso", "--no-pager", "-n", str(plan.tail)], plan.timeout_s,
            plan.max_bytes)
    if r.ok:
        b.text(f"journal/{unit}.log", r.out, f"journalctl -u {unit} -o short-iso -n {plan.tail}", truncated=r.truncated)
    else:
        b.miss(f"journalctl -u {unit}", r.why)


def url(b: Bundle, plan: Plan) -> None:
    from emblens.frontends.httprec import Recorder, bases

    try:
        base = bases(plan.url or "")
    except ValueError as e:
        b.miss(f"--url {plan.url}", str(e))
        return
    rec = Recorder(timeout_s=min(plan.timeout_s, 10.0), max_requests=4, mask=b.redactor.text)
    auth = {"Authorization": f"Bearer {plan.api_key}"} if plan.api_key else {}
    for path, headers in ((f"{base.api}/models", auth), (f"{base.root}/health", {}), (f"{base.root}/version", {}),
                          (f"{base.root}/metrics", {})):
        a = rec.request("GET", path, headers=headers)
        if a.status is None:
            b.miss(f"GET {path}", a.error or "no answer")
            if "refused" in (a.error or ""):
                break
        elif path.endswith("/metrics") and a.status == 200:
            content = rec.entries[-1]["response"]["content"]
            content["text"] = "\n".join(content["text"].splitlines()[:200]) + "\n"
            content["comment"] = "the first 200 lines"
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
            b.text(name, r.out, what)
            if not args:
                m = re.search(rb"Driver Version: (\S+)\s+CUDA Version: (\S+)", r.out)
                if m:
                    found = {"driver": m[1].decode(), "cuda": m[2].decode()}
        else:
            b.miss(what, r.why)
    return found


def discover(b: Bundle, plan: Plan, versions: dict) -> None:
    """Running vLLM / SGLang / TEI servers on this machine: their command lines, the log file
    their output goes to when it is a file, and the versions in their own Python."""
    found = 0
    proc = Path("/proc")
    if not proc.is_dir():
        b.miss("running servers", "no /proc on this system: name the logs with --log")
        return
    me = os.getpid()
    for d in sorted(proc.iterdir(), key=lambda p: p.name):
        if not d.name.isdigit() or int(d.name) == me:
            continue
        try:
            argv = (d / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        line = " ".join(a.decode("utf-8", "replace") for a in argv if a)
        if not SERVER_PATTERN.search(line) or "emblens" in line:
            continue
        found += 1
        if found > 10:
            break
        b.text(f"processes/{d.name}.cmdline.txt", f"$ {line}\n", f"/proc/{d.name}/cmdline (a running server)")
        for fd in ("1", "2"):
            try:
                target = os.readlink(d / "fd" / fd)
            except OSError:
                continue
            if target.startswith("/") and Path(target).is_file() and not target.startswith("/dev/"):
                logs(b, plan, target)
                break
        exe = d / "exe"
        try:
            python = os.readlink(exe)
        except OSError:
            python = None
        if python and "python" in Path(python).name:
            r = run([python, "-c", VERSIONS_SCRIPT], plan.timeout_s, 65536)
            if r.ok:
                b.text(f"processes/{d.name}.versions.txt", r.out, f"{python} (the server's Python: package versions)")
                versions.update(_parse_versions(r.out))
    if not found:
        b.miss("running servers", "no vLLM, SGLang or TEI process found on this machine (name the logs with --log, "
               "--docker, --k8s or --journal)")


def local_versions(b: Bundle, plan: Plan, versions: dict) -> None:
    python = shutil.which("python3") or shutil.which("python")
    if python is None:
        b.miss("package versions", "no python3 on PATH")
        return
    r = run([python, "-c", VERSIONS_SCRIPT], plan.timeout_s, 65536)
    if r.ok:
        b.text("versions.txt", r.out, f"{python} (package versions, from their metadata)")
        versions.update(_parse_versions(r.out))
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
    p = Path(path).expanduser()
    if not p.is_file():
        b.miss(f"--add {path}", "no such file" if not p.exists() else "not a file")
        return
    if p.stat().st_size > plan.max_bytes:
        b.miss(f"--add {path}", f"larger than {_size(plan.max_bytes)}")
        return
    data = p.read_bytes()
    if p.suffix.lower() in (".flow", ".mitm", ".dump") or re.match(rb"\d{1,12}:\d{1,6}:[a-z_]{1,40};", data[:64]):
        _add_flows(b, p)
        return
    if b"\0" in data[:8192]:
        b.miss(f"--add {path}", "a binary file emblens cannot mask (add a text file, a HAR or a mitmproxy capture)")
        return
    b.text(f"added/{p.name}", data, f"{path} (added by you)")


def _add_flows(b: Bundle, p: Path) -> None:
    """A mitmproxy capture is rewritten with every credential masked (as the live addon saves flows)."""
    import io

    try:
        from mitmproxy import io as mio
        from mitmproxy.exceptions import FlowReadException

    except ImportError as e:
        b.miss(f"--add {p}", f"mitmproxy is needed to mask a capture ({e})")
        return
    out = io.BytesIO()
    n = 0
    try:
        with open(p, "rb") as f:
            w = mio.FlowWriter(out)
            for flow in mio.FlowReader(f).stream():
                if n >= 100000:
                    break
                if hasattr(flow, "request"):
                    w.add(redact.masked_flow(flow, b.redactor.text))
                    n += 1
    except (FlowReadException, ValueError, OSError) as e:
        if not n:
            b.miss(f"--add {p}", f"not a mitmproxy capture emblens can read ({str(e)[:120]})")
            return
    name = b.name(f"added/{p.name}")
    b.zip.writestr(name, out.getvalue())
    b.collected.append({"file": name, "from": f"{p} (added by you; {n} flows, credentials masked)",
                        "bytes": len(out.getvalue()), "lines": 0, "truncated": False})
    b.say(f"collected {name} ({n} flows, credentials masked)")


def collect(plan: Plan, out: Path, say: Say = lambda _: None) -> dict:
    """Write the bundle to `out` and return its manifest. Raises OSError when `out` cannot be written."""
    t0 = time.perf_counter()
    b = Bundle(out, say)
    versions: dict = {}
    try:
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
            "collected": b.collected,
            "not_collected": b.missing,
            "versions": versions,
            "masked": b.redactor.take(),
        }
        b.close(manifest)
    except BaseException:
        b.abort()
        raise
    return manifest
