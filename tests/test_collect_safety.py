"""`emblens collect` on a hostile or careless machine: every member of the bundle is masked by
the run's one redactor (whatever the shape and wherever the secret was first seen), a command
that prints gigabytes or leaves a daemon holding its pipe cannot blow memory or time, files are
read only where they were named and written only through a private temporary file, and two runs
to one path never mix.

Everything runs `python -m emblens` in a subprocess, with stand-in docker / kubectl executables on
a temporary PATH and, for --url, a server on 127.0.0.1 only; the test imports nothing from emblens
at module level, so it runs against any version of it."""

from __future__ import annotations

import base64
import http.server
import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import threading
import time
import zipfile
from pathlib import Path

import pytest

# secrets, one per shape the bundle once leaked; each must reach no member, raw or in base64
DESCRIBE_ARG = "Dk4Args9Qw2Lm7Zx"          # kubectl describe: `--api-key` on one line, the value on the next
DESCRIBE_ENV = "Dk4Env5Rt8Yp3Nb"           # kubectl describe: env
INSPECT_CMD = "Ik7Cmd2Wq9Er4Ty"            # docker inspect Cmd: `--api_key VALUE`
INSPECT_HF = "hf_Ik7HfTok3nQw8Er2Ty6Ui1Op"  # docker inspect Cmd/Args: `--hf_token=VALUE`
INSPECT_ENV = "Ik7Env4Zx8Cv2Bn"            # docker inspect Env
URL_KEY = "Uk9Echo3Rf6Tg1Yh"               # the --url key, echoed by the server without a name
WS_PROTOCOL = "Wp2Proto8Km4Nj7Hb"          # a flow: Sec-WebSocket-Protocol openai-insecure-api-key.VALUE
WS_MESSAGE = "Wm5Msg1Lk8Jh3Gf"             # a flow: a WebSocket message
QUOTED_BEARER = "Qb6Bear2Dx9Cs4Az"         # a flow: Authorization: "Bearer VALUE"
CMDLINE_KEY = "Cl3Proc7Vb2Nm8Kj"           # /proc/<pid>/cmdline: `--api_key\0VALUE`
CMDLINE_HF = "hf_Cl3HfArg5Xs1Dc9Vf4Gb"     # /proc/<pid>/cmdline: `--hf_token\0VALUE`
BLOCK_KEYS = [f"Bk{i:05d}Zq7Lm" for i in range(0, 4000)]   # a big log's `--api-key` / value pairs

STANDIN = '''#!{python}
import json, os, sys, time
name = os.path.basename(sys.argv[0])
sub = sys.argv[1] if len(sys.argv) > 1 else ""
calls = os.environ.get("STANDIN_LOG")
if calls:
    with open(calls, "a") as f:
        f.write(json.dumps([name, *sys.argv[1:]]) + "\\n")
mode = os.environ.get("STANDIN_MODE", "files")
out = sys.stdout.buffer
if sub == "logs" and mode == "big":
    # a lazily made flood: STANDIN_BYTES bytes of log lines, never all in memory
    line = b"INFO 11-20 09:14:02 [loggers.py:123] Engine 000: Avg prompt throughput: 0.0 tokens/s, Running: 0 reqs\\n"
    block = line * (1048576 // len(line))
    left = int(os.environ["STANDIN_BYTES"]) // len(line) * len(line)      # whole lines
    while left > 0:
        out.write(block[:left])
        left -= len(block)
    sys.exit(0)
if sub == "logs" and mode.startswith("orphan"):
    out.write(b"INFO 11-20 09:14:02 [api_server.py:1880] vLLM API server version 0.11.0\\n")
    out.flush()
    if os.fork() == 0:               # a daemon: a session of its own, and our stdout kept open
        os.setsid()
        if os.fork() == 0:
            with open(os.environ["STANDIN_PIDS"], "a") as f:
                f.write(f"{{os.getpid()}}\\n")
            time.sleep(60)
        os._exit(0)
    if mode == "orphan-hang":
        time.sleep(60)
    sys.exit(0)
if sub == "logs" and mode == "slow":
    out.write(("RUN=" + os.environ["STANDIN_RUN"] + "\\n").encode() * 3)
    out.flush()
    time.sleep(float(os.environ.get("STANDIN_SLEEP", "3")))
    sys.exit(0)
path = os.path.join(os.environ["STANDIN_DATA"], name + "-" + sub + ".txt")
if os.path.exists(path):
    out.write(open(path, "rb").read())
    sys.exit(0)
sys.stderr.write(name + " " + sub + ": nothing recorded\\n")
sys.exit(1)
'''


def emblens(*args: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "emblens", *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def _standins(tmp_path: Path, data: dict[str, str | bytes] | None = None, **env: str) -> dict:
    bin_dir, store = tmp_path / "bin", tmp_path / "data"
    bin_dir.mkdir(exist_ok=True)
    store.mkdir(exist_ok=True)
    for name in ("docker", "kubectl"):
        exe = bin_dir / name
        exe.write_text(STANDIN.format(python=sys.executable))
        exe.chmod(0o755)
    for name, content in (data or {}).items():
        (store / name).write_bytes(content.encode() if isinstance(content, str) else content)
    # only the stand-ins and the basics: a real docker or kubectl on this machine is never reached
    return {"PATH": f"{bin_dir}{os.pathsep}/usr/bin{os.pathsep}/bin", "STANDIN_DATA": str(store), **env}


def _members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as z:
        return {n: z.read(n) for n in z.namelist()}


def _forms(secret: str) -> list[bytes]:
    raw = secret.encode()
    return [raw, base64.b64encode(raw).rstrip(b"="), base64.urlsafe_b64encode(raw).rstrip(b"=")]


def _assert_nothing_leaks(bundle: Path, secrets: list[str]) -> None:
    members = _members(bundle)
    assert "manifest.json" in members
    leaks = [(name, s) for name, data in members.items() for s in secrets for form in _forms(s) if form in data]
    assert not leaks, f"secrets in the bundle: {leaks[:10]}"


def _one_line_error(r: subprocess.CompletedProcess) -> None:
    assert r.returncode == 2, (r.returncode, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("emblens: error: "), r.stderr
    assert "Traceback" not in r.stderr


# -- every member masked -----------------------------------------------------------------------------
DESCRIBE = textwrap.dedent(f"""\
    Name:         vllm-0
    Namespace:    models
    Containers:
      server:
        Image:         vllm/vllm-openai:v0.11.0
        Command:
          vllm
          serve
        Args:
          --model
          /models/Qwen3-Embedding-4B
          --api-key
          {DESCRIBE_ARG}
          --port
          8000
        Environment:
          VLLM_API_KEY:  {DESCRIBE_ENV}
          CUDA_VISIBLE_DEVICES:  0
    """)

INSPECT = json.dumps([{
    "Name": "/vllm", "RestartCount": 0, "Path": "vllm",
    "Args": ["serve", "/models/Qwen3-Embedding-4B", "--api_key", INSPECT_CMD, f"--hf_token={INSPECT_HF}"],
    "State": {"Status": "running", "ExitCode": 0, "OOMKilled": False},
    "Config": {"Image": "vllm/vllm-openai:v0.11.0", "Entrypoint": ["vllm"],
               "Cmd": ["serve", "/models/Qwen3-Embedding-4B", "--api_key", INSPECT_CMD, "--hf_token", INSPECT_HF],
               "Env": [f"VLLM_API_KEY={INSPECT_ENV}", f"HUGGING_FACE_HUB_TOKEN={INSPECT_HF}", "CUDA_VISIBLE_DEVICES=0"]},
    "HostConfig": {"ShmSize": 67108864},
}])


def _big_log() -> str:
    """About 1.5 MiB of log in which a flag on one line has its value on the next, many times over:
    blocks of whole lines are masked one at a time, and some pairs straddle two blocks."""
    filler = "INFO 11-20 09:14:02 [loggers.py:123] Engine 000: Avg prompt throughput: 0.0 tokens/s, Running: 0 reqs"
    lines = []
    for i, key in enumerate(BLOCK_KEYS):
        lines += [filler] * (i % 3) + ["      --api-key", f"      {key}"]
    return "\n".join(lines) + "\n"


class _Echo(http.server.BaseHTTPRequestHandler):
    """A server that refuses every key and says it back, in no words a catalogue knows."""

    def do_GET(self) -> None:
        sent = self.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        body = json.dumps({"detail": f"rejected {sent} for {self.path}"}).encode()
        self.send_response(401)
        self.send_header("Content-Type", "application/json")
        self.send_header("X-Seen", sent or "-")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def echo_server():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/v1"
    srv.shutdown()
    srv.server_close()


def _flows(path: Path) -> None:
    """A capture with a quoted bearer, and a WebSocket whose key travels as a subprotocol and
    again inside a message."""
    from mitmproxy import io as mio
    from mitmproxy.test import tflow

    http_flow = tflow.tflow(resp=True)
    http_flow.request.headers["Authorization"] = f'"Bearer {QUOTED_BEARER}"'
    http_flow.request.content = json.dumps({"headers": {"Authorization": f"Bearer {QUOTED_BEARER}"}}).encode()
    ws = tflow.twebsocketflow()
    ws.request.headers["Sec-WebSocket-Protocol"] = f"realtime, openai-insecure-api-key.{WS_PROTOCOL}, openai-beta.realtime-v1"
    ws.websocket.messages[0].content = json.dumps({"type": "session.update", "session": {"api_key": WS_MESSAGE}}).encode()
    with open(path, "wb") as f:
        w = mio.FlowWriter(f)
        w.add(http_flow)
        w.add(ws)


def test_every_member_of_the_bundle_is_masked_by_one_redactor(tmp_path, echo_server):
    env = _standins(tmp_path, {"docker-logs.txt": _big_log(), "docker-inspect.txt": INSPECT,
                               "kubectl-logs.txt": "INFO 11-20 09:14:02 started\n", "kubectl-describe.txt": DESCRIBE},
                    MY_KEY=URL_KEY)
    capture = tmp_path / "traffic.flow"
    _flows(capture)
    notes = tmp_path / "notes.txt"
    # the --url key appears once more in a note added by hand, with nothing around it that says key
    notes.write_text(f"tried again with {URL_KEY} at 09:20, same answer\n")
    out = tmp_path / "b.zip"
    r = emblens("collect", "--docker", "vllm", "--k8s", "vllm-0", "--url", echo_server, "--api-key-env", "MY_KEY",
                "--add", str(capture), "--add", str(notes), "--tail", "100000", "--no-gpu", "-o", str(out), env=env)
    assert r.returncode == 0, r.stderr
    members = _members(out)
    assert {"docker/vllm.log", "docker/vllm.inspect.txt", "k8s/vllm-0.describe.txt", "url/exchanges.har",
            "added/traffic.flow", "added/notes.txt", "manifest.json"} <= set(members)
    log = members["docker/vllm.log"].decode()
    assert log.count("      --api-key\n") == len(BLOCK_KEYS)      # the log is whole: only the values are masked
    assert "--api_key <key: " in members["docker/vllm.inspect.txt"].decode()
    assert "--api-key\n      <key: " in members["k8s/vllm-0.describe.txt"].decode()
    secrets = [DESCRIBE_ARG, DESCRIBE_ENV, INSPECT_CMD, INSPECT_HF, INSPECT_ENV, URL_KEY, WS_PROTOCOL, WS_MESSAGE,
               QUOTED_BEARER, *BLOCK_KEYS]
    _assert_nothing_leaks(out, secrets)
    assert URL_KEY not in r.stderr and DESCRIBE_ARG not in r.stderr


def test_a_running_servers_command_line_with_underscore_flags_is_masked(tmp_path):
    log = tmp_path / "vllm-out.log"
    code = ("import time; print('INFO 11-20 09:14:02 [api_server.py:1880] vLLM API server version 0.11.0', flush=True); "
            "time.sleep(60)")
    with open(log, "w") as f:
        proc = subprocess.Popen([sys.executable, "-c", code, "vllm", "serve", "/models/Qwen3-Embedding-4B", "--api_key",
                                 CMDLINE_KEY, "--hf_token", CMDLINE_HF], stdout=f, stderr=subprocess.STDOUT)
    try:
        for _ in range(100):
            if log.stat().st_size:
                break
            time.sleep(0.05)
        out = tmp_path / "b.zip"
        r = emblens("collect", "--no-gpu", "-o", str(out))
        assert r.returncode == 0, r.stderr
    finally:
        proc.kill()
        proc.wait()
    members = _members(out)
    cmdline = members[f"processes/{proc.pid}.cmdline.txt"].decode()
    assert "--api_key <key: " in cmdline and "--hf_token <" in cmdline
    _assert_nothing_leaks(out, [CMDLINE_KEY, CMDLINE_HF])


# -- bounded children ----------------------------------------------------------------------------------
# The peak is measured by a small parent of emblens's own, not by pytest: a child's peak RSS counts the
# memory of the process it was forked from until it execs (Linux keeps the old image's high-water mark),
# so a pytest that has grown to 300 MiB over earlier tests made every child it forks look 300 MiB big.
_MEASURE = """
import os, sys
pid = os.fork()
if pid == 0:
    os.execv(sys.argv[1], sys.argv[1:])
_, status, usage = os.wait4(pid, 0)
with open(os.environ["MEASURE_OUT"], "w") as f:
    f.write(str(usage.ru_maxrss))
sys.exit(os.waitstatus_to_exitcode(status) & 0xFF)
"""


def _run_measured(args: list[str], env: dict, timeout: float) -> tuple[int, str, float, float]:
    """Run emblens; its exit status, stderr, wall seconds and peak RSS in MiB (its own and that
    of the children it waited for, whichever was largest)."""
    t0 = time.monotonic()
    store = Path(env["STANDIN_DATA"])
    measured = store / "maxrss.txt"
    with open(store / "stderr.txt", "w") as err:
        proc = subprocess.Popen([sys.executable, "-c", _MEASURE, sys.executable, "-m", "emblens", *args],
                                stdout=subprocess.DEVNULL, stderr=err, start_new_session=True,
                                env={**os.environ, **env, "MEASURE_OUT": str(measured)})
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()
            pytest.fail(f"emblens collect ran past {timeout} s")
    wall = time.monotonic() - t0
    return proc.returncode, (store / "stderr.txt").read_text(), wall, int(measured.read_text()) / 1024


BIG = 1_500_000_000      # the 1.5 GB of the report


def test_a_command_that_prints_1_5_gb_keeps_memory_flat(tmp_path):
    env = _standins(tmp_path, {"docker-inspect.txt": INSPECT}, STANDIN_MODE="big", STANDIN_BYTES=str(BIG))
    out = tmp_path / "b.zip"
    rc, err, wall, peak = _run_measured(["collect", "--docker", "vllm", "--no-gpu", "--timeout", "120", "-o", str(out)],
                                        env, timeout=150)
    assert rc == 0, err
    print(f"1.5 GB of docker logs: peak RSS {peak:.0f} MiB, {wall:.1f} s")
    assert peak < 300, f"peak RSS {peak:.0f} MiB on {BIG / 1e9:.1f} GB of output"
    manifest = json.loads(_members(out)["manifest.json"])
    entry = next(c for c in manifest["collected"] if c["file"] == "docker/vllm.log")
    assert entry["truncated"] and entry["lines"] == 5000          # the last --tail lines, as docker itself keeps


def _kill_daemons(pids: Path) -> None:
    if pids.exists():
        for line in pids.read_text().split():
            try:
                os.kill(int(line), signal.SIGKILL)
            except (OSError, ValueError):
                pass


@pytest.mark.parametrize("mode", ["orphan", "orphan-hang"])
def test_a_daemon_holding_the_output_pipe_does_not_hold_collect(tmp_path, mode):
    """`docker logs` starts a daemon (a session of its own) that keeps stdout open for a minute;
    the command itself ends at once ('orphan') or hangs too ('orphan-hang')."""
    pids = tmp_path / "daemons.txt"
    env = _standins(tmp_path, {"docker-inspect.txt": INSPECT}, STANDIN_MODE=mode, STANDIN_PIDS=str(pids))
    out = tmp_path / "b.zip"
    try:
        rc, err, wall, _ = _run_measured(["collect", "--docker", "vllm", "--no-gpu", "--timeout", "3", "-o", str(out)],
                                         env, timeout=30)
    finally:
        _kill_daemons(pids)
    assert rc == 0, err
    print(f"{mode}: collect took {wall:.1f} s with --timeout 3")
    assert wall < 3 + 2, f"collect took {wall:.1f} s with --timeout 3"
    members = _members(out)
    assert b"vLLM API server version 0.11.0" in members["docker/vllm.log"]
    if mode == "orphan-hang":
        why = {m["what"]: m["why"] for m in json.loads(members["manifest.json"])["not_collected"]}
        assert "timed out after 3 s" in why["docker logs vllm"]


# -- files read and written safely ------------------------------------------------------------------------
def test_a_link_out_of_the_log_folder_is_not_followed(tmp_path):
    folder, elsewhere = tmp_path / "logs", tmp_path / "private"
    folder.mkdir()
    elsewhere.mkdir()
    (folder / "vllm.log").write_text("INFO 11-20 09:14:02 [api_server.py:1880] vLLM API server version 0.11.0\n")
    secret = elsewhere / "shadow"
    secret.write_text("root:OUTSIDE-0c9e7d1b:19000:0:99999:7:::\n")
    secret.chmod(0o600)
    (folder / "vllm.log.1").symlink_to(secret)                 # a "rotated log" that leads out of the folder
    (folder / "vllm.log.2").symlink_to(folder / "vllm.log")    # a link that stays inside is fine
    os.mkfifo(folder / "vllm.log.3")                           # a FIFO: never opened for reading
    added = tmp_path / "notes"
    added.mkdir()
    (added / "client.txt").symlink_to(secret)
    out = tmp_path / "b.zip"
    r = emblens("collect", "--log", str(folder / "vllm.log*"), "--add", str(added / "client.txt"), "--no-gpu",
                "-o", str(out), timeout=60)
    assert r.returncode == 0, r.stderr
    members = _members(out)
    assert not [n for n, data in members.items() if b"OUTSIDE-0c9e7d1b" in data]
    assert "logs/vllm.log" in members and "logs/vllm.log.2" in members
    why = {m["what"]: m["why"] for m in json.loads(members["manifest.json"])["not_collected"]}
    assert "outside" in why[f"--log {folder / 'vllm.log.1'}"]
    assert "not a regular file" in why[f"--log {folder / 'vllm.log.3'}"]
    assert "outside" in why[f"--add {added / 'client.txt'}"]


def test_a_planted_link_at_the_temporary_name_is_not_written_through(tmp_path):
    log = tmp_path / "vllm.log"
    log.write_text("INFO 11-20 09:14:02 [api_server.py:1880] vLLM API server version 0.11.0\n")
    target = tmp_path / "precious.txt"
    target.write_text("keep me\n")
    target.chmod(0o644)
    out = tmp_path / "bundle.zip"
    (tmp_path / "bundle.zip.part").symlink_to(target)
    r = emblens("collect", "--log", str(log), "--no-gpu", "-o", str(out), timeout=60)
    assert r.returncode == 0, r.stderr
    assert target.read_bytes() == b"keep me\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert not out.is_symlink() and zipfile.is_zipfile(out)
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert "logs/vllm.log" in _members(out)
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".bundle.zip")]   # no temporary file left


def test_two_runs_to_one_path_never_mix(tmp_path):
    calls = tmp_path / "calls.jsonl"
    out = tmp_path / "b.zip"
    env = _standins(tmp_path, {"docker-inspect.txt": INSPECT}, STANDIN_MODE="slow", STANDIN_LOG=str(calls))
    args = [sys.executable, "-m", "emblens", "collect", "--docker", "vllm", "--no-gpu", "--timeout", "20", "-o", str(out)]
    first = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env={**os.environ, **env, "STANDIN_RUN": "first"})
    for _ in range(400):                       # the first run is collecting before the second starts
        if calls.exists() and calls.read_text():
            break
        time.sleep(0.025)
    second = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env={**os.environ, **env, "STANDIN_RUN": "second"})
    results = {}
    for name, p in (("first", first), ("second", second)):
        _, stderr = p.communicate(timeout=60)
        results[name] = (p.returncode, stderr)
    won = [name for name, (rc, _) in results.items() if rc == 0]
    assert len(won) == 1, results
    lost = "second" if won == ["first"] else "first"
    rc, stderr = results[lost]
    _one_line_error(subprocess.CompletedProcess([], rc, "", stderr))
    log = _members(out)["docker/vllm.log"].decode()
    assert f"RUN={won[0]}" in log and f"RUN={lost}" not in log


def test_a_name_on_the_last_line_of_a_block_still_masks_its_value(tmp_path, monkeypatch):
    """Big outputs are masked in blocks of whole lines; with blocks of a few lines, every kind of
    value that stands on the lines after its name meets a block's end, and is masked all the same."""
    from emblens.frontends import collect

    values = [f"Nx{i:04d}Qm7Lk2Pz" for i in range(300)]
    shapes = [
        lambda v: ["      --api-key", f"      {v}"],                                      # describe's Args
        lambda v: ["env:", "- name: VLLM_API_KEY", f"  value: {v}"],                       # a k8s env entry
        lambda v: ["api_key: |", f"  {v}", f"  {v[::-1]}", "port: 8000"],               # a YAML block scalar
        lambda v: ["-----BEGIN PRIVATE KEY-----", *[f"{v}{j:02d}ABCDEFGHabcdefgh" for j in range(5)],
                   "-----END PRIVATE KEY-----"],                                          # a key block
    ]
    lines: list[str] = []
    for i, v in enumerate(values):
        lines += ["INFO 11-20 09:14:02 [loggers.py:123] Running: 0 reqs"] * (i % 4) + shapes[i % len(shapes)](v)
    text = "\n".join(lines) + "\n"
    monkeypatch.setattr(collect, "BLOCK", 97)
    b = collect.Bundle(tmp_path / "x.zip", lambda _: None)
    try:
        out = bytearray()
        m = collect.Masker(b.mask_lines, out.extend)
        data = text.encode()
        for i in range(0, len(data), 13):
            m.feed(data[i:i + 13])
        m.close()
    finally:
        b.abort()
    masked = out.decode()
    assert masked.count("\n") == text.count("\n")
    left = [v for v in values if v in masked or v[::-1] in masked]
    assert not left, f"{len(left)} values left raw, e.g. {left[:3]}"
    assert masked.count("      --api-key\n") == text.count("      --api-key\n")


def test_a_line_longer_than_a_block_is_cut_where_no_secret_is_cut_in_two(tmp_path, monkeypatch):
    from emblens.frontends import collect

    values = [f"Lx{i:04d}Qm7Lk2Pz" for i in range(200)]
    forms = ("--api-key {}", "api_key= {}", "Authorization: Bearer {}", '"token": "{}"')
    text = " ".join(f"word{i} " * (i % 5) + forms[i % len(forms)].format(v) for i, v in enumerate(values))
    monkeypatch.setattr(collect, "BLOCK", 61)
    b = collect.Bundle(tmp_path / "x.zip", lambda _: None)
    try:
        out = bytearray()
        m = collect.Masker(b.mask_lines, out.extend)
        data = text.encode()
        for i in range(0, len(data), 7):
            m.feed(data[i:i + 7])
        m.close()
    finally:
        b.abort()
    masked = out.decode()
    assert "\n" not in masked
    left = [v for v in values if v in masked]
    assert not left, f"{len(left)} values left raw, e.g. {left[:3]}"
