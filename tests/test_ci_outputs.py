"""CI outputs: SARIF 2.1.0 for code scanning and GitHub Actions annotations, for every sample
bundle, an input with no finding, one whose name needs escaping, and one holding a secret."""

import json
import os
import re
import shutil
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import unquote, urlparse

import pytest
from jsonschema import validators
from typer.testing import CliRunner

from emblens.diagnose import analyze
from emblens.events.redact import printable
from emblens.frontends.cli import Format, app
from emblens.report import render
from emblens.report.github import NOTHING_FOUND, to_github
from emblens.report.sarif import fingerprint, to_sarif
from emblens.rules.engine import Evidence, Finding

REPO = Path(__file__).resolve().parents[1]
SAMPLES = sorted(p.name for p in (REPO / "samples").glob("*.zip"))
SCHEMA = json.loads((REPO / "tests" / "data" / "sarif-2.1.0.schema.json").read_text())
SECRET = "s3cret-demo-key"          # the --api-key in samples/wrong-auth-header (its log and its capture)
LEVELS = {"error": "error", "warning": "warning", "info": "note"}
# RFC 3986: unreserved, sub-delims, ':', '@', '/' and percent-encodings, nothing else
URI_CHARS = re.compile(r"(?:[A-Za-z0-9\-._~!$&'()*+,;=:@/]|%[0-9A-F]{2})*")
CLI = pytest.mark.skipif(not hasattr(Format, "sarif"), reason="the CLI's Format has no sarif/github yet (cli.py)")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict:
    """Each sample bundle by its relative path (as a user in the checkout names it), a folder with
    no failure in it and an empty file, and a client traceback whose name holds a comma and a `%`
    and whose error line holds terminal escapes."""
    tmp = tmp_path_factory.mktemp("ci")
    healthy = tmp / "healthy"
    healthy.mkdir()
    log = (REPO / "samples" / "model-name-mismatch" / "vllm-server.log").read_text().splitlines(keepends=True)
    (healthy / "vllm.log").write_text("".join(log[:20]))     # start-up to ready, no request yet
    (healthy / "empty.log").write_text("")
    odd = tmp / "client, run 100%.txt"
    traceback = (REPO / "samples" / "model-name-mismatch" / "client-traceback.txt").read_text()
    odd.write_text(traceback.replace("does not exist.", "does not exist.\x1b]0;pwned\x07\x1b[2J"))
    shutil.copy(REPO / "samples" / "model-name-mismatch.zip", tmp / "model-name-mismatch.zip")
    return {"tmp": tmp, "healthy": str(healthy), "odd": str(odd)}


@pytest.fixture(scope="module")
def analyses(inputs) -> dict:
    """Every input analysed once."""
    out = {}
    cwd = os.getcwd()
    os.chdir(REPO)
    try:
        for name in SAMPLES:
            out[name] = analyze([f"samples/{name}"])
    finally:
        os.chdir(cwd)
    out["healthy"] = analyze([inputs["healthy"]])
    out["odd"] = analyze([inputs["odd"]])
    return out


@pytest.fixture(scope="module")
def validator():
    cls = validators.validator_for(SCHEMA)
    cls.check_schema(SCHEMA)
    return cls(SCHEMA)


def errors(validator, log: dict) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(log)]


def label_of(run: dict, location: dict) -> str:
    """The source label a location names, through its artifact and the archives that hold it."""
    where = location["physicalLocation"]["artifactLocation"]
    index, chain = where["index"], []
    assert run["artifacts"][index]["location"]["uri"] == where["uri"]
    while index is not None:
        chain.append(run["artifacts"][index]["location"])
        index = run["artifacts"][index].get("parentIndex")
    top, *members = reversed(chain)
    assert ("uriBaseId" in top) != top["uri"].startswith("file:")   # relative to where emblens ran, or absolute
    assert all("uriBaseId" not in m for m in members)                # a member is named by its archive
    path = unquote(urlparse(top["uri"]).path) if top["uri"].startswith("file:") else unquote(top["uri"])
    return ":".join([path, *(unquote(m["uri"]) for m in members)])


def uris(node):
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "uri":
                yield v
            else:
                yield from uris(v)
    elif isinstance(node, list):
        for v in node:
            yield from uris(v)


@pytest.mark.parametrize("name", [*SAMPLES, "healthy", "odd"])
def test_sarif_validates_and_says_what_the_json_report_says(name, analyses, validator):
    analysis = analyses[name]
    text = render(analysis, "sarif")
    assert text.endswith("}\n") and text.startswith('{\n  "$schema": "https://json.schemastore.org/sarif-2.1.0.json"')
    log = json.loads(text)
    assert errors(validator, log) == []
    report = json.loads(render(analysis, "json"))
    (run,) = log["runs"]
    assert run["tool"]["driver"]["name"] == "emblens" and run["tool"]["driver"]["version"] == report["version"]
    assert run["invocations"][0]["executionSuccessful"] is True
    rules = run["tool"]["driver"]["rules"]
    assert [r["id"] for r in rules] == list(dict.fromkeys(f["rule"] for f in report["findings"]))
    assert len(run["results"]) == len(report["findings"])
    for result, finding in zip(run["results"], report["findings"], strict=True):
        rule = rules[result["ruleIndex"]]
        assert result["ruleId"] == rule["id"] == finding["rule"]
        assert result["level"] == rule["defaultConfiguration"]["level"] == LEVELS[finding["severity"]]
        assert printable(finding["summary"]) in result["message"]["text"]
        assert rule["shortDescription"]["text"] == finding["title"]
        assert rule["help"]["text"].startswith(f"1. {finding['remedy_steps'][0]}")
        assert result["properties"]["role"] == finding["role"] and result["properties"]["count"] == finding["count"]
        assert result["properties"]["first_seen"] == finding["first_seen"]
        assert result["properties"]["explained_by"] == finding["explained_by"]
        # the first evidence line is where code scanning shows the alert, the others are related
        places = [*result["locations"], *result.get("relatedLocations", [])]
        assert len(result["locations"]) == 1 and len(places) == len(finding["evidence"])
        for place, e in zip(places, finding["evidence"], strict=True):
            assert label_of(run, place) == report["base"] + e["source"]
            region = place["physicalLocation"]["region"]
            assert region["startLine"] == e["line"] >= 1
            assert region["snippet"]["text"] == printable(e["text"])
    if name in SAMPLES:
        assert run["results"] and run["results"][0]["properties"]["role"] == "root_cause"
        assert run["results"][0]["message"]["text"].startswith("Root cause: ")


@pytest.mark.parametrize("name", [*SAMPLES, "healthy", "odd"])
def test_sarif_has_what_github_code_scanning_requires(name, analyses):
    log = json.loads(render(analyses[name], "sarif"))
    (run,) = log["runs"]
    for rule in run["tool"]["driver"]["rules"]:
        for text in (rule["id"], rule["name"], rule["shortDescription"]["text"], rule["fullDescription"]["text"],
                     rule["help"]["text"]):
            assert text.strip()
        assert len(rule["shortDescription"]["text"]) <= 1024 and len(rule["fullDescription"]["text"]) <= 1024
        assert rule["properties"]["tags"] == [rule["id"].split(".")[0]]
    for result in run["results"]:
        assert result["message"]["text"].strip()
        assert re.fullmatch(r"[0-9a-f]{32}", result["partialFingerprints"]["primaryLocationLineHash"])
        region = result["locations"][0]["physicalLocation"]["region"]
        assert result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] and region["startLine"] >= 1
    assert "security-severity" not in json.dumps(log)
    for uri in uris(log):
        assert URI_CHARS.fullmatch(uri), uri
        if not uri.startswith("file:///"):
            assert ":" not in uri.split("/")[0], uri    # a relative reference, not read as a scheme


def test_sarif_locations_in_an_archive_are_its_members(analyses):
    (run,) = json.loads(render(analyses["model-name-mismatch.zip"], "sarif"))["runs"]
    assert run["artifacts"][0] == {"location": {"uri": "samples/model-name-mismatch.zip", "uriBaseId": "%SRCROOT%"}}
    first = run["results"][0]["locations"][0]["physicalLocation"]
    assert first["artifactLocation"] == {"uri": "model-name-mismatch/vllm-server.log", "index": 2}
    assert run["artifacts"][2]["parentIndex"] == 0 and run["artifacts"][2]["roles"] == ["analysisTarget"]
    assert first["region"]["startLine"] == 100
    assert "%SRCROOT%" in run["originalUriBaseIds"] and "uri" not in run["originalUriBaseIds"]["%SRCROOT%"]


def test_sarif_names_skipped_inputs_and_escapes_odd_names(analyses, inputs):
    (run,) = json.loads(render(analyses["healthy"], "sarif"))["runs"]
    assert run["results"] == [] and run["tool"]["driver"]["rules"] == []
    (skipped,) = run["invocations"][0]["toolExecutionNotifications"]
    assert skipped["level"] == "warning" and skipped["message"]["text"].endswith("empty.log: empty (0 bytes)")
    assert label_of(run, skipped["locations"][0]) == f"{inputs['healthy']}/empty.log"
    (run,) = json.loads(render(analyses["odd"], "sarif"))["runs"]
    assert run["artifacts"][0]["location"]["uri"] == Path(inputs["odd"]).as_uri()
    assert run["artifacts"][0]["location"]["uri"].endswith("/client%2C%20run%20100%25.txt")


def test_no_secret_and_no_control_character_reaches_sarif_or_annotations(analyses):
    for name in (*SAMPLES, "odd"):
        for fmt in ("sarif", "github"):
            out = render(analyses[name], fmt)
            assert SECRET not in out and SECRET[:6] not in out, (name, fmt)
            assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069]", out), (name, fmt)
    log = render(analyses["odd"], "sarif")
    assert "\\\\x1b]0;pwned\\\\x07" in log           # shown, as the JSON report's text shows it


def test_fingerprints_stay_when_times_and_ids_change():
    a = fingerprint("model.not_found", "vllm.log", '(APIServer pid=3999075) INFO:     10.0.3.250:55941 - "POST /v1/embeddings HTTP/1.1" 404')
    b = fingerprint("model.not_found", "vllm.log", '(APIServer pid=12) INFO:     10.0.3.7:4431 - "POST /v1/embeddings HTTP/1.1" 404')
    assert a == b
    assert a != fingerprint("model.not_found", "other.log", "x") != fingerprint("auth.invalid_key", "vllm.log", "x")
    assert a != fingerprint("model.not_found", "vllm.log", "(APIServer pid=1) ERROR 11-20 09:14:02 model not found")


def test_github_annotations_of_a_sample_are_exact(analyses):
    assert render(analyses["model-name-mismatch.zip"], "github") == (
        "::error file=samples/model-name-mismatch.zip,"
        "title=The requested model is not served (model.not_found)::The request asked for model `qwen3-embedding-4b`; "
        "the server serves `Qwen3-Embedding-4B`. Did you mean `Qwen3-Embedding-4B`? (Seen at "
        "model-name-mismatch/vllm-server.log:100 in the archive.) Fix: Use the exact served name in "
        'the request: model="Qwen3-Embedding-4B" (GET /v1/models lists it).\n')
    lines = render(analyses["gpu-held-by-another-process.zip"], "github").splitlines()
    assert [line.split(" ", 1)[0] for line in lines] == ["::error"] * 3
    assert ",title=The GPU ran out of memory (gpu.oom)::" in lines[1]
    assert " Explained by gpu.memory_held, the root cause. Fix: " in lines[1]
    assert render(analyses["healthy"], "github") == NOTHING_FOUND == "::notice::emblens: no known failure found\n"


def test_github_escapes_properties_and_message_as_the_toolkit_does(analyses):
    evidence = Evidence("logs/a,b:c%.log", 7, "line text")
    finding = Finding(
        rule="net.refused", title="100% sure: a, b\nc", severity="info", confidence=0.9, count=1, first_seen=None,
        last_seen=None, summary="50% of calls\nfailed: \x1b]0;pwned\x07 done\r", remedy=["Retry, then: wait"],
        means="", evidence=[evidence], references=[], explains=[], sources=[evidence.source],
        role="symptom", explained_by="auth.invalid_key")
    bare = Finding(rule="x.y", title="T", severity="warning", confidence=0.5, count=1, first_seen=None, last_seen=None,
                   summary="S", remedy=[], means="M", evidence=[], references=[], explains=[], sources=[])
    out = to_github(SimpleNamespace(findings=[finding, bare]))
    assert out.split("\n") == [
        "::notice file=logs/a%2Cb%3Ac%25.log,line=7,title=100%25 sure%3A a%2C b%0Ac (net.refused)::50%25 of calls%0A"
        "failed: \\x1b]0;pwned\\x07 done\\x0d Explained by auth.invalid_key, the root cause. Fix: Retry, then: wait",
        "::warning title=T (x.y)::S",
        ""]
    # the same findings make valid SARIF: odd names become escaped URIs, control characters text
    log = json.loads(to_sarif(SimpleNamespace(findings=[finding, bare], inputs=[], skipped=[])))
    assert errors(validators.validator_for(SCHEMA)(SCHEMA), log) == []
    (run,) = log["runs"]
    assert run["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "logs/a%2Cb%3Ac%25.log"
    assert run["results"][0]["level"] == "note" and "locations" not in run["results"][1]
    assert run["tool"]["driver"]["rules"][1]["fullDescription"]["text"] == "M"


@CLI
def test_cli_writes_sarif_and_annotations(analyses, inputs, validator):
    runner = CliRunner()
    bundle = str(inputs["tmp"] / "model-name-mismatch.zip")
    out = inputs["tmp"] / "report.sarif"
    r = runner.invoke(app, ["analyze", bundle, "-o", str(out), "-o", str(inputs["tmp"] / "report.json")])
    assert r.exit_code == 0, r.output
    log = json.loads(out.read_text())
    assert errors(validator, log) == []
    report = json.loads((inputs["tmp"] / "report.json").read_text())
    (run,) = log["runs"]
    assert [x["ruleId"] for x in run["results"]] == [f["rule"] for f in report["findings"]] == ["model.not_found"]
    assert label_of(run, run["results"][0]["locations"][0]) == report["base"] + report["findings"][0]["evidence"][0]["source"]
    r = runner.invoke(app, ["analyze", inputs["healthy"], "--format", "sarif"])
    assert r.exit_code == 0 and r.stdout == render(analyses["healthy"], "sarif")
    r = runner.invoke(app, ["analyze", inputs["healthy"], "--format", "github"])
    assert r.exit_code == 0 and r.stdout == NOTHING_FOUND
