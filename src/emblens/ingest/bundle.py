"""Bundle reader: turns paths (zip, tar, tar.gz, folders, loose files, gzip'd logs, stdin) into
members, read as streams and never extracted to disk.

Limits guard against archive bombs and accidents: member count, bytes per member and in total,
compression ratio, and nesting depth. A member that breaks a limit or cannot be read is yielded
as `Skipped` with the reason; everything else is still read. Names inside archives are labels
only, so `../../etc/passwd` is harmless.
"""

from __future__ import annotations

import io
import os
import stat
import sys
import tarfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable

from emblens.errors import InputError
from emblens.events.redact import printable
from emblens.ingest import inflate
from emblens.settings import Limits

MiB = 1024 * 1024
GiB = 1024 * MiB


@dataclass(frozen=True)
class Member:
    """One readable input: `open()` gives a fresh binary stream of its (decompressed) bytes."""

    label: str
    open: Callable[[], BinaryIO]
    size: int | None = None             # compressed/stored size when known
    mtime: float | None = None          # when it was last written (file, zip or tar entry), epoch seconds


@dataclass(frozen=True)
class Skipped:
    """A member that was not analysed, and why."""

    label: str
    reason: str


class LimitExceeded(Exception):
    pass


def size_text(n: int | float) -> str:
    """A byte count as people read it in a limit message.

    >>> size_text(512 * MiB), size_text(64 * 1024), size_text(8 * GiB)
    ('512 MiB', '64 KiB', '8 GiB')
    """
    return f"{n / GiB:,.0f} GiB" if n >= GiB and n % GiB == 0 else f"{n / MiB:,.0f} MiB" if n >= MiB else f"{n / 1024:,.0f} KiB"


class Metered:
    """A read-only stream over another that counts bytes, stops at a byte budget or a compression
    ratio, and reports progress. `read` hands the inner stream's bytes through without copying."""

    def __init__(
        self,
        raw: BinaryIO,
        label: str,
        *,
        limit: int | None = None,
        ratio_cap: int | None = None,
        on_read: Callable[[str, int], None] | None = None,
    ) -> None:
        self._raw, self._label = raw, label
        self._limit, self._ratio_cap, self._on_read = limit, ratio_cap, on_read
        self.count = 0
        # compressed data can break part-way; readers then take it in small pieces
        self.fragile = ratio_cap is not None or getattr(raw, "fragile", False)

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            n = (self._limit + 1) if self._limit is not None else -1
        data = self._raw.read(n)
        self.count += len(data)
        if self._limit is not None and self.count > self._limit:
            raise LimitExceeded(f"larger than the {size_text(self._limit)} member limit")
        if self._ratio_cap is not None and self.count > self._ratio_cap:
            raise LimitExceeded("compression ratio above the limit (possible archive bomb)")
        if self._on_read is not None and data:
            self._on_read(self._label, self.count)
        return data

    def readinto(self, b) -> int:
        """For readers that fill a buffer (isal's gzip reader)."""
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._raw.close()

    def __enter__(self) -> "Metered":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _magic(head: bytes) -> str | None:
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        return "zip"
    if head.startswith(b"\x1f\x8b"):
        return "gzip"
    if len(head) >= 262 and head[257:262] == b"ustar":
        return "tar"
    return None


def _peek(opener: Callable[[], BinaryIO], n: int = 512) -> bytes:
    with opener() as f:
        return f.read(n)


class _Stream(io.RawIOBase):
    """A readable raw stream whose subclasses only write `read(n)`."""

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:  # type: ignore[override]
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)


class _Salvage(_Stream):
    """Reads a compressed stream in small pieces so that, when it breaks, the bytes before the
    break are handed out first and the error comes with the next read."""

    PIECE = 4 * 1024

    def __init__(self, raw: BinaryIO) -> None:
        self._raw, self._error = raw, None

    def read(self, n: int = -1) -> bytes:
        if self._error is not None:
            raise self._error
        want = n if n is not None and n >= 0 else 1 << 62
        pieces, got = [], 0
        while got < want:
            try:
                block = self._raw.read(min(self.PIECE, want - got))
            except (OSError, EOFError, *inflate.ERRORS) as e:
                if not pieces:
                    raise
                self._error = e
                break
            if not block:
                break
            pieces.append(block)
            got += len(block)
        return b"".join(pieces)


    def close(self) -> None:
        self._raw.close()
        super().close()


class _Replay:
    """A one-pass stream (a member of a streamed tar) that can be opened again as long as only its
    head was read before: the sniffers peek at the first bytes, then the adapter reads it all."""

    KEEP = 256 * 1024

    def __init__(self, raw: BinaryIO) -> None:
        self._raw, self._head, self._pos = raw, b"", 0   # _pos: bytes consumed from raw

    def open(self) -> BinaryIO:
        if self._pos > len(self._head):
            raise OSError("a member of a streamed archive cannot be read twice")
        return _ReplayStream(self)


class _ReplayStream(_Stream):
    def __init__(self, src: _Replay) -> None:
        self._src, self._at = src, 0

    def read(self, n: int = -1) -> bytes:
        src = self._src
        out = b""
        if self._at < len(src._head):      # the part already read, replayed...
            end = len(src._head) if n is None or n < 0 else min(len(src._head), self._at + n)
            out = src._head[self._at:end]
            self._at += len(out)
            if n is not None and 0 <= n <= len(out):
                return out
            n = -1 if n is None or n < 0 else n - len(out)
        if self._at != src._pos:           # ...then the rest, from where the stream stands
            raise OSError("a member of a streamed archive cannot be read twice")
        more = src._raw.read(n if n is not None and n >= 0 else -1)
        src._pos += len(more)
        if src._pos <= _Replay.KEEP:
            src._head += more
        self._at += len(more)
        return out + more



class Reader:
    """Walks inputs and yields `Member`s and `Skipped`s in a stable order."""

    def __init__(self, limits: Limits | None = None) -> None:
        self.limits = limits or Limits()
        self._members = 0
        self._total = 0                       # decompressed bytes read, over all members
        self._read: dict[str, int] = {}       # the most read of each member (it is opened twice)
        self._top_cap: float | None = None    # decompressed bytes allowed for the current top-level item
        self._top_total = 0
        self._bomb: str | None = None         # why the current top-level item stopped being read
        self._dropped = 0                     # members of it not read after that

    # -- entry ---------------------------------------------------------------------------
    def read(self, paths: list[str]) -> Iterator[Member | Skipped]:
        if not paths:
            raise InputError("no input given: name a bundle (.zip, .tar.gz), a folder, files, or - for stdin")
        for p in paths:
            if p != "-" and not os.path.exists(p):
                raise InputError(f"{p}: no such file or folder")
        for p in paths:
            if p == "-":
                yield from self._stdin(sys.stdin.buffer)
            else:
                yield from self._path(Path(p), p, depth=0)

    def _stdin(self, raw: BinaryIO) -> Iterator[Member | Skipped]:
        """Standard input, streamed: a log piped in is read once, in chunks, like a file (the
        sniffers peek at its head through a replay buffer). Only a zip, which must be read out of
        order, is held in memory, within max_inmemory_bytes."""
        src = _Replay(raw)
        with src.open() as f:
            head = f.read(4)
        if _magic(head) != "zip":
            yield from self._item("<stdin>", src.open, None, depth=0)
            return
        limit = self.limits.max_inmemory_bytes
        data = src._head + raw.read(limit + 1 - len(src._head))
        if len(data) > limit:
            yield Skipped("<stdin>", f"a zip larger than {size_text(limit)} on standard input; pass it as a file instead")
            return
        yield from self._item("<stdin>", lambda d=data: io.BytesIO(d), len(data), depth=0)

    # -- files and folders -----------------------------------------------------------------
    def _path(self, path: Path, label: str, depth: int) -> Iterator[Member | Skipped]:
        try:
            st = path.stat()
        except OSError as e:
            yield Skipped(label, f"cannot read: {e.strerror}")
            return
        if stat.S_ISDIR(st.st_mode):
            entries = sorted(path.rglob("*"))
            for entry in entries:
                name = f"{label.rstrip('/')}/{printable(str(entry.relative_to(path)))}"
                if entry.is_symlink():
                    yield Skipped(name, "symbolic link, not followed")
                elif entry.is_file():
                    yield from self._path(entry, name, depth)
            return
        if not stat.S_ISREG(st.st_mode):
            yield Skipped(label, "not a regular file")
            return
        if not os.access(path, os.R_OK):
            yield Skipped(label, "permission denied")
            return
        yield from self._item(label, lambda: open(path, "rb"), st.st_size, depth, disk_path=path, mtime=st.st_mtime)

    # -- one item of unknown type ----------------------------------------------------------
    def _item(
        self, label: str, opener: Callable[[], BinaryIO], size: int | None, depth: int, disk_path: Path | None = None,
        mtime: float | None = None,
    ) -> Iterator[Member | Skipped]:
        if size == 0:
            yield from self._counted(Skipped(label, "empty (0 bytes)"))
            return
        if depth == 0:   # nested archives together may expand at most max_ratio times the outer file
            self._top_cap = max((size or 0) * self.limits.max_ratio, self.limits.ratio_floor_bytes) if size else None
            self._top_total, self._bomb, self._dropped = 0, None, 0
            yield from self._dispatch(label, opener, size, depth, disk_path, mtime)
            if self._dropped and self._bomb is not None:
                yield Skipped(f"{label}:…", f"{self._dropped:,} more member(s) not read: {self._bomb}")
            elif self._dropped:
                yield Skipped(f"{label}:…", f"{self._dropped:,} more member(s) not read: over the limit of "
                                            f"{self.limits.max_members:,} members")
            return
        yield from self._dispatch(label, opener, size, depth, disk_path, mtime)

    def _dispatch(
        self, label: str, opener: Callable[[], BinaryIO], size: int | None, depth: int, disk_path: Path | None = None,
        mtime: float | None = None,
    ) -> Iterator[Member | Skipped]:
        if depth and (self._bomb is not None or self._members > self.limits.max_members):
            self._dropped += 1
            return
        try:
            head = _peek(opener)
        except (OSError, zipfile.BadZipFile, *inflate.ERRORS, EOFError, LimitExceeded) as e:
            yield from self._counted(Skipped(label, f"cannot read: {_reason(e)}"))
            return
        if not head:
            yield from self._counted(Skipped(label, "empty (0 bytes)"))
            return
        kind = _magic(head)
        if kind and depth >= self.limits.max_depth:
            yield from self._counted(Skipped(label, f"archive nested deeper than {self.limits.max_depth} levels"))
            return
        if kind == "zip":
            yield from self._zip(label, opener, depth, disk_path)
        elif kind == "tar":
            yield from self._tar(label, opener, depth, disk_path, compressed=False)
        elif kind == "gzip":
            yield from self._gzip(label, opener, size, depth, disk_path, mtime)
        else:
            yield from self._counted(Member(label, self._bounded(label, opener, None), size, mtime))

    def _bounded(self, label: str, opener: Callable[[], BinaryIO], compressed: int | None) -> Callable[[], BinaryIO]:
        def open_bounded() -> BinaryIO:
            ratio_cap = None if not compressed else max(compressed * self.limits.max_ratio, self.limits.ratio_floor_bytes)
            return Metered(opener(), label, limit=self.limits.max_member_bytes, ratio_cap=ratio_cap,  # type: ignore[return-value]
                           on_read=self._spend)

        return open_bounded

    def _spend(self, label: str, count: int) -> None:
        """Count a member's bytes against the bundle's total (once, though it is read twice)."""
        before = self._read.get(label, 0)
        if count > before:
            self._read[label] = count
            self._total += count - before
            self._top_total += count - before
            if self._top_cap is not None and self._top_total > self._top_cap and self._bomb is None:
                self._bomb = (f"the archive expands to more than {self.limits.max_ratio:.0f} times its size "
                              "(possible archive bomb)")
            if self._bomb is not None:
                raise LimitExceeded(f"{self._bomb}; this member and the rest of the archive were not read")
            if self._total > self.limits.max_total_bytes:
                raise LimitExceeded(f"the bundle is over its total limit of {size_text(self.limits.max_total_bytes)} "
                                    "(decompressed); this member and the rest were not read")

    def _counted(self, item: Member | Skipped) -> Iterator[Member | Skipped]:
        """The item, counted against the member limit; past the limit one notice, then nothing."""
        self._members += 1
        if self._members == self.limits.max_members + 1:
            yield Skipped(item.label, f"over the limit of {self.limits.max_members:,} members")
        elif self._members <= self.limits.max_members:
            yield item

    # -- archives --------------------------------------------------------------------------
    def _zip(self, label, opener, depth, disk_path) -> Iterator[Member | Skipped]:
        try:
            if disk_path is not None:
                zf = zipfile.ZipFile(disk_path)
            else:
                zf = zipfile.ZipFile(io.BytesIO(self._slurp(opener)))
        except (zipfile.BadZipFile, OSError, LimitExceeded, EOFError) as e:
            if depth == 0:
                raise InputError(f"{label}: not a readable zip archive ({_reason(e)})") from None
            yield from self._counted(Skipped(label, f"not a readable zip archive: {_reason(e)}"))
            return
        with zf:   # closed once its members have been read
            yield from self._zip_members(zf, label, depth)

    def _zip_members(self, zf: zipfile.ZipFile, label: str, depth: int) -> Iterator[Member | Skipped]:
        for info in sorted(zf.infolist(), key=lambda i: i.filename):
            if info.is_dir():
                continue
            mlabel = f"{label}:{printable(info.filename)}"
            if info.flag_bits & 0x1:
                yield from self._counted(Skipped(mlabel, "encrypted"))
                continue
            if info.file_size > self.limits.max_member_bytes:
                yield from self._counted(Skipped(mlabel, f"larger than the {size_text(self.limits.max_member_bytes)} member limit"))
                continue
            if (info.compress_size and info.file_size / max(info.compress_size, 1) > self.limits.max_ratio
                    and info.file_size > self.limits.ratio_floor_bytes):
                yield from self._counted(Skipped(mlabel, "compression ratio above the limit (possible archive bomb)"))
                continue
            yield from self._item(
                mlabel,
                self._bounded(mlabel, lambda i=info: inflate.zip_member(zf, i), info.compress_size or None),
                info.file_size,
                depth + 1,
                mtime=_zip_time(info),
            )

    def _tar(self, label, opener, depth, disk_path, compressed: bool) -> Iterator[Member | Skipped]:
        """Read a tar (plain or gzip'd) in one pass, in archive order: each member is handed out
        while the archive stands at it, so a tar.gz is decompressed once, not once per member, and
        a truncated archive still gives the members before the break."""
        def raw_open() -> BinaryIO:
            if disk_path is not None and not compressed:
                return open(disk_path, "rb")
            if disk_path is not None:
                return _Salvage(inflate.gzip_file(filename=disk_path))  # type: ignore[return-value]
            if compressed:   # a tar.gz inside an archive or on stdin: decompressed as it is read (it was
                # read as if it were not compressed: "invalid header")
                return _Salvage(inflate.gzip_file(fileobj=opener()))  # type: ignore[return-value]
            return io.BytesIO(self._slurp(opener))
        try:
            stream = raw_open()
            tf = tarfile.open(fileobj=stream, mode="r|")
        except (tarfile.TarError, OSError, EOFError, *inflate.ERRORS, LimitExceeded) as e:
            if depth == 0:
                raise InputError(f"{label}: not a readable tar archive ({_reason(e)})") from None
            yield from self._counted(Skipped(label, f"not a readable tar archive: {_reason(e)}"))
            return
        with stream, tf:
            seen = 0
            try:
                for info in tf:
                    seen += 1
                    yield from self._tar_member(tf, info, label, depth)
            except (tarfile.TarError, OSError, EOFError, *inflate.ERRORS) as e:
                if depth == 0 and seen == 0:
                    raise InputError(f"{label}: not a readable tar archive ({_reason(e)})") from None
                yield from self._counted(Skipped(f"{label}:…", f"archive truncated or corrupt after {seen} member(s): {_reason(e)}"))

    def _tar_member(self, tf: tarfile.TarFile, info: tarfile.TarInfo, label: str, depth: int) -> Iterator[Member | Skipped]:
        mlabel = f"{label}:{printable(info.name)}"
        if info.isdir():
            return
        if info.issym() or info.islnk():
            yield from self._counted(Skipped(mlabel, "link inside the archive, not followed"))
            return
        if not info.isfile():
            yield from self._counted(Skipped(mlabel, "not a regular file"))
            return
        if info.size > self.limits.max_member_bytes:
            yield from self._counted(Skipped(mlabel, f"larger than the {size_text(self.limits.max_member_bytes)} member limit"))
            return
        replay = _Replay(tf.extractfile(info))   # type: ignore[arg-type]
        yield from self._item(mlabel, replay.open, info.size, depth + 1, mtime=float(info.mtime) if info.mtime else None)

    def _gzip(self, label, opener, size, depth, disk_path, mtime=None) -> Iterator[Member | Skipped]:
        def gz_open() -> BinaryIO:
            return inflate.gzip_file(fileobj=opener())  # type: ignore[return-value]

        bounded = self._bounded(label, gz_open, size)
        try:
            inner = _peek(bounded)
        except (OSError, EOFError, *inflate.ERRORS, LimitExceeded) as e:
            yield from self._counted(Skipped(label, f"corrupt gzip data: {_reason(e)}"))
            return
        if _magic(inner) == "tar":
            yield from self._tar(label, opener, depth, disk_path, compressed=True)
            return
        yield from self._item(label, bounded, None, depth + 1, mtime=mtime)

    def _slurp(self, opener: Callable[[], BinaryIO]) -> bytes:
        with opener() as f:
            data = f.read(self.limits.max_inmemory_bytes + 1)
        if len(data) > self.limits.max_inmemory_bytes:
            raise LimitExceeded(f"nested archive larger than {size_text(self.limits.max_inmemory_bytes)}")
        return data


def _zip_time(info: zipfile.ZipInfo) -> float | None:
    """A zip entry's modification time (local time, as zip stores it; the year is what matters)."""
    import datetime as dt

    try:
        return dt.datetime(*info.date_time).timestamp() if info.date_time[0] > 1980 else None
    except (ValueError, OverflowError):
        return None


def _reason(e: BaseException) -> str:
    text = str(e) or type(e).__name__
    return printable(text.splitlines()[0][:160])


def read_members(paths: list[str], limits: Limits | None = None) -> Iterator[Member | Skipped]:
    """Members and skipped entries of all `paths`, in order. Raises InputError for a missing path."""
    return Reader(limits).read(paths)
