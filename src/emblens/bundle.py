"""Bundle reader: turns paths (zip, tar, tar.gz, folders, loose files, gzip'd logs, stdin) into
members, read as streams and never extracted to disk.

Limits guard against archive bombs and accidents: member count, bytes per member and in total,
compression ratio, and nesting depth. A member that breaks a limit or cannot be read is yielded
as `Skipped` with the reason; everything else is still read. Names inside archives are labels
only, so `../../etc/passwd` is harmless.
"""

from __future__ import annotations

import gzip
import io
import os
import stat
import sys
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable

from emblens.errors import InputError

MiB = 1024 * 1024
GiB = 1024 * MiB


@dataclass(frozen=True)
class Limits:
    """Bounds on what one analysis reads."""

    max_members: int = 5_000
    max_member_bytes: int = 8 * GiB
    max_total_bytes: int = 32 * GiB
    max_ratio: float = 250.0          # decompressed bytes per compressed byte
    ratio_floor_bytes: int = 64 * MiB   # a member this small is never refused for its ratio (logs compress well)
    max_depth: int = 3                # archives inside archives
    max_inmemory_bytes: int = 512 * MiB  # nested zips and stdin are held in memory

    def __post_init__(self) -> None:
        for name in ("max_members", "max_member_bytes", "max_total_bytes", "max_depth", "max_inmemory_bytes",
                     "ratio_floor_bytes"):
            if getattr(self, name) < 1:
                raise ValueError(f"Limits.{name} must be at least 1")


@dataclass(frozen=True)
class Member:
    """One readable input: `open()` gives a fresh binary stream of its (decompressed) bytes."""

    label: str
    open: Callable[[], BinaryIO]
    size: int | None = None             # compressed/stored size when known


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


class Reader:
    """Walks inputs and yields `Member`s and `Skipped`s in a stable order."""

    def __init__(self, limits: Limits | None = None) -> None:
        self.limits = limits or Limits()
        self._members = 0
        self._total = 0                       # decompressed bytes read, over all members
        self._read: dict[str, int] = {}       # the most read of each member (it is opened twice)

    # -- entry ---------------------------------------------------------------------------
    def read(self, paths: list[str]) -> Iterator[Member | Skipped]:
        if not paths:
            raise InputError("no input given: name a bundle (.zip, .tar.gz), a folder, files, or - for stdin")
        for p in paths:
            if p != "-" and not os.path.exists(p):
                raise InputError(f"{p}: no such file or folder")
        for p in paths:
            if p == "-":
                data = sys.stdin.buffer.read(self.limits.max_inmemory_bytes + 1)
                if len(data) > self.limits.max_inmemory_bytes:
                    yield Skipped("<stdin>", f"larger than {size_text(self.limits.max_inmemory_bytes)}; pass a file instead")
                    continue
                yield from self._item("<stdin>", lambda d=data: io.BytesIO(d), len(data), depth=0)
            else:
                yield from self._path(Path(p), p, depth=0)

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
                if entry.is_symlink():
                    yield Skipped(f"{label.rstrip('/')}/{entry.relative_to(path)}", "symbolic link, not followed")
                elif entry.is_file():
                    yield from self._path(entry, f"{label.rstrip('/')}/{entry.relative_to(path)}", depth)
            return
        if not stat.S_ISREG(st.st_mode):
            yield Skipped(label, "not a regular file")
            return
        if not os.access(path, os.R_OK):
            yield Skipped(label, "permission denied")
            return
        yield from self._item(label, lambda: open(path, "rb"), st.st_size, depth, disk_path=path)

    # -- one item of unknown type ----------------------------------------------------------
    def _item(
        self, label: str, opener: Callable[[], BinaryIO], size: int | None, depth: int, disk_path: Path | None = None
    ) -> Iterator[Member | Skipped]:
        if size == 0:
            yield self._count(Skipped(label, "empty (0 bytes)"))
            return
        try:
            head = _peek(opener)
        except (OSError, zipfile.BadZipFile, zlib.error, EOFError, LimitExceeded) as e:
            yield self._count(Skipped(label, f"cannot read: {_reason(e)}"))
            return
        if not head:
            yield self._count(Skipped(label, "empty (0 bytes)"))
            return
        kind = _magic(head)
        if kind and depth >= self.limits.max_depth:
            yield self._count(Skipped(label, f"archive nested deeper than {self.limits.max_depth} levels"))
            return
        if kind == "zip":
            yield from self._zip(label, opener, depth, disk_path)
        elif kind == "tar":
            yield from self._tar(label, opener, depth, disk_path, compressed=False)
        elif kind == "gzip":
            yield from self._gzip(label, opener, size, depth, disk_path)
        else:
            m = self._count(Member(label, self._bounded(label, opener, None), size))
            yield m

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
            if self._total > self.limits.max_total_bytes:
                raise LimitExceeded(f"the bundle is over its total limit of {size_text(self.limits.max_total_bytes)} "
                                    "(decompressed); this member and the rest were not read")

    def _count(self, item: Member | Skipped) -> Member | Skipped:
        self._members += 1
        if self._members > self.limits.max_members:
            return Skipped(item.label, f"over the limit of {self.limits.max_members} members")
        return item

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
            yield self._count(Skipped(label, f"not a readable zip archive: {_reason(e)}"))
            return
        with zf:   # closed once its members have been read
            yield from self._zip_members(zf, label, depth)

    def _zip_members(self, zf: zipfile.ZipFile, label: str, depth: int) -> Iterator[Member | Skipped]:
        for info in sorted(zf.infolist(), key=lambda i: i.filename):
            if info.is_dir():
                continue
            mlabel = f"{label}:{info.filename}"
            if info.flag_bits & 0x1:
                yield self._count(Skipped(mlabel, "encrypted"))
                continue
            if info.file_size > self.limits.max_member_bytes:
                yield self._count(Skipped(mlabel, f"larger than the {size_text(self.limits.max_member_bytes)} member limit"))
                continue
            if (info.compress_size and info.file_size / max(info.compress_size, 1) > self.limits.max_ratio
                    and info.file_size > self.limits.ratio_floor_bytes):
                yield self._count(Skipped(mlabel, "compression ratio above the limit (possible archive bomb)"))
                continue
            yield from self._item(
                mlabel,
                self._bounded(mlabel, lambda i=info: zf.open(i), info.compress_size or None),
                info.file_size,
                depth + 1,
            )

    def _tar(self, label, opener, depth, disk_path, compressed: bool) -> Iterator[Member | Skipped]:
        tf = None
        try:
            if disk_path is not None and not compressed:
                tf = tarfile.open(disk_path, mode="r:")
            elif disk_path is not None:
                tf = tarfile.open(disk_path, mode="r:gz")
            else:
                tf = tarfile.open(fileobj=io.BytesIO(self._slurp(opener)), mode="r:*")
            infos = tf.getmembers()
        except (tarfile.TarError, OSError, EOFError, zlib.error, LimitExceeded) as e:
            if tf is not None:
                tf.close()
            if depth == 0:
                raise InputError(f"{label}: not a readable tar archive ({_reason(e)})") from None
            yield self._count(Skipped(label, f"not a readable tar archive: {_reason(e)}"))
            return
        with tf:   # closed once its members have been read
            yield from self._tar_members(tf, infos, label, depth)

    def _tar_members(self, tf: tarfile.TarFile, infos: list, label: str, depth: int) -> Iterator[Member | Skipped]:
        for info in sorted(infos, key=lambda i: i.name):
            mlabel = f"{label}:{info.name}"
            if info.isdir():
                continue
            if info.issym() or info.islnk():
                yield self._count(Skipped(mlabel, "link inside the archive, not followed"))
                continue
            if not info.isfile():
                yield self._count(Skipped(mlabel, "not a regular file"))
                continue
            if info.size > self.limits.max_member_bytes:
                yield self._count(Skipped(mlabel, f"larger than the {size_text(self.limits.max_member_bytes)} member limit"))
                continue
            yield from self._item(mlabel, lambda i=info: tf.extractfile(i), info.size, depth + 1)

    def _gzip(self, label, opener, size, depth, disk_path) -> Iterator[Member | Skipped]:
        def gz_open() -> BinaryIO:
            return gzip.GzipFile(fileobj=opener(), mode="rb")  # type: ignore[return-value]

        bounded = self._bounded(label, gz_open, size)
        try:
            inner = _peek(bounded)
        except (OSError, EOFError, zlib.error, LimitExceeded) as e:
            yield self._count(Skipped(label, f"corrupt gzip data: {_reason(e)}"))
            return
        if _magic(inner) == "tar":
            yield from self._tar(label, opener, depth, disk_path, compressed=True)
            return
        yield from self._item(label, bounded, None, depth + 1)

    def _slurp(self, opener: Callable[[], BinaryIO]) -> bytes:
        with opener() as f:
            data = f.read(self.limits.max_inmemory_bytes + 1)
        if len(data) > self.limits.max_inmemory_bytes:
            raise LimitExceeded(f"nested archive larger than {size_text(self.limits.max_inmemory_bytes)}")
        return data


def _reason(e: BaseException) -> str:
    text = str(e) or type(e).__name__
    return text.splitlines()[0][:160]


def read_members(paths: list[str], limits: Limits | None = None) -> Iterator[Member | Skipped]:
    """Members and skipped entries of all `paths`, in order. Raises InputError for a missing path."""
    return Reader(limits).read(paths)
