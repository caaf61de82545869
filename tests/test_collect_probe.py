"""`emblens collect` and `emblens probe`, end to end as a user runs them: the probe against the
local stand-in server (samples/tools/mock_server.py) in several modes, collect with stand-in
docker / kubectl / nvidia-smi / journalctl executables on PATH that print recorded output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "samples" / "tools"))
from localnet import free_port, start_stand_in_server, wait_port  # noqa: E402

KEY = "s3cret-demo-key"           # the stand-in server's key
PLANTED = "pl4nted-0c9e7d1b2a"    # must never reach a bundle or a report


def emblens(*args: str, env: dict | None = None, cwd: Path | None = None, timeout: float = 60):
    t0 = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "emblens", *args], capture_output=True, text=True, timeout=timeout,
                       env={**os.environ, **(env or {})}, cwd=cwd)
    r.seconds = time.monotonic() - t0
    return r


@pytest.fixture
def server():
    """Start the stand-in in a mode; yields a function mode -> base URL."""
    procs = []

    def start(mode: str) -> str:
        port = free_port()
        procs.append(subprocess.Popen([sys.executable, str(REPO / "samples/tools/mock_server.py"), str(port), mode],
                                      stderr=subprocess.DEVNULL))
        wait_port(port, timeout=20)
        return f"http://127.0.0.1:{port}/v1"

    yield start
    for p in procs:
        p.terminate()
        p.wait(timeout=10)


def _probe_json(r) -> dict:
    """The JSON report of a run, checked against the published schema; the exit status is 1
    exactly when a probe's check failed or it found an error (probe's default --fail-on error), 0 for
    analyze."""
    import jsonschema

    from emblens.report.models import Report, schema

    assert r.returncode in (0, 1), r.stderr
    report = json.loads(r.stdout)
    jsonschema.validate(report, schema())
    Report.model_validate(report)
    if report["probe"] is None:          # analyze: no --fail-on given
        assert r.returncode == 0, r.stderr
        return report
    failed = any(c["outcome"] == "fail" for c in report["probe"]["checks"])
    assert r.returncode == int(failed or any(f["severity"] == "error" for f in report["findings"])), r.stderr
    return report


def _check(report: dict, check_id: str) -> dict:
    return next(c for c in report["probe"]["checks"] if c["id"] == check_id)


# -- probe ---------------------------------------------------------------------------------------
def test_probe_wrong_key_is_invalid_key_with_the_failing_check(server, tmp_path):
    url = server("auth+model")
    bundle = tmp_path / "probe.zip"
    r = emblens("probe", url, "--api-key-env", "MY_KEY", "--model", "Qwen3-Embedding-4B", "--out", str(bundle),
                "-f", "json", "-q", env={"MY_KEY": PLANTED})
    report = _probe_json(r)
    assert r.seconds < 10
    assert report["findings"][0]["rule"] == "auth.invalid_key"
    assert _check(report, "auth.key")["outcome"] == "fail"
    assert "MY_KEY" in _check(report, "auth.key")["title"]
    assert _check(report, "auth.required")["outcome"] == "pass"
    # the requests sent on purpose without a key are no client fault
    assert "auth.missing_key" not in [f["rule"] for f in report["findings"]]
    assert report["probe"]["requests"] <= 20
    assert PLANTED not in r.stdout + r.stderr
    with zipfile.ZipFile(bundle) as z:
        assert sorted(z.namelist()) == ["probe.har", "probe.json"]
        har = json.loads(z.read("probe.har"))
        assert len(har["log"]["entries"]) == report["probe"]["requests"]
        assert all(PLANTED not in z.read(n).decode() for n in z.namelist())
    # the kept bundle reads again to the same report
    again = json.loads(emblens("analyze", str(bundle), "-f", "json").stdout)
    assert again["findings"][0]["rule"] == "auth.invalid_key" and again["probe"] == report["probe"]


def test_probe_lowercase_name_is_model_not_found_with_the_served_name(server):
    url = server("auth+model")
    r = emblens("probe", url, "--api-key-env", "MY_KEY", "--model", "qwen3-embedding-4b", "-f", "json", "-q",
                env={"MY_KEY": KEY})
    report = _probe_json(r)
    assert r.seconds < 10
    top = report["findings"][0]
    assert top["rule"] == "model.not_found"
    assert "Qwen3-Embedding-4B" in top["summary"]
    name = _check(report, "model.name")
    assert name["outcome"] == "fail" and "only in case" in name["detail"]
    assert _check(report, "auth.key")["outcome"] == "pass"
    assert report["probe"]["requests"] <= 20
    assert KEY not in r.stdout + r.stderr


def test_probe_server_down_is_connection_refused(tmp_path):
    port = free_port()
    r = emblens("probe", f"http://127.0.0.1:{port}/v1", "-f", "json", "-q")
    report = _probe_json(r)
    assert r.seconds < 10
    assert report["findings"][0]["rule"] == "net.connection_refused"
    assert "mitmproxy" not in report["findings"][0]["summary"]      # emblens connected directly
    assert _check(report, "reach.tcp")["outcome"] == "fail"
    assert report["probe"]["requests"] == 1


def test_probe_slow_server_times_out_within_the_budget(server):
    url = server("slow")
    r = emblens("probe", url, "--model", "Qwen3-Embedding-4B", "-f", "json", "-q")
    report = _probe_json(r)
    assert r.seconds < 10
    assert report["findings"][0]["rule"] == "net.timeout"
    assert _check(report, "latency")["outcome"] == "fail"
    assert _check(report, "call.embeddings")["outcome"] == "fail"


def test_probe_502_from_a_proxy_in_front(server):
    url = server("gateway502")
    report = _probe_json(emblens("probe", url, "-f", "json", "-q"))
    assert report["findings"][0]["rule"] == "http.gateway_error"
    assert _check(report, "health")["outcome"] == "fail"
    assert _check(report, "models")["outcome"] == "fail"


def test_probe_embedding_model_all_pass(server):
    url = server("ok")
    r = emblens("probe", url, "-f", "json", "-q")
    report = _probe_json(r)
    assert report["findings"] == []
    call = _check(report, "call.embeddings")
    assert call["outcome"] == "pass" and "2560-dimensional" in call["detail"]
    assert _check(report, "model.name")["detail"] == "no --model given: using Qwen3-Embedding-4B"
    assert "Instruct: " in _check(report, "embed.prefix")["detail"]
    assert {c["outcome"] for c in report["probe"]["checks"]} <= {"pass", "warn"}


def test_probe_text_report_lists_each_check(server):
    url = server("auth+model")
    r = emblens("probe", url, "--api-key-env", "MY_KEY", "-q", env={"MY_KEY": "wrong-key"})
    assert r.returncode == 1                       # a FAIL check: a script sees the endpoint is not right
    assert "Probe of " in r.stdout
    assert "FAIL The key from MY_KEY is accepted" in r.stdout
    assert "ROOT CAUSE auth.invalid_key" in r.stdout


def test_probe_base_url_without_v1_is_a_warning(server):
    url = server("ok").removesuffix("/v1")
    r = emblens("probe", url, "-f", "json", "-q")
    report = _probe_json(r)
    check = _check(report, "base_url")
    assert check["outcome"] == "warn" and check["detail"].startswith(f"base_url={url}/v1")
    assert r.returncode == 0                                   # a warning fails only when asked
    assert emblens("probe", url, "-q", "--fail-on", "warning").returncode == 1


def test_probe_fail_on_never_exits_0_on_a_failing_check():
    r = emblens("probe", f"http://127.0.0.1:{free_port()}/v1", "-q", "--fail-on", "never")
    assert r.returncode == 0 and "net.connection_refused" in r.stdout
    assert emblens("probe", f"http://127.0.0.1:{free_port()}/v1", "-q").returncode == 1


def test_probe_dry_run_sends_nothing():
    port = free_port()       # nothing listens: a request would fail, a dry run does not send one
    r = emblens("probe", f"http://127.0.0.1:{port}/v1", "--dry-run", "--model", "m", "--api-key-env", "MY_KEY",
                env={"MY_KEY": PLANTED})
    assert r.returncode == 0
    assert "nothing is sent" in r.stdout and f"GET  http://127.0.0.1:{port}/v1/models" in r.stdout
    assert PLANTED not in r.stdout + r.stderr


def test_probe_bad_url_is_one_line_and_exit_2():
    r = emblens("probe", "127.0.0.1:8000")
    assert r.returncode == 2
    assert r.stderr.startswith("emblens: error: ") and len(r.stderr.strip().splitlines()) == 1
    assert "Traceback" not in r.stderr


# -- collect -------------------------------------------------------------------------------------
STANDIN = '''#!{python}
import json, os, sys, time
name = os.path.basename(sys.argv[0])
with open(os.environ["STANDIN_LOG"], "a") as f:
    f.write(json.dumps([name, *sys.argv[1:]]) + "\\n")
mode = os.environ.get("STANDIN_" + name.upper().replace("-", "_"), "ok")
if mode == "fail":
    sys.stderr.write("Error response from daemon: permission denied while trying to connect\\n")
    sys.exit(1)
if mode == "hang":
    time.sleep(600)
sys.stdout.write(open(os.path.join(os.environ["STANDIN_DATA"], name + "-" + (sys.argv[1] if len(sys.argv) > 1 else "") + ".txt")).read())
'''

DOCKER_LOGS = textwrap.dedent("""\
    2025-11-20T09:14:02.118231009Z INFO 11-20 09:14:02 [api_server.py:1880] vLLM API server version 0.11.0
    2025-11-20T09:14:02.120114765Z INFO 11-20 09:14:02 [utils.py:233] non-default args: {'model': '/models/Qwen3-Embedding-4B', 'served_model_name': ['Qwen3-Embedding-4B'], 'api_key': ['PLANTED']}
    2025-11-20T09:14:31.551002118Z INFO 11-20 09:14:31 [launcher.py:34] Route: /v1/embeddings, Methods: POST
    2025-11-20T09:14:31.603339871Z INFO:     Started server process [1]
    2025-11-20T09:14:31.603419550Z INFO:     Application startup complete.
    2025-11-20T09:15:10.002345981Z INFO:     172.17.0.1:51422 - "POST /v1/embeddings HTTP/1.1" 404 Not Found
    2025-11-20T09:15:11.442310217Z INFO:     172.17.0.1:51430 - "POST /v1/embeddings HTTP/1.1" 404 Not Found
""").replace("PLANTED", PLANTED)

DOCKER_INSPECT = json.dumps([{
    "Name": "/vllm", "RestartCount": 2,
    "State": {"Status": "running", "ExitCode": 0, "OOMKilled": False, "StartedAt": "2025-11-20T09:13:58Z",
              "FinishedAt": "0001-01-01T00:00:00Z"},
    "Config": {"Image": "vllm/vllm-openai:v0.11.0", "Entrypoint": ["vllm", "serve"],
               "Cmd": ["/models/Qwen3-Embedding-4B", "--served-model-name", "Qwen3-Embedding-4B", "--api-key", PLANTED],
               "Env": [f"VLLM_API_KEY={PLANTED}", f"HF_TOKEN=hf_{PLANTED}", "CUDA_VISIBLE_DEVICES=0",
                       "PATH=/usr/local/bin:/usr/bin"]},
    "HostConfig": {"ShmSize": 67108864, "NetworkMode": "bridge", "PortBindings": {"8000/tcp": [{"HostPort": "8000"}]}},
}])

NVIDIA_SMI_TABLE = textwrap.dedent("""\
    Thu Nov 20 09:16:01 2025
    +-----------------------------------------------------------------------------------------+
    | NVIDIA-SMI 570.86.15              Driver Version: 570.86.15      CUDA Version: 12.8     |
    |-----------------------------------------+------------------------+----------------------+
    | GPU  Name                 Persistence-M | Bus-Id          Disp.A | Volatile Uncorr. ECC |
    | Fan  Temp   Perf          Pwr:Usage/Cap |           Memory-Usage | GPU-Util  Compute M. |
    |=========================================+========================+======================|
    |   0  NVIDIA L4                      Off |   00000000:00:03.0 Off |                    0 |
    | N/A   54C    P0             28W /   72W |   20211MiB /  23034MiB |      0%      Default |
    +-----------------------------------------+------------------------+----------------------+
""")


@pytest.fixture
def standins(tmp_path, monkeypatch):
    """docker, kubectl, nvidia-smi and journalctl stand-ins on PATH; returns (env, calls())."""
    bin_dir, data = tmp_path / "bin", tmp_path / "data"
    bin_dir.mkdir()
    data.mkdir()
    for name in ("docker", "kubectl", "nvidia-smi", "journalctl"):
        exe = bin_dir / name
        exe.write_text(STANDIN.format(python=sys.executable))
        exe.chmod(0o755)
    (data / "docker-logs.txt").write_text(DOCKER_LOGS)
    (data / "docker-inspect.txt").write_text(DOCKER_INSPECT)
    (data / "docker-exec.txt").write_text("vllm==0.11.0\ntorch==2.8.0\ntransformers==4.57.1\n# python 3.12.3\n")
    (data / "kubectl-logs.txt").write_text(DOCKER_LOGS)
    (data / "kubectl-describe.txt").write_text(f"Name:         vllm-0\nNamespace:    models\n    Environment:\n      VLLM_API_KEY:  {PLANTED}\n      CUDA_VISIBLE_DEVICES:  0\n")
    (data / "kubectl-exec.txt").write_text("vllm==0.11.0\n")
    (data / "nvidia-smi-.txt").write_text(NVIDIA_SMI_TABLE)
    (data / "nvidia-smi--q.txt").write_text("<?xml version=\"1.0\" ?>\n<nvidia_smi_log><driver_version>570.86.15</driver_version></nvidia_smi_log>\n")
    (data / "nvidia-smi---query-compute-apps=pid,process_name,used_memory.txt").write_text(
        "pid, process_name, used_gpu_memory [MiB]\n2171, python3, 20200 MiB\n")
    (data / "journalctl--u.txt").write_text(DOCKER_LOGS)
    log = tmp_path / "calls.jsonl"
    env = {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "STANDIN_LOG": str(log), "STANDIN_DATA": str(data)}

    def calls() -> list[list[str]]:
        return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []

    return env, calls


def _bundle_text(path: Path) -> str:
    with zipfile.ZipFile(path) as z:
        return "\n".join(z.read(n).decode("utf-8", "replace") for n in z.namelist())


def test_collect_log_and_url_gives_the_same_root_cause_and_no_secret(server, tmp_path):
    url = server("model")
    log = tmp_path / "server.log"
    log.write_text((REPO / "samples/model-name-mismatch/vllm-server.log").read_text()
                   + f"INFO 11-20 09:20:00 [api_server.py:1] args: --api-key {PLANTED}\n")
    out = tmp_path / "b.zip"
    r = emblens("collect", "--log", str(log), "--url", url, "--api-key-env", "MY_KEY", "--no-gpu", "-o", str(out),
                env={"MY_KEY": PLANTED})
    assert r.returncode == 0, r.stderr
    assert "collected logs/server.log" in r.stderr
    text = _bundle_text(out)
    assert PLANTED not in text
    manifest = json.loads(zipfile.ZipFile(out).read("manifest.json"))
    assert {c["file"] for c in manifest["collected"]} >= {"logs/server.log", "url/exchanges.har"}
    by_hand = json.loads(emblens("analyze", str(log), "-f", "json").stdout)
    bundled = json.loads(emblens("analyze", str(out), "-f", "json").stdout)
    assert bundled["findings"][0]["rule"] == by_hand["findings"][0]["rule"] == "model.not_found"
    sources = {i["source"]: i["collected_from"] for i in bundled["inputs"]}
    assert sources["logs/server.log"] == str(log)
    assert "manifest.json" not in sources
    assert bundled["collection"]["collected"]


def test_collect_docker_k8s_journal_gpu_with_standins(standins, tmp_path):
    env, calls = standins
    out = tmp_path / "b.zip"
    r = emblens("collect", "--docker", "vllm", "--k8s", "vllm-0", "-n", "models", "-c", "server", "--journal",
                "vllm.service", "--tail", "200", "-o", str(out), env=env)
    assert r.returncode == 0, r.stderr
    seen = calls()
    assert ["docker", "logs", "--timestamps", "--tail", "200", "vllm"] in seen
    assert ["docker", "inspect", "vllm"] in seen
    assert ["kubectl", "logs", "--timestamps", "--tail=200", "vllm-0", "-n", "models", "-c", "server"] in seen
    assert ["kubectl", "logs", "--timestamps", "--previous", "--tail=200", "vllm-0", "-n", "models", "-c", "server"] in seen
    assert ["kubectl", "describe", "pod", "vllm-0", "-n", "models"] in seen
    assert ["journalctl", "-u", "vllm.service", "-o", "short-iso", "--no-pager", "-n", "200"] in seen
    assert ["nvidia-smi", "-q", "-x"] in seen and ["nvidia-smi"] in seen
    text = _bundle_text(out)
    assert PLANTED not in text                     # env, --api-key on the command line, args in the log
    with zipfile.ZipFile(out) as z:
        inspect = z.read("docker/vllm.inspect.txt").decode()
        names = z.namelist()
    assert "restart count: 2" in inspect and "shm size: 67108864 bytes" in inspect
    assert "CUDA_VISIBLE_DEVICES=0" in inspect and "VLLM_API_KEY=<" in inspect
    assert "gpu/nvidia-smi.txt" in names and "docker/vllm.versions.txt" in names
    manifest = json.loads(zipfile.ZipFile(out).read("manifest.json"))
    assert manifest["versions"]["vllm"] == "0.11.0" and manifest["versions"]["driver"] == "570.86.15"
    report = _probe_json(emblens("analyze", str(out), "-f", "json"))
    assert report["findings"][0]["rule"] == "model.not_found"
    assert any(i["collected_from"] == "docker logs --timestamps --tail 200 vllm" for i in report["inputs"])


def test_collect_survives_missing_failing_and_hanging_tools(standins, tmp_path):
    env, calls = standins
    env = {**env, "STANDIN_DOCKER": "fail", "STANDIN_JOURNALCTL": "hang"}
    env["PATH"] = str(tmp_path / "bin2")              # nothing found (this machine may have a kubectl) ...
    (tmp_path / "bin2").mkdir()
    for name in ("docker", "journalctl"):                                               # ... but these two
        (tmp_path / "bin2" / name).symlink_to(tmp_path / "bin" / name)
    out = tmp_path / "b.zip"
    t0 = time.monotonic()
    r = emblens("collect", "--docker", "vllm", "--k8s", "vllm-0", "--journal", "vllm", "--log", str(tmp_path / "nope.log"),
                "--timeout", "2", "-o", str(out), env=env)
    assert time.monotonic() - t0 < 30
    assert r.returncode == 0, r.stderr
    why = {m["what"]: m["why"] for m in json.loads(zipfile.ZipFile(out).read("manifest.json"))["not_collected"]}
    assert "exit status 1" in why["docker logs vllm"] and "permission denied" in why["docker logs vllm"]
    assert why["kubectl logs vllm-0"] == "kubectl: not found"
    assert "timed out after 2 s" in why["journalctl -u vllm"]
    assert why["nvidia-smi"].startswith("not found")
    assert why[f"--log {tmp_path / 'nope.log'}"] == "no such file"
    report = emblens("analyze", str(out))
    assert report.returncode == 0 and "Not collected" in report.stdout and "kubectl: not found" in report.stdout


def test_collect_refuses_a_name_that_is_not_a_zip(tmp_path):
    r = emblens("collect", "--log", "x.log", "-o", str(tmp_path / "b.tar"))
    assert r.returncode == 2 and r.stderr.startswith("emblens: error: ")


@pytest.mark.parametrize("folder", [None, "emblens/.venv/bin"])
def test_collect_finds_a_running_server_its_command_line_and_log(tmp_path, folder):
    """`folder`: the server's python runs from a clone named `emblens` (its virtual environment);
    it is a server all the same, while emblens's own process (`-m emblens collect`) is not one."""
    python = None
    if folder:
        (tmp_path / folder).mkdir(parents=True)
        python = tmp_path / folder / "python"
        python.symlink_to(sys.executable)
    proc = start_stand_in_server(tmp_path / "vllm-out.log", "/models/Qwen3-Embedding-4B", "--api-key", PLANTED,
                                 python=str(python) if python else None)
    try:
        bundle = tmp_path / "b.zip"
        r = emblens("collect", "--no-gpu", "-o", str(bundle))
        assert r.returncode == 0, r.stderr
    finally:
        proc.kill()
        proc.wait()
    with zipfile.ZipFile(bundle) as z:
        names = z.namelist()
        cmdline = z.read(f"processes/{proc.pid}.cmdline.txt").decode()
        assert "vllm serve /models/Qwen3-Embedding-4B --api-key <" in cmdline
        assert "logs/vllm-out.log" in names
        assert PLANTED not in "\n".join(z.read(n).decode("utf-8", "replace") for n in names)
        assert not folder or f"{folder}/python -c" in cmdline
        assert [n for n in names if n.startswith("processes/") and b"-m emblens" in z.read(n)] == []


def test_probe_warns_when_the_environment_proxy_would_carry_the_call(server):
    url = server("ok")
    report = _probe_json(emblens("probe", url, "-f", "json", "-q",
                                 env={"HTTP_PROXY": "http://proxy.corp.example:3128", "NO_PROXY": "", "no_proxy": ""}))
    check = _check(report, "reach.proxy")
    assert check["outcome"] == "warn" and "proxy.corp.example:3128" in check["detail"] and "NO_PROXY" in check["detail"]
    assert _check(report, "call.embeddings")["outcome"] == "pass"      # the probe itself goes direct
    report = _probe_json(emblens("probe", url, "-f", "json", "-q",
                                 env={"HTTP_PROXY": "http://proxy.corp.example:3128", "NO_PROXY": "127.0.0.1"}))
    assert _check(report, "reach.proxy")["outcome"] == "pass"
