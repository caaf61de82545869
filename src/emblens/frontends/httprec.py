"""emblens's own HTTP exchanges (`emblens probe`, `emblens collect --url`), recorded as HAR 1.2
entries that the HAR reader analyses like any capture.

Standard library only (no openai, no httpx): one request per connection. The server is a
stranger, possibly a hostile one, so every exchange is bounded:

- time: one deadline for the whole exchange (name lookup, connect, TLS, send, headers, body),
  not a timeout per read, which a server sending one byte every second never trips. A watchdog
  shuts the socket down when the deadline passes, which ends any read or write in progress.
  Once a server has let an exchange run out of time, the recorder sends it nothing more: each
  further request would only wait as long (`Recorder.gave_up`);
- headers: at most `MAX_HEADER_LINES` lines and `MAX_HEADER_BYTES` bytes;
- body: the first `MAX_BODY` bytes; a longer answer is cut, and the entry says so;
- JSON: nested deeper than `MAX_JSON_DEPTH`, an answer is not parsed (the parser recurses once per
  level) and is taken as not JSON, with a note.

Each of these ends in one line, on the Answer (`error`, `note`) and on the HAR entry (`_error`).

Nothing secret is recorded: header values, URLs and bodies go through `mask` (the catalogue, or a
run's `Redactor.text`, which also masks the values it was told to remember, such as the key a
probe was given), so a key is kept as its shape (`Bearer <key: 15 chars>`), which is all the rules
need. URLs lose their user-info (`user:password@`) before anything is sent, shown or written.
"""

from __future__ import annotations

import http.client
import json
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from urllib.parse import urlsplit, urlunsplit

from emblens._version import __version__
from emblens.events import redact
from emblens.formats.records import ON_PURPOSE

MAX_BODY = 256 * 1024          # bytes of an answer read (a /v1/models list, an error, one small vector)
MAX_HEADER_BYTES = 64 * 1024   # status line and headers together (a server sends one or two KiB)
MAX_HEADER_LINES = 64          # header lines of one answer (a server sends a dozen, a CDN three dozen)
MAX_JSON_DEPTH = 64            # levels of JSON parsed (a models list is 3 deep, an embeddings answer 4)
USER_AGENT = f"emblens/{__version__}"

Mask = Callable[[str], str]


# -- URLs -----------------------------------------------------------------------------------------
# the user-info of a URL: everything before the last @ of the authority (a password may hold @)
_USERINFO = re.compile(r"^(\s*(?:[A-Za-z][\w+.\-]*:)?//)?([^/?#\s]*)@")


def shown(url: str, mask: Mask = redact.mask_text) -> str:
    """A URL as emblens prints or writes it: the user-info reduced to its shape (the user name
    kept beside a password; a lone user name may be a token, so it is masked too), the rest
    through `mask`.

    >>> shown("http://alice:pw@10.0.0.5:8000/v1")
    'http://alice:<key: 2 chars>@10.0.0.5:8000/v1'
    """
    def hide(m: re.Match[str]) -> str:
        user, colon, password = m.group(2).partition(":")
        return f"{m.group(1) or ''}{user}:{redact.shape(password)}@" if colon else f"{m.group(1) or ''}{redact.shape(user)}@"

    return mask(_USERINFO.sub(hide, url, count=1))


@dataclass
class Bases:
    root: str        # scheme://host:port[/prefix] without /v1 (and without user-info: it is never sent)
    api: str         # what a client's base_url should be (ends in /v1 for vLLM and SGLang)
    given_v1: bool   # whether the URL given ended in /v1


def bases(url: str) -> Bases:
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{shown(url)!r} is not an http(s) URL (write it as http://HOST:PORT/v1)")
    try:
        _ = parts.port           # raises for a port out of range or not a number
    except ValueError:
        raise ValueError(f"{shown(url)!r} has no valid port (write it as http://HOST:PORT/v1)") from None
    path = parts.path.rstrip("/")
    for tail in ("/embeddings", "/chat/completions", "/completions", "/models"):
        if path.endswith(tail):      # a pasted endpoint rather than a base URL
            path = path[: -len(tail)]
    given_v1 = path.endswith("/v1")
    root_path = path[:-3] if given_v1 else path
    root = urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], root_path, "", ""))
    return Bases(root=root, api=root + "/v1", given_v1=given_v1)


# -- answers --------------------------------------------------------------------------------------
# a JSON string (skipped whole: brackets inside it do not nest) or a bracket
_JSON_TOKENS = re.compile(rb'"(?:[^"\\]++|\\.)*+"|[\[\]{}]')


def json_too_deep(data: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether JSON text nests deeper than `limit`, found by counting brackets outside strings:
    `json.loads` recurses once per level, so `[` x 200,000 would end in a RecursionError.

    >>> json_too_deep(b'{"data": [{"embedding": [0.1]}]}'), json_too_deep(b"[" * 65), json_too_deep(b'"[[[["', 2)
    (False, True, False)
    """
    depth = 0
    for m in _JSON_TOKENS.finditer(data):
        c = data[m.start()]
        if c == 0x5B or c == 0x7B:          # [ {
            depth += 1
            if depth > limit:
                return True
        elif c != 0x22:                      # ] } (a string is skipped)
            depth -= 1
    return False


@dataclass
class Answer:
    status: int | None            # None: no answer (refused, timed out, TLS failed, headers past the caps)
    reason: str = ""
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    error: str | None = None      # why there was no answer, in one line
    ms: float = 0.0
    note: str | None = None       # what is wrong with an answer that came: cut at MAX_BODY, JSON too deep
    late: bool = False            # the deadline passed before the answer was whole

    def json(self) -> object:
        """The body as JSON; None when it is empty, not JSON, or nested deeper than MAX_JSON_DEPTH."""
        if not self.body or json_too_deep(self.body):
            return None
        try:
            return json.loads(self.body)
        except (ValueError, RecursionError):
            return None


class LimitReached(Exception):
    """More requests than the recorder allows."""


class Recorder:
    """Sends requests to one server and keeps each exchange as a masked HAR entry."""

    def __init__(self, timeout_s: float = 5.0, max_requests: int = 20, mask: Mask = redact.mask_text) -> None:
        self.timeout_s = timeout_s      # the whole of each exchange, connect to last byte
        self.max_requests = max_requests
        self.mask = mask          # the catalogue, or a run's `Redactor.text`, which counts what it masks
        self.entries: list[dict] = []
        self.gave_up: str | None = None   # why nothing more is sent: an exchange ran out of time

    @property
    def sent(self) -> int:
        return len(self.entries)

    def request(self, method: str, url: str, *, headers: dict[str, str] | None = None, body: object = None,
                on_purpose: str | None = None, timeout_s: float | None = None) -> Answer:
        """One exchange. `on_purpose`: why a request is deliberately wrong (no key, another
        scheme); the HAR entry says so, and the analysis then does not read it as a client's fault.
        Once an exchange has run out of time, later ones are not sent (and not recorded): the
        Answer says why, at once, instead of waiting as long again."""
        if self.sent >= self.max_requests:
            raise LimitReached(f"stopped at {self.max_requests} requests")
        if self.gave_up:
            return Answer(None, error=f"not sent: {self.gave_up}")
        parts = urlsplit(url)
        data = None if body is None else json.dumps(body).encode()
        sent_headers = {"User-Agent": USER_AGENT, "Accept": "application/json", **(headers or {})}
        if data is not None:
            sent_headers["Content-Type"] = "application/json"
        limit = timeout_s or self.timeout_s
        started = datetime.now(timezone.utc)
        t0 = time.perf_counter()
        answer = _send(parts, method, sent_headers, data, limit)
        answer.ms = (time.perf_counter() - t0) * 1000
        if answer.late:
            self.gave_up = (f"{method} {shown(url, self.mask)} got no whole answer within {seconds(limit)} s, and each "
                            "further request would wait as long")
        self.entries.append(_entry(method, url, sent_headers, data, answer, started, on_purpose, self.mask))
        return answer

    def unanswered(self, method: str, url: str, error: str, *, headers: dict[str, str] | None = None) -> Answer:
        """Record an exchange that could not start, without trying again: the connection the
        caller opened for it ran out of time (`emblens probe`'s own TCP check), and another try
        would only wait as long. Nothing is sent after it."""
        sent_headers = {"User-Agent": USER_AGENT, "Accept": "application/json", **(headers or {})}
        answer = Answer(None, error=error, ms=self.timeout_s * 1000, late=True)
        self.gave_up = f"{method} {shown(url, self.mask)}: {error}"
        self.entries.append(_entry(method, url, sent_headers, None, answer, datetime.now(timezone.utc), None, self.mask))
        return answer

    def har(self) -> dict:
        return har(self.entries)


def har(entries: list[dict]) -> dict:
    """A HAR 1.2 document of these entries, its creator emblens (the HAR reader then takes a
    missing Authorization header as none sent, not as a sanitized export)."""
    return {"log": {"version": "1.2", "creator": {"name": "emblens", "version": __version__}, "entries": entries}}


# -- the bounds -----------------------------------------------------------------------------------
def left(deadline: float) -> float:
    """Seconds until `deadline` (a `time.monotonic()` value); TimeoutError once it has passed."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise TimeoutError("the deadline passed")
    return remaining


def resolve(host: str, port: int, timeout_s: float) -> list[tuple]:
    """`getaddrinfo` within `timeout_s`: the resolver has its own timeouts (5 s a try, several
    tries), so a name server that does not answer would outlast any deadline. The lookup runs on a
    thread that is left to finish on its own when it takes too long."""
    try:
        return socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST)
    except (socket.gaierror, UnicodeError):
        pass          # a name, not an address: look it up
    box: list = []

    def lookup() -> None:
        try:
            box.append(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except (OSError, UnicodeError) as e:
            box.append(e)

    t = threading.Thread(target=lookup, name="emblens-resolve", daemon=True)
    t.start()
    t.join(timeout_s)
    if not box:
        raise TimeoutError(f"looking up {host} took more than {seconds(timeout_s)} s")
    if isinstance(box[0], BaseException):
        raise box[0]
    return box[0]


def connect(host: str, port: int, deadline: float, infos: list[tuple] | None = None) -> socket.socket:
    """A TCP connection to the first of the host's addresses (`infos`, else looked up) that takes
    one, all before `deadline` (`socket.create_connection`'s timeout is per address)."""
    infos = infos or resolve(host, port, left(deadline))
    error: OSError = TimeoutError("the deadline passed")
    for family, kind, proto, _, address in infos:
        sock = socket.socket(family, kind, proto)
        try:
            sock.settimeout(left(deadline))
            sock.connect(address)
            return sock
        except OSError as e:
            sock.close()
            error = e
            if isinstance(e, TimeoutError):
                break
    raise error


class Watchdog:
    """Shuts a socket down at a deadline: whatever read or write is in progress then ends at once
    (a read sees the end of the stream), however slowly the server sends. `fired` tells the
    caller that this, not the server, ended the exchange."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self._sock = sock.dup()        # its own descriptor: still usable after TLS has taken `sock` over
        self._lock = threading.Lock()
        self._closed = False
        self.fired = False
        self._timer = threading.Timer(max(0.0, deadline - time.monotonic()), self._fire)
        self._timer.daemon = True
        self._timer.start()

    def _fire(self) -> None:
        with self._lock:
            if self._closed:
                return
            self.fired = True
            try:
                self._sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass           # already closed by the server

    def close(self) -> None:
        with self._lock:
            self._closed = True
        self._timer.cancel()
        self._sock.close()

    def __enter__(self) -> Watchdog:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class HeadersTooLong(Exception):
    """An answer's status line and headers went past MAX_HEADER_BYTES or MAX_HEADER_LINES."""


class _Metered:
    """The answer's stream, counting what the status line and headers take (and refusing more
    than the caps), then what the body has brought."""

    def __init__(self, fp) -> None:
        self._fp = fp
        self.head_done = False
        self.head_whole = False       # the headers ended with their blank line (not with the stream)
        self.head_lines = 0
        self.head_bytes = 0
        self.body_bytes = 0

    def readline(self, limit: int = -1) -> bytes:
        if self.head_done:
            line = self._fp.readline(limit)
            self.body_bytes += len(line)
            return line
        line = self._fp.readline(min(limit, MAX_HEADER_BYTES - self.head_bytes + 1) if limit >= 0
                                 else MAX_HEADER_BYTES - self.head_bytes + 1)
        self.head_bytes += len(line)
        self.head_lines += 1
        self.head_whole = line in (b"\r\n", b"\n")
        if self.head_bytes > MAX_HEADER_BYTES:
            raise HeadersTooLong(f"more than {MAX_HEADER_BYTES // 1024} KiB of status line and headers")
        if self.head_lines > MAX_HEADER_LINES + 2:      # the status line and the blank line that ends them
            raise HeadersTooLong(f"more than {MAX_HEADER_LINES} header lines")
        return line

    def read(self, n: int | None = -1) -> bytes:
        data = self._fp.read(n)
        self.body_bytes += len(data)
        return data

    def readinto(self, b) -> int:
        n = self._fp.readinto(b)
        self.body_bytes += n or 0
        return n

    def __getattr__(self, name: str):
        return getattr(self._fp, name)


class _Response(http.client.HTTPResponse):
    """http.client's response, reading through `_Metered`."""

    def __init__(self, sock, *args, **kwargs) -> None:
        super().__init__(sock, *args, **kwargs)
        self.fp = self.meter = _Metered(self.fp)

    def begin(self) -> None:
        super().begin()
        self.meter.head_done = True


def seconds(t: float) -> str:
    """A time limit as said in a message: `3`, `0.5` (a caller's remaining budget, 2.99999, is 3)."""
    return f"{round(t, 1):g}"


def _late(timeout_s: float, step: str, meter: _Metered | None, status: int | None) -> str:
    """Where the exchange stood when its deadline passed, in one line that says `timed out` (what
    the rules read as a timeout)."""
    t = seconds(timeout_s)
    if meter is not None and meter.head_done and meter.head_whole:
        return (f"timed out after {t} s (status {status}, the body was still coming: "
                f"{meter.body_bytes:,} bytes so far)")
    if meter is not None and meter.head_bytes:
        return (f"timed out after {t} s (the status line and headers were still coming: "
                f"{meter.head_lines} lines, {meter.head_bytes:,} bytes so far)")
    return f"timed out after {t} s ({step})"


def _send(parts, method: str, headers: dict[str, str], data: bytes | None, timeout_s: float) -> Answer:
    """One exchange, all of it before `timeout_s` has passed."""
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    deadline = time.monotonic() + timeout_s
    step = "no connection"
    sock: socket.socket | None = None
    watch: Watchdog | None = None
    conn: http.client.HTTPConnection | None = None
    made: list[_Response] = []         # the answer being read, also when reading its headers fails

    def response(sock, *args, **kwargs) -> _Response:
        made.append(_Response(sock, *args, **kwargs))
        return made[-1]

    try:
        sock = connect(host, port, deadline)
        watch = Watchdog(sock, deadline)
        sock.settimeout(left(deadline))        # a read waits no longer than the whole may take
        if parts.scheme == "https":
            step = "the TLS handshake did not finish"
            context = ssl.create_default_context()
            sock = context.wrap_socket(sock, server_hostname=host)
            conn = http.client.HTTPSConnection(host, port, timeout=timeout_s, context=context)
        else:
            conn = http.client.HTTPConnection(host, port, timeout=timeout_s)
        conn.sock = sock
        conn.response_class = response
        step = "the request was not sent"
        conn.request(method, path, body=data, headers=headers)
        step = "no answer"
        resp = conn.getresponse()
        body = resp.read(MAX_BODY + 1)
        if watch.fired:                  # the stream ended because the watchdog shut it, not the server
            raise TimeoutError
    except Exception as e:
        if (watch is not None and watch.fired) or isinstance(e, (socket.timeout, TimeoutError)):
            meter = made[0].meter if made else None
            status = made[0].status if made and meter is not None and meter.head_whole else None
            return Answer(None, error=_late(timeout_s, step, meter, status), late=True)
        return Answer(None, error=_why(e))
    finally:
        if watch is not None:
            watch.close()
        if conn is not None:
            conn.close()
        elif sock is not None:
            sock.close()
    answer = Answer(resp.status, resp.reason, [(k, v) for k, v in resp.getheaders()], body[:MAX_BODY])
    if len(body) > MAX_BODY:
        answer.note = (f"cut: the answer is longer than {MAX_BODY // 1024} KiB; only the first {MAX_BODY // 1024} KiB "
                       "were read")
    elif body.lstrip()[:1] in (b"[", b"{") and json_too_deep(body):
        answer.note = f"not read as JSON: it is nested more than {MAX_JSON_DEPTH} levels deep"
    return answer


def _why(e: Exception) -> str:
    """Why an exchange had no answer, in one line (never a header's value: it may hold the key)."""
    if isinstance(e, ssl.SSLCertVerificationError):
        return f"TLS failed: {e.verify_message or e.reason or e}"
    if isinstance(e, ssl.SSLError):
        return f"TLS failed: {e.reason or e}"
    if isinstance(e, ConnectionRefusedError):
        return f"[Errno {e.errno}] Connection refused"
    if isinstance(e, HeadersTooLong):
        return f"not an HTTP answer: {e} (stopped reading there)"
    if isinstance(e, http.client.InvalidURL):
        return "not sent: the URL holds characters that HTTP cannot carry (a space or a line break?)"
    if isinstance(e, OSError):
        return f"[Errno {e.errno}] {e.strerror}" if e.errno else f"{type(e).__name__}: {e}"
    if isinstance(e, http.client.HTTPException):
        return f"not an HTTP answer ({type(e).__name__}: {str(e)[:200]})"
    if isinstance(e, ValueError):     # a header value with a line break, or a character outside Latin-1
        return "not sent: a header holds a line break or a character that HTTP cannot carry"
    return f"{type(e).__name__}: {str(e)[:200]}"


def _masked_headers(headers, mask: Mask) -> list[dict]:
    return [{"name": k, "value": mask(f"{k}: {v}").split(": ", 1)[-1]} for k, v in headers]


def _entry(method, url, headers, data, answer: Answer, started: datetime, on_purpose: str | None,
           mask: Mask) -> dict:
    def text(data: bytes) -> str:
        return mask(data.decode("utf-8", "replace"))

    request = {"method": method, "url": shown(url, mask), "httpVersion": "HTTP/1.1",
               "headers": _masked_headers(headers.items(), mask), "queryString": [], "cookies": [],
               "headersSize": -1, "bodySize": len(data or b"")}
    if data is not None:
        request["postData"] = {"mimeType": "application/json", "text": text(data)}
    ctype = next((v for k, v in answer.headers if k.lower() == "content-type"), "")
    response = {"status": answer.status or 0, "statusText": answer.reason, "httpVersion": "HTTP/1.1",
                "headers": _masked_headers(answer.headers, mask), "cookies": [], "redirectURL": "",
                "content": {"size": len(answer.body), "mimeType": ctype, "text": text(answer.body)},
                "headersSize": -1, "bodySize": len(answer.body)}
    if answer.error or answer.note:
        # the HAR reader takes `_error` as the failure of an entry without a status; beside a
        # status it is a note on the answer (cut, not JSON), read by people
        response["_error"] = mask(redact.printable(answer.error or answer.note or "").replace("\n", " "))
    if answer.note and answer.note.startswith("cut"):
        response["content"]["comment"] = answer.note
    entry = {"startedDateTime": started.isoformat().replace("+00:00", "Z"), "time": round(answer.ms, 1),
             "request": request, "response": response, "cache": {},
             "timings": {"send": 0, "wait": round(answer.ms, 1), "receive": 0}}
    if on_purpose:
        entry["comment"] = f"{ON_PURPOSE}: {on_purpose}"
    return entry
