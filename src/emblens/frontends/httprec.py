"""emblens's own HTTP exchanges (`emblens probe`, `emblens collect --url`), recorded as HAR 1.2
entries that the HAR reader analyses like any capture.

Standard library only (no openai, no httpx): one request per connection, a timeout on each, the
answer read up to `MAX_BODY` bytes. Nothing secret is recorded: header values and bodies go
through `redact.mask_text`, so a key is kept as its shape (`Bearer <key: 15 chars>`), which is
all the rules need.
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from urllib.parse import urlsplit, urlunsplit

from emblens._version import __version__
from emblens.events import redact
from emblens.formats.records import ON_PURPOSE

MAX_BODY = 256 * 1024          # bytes of an answer read (a /v1/models list, an error, one small vector)
USER_AGENT = f"emblens/{__version__}"


@dataclass
class Bases:
    root: str        # scheme://host:port[/prefix] without /v1
    api: str         # what a client's base_url should be (ends in /v1 for vLLM and SGLang)
    given_v1: bool   # whether the URL given ended in /v1


def bases(url: str) -> Bases:
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{redact.mask_text(url)!r} is not an http(s) URL (write it as http://HOST:PORT/v1)")
    path = parts.path.rstrip("/")
    for tail in ("/embeddings", "/chat/completions", "/completions", "/models"):
        if path.endswith(tail):      # a pasted endpoint rather than a base URL
            path = path[: -len(tail)]
    given_v1 = path.endswith("/v1")
    root_path = path[:-3] if given_v1 else path
    root = urlunsplit((parts.scheme, parts.netloc, root_path, "", ""))
    return Bases(root=root, api=root + "/v1", given_v1=given_v1)


@dataclass
class Answer:
    status: int | None            # None: no answer (refused, timed out, TLS failed)
    reason: str = ""
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    error: str | None = None      # why there was no answer, as the OS or ssl said it
    ms: float = 0.0

    def json(self) -> object:
        try:
            return json.loads(self.body) if self.body else None
        except ValueError:
            return None


class LimitReached(Exception):
    """More requests than the recorder allows."""


class Recorder:
    """Sends requests and keeps each exchange as a masked HAR entry."""

    def __init__(self, timeout_s: float = 5.0, max_requests: int = 20, mask: Callable[[str], str] = redact.mask_text) -> None:
        self.timeout_s = timeout_s
        self.max_requests = max_requests
        self.mask = mask          # the catalogue, or a run's `Redactor.text`, which counts what it masks
        self.entries: list[dict] = []

    @property
    def sent(self) -> int:
        return len(self.entries)

    def request(self, method: str, url: str, *, headers: dict[str, str] | None = None, body: object = None,
                on_purpose: str | None = None, timeout_s: float | None = None) -> Answer:
        """One exchange. `on_purpose`: why a request is deliberately wrong (no key, another
        scheme); the HAR entry says so, and the analysis then does not read it as a client's fault."""
        if self.sent >= self.max_requests:
            raise LimitReached(f"stopped at {self.max_requests} requests")
        parts = urlsplit(url)
        data = None if body is None else json.dumps(body).encode()
        sent_headers = {"User-Agent": USER_AGENT, "Accept": "application/json", **(headers or {})}
        if data is not None:
            sent_headers["Content-Type"] = "application/json"
        started = datetime.now(timezone.utc)
        t0 = time.perf_counter()
        answer = _send(parts, method, sent_headers, data, timeout_s or self.timeout_s)
        answer.ms = (time.perf_counter() - t0) * 1000
        self.entries.append(_entry(method, url, sent_headers, data, answer, started, on_purpose, self.mask))
        return answer

    def har(self) -> dict:
        return har(self.entries)


def har(entries: list[dict]) -> dict:
    """A HAR 1.2 document of these entries, its creator emblens (the HAR reader then takes a
    missing Authorization header as none sent, not as a sanitized export)."""
    return {"log": {"version": "1.2", "creator": {"name": "emblens", "version": __version__}, "entries": entries}}


def _send(parts, method: str, headers: dict[str, str], data: bytes | None, timeout_s: float) -> Answer:
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    if parts.scheme == "https":
        conn: http.client.HTTPConnection = http.client.HTTPSConnection(host, port, timeout=timeout_s,
                                                                       context=ssl.create_default_context())
    else:
        conn = http.client.HTTPConnection(host, port, timeout=timeout_s)
    try:
        conn.request(method, path, body=data, headers=headers)
        resp = conn.getresponse()
        body = resp.read(MAX_BODY)
        return Answer(resp.status, resp.reason, [(k, v) for k, v in resp.getheaders()], body)
    except (socket.timeout, TimeoutError):
        return Answer(None, error=f"timed out after {timeout_s:g} s (no answer)")
    except ssl.SSLError as e:
        return Answer(None, error=f"TLS failed: {e.reason or e}")
    except ConnectionRefusedError as e:
        return Answer(None, error=f"[Errno {e.errno}] Connection refused")
    except OSError as e:
        return Answer(None, error=f"[Errno {e.errno}] {e.strerror}" if e.errno else f"{type(e).__name__}: {e}")
    except http.client.HTTPException as e:
        return Answer(None, error=f"not an HTTP answer ({type(e).__name__}: {e})")
    finally:
        conn.close()


def _masked_headers(headers, mask: Callable[[str], str]) -> list[dict]:
    return [{"name": k, "value": mask(f"{k}: {v}").split(": ", 1)[-1]} for k, v in headers]


def _entry(method, url, headers, data, answer: Answer, started: datetime, on_purpose: str | None,
           mask: Callable[[str], str]) -> dict:
    def text(data: bytes) -> str:
        return mask(data.decode("utf-8", "replace"))

    request = {"method": method, "url": mask(url), "httpVersion": "HTTP/1.1",
               "headers": _masked_headers(headers.items(), mask), "queryString": [], "cookies": [],
               "headersSize": -1, "bodySize": len(data or b"")}
    if data is not None:
        request["postData"] = {"mimeType": "application/json", "text": text(data)}
    ctype = next((v for k, v in answer.headers if k.lower() == "content-type"), "")
    response = {"status": answer.status or 0, "statusText": answer.reason, "httpVersion": "HTTP/1.1",
                "headers": _masked_headers(answer.headers, mask), "cookies": [], "redirectURL": "",
                "content": {"size": len(answer.body), "mimeType": ctype, "text": text(answer.body)},
                "headersSize": -1, "bodySize": len(answer.body)}
    if answer.error:
        response["_error"] = mask(answer.error)
    entry = {"startedDateTime": started.isoformat().replace("+00:00", "Z"), "time": round(answer.ms, 1),
             "request": request, "response": response, "cache": {},
             "timings": {"send": 0, "wait": round(answer.ms, 1), "receive": 0}}
    if on_purpose:
        entry["comment"] = f"{ON_PURPOSE}: {on_purpose}"
    return entry
