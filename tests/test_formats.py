"""A format is one module: its attributes say what the rest of emblens needs to know, its samples
are lines of the real program that its patterns must read, and the messages any line may carry
are read once into columns that the combiners use without reading text again."""

from __future__ import annotations

import re

import polars as pl
import pytest

from emblens import analyze, load_events
from emblens.formats import messages, registry
from emblens.ingest.sniff import sniff


@pytest.mark.parametrize("fmt", [f for f in registry.formats() if f.samples], ids=lambda f: f.name)
def test_every_sample_line_is_a_well_formed_line_of_its_format_and_sniffs_as_it(fmt):
    for line in fmt.samples:
        assert re.search(fmt.line_pattern, line), f"{fmt.name}: its line_pattern does not read {line!r}"
    picked, _ = sniff(("\n".join(fmt.samples) + "\n").encode())
    assert picked is not None and picked.name == fmt.name


def test_the_registry_answers_for_every_format():
    assert set(registry.servers()) >= {"vllm", "sglang"}
    assert "gpu" in registry.local_time() and "capture" not in registry.local_time()
    assert set(registry.origins()) >= {"vllm", "sglang", "client", "generic", "capture", "gpu"}
    for fmt in registry.formats():
        assert fmt.origin in registry.origins() and all(o in registry.origins() for o in fmt.origins)
        if fmt.clock:
            assert fmt.ok_line, f"{fmt.name} counts its routine lines: it says how its OK lines end"


def test_pytorch_and_vllm_messages_become_columns_wherever_they_stand(tmp_path):
    log = tmp_path / "worker.log"
    log.write_text(
        "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of 23.58 GiB "
        "of which 1.06 GiB is free. Process 180233 has 13.33 GiB memory in use. Including non-PyTorch memory, this process "
        "has 9.17 GiB memory in use. Of the allocated memory 8.80 GiB is allocated by PyTorch, and 112.31 MiB is reserved "
        "by PyTorch but unallocated.\n"
        "ERROR 11-20 09:14:40 [core.py:700] ValueError: To serve at least one request with the models's max seq len "
        "(32768), (4.00 GiB KV cache is needed, which is larger than the available KV cache memory (2.50 GiB). Based on the "
        "available memory, the estimated maximum model length is 20480.\n"
        "docker run --gpus all -p 8000:8000 vllm/vllm-openai --model Qwen/Qwen3-Embedding-4B\n",
        encoding="utf-8")
    events, _, _ = load_events([log])
    oom = events.filter(pl.col("torch_alloc").is_not_null()).row(0, named=True)
    assert (oom["torch_alloc"], oom["torch_gpu"], oom["torch_total"], oom["torch_free"], oom["torch_reserved"],
            oom["torch_this"]) == ("2.00 GiB", 0, "23.58 GiB", "1.06 GiB", "112.31 MiB", "9.17 GiB")
    assert messages.procs(oom["torch_procs"]) == [(180233, 13.33 * 1024)]
    kv = events.filter(pl.col("vllm_kv_need_gib").is_not_null()).row(0, named=True)
    assert (kv["vllm_kv_len"], kv["vllm_kv_need_gib"], kv["vllm_kv_avail_gib"], kv["vllm_kv_est_len"]) == (32768, 4.0, 2.5, 20480)
    docker = events.filter(pl.col("mentions_container"))
    assert docker.height == 1 and docker["mentions_server"][0] == "vllm"
    facts = analyze([log]).facts.as_values()
    assert facts["oom_alloc_mib"] == 2048 and facts["gpu_other_pid"] == 180233 and facts["kv_est_len"] == 20480
    assert facts["container_seen"] is True and facts["server_command"] == "vllm"


def test_a_pasted_command_gives_its_settings_and_its_proxy_variables_as_rows(tmp_path):
    paste = tmp_path / "issue.md"
    paste.write_text(
        "I start the server like this:\n\n```\ndocker run --gpus all -e HTTPS_PROXY=http://alice:s3cretpw@proxy.corp:3128 \\\n"
        "  -e NO_PROXY=localhost vllm/vllm-openai --model BAAI/bge-m3 --gpu-memory-utilization 0.6 \\\n"
        "  --tensor-parallel-size 2 --trust-remote-code --host 0.0.0.0\n```\n\nand the call fails with a 502.\n",
        encoding="utf-8")
    events, _, _ = load_events([paste])
    command = events.filter(pl.col("fact") == "command").row(0, named=True)
    assert (command["command_memory_share"], command["command_tensor_parallel"], command["command_trust_remote_code"],
            command["command_host"]) == (0.6, 2, True, "0.0.0.0")
    env = events.filter(pl.col("fact") == "env").select("env_name", "env_value").rows()
    assert ("HTTPS_PROXY", "http://proxy.corp:3128") in env and ("NO_PROXY", "localhost") in env
    assert "s3cretpw" not in events.write_ndjson()
    facts = analyze([paste]).facts.as_values()
    assert facts["proxy_env"] == "HTTPS_PROXY=http://proxy.corp:3128" and facts["no_proxy"] == "localhost"
    assert facts["cmd_memory_share"] == 0.6 and facts["cmd_tensor_parallel"] == 2 and facts["cmd_trust_remote_code"] is True


def test_a_stack_frame_under_an_images_workdir_puts_the_client_in_a_container(tmp_path):
    # Node's and Python's frames under /app/ (an image's WORKDIR); the base URL ends where Chinese text starts
    paste = tmp_path / "issue.md"
    paste.write_text(
        "配置文件里写的是 OPENAI_BASE_URL=http://127.0.0.1:4000/v1，令牌也填了，但是 fastgpt 对话一直失败。\n"
        '[ERROR] 2024-03-02 10:11:12 sse error: Connection error.: {"stack":"Error: Connection error.\\n    at tx.makeRequest '
        '(/app/projects/app/.next/server/chunks/6031.js:23:79572)\\n    at process.processTicksAndRejections '
        '(node:internal/process/task_queues:95:5)"}\n', encoding="utf-8")
    events, _, _ = load_events([paste])
    assert events.filter(pl.col("mentions_container")).height == 1
    found = analyze([paste]).findings
    assert found and found[0].rule == "net.wrong_host_docker"
    assert "http://127.0.0.1:4000" in found[0].summary and "令牌" not in found[0].summary
    # on the host (no frame under an image's directory, no word of Docker) the same failure is not put in a container
    host = tmp_path / "host.md"
    host.write_text("OPENAI_BASE_URL=http://127.0.0.1:4000/v1\nError: Connection error.\n"
                    "    at makeRequest (/home/ana/chat/node_modules/openai/core.js:320:19)\n", encoding="utf-8")
    assert all(f.rule != "net.wrong_host_docker" for f in analyze([host]).findings)
