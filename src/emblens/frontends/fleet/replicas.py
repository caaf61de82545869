"""What a replica is: its name, where it lies and its files.

A SOURCE is a folder, a bundle (or any file), a glob of them, or an object-storage prefix
(`s3://bucket/prefix`, read through fsspec; each file is read by the worker that analyses its
replica, never copied to the driver). A folder (or prefix) that holds sub-folders or bundles is a
fleet: each of its entries is a replica, a sub-folder with every file under it, or a file. A
folder of plain files only (a replica's logs and tracebacks) is one replica, as is a file, and as
is each folder or file a glob matches (`'logs/pod-*'`, or the shell's expansion of it).

`--replica PATTERN` names the grouping inside folder SOURCEs: a path of components, each a glob
(`node-*`) or holding `{name}` placeholders (`{pod}`, `vllm-{pod}.log`), with `**` for any depth.
A file under a folder belongs to the replica named by the placeholders of the longest leading part
of its path the pattern matches: `{ns}/{pod}/**` makes `prod/vllm-0/logs/server.log` a file of the
replica `prod/vllm-0`. Without placeholders the matched part is the name.
"""

from __future__ import annotations

import glob
import os
import re
from dataclasses import dataclass
from pathlib import Path

MAX_REPLICAS = 100_000        # replicas in one run
MAX_FILES = 200_000           # files looked at in one run, all replicas together
GLOB_CHARS = re.compile(r"[*?\[]")


@dataclass(frozen=True)
class Replica:
    name: str
    root: str                 # the folder or file it was found as (its files' paths are shown relative to it)
    files: tuple[str, ...]    # its files, read where they lie
    size: int                 # their bytes


class ReplicaError(ValueError):
    """A SOURCE or a pattern emblens cannot use (one line for the user)."""


@dataclass(frozen=True)
class Pattern:
    """`--replica`: the components that name a replica (each a regex), and a glob its files' paths
    below those must match (`**`: any, the default)."""

    text: str
    head: tuple[re.Pattern, ...]
    names: tuple[str, ...]
    tail: re.Pattern | None

    @classmethod
    def parse(cls, text: str) -> Pattern:
        parts = [p for p in text.strip().strip("/").split("/") if p]
        cut = parts.index("**") if "**" in parts else len(parts)
        head, rest = parts[:cut], parts[cut + 1:]
        if not head:
            raise ReplicaError(f"--replica {text!r}: the pattern must start with the components that name a replica")
        names: list[str] = []
        regexes = []
        for part in head + rest:
            if "**" in part:
                raise ReplicaError(f"--replica {text!r}: `**` must be a whole component, and only one")
        for part in head:
            rx = ""
            for piece in re.split(r"(\{[^{}/]*\})", part):
                if piece.startswith("{") and piece.endswith("}"):
                    name = piece[1:-1]
                    if not re.fullmatch(r"[A-Za-z_]\w{0,40}", name):
                        raise ReplicaError(f"--replica {text!r}: {piece} is not a name (letters, digits, _)")
                    if name in names:
                        raise ReplicaError(f"--replica {text!r}: {piece} appears twice")
                    names.append(name)
                    rx += f"(?P<{name}>.+?)"
                else:
                    rx += _glob(piece)
            regexes.append(re.compile(rx))
        tail = re.compile("(?:[^/]+/)*" + "/".join(_glob(p) for p in rest)) if rest else None
        return cls(text, tuple(regexes), tuple(names), tail)

    def replica_of(self, rel: str) -> tuple[str, str] | None:
        """(name, the leading part of the path that names it) of a file's path relative to its
        folder, or None when the file belongs to no replica."""
        parts = rel.split("/")
        n = len(self.head)
        if len(parts) < n:
            return None
        values: dict[str, str] = {}
        for rx, part in zip(self.head, parts[:n]):
            m = rx.fullmatch(part)
            if m is None:
                return None
            values.update(m.groupdict())
        below = "/".join(parts[n:])
        if self.tail is not None and not self.tail.fullmatch(below):
            return None
        head = "/".join(parts[:n])
        return ("/".join(values[k] for k in self.names) if self.names else head), head


def _glob(piece: str) -> str:
    out, i = "", 0
    while i < len(piece):
        c = piece[i]
        if c == "*":
            out += "[^/]*"
        elif c == "?":
            out += "[^/]"
        elif c == "[":
            j = piece.find("]", i + 1)
            if j < 0:
                out += re.escape(c)
            else:
                body = piece[i + 1:j]
                out += "[" + ("^" + body[1:] if body.startswith("!") else body).replace("\\", "\\\\") + "]"
                i = j
        else:
            out += re.escape(c)
        i += 1
    return out


DEFAULT = Pattern.parse("{replica}/**")


def _walk(folder: Path, budget: list[int]) -> list[tuple[str, int]]:
    """(path relative to `folder`, bytes) of every regular file under it, hidden ones and links
    left out, in a stable order; at most `budget[0]` files in all."""
    out: list[tuple[str, int]] = []
    for root, dirs, files in os.walk(folder, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if name.startswith("."):
                continue
            path = Path(root) / name
            try:
                st = path.lstat()
            except OSError:
                continue
            if not path.is_symlink() and path.is_file():
                if budget[0] <= 0:
                    raise ReplicaError(f"more than {MAX_FILES:,} files under the sources: name fewer, or a narrower --replica")
                budget[0] -= 1
                out.append((path.relative_to(folder).as_posix(), st.st_size))
    return out


URL = re.compile(r"^(?P<scheme>[a-z][a-z0-9+.-]{1,15})://")


def is_url(path: str) -> bool:
    return bool(URL.match(path)) and not path.startswith("file://")


def filesystem(url: str, storage: dict | None = None):
    """(fsspec filesystem, path in it) of an object-storage URL (`s3://bucket/prefix`)."""
    try:
        import fsspec
    except ImportError:
        raise ReplicaError(f"{url}: reading object storage needs fsspec and its driver: pip install 'emblens[s3]'") from None
    try:
        return fsspec.core.url_to_fs(url, **(storage or {}))
    except ImportError as e:
        raise ReplicaError(f"{url}: {URL.match(url)['scheme']}:// needs its fsspec driver ({e.name}): "
                           "pip install 'emblens[s3]' for s3://") from None
    except (ValueError, TypeError) as e:
        raise ReplicaError(f"{url}: {e}") from None


def _remote(source: str, rule: Pattern, storage: dict | None, budget: list[int], pattern_given: bool) -> list[Replica]:
    """The replicas under an object-storage prefix, grouped as a folder's are (one level, or
    `--replica`); an object named exactly is one replica."""
    fs, root = filesystem(source, storage)
    scheme = URL.match(source)["scheme"]
    root = root.rstrip("/")
    try:
        if fs.isfile(root):
            size = int(fs.info(root).get("size") or 0)
            return [Replica(root.rsplit("/", 1)[-1], source, (source,), size)]
        listing = fs.find(root, detail=True)
    except FileNotFoundError:
        raise ReplicaError(f"{source}: no such object or prefix") from None
    except PermissionError as e:
        raise ReplicaError(f"{source}: access denied ({e})") from None
    except OSError as e:
        raise ReplicaError(f"{source}: cannot list it ({e})") from None
    if not listing:
        raise ReplicaError(f"{source}: no such object or prefix (or nothing under it)")
    groups: dict[str, tuple[set[str], list[tuple[str, int]]]] = {}
    for key, info in sorted(listing.items()):
        if info.get("type") == "directory":
            continue
        rel = key[len(root) + 1:] if key.startswith(root + "/") else key.rsplit("/", 1)[-1]
        if not rel or any(part.startswith(".") for part in rel.split("/")):
            continue
        if budget[0] <= 0:
            raise ReplicaError(f"more than {MAX_FILES:,} files under the sources: name fewer, or a narrower --replica")
        budget[0] -= 1
        hit = rule.replica_of(rel)
        if hit is None:
            continue
        heads, files = groups.setdefault(hit[0], (set(), []))
        heads.add(hit[1])
        files.append((rel, int(info.get("size") or 0)))
    base = f"{scheme}://{root}"
    plain = [(rel, size) for _, files in groups.values() for rel, size in files]
    if pattern_given is False and plain and all("/" not in rel and not is_bundle(rel) for rel, _ in plain):
        # a prefix of plain files only (logs, tracebacks) is one replica, as a folder of them is
        name = root.rsplit("/", 1)[-1]
        return [Replica(name, base, tuple(f"{base}/{rel}" for rel, _ in sorted(plain)), sum(s for _, s in plain))]
    out = []
    for name, (heads, files) in groups.items():
        head = next(iter(heads)) if len(heads) == 1 else os.path.commonpath(sorted(heads))
        out.append(Replica(name, f"{base}/{head}", tuple(f"{base}/{f}" for f, _ in files), sum(s for _, s in files)))
    return out


BUNDLES = (".zip", ".tar", ".tgz", ".tar.gz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz", ".tar.zst")


def is_bundle(name: str) -> bool:
    return name.lower().endswith(BUNDLES)


def _is_fleet(folder: Path) -> bool:
    """Whether a folder's entries are replicas: it holds a sub-folder or a bundle. A folder of
    plain files only (logs, tracebacks) is one replica."""
    try:
        for entry in os.scandir(folder):
            if entry.name.startswith("."):
                continue
            if entry.is_dir(follow_symlinks=False) or (entry.is_file(follow_symlinks=False) and is_bundle(entry.name)):
                return True
    except OSError:
        return True
    return False


def discover(sources: list[str], pattern: str | None = None, storage: dict | None = None) -> list[Replica]:
    """The replicas of `sources` (paths, globs, object-storage URLs read with `storage`, fsspec's
    options: `endpoint_url`), in a stable order; ReplicaError for a source that is not there or a
    pattern that cannot be read. Names are unique: a second replica of the same name is named
    after its source too."""
    rule = Pattern.parse(pattern) if pattern else DEFAULT
    budget = [MAX_FILES]
    found: list[Replica] = []
    for source in sources:
        if is_url(source):
            found += _remote(source, rule, storage, budget, pattern is not None)
            continue
        if source.startswith("file://"):
            source = source[len("file://"):]
        targets: list[tuple[Path, bool]]     # (path, whether its entries are the replicas)
        if Path(source).exists():
            targets = [(Path(source), Path(source).is_dir() and (pattern is not None or _is_fleet(Path(source))))]
        elif GLOB_CHARS.search(source):
            matches = sorted(glob.glob(source, recursive=True))
            if not matches:
                raise ReplicaError(f"{source}: no file or folder matches")
            targets = [(Path(m), False) for m in matches]
        else:
            raise ReplicaError(f"{source}: no such file or folder")
        for path, inside in targets:
            if path.is_file():
                found.append(Replica(path.name, str(path), (str(path),), path.stat().st_size))
            elif not inside:
                files = _walk(path, budget)
                found.append(Replica(path.name, str(path), tuple(str(path / f) for f, _ in files), sum(s for _, s in files)))
            else:
                groups: dict[str, tuple[set[str], list[tuple[str, int]]]] = {}
                for rel, size in _walk(path, budget):
                    hit = rule.replica_of(rel)
                    if hit is None:
                        continue
                    name, head = hit
                    heads, files = groups.setdefault(name, (set(), []))
                    heads.add(head)
                    files.append((rel, size))
                for name, (heads, files) in groups.items():
                    # one head, or (a name some placeholders leave the same in several places) their common folder
                    root = path / (next(iter(heads)) if len(heads) == 1 else os.path.commonpath(sorted(heads)))
                    found.append(Replica(name, str(root), tuple(str(path / f) for f, _ in files), sum(s for _, s in files)))
        if len(found) > MAX_REPLICAS:
            raise ReplicaError(f"more than {MAX_REPLICAS:,} replicas: name fewer sources")
    return _unique(found)


def _unique(found: list[Replica]) -> list[Replica]:
    seen: dict[str, int] = {}
    out = []
    for r in found:
        if r.name in seen:
            seen[r.name] += 1
            r = Replica(f"{r.name} ({Path(r.root).parent.name or r.root}, {seen[r.name]})", r.root, r.files, r.size)
        else:
            seen[r.name] = 1
        out.append(r)
    return out
