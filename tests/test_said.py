"""Statuses, error names, hosts and ports said in any line, whatever its format (issue 25): a paste's
prose, a tool's printed line, an error body, a log line of a program emblens has no format for."""

import polars as pl
import pytest

from emblens.diagnose import analyze
from emblens.formats.messages import said

LINES = [
    # (line, said_status, said_error, said_host, said_port)
    ("Request timed out: HTTPConnectionPool(host='localhost', port=1234): Read timed out. (read timeout=600)",
     None, None, "localhost", 1234),
    ("openai.AuthenticationError: Error code: 401 - {'error': {'message': 'Invalid key'}}", 401, None, None, None),
    ("< HTTP/1.1 502 Bad Gateway", 502, None, None, None),
    ("测试失败，状态码: 403", 403, None, None, None),
    ("ERROR llm: HttpException 429 from upstream", 429, None, None, None),
    ('{"status": 404, "error": "route not found"}', 404, None, None, None),
    ("requests.exceptions.HTTPError: 404 Client Error: Not Found for url: http://localhost:8000/v1/embedding",
     404, None, "localhost", 8000),
    ("  [cause]: Error: connect ECONNREFUSED ::1:11434", None, "ECONNREFUSED", "::1", 11434),
    ("Error: dial tcp 127.0.0.1:8000: connect: connection refused", None, None, "127.0.0.1", 8000),
    ("curl: (7) Failed to connect to localhost port 8000 after 0 ms: Connection refused", None, None, "localhost", 8000),
    ("    code: 'UND_ERR_HEADERS_TIMEOUT'", None, "UND_ERR_HEADERS_TIMEOUT", None, None),
    ("httpcore.ConnectError: [Errno 111] Connection refused", None, "Errno 111", None, None),
    ("[WinError 10061] No connection could be made because the target machine actively refused it", None, "WinError 10061", None, None),
    # numbers that are not statuses
    ("took 450 ms at 10:45, 404 tokens cached", None, None, None, None),
    ("INFO 11-20 09:14:03 Avg prompt throughput: 502.3 tokens/s", None, None, None, None),
]


@pytest.mark.parametrize(("line", "status", "error", "host", "port"), LINES, ids=[row[0][:40] for row in LINES])
def test_what_a_line_says(line, status, error, host, port):
    row = said(pl.DataFrame({"text": [line]})).row(0, named=True)
    assert (row["said_status"], row["said_error"], row["said_host"], row["said_port"]) == (status, error, host, port)


def test_a_status_said_in_prose_reaches_the_rules(tmp_path):
    paste = tmp_path / "issue.md"
    paste.write_text("Calling my gateway from the batch job, every few minutes:\n\n"
                     "    upstream answered HTTP/1.1 429 Too Many Requests, retrying\n", encoding="utf-8")
    assert analyze([str(paste)]).findings[0].rule == "http.rate_limited"


def test_a_pasted_nvidia_smi_command_names_the_columns_of_the_bare_rows_below_it(tmp_path):
    paste = tmp_path / "gpu.md"
    paste.write_text("After the server stopped the GPU still shows memory in use:\n\n```\n"
                     "$ nvidia-smi --query-gpu=index,memory.total,memory.used --format=csv,noheader,nounits\n"
                     "0, 49140, 46867\n```\n", encoding="utf-8")
    gpu = analyze([str(paste)]).events.filter(pl.col("kind") == "gpu")
    assert gpu.select("gpu_index", "gpu_mem_total_mib", "gpu_mem_used_mib").rows() == [(0, 49140.0, 46867.0)]
