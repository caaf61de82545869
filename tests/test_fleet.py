"""`emblens fleet`: every replica of a generated fleet analysed as `emblens analyze` would, the
planted incidents found where they were planted and nowhere else, broken replicas reported as
rows, and the tables and reports a user reads."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from emblens.diagnose import analyze
from emblens.frontends.cli import app

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "samples" / "tools"))
import fleet as fleetgen  # noqa: E402

runner = CliRunner()


def _fleet(args: list[str]):
    return runner.invoke(app, ["fleet", "-q", *args])


def _roots(findings: pl.DataFrame) -> dict[str, str]:
    return dict(findings.filter(pl.col("role") == "root_cause").select("replica", "rule").iter_rows())


@pytest.fixture(scope="module")
def fleet_run(tmp_path_factory):
    """250 replicas (each a short vLLM log; incidents planted in about one in five) and two
    broken bundles, through the default engine (a pool of 2 workers); bench/fleet.py runs 1,000
    and 5,000."""
    tmp = tmp_path_factory.mktemp("fleet")
    planted = fleetgen.make_fleet(tmp / "fleet", 250, requests=20, broken=2)
    result = _fleet([str(tmp / "fleet"), "--jobs", "2", "--out", str(tmp / "out"), "-o", str(tmp / "report.json"),
                     "-o", str(tmp / "report.txt"), "-o", str(tmp / "report.html")])
    return tmp, planted, result


def test_a_fleet_finds_exactly_the_planted_incidents_per_replica(fleet_run):
    tmp, planted, result = fleet_run
    assert result.exit_code == 0, result.output
    findings = pl.read_parquet(tmp / "out" / "findings.parquet")
    replicas = pl.read_parquet(tmp / "out" / "replicas.parquet")
    assert replicas.height == len(planted) == 252
    assert sorted(replicas["replica"]) == sorted(planted)
    expected = {name: cause for name, cause in planted.items() if cause not in (None, "broken")}
    assert 30 < len(expected) < 70
    assert _roots(findings) == expected            # the replica × root-cause table, exactly
    # every other finding is a symptom of its replica's root cause (an OOM stops the engine)
    others = findings.filter(pl.col("role") != "root_cause")
    assert (others["role"] == "symptom").all()
    assert set(others["replica"]) <= {n for n, c in expected.items() if c == "gpu.oom"}
    healthy = replicas.filter(pl.col("replica").is_in([n for n, c in planted.items() if c is None]))
    assert (healthy["findings"] == 0).all() and (healthy["status"] == "ok").all()


def test_a_broken_replica_is_a_row_and_the_rest_goes_on(fleet_run):
    tmp, planted, result = fleet_run
    replicas = pl.read_parquet(tmp / "out" / "replicas.parquet")
    broken = replicas.filter(pl.col("replica").str.starts_with("broken-")).sort("replica")
    assert broken["status"].to_list() == ["unreadable", "unreadable"]
    assert broken["reason"].str.contains("not a readable zip archive").all()
    assert not broken["reason"].str.contains("/tmp/").any()      # named as the replica, not by the driver's path
    text = (tmp / "report.txt").read_text()
    assert "Not analysed:" in text and "broken-00.zip: unreadable" in text
    doc = json.loads((tmp / "report.json").read_text())
    assert doc["replicas"]["total"] == 252 and doc["replicas"]["failed"] == 2
    assert [f["replica"] for f in doc["failed"]] == ["broken-00.zip", "broken-01.zip"]


def test_the_fleet_report_ranks_causes_by_replicas_affected(fleet_run):
    tmp, planted, _ = fleet_run
    doc = json.loads((tmp / "report.json").read_text())
    by_cause: dict[str, int] = {}
    for cause in planted.values():
        if cause not in (None, "broken"):
            by_cause[cause] = by_cause.get(cause, 0) + 1
    assert [c["rule"] for c in doc["causes"]] == sorted(by_cause, key=lambda r: (-by_cause[r], r)) or \
        [c["replicas"] for c in doc["causes"]] == sorted(by_cause.values(), reverse=True)
    assert {c["rule"]: c["replicas"] for c in doc["causes"]} == by_cause
    auth = next(c for c in doc["causes"] if c["rule"] == "auth.invalid_key")
    assert auth["requests_failed"] >= auth["replicas"]           # each such replica has 401s
    assert auth["example"]["source"] == "vllm.log" and "401 Unauthorized" in auth["example"]["text"]
    assert len(auth["replica_names"]) == 20 and auth["more"] == auth["replicas"] - 20
    text = (tmp / "report.txt").read_text()
    assert text.splitlines()[0].startswith("emblens ") and "252 replica(s): 250 analysed" in text


def test_a_replica_in_the_fleet_gets_what_analyze_gives_it(fleet_run):
    tmp, planted, _ = fleet_run
    findings = pl.read_parquet(tmp / "out" / "findings.parquet")
    some = [n for n, c in planted.items() if c not in (None, "broken")][:6] + [n for n, c in planted.items() if c is None][:2]
    for name in some:
        alone = analyze([tmp / "fleet" / name])
        mine = findings.filter(pl.col("replica") == name).sort("rule")
        assert sorted((f.rule, f.role, f.count) for f in alone.findings) == \
            sorted(mine.select("rule", "role", "count").iter_rows()), name


def test_the_tables_have_their_documented_columns(fleet_run):
    from emblens.frontends.fleet.tables import SCHEMAS
    tmp, _, _ = fleet_run
    for table, schema in SCHEMAS.items():
        frame = pl.read_parquet(tmp / "out" / f"{table}.parquet")
        assert dict(frame.schema) == dict(schema), table
    failing = pl.read_parquet(tmp / "out" / "failing.parquet")
    assert (failing["status"] >= 400).all() and failing["minute"].is_not_null().all()
    assert not (tmp / "out" / ".parts").exists()


def test_serial_and_pool_give_the_same_rows(tmp_path):
    fleetgen.make_fleet(tmp_path / "fleet", 24, requests=20, broken=1)
    rows = {}
    for engine in ("serial", "pool"):
        r = _fleet([str(tmp_path / "fleet"), "--engine", engine, "--jobs", "2", "--out", str(tmp_path / engine),
                    "-o", str(tmp_path / f"{engine}.json")])
        assert r.exit_code == 0, r.output
        rows[engine] = pl.read_parquet(tmp_path / engine / "findings.parquet")
    assert rows["serial"].equals(rows["pool"]) and rows["serial"].height > 0


def test_a_pattern_names_replicas_two_levels_down(tmp_path):
    planted = fleetgen.make_fleet(tmp_path / "fleet", 12, requests=20, layout="nested")
    r = _fleet([str(tmp_path / "fleet"), "--replica", "{ns}/{pod}/**", "--engine", "serial", "--out", str(tmp_path / "out"),
                "-f", "json"])
    assert r.exit_code == 0, r.output
    replicas = pl.read_parquet(tmp_path / "out" / "replicas.parquet")
    assert sorted(replicas["replica"]) == sorted(planted)        # "prod/pod-0000", ...
    findings = pl.read_parquet(tmp_path / "out" / "findings.parquet")
    assert _roots(findings) == {n: c for n, c in planted.items() if c}
    assert set(findings["evidence_source"]) <= {"logs/vllm.log"}


def test_what_a_replica_is_by_default(tmp_path):
    """A folder of sub-folders or bundles is a fleet; a folder of plain files is one replica; a
    quoted glob's matches are replicas, whatever they hold."""
    from emblens.frontends.fleet.replicas import discover

    for pod in ("a", "b"):
        (tmp_path / "fleet" / pod / "logs").mkdir(parents=True)
        (tmp_path / "fleet" / pod / "logs" / "vllm.log").write_text("x\n")
        (tmp_path / "fleet" / pod / "client.txt").write_text("y\n")
    (tmp_path / "fleet" / "c.zip").write_bytes(b"PK")
    (tmp_path / "fleet" / ".DS_Store").write_bytes(b"")
    names = lambda rs: sorted(r.name for r in rs)  # noqa: E731
    assert names(discover([str(tmp_path / "fleet")])) == ["a", "b", "c.zip"]
    one = discover([str(tmp_path / "fleet" / "a" / "logs")])
    assert names(one) == ["logs"] and len(one[0].files) == 1
    both = discover([str(tmp_path / "fleet" / "*")])
    assert names(both) == ["a", "b", "c.zip"] and len(both[0].files) == 2


def test_bundles_are_replicas_and_fail_on_sets_the_exit_status(tmp_path):
    planted = fleetgen.make_fleet(tmp_path / "fleet", 10, requests=20, layout="bundles", seed=3)
    assert any(planted.values())
    r = _fleet([str(tmp_path / "fleet"), "--engine", "serial", "--fail-on", "error", "-f", "markdown"])
    assert r.exit_code == 1, r.output
    assert r.output.startswith("# emblens fleet report") and "## Root causes" in r.output
    healthy = tmp_path / "healthy"
    healthy.mkdir()
    for name, cause in planted.items():
        if cause is None:
            (healthy / name).write_bytes((tmp_path / "fleet" / name).read_bytes())
    r = _fleet([str(healthy), "--engine", "serial", "--fail-on", "error"])
    assert r.exit_code == 0 and "No known failure found on any replica." in r.output


@pytest.mark.parametrize("args, message", [
    (["/nonexistent/fleet"], "/nonexistent/fleet: no such file or folder"),
    (["{tmp}/empty"], "no replica found in"),
    (["{tmp}/one", "--replica", "{a}/{a}/**"], "appears twice"),
    (["{tmp}/one", "--events"], "--events writes each replica's event table under --out DIR"),
    (["{tmp}/one", "-o", "{tmp}/x.sarif"], "the fleet report is text, markdown, json or html"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, args, message):
    (tmp_path / "empty").mkdir()
    (tmp_path / "one" / "a").mkdir(parents=True)
    (tmp_path / "one" / "a" / "x.log").write_text("hello\n")
    r = _fleet([a.replace("{tmp}", str(tmp_path)) for a in args])
    assert r.exit_code == 2 and message in r.output and "Traceback" not in r.output, r.output


def test_a_fleet_where_nothing_could_be_analysed_exits_2_after_its_report(tmp_path):
    (tmp_path / "fleet").mkdir()
    for k in range(2):
        (tmp_path / "fleet" / f"pod-{k}.zip").write_bytes(b"PK\x03\x04 cut short")
    r = _fleet([str(tmp_path / "fleet"), "--engine", "serial", "-o", str(tmp_path / "r.txt")])
    assert r.exit_code == 2 and "no replica could be analysed (all 2 are listed in the report)" in r.output
    assert "pod-0.zip: unreadable: not a readable zip archive" in (tmp_path / "r.txt").read_text()


def test_events_are_written_per_replica_masked(tmp_path):
    fleetgen.make_fleet(tmp_path / "fleet", 3, requests=20)
    log = tmp_path / "fleet" / "pod-0000" / "vllm.log"
    log.write_text(log.read_text() + "(APIServer pid=1) ERROR 11-20 10:00:00 [x.py:1] retry with api_key=sk-proj-abcdefghijklmnopqrstuvwxyz0123456789\n")
    r = _fleet([str(tmp_path / "fleet"), "--engine", "serial", "--out", str(tmp_path / "out"), "--events"])
    assert r.exit_code == 0, r.output
    files = sorted((tmp_path / "out" / "events").glob("*.parquet"))
    assert len(files) == 3
    events = pl.concat([pl.read_parquet(f) for f in files], how="diagonal_relaxed")
    assert set(events["replica"]) == {"pod-0000", "pod-0001", "pod-0002"}
    dump = events.write_csv()
    assert "sk-proj-abcdefghijklmnopqrstuvwxyz0123456789" not in dump and "retry with api_key=" in dump


def test_a_replica_past_its_time_is_reported_and_the_rest_goes_on(tmp_path, monkeypatch):
    from emblens.frontends.fleet import task
    from emblens.frontends.fleet.replicas import Replica
    from emblens.settings import Settings

    fleetgen.make_fleet(tmp_path / "fleet", 1, requests=20)
    replica = Replica("pod-0000", str(tmp_path / "fleet" / "pod-0000"), (str(tmp_path / "fleet" / "pod-0000" / "vllm.log"),), 1)
    import emblens.diagnose as diagnose

    def stuck(*a, **k):
        import time
        time.sleep(5)
    monkeypatch.setattr(diagnose, "run", stuck)
    row = task.run_replica(replica, task.Conf(settings=Settings(), timeout_s=0.3))
    assert row["replica"]["status"] == "timeout" and "0.3 s" in row["replica"]["reason"]
    assert row["replica"]["seconds"] < 3


def test_ray_gives_the_rows_the_pool_gives(fleet_run, tmp_path):
    """Each replica a Ray task on a local Ray (started by the command, 2 CPUs): the same
    `findings.parquet` rows and replica statuses as the pool gave those replicas. 60 of the 250
    here, to keep the suite short; bench/fleet.py compares all 1,000."""
    pytest.importorskip("ray", reason="Ray is not installed here (pip install 'emblens[ray]')")
    fleet_dir, planted, _ = fleet_run
    names = sorted(n for n in planted if n.startswith("pod-"))[:60]
    r = _fleet([*(str(fleet_dir / "fleet" / n) for n in names), "--engine", "ray", "--jobs", "2", "--out",
                str(tmp_path / "ray"), "-f", "json"])
    assert r.exit_code == 0, r.output
    mine = pl.col("replica").is_in(names)
    pool = pl.read_parquet(fleet_dir / "out" / "findings.parquet").filter(mine)
    ray = pl.read_parquet(tmp_path / "ray" / "findings.parquet")
    assert ray.equals(pool) and ray.height > 12
    cols = ["replica", "status", "reason", "findings", "requests", "failed_requests", "events"]
    assert pl.read_parquet(tmp_path / "ray" / "replicas.parquet", columns=cols).equals(
        pl.read_parquet(fleet_dir / "out" / "replicas.parquet", columns=cols).filter(mine))
    assert pl.read_parquet(tmp_path / "ray" / "replicas.parquet")["worker"].n_unique() >= 2


@pytest.fixture
def s3_server(monkeypatch):
    """moto's S3-compatible server on 127.0.0.1 (an ephemeral port), with throwaway credentials."""
    moto_server = pytest.importorskip("moto.server", reason="moto is not installed (pip install 'moto[s3]' flask flask-cors)")
    pytest.importorskip("s3fs", reason="s3fs is not installed (pip install 'emblens[s3]')")
    for key, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"),
                       ("AWS_DEFAULT_REGION", "us-east-1")):
        monkeypatch.setenv(key, value)
    for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def test_a_fleet_under_an_s3_prefix_is_read_where_it_lies(tmp_path, s3_server):
    """The fleet's files uploaded to a bucket of a local S3-compatible server: each worker fetches
    its replica's objects itself; the findings are those of the same fleet on disk, and an object
    that cannot be read is its replica's row."""
    import s3fs

    planted = fleetgen.make_fleet(tmp_path / "fleet", 30, requests=20, broken=1)
    fs = s3fs.S3FileSystem(endpoint_url=s3_server)
    fs.mkdir("fleet-logs")
    fs.put(str(tmp_path / "fleet") + "/", "fleet-logs/prod/", recursive=True)
    r = _fleet(["s3://fleet-logs/prod", "--endpoint-url", s3_server, "--jobs", "2", "--out", str(tmp_path / "s3"),
                "-o", str(tmp_path / "s3.json")])
    assert r.exit_code == 0, r.output
    findings = pl.read_parquet(tmp_path / "s3" / "findings.parquet")
    assert _roots(findings) == {n: c for n, c in planted.items() if c not in (None, "broken")}
    replicas = pl.read_parquet(tmp_path / "s3" / "replicas.parquet").sort("replica")
    assert sorted(replicas["replica"]) == sorted(planted)
    assert replicas.filter(pl.col("replica") == "pod-0000")["location"].item() == "s3://fleet-logs/prod/pod-0000"
    assert set(findings["evidence_source"]) == {"vllm.log"}
    broken = replicas.filter(pl.col("replica") == "broken-00.zip").row(0, named=True)
    assert broken["status"] == "unreadable" and "emblens-replica-" not in broken["reason"]
    local = _fleet([str(tmp_path / "fleet"), "--engine", "serial", "--out", str(tmp_path / "disk"), "-f", "json"])
    assert local.exit_code == 0
    assert pl.read_parquet(tmp_path / "disk" / "findings.parquet").equals(findings)


def test_an_s3_prefix_that_is_not_there_is_one_line(s3_server):
    r = _fleet(["s3://no-such-bucket/fleet", "--endpoint-url", s3_server])
    assert r.exit_code == 2 and "s3://no-such-bucket/fleet" in r.output and "Traceback" not in r.output, r.output


def test_ctrl_c_stops_the_workers_and_reports_what_is_done(tmp_path):
    """Ctrl-C (to the whole process group, as a terminal sends it): the driver stops the pool's
    workers, writes the report of the replicas done, says so, exits 130, and leaves no process."""
    import os
    import signal
    import subprocess
    import time

    fleetgen.make_fleet(tmp_path / "fleet", 400, requests=20)
    report = tmp_path / "report.txt"
    p = subprocess.Popen([sys.executable, "-m", "emblens", "fleet", str(tmp_path / "fleet"), "--jobs", "2", "-o", str(report)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    time.sleep(4)
    assert p.poll() is None, "the fleet ended before it could be interrupted"
    os.killpg(p.pid, signal.SIGINT)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 130, err
    assert "stopped (Ctrl-C) after" in err.decode()
    first = report.read_text().splitlines()[0]
    assert "(stopped (Ctrl-C) after" in first and "of 400 replicas)" in first
    left = ""
    for _ in range(50):              # no worker left behind (the resource tracker ends on its own, soon after)
        left = subprocess.run(["ps", "-o", "pid=,stat=,args=", "-g", str(p.pid)], capture_output=True, text=True).stdout
        if not [line for line in left.splitlines() if " Z" not in line]:
            break
        time.sleep(0.2)
    assert not [line for line in left.splitlines() if " Z" not in line], left


def test_the_html_fleet_report_opens_in_chromium_with_its_heat_map(fleet_run):
    import shutil
    import subprocess

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("Chromium is not installed (.ci/run installs Debian's chromium)")
    import numpy as np
    from PIL import Image

    tmp, _, _ = fleet_run
    page = tmp / "report.html"
    shot = tmp / "shot.png"
    run = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--hide-scrollbars", f"--user-data-dir={tmp / 'profile'}",
         "--enable-logging=stderr", "--v=0", "--virtual-time-budget=1000", "--window-size=1200,2400",
         f"--screenshot={shot}", page.as_uri()], capture_output=True, text=True, timeout=120, check=False)
    assert [line for line in run.stderr.splitlines() if ":CONSOLE" in line] == []
    assert shot.exists()
    text = page.read_text()
    assert "Root causes" in text and "auth.invalid_key" in text and "table class=heat" in text
    pixels = np.asarray(Image.open(shot).convert("RGB"), dtype=np.int16)
    reddish = ((pixels[:, :, 0] > 150) & (pixels[:, :, 1] < 150) & (pixels[:, :, 2] < 150)).sum()
    assert reddish > 500, reddish            # the heat map's cells are drawn
