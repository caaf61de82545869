"""The JSON report as typed models: the source of `report.schema.json` (generated, checked in, and
compared with these models by the tests). Keys may be added, never renamed; a change to the
shape raises SCHEMA_VERSION.

    python -m emblens.report.models > src/emblens/report/report.schema.json
"""

from __future__ import annotations

import json
from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field

from emblens.report.jsonreport import SCHEMA_VERSION


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Input(_Model):
    source: str = Field(description="The member's path, as given (archive:member for archives).")
    kind: str = Field(description="What it was read as: vllm-log, sglang-log, python-traceback, paste, har, ...")
    events: int
    unparsed: int
    lines: int
    note: Optional[str] = Field(description="Why it was read only in part (cut lines, a break, a limit), or null.")
    collected_from: Optional[str] = Field(
        description="In a bundle made by `emblens collect`: the command or file it came from (its manifest); else null.")


class Skipped(_Model):
    source: str
    reason: str


class Evidence(_Model):
    source: str
    line: int
    text: str


class Requests(_Model):
    matched: int = Field(description="Requests (access lines, captured exchanges) the finding matched.")
    seen: int = Field(description="All the requests seen in the finding's sources.")


class PathStep(_Model):
    side: Literal["client", "gateway", "server"] = Field(description="Who saw the request there.")
    origin: str = Field(description="The program that wrote it: client, vllm, sglang, a gateway's origin, generic.")
    source: str
    line: int
    time: Optional[str] = Field(description="ISO time in UTC (ends in Z), or null.")
    text: str


class RequestPath(_Model):
    request: str = Field(description="The request's key: the trace id its spans share, else its request id.")
    lines: int = Field(description="The lines found of that request across the inputs (steps holds the first 12).")
    steps: list[PathStep] = Field(description="Client first, then gateways and proxies, then the server; each by time.")


class Finding(_Model):
    rule: str = Field(description="A catalogue id (CATALOGUE.md), e.g. model.not_found.")
    title: str
    severity: Literal["error", "warning", "info"]
    confidence: float
    role: Literal["root_cause", "symptom", "finding"] = Field(
        description="root_cause for the top finding whenever there is one; symptom when another finding explains it.")
    explained_by: Optional[str]
    cause: Optional[str] = Field(description="The cause file that worded the finding, or null.")
    count: int
    first_seen: Optional[str] = Field(description="ISO time in UTC (ends in Z), or null when the evidence carries no full time.")
    last_seen: Optional[str]
    summary: str
    remedy: str
    remedy_steps: list[str]
    requests: Optional[Requests] = Field(
        description="When the finding matched requests: how many, of all the requests its sources saw; else null.")
    evidence: list[Evidence]
    request_path: Optional[RequestPath] = Field(
        description="For a finding that is not a symptom: the request it rests on, followed across the sources that "
                    "saw it (the same trace id or request id), when two sources or more did; else null.")
    references: list[str]


class Lead(_Model):
    what: str
    message: str
    source: str
    line: int
    text: str


class Unexplained(_Model):
    template: str
    count: int
    example: Evidence


class Process(_Model):
    pid: Optional[int]
    name: Optional[str]
    used_mib: Optional[float]


class Gpu(_Model):
    source: str
    line: int
    index: Optional[int]
    name: Optional[str]
    used_mib: Optional[float]
    total_mib: Optional[float]
    free_mib: Optional[float]
    ts: Optional[str]
    mig: Optional[str]
    processes: list[Process]


class Facts(_Model):
    served_models: list[str]
    listen_ports: list[int]
    api_key_required: Optional[bool]
    versions: dict[str, str]
    ready: bool
    gpus: list[Gpu]


class TimelineRow(_Model):
    ts: Optional[str] = Field(description="ISO time in UTC, or null when unknown.")
    stamp: Optional[str] = Field(description="The time as written, when ts is null (a stamp with no year).")
    source: str
    line: int
    rule: Optional[str]
    text: str


class Traffic(_Model):
    requests: int = Field(description="Requests seen: server access lines (all of them, counted) and captured exchanges.")
    by_status: dict[str, int] = Field(description="Requests by HTTP status.")
    kv_cache_max_pct: Optional[float] = Field(description="The highest KV-cache usage the metrics lines reported.")


class ProbeCheck(_Model):
    id: str = Field(description="reach.dns, reach.proxy, reach.tcp, reach.tls, health, models, auth.required, auth.key, "
                                "auth.scheme, base_url, model.name, call.embeddings, call.chat, embed.dimensions, "
                                "embed.size, embed.prefix, latency, limit (the probe stopped at its request or time budget)")
    title: str
    outcome: Literal["pass", "warn", "fail", "skip"]
    detail: str


class Probe(_Model):
    url: str
    model: Optional[str]
    started: str = Field(description="ISO time in UTC.")
    requests: Optional[int] = Field(description="Requests the probe sent.")
    checks: list[ProbeCheck]


class Collected(_Model):
    file: str = Field(description="The member of the bundle.")
    from_: str = Field(alias="from", description="The command run or the file read.")


class NotCollected(_Model):
    what: str
    why: str = Field(description="Why not: not found, exit status, timed out, permission.")


class Collection(_Model):
    created: str
    host: str
    collected: list[Collected]
    not_collected: list[NotCollected]
    versions: dict[str, str]


class Report(_Model):
    """emblens's JSON report (`emblens analyze --format json`)."""

    schema_version: str = Field(description="The version of this shape; separate from the tool's version.")
    version: str = Field(description="The emblens release that wrote the report.")
    base: str = Field(description="The path every source shares (a folder or 'bundle.zip:'); sources below are relative to it.")
    inputs: list[Input]
    skipped: list[Skipped]
    findings: list[Finding] = Field(description="findings[0] is the most likely root cause.")
    lead: Optional[Lead] = Field(description="Where to start when no rule fired, or null.")
    unexplained: list[Unexplained]
    facts: Facts
    timeline: list[TimelineRow]
    timeline_notes: list[str] = Field(description="Sources far apart in time, clocks offset between sources.")
    traffic: Traffic
    masked: dict[str, int] = Field(description="Secrets masked while reading, by kind; never values.")
    probe: Optional[Probe] = Field(default=None, description="A bundle made by `emblens probe`: each check and its outcome; else null.")
    collection: Optional[Collection] = Field(
        default=None, description="A bundle made by `emblens collect`: what its manifest says was collected and not; else null.")


def schema() -> dict:
    out = Report.model_json_schema()
    out["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    out["$id"] = f"https://emblens.invalid/report-{SCHEMA_VERSION}.schema.json"
    return out


if __name__ == "__main__":
    print(json.dumps(schema(), indent=2))
