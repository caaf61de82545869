"""GPU evidence: every nvidia-smi form parses (multi-GPU, MIG, loops), broken dumps never crash,
and the out-of-memory causes (rules/gpu/oom_*.yaml, each checked by its fixtures and their
.expect.yaml) can be extended from a user rule folder without any Python."""

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from emblens.diagnose import analyze, load_events
from emblens.frontends.cli import app

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data" / "nvidia-smi"


def _gpus(name: str):
    events, inputs, skipped = load_events([str(DATA / name)], keep_all=False)
    assert not skipped and inputs[0].kind == "nvidia-smi", (inputs, skipped)
    gpu = events.filter((events["kind"] == "gpu") & events["gpu_proc_pid"].is_null())
    procs = events.filter(events["gpu_proc_pid"].is_not_null())
    versions = dict(events.filter(events["kind"] == "fact").select("software", "software_version").rows())
    return gpu, procs, versions, inputs[0]


# (file, [(index, name, used, total)] of the last snapshot, [(pid, MiB)], snapshots, driver)
FORMS = [
    ("table-535.txt", [(0, "NVIDIA H100 80GB HBM3", 72459, 81559), (1, "NVIDIA H100 80GB HBM3", 4, 81559)],
     [(2443, 126), (180233, 72320)], 1, "550.135"),
    ("table-525.txt", [(0, "NVIDIA A100-SXM...", 39000, 40960)], [(311, 38900)], 1, "525.85.12"),
    ("table-loop.txt", [(0, "NVIDIA H100 80GB HBM3", 3000, 81559)], [], 3, "550.135"),
    ("q-2gpu.txt", [(0, "NVIDIA H100 80GB HBM3", 22377, 81920), (1, "NVIDIA H100 80GB HBM3", 0, 81920)],
     [(280058, 22374)], 1, "550.135"),
    ("q-mig.txt", [(0, "NVIDIA A100-SXM4-40GB", 249, 40960)], [], 1, "550.135"),
    ("q-x.xml", [(0, "NVIDIA L4", 21000, 23034)], [(77, 20990)], 1, "550.135"),
    ("q-x-loop.xml", [(0, "NVIDIA L4", 1500, 23034)], [], 2, "550.135"),
    ("query.csv", [(0, "NVIDIA L4", 21000, 23034), (1, "NVIDIA L4", 5, 23034)], [], 1, None),
    ("query-timestamp.csv", [(0, "NVIDIA L4", 21010, 23034)], [], 3, None),
    ("query-noheader.csv", [(0, "NVIDIA L4", 21000, 23034)], [], 1, None),
    ("query-nounits.csv", [(0, "NVIDIA L4", 21000, 23034)], [], 1, None),
    ("query-noheader-nounits.csv", [(0, "NVIDIA L4", 21000, 23034)], [], 1, None),
]


@pytest.mark.parametrize("name, last, procs, snapshots, driver", FORMS, ids=[f[0] for f in FORMS])
def test_every_nvidia_smi_form_parses(name, last, procs, snapshots, driver):
    gpu, proc, versions, info = _gpus(name)
    assert gpu["gpu_snapshot"].max() == snapshots
    final = gpu.filter(gpu["gpu_snapshot"] == snapshots).sort("gpu_index")
    assert [(r["gpu_index"], r["gpu_name"], r["gpu_mem_used_mib"], r["gpu_mem_total_mib"]) for r in final.iter_rows(named=True)] == last
    assert sorted((r["gpu_proc_pid"], r["gpu_proc_mem_mib"]) for r in proc.iter_rows(named=True)) == procs
    assert versions.get("nvidia_driver") == driver
    assert info.unparsed == 0, f"{info.unparsed} unparsed lines"


def test_mig_mode_and_compute_apps():
    gpu, _, _, _ = _gpus("q-mig.txt")
    assert gpu.row(0, named=True)["gpu_mig"] == "Enabled"
    _, procs, _, _ = _gpus("compute-apps.csv")
    assert procs.row(0, named=True)["gpu_proc_name"] == "/usr/bin/python3"


@pytest.mark.parametrize("name", ["truncated.xml", "truncated-table.txt"])
def test_truncated_dumps_are_unparsed_lines_not_crashes(name):
    result = CliRunner().invoke(app, ["analyze", str(DATA / name), "-f", "json"])
    assert result.exit_code == 0, result.output
    _, _, _, info = _gpus(name)
    assert info.unparsed > 0


def test_a_process_holding_the_gpu_is_the_root_cause_of_the_oom():
    a = analyze([str(REPO / "rules" / "gpu" / "memory_held.pos-training-job-nvidia-smi")])
    held, oom = a.findings[0], next(f for f in a.findings if f.rule == "gpu.oom")
    assert held.rule == "gpu.memory_held" and held.role == "root_cause"
    assert any(e.source.endswith("nvidia-smi.txt") and "180233" in e.text for e in held.evidence)
    # the OOM keeps its own analysis (the cause and the lever) as a symptom
    assert oom.explained_by == "gpu.memory_held" and oom.cause == "other_process"
    assert "Stop pid 180233" in oom.remedy[0]


def test_driver_mismatch_is_the_root_cause_with_nvidia_smi_figures():
    a = analyze([str(REPO / "rules" / "engine" / "cuda_driver_too_old.pos-nvidia-smi")])
    f = a.findings[0]
    assert f.rule == "engine.cuda_driver_too_old" and f.role == "root_cause"
    assert "CUDA driver version is insufficient" in f.summary and "driver 470.82.01" in f.summary
    assert any(e.source.endswith("nvidia-smi.txt") for e in f.evidence)
    assert [g.rule for g in a.findings if g.explained_by == f.rule] == ["engine.startup_failed"]
    assert "gpu.oom" not in [g.rule for g in a.findings]


def test_gpu_table_in_text_and_markdown_reports():
    path = str(REPO / "rules" / "gpu" / "memory_held.pos-training-job-nvidia-smi")
    text = CliRunner().invoke(app, ["analyze", path]).stdout
    assert "GPUs (last nvidia-smi snapshot)" in text and "13,720 / 24,150 MiB used (57%)" in text
    md = CliRunner().invoke(app, ["analyze", path, "-f", "markdown"]).stdout
    assert "| GPU 0 NVIDIA L4 | 13,720 / 24,150 MiB used (57%)" in md
    assert "pid 180233 /opt/conda/envs/train/bin/python 13,650 MiB" in md


def test_memory_series_goes_into_the_timeline():
    a = analyze([str(DATA / "query-timestamp.csv"), str(REPO / "rules" / "gpu" / "oom_memory_fraction.pos-vllm0.11.log")])
    from emblens.report.view import timeline

    points = [r["text"] for r in timeline(a) if r["text"].startswith("GPU 0 memory")]
    assert points == ["GPU 0 memory 21,000 / 23,034 MiB", "GPU 0 memory 21,005 / 23,034 MiB", "GPU 0 memory 21,010 / 23,034 MiB"]


# The same failure as CUDA prints it and as ROCm's PyTorch prints it (the figures are worded
# alike; real ROCm output also says "0 bytes"). The built-in rules know only CUDA's wording; the
# harvested PyTorch messages know the rest of the line.
OOM_LINE = ("(EngineCore_DP0 pid=3999312) ERROR 11-20 09:14:15 [gpu_model_runner.py:2731] {kind} out of memory. Tried to "
            "allocate 2.00 GiB. GPU 0 has a total capacity of 23.57 GiB of which 1.21 GiB is free. Process 3999312 has "
            "22.35 GiB memory in use. Of the allocated memory 15.62 GiB is allocated by PyTorch, and 6.35 GiB is reserved "
            "by PyTorch but unallocated.\n")
HIP_SIGNAL = """\
id: gpu.oom
signal: hip
# ROCm builds of PyTorch say HIP where CUDA builds say CUDA
match: {kind: [log, exception, unparsed], message: {regex: "(?P<cause>HIP out of memory)"}}
"""


def _oom_log(tmp_path, kind):
    log = (REPO / "rules/gpu/oom_fragmentation.pos-vllm0.11.log").read_text().splitlines(keepends=True)[:5]
    path = tmp_path / f"{kind.lower()}.log"
    path.write_text("".join(log) + OOM_LINE.format(kind=kind))
    return path


def test_a_user_signal_gives_hip_the_same_cause_analysis_as_cuda(tmp_path):
    cuda = analyze([str(_oom_log(tmp_path, "CUDA"))])
    hip_log = _oom_log(tmp_path, "HIP")
    # no rule knows HIP's wording, but PyTorch's allocator message that follows it is a harvested template
    builtin = analyze([str(hip_log)]).findings
    assert [f.rule for f in builtin][:1] == ["gpu.oom"] and builtin[0].cause == "fragmentation"
    rules = tmp_path / "my-rules"
    rules.mkdir()
    (rules / "hip_oom.yaml").write_text(HIP_SIGNAL)
    hip = analyze([str(hip_log)], rule_dirs=[rules])
    c, h = cuda.findings[0], hip.findings[0]
    assert (c.rule, c.cause) == (h.rule, h.cause) == ("gpu.oom", "fragmentation")
    assert h.summary.startswith("GPU memory ran out: HIP out of memory (tried to allocate 2.00 GiB")
    # the same words, each naming its own file where it quotes a value ("The evidence names: …")
    assert c.summary.split("Cause: ")[1].replace("cuda.log", "LOG") == h.summary.split("Cause: ")[1].replace("hip.log", "LOG")
    assert c.remedy == h.remedy
    figures = ("oom_alloc_mib", "oom_total_mib", "oom_free_mib", "oom_reserved_mib", "oom_gpu")
    assert [cuda.facts.figures[k] for k in figures] == [hip.facts.figures[k] for k in figures] == [2048.0, 24135.68, 1239.04, 6502.4, 0]


def test_rocm_byte_sizes_are_figures():
    from emblens.formats.messages import mib

    assert mib("0 bytes") == 0.0 and mib("512.00 MiB") == 512.0 and mib("1.50 GiB") == 1536.0


def test_no_wording_lives_in_python():
    """Findings and remedies are worded in rules/, never in the package."""
    src = REPO / "src" / "emblens"
    # the parsers must know the flag's spelling (a pasted start command); advice about it is wording
    advice = re.compile(r"(?i)(?:lower|raise|set|increase|decrease|reduce)\s+(?:the\s+|your\s+)?-*gpu-memory-utilization")
    for path in src.rglob("*.py"):
        text = path.read_text()
        for word in ("expandable_segments", "Stop pid"):
            assert word not in text, f"{path}: {word}"
        assert not advice.search(text), f"{path}: {advice.search(text).group()}"
