"""Words fire wherever they appear (issue 25): the shapes a person hands over in which a rule used
to see nothing because the line was printed, quoted or pasted in prose rather than raised or logged.
Structure raises confidence; its absence lowers it but never silences the rule."""

import pytest

from emblens.diagnose import analyze

CASES = [
    # (what the person pasted, file name, the root cause a person who knows the field names)
    ("Request timed out: HTTPConnectionPool(host='localhost', port=1234): Read timed out. (read timeout=600)\n",
     "tool-output.txt", "net.timeout"),
    ("My agent fails after a few calls with\n\n"
     "429: LiteLLM Rate Limit Handler for rate limit type = team. Crossed TPM / RPM\n", "issue.md", "http.rate_limited"),
    ("nvidia-container-cli: requirement error: unsatisfied condition: cuda>=12.4, please update your driver to a newer "
     "version, or use an earlier cuda container: unknown.\n", "docker-run.txt", "engine.cuda_driver_too_old"),
    ("I start it with my path and get\n\n    ValueError: Invalid repository ID or local directory specified: "
     "'/models/Qwen3-Embedding-8B'. Please verify the following requirements:\n", "issue.md", "model.load_failed"),
    ("INFO 05-06 10:00:01 [config.py:1] This model supports multiple tasks: {'embed', 'generate'}. Defaulting to 'generate'.\n"
     "ERROR 05-06 10:00:09 [core.py:2] ValueError: There is no module or parameter named 'embed_tokens' in Qwen3ForCausalLM\n",
     "server.log", "embed.wrong_model_type"),
    ("  [cause]: Error: connect ECONNREFUSED ::1:11434\n    code: 'ECONNREFUSED',\n", "node.txt", "net.connection_refused"),
    ("在插件里配置了本地服务，点测试连接：\n测试失败，状态码: 403\n", "issue.md", "auth.forbidden"),
    ('{"error": {"message": "INFO:     127.0.0.1:53122 - \\"POST /v1/embedding HTTP/1.1\\" 404 Not Found", '
     '"type": "BadRequestError", "code": 400}}\n', "body.json", "http.wrong_path"),
]


@pytest.mark.parametrize(("text", "name", "cause"), CASES, ids=[c[2] + ":" + c[1] for c in CASES])
def test_the_words_name_the_cause_wherever_they_stand(tmp_path, text, name, cause):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    findings = analyze([str(path)]).findings
    assert findings and findings[0].rule == cause, [(f.rule, f.summary[:80]) for f in findings]


def test_words_alone_are_less_sure_than_the_same_words_raised(tmp_path):
    printed = tmp_path / "printed.txt"
    printed.write_text("Request timed out: HTTPConnectionPool(host='localhost', port=8000): Read timed out. (read timeout=30)\n")
    raised = tmp_path / "raised.txt"
    raised.write_text("Traceback (most recent call last):\n  File \"/app/run.py\", line 3, in <module>\n    r = requests.post(url)\n"
                      "requests.exceptions.ReadTimeout: HTTPConnectionPool(host='localhost', port=8000): Read timed out. "
                      "(read timeout=30)\n")
    words, structured = analyze([str(printed)]).findings[0], analyze([str(raised)]).findings[0]
    assert words.rule == structured.rule == "net.timeout"
    assert words.confidence < structured.confidence
