"""A cache of loaded rule sets, so that start-up does not parse the YAML and check every regex
against both engines on each run (about 0.3 s of the 0.4 s it took to load the built-in rules).

The key is a hash of everything the result depends on: the folders' paths and the content of every
file under them (rules, fixtures' names, model data), emblens's version and its rule-loading code,
and the versions of Python and polars (whose regex engine decides which patterns run where). A
change to any of them is a new key, so an entry is never stale; hashing the files costs a few
milliseconds. Entries live in `$EMBLENS_CACHE_DIR`, else `$XDG_CACHE_HOME/emblens`, else
`~/.cache/emblens`, written atomically and readable by the user only. Set `EMBLENS_NO_CACHE=1` to
bypass it. A cache that cannot be read or written is ignored: it only ever saves time.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

MAX_FILES = 5_000              # files hashed per folder; a folder with more is not cached
MAX_BYTES = 64 * 1024 * 1024   # bytes hashed in all; more is not cached
KEEP = 20                      # entries kept; older ones are removed when a new one is written
CODE = Path(__file__).resolve().parent


def folder() -> Path | None:
    if os.environ.get("EMBLENS_NO_CACHE"):
        return None
    base = os.environ.get("EMBLENS_CACHE_DIR")
    if base:
        return Path(base)
    xdg = os.environ.get("XDG_CACHE_HOME")
    root = Path(xdg) if xdg else Path.home() / ".cache"
    return root / "emblens"


def key(folders: Sequence[Path]) -> str | None:
    """The hash naming the rule set these folders load to, or None when it is not to be cached."""
    if folder() is None:
        return None
    import polars

    from emblens._version import __version__

    h = hashlib.blake2b(digest_size=20)
    for part in (__version__, sys.version, polars.__version__):
        h.update(part.encode() + b"\0")
    budget = MAX_BYTES
    for code in sorted(CODE.glob("*.py")) + [CODE.parent / p for p in ("events/schema.py", "knowledge/modeldata.py",
                                                                      "knowledge/upstream.py", "patterns/linear.py",
                                                                      "patterns/literals.py")]:
        try:
            h.update(code.read_bytes())
        except OSError:
            return None
    for d in folders:
        h.update(b"folder\0" + str(Path(d).resolve()).encode("utf-8", "surrogateescape") + b"\0")
        try:
            files = sorted(p for p in Path(d).rglob("*") if p.is_file())
        except OSError:
            return None
        if len(files) > MAX_FILES:
            return None
        for p in files:
            try:
                data = p.read_bytes() if p.suffix in (".yaml", ".yml") else b""
            except OSError:
                return None
            budget -= len(data)
            if budget < 0:
                return None
            h.update(str(p.relative_to(d)).encode("utf-8", "surrogateescape") + b"\0")
            h.update(len(data).to_bytes(8, "little") + data)
    return h.hexdigest()


def stamp(folders: Sequence[Path]) -> str | None:
    """What the files under `folders` and the rule-loading code are as the file system sees them
    (names, sizes, modification times): a cheap key for a load within one process, where `key`
    reads every file. None when a folder cannot be listed or holds too many files."""
    h = hashlib.blake2b(digest_size=20)
    h.update(f"{folder()}\0".encode("utf-8", "surrogateescape"))      # a load with another cache (or none) is another
    try:
        for p in sorted(CODE.glob("*.py")):
            st = p.stat()
            h.update(f"{p}\0{st.st_size}\0{st.st_mtime_ns}\0".encode("utf-8", "surrogateescape"))
        for d in folders:
            h.update(b"folder\0" + str(Path(d).resolve()).encode("utf-8", "surrogateescape") + b"\0")
            seen = 0
            for top, dirs, files in os.walk(d):
                dirs.sort()
                seen += len(files)
                if seen > MAX_FILES:
                    return None
                for name in sorted(files):
                    st = os.stat(os.path.join(top, name))
                    h.update(f"{top}/{name}\0{st.st_size}\0{st.st_mtime_ns}\0".encode("utf-8", "surrogateescape"))
    except OSError:
        return None
    return h.hexdigest()


def get(key: str | None) -> object | None:
    """The cached value (the loader checks that it is a rule set), or None."""
    if key is None:
        return None
    path = folder() / f"rules-{key}.pickle"
    try:
        with open(path, "rb") as f:
            value = pickle.load(f)
    except Exception:   # missing, unreadable, truncated or from another version: load the rules again
        return None
    return value


def put(key: str | None, ruleset) -> None:
    if key is None:
        return
    d = folder()
    try:
        d.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(dir=d, prefix=".rules-", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                pickle.dump(ruleset, f, protocol=pickle.HIGHEST_PROTOCOL)
            os.replace(tmp, d / f"rules-{key}.pickle")
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        entries = sorted(d.glob("rules-*.pickle"), key=lambda p: p.stat().st_mtime, reverse=True)
        for old in entries[KEEP:]:
            old.unlink(missing_ok=True)
    except Exception:   # a read-only home, a full disk: run without the cache
        return
