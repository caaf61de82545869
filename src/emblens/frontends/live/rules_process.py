"""The process that runs the rules for the live addon (`emblens.frontends.live.addon`).

The addon reads flows into masked event rows on a thread of the proxy's process and hands them
here, through this process's stdin (length-prefixed pickles, written by the addon only); this
process keeps the last `window` rows, runs the rules every `interval_s` (never more than a tenth
of the time), prints each finding as the addon would, and at the end writes the reports and
answers on stdout with what it wrote. Its own interpreter lock is not the proxy's.

It ignores Ctrl-C and SIGTERM: a terminal's Ctrl-C and a service manager's SIGTERM reach every
process of the group, and this one must live until the proxy has handed over its last rows and
said "done". If the proxy dies without a word (its pipe closes), this process writes the reports
from what it has.
"""

from __future__ import annotations

import logging
import os
import pickle
import select
import signal
import sys
import time
from collections import deque


def _read(fd: int, n: int) -> bytes:
    pieces, got = [], 0
    while got < n:
        piece = os.read(fd, min(n - got, 1 << 20))
        if not piece:
            break
        pieces.append(piece)
        got += len(piece)
    return b"".join(pieces)


def _messages(fd: int):
    """The addon's messages, read unbuffered, so that `select` on the pipe tells the truth."""
    while True:
        head = _read(fd, 8)
        if len(head) < 8:
            return
        size = int.from_bytes(head, "little")
        data = _read(fd, size)
        if len(data) < size:
            return
        yield pickle.loads(data)    # written by the addon of the parent process only


def _finish(addon, settings: dict, cpu_s: float) -> dict:
    """The last run of the rules, over every row kept, and the reports: what the proxy prints."""
    log = logging.getLogger("emblens")
    try:
        addon._evaluate(announce=True, final=True)
    except Exception as e:
        log.error(f"emblens: the last rule run failed: {e}")
    return {"wrote": addon._write_reports(settings["paths"]), "cpu_s": cpu_s + time.process_time()}


def main() -> None:
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING, format="%(message)s")
    log = logging.getLogger("emblens")
    from emblens.events.redact import Redactor
    from emblens.frontends.live.addon import EmblensAddon
    from emblens.rules.loader import load_rules

    stdin = sys.stdin.fileno()
    messages = _messages(stdin)
    first = next(messages, None)
    if not first or first[0] != "start":
        return
    settings = first[1]
    addon = EmblensAddon()
    try:
        addon._ruleset = load_rules(settings["dirs"])
    except Exception as e:
        log.error(f"emblens: the rules process could not load the rules: {e}")
        return
    addon._rows = deque(maxlen=settings["window"])
    interval = settings["interval_s"]
    last, took = 0.0, 0.0
    while True:
        wait = max(interval, 10 * took) - (time.monotonic() - last) if addon._dirty else None
        ready, _, _ = select.select([stdin], [], [], max(0.0, wait) if wait is not None else None)
        if ready:
            message = next(messages, None)
            if message is None:         # the proxy's process went away without a word: report what it sent
                wrote = _finish(addon, settings, 0.0)["wrote"]
                log.warning(f"emblens: the proxy stopped without finishing; {addon.seen:,} exchanges read"
                            + (f"; wrote {' and '.join(wrote)}" if wrote else ""))
                return
            if message[0] == "rows":
                _, rows, addon.seen, addon.dropped, masked = message
                addon._rows.extend(rows)
                addon._redactor = Redactor()      # what the proxy's process masked so far, for the report
                addon._redactor.add(masked)
                addon._dirty = True
                continue
            if message[0] == "done":
                _, addon.seen, addon.dropped, cpu_s = message
                sys.stdout.buffer.write(pickle.dumps(_finish(addon, settings, cpu_s)))
                sys.stdout.buffer.flush()
                return
        if addon._dirty and time.monotonic() - last >= max(interval, 10 * took):
            last = time.monotonic()
            try:
                addon._evaluate(announce=True)
            except Exception as e:
                log.error(f"emblens: rule run failed (traffic is not affected): {e}")
            took = time.monotonic() - last


if __name__ == "__main__":
    for stop in (signal.SIGINT, signal.SIGTERM):
        signal.signal(stop, signal.SIG_IGN)
    main()
