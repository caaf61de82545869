"""`emblens probe`: the troubleshooting guides' checklist, run against a live OpenAI-compatible
endpoint. A fixed, small set of read-only checks (at most `MAX_REQUESTS` requests, no user data), each
ending pass / warn / fail / skip; every exchange is recorded as a HAR entry, so that the same rules
read it.

A server that does not answer in time costs one timeout, not one per check: each exchange has one
deadline for the whole of it (`httprec`), and once one has run out the probe sends nothing more, so
it ends within the timeout (plus the checks that came before) whatever the server does.

The key it is given is a secret like any other, but known in advance: `key_mask` has the run's
redactor remember it (raw, unquoted and base64), so an echo of it in an answer's body or headers is
masked in the HAR, in probe.json, in the checks printed and in the report.

    result = run_probe("http://127.0.0.1:8000/v1", model="Qwen3-Embedding-4B", api_key=key)
    result.checks[0].outcome      # "pass"
    result.har()                  # the exchanges, masked

No printing here; `emblens.frontends.cli` writes the bundle and the report.
"""

from __future__ import annotations

import base64
import difflib
import math
import re
import socket
import ssl
import time
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from urllib.parse import urlsplit

from emblens._version import __version__
from emblens.events import redact
from emblens.frontends.httprec import Answer, LimitReached, Mask, Recorder, Watchdog, bases, connect, har, resolve, shown

MAX_REQUESTS = 20
TIMEOUT_S = 3.0          # the whole of each exchange: connect, send, headers, body
BUDGET_S = 6.0           # no request starts after this: with one timeout, the probe ends within 10 s
SLOW_MS = 2000.0         # an answer slower than this is worth a warning for a one-word request
PROBE_TEXT = "emblens probe"   # the only input sent: no user data
OUTCOMES = ("pass", "warn", "fail", "skip")
EMBED_HINT = ("embed", "e5-", "bge-", "gte-", "-e5", "minilm", "mpnet", "nomic", "mxbai", "jina", "arctic-embed")


@dataclass
class Check:
    id: str
    title: str
    outcome: str = "skip"
    detail: str = ""
    requests: list[int] = field(default_factory=list)    # indices into the HAR's entries


@dataclass
class ProbeResult:
    url: str
    model: str | None
    started: str
    checks: list[Check]
    entries: list[dict]
    served: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def har(self) -> dict:
        return har(self.entries)

    def to_dict(self) -> dict:
        return {"emblens": "probe", "version": __version__, "url": self.url, "model": self.model,
                "started": self.started, "seconds": round(self.seconds, 2), "requests": len(self.entries),
                "served_models": self.served, "checks": [asdict(c) for c in self.checks]}


class _Stop(Exception):
    """Nothing more can be checked (no name, no connection)."""


def key_problem(key: str) -> str | None:
    """Why a key cannot go into an HTTP header at all, in words that never show it: a line
    break (two values in one variable, a pasted file) or a character outside Latin-1 (a curly
    quote from a document)."""
    for i, c in enumerate(key):
        if c in "\r\n":
            return f"a line break at character {i + 1}"
        if ord(c) < 0x20 or ord(c) == 0x7F:
            return f"a control character (U+{ord(c):04X}) at character {i + 1}"
        if ord(c) > 0xFF:
            return f"a character HTTP headers cannot carry (U+{ord(c):04X}) at character {i + 1}"
    return None


def key_mask(redactor: redact.Redactor, key: str | None) -> Mask:
    """The masking of a probe with this key: the run's redactor, told about the key first (as sent,
    without stray quotes, and base64-encoded as a gateway might echo it), so that it masks them
    wherever they appear, an echo in a 401's body or headers included. A key too short or too
    plain for the redactor to remember (`redact._rememberable`) is replaced here after it, as a
    whole word."""
    if not key:
        return redactor.text
    forms = {key, key.strip("\"' ")}
    forms |= {base64.b64encode(f.encode("latin-1", "replace")).decode() for f in list(forms)}
    # quotes alone, or a placeholder (EMPTY), are not a secret
    forms = {f for f in forms if f.strip("\"' ") and redact.shape(f) != f}
    for f in sorted(forms, key=len, reverse=True):
        redactor.remember(f, "probe key")
    if not forms:
        return redactor.text
    words = "|".join(re.escape(f) for f in sorted(forms, key=len, reverse=True))
    rx = re.compile(rf"(?<![A-Za-z0-9_\-+/=])(?:{words})(?![A-Za-z0-9_\-+/=])")

    def mask(text: str) -> str:
        return rx.sub(lambda m: redact.shape(m.group()), redactor.text(text))

    return mask


def plan(url: str, model: str | None, has_key: bool) -> list[str]:
    """What `--dry-run` prints: every request the probe may send, and when."""
    b = bases(url)
    key = "Authorization: Bearer {the key from the variable}" if has_key else "no Authorization header"
    name = model or "{first served name}"
    lines = [
        f"no request: resolve {urlsplit(b.root).hostname}, open a TCP connection"
        + (", TLS handshake" if b.root.startswith("https") else "")
        + "; read HTTP_PROXY / HTTPS_PROXY / NO_PROXY from the environment",
        f"GET  {b.root}/health",
        f"GET  {b.api}/models  ({key})",
    ]
    if has_key:
        lines += [f"GET  {b.api}/models  (no Authorization header, on purpose: does the server require a key?)",
                  f"GET  {b.api}/models  (Authorization: <the key> without 'Bearer ', on purpose: another scheme)"]
    lines += [
        f"GET  {b.root}/models or {b.api}/models  (only if {b.api}/models is not found: which base URL works)",
        f'POST {b.api}/embeddings  {{"model": "{name}", "input": ["{PROBE_TEXT}"], "encoding_format": "float"}}'
        "  (an embedding model)",
        f'POST {b.api}/embeddings  {{..., "dimensions": <half the size>}}  (only if the first call answered: '
        "does it take `dimensions`?)",
        f'POST {b.api}/chat/completions  {{"model": "{name}", "messages": [{{"role": "user", "content": "Say OK."}}], '
        '"max_tokens": 1}  (a chat model, or when the embeddings call is refused)',
        "POST the same call with the name as given, when it is not a served name (to show the server's answer)",
        f"at most {MAX_REQUESTS} requests, {TIMEOUT_S:g} s for each (connect to last byte), none after one "
        "that ran out of time; no input of yours is sent",
    ]
    if "@" in urlsplit(url.strip()).netloc:
        lines.append("the user name and password in the URL are not sent (nor shown)")
    return lines


class Prober:
    def __init__(self, url: str, model: str | None, api_key: str | None, key_var: str | None,
                 timeout_s: float = TIMEOUT_S, on_check: Callable[[Check], None] | None = None,
                 mask: Mask = redact.mask_text) -> None:
        self.b = bases(url)
        self.model = model
        self.key = api_key
        self.key_var = key_var
        self.mask = mask
        self.rec = Recorder(timeout_s=timeout_s, max_requests=MAX_REQUESTS, mask=mask)
        self.timeout_s = timeout_s
        self.checks: list[Check] = []
        self.budget_s = max(BUDGET_S, 2 * timeout_s)     # no new request after this long
        self.deadline = time.monotonic() + self.budget_s
        self.served: list[str] = []
        self.max_len: dict[str, int] = {}
        self.on_check = on_check

    # -- helpers -------------------------------------------------------------------------------
    def _check(self, id: str, title: str, outcome: str, detail: str, requests: list[int] | None = None) -> Check:
        # one line: a server's message may hold line breaks, and each check is one line on stderr
        c = Check(id, title, outcome, redact.printable(" ".join(self.mask(detail).split())), requests or [])
        self.checks.append(c)
        if self.on_check:
            self.on_check(c)
        return c

    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"} if self.key else {}

    def _ask(self, method: str, url: str, body: object = None, headers: dict | None = None,
             on_purpose: str | None = None) -> tuple[Answer, int]:
        if time.monotonic() > self.deadline:
            raise LimitReached(f"stopped after {self.budget_s:g} s (a server that answers slowly or not at all)")
        if self.rec.gave_up:
            raise LimitReached(f"stopped: {self.rec.gave_up}")
        a = self.rec.request(method, url, headers=self._auth() if headers is None else headers, body=body,
                             on_purpose=on_purpose)
        return a, self.rec.sent - 1

    @staticmethod
    def _said(a: Answer) -> str:
        if a.status is None:
            return a.error or "no answer"
        doc = a.json()
        msg = None
        if isinstance(doc, dict):
            err = doc.get("error")
            msg = (err.get("message") if isinstance(err, dict) else err) or doc.get("message") or doc.get("detail")
        if a.note:       # cut, or not JSON: the body's first line says nothing useful then
            return f"{a.status} {a.reason} ({a.note})"
        text = str(msg) if msg else a.body.decode("utf-8", "replace").strip().splitlines()[0][:160] if a.body else ""
        return f"{a.status} {a.reason}" + (f": {text[:200]}" if text else "")

    # -- the checks ----------------------------------------------------------------------------
    def reach(self) -> None:
        parts = urlsplit(self.b.root)
        host, port = parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)
        deadline = time.monotonic() + self.timeout_s      # the lookup, the connection and TLS together
        try:
            infos = resolve(host, port, self.timeout_s)
        except TimeoutError:
            self._check("reach.dns", "The host name resolves", "fail",
                        f"looking up {host} took more than {self.timeout_s:g} s: the name server does not answer. "
                        "Use the IP address, or check the resolver (/etc/resolv.conf)")
            raise _Stop from None
        except (OSError, UnicodeError) as e:
            why = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
            self._check("reach.dns", "The host name resolves", "fail",
                        f"{host} does not resolve ({why}); check the spelling, or use the service name or "
                        "IP address the client can reach")
            raise _Stop from None
        address = infos[0][4][0]
        self._check("reach.dns", "The host name resolves", "pass", f"{host} -> {address}")
        proxy = self._proxy(parts.scheme, host)
        if proxy:
            self._check("reach.proxy", "No proxy from the environment is in the way", "warn",
                        f"{parts.scheme.upper()}_PROXY is set ({proxy}) and NO_PROXY does not cover {host}: the openai "
                        f"SDK (httpx), curl and requests send this call through that proxy. emblens probes directly. "
                        f"If the client fails and this probe passes, add {host} to NO_PROXY")
        else:
            self._check("reach.proxy", "No proxy from the environment is in the way", "pass",
                        "no HTTP(S)_PROXY applies to this host")
        t0 = time.perf_counter()
        try:
            sock = connect(host, port, deadline, infos)
        except OSError as e:
            timed_out = isinstance(e, (socket.timeout, TimeoutError))
            why = "refused: nothing listens there" if isinstance(e, ConnectionRefusedError) else (
                f"timed out after {self.timeout_s:g} s: a firewall drops it, or the host is wrong"
                if timed_out else str(e.strerror or e))
            if timed_out:
                # asking again would wait as long: the attempt just made stands as the evidence
                a, i = self.rec.unanswered("GET", f"{self.b.api}/models", f"timed out after {self.timeout_s:g} s "
                                           "(no connection)", headers=self._auth()), self.rec.sent - 1
            else:
                a, i = self._ask("GET", f"{self.b.api}/models")      # the refusal, as evidence for the rules
            self._check("reach.tcp", "Something listens on the port", "fail",
                        f"{host}:{port}: {why}. Is the server running, and on this port? (GET /v1/models: {self._said(a)})",
                        [i])
            raise _Stop from None
        with sock:
            ms = (time.perf_counter() - t0) * 1000
            self._check("reach.tcp", "Something listens on the port", "pass",
                        f"{host}:{port} accepted a connection in {ms:.0f} ms")
            if parts.scheme == "https":
                # a server that sends its handshake a byte at a time must not outlast the deadline
                with Watchdog(sock, deadline) as watch:
                    self._tls(sock, host, watch)

    def _tls(self, sock: socket.socket, host: str, watch: Watchdog) -> None:
        try:
            with ssl.create_default_context().wrap_socket(sock, server_hostname=host) as tls:
                cert = tls.getpeercert() or {}
                if watch.fired:
                    raise TimeoutError
                self._check("reach.tls", "TLS: the certificate is valid for the host", "pass",
                            f"{tls.version()}, certificate valid until {cert.get('notAfter', '?')}")
        except ssl.SSLCertVerificationError as e:
            self._check("reach.tls", "TLS: the certificate is valid for the host", "fail",
                        f"{e.verify_message}: clients refuse this server. Use a certificate for {host}, or point "
                        "SSL_CERT_FILE / REQUESTS_CA_BUNDLE at your CA bundle")
            raise _Stop from None
        except (ssl.SSLError, OSError) as e:
            if watch.fired or isinstance(e, (socket.timeout, TimeoutError)):
                self._check("reach.tls", "TLS: the certificate is valid for the host", "fail",
                            f"the TLS handshake did not finish within {self.timeout_s:g} s (timed out): the server "
                            "says nothing, or too slowly; is it TLS on this port?")
            else:
                self._check("reach.tls", "TLS: the certificate is valid for the host", "fail",
                            f"the TLS handshake failed ({e}); is it plain HTTP on this port? Try http://")
            raise _Stop from None

    @staticmethod
    def _proxy(scheme: str, host: str) -> str | None:
        proxies = urllib.request.getproxies()
        proxy = proxies.get(scheme)
        if not proxy or urllib.request.proxy_bypass(host):
            return None
        return shown(proxy)

    def health(self) -> None:
        a, i = self._ask("GET", f"{self.b.root}/health", headers={})
        if a.status == 200:
            self._check("health", "GET /health answers 200", "pass", f"200 in {a.ms:.0f} ms", [i])
        elif a.status is None:
            self._check("health", "GET /health answers 200", "fail", self._said(a), [i])
        elif a.status in (502, 503, 504):
            self._check("health", "GET /health answers 200", "fail",
                        f"{self._said(a)}: something in front of the server answered, or the server is not ready", [i])
        else:
            self._check("health", "GET /health answers 200", "warn",
                        f"{self._said(a)} (vLLM, SGLang and TEI answer 200 here; another server may not have it)", [i])

    def models(self) -> Answer:
        a, i = self._ask("GET", f"{self.b.api}/models")
        doc = a.json()
        if a.status == 200 and isinstance(doc, dict) and isinstance(doc.get("data"), list):
            for m in doc["data"][:50]:
                if isinstance(m, dict) and isinstance(m.get("id"), str):
                    self.served.append(m["id"][:200])
                    if isinstance(m.get("max_model_len"), int):
                        self.max_len[m["id"][:200]] = m["max_model_len"]
            lens = ", ".join(f"{n} (max_model_len {self.max_len[n]:,})" if n in self.max_len else n for n in self.served)
            self._check("models", "GET /v1/models lists the served models", "pass" if self.served else "warn",
                        f"serves {lens}" if self.served else "the list is empty", [i])
        elif a.status == 401:
            self._check("models", "GET /v1/models lists the served models", "fail",
                        f"{self._said(a)}: the server wants a key" + ("" if self.key else " and none was sent"), [i])
        elif a.status == 404:
            self._check("models", "GET /v1/models lists the served models", "fail",
                        f"{self.b.api}/models: {self._said(a)}", [i])
        else:
            self._check("models", "GET /v1/models lists the served models", "fail", self._said(a), [i])
        return a

    def auth(self, keyed: Answer, keyed_index: int) -> None:
        var = self.key_var or "the variable"
        if not self.key:
            if keyed.status == 401:
                self._check("auth.required", "Does the server require a key?", "fail",
                            "yes: it answered 401 without one. Pass the key with --api-key-env VAR (the variable "
                            "holding the key the server was started with)", [keyed_index])
            elif keyed.status == 200:
                self._check("auth.required", "Does the server require a key?", "pass",
                            "no: it answered without a key (any placeholder, such as EMPTY, works for the SDK)",
                            [keyed_index])
            return
        bare, i = self._ask("GET", f"{self.b.api}/models", headers={}, on_purpose="no key, to see whether one is required")
        required = bare.status == 401
        if bare.status == 200:
            self._check("auth.required", "Does the server require a key?", "warn",
                        "no: it answered without a key, so the key is not checked (anyone who reaches the port can "
                        "call it; give the server an api-key option or VLLM_API_KEY to require one)", [i])
        elif required:
            self._check("auth.required", "Does the server require a key?", "pass", "yes: 401 without a key", [i])
        if keyed.status == 401:
            self._check("auth.key", f"The key from {var} is accepted", "fail",
                        f"refused: 401 with `Authorization: Bearer <key: {len(self.key)} chars>`. The key in {var} is "
                        "not the one the server was started with (VLLM_API_KEY, or its api-key option), or has "
                        "stray whitespace or quotes", [keyed_index])
        elif keyed.status == 200:
            self._check("auth.key", f"The key from {var} is accepted", "pass",
                        "accepted" if required else "the server took it (it does not check keys)", [keyed_index])
        if required or keyed.status == 401:
            wrong, j = self._ask("GET", f"{self.b.api}/models", headers={"Authorization": self.key},
                                 on_purpose="the key without 'Bearer ', to see whether the scheme matters")
            if wrong.status == 200:
                self._check("auth.scheme", "Only `Authorization: Bearer {key}` is accepted", "warn",
                            "the key was accepted without 'Bearer ': the server (or a proxy) is lenient", [j])
            else:
                self._check("auth.scheme", "Only `Authorization: Bearer {key}` is accepted", "pass",
                            f"without 'Bearer ' it answered {wrong.status or wrong.error}: send `Bearer {{key}}` (the SDK does)",
                            [j])

    def base_url(self, models: Answer) -> None:
        if models.status == 200:
            hint = "" if self.b.given_v1 else " (the URL given lacks /v1: the SDK's base_url must end in /v1)"
            self._check("base_url", "The base URL", "pass" if self.b.given_v1 else "warn",
                        f"base_url={self.b.api}{hint}")
            return
        if models.status != 404:
            return
        alt, i = self._ask("GET", f"{self.b.root}/models")
        if alt.status == 200:
            self._check("base_url", "The base URL", "fail",
                        f"{self.b.api}/models is not found but {self.b.root}/models answers: this server has no /v1 "
                        f"prefix, so base_url={self.b.root}", [i])
        else:
            self._check("base_url", "The base URL", "fail",
                        f"neither {self.b.api}/models nor {self.b.root}/models answers ({self._said(alt)}): this is "
                        "not an OpenAI-compatible server at this path, or a proxy in front maps another prefix", [i])

    def model_name(self) -> str | None:
        """The name to call with: the one given when served, else the first served name."""
        if not self.served:
            if self.model:
                self._check("model.name", "The model name is served", "skip",
                            "the served names are not known (GET /v1/models did not answer with a list)")
            return self.model
        if not self.model:
            self._check("model.name", "The model name is served", "pass",
                        f"no --model given: using {self.served[0]}")
            return self.served[0]
        if self.model in self.served:
            self._check("model.name", "The model name is served", "pass", f"{self.model} is served")
            return self.model
        same = [s for s in self.served if s.lower() == self.model.lower()]
        close = same or difflib.get_close_matches(self.model, self.served, n=1, cutoff=0.6)
        body = self._call_body(self.model)
        a, i = self._ask("POST", f"{self.b.api}/{self._route(self.model)}", body=body)
        if same:
            detail = (f"{self.model!r} differs from the served {same[0]!r} only in case: names are case-sensitive. "
                      f"Use model={same[0]!r}")
        elif close:
            detail = f"{self.model!r} is not served; did you mean {close[0]!r}? Served: {', '.join(self.served)}"
        else:
            detail = f"{self.model!r} is not served. Served: {', '.join(self.served)} (or start the server with " \
                     f"--served-model-name {self.model})"
        self._check("model.name", "The model name is served", "fail", f"{detail}. The server said: {self._said(a)}", [i])
        return close[0] if close else self.served[0]

    @staticmethod
    def _route(name: str | None) -> str:
        return "embeddings" if name and any(h in name.lower() for h in EMBED_HINT) else "chat/completions"

    @staticmethod
    def _call_body(name: str | None, route: str | None = None) -> dict:
        route = route or Prober._route(name)
        if route == "embeddings":
            return {"model": name, "input": [PROBE_TEXT], "encoding_format": "float"}
        return {"model": name, "messages": [{"role": "user", "content": "Say OK."}], "max_tokens": 1}

    def call(self, name: str | None) -> None:
        if not name:
            self._check("call", "One tiny call", "skip", "no model name (pass --model NAME)")
            return
        first = self._route(name)
        order = [first, "chat/completions" if first == "embeddings" else "embeddings"]
        for n, route in enumerate(order):
            a, i = self._ask("POST", f"{self.b.api}/{route}", body=self._call_body(name, route))
            if a.status == 200:
                if route == "embeddings":
                    self._embedding(name, a, i)
                else:
                    self._check("call.chat", "A one-token chat call", "pass", f"200 in {a.ms:.0f} ms", [i])
                return
            refused = a.status in (400, 404, 405, 422, 501) and n == 0
            if not refused:
                what = "call.embeddings" if route == "embeddings" else "call.chat"
                self._check(what, f"One tiny {'embeddings' if route == 'embeddings' else 'chat'} call", "fail",
                            self._said(a), [i])
                return
            self._check("call." + ("embeddings" if route == "embeddings" else "chat"),
                        f"One tiny {'embeddings' if route == 'embeddings' else 'chat'} call", "warn",
                        f"{self._said(a)}; trying the other kind of call", [i])

    def _embedding(self, name: str, a: Answer, i: int) -> None:
        from emblens.knowledge import modeldata
        from emblens.rules import builtin_dir

        doc = a.json()
        try:
            vec = doc["data"][0]["embedding"]
            size = len(vec)
            norm = math.sqrt(sum(float(x) * float(x) for x in vec))
        except (KeyError, IndexError, TypeError, ValueError):
            self._check("call.embeddings", "One tiny embeddings call", "fail",
                        "200, but the answer holds no float vector (data[0].embedding)", [i])
            return
        normal = abs(norm - 1.0) < 0.01
        self._check("call.embeddings", "One tiny embeddings call", "pass",
                    f"a {size}-dimensional vector in {a.ms:.0f} ms, {'normalised (length 1.0)' if normal else f'length {norm:.3f}: not normalised; normalise before cosine or dot-product search'}",
                    [i])
        data = modeldata.load([builtin_dir() / modeldata.FILE])
        known = data.dimension(name)
        if known and known != size:
            self._check("embed.size", "The vector size is the model's", "warn",
                        f"{name} gives {known}-dimensional vectors, this server {size}: another model is behind the name, "
                        "or the server truncates (Matryoshka)")
        half = max(1, size // 2)
        b, j = self._ask("POST", f"{self.b.api}/embeddings", body={**self._call_body(name, "embeddings"), "dimensions": half},
                         on_purpose="`dimensions`, to see whether the server takes it")
        got = None
        try:
            got = len(b.json()["data"][0]["embedding"]) if b.status == 200 else None
        except (KeyError, IndexError, TypeError):
            got = None
        if got == half:
            self._check("embed.dimensions", "`dimensions` (shorter vectors)", "pass", f"dimensions={half} gave {half}", [j])
        elif got is not None:
            self._check("embed.dimensions", "`dimensions` (shorter vectors)", "warn",
                        f"dimensions={half} was ignored: the vector has {got} values; truncate and re-normalise "
                        "yourself, or do not send it", [j])
        else:
            self._check("embed.dimensions", "`dimensions` (shorter vectors)", "warn",
                        f"dimensions={half} was refused ({self._said(b)}): do not send `dimensions` to this server "
                        "(for vLLM, only Matryoshka models take it)", [j])
        fam = data.family(name)
        if fam is not None:
            self._check("embed.prefix", "What inputs should start with", "pass",
                        f"{name} is {fam.name}: " + ("queries and documents both carry a prefix: "
                                                     if fam.sides == "both" else "queries carry an instruction prefix: ")
                        + ", ".join(repr(p) for p in fam.prefixes) + " (the server adds none; without it, search quality drops)")

    def latency(self) -> None:
        answered = [e for e in self.rec.entries if e["response"]["status"]]
        if not answered:
            return
        times = sorted(e["time"] for e in answered)
        slowest = times[-1]
        med = times[len(times) // 2]
        timed_out = [e for e in self.rec.entries if "timed out" in e["response"].get("_error", "")]
        outcome = "fail" if timed_out else "warn" if slowest > SLOW_MS else "pass"
        detail = f"median {med:.0f} ms, slowest {slowest:.0f} ms over {len(answered)} answers"
        if timed_out:
            detail += f"; {len(timed_out)} request(s) got no answer within {self.timeout_s:g} s"
        self._check("latency", "Answers come quickly", outcome, detail)

    def run(self) -> None:
        try:
            self.reach()
            self.health()
            models = self.models()
            models_i = self.rec.sent - 1
            self.auth(models, models_i)
            self.base_url(models)
            if models.status in (200, None) or self.served or self.model:
                name = self.model_name()
                if models.status != 401:
                    self.call(name)
        except _Stop:
            pass
        except LimitReached as e:
            self._check("limit", "The probe's budget", "warn", f"{e}: the checks that were left were not run")
        self.latency()


def run_probe(url: str, *, model: str | None = None, api_key: str | None = None, key_var: str | None = None,
              timeout_s: float = TIMEOUT_S, on_check: Callable[[Check], None] | None = None,
              mask: Mask | None = None) -> ProbeResult:
    """Run the checks. Raises ValueError for a URL that is not http(s). `mask`: what every
    exchange, check and URL goes through (`key_mask` of the run's redactor); by default the
    catalogue, with the key remembered."""
    started = datetime.now(timezone.utc)
    t0 = time.perf_counter()
    mask = mask or key_mask(redact.Redactor(), api_key)
    p = Prober(url, model, api_key, key_var, timeout_s, on_check, mask)
    p.run()
    return ProbeResult(url=shown(url, mask), model=model, started=started.isoformat().replace("+00:00", "Z"),
                       checks=p.checks, entries=p.rec.entries, served=p.served, seconds=time.perf_counter() - t0)
