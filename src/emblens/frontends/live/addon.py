"""emblens as a mitmproxy addon: the same sources, rules and reports, live in front of a server.

    mitmdump --mode reverse:http://127.0.0.1:8000 -p 8001 -s "$(emblens addon-path)"
    emblens live --upstream http://127.0.0.1:8000 --port 8001        # the same, in one command

How it stays out of the way of traffic:
- The `response` and `error` hooks only append the flow to a bounded queue (O(1), no parsing);
  a background thread turns flows into masked events and hands them to a child process, which
  runs the rules every `emblens_interval` ms and prints each finding once when it first appears,
  then again only when its count doubles. The rules run in their own process because a thread
  shares the interpreter lock with the proxy: while they ran, requests waited tens of ms.
- Nothing in a flow is ever changed; every error inside the addon is logged and swallowed.
- Memory is bounded: at most `emblens_window` exchanges are kept as events (the oldest go first);
  captured flows, when asked for, go straight to disk.

Nothing seen is lost on the way out. Ctrl-C, SIGTERM (to the proxy alone or to its whole group, as
a service manager sends it) and a closed terminal all end in mitmproxy's `done`: the queue is read
to the end, the rules run once more over every exchange kept, and each report is written whole
(`emblens.outfiles`: a failure leaves the previous report as it was). A finding printed live whose
exchanges have since left the window is still in the report, as it was last seen. The rules
process ignores those signals and stops when told (or, if the proxy dies, when its pipe closes,
writing the reports itself); the proxy keeps its own copy of the window, so a rules process that
was killed costs nothing either. Flows are saved to a private temporary file beside `--save`'s
path and renamed into place at the end: the file there is always complete. WebSocket flows are
saved when they close, with their messages.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from pathlib import Path

from emblens import outfiles
from emblens.errors import EmblensError
from emblens.events import redact
from emblens.events.redact import Redactor

log = logging.getLogger("emblens")

DEFAULT_WINDOW = 50_000
QUEUE_MAX = 10_000
TEE_BYTES = 64 * 1024          # of a streamed body, what the rules see (error bodies are short)
STREAM_OVER = 1024 * 1024      # bodies larger than this (or of unknown length) are streamed, not buffered
MODELS_TIMEOUT_S = 3.0         # asking the upstream for /v1/models (at start, and after a 404 names a model)
MODELS_MAX_BYTES = 1024 * 1024
# This thread shares the interpreter lock with the proxy, and a thread that wants the lock waits up
# to 5 ms for the running one to give it up: a request, which needs it a dozen times, waited tens of
# ms while flows were read. Reading gives the lock up after every few flows.
YIELD_EVERY = 8
YIELD_S = 0.0005
MODELS_EVERY_S = 30.0          # at most one ask after 404s in this many seconds


def _now():
    from datetime import UTC, datetime

    return datetime.now(UTC).replace(tzinfo=None)


def upstream_of(modes) -> tuple[str, str, int] | None:
    """(scheme, host, port) of the reverse-proxy upstream in mitmproxy's `mode` option, or None."""
    from mitmproxy.proxy.mode_specs import ProxyMode, ReverseMode

    for spec in modes or ():
        try:
            mode = ProxyMode.parse(spec)
        except ValueError:
            continue
        if isinstance(mode, ReverseMode):
            host, port = mode.address
            return mode.scheme, host, port
    return None


def connect_error_row(host, port, error: str, why: str = "") -> dict:
    """A connection to the upstream that failed, as an event the rules read (net.connection_refused
    names the upstream from it). In reverse mode mitmproxy connects when a client does, before any
    request exists: no flow records it, only this."""
    now = _now()
    error = redact.mask_text(str(error or "connection failed"))[:300]
    text = f"error establishing server connection to {host}:{port}{why}: {error}"
    return {"kind": "log", "origin": "capture", "level": "ERROR", "ts": now, "ts_text": now.isoformat(sep=" "),
            "http_host": str(host), "http_port": int(port) if port is not None else None, "resp_error": error,
            "message": text, "text": text}


def ask_models(scheme: str, host: str, port: int, why: str, authorization: str | None = None) -> list[dict]:
    """GET /v1/models on the upstream, as emblens's own exchange: the rows of its answer (and of
    the served names) for the rules, so that a did-you-mean names what is really served; or the
    refused connection. `authorization`: the header of a client's request seen through the proxy
    (held in memory only, never written), so that a server that wants a key lists its models;
    without one, a 401 is said as the list refused, not as a client's failure."""
    import json
    import urllib.error
    import urllib.request

    from emblens.formats import exchange as traffic

    url = f"{scheme}://{host}:{port}/v1/models"
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))    # never through HTTP(S)_PROXY
    status, body, reason = None, b"", ""
    try:
        headers = {"User-Agent": "emblens", **({"Authorization": authorization} if authorization else {})}
        with opener.open(urllib.request.Request(url, headers=headers), timeout=MODELS_TIMEOUT_S) as r:
            status, reason, body = r.status, r.reason, r.read(MODELS_MAX_BYTES)
    except urllib.error.HTTPError as e:
        status, reason, body = e.code, e.reason, e.read(MODELS_MAX_BYTES)
    except (OSError, ValueError) as e:
        reason = getattr(e, "reason", e)
        return [connect_error_row(host, port, f"{type(reason).__name__}: {reason}" if isinstance(reason, OSError)
                                  else str(reason), f" (GET /v1/models, asked by emblens {why})")]
    now = _now()
    try:
        parsed = json.loads(body) if body else None
    except ValueError:
        parsed = None
    row = {"kind": "http", "origin": "capture", "ts": now, "ts_text": now.isoformat(sep=" "), "http_method": "GET",
           "http_path": "/v1/models", "http_host": host, "http_port": port, "http_status": status,
           "level": "ERROR" if status >= 400 else "INFO",
           **traffic.response_summary("/v1/models", status, parsed, body)}
    answer = row.get("resp_models") or row.get("resp_error") or reason
    if status in (401, 403):
        answer = (f"{answer}; the server did not list its models to emblens "
                  + ("with the key of the client's requests" if authorization else
                     "(it wants a key, and no client request with one had passed yet)"))
    row["text"] = row["message"] = redact.mask_text(f"GET {url} (asked by emblens {why}) -> {status} {reason}: {answer}")
    fact = traffic.models_fact(row)
    # the served names are what it is asked for; the exchange itself is emblens's, not a client's: a
    # 401 to it (no key sent) is no client sending no key, and it is no request the traffic counts
    row.update(kind="log", level="WARNING" if status >= 400 else "INFO")
    return [row] + ([fact] if fact else [])


def _authorization(flow) -> str | None:
    """The Authorization header of a client's request that the upstream accepted, if any."""
    try:
        response = getattr(flow, "response", None)
        if response is None or response.status_code in (401, 403):
            return None
        value = flow.request.headers.get("authorization")
        return value if value and len(value) <= 4096 else None
    except Exception:
        return None


def _should_stream(message) -> bool:
    """Server-sent events, chunked bodies of unknown length and large bodies pass through as
    streams: buffering them delays every chat token until the answer ends, and holds the whole
    body in the proxy's memory."""
    kind = message.headers.get("content-type", "")
    if "text/event-stream" in kind or "application/x-ndjson" in kind:
        return True
    length = message.headers.get("content-length")
    if length is None:
        return "chunked" in message.headers.get("transfer-encoding", "")
    try:
        return int(length) > STREAM_OVER
    except ValueError:
        return True


def _tee(flow, side: str) -> None:
    """Stream one side of a flow, keeping its first TEE_BYTES for the rules."""
    kept = bytearray()

    def pass_through(chunk: bytes) -> bytes:
        if len(kept) < TEE_BYTES:
            kept.extend(chunk[: TEE_BYTES - len(kept)])
        return chunk

    getattr(flow, side).stream = pass_through
    setattr(flow, f"emblens_{side}_head", kept)     # an attribute, not metadata: metadata is saved with the flow


def _stream_if_needed(flow, side: str) -> None:
    try:
        if _should_stream(getattr(flow, side)):
            _tee(flow, side)
    except Exception:  # never raise into mitmproxy
        pass


class EmblensAddon:
    def __init__(self) -> None:
        self._queue: deque = deque(maxlen=QUEUE_MAX)   # flows waiting for the worker
        self._rows: deque = deque(maxlen=DEFAULT_WINDOW)
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._reported: dict[str, int] = {}
        self._writer = None
        self._save_file = None
        self._saving = None     # the `outfiles.replacing` of the flow file: renamed into place when closed
        self._save_path: Path | None = None
        self._save_redactor = Redactor()   # the saved flows' own: a key seen in one is masked in the next
        self._open_ws: dict[str, object] = {}   # WebSocket flows not closed yet: saved when they are
        self.saved = 0
        self._announced: dict[str, tuple[object, int]] = {}   # rule -> (the finding as last seen, its last line)
        self._ruleset = None
        self._dirty = False
        self._interval_s = 1.0
        self.seen = 0
        self.dropped = 0
        self.cpu_s = 0.0       # CPU time the worker used (reading flows, running the rules)
        self._took_s = 0.0     # how long the last run of the rules took
        self._child = None     # the rules process (`running` starts it; without it, the rules run here)
        self._outbox: list[dict] = []
        self._dirs: list[str] = []
        self._upstream: tuple[str, str, int] | None = None
        self._asked_at = 0.0
        self._authorization: str | None = None    # the last key a client sent that the upstream took (memory only)
        self._asked_with_key = False
        self._redactor = Redactor()   # masks every flow as it is read, and counts what it masked, for the report
        self.analysis = None   # the last Analysis, for the reports

    # -- mitmproxy hooks ------------------------------------------------------------------------
    def load(self, loader) -> None:
        loader.add_option("emblens_rules", str, "", "Extra emblens rule folders, separated by commas.")
        loader.add_option("emblens_report", str, "emblens-report.md", "Markdown report written on exit ('' for none).")
        loader.add_option("emblens_json", str, "emblens-report.json", "JSON report written on exit ('' for none).")
        loader.add_option("emblens_save", str, "", "Also write the flows to this file (0600, credentials masked), "
                                                   "for `emblens analyze` later.")
        loader.add_option("emblens_save_raw", bool, False, "Save flows with their credentials as they were sent.")
        # numbers are declared as text and checked in `configure`: an int option given a bad value
        # makes mitmproxy drop the whole script without a word
        loader.add_option("emblens_interval", str, "1000", "How often the rules run, in milliseconds (at least 50).")
        loader.add_option("emblens_window", str, str(DEFAULT_WINDOW), "How many recent exchanges are kept for the rules "
                                                                     "(at least 100).")

    def configure(self, updated) -> None:
        from mitmproxy import ctx

        for name, least in (("emblens_interval", 50), ("emblens_window", 100)):
            if name in updated:
                value = getattr(ctx.options, name)
                if not value.strip().isdigit() or int(value) < least:
                    # one line; an error logged at start-up makes mitmdump stop (exit 1)
                    log.error(f"emblens: error: --set {name}={value}: expected a whole number, at least {least}")
                    return
        self._interval_s = int(ctx.options.emblens_interval) / 1000
        try:
            if "emblens_rules" in updated or self._ruleset is None:
                from emblens.rules.loader import load_rules

                dirs = [d.strip() for d in ctx.options.emblens_rules.split(",") if d.strip()]
                self._ruleset = load_rules(dirs)
                self._dirs = dirs
                log.warning(f"emblens: watching traffic with {len(self._ruleset.rules)} rules")
            if "emblens_window" in updated:
                with self._lock:
                    self._rows = deque(self._rows, maxlen=int(ctx.options.emblens_window))
            if "emblens_save" in updated and ctx.options.emblens_save:
                from mitmproxy.io import FlowWriter

                self._close_writer()
                path = Path(ctx.options.emblens_save).expanduser()
                # written as flows come, to a private temporary file renamed over `path` when the run
                # ends: an interrupted run leaves a whole file, never half a flow
                saving = outfiles.replacing(path, private=True)
                self._save_file = saving.__enter__()
                self._saving, self._save_path = saving, path
                self._writer = FlowWriter(self._save_file)
                if ctx.options.emblens_save_raw:
                    log.warning(f"emblens: saving flows to {path} WITH their credentials (bearer tokens, API keys, "
                                "cookies); the file is readable by you only: do not attach it to a ticket")
                else:
                    log.warning(f"emblens: saving flows to {path} (mode 0600); credentials are masked "
                                "(--save-raw keeps them)")
        except EmblensError as e:     # the flow file's folder cannot be written
            log.error(redact.printable(f"emblens: error: {e}"))
        except Exception as e:  # never raise into mitmproxy
            log.error(f"emblens: configuration failed, analysis is off: {e}")

    def running(self) -> None:
        if self._bad_options():
            from mitmproxy import ctx

            ctx.master.shutdown()     # a misspelt or malformed emblens option stops start-up, it is not ignored
            return
        if self._thread is None:
            from mitmproxy import ctx

            self._upstream = upstream_of(getattr(ctx.options, "mode", ()))
            if self._upstream is not None:
                log.warning("emblens: upstream %s://%s:%s; asking it for /v1/models" % self._upstream)
                self._ask("at start")
            self._start_child()
            self._thread = threading.Thread(target=self._work, name="emblens", daemon=True)
            self._thread.start()
            self._stop_on_hangup()

    @staticmethod
    def _stop_on_hangup() -> None:
        """A closed terminal (SIGHUP) stops the proxy as Ctrl-C does, through `done`: mitmproxy
        itself would just die, leaving no report and the flows unsaved."""
        import asyncio
        import signal

        from mitmproxy import ctx

        try:
            asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, ctx.master.shutdown)
        except (RuntimeError, NotImplementedError, AttributeError, ValueError):
            pass    # no running loop here (a test), or a platform without SIGHUP

    def _ask(self, why: str) -> None:
        """Ask the upstream for /v1/models off the proxy's thread; its rows join the queue."""
        if self._upstream is None:
            return
        self._asked_at = time.monotonic()
        self._asked_with_key = self._authorization is not None

        def run() -> None:
            try:
                for row in ask_models(*self._upstream, why, authorization=self._authorization):
                    self._enqueue(row)
            except Exception as e:    # never into mitmproxy
                log.error(redact.printable(f"emblens: could not ask the upstream for /v1/models: {e}"))

        threading.Thread(target=run, name="emblens-models", daemon=True).start()

    def server_connect_error(self, data) -> None:
        """mitmproxy could not connect to the upstream. In reverse mode it connects as soon as a
        client does (`connection_strategy=eager`, the default), before any request: the client
        sees "Connection error." and no flow is made, so this row is the only record. With
        `lazy`, the request's flow carries the error instead (the `error` hook)."""
        try:
            from mitmproxy import ctx

            if getattr(ctx.options, "connection_strategy", "eager") == "lazy":
                return
            host, port = data.server.address or (None, None)
            self._enqueue(connect_error_row(host, port, data.server.error))
        except Exception as e:  # never raise into mitmproxy
            log.error(redact.printable(f"emblens: could not read a connection error: {e}"))

    def requestheaders(self, flow) -> None:
        _stream_if_needed(flow, "request")

    def responseheaders(self, flow) -> None:
        _stream_if_needed(flow, "response")

    def response(self, flow) -> None:
        if getattr(flow, "websocket", None) is not None:     # the handshake: its messages come later
            self._open_ws.setdefault(flow.id, flow)
        self._enqueue(flow)

    def error(self, flow) -> None:
        self.response(flow)

    def websocket_end(self, flow) -> None:
        self._open_ws.pop(flow.id, None)
        self._enqueue(("save", flow))

    def done(self) -> None:
        """The way out, whatever stopped the proxy: read what is queued, run the rules over all of
        it, write the reports, put the flow file in place, and say so on one line."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        wrote: list[str] = []
        try:
            start = time.thread_time()
            for flow in list(self._open_ws.values()):     # WebSockets still open: saved as they are
                self._enqueue(("save", flow))
            self._open_ws.clear()
            self._drain()
            answer = self._finish_child(time.thread_time() - start) if self._child is not None else None
            if answer is not None:
                wrote, self.cpu_s = answer["wrote"], answer["cpu_s"]
            else:
                self._evaluate(announce=True, final=True)
                self.cpu_s += time.thread_time() - start
                wrote = self._write_reports()
        except Exception as e:
            log.error(redact.printable(f"emblens: could not finish the report: {e}"))
        finally:
            saved = self._close_writer()
        done = [f"emblens: {self.seen:,} exchanges read, {self.dropped:,} dropped; the analysis used {self.cpu_s:.1f} s of CPU"]
        if wrote:
            done.append("wrote " + " and ".join(wrote))
        if saved:
            done.append(f"saved {self.saved:,} flows to {saved}")
        log.warning(redact.printable("; ".join(done)))

    @staticmethod
    def _bad_options() -> list[str]:
        """`--set emblens_…` values mitmproxy could not apply (left deferred): a value of the
        wrong type, or a name no emblens option has. Each is logged as one line."""
        import difflib

        from mitmproxy import ctx

        problems = []
        for name, value in list(getattr(ctx.options, "deferred", {}).items()):
            if not name.startswith("emblens"):
                continue
            raw = " ".join(getattr(value, "val", [str(value)]))
            if name in ctx.options:
                kind = ctx.options._options[name].typespec
                problems.append(f"emblens: error: --set {name}={raw}: not a valid value "
                                f"(expected {getattr(kind, '__name__', kind)})")
            else:
                close = difflib.get_close_matches(name, [k for k in ctx.options.keys() if k.startswith("emblens")], n=1)
                problems.append(f"emblens: error: --set {name}: no such option" + (f" (did you mean {close[0]}?)" if close else ""))
        for p in problems:
            log.error(p)
        return problems

    # -- the hot path -------------------------------------------------------------------------
    def _enqueue(self, flow) -> None:
        try:
            if len(self._queue) == self._queue.maxlen:
                self.dropped += 1
            self._queue.append(flow)
            self._wake.set()
        except Exception:  # pragma: no cover - deque.append does not fail
            pass

    # -- the worker ------------------------------------------------------------------------------
    def _work(self) -> None:
        try:
            self._loop()
        finally:
            self.cpu_s += time.thread_time()    # this thread's CPU time, all of it the addon's

    def _loop(self) -> None:
        last = 0.0
        while not self._stop.is_set():
            self._wake.wait(timeout=1.0)
            self._wake.clear()
            try:
                self._drain()
                if self._child is not None:
                    self._send()
                    continue
                # the rules run every `interval`, but never take more than a tenth of the time: this
                # thread shares the interpreter with the proxy, and a long run would delay its traffic
                interval = max(self._interval_s, 10 * self._took_s)
                if self._dirty and time.monotonic() - last >= interval:
                    last = time.monotonic()
                    self._evaluate(announce=True)
                    self._took_s = time.monotonic() - last
                elif self._dirty:
                    time.sleep(max(0.0, interval - (time.monotonic() - last)))
                    self._wake.set()
            except Exception as e:
                log.error(f"emblens: rule run failed (traffic is not affected): {e}")

    def _drain(self) -> None:
        from emblens.formats import exchange as traffic
        from emblens.formats.records import flow_row

        n = 0
        while True:
            try:
                flow = self._queue.popleft()
            except IndexError:
                return
            n += 1
            if n % YIELD_EVERY == 0:
                time.sleep(YIELD_S)    # let the proxy's thread take the interpreter lock (see YIELD_EVERY)
            if isinstance(flow, tuple):           # ("save", a WebSocket flow that has closed)
                self._save(flow[1])
                continue
            try:
                if isinstance(flow, dict):        # a row of emblens's own (a connection error, its /v1/models ask)
                    row = self._redactor.row(flow)
                else:
                    models = self._ruleset.models if self._ruleset is not None else None
                    auth = _authorization(flow)
                    if auth:        # the last key a client sent: for emblens's own /v1/models, in memory only
                        self._authorization = auth
                    row = self._redactor.row(flow_row(flow, models, self._redactor.text))
                    # at most one ask in MODELS_EVERY_S, unless the last went without the key a client now sent
                    if row.get("http_status") == 404 and row.get("req_model") and (
                            time.monotonic() - self._asked_at > MODELS_EVERY_S
                            or (self._authorization is not None and not self._asked_with_key)):
                        self._ask("after a 404 for a model")
                self.seen += 1
                row.update(source="live", line=self.seen)
                fact = traffic.models_fact(row)
                new = [row] + ([{**fact, "source": "live", "line": self.seen}] if fact else [])
                with self._lock:
                    # the rules process gets the rows; this process keeps them too, so that the
                    # report can still be made here if that process is gone
                    self._rows.extend(new)
                    if self._child is not None:
                        self._outbox.extend(new)
                self._dirty = True
                if not isinstance(flow, dict) and flow.websocket is None:
                    self._save(flow)
            except Exception as e:
                log.error(redact.printable(f"emblens: could not read a flow: {e}"))

    def _save(self, flow) -> None:
        """Add one flow to the flow file, masked unless --save-raw; each flow once."""
        if self._writer is None or getattr(flow, "emblens_saved", False):
            return
        from mitmproxy import ctx

        try:
            flow.emblens_saved = True      # an attribute, not metadata: metadata is saved with the flow
            self._writer.add(flow if ctx.options.emblens_save_raw else redact.masked_flow(flow, self._save_redactor.text))
            self.saved += 1
        except Exception as e:
            log.error(redact.printable(f"emblens: could not save a flow: {e}"))

    def _evaluate(self, announce: bool, final: bool = False) -> None:
        if self._ruleset is None:
            return
        from emblens import diagnose
        from emblens.diagnose import InputInfo, Reading
        from emblens.run import Run

        with self._lock:
            rows = list(self._rows)
            self._dirty = False
        notes = []
        if self.seen > len(rows):
            notes.append(f"last {len(rows):,} of {self.seen:,} exchanges")
        if self.dropped:
            notes.append(f"{self.dropped:,} flows dropped: they arrived faster than emblens could read them")
        # the rows were masked as they came (`_drain`): the reading is made here, the rest as for any input
        reading = Reading.of_rows(rows, [InputInfo("live", "mitmproxy-live", len(rows), 0, len(rows), 0, "; ".join(notes) or None)],
                                  self._ruleset.messages if self._ruleset is not None else None)
        self.analysis = diagnose.run(reading, Run(ruleset=self._ruleset, redactor=self._redactor))
        findings = self.analysis.findings
        if announce:
            for f in findings:
                before = self._reported.get(f.rule, 0)
                if before == 0:
                    log.warning(redact.printable(f"emblens: [{f.rule}] {f.title} ({f.severity}). {f.summary}"))
                    self._reported[f.rule] = f.count
                elif f.count >= 2 * before:
                    log.warning(f"emblens: [{f.rule}] seen {f.count} times now")
                    self._reported[f.rule] = f.count
        for f in findings:
            if f.rule in self._reported:
                self._announced[f.rule] = (f, max((line for _, line in f.matched), default=0))
        if final:
            self._keep_announced(rows[0]["line"] if rows else self.seen + 1)

    def _keep_announced(self, first_line: int) -> None:
        """Findings printed live whose exchanges have all left the window since: in the report as
        they were last seen, after the findings of the window, and the coverage says so. One that
        went away while its exchanges are still kept is not brought back: the rules changed their
        mind (the served models became known, say)."""
        import dataclasses

        present = {f.rule for f in self.analysis.findings}
        gone = [f for rule, (f, last) in self._announced.items() if rule not in present and last < first_line]
        if not gone:
            return
        if self.analysis.findings:      # the window's own findings lead; these only add to them
            gone = [dataclasses.replace(f, role="finding", explained_by=None) for f in gone]
        self.analysis.findings.extend(gone)
        said = ", ".join(f.rule for f in gone)
        for info in self.analysis.inputs:
            info.note = "; ".join(filter(None, [info.note, f"{said}: printed live, its exchanges have left the window "
                                                           "since; reported as last seen"]))

    # -- the rules process ------------------------------------------------------------------------
    def _start_child(self) -> None:
        """Start the process that runs the rules; without it (it could not start) they run here."""
        import subprocess
        import sys

        from mitmproxy import ctx

        settings = {"dirs": self._dirs, "interval_s": self._interval_s, "window": self._rows.maxlen,
                    "paths": {o: getattr(ctx.options, o) for o in ("emblens_report", "emblens_json")}}
        try:
            # a session of its own: a terminal's Ctrl-C is for the proxy, which tells this process
            # when to finish (it ignores the signals too, but only once it has started)
            self._child = subprocess.Popen([sys.executable, "-m", "emblens.frontends.live.rules_process"], stdin=subprocess.PIPE,
                                           stdout=subprocess.PIPE, stderr=None, close_fds=True, start_new_session=True)
            self._put(("start", settings))
        except Exception as e:
            log.error(f"emblens: could not start the rules process, the rules run in the proxy's process: {e}")
            self._child = None

    def _put(self, message, child=None) -> None:
        import pickle

        stdin = (child or self._child).stdin
        data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        stdin.write(len(data).to_bytes(8, "little") + data)
        stdin.flush()

    def _send(self) -> None:
        """Hand the rows read since the last call to the rules process."""
        with self._lock:
            rows, self._outbox = self._outbox, []
        if not rows or self._child is None:
            return
        try:
            self._put(("rows", rows, self.seen, self.dropped, self._redactor.counts()))
        except Exception as e:       # the process is gone: go on here, with the rows kept here
            log.error(redact.printable(f"emblens: the rules process stopped ({e}); the rules run in the proxy's process "
                                      "and the report is made here"))
            self._child = None
            self._dirty = True

    def _finish_child(self, cpu_s: float) -> dict | None:
        """The last rows, then the final run and the reports, in the rules process: its answer
        (the reports written, the CPU used), or None when it could not finish (the caller then
        does it here, from the rows kept here)."""
        import pickle

        self._send()
        child, self._child = self._child, None
        if child is None:
            return None
        try:
            self._put(("done", self.seen, self.dropped, self.cpu_s + cpu_s), child)
            child.stdin.close()
            child.wait(timeout=60)       # before reading: a hung child must not hold mitmproxy's exit
            reply = child.stdout.read(1 << 20)
            answer = pickle.loads(reply) if reply else None    # written by our own rules process
            if isinstance(answer, dict):
                return answer
            raise RuntimeError(f"it ended with status {child.returncode}")
        except Exception as e:
            log.error(redact.printable(f"emblens: the rules process did not finish ({e}); the report is made here"))
            child.kill()
            with self._lock:
                self._dirty = True
            return None

    def _write_reports(self, paths: dict[str, str] | None = None) -> list[str]:
        """Each report asked for, written whole (a failure leaves the one before as it was, and
        the others are still written); the paths written. With no exchange seen, a report that is
        there is left as it was."""
        if paths is None:
            from mitmproxy import ctx

            paths = {o: getattr(ctx.options, o) for o in ("emblens_report", "emblens_json")}
        if self.analysis is None:
            return []
        from emblens import report

        wrote = []
        for option, render in (("emblens_report", report.to_markdown), ("emblens_json", report.to_json)):
            path = paths.get(option)
            if not path:
                continue
            if not self.seen and Path(path).expanduser().exists():
                # a run that saw no exchange (a start-up error, a proxy stopped at once) never replaces
                # the report of one that did
                log.warning(redact.printable(f"emblens: no exchange was seen: {path} is kept as it was"))
                continue
            try:
                outfiles.write_text(Path(path).expanduser(), render(self.analysis))
                wrote.append(str(path))
            except EmblensError as e:
                log.error(redact.printable(f"emblens: error: {e}"))
            except Exception as e:
                log.error(redact.printable(f"emblens: error: cannot write {path}: {e}"))
        return wrote

    def _close_writer(self) -> str | None:
        """Put the flow file in place (flushed, then renamed over the path asked for); its path."""
        saving, path = self._saving, self._save_path
        self._saving = self._save_file = self._writer = None
        if saving is None:
            return None
        try:
            saving.__exit__(None, None, None)
            return str(path)
        except Exception as e:
            log.error(redact.printable(f"emblens: error: {e}"))
            return None
