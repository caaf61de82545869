"""Child processes that can neither hold a front end up nor fill its memory.

`run` starts a command in a session of its own, streams what it prints into a `Tail` (which keeps
the last lines, at most so many bytes, and drops the rest as it comes, so a command that prints
gigabytes costs its cap and no more), and stops at a deadline: the whole process group is killed,
not only the command. A command may leave a process behind that keeps its output pipe open (a
daemon it started); once the command itself has ended, the pipe is read only while output still
flows, then closed, never waited on until that other process ends.

    out = Tail(max_bytes=1 << 20, lines=5000)
    ended = run(["docker", "logs", "vllm"], 30.0, out, merge_stderr=True)
    data = out.data()
"""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import time
from collections import deque
from dataclasses import dataclass

try:
    import fcntl
except ImportError:          # Windows has no fcntl: pipes keep their default size there
    fcntl = None  # type: ignore[assignment]

CHUNK = 1 << 20            # bytes read at once, and the size of the pieces a Tail holds
ERR_BYTES = 64 * 1024      # the end of a command's stderr kept, to say why it failed
POLL_S = 0.1               # how often a silent command is checked for having ended
QUIET_S = 0.25             # after the command ended: a pipe silent this long is closed
LINGER_S = 1.0             # after the command ended: the most a pipe is read for
REAP_S = 1.0               # waiting for a killed process to be gone
_SETPIPE_SZ = 1031         # fcntl F_SETPIPE_SZ (Linux): a bigger pipe, fewer reads


class Tail:
    """The end of a stream: its last `lines` lines (0: no limit on lines), at most `max_bytes`,
    starting at a whole line. Memory stays near `max_bytes` plus one piece, however long the
    stream: pieces that can no longer be part of the end are dropped as they go past.

    `before`: the byte just before the first one fed, when the stream is the end of something
    longer (a file read from its middle); None when the stream starts at the beginning."""

    def __init__(self, max_bytes: int, lines: int = 0, before: bytes | None = None) -> None:
        self.max_bytes = max(1, max_bytes)
        self.lines = max(0, lines)
        self.before = before
        self.total = 0                       # bytes fed
        self._pieces: deque[bytes] = deque()
        self._newlines: deque[int] = deque()
        self._size = 0                       # bytes in the pieces
        self._count = 0                      # newlines in the pieces
        self._cur = bytearray()              # the piece being filled

    def feed(self, data: bytes) -> None:
        if not data:
            return
        self.total += len(data)
        self._cur += data
        if len(self._cur) >= CHUNK:
            self._seal()

    def _seal(self) -> None:
        piece = bytes(self._cur)
        self._cur = bytearray()
        n = piece.count(b"\n")
        self._pieces.append(piece)
        self._newlines.append(n)
        self._size += len(piece)
        self._count += n
        # the first piece goes once the rest alone holds max_bytes, or one newline more than the
        # lines kept (the end's first line then starts after it)
        while len(self._pieces) > 1:
            first, n_first = self._pieces[0], self._newlines[0]
            rest, rest_newlines = self._size - len(first), self._count - n_first
            if rest < self.max_bytes and not (self.lines and rest_newlines > self.lines):
                break
            self._pieces.popleft()
            self._newlines.popleft()
            self._size, self._count = rest, rest_newlines
            self.before = first[-1:]

    def _end(self) -> tuple[list[bytes], int]:
        """The pieces held, and where in them the end kept starts."""
        pieces = [p for p in (*self._pieces, bytes(self._cur)) if p]
        total = sum(len(p) for p in pieces)
        start = 0
        if self.lines and pieces:
            k = self.lines + (1 if pieces[-1].endswith(b"\n") else 0)
            at = _nth_newline_from_end(pieces, k)
            if at is not None:
                start = at + 1
        if total - start > self.max_bytes:
            start = total - self.max_bytes
        if start < total and _byte_before(pieces, start, self.before) not in (None, b"\n"):
            # begin at a whole line, unless the one line left is longer than the cap
            nl = _find_newline(pieces, start)
            if nl is not None and nl + 1 < total:
                start = nl + 1
        return pieces, start

    def pieces(self) -> list[bytes]:
        """The end kept, as pieces to write one after the other (no copy of the whole)."""
        return _from(*self._end())

    def data(self) -> bytes:
        return b"".join(self.pieces())

    @property
    def truncated(self) -> bool:
        """Whether the start of the stream is left out."""
        return self._end()[1] > 0 or self.before is not None


def _nth_newline_from_end(pieces: list[bytes], k: int) -> int | None:
    offset = sum(len(p) for p in pieces)
    for piece in reversed(pieces):
        offset -= len(piece)
        n = piece.count(b"\n")
        if n >= k:
            j = len(piece)
            for _ in range(k):
                j = piece.rfind(b"\n", 0, j)
            return offset + j
        k -= n
    return None


def _byte_before(pieces: list[bytes], at: int, before: bytes | None) -> bytes | None:
    if at == 0:
        return before or None
    offset = 0
    for piece in pieces:
        if at - 1 < offset + len(piece):
            return piece[at - 1 - offset: at - offset]
        offset += len(piece)
    return None


def _find_newline(pieces: list[bytes], at: int) -> int | None:
    offset = 0
    for piece in pieces:
        if at < offset + len(piece):
            j = piece.find(b"\n", max(0, at - offset))
            if j >= 0:
                return offset + j
        offset += len(piece)
    return None


def _from(pieces: list[bytes], start: int) -> list[bytes]:
    out, offset = [], 0
    for piece in pieces:
        if offset + len(piece) > start:
            out.append(piece[max(0, start - offset):] if start > offset else piece)
        offset += len(piece)
    return out


@dataclass
class Ended:
    status: int | None       # the exit status; None when the command was stopped before it ended
    timed_out: bool          # stopped at the deadline
    left_open: bool          # it ended, but something it left behind kept its output open
    err: bytes               # the end of its stderr (empty when stderr went into the output)


def run(argv: list[str], timeout_s: float, out: Tail, *, merge_stderr: bool = False) -> Ended:
    """Run `argv` (its first item a path to run) for at most `timeout_s` seconds, its output into
    `out`. Raises OSError when it cannot be started; never for what the command does."""
    deadline = time.monotonic() + timeout_s
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT if merge_stderr else subprocess.PIPE,
                            start_new_session=True)       # its own process group, killed whole
    err = Tail(ERR_BYTES)
    sel = selectors.DefaultSelector()
    for f, sink in ((proc.stdout, out), (proc.stderr, err)):
        if f is None:
            continue
        os.set_blocking(f.fileno(), False)
        if fcntl is not None:
            try:
                fcntl.fcntl(f.fileno(), _SETPIPE_SZ, CHUNK)
            except OSError:          # not Linux, or over the user's pipe limit: the default size does
                pass
        sel.register(f.fileno(), selectors.EVENT_READ, sink)
    timed_out = left_open = False
    ended_at: float | None = None
    last_data = time.monotonic()
    try:
        while sel.get_map():
            now = time.monotonic()
            if ended_at is None and proc.poll() is not None:
                ended_at = now
            if now >= deadline:
                timed_out, left_open = ended_at is None, ended_at is not None
                break
            if ended_at is not None and (now - ended_at >= LINGER_S or now - max(last_data, ended_at) >= QUIET_S):
                left_open = True
                break
            for key, _ in sel.select(min(POLL_S, deadline - now)):
                try:
                    data = os.read(key.fd, CHUNK)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                if data:
                    key.data.feed(data)
                    last_data = time.monotonic()
                else:
                    sel.unregister(key.fd)
        if not timed_out and proc.poll() is None:
            # its output is closed but it runs on: it still has until the deadline
            try:
                proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                timed_out = True
    finally:
        sel.close()
        if timed_out or left_open or proc.poll() is None:
            _kill_group(proc)
        for f in (proc.stdout, proc.stderr):
            if f is not None:
                f.close()
        try:
            proc.wait(REAP_S)
        except subprocess.TimeoutExpired:    # killed but not gone (stuck in the kernel): not waited on
            pass
    return Ended(None if timed_out else proc.returncode, timed_out, left_open, err.data())


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except OSError:
        try:
            proc.kill()
        except OSError:
            pass
