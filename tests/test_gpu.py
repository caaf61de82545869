"""GPU evidence: every nvidia-smi form parses (multi-GPU, MIG, loops), broken dumps never crash,
and each out-of-memory cause is named on its fixture with its figures and the lever to pull."""

from pathlib import Path

import pytest
from typer.testing import CliRunner

from emblens.analysis import analyze, load_events
from emblens.cli import app

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


# (fixture under rules/gpu, cause, phrases the message must hold, phrase the first remedy step must hold)
CAUSES = [
    ("oom.pos-other-process-nvidia-smi", "other_process",
     ["pid 180233 (/opt/conda/envs/train/bin/python) uses 13,650 MiB of 24,150 MiB"], "Stop pid 180233"),
    ("oom.pos-torch-vllm0.11.log", "other_process", ["pid 2113 uses 14,541 MiB"], "Stop pid 2113"),
    ("oom.pos-memory-fraction-vllm0.11.log", "memory_fraction",
     ["only 10.21 of 23.57 GiB were free", "--gpu-memory-utilization 0.9 asks for 21.21 GiB"],
     "Lower --gpu-memory-utilization to 0.41"),
    ("oom.pos-kv-cache-vllm0.11.log", "kv_cache", ["max_model_len 32768", "needs 4.50 GiB", "only 2.13 GiB"],
     "--max-model-len 15504"),
    ("oom.pos-fragmentation-vllm0.11.log", "fragmentation", ["6.35 GiB reserved but unallocated", "2.00 GiB"],
     "PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True"),
    ("oom.pos-weights-vllm0.11.log", "weights", ["about 59.6 GiB", "23.6 GiB"], "--tensor-parallel-size 4"),
    ("oom.pos-undecided-notebook.txt", "undecided", ["add `nvidia-smi`"], "lower --gpu-memory-utilization"),
]


@pytest.mark.parametrize("fixture, cause, phrases, lever", CAUSES, ids=[c[1] + ":" + c[0] for c in CAUSES])
def test_each_oom_cause_is_named_with_numbers_and_lever(fixture, cause, phrases, lever):
    a = analyze([str(REPO / "rules" / "gpu" / fixture)])
    f = a.findings[0]
    assert f.rule == "gpu.oom"
    oom = a.events.filter(a.events["oom_cause"].is_not_null())
    assert set(oom["oom_cause"].to_list()) == {cause}
    for p in phrases:
        assert p in f.summary, f.summary
    assert lever in f.remedy[0], f.remedy[0]


def test_other_process_from_nvidia_smi_is_the_root_cause_with_its_row_as_evidence():
    a = analyze([str(REPO / "rules" / "gpu" / "oom.pos-other-process-nvidia-smi")])
    f = a.findings[0]
    assert f.role == "root_cause"
    assert any(e.source.endswith("nvidia-smi.txt") and "180233" in e.text for e in f.evidence)
    assert [g.rule for g in a.findings if g.explained_by == "gpu.oom"] == ["engine.startup_failed"]


def test_driver_mismatch_is_the_cause_of_the_startup_failure():
    a = analyze([str(REPO / "rules" / "engine" / "startup_failed.pos-driver-nvidia-smi")])
    f = a.findings[0]
    assert f.rule == "engine.startup_failed" and f.role in ("root_cause", "finding")
    assert "CUDA driver version is insufficient" in f.summary and "driver 470.82.01" in f.summary
    assert "gpu.oom" not in [g.rule for g in a.findings]


def test_gpu_table_in_text_and_markdown_reports():
    path = str(REPO / "rules" / "gpu" / "oom.pos-other-process-nvidia-smi")
    text = CliRunner().invoke(app, ["analyze", path]).stdout
    assert "GPUs (last nvidia-smi snapshot)" in text and "13,720 / 24,150 MiB used (57%)" in text
    md = CliRunner().invoke(app, ["analyze", path, "-f", "markdown"]).stdout
    assert "| GPU 0 NVIDIA L4 | 13,720 / 24,150 MiB used (57%)" in md
    assert "pid 180233 /opt/conda/envs/train/bin/python 13,650 MiB" in md


def test_memory_series_goes_into_the_timeline(tmp_path):
    a = analyze([str(DATA / "query-timestamp.csv"), str(REPO / "rules" / "gpu" / "oom.pos-memory-fraction-vllm0.11.log")])
    from emblens.report.jsonreport import timeline

    points = [r["text"] for r in timeline(a) if r["text"].startswith("GPU 0 memory")]
    assert points == ["GPU 0 memory 21,000 / 23,034 MiB", "GPU 0 memory 21,005 / 23,034 MiB", "GPU 0 memory 21,010 / 23,034 MiB"]
