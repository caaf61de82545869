"""Property-based tests: arbitrary bytes and mutated real samples, read by every adapter and by the
bundle reader, never raise, stay within a time budget, and never cost the good members beside a
bad one. `bench/fuzz.py` runs the same properties for longer, outside CI."""

from __future__ import annotations

import io
import os
import time
import zipfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emblens import analyze
from emblens.diagnose import read
from emblens.errors import InputError
from emblens.rules.loader import load_rules
from emblens.run import Run

REPO = Path(__file__).resolve().parents[1]
RULES = load_rules()
# one real sample per adapter (what each was made from: samples/README.md and the fixtures' notes)
SEEDS = {
    "vllm-log": REPO / "samples/model-name-mismatch/vllm-server.log",
    "sglang-log": REPO / "rules/model/chat_template_missing.pos-sglang-base-model.log",
    "python-traceback": REPO / "samples/model-name-mismatch/client-traceback.txt",
    "nvidia-smi-table": REPO / "samples/gpu-held-by-another-process/nvidia-smi.txt",
    "nvidia-smi-q": REPO / "tests/data/nvidia-smi/q-2gpu.txt",
    "nvidia-smi-xml": REPO / "tests/data/nvidia-smi/q-x.xml",
    "nvidia-smi-csv": REPO / "tests/data/nvidia-smi/query.csv",
    "curl-verbose": REPO / "rules/auth/header_scheme.pos-curl-v.txt",
    "har": REPO / "rules/auth/invalid_key.pos-openai1.109.har",
    "mitmproxy-flows": REPO / "rules/auth/invalid_key.pos-openai1.109.flow",
    "paste": REPO / "rules/auth/missing_key.pos-curl-unauthorized-body.md",
}
GOOD = SEEDS["python-traceback"].read_bytes()
BUDGET_S = 20          # per example, far above what any takes; a quadratic path at these sizes exceeds it

# CI runs a fixed handful; bench/fuzz.py sets EMBLENS_FUZZ_EXAMPLES for a long random run
LONG = os.environ.get("EMBLENS_FUZZ_EXAMPLES")
PROPS = settings(max_examples=int(LONG or 15), deadline=None, derandomize=not LONG, database=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


@st.composite
def mutated(draw, seed: bytes) -> bytes:
    """A real sample with a few edits: bytes flipped, ranges cut, duplicated or replaced with
    hostile runs (long lines, nesting, NULs, escapes), or truncated."""
    data = bytearray(seed)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "cut", "dup", "insert", "truncate"]))
        at = draw(st.integers(0, max(0, len(data) - 1)))
        if op == "flip" and data:
            data[at] ^= draw(st.integers(1, 255))
        elif op == "cut":
            del data[at: at + draw(st.integers(1, 4096))]
        elif op == "dup":
            piece = bytes(data[at: at + draw(st.integers(1, 2048))])
            data[at:at] = piece * draw(st.integers(1, 50))
        elif op == "insert":
            run = draw(st.sampled_from([b" ", b"[", b"{", b"|", b":", b"\x00", b"\x1b]0;", b"<?xml", b"a=", b"\n", b"\xff"]))
            data[at:at] = run * draw(st.integers(1, 30_000))
        elif op == "truncate":
            del data[at:]
    return bytes(data)


def _read(tmp_path: Path, name: str, data: bytes):
    path = tmp_path / name
    path.write_bytes(data)
    started = time.monotonic()
    reading = read([str(path)], Run(ruleset=RULES))
    events, inputs, skipped = reading.events, reading.inputs, reading.skipped
    assert time.monotonic() - started < BUDGET_S
    return events, inputs, skipped


@PROPS
@given(data=st.binary(max_size=20_000))
def test_arbitrary_bytes_never_raise(tmp_path_factory, data):
    try:
        _read(tmp_path_factory.mktemp("b"), "blob", data)
    except InputError as e:     # an archive's magic and then garbage: the CLI's one-line error and exit 2
        assert "not a readable" in str(e)


def _adapter_property(kind: str):
    seed = SEEDS[kind].read_bytes()

    @PROPS
    @given(data=mutated(seed))
    def prop(tmp_path_factory, data):
        _events, inputs, skipped = _read(tmp_path_factory.mktemp("m"), SEEDS[kind].name, data)
        assert len(inputs) + len(skipped) == 1     # read, or skipped with a reason

    prop.__name__ = f"test_mutated_{kind.replace('-', '_')}_never_raises"
    return prop


for _kind in SEEDS:
    globals()[f"test_mutated_{_kind.replace('-', '_')}_never_raises"] = _adapter_property(_kind)


@PROPS
@given(kind=st.sampled_from(sorted(SEEDS)), data=st.data())
def test_a_bad_member_never_costs_the_good_one(tmp_path_factory, kind, data):
    bad = data.draw(mutated(SEEDS[kind].read_bytes()))
    path = tmp_path_factory.mktemp("z") / "bundle.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(f"bad/{SEEDS[kind].name}", bad)
        zf.writestr("good/client-traceback.txt", GOOD)
    a = analyze([str(path)])
    assert any(i.source.endswith("good/client-traceback.txt") for i in a.inputs)
    assert "model.not_found" in [f.rule for f in a.findings]


@PROPS
@given(data=st.data())
def test_a_damaged_archive_is_an_input_error_or_a_partial_read(tmp_path_factory, data):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("a/client.txt", GOOD)
        zf.writestr("b/vllm.log", SEEDS["vllm-log"].read_bytes())
    damaged = data.draw(mutated(buf.getvalue()))
    path = tmp_path_factory.mktemp("d") / "bundle.zip"
    path.write_bytes(damaged)
    try:
        _read(path.parent, path.name, damaged)
    except InputError:
        pass      # the CLI's one-line error and exit 2
