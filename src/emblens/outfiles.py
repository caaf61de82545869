"""Every file emblens writes (reports, exports, bundles, saved flows) is written whole or not at all.

The bytes go to a private temporary file beside the target, created exclusively and never through
a link (`O_EXCL | O_NOFOLLOW`, mode 0600), flushed to disk, then renamed over the target in one
step: a full disk, a crash or Ctrl-C leaves the previous file as it was, a reader never sees half a
report, and a link planted at the temporary name cannot redirect the write.

    with replacing("report.md") as f:
        f.write(text.encode())
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from emblens.errors import EmblensError

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_BINARY = getattr(os, "O_BINARY", 0)


def _read_umask() -> int:
    """The process's umask, read once at import (setting it to read it is not safe once threads run)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _read_umask()


@contextlib.contextmanager
def replacing(path: str | os.PathLike[str], private: bool = False) -> Iterator[BinaryIO]:
    """A binary file object whose bytes replace `path` when the block ends without an exception.
    `private`: the file keeps mode 0600 (a bundle); else it gets the mode a new file would (0666
    less the umask). Raises `EmblensError` (one line) when the folder cannot be written."""
    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    tmp = folder / f".{target.name}.{secrets.token_hex(6)}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _BINARY, 0o600)
    except OSError as e:
        raise EmblensError(f"cannot write {target}: {e.strerror or e}") from None
    done = False
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        if not private:
            os.chmod(tmp, 0o666 & ~_UMASK)
        try:
            os.replace(tmp, target)
        except OSError as e:
            raise EmblensError(f"cannot write {target}: {e.strerror or e}") from None
        done = True
    except OSError as e:
        raise EmblensError(f"cannot write {target}: {e.strerror or e}") from None
    finally:
        if not done:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def write_text(path: str | os.PathLike[str], text: str, private: bool = False) -> None:
    """`text` (UTF-8) as the whole of `path`, atomically (see `replacing`)."""
    with replacing(path, private) as f:
        f.write(text.encode("utf-8"))


def write_bytes(path: str | os.PathLike[str], data: bytes, private: bool = False) -> None:
    with replacing(path, private) as f:
        f.write(data)
