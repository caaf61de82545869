"""Adapters on realistic lines from several versions (FORMATS.md)."""

import polars as pl

from emblens.diagnose import load_events

V066 = "INFO 03-02 23:59:21 api_server.py:240] vLLM API server version 0.6.6.post1\n"
V011 = ("\x1b[1;36m(APIServer pid=3999075)\x1b[0;0m INFO 05-29 16:17:29 [launcher.py:28] Available routes are:\r\n"
        '\x1b[1;36m(APIServer pid=3999075)\x1b[0;0m INFO:     127.0.0.1:46686 - "GET /v1/chat/completions HTTP/1.1" 401 Unauthorized\n')
V033 = ("(EngineCore_DP0 pid=17374) ERROR 09-28 15:47:24 [core.py:718] EngineCore failed to start.\n"
        'INFO:     127.0.0.1:54321 - "POST /v1/embeddings HTTP/1.1" 404 Not Found\n')
SGL = ("[2025-03-27 21:33:30 TP0] Load weight end. type=Qwen2ForCausalLM, dtype=torch.bfloat16, avail mem=60.1 GB, mem usage=15.3 GB.\n"
       '[2025-09-03 18:33:31] INFO:     192.168.30.81:35262 - "POST /v1/chat/completions HTTP/1.1" 429 Too Many Requests\n'
       "[2025-11-11 04:05:47] The server is fired up and ready to roll!\n")


def _events(tmp_path, name, text):
    p = tmp_path / name
    p.write_bytes(text.encode())
    events, inputs, skipped = load_events([str(p)])
    return events, inputs[0]


def test_vllm_versions(tmp_path):
    e, info = _events(tmp_path, "a.txt", V066 + V011 + V033)
    assert info.kind == "vllm-log" and info.unparsed == 0
    http = e.filter(pl.col("kind") == "http")
    assert http["http_status"].to_list() == [401, 404]
    assert http["proc"].to_list() == ["APIServer", None]
    assert e.filter(pl.col("fact") == "version")["software_version"].to_list() == ["0.6.6.post1"]
    assert e.filter(pl.col("level") == "ERROR")["proc"].to_list() == ["EngineCore_DP0"]


def test_sglang(tmp_path):
    e, info = _events(tmp_path, "server.out", SGL)
    assert info.kind == "sglang-log"
    assert e.filter(pl.col("kind") == "http")["http_status"].to_list() == [429]
    ready = e.filter(pl.col("fact") == "ready")
    assert ready.height == 1 and str(ready["ts"][0]) == "2025-11-11 04:05:47"


def test_traceback_chain_root_and_outer(repo):
    e, inputs, _ = load_events([str(repo / "rules/auth/empty_key.pos-openai1.40.txt")])
    exc = e.filter(pl.col("kind") == "exception").sort("line")
    assert exc["exc_type"].to_list() == ["httpcore.LocalProtocolError", "httpx.LocalProtocolError", "openai.APIConnectionError"]
    assert set(exc["exc_root_type"]) == {"httpcore.LocalProtocolError"}
    assert set(exc["exc_outer_type"]) == {"openai.APIConnectionError"}
    assert exc["exc_position"].to_list() == ["root", "cause", "outer"]


def test_kubectl_and_docker_wrappers(tmp_path):
    kube = "".join(f"2025-09-28T15:47:2{i}.123456789Z " + line + "\n" for i, line in enumerate(V033.splitlines()))
    e, info = _events(tmp_path, "pod.log", kube)
    assert info.kind == "vllm-log" and e["ts"].null_count() == 0
    docker = '{"log":"INFO:     127.0.0.1:1 - \\"POST /v1/embeddings HTTP/1.1\\" 413 Request Entity Too Large\\n","stream":"stdout","time":"2025-09-28T15:47:24.1Z"}\n'
    first = '{"log":"INFO 03-02 23:59:21 api_server.py:240] vLLM API server version 0.6.6.post1\\n","stream":"stdout","time":"2025-09-28T15:47:21.1Z"}\n'
    e, info = _events(tmp_path, "c-json.log", first + docker)
    assert info.kind == "vllm-log"
    assert e.filter(pl.col("kind") == "http")["http_status"].to_list() == [413]


def test_chunk_boundaries_never_cut_or_repeat_a_line():
    """Lines split across read blocks (also inside a multi-byte character), CRs, colours and a
    last line without a newline come out the same whatever the block size."""
    import io
    import random

    from emblens.reading.chunks import read_chunks
    from emblens.reading.lines import lines_frame

    rng = random.Random(1)
    choices = ["héllo wörld ✓", "x" * 40, "", "\x1b[1;36m(APIServer pid=1)\x1b[0;0m INFO a", "ab\r"]
    data = ("".join(rng.choice(choices) + "\n" for _ in range(3000)) + "tail-no-newline").encode()
    want = lines_frame(data)["raw"].to_list()
    assert len(want) == 3001 and want[-1] == "tail-no-newline" and "ab" in want

    class Stream(io.BytesIO):
        fragile = False

    for size in (7, 64, 1000, 4096):
        for fragile in (False, True):
            s = Stream(data)
            s.fragile = fragile
            got = [r for c in read_chunks(s, size=size, piece=5) for r in lines_frame(c)["raw"].to_list()]
            assert got == want, (size, fragile)
