"""The same incident however it is packed; broken members are reported and skipped."""

import gzip
import io
import tarfile
import zipfile
from pathlib import Path

import pytest

from emblens import analyze

SAMPLE_DIR = Path(__file__).resolve().parents[1] / "samples" / "model-name-mismatch"


def _ids(paths):
    return [(f.rule, f.role, f.count) for f in analyze([str(p) for p in paths]).findings]


def test_same_findings_from_files_folder_tar_and_zip(tmp_path):
    files = sorted(SAMPLE_DIR.iterdir())
    expected = _ids(files)
    assert expected and expected[0][0] == "model.not_found"
    tgz = tmp_path / "incident.tar.gz"
    with tarfile.open(tgz, "w:gz") as tf:
        for f in files:
            tf.add(f, arcname=f"incident/{f.name}")
    zp = tmp_path / "incident.zip"
    with zipfile.ZipFile(zp, "w", zipfile.ZIP_DEFLATED) as zf:
        for f in files:
            zf.write(f, f"incident/{f.name}")
    gz_dir = tmp_path / "rotated"
    gz_dir.mkdir()
    for f in files:  # rotated logs are often gzip'd
        (gz_dir / (f.name + ".gz")).write_bytes(gzip.compress(f.read_bytes()))
    assert _ids([SAMPLE_DIR]) == expected
    assert _ids([tgz]) == expected
    assert _ids([zp]) == expected
    assert _ids([gz_dir]) == expected


def test_broken_members_are_skipped_with_reasons(tmp_path):
    zp = tmp_path / "bundle.zip"
    good = (SAMPLE_DIR / "client-traceback.txt").read_bytes()
    log = "".join(f"INFO 01-01 00:00:{i % 60:02d} [x.py:{i}] request {i * 7919 % 100003} done\n" for i in range(5000))
    with zipfile.ZipFile(zp, "w") as zf:
        zf.writestr("client.txt", good)
        zf.writestr("server.log.gz", gzip.compress(log.encode())[:20000])  # truncated gzip
        zf.writestr("core.bin", bytes(range(256)) * 40)
        zf.writestr("empty.log", b"")
        zf.writestr("../../etc/passwd", b"root:x:0:0:root:/root:/bin/bash\n")
    a = analyze([str(zp)])
    reasons = {s.label.split(":", 1)[1]: s.reason for s in a.skipped}
    assert set(reasons) == {"core.bin", "empty.log"}
    # the truncated gzip keeps the lines before the break and says where reading stopped
    (gz,) = [i for i in a.inputs if i.source.endswith("server.log.gz")]
    assert gz.kind == "vllm-log" and 0 < gz.lines < 5000
    assert gz.note.startswith(f"read stopped after line {gz.lines:,}: corrupt compressed data: Compressed file ended")
    assert "binary" in reasons["core.bin"]
    assert "empty" in reasons["empty.log"]
    assert a.findings[0].rule == "model.not_found"
    # a hostile name is only a label: nothing was written anywhere
    assert any(i.source.endswith(":../../etc/passwd") for i in a.inputs)


def test_cli_exit_0_with_skipped_members(tmp_path):
    from typer.testing import CliRunner

    from emblens.frontends.cli import app

    zp = tmp_path / "b.zip"
    with zipfile.ZipFile(zp, "w") as zf:
        zf.writestr("client.txt", (SAMPLE_DIR / "client-traceback.txt").read_bytes())
        zf.writestr("blob.bin", b"\x00\x01\x02" * 100)
        zf.writestr("zero.txt", b"")
    r = CliRunner().invoke(app, ["analyze", str(zp), "--width", "200"])
    assert r.exit_code == 0
    assert f"Paths below are in {zp}\n" in r.output          # said once; each member by its own name
    assert "\n  blob.bin\n    skipped: binary file (contains NUL bytes)" in r.output
    assert "\n  zero.txt\n    skipped: empty (0 bytes)" in r.output


def test_nested_and_limits(tmp_path):
    from emblens.settings import Limits

    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as zf:
        zf.writestr("client.txt", (SAMPLE_DIR / "client-traceback.txt").read_bytes())
    outer = tmp_path / "outer.zip"
    with zipfile.ZipFile(outer, "w") as zf:
        zf.writestr("inner.zip", inner.getvalue())
    assert analyze([str(outer)]).findings[0].rule == "model.not_found"
    a = analyze([str(outer)], limits=Limits(max_depth=1))
    assert not a.findings and "nested deeper" in a.skipped[0].reason


def test_healthy_busy_log_has_no_findings(repo):
    for name, served in (("engine/startup_failed.neg-vllm0.33-healthy.log", "Qwen3-Embedding-4B"),
                         ("auth/invalid_key.neg-vllm0.11-healthy.log", "Qwen3-Embedding-4B"),
                         ("gpu/oom.neg-vllm0.6.6-healthy.log", "bge-m3")):
        a = analyze([str(repo / "rules" / name)])
        assert a.findings == [], name
        assert a.unexplained == [], name
        assert [(i.kind, i.unparsed) for i in a.inputs] == [("vllm-log", 0)]
        assert a.inputs[0].events > 300
        assert a.facts.served_models == [served]


def _zip(path, members, compression=zipfile.ZIP_DEFLATED):
    with zipfile.ZipFile(path, "w", compression) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def _log(n_bytes: int, seed: int = 0) -> bytes:
    """A vLLM access log of about n_bytes that does not compress to nothing."""
    lines, size, i = [], 0, seed
    while size < n_bytes:
        line = f'INFO:     10.0.{i % 256}.{i * 7 % 256}:{40000 + i % 9999} - "POST /v1/embeddings HTTP/1.1" 200 OK\n'
        lines.append(line)
        size += len(line)
        i += 1
    return "".join(lines).encode()


def test_every_limit_is_enforced_and_reported(tmp_path):
    from emblens.settings import Limits, MiB

    client = (SAMPLE_DIR / "client-traceback.txt").read_bytes()
    # members: only the first 3 of 5 are read
    a = analyze([str(_zip(tmp_path / "many.zip", {f"{i}.txt": client for i in range(5)}))], limits=Limits(max_members=3))
    assert [s.reason for s in a.skipped] == ["over the limit of 3 members",
                                             "1 more member(s) not read: over the limit of 3 members"]
    assert len(a.inputs) == 3
    # bytes per member: the big one is skipped, the small one read
    a = analyze([str(_zip(tmp_path / "big.zip", {"big.log": _log(2 * MiB), "client.txt": client}))],
                limits=Limits(max_member_bytes=1 * MiB))
    assert [(s.label.rsplit(":", 1)[1], s.reason) for s in a.skipped] == [("big.log", "larger than the 1 MiB member limit")]
    assert a.findings[0].rule == "model.not_found"
    # bytes in total: once the bundle is over, the member being read and the rest are skipped
    a = analyze([str(_zip(tmp_path / "total.zip", {"a.log": _log(MiB + MiB // 2), "b.log": _log(MiB, 1), "c.txt": client}))],
                limits=Limits(max_total_bytes=2 * MiB))
    assert [i.source.rsplit(":", 1)[1] for i in a.inputs] == ["a.log"]
    assert {s.label.rsplit(":", 1)[1] for s in a.skipped} == {"b.log", "c.txt"}
    assert all("over its total limit of 2 MiB" in s.reason for s in a.skipped)
    # compression ratio: a member that inflates 1000-fold is refused, from the archive's own sizes
    a = analyze([str(_zip(tmp_path / "bomb.zip", {"bomb.log": b"A" * (3 * MiB), "client.txt": client}))],
                limits=Limits(ratio_floor_bytes=MiB))
    assert [s.reason for s in a.skipped] == ["compression ratio above the limit (possible archive bomb)"]
    # ... and a gzip member, whose size is known only while it is read
    gz = tmp_path / "bomb.log.gz"
    gz.write_bytes(gzip.compress(b"A" * (3 * MiB)))
    a = analyze([str(gz)], limits=Limits(ratio_floor_bytes=MiB))
    assert a.skipped[0].reason == "cannot read: compression ratio above the limit (possible archive bomb)"
    # archives held in memory (nested ones): the inner zip is too big to hold, the rest is read
    import os

    inner = io.BytesIO()
    _zip(inner, {"noise.bin": os.urandom(MiB + MiB // 2)}, zipfile.ZIP_STORED)
    outer = _zip(tmp_path / "outer.zip", {"inner.zip": inner.getvalue(), "client.txt": client}, zipfile.ZIP_STORED)
    a = analyze([str(outer)], limits=Limits(max_inmemory_bytes=MiB))
    assert [s.reason for s in a.skipped] == ["not a readable zip archive: nested archive larger than 1 MiB"]
    assert a.findings[0].rule == "model.not_found"
    with pytest.raises(ValueError, match="max_total_bytes must be at least 1"):
        Limits(max_total_bytes=0)


def test_archives_are_closed_after_reading(tmp_path):
    import warnings

    zp = _zip(tmp_path / "b.zip", {"client.txt": (SAMPLE_DIR / "client-traceback.txt").read_bytes()})
    tp = tmp_path / "b.tar"
    with tarfile.open(tp, "w") as tf:
        tf.add(SAMPLE_DIR / "client-traceback.txt", arcname="client.txt")
    with warnings.catch_warnings():
        warnings.simplefilter("error", ResourceWarning)   # an unclosed file would warn when collected
        for path in (zp, tp):
            assert analyze([str(path)]).findings[0].rule == "model.not_found"
            import gc

            gc.collect()


def test_the_rules_prefilter_drops_routine_traffic():
    """A busy server's log is mostly 200 OK access lines and metrics: the rules' keep pattern must
    not match them, or every line of a big log is parsed (a loose conjunct such as `(?i)embed`
    once made the 256 MiB benchmark 9x slower and 10x bigger)."""
    import polars as pl

    from emblens.rules.loader import load_rules

    routine = [
        '(APIServer pid=3999075) INFO:     10.0.0.9:40110 - "POST /v1/embeddings HTTP/1.1" 200 OK',
        'INFO:     172.17.0.1:51234 - "POST /v1/chat/completions HTTP/1.1" 200 OK',
        "(APIServer pid=3999075) INFO 11-20 09:15:02 [loggers.py:123] Engine 000: Avg prompt throughput: "
        "1021.3 tokens/s, Avg generation throughput: 0.0 tokens/s, Running: 3 reqs, Waiting: 0 reqs, "
        "GPU KV cache usage: 0.4%, Prefix cache hit rate: 0.0%",
        "[2025-06-18 09:20:11] INFO:     127.0.0.1:51022 - \"POST /v1/embeddings HTTP/1.1\" 200 OK",
        "[2025-06-18 09:20:11 TP0] Prefill batch. #new-seq: 4, #new-token: 2048, #cached-token: 0, "
        "token usage: 0.01, #running-req: 0, #queue-req: 0",
    ]
    keep = load_rules().keywords
    kept = pl.Series(routine).str.contains(keep)
    assert not kept.any(), [line for line, k in zip(routine, kept) if k]


def test_the_rules_prefilter_has_no_counted_repetition():
    """The keep pattern is one union of every rule's text patterns. Counted repetitions in it
    (`[^"]{0,120}`, `{1,80}`) make the regex engine's DFA blow up: 4 MB of routine log took 20 s
    instead of 0.05 s. The prefilter widens them to `*` / `+`; the rules keep their exact form."""
    import re

    from emblens.rules.loader import load_rules, uncounted

    keep = load_rules().keywords
    assert not re.search(r"(?<!\\)\{\d+(?:,\d*)?\}", keep)
    assert uncounted(r'fail(?:ed)? to get image[^"]{0,120}') == r'fail(?:ed)? to get image[^"]*'
    assert uncounted(r"\d{4}-\d{2}") == r"\d+-\d+" and uncounted(r"\{1,2\}") == r"\{1,2\}"


class _Stdin:
    """sys.stdin with a binary buffer that can be read once, front to back, like a pipe."""

    def __init__(self, data: bytes) -> None:
        self.buffer = _Pipe(data)


class _Pipe(io.RawIOBase):
    def __init__(self, data: bytes) -> None:
        self._data, self._at = data, 0

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        chunk = self._data[self._at:self._at + len(b)]
        b[: len(chunk)] = chunk
        self._at += len(chunk)
        return len(chunk)

    def seekable(self) -> bool:
        return False


def test_stdin_is_streamed_not_held_and_a_tar_gz_on_it_or_in_a_zip_is_read(monkeypatch, tmp_path):
    import sys

    from emblens.diagnose import analyze as run
    from emblens.settings import Limits

    small = Limits(max_inmemory_bytes=1024 * 1024)        # stdin used to be held whole, up to this
    log = (SAMPLE_DIR / "vllm-server.log").read_bytes()
    big = log * (3 * 1024 * 1024 // len(log) + 1)          # 3 MiB: past the limit, streamed through
    monkeypatch.setattr(sys, "stdin", _Stdin(big))
    a = run(["-"], limits=small)
    assert not a.skipped and a.inputs[0].lines == big.count(b"\n") and a.findings[0].rule == "model.not_found"
    # a zip needs to be read out of order: held in memory, so over the limit it is skipped with the reason
    bundle = tmp_path / "b.zip"
    with zipfile.ZipFile(bundle, "w", zipfile.ZIP_STORED) as z:
        z.writestr("vllm.log", big)
    monkeypatch.setattr(sys, "stdin", _Stdin(bundle.read_bytes()))
    a = run(["-"], limits=small)
    assert not a.inputs and "a zip larger than 1 MiB on standard input" in a.skipped[0].reason
    # a tar.gz piped in, and one inside a zip (both were read as if not compressed: "invalid header")
    tgz = io.BytesIO()
    with tarfile.open(fileobj=tgz, mode="w:gz") as t:
        t.add(SAMPLE_DIR, arcname="incident")
    monkeypatch.setattr(sys, "stdin", _Stdin(tgz.getvalue()))
    a = run(["-"])
    assert sorted(i.source for i in a.inputs) == ["<stdin>:incident/client-traceback.txt", "<stdin>:incident/vllm-server.log"]
    with zipfile.ZipFile(bundle, "w") as z:
        z.writestr("inner.tar.gz", tgz.getvalue())
    a = run([bundle])
    assert len(a.inputs) == 2 and a.findings[0].rule == "model.not_found"


def test_gzip_files_and_zip_members_are_inflated_by_isal_with_the_same_bytes(tmp_path):
    """ISA-L inflates (emblens.ingest.inflate); the bytes are the same, a zip member's CRC is still
    checked, and a gzip cut short still gives what came before the break."""
    import gzip as std_gzip
    import io
    import zipfile as std_zip

    from emblens.ingest import inflate

    assert inflate.ENGINE == "isal"
    data = b"".join(b'INFO:     10.0.0.%d:4000 - "POST /v1/embeddings HTTP/1.1" 200 OK\n' % (i % 250) for i in range(200_000))
    z = tmp_path / "b.zip"
    with std_zip.ZipFile(z, "w", std_zip.ZIP_DEFLATED) as zf:
        zf.writestr("vllm.log", data)
    with std_zip.ZipFile(z) as zf:
        member = inflate.zip_member(zf, zf.infolist()[0])
        assert type(member._decompressor).__module__.startswith("isal")
        assert member.read() == data
    bad = bytearray(z.read_bytes())
    bad[bad.index(b"vllm.log") + 60] ^= 0xFF          # a byte of the compressed data
    with std_zip.ZipFile(io.BytesIO(bytes(bad))) as zf, pytest.raises((std_zip.BadZipFile, *inflate.ERRORS)):
        inflate.zip_member(zf, zf.infolist()[0]).read()
    packed = std_gzip.compress(data)
    assert inflate.gzip_file(fileobj=io.BytesIO(packed)).read() == data
    cut = inflate.gzip_file(fileobj=io.BytesIO(packed[: len(packed) // 2]))
    got = b""
    with pytest.raises(EOFError):
        while block := cut.read(4096):
            got += block
    assert len(got) > len(data) // 4 and data.startswith(got)
