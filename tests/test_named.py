"""What a finding concerns, named from the evidence (emblens.findings.named): the model, the
version, the address, the sizes that its id turns on, when the line the rule matched does not say
them, each with its file and line."""

from __future__ import annotations

import pytest

from emblens.diagnose import analyze
from emblens.findings.named import _quoted


def _top(tmp_path, name: str, text: str):
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    a = analyze([str(p)])
    assert a.findings, "no finding"
    return a.findings[0]


def test_the_model_a_paste_runs_is_named_beside_the_one_the_server_refused(tmp_path):
    f = _top(tmp_path, "issue.md",
             "I started Ollama locally and ran qwen2:7b, it answers in the terminal.\n\n"
             "```\nopenai.NotFoundError: Error code: 404 - {'error': {'message': 'model \"qwen:7b\" not found, "
             "try pulling it first', 'type': 'api_error', 'param': None, 'code': None}}\n```\n")
    assert f.rule == "model.not_found"
    assert "The evidence names: model `qwen2:7b` (issue.md:1)" in f.summary


def test_every_setting_of_a_line_is_read_and_a_figure_is_quoted_only_as_a_whole_word(tmp_path):
    f = _top(tmp_path, "nano.log",
             "2026-05-30T08:47:44+07:00 WRN chunk truncated before embedding (exceeds context limit) "
             "component=embed-queue original_len=4431 truncated_len=4000\n"
             "2026-05-30T08:47:44+07:00 ERR embedding failed error=\"ollama: unexpected status 400: "
             "{\\\"error\\\":\\\"the input length exceeds the context length\\\"}\" component=embed-queue\n")
    assert f.rule == "embed.input_too_long"
    # named whole, as a person changes them
    assert "token figure `original_len=4431` (nano.log:1), `truncated_len=4000` (nano.log:1)" in f.summary
    assert _quoted("4000", "limit 4000 tokens") and not _quoted("4000", "limit 40001 tokens")
    assert not _quoted("qwen2:7b", "qwen2:7b-instruct") and _quoted("qwen2:7b", "ran `qwen2:7b`.")


def test_a_value_the_finding_already_quotes_is_not_named_twice(tmp_path):
    f = _top(tmp_path, "client.txt",
             "openai.NotFoundError: Error code: 404 - {'object': 'error', 'message': 'The model `bge-m3` does not "
             "exist.', 'type': 'NotFoundError', 'param': None, 'code': 404}\n")
    assert f.rule == "model.not_found"
    assert "The evidence names" not in f.summary


def test_a_finding_of_an_id_that_turns_on_no_value_is_left_as_its_rule_worded_it(tmp_path):
    f = _top(tmp_path, "client.txt",
             "openai.AuthenticationError: Error code: 401 - {'error': 'Unauthorized'}\n"
             "client = OpenAI(base_url='http://localhost:8000/v1', api_key='EMPTY')  # model='Qwen/Qwen3-8B'\n")
    assert f.rule.startswith("auth.")
    assert "The evidence names" not in f.summary


def test_the_gpu_a_start_up_failure_ran_on_is_named(tmp_path):
    f = _top(tmp_path, "server.log",
             "$ python3 -m sglang.launch_server --model-path Qwen/Qwen2.5-7B-Instruct --port 30000\n"
             "GPU 0: NVIDIA GeForce RTX 2060 (UUID: GPU-1b2c)\n"
             "ERROR 05-02 10:11:12 scheduler.py:1] RuntimeError: CUDA error: no kernel image is available for "
             "execution on the device\n")
    assert f.rule == "engine.startup_failed"
    assert "GPU `NVIDIA GeForce RTX 2060` (server.log:2)" in f.summary



# the values a report names, as the software in the path writes them: a datacenter GPU with its form factor and
# memory, the model of a LiteLLM provider string (LiteLLM, DSPy, CrewAI), a host setting without a scheme
NAMED = (
    ("engine.startup_failed", "GPU `Tesla V100-SXM2-32GB` (issue.md:2)",
     "# [Bug]: The quantization method awq is not supported for the current GPU. Minimum capability: 75. "
     "Current capability: 70.\nGPU models and configuration: GPU 0: Tesla V100-SXM2-32GB\n"),
    ("model.not_found", "model `llama3.2` (issue.md:2)",
     "import dspy\nlm = dspy.LM('ollama_chat/llama3.2', api_base='http://localhost:11434', api_key='')\n"
     "litellm.APIConnectionError: Ollama_chatException - Client error '404 Not Found' for url "
     "'http://localhost:11434/api/chat'\n"),
    ("net.wrong_host_docker", "address `MILVUS_HOST=127.0.0.1` (issue.md:3)",
     "api and worker run in docker compose\nVECTOR_STORE=milvus\nMILVUS_HOST=127.0.0.1\nMILVUS_PORT=19530\n"
     "<MilvusException: (code=2, message=Fail connecting to server on 127.0.0.1:19530. Timeout)>\n"),
    ("model.unsupported_architecture", "model `THUDM/GLM-4.1V-9B-Thinking` (issue.md:1)",
     "vllm serve THUDM/GLM-4.1V-9B-Thinking --limit-mm-per-prompt '{\"image\":32}'\n\n"
     "pydantic_core._pydantic_core.ValidationError: 1 validation error for ModelConfig\n"
     "  Value error, `limit_mm_per_prompt` is only supported for multimodal models. [type=value_error]\n"),
    ("model.unsupported_architecture", "model `jinaai/jina-reranker-v1-turbo-en` (issue.md:1)",
     "When deploying [jinaai/jina-reranker-v1-turbo-en](https://huggingface.co/jinaai/jina-reranker-v1-turbo-en) "
     "with TEI 1.2 the container exits:\n"
     "Error: Could not create backend\n"
     "> Could not start Candle backend: Could not start backend: `classifier` model type is not supported for Jina\n"),
    ("model.trust_remote_code", "model `/data/hub/models/jinaai/jina-embeddings-v3` (server.log:1)",
     "ValueError: The model /data/hub/models/jinaai/jina-embeddings-v3 references the module class 'custom_st' "
     "defined in its repository.\nPlease pass the argument `trust_remote_code=True` to allow custom code to be run.\n"),
    ("embed.input_too_long", "model `bge-large-zh-v1.5` (issue.md:1)",
     "# How to increase the maximum input token of bge-large-zh-v1.5?\n\n"
     "RuntimeError: The size of tensor a (671) must match the size of tensor b (512) at non-singleton dimension 1\n"),
    ("engine.cuda_driver_too_old", "image `vllm/vllm-openai:v0.10.1` (compose.yaml:3)",
     "services:\n  vllm:\n    image: vllm/vllm-openai:v0.10.1\n    command: --model Qwen/Qwen3-Embedding-0.6B\n"
     "Error response from daemon: failed to create task for container: failed to create shim task: OCI runtime create "
     "failed: runc create failed: unable to start container process: error during container init: error running hook #0: "
     "error running hook: exit status 1, stdout: , stderr: Auto-detected mode as 'legacy'\n"
     "nvidia-container-cli: requirement error: unsatisfied condition: cuda>=12.8, please update your driver to a newer "
     "version, or use an earlier cuda container: unknown\n"),
    ("engine.cuda_driver_too_old", "image `ghcr.io/ggml-org/llama.cpp:server-cuda` (run.txt:1)",
     "$ docker run --gpus all -p 8080:8080 -v /models:/models ghcr.io/ggml-org/llama.cpp:server-cuda -m /models/bge-m3.gguf "
     "--embeddings\nCUDA error: CUDA driver version is insufficient for CUDA runtime version\n"),
)


@pytest.mark.parametrize(("rule", "named", "text"), NAMED,
                         ids=["gpu", "litellm-model", "host-setting", "vllm-serve", "markdown-link", "model-dir", "family",
                              "compose-image", "docker-run-image"])
def test_the_value_the_software_writes_is_named_whole(tmp_path, rule, named, text):
    top = _top(tmp_path, named.rsplit("(", 1)[1].split(":")[0], text)
    assert (top.rule, named in top.summary) == (rule, True), top.summary


def test_the_model_of_the_request_beside_the_error_body_is_named(tmp_path):
    (tmp_path / "request.json").write_text('{\n    "model":"Qwen3-Reranker-0.6B",\n    "query": "What is AI?",\n'
                                           '    "documents": ["a", "b"]\n}\n', encoding="utf-8")
    (tmp_path / "response.json").write_text('{\n  "error": {\n    "code": 400,\n    "message": "The model does not '
                                            'support Rerank (Score) API",\n    "type": "BadRequestError"\n  }\n}\n',
                                            encoding="utf-8")
    a = analyze([str(tmp_path / "request.json"), str(tmp_path / "response.json")])
    top = a.findings[0]
    assert top.rule == "embed.wrong_model_type"
    assert "model `Qwen3-Reranker-0.6B` (request.json:2)" in top.summary


def test_an_installers_url_is_not_an_address_the_client_calls(tmp_path):
    f = _top(tmp_path, "issue.md",
             "Installed with `curl -fsSL https://ollama.com/install.sh | sh` on the GPU box.\n"
             "From my laptop the client fails:\n"
             "httpx.ConnectError: [Errno 111] Connection refused\n"
             "OLLAMA_BASE_URL=http://192.168.1.40:11434\n")
    assert f.rule == "net.connection_refused"
    assert "install.sh" not in f.summary and "192.168.1.40:11434" in f.summary, f.summary
