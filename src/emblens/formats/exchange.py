"""HTTP exchanges as events: what every traffic source (mitmproxy flows, HAR, curl -v, the live
addon) reduces a request/response pair to.

Nothing secret and no user text leaves this module: the Authorization header becomes its scheme
and token shape, other credential headers their names and shapes, and embedding inputs only
their count, kinds, which prefixes they carry and a short clipped example of one that lacks
a prefix. The evidence line quotes the request and response in that redacted form.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable
from datetime import datetime
from urllib.parse import urlsplit

from emblens.events import redact
from emblens.knowledge.modeldata import ModelData

OPENAI_ROUTE = re.compile(r"/v1/(?:embeddings|chat/completions|completions|models|rerank|score|pooling)\b")
CRED_HEADERS = ("x-api-key", "api-key", "apikey", "x-auth-token", "proxy-authorization")
Mask = Callable[[str], str]   # masks a text: a run's `Redactor.text`, or `redact.mask_text`
CLIP = 20   # characters of an input shown as an example, never the whole input
GENERATION_KEYS = ("max_tokens", "max_completion_tokens", "temperature", "top_p", "top_k", "stream",
                   "stop", "n", "presence_penalty", "frequency_penalty", "logprobs", "messages", "prompt")


# -- headers -------------------------------------------------------------------------------------
def auth_shape(headers: list[tuple[str, str]]) -> tuple[str | None, str | None, str | None]:
    """(scheme, token shape, other credential headers) of a request's headers.

    scheme: Bearer, Basic, Token, `raw` (a bare value with no scheme), `Bearer(glued)` for
    `Bearerabc…`, or None when there is no Authorization header."""
    scheme = shape = None
    others: list[str] = []
    for name, value in headers:
        low = name.lower()
        if low == "authorization":
            v = value.strip()
            m = re.match(r"(?i)^(bearer|basic|token|digest|apikey|api-key)(?:\s+(.*))?$", v)
            if m:
                scheme = m.group(1).capitalize() if m.group(1).lower() != "bearer" else "Bearer"
                shape = redact.shape(m.group(2) or "")
            elif re.match(r"(?i)^bearer\S", v):
                scheme, shape = "Bearer(glued)", redact.shape(v[6:])
            elif v:
                scheme, shape = "raw", redact.shape(v)
            else:
                scheme, shape = "none", "<empty>"
        elif low in CRED_HEADERS:
            others.append(f"{name}: {redact.shape(value)}")
    return scheme, shape, ", ".join(others) or None


def header(headers: list[tuple[str, str]], name: str) -> str | None:
    name = name.lower()
    return next((v for k, v in headers if k.lower() == name), None)


# -- bodies ----------------------------------------------------------------------------------------
def _json(body: bytes | str | None) -> object:
    if not body:
        return None
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):   # nested past Python's limit: not read
        return None


def _clip(text: str, mask: Mask) -> str:
    """A short start of an input that is never the whole of it."""
    keep = CLIP if len(text) > CLIP else max(1, len(text) // 2)
    # masked before it is cut: a secret cut short no longer has the shape that marks it
    return mask(text[: keep + 512])[:keep].replace("\n", "\\n") + f"… ({len(text)} chars)"


def request_summary(body: object, data: ModelData, mask: Mask = redact.mask_text) -> dict[str, object]:
    """Columns from an OpenAI-style request body."""
    if not isinstance(body, dict):
        return {}
    out: dict[str, object] = {"req_body_keys": ",".join(sorted(str(k) for k in body))}
    model = body.get("model")
    if isinstance(model, str):
        out["req_model"] = model
    if isinstance(body.get("dimensions"), int):
        out["req_dimensions"] = body["dimensions"]
    gen = [k for k in GENERATION_KEYS if k in body and k not in ("messages", "prompt")]
    out["req_extra_params"] = ",".join(gen) or None
    if "input" in body:
        inp = body["input"]
        items = inp if isinstance(inp, list) else [inp]
        kinds = sorted({_kind(x) for x in items}) or ["empty list"]
        out["req_input_count"] = len(items)
        out["req_input_kinds"] = ",".join(kinds)
        texts = [x for x in items if isinstance(x, str)]
        prefixes = data.all_prefixes
        with_prefix = [next((p for p in prefixes if t.startswith(p)), None) for t in texts]
        out["req_prefixed"] = sum(p is not None for p in with_prefix)
        out["req_unprefixed"] = sum(p is None for p in with_prefix)
        found = sorted({p for p in with_prefix if p})
        out["req_prefixes"] = ",".join(p.strip() for p in found) or None
        example = next((t for t, p in zip(texts, with_prefix) if p is None), None)
        out["req_unprefixed_example"] = _clip(example, mask) if example is not None else None
    return out


def _kind(x: object) -> str:
    if isinstance(x, str):
        return "empty string" if not x.strip() else "string"
    if isinstance(x, int):
        return "token ids"
    if isinstance(x, list):
        return "token ids" if all(isinstance(i, int) for i in x) else "list"
    return type(x).__name__


def response_summary(path: str, status: int | None, body: object, raw: bytes | str | None,
                     mask: Mask = redact.mask_text) -> dict[str, object]:
    out: dict[str, object] = {}
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict):
            out["resp_error"] = str(err.get("message") or err)
        elif err is not None:
            out["resp_error"] = str(err)
        elif body.get("object") == "error" or (status or 0) >= 400:
            msg = body.get("message") or body.get("detail")
            if msg is not None:
                out["resp_error"] = msg if isinstance(msg, str) else json.dumps(msg)[:300]
        data = body.get("data")
        if isinstance(data, list) and data:
            dims = sorted({_dim(d.get("embedding")) for d in data if isinstance(d, dict)} - {None})
            if dims:
                out["resp_dim"] = dims[0]
                out["resp_dims"] = ",".join(map(str, dims))
            if path.rstrip("/").endswith("/models"):
                names = [str(d["id"]) for d in data if isinstance(d, dict) and d.get("id")]
                if names:
                    out["resp_models"] = ",".join(names)
    elif raw and (status or 0) >= 400:
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
        m = re.search(r"<title>([^<]*)</title>", text) or re.search(r"<h1>([^<]*)</h1>", text)
        out["resp_error"] = (m.group(1) if m else text.strip().splitlines()[0] if text.strip() else "")[:300] or None
    if out.get("resp_error"):
        out["resp_error"] = mask(str(out["resp_error"]))[:500]
    return out


def _dim(vector: object) -> int | None:
    """Length of an embedding: a list of floats, or base64 of float32s (`encoding_format: base64`,
    which openai-python asks for by default)."""
    if isinstance(vector, list):
        return len(vector)
    if isinstance(vector, str):
        try:
            return len(base64.b64decode(vector, validate=True)) // 4
        except (ValueError, binascii.Error):
            return None
    return None


def _body_text(body: object, summary: dict[str, object]) -> str:
    """The request body as quoted in evidence: keys kept, model and small scalars kept, inputs
    replaced by their count and kinds."""
    if not isinstance(body, dict):
        return ""
    parts = []
    for k, v in body.items():
        if k == "input":
            parts.append(f'"input": <{summary.get("req_input_count")} × {summary.get("req_input_kinds")}>')
        elif k in ("messages", "prompt"):
            n = len(v) if isinstance(v, list) else 1
            parts.append(f'"{k}": <{n} item(s)>')
        elif isinstance(v, (int, float, bool)) or v is None or (isinstance(v, str) and len(v) <= 80):
            parts.append(f'"{k}": {json.dumps(v)}')
        else:
            parts.append(f'"{k}": <{type(v).__name__}>')
    return "{" + ", ".join(parts) + "}"


def exchange(
    *,
    method: str,
    url: str,
    request_headers: list[tuple[str, str]],
    request_body: bytes | str | None,
    status: int | None,
    reason: str | None = None,
    response_headers: list[tuple[str, str]] = (),  # type: ignore[assignment]
    response_body: bytes | str | None = None,
    started: datetime | None = None,
    latency_ms: float | None = None,
    error: str | None = None,
    data: ModelData | None = None,
    mask: Mask = redact.mask_text,
) -> dict[str, object]:
    """One event row (a dict of event-table columns) for one request and its response or error.
    `mask` masks the text it quotes: the run's redactor (`Redactor.text`), which counts what it
    masks; by default the catalogue alone."""
    data = data or ModelData()
    try:
        parts = urlsplit(url)
        declared = parts.port
    except ValueError:      # a damaged URL ("host:port" that is not a port, an unclosed [IPv6)
        parts, declared = urlsplit(""), None
    path = parts.path or "/"
    port = declared or (443 if parts.scheme == "https" else 80 if parts.scheme == "http" else None)
    scheme, shape, others = auth_shape(request_headers)
    req = _json(request_body)
    resp = _json(response_body)
    row: dict[str, object] = {
        "kind": "http",
        "origin": "capture",
        "ts": started,
        "ts_text": started.isoformat(sep=" ") if started else None,
        "http_method": method,
        "http_path": path,
        "http_host": parts.hostname,
        "http_port": port,
        "http_status": status,
        "auth_scheme": scheme,
        "auth_token_shape": shape,
        "auth_other_headers": others,
        "latency_ms": latency_ms,
        "http_server": header(response_headers, "server"),
        "http_via": header(response_headers, "via"),
        "http_content_type": header(response_headers, "content-type"),
        "level": "ERROR" if error or (status or 0) >= 500 else "WARNING" if (status or 0) >= 400 else "INFO",
    }
    retry = header(response_headers, "retry-after")
    if retry and re.fullmatch(r"\s*\d+(\.\d+)?\s*", retry):
        row["retry_after"] = float(retry)
    if OPENAI_ROUTE.search(path) or isinstance(req, dict):
        summary = request_summary(req, data, mask)
        row.update(summary)
    else:
        summary = {}
    row.update(response_summary(path, status, resp, response_body, mask))
    if error:
        row["resp_error"] = mask(error)[:500]
    # the quoted evidence: request line, credentials by shape, body summary, then the answer
    if scheme is None:
        auth = "no Authorization header"
    elif scheme == "none":
        auth = "Authorization: (empty)"
    else:
        auth = f"Authorization: {scheme} {shape}"
    if others:
        auth += f"; {others}"
    answer = (f"-> {status} {reason or ''}".rstrip() if status is not None else "-> no response")
    if row.get("resp_error"):
        answer += f": {row['resp_error']}"
    elif row.get("resp_models"):
        answer += f": models {row['resp_models']}"
    elif row.get("resp_dims"):
        answer += f": embedding dimension {row['resp_dims']}"
    body_text = _body_text(req, summary)
    text = f"{method} {parts.scheme + '://' if parts.scheme else ''}{parts.netloc}{path} [{auth}]"
    if body_text:
        text += f" {body_text}"
    text += f" {answer}"
    row["text"] = mask(text)
    row["message"] = mask(f"{method} {path} {answer}")
    return row


def models_fact(row: dict[str, object]) -> dict[str, object] | None:
    """A `/v1/models` answer also says what the server serves: a fact row beside the exchange."""
    names = row.get("resp_models")
    if not names or row.get("http_status") != 200:
        return None
    return {
        "kind": "fact", "origin": "capture", "fact": "served_models", "served_models": names,
        "ts": row.get("ts"), "ts_text": row.get("ts_text"), "level": "INFO",
        "message": f"GET /v1/models lists {names}", "text": row["text"],
    }
