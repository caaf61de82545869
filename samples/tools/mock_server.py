"""A small stand-in for a vLLM / SGLang OpenAI-compatible server, used to make client samples.

It answers the way those servers answer (bodies and status codes from FORMATS.md) so that the
real openai client produces its real exceptions. The first path segment picks the behaviour:
    /ok/v1/embeddings          200 with a vector
    /auth/v1/...               401 {"error":"Unauthorized"} unless `Authorization: Bearer s3cret-demo-key`
    /model/v1/...              404 "The model `X` does not exist." unless model == Qwen3-Embedding-4B
    /path/...                  404 {"detail":"Not Found"} (FastAPI default)
    /ratelimit/...             429 with Retry-After: 7
    /toolarge/...              413 from an nginx front
    /gateway/...               502 / 503 / 504 pages from an nginx front (/gateway502, ...)
    /toolong/...               400 maximum context length
    /badinput/...              400 for an empty input list
    /notembed/...              400 SGLang's "does not appear to be an embedding model"
    /forbidden/...             403 {"error":"Forbidden"}
    /slow/...                  sleeps 5 s before answering
    /strict/...                400 when the body has fields the embeddings API does not take
    /dims/...                  answers with 1024-dimensional vectors (a 0.6B model behind the name)
    /tei-long-1.5.0/...        text-embeddings-inference < 1.5.1: 413 for an input over 512 tokens
    /tei-long-1.5.1/...        text-embeddings-inference >= 1.5.1: 422 for the same
    /tei-empty-1.5.0/...       text-embeddings-inference < 1.5.1: 413 for an empty input list
    /tei-body/...              text-embeddings-inference's web server (axum): 413 over --payload-limit
    GET .../v1/models          the served model list
Run: python mock_server.py PORT [SCENARIO]   (listens on 127.0.0.1 only)
SCENARIO may join auth and model to another with + (auth+model: a key required and the name checked).
With SCENARIO, every path behaves as that scenario and keeps its real form (/v1/embeddings), which
is what a capture in front of a real server looks like.
"""

import base64
import json
import socket
import struct
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SERVED = "Qwen3-Embedding-4B"
SCENARIO = sys.argv[2] if len(sys.argv) > 2 else None
DIMS = {"qwen3-embedding-4b": 2560, "multilingual-e5-large": 1024, "nomic-embed-text-v1.5": 768}
GENERATION = ("max_tokens", "temperature", "top_p", "stream", "stop", "n")
KEY = "s3cret-demo-key"
NGINX = "<html>\r\n<head><title>{code} {reason}</title></head>\r\n<body>\r\n<center><h1>{code} {reason}</h1></center>\r\n<hr><center>nginx/1.24.0</center>\r\n</body>\r\n</html>\r\n"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"   # as uvicorn answers

    def version_string(self):
        return "uvicorn"

    def setup(self):
        super().setup()
        # headers and body go out as separate writes: without this, Nagle + delayed ACK add 40 ms
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _send(self, code, body, ctype="application/json", headers=()):
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        self.send_response(code)
        self.send_header("content-type", ctype)
        self.send_header("content-length", str(len(data)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self.do_POST()

    def do_POST(self):
        length = int(self.headers.get("content-length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}") if length else {}
        scenario = SCENARIO or self.path.strip("/").split("/", 1)[0]
        both = set(scenario.split("+"))     # auth+model: a key required and the model name checked
        scenario = next((s for s in scenario.split("+") if s not in ("auth", "model")), scenario)
        model = body.get("model")

        def err(msg, typ, code):
            return {"error": {"message": msg, "type": typ, "param": None, "code": code}}

        if SCENARIO and SCENARIO.startswith("gateway"):    # a proxy in front, its upstream down: every path
            code = int(SCENARIO[7:] or 502)
            reason = {502: "Bad Gateway", 503: "Service Temporarily Unavailable", 504: "Gateway Time-out"}[code]
            return self._send(code, NGINX.format(code=code, reason=reason), "text/html")
        if self.path == "/health":       # vLLM: 200 with an empty body, never behind --api-key
            return self._send(200, "", "text/plain")
        if self.path == "/version":
            return self._send(200, {"version": "0.11.0"})
        if self.path == "/metrics":
            return self._send(200, '# HELP vllm:num_requests_running Number of requests in model execution batches.\n'
                              '# TYPE vllm:num_requests_running gauge\n'
                              f'vllm:num_requests_running{{engine="0",model_name="{SERVED}"}} 0.0\n', "text/plain; version=0.0.4")
        if "auth" in both and self.headers.get("authorization") != f"Bearer {KEY}":
            return self._send(401, {"error": "Unauthorized"})
        if scenario == "forbidden":
            return self._send(403, {"error": "Forbidden"})
        if self.path.rstrip("/").endswith("/models"):
            return self._send(200, {"object": "list", "data": [{"id": SERVED, "object": "model", "created": 1763779200, "owned_by": "vllm", "root": f"/models/{SERVED}", "parent": None, "max_model_len": 8192}]})
        if "model" in both and model != SERVED:
            return self._send(404, err(f"The model `{model}` does not exist.", "NotFoundError", 404))
        routes = ("/v1/embeddings", "/v1/chat/completions", "/v1/models") if SCENARIO else ("/embeddings", "/chat/completions", "/models")
        if scenario == "path" or not self.path.rstrip("/").endswith(routes):
            return self._send(404, {"detail": "Not Found"})
        if scenario == "ratelimit":
            return self._send(429, err("Too many requests", "RateLimitError", 429), headers=[("retry-after", "7")])
        if scenario == "toolarge":
            return self._send(413, NGINX.format(code=413, reason="Request Entity Too Large"), "text/html")
        if scenario.startswith("gateway"):
            code = int(scenario[7:] or 502)
            reason = {502: "Bad Gateway", 503: "Service Temporarily Unavailable", 504: "Gateway Time-out"}[code]
            return self._send(code, NGINX.format(code=code, reason=reason), "text/html")
        # text-embeddings-inference's OpenAI-compatible errors (router/src/http/server.rs): before 1.5.1 every
        # validation error maps to 413, from 1.5.1 to 422 (400 for an empty batch)
        if scenario.startswith("tei-long-"):
            code = 413 if scenario.endswith("1.5.0") else 422
            return self._send(code, {"message": "Input validation error: `inputs` must have less than 512 tokens. Given: 534", "code": code, "type": "Validation"})
        if scenario == "tei-empty-1.5.0":
            return self._send(413, {"message": "`inputs` cannot be empty", "code": 413, "type": "Validation"})
        if scenario == "tei-body":
            return self._send(413, "Failed to buffer the request body: length limit exceeded", "text/plain; charset=utf-8")
        if scenario == "toolong":
            return self._send(400, err("This model's maximum context length is 8192 tokens. However, you requested 12011 tokens in the input for embedding generation. Please reduce the length of the input.", "BadRequestError", 400))
        if scenario == "badinput":
            return self._send(400, err("please provide at least one prompt", "BadRequestError", 400))
        if scenario == "notembed":
            return self._send(400, {"object": "error", "message": "This model does not appear to be an embedding model by default. Please add `--is-embedding` when launching the server or try another model.", "type": "BadRequestError", "param": None, "code": 400})
        if scenario == "strict":
            extra = [k for k in body if k in GENERATION]
            if extra:
                return self._send(400, {"object": "error", "message": "[{'type': 'extra_forbidden', 'loc': ('body', '" + extra[0] + "'), 'msg': 'Extra inputs are not permitted', 'input': " + json.dumps(body[extra[0]]) + "}]", "type": "BadRequestError", "param": None, "code": 400})
        if scenario == "slow":
            time.sleep(5)
        inputs = body.get("input")
        inputs = inputs if isinstance(inputs, list) else [inputs]
        # the native size of what is asked for; "dims" puts a 0.6B model (1024) behind the 4B name
        dim = 1024 if scenario == "dims" else DIMS.get(str(model).rsplit("/", 1)[-1].lower(), 2560)
        vectors = [[round(0.001 * ((i + j) % 97), 3) for j in range(dim)] for i in range(len(inputs))]
        if body.get("encoding_format") == "base64":  # what openai-python asks for by default
            vectors = [base64.b64encode(struct.pack(f"<{dim}f", *v)).decode() for v in vectors]
        data = [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)]
        return self._send(200, {"id": "embd-0", "object": "list", "created": 1763779200, "model": model or SERVED, "data": data, "usage": {"prompt_tokens": 3 * len(inputs), "total_tokens": 3 * len(inputs), "completion_tokens": 0}})

    def log_message(self, fmt, *args):
        pass


if __name__ == "__main__":
    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
