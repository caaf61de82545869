"""Hostile input, each attack at a size that runs fast: no traceback, no hang, no unbounded
memory, and the good members beside a bad one are still analysed."""

import gzip
import io
import tarfile
import time
import zipfile
from pathlib import Path

from emblens import analyze
from emblens.bundle import Limits, MiB, read_members

SAMPLES = Path(__file__).resolve().parents[1] / "samples" / "model-name-mismatch"
GOOD = (SAMPLES / "client-traceback.txt").read_bytes()


def _zip_bytes(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _tar_gz(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


# -- archives --------------------------------------------------------------------------------------
def test_a_tar_gz_is_decompressed_once_not_once_per_member(tmp_path, monkeypatch):
    members = {f"logs/{i:03}.log": GOOD + f"# member {i}\n".encode() * 2000 for i in range(60)}
    path = _tar_gz(tmp_path / "many.tar.gz", members)
    opened = []
    real = gzip.GzipFile.__init__

    def counting(self, *a, **kw):
        opened.append(1)
        real(self, *a, **kw)

    monkeypatch.setattr(gzip.GzipFile, "__init__", counting)
    a = analyze([str(path)])
    assert len(a.inputs) == 60 and not a.skipped
    assert len(opened) <= 2          # one peek at the gzip header, one pass over the archive
    assert a.findings[0].rule == "model.not_found"


def test_a_truncated_tar_keeps_the_members_before_the_break(tmp_path):
    whole = tmp_path / "whole.tar"
    with tarfile.open(whole, "w") as tf:
        for name, data in (("a-client.txt", GOOD), ("b-big.log", b"INFO: x\n" * 50_000)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    data = whole.read_bytes()
    cut = tmp_path / "cut.tar"
    cut.write_bytes(data[: len(data) // 2])
    for path in (cut, tmp_path / "cut.tar.gz"):
        if path.suffix == ".gz":
            path.write_bytes(gzip.compress(data)[: len(gzip.compress(data)) // 2])
        a = analyze([str(path)])
        assert [i.source for i in a.inputs][:1] == [f"{path}:a-client.txt"], path
        assert a.findings and a.findings[0].rule == "model.not_found"
        assert any("b-big.log" in s.label or "truncated" in s.reason or "corrupt" in s.reason for s in a.skipped), a.skipped


def test_nested_zip_bomb_stops_at_the_ratio_budget_and_says_so(tmp_path):
    """42.zip-style: zips of zips of highly compressible leaves. The whole archive may expand to
    at most max_ratio times its size (never less than the floor); the rest is one notice."""
    leaf = _zip_bytes({f"{i}.log": b"INFO:     routine line\n" * (4 * MiB // 23) for i in range(8)})
    middle = _zip_bytes({f"{i}.zip": leaf for i in range(8)})
    top = tmp_path / "42.zip"
    top.write_bytes(_zip_bytes({f"{i}.zip": middle for i in range(8)} | {"0-client.txt": GOOD}))
    assert top.stat().st_size < 300_000          # 2 GiB of log lines inside
    started = time.monotonic()
    a = analyze([str(top)], limits=Limits(ratio_floor_bytes=16 * MiB))
    assert time.monotonic() - started < 30
    assert a.findings[0].rule == "model.not_found"         # the good member is still analysed
    notice = [s for s in a.skipped if "more member(s) not read" in s.reason]
    assert len(notice) == 1 and "archive bomb" in notice[0].reason
    assert len(a.skipped) < 20                              # one notice, not one line per leaf


def test_member_count_limit_holds_across_nesting(tmp_path):
    inner = _zip_bytes({f"{i}.txt": b"x\n" for i in range(40)})
    top = tmp_path / "n.zip"
    top.write_bytes(_zip_bytes({f"{i}.zip": inner for i in range(40)}))
    items = list(read_members([str(top)], Limits(max_members=100)))
    assert sum(1 for i in items if not hasattr(i, "reason")) == 100
    assert [i.reason for i in items if hasattr(i, "reason")][-1].endswith("over the limit of 100 members")


# -- rule folders ----------------------------------------------------------------------------------
RULE = "id: {id}\ntitle: t\nseverity: error\nmeans: m\nmatch: {{message: {{contains: {word}}}}}\nmessage: x\nremedy: [x]\n"


def _rules(tmp_path, files: dict[str, str]) -> Path:
    d = tmp_path / "rules"
    for name, text in files.items():
        (d / name).parent.mkdir(parents=True, exist_ok=True)
        (d / name).write_text(text)
    return d


def test_a_yaml_alias_bomb_in_a_rule_file_is_refused_at_its_line(tmp_path):
    import pytest

    from emblens.errors import RuleError
    from emblens.rules.loader import load_rules

    bomb = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    bomb += [f"{x}: &{x} [" + ",".join([f"*{y}"] * 9) + "]" for x, y in zip("bcdefghi", "abcdefgh")]
    text = RULE.format(id="test.bomb", word="x") + "x-notes:\n" + "".join(f"  {line}\n" for line in bomb)
    d = _rules(tmp_path, {"bomb.yaml": text})
    started = time.monotonic()
    with pytest.raises(RuleError, match=r"bomb\.yaml:10: .*aliases"):
        load_rules([d])
    assert time.monotonic() - started < 5


def test_model_data_regexes_run_in_the_linear_engine(tmp_path):
    import pytest

    from emblens.errors import RuleError
    from emblens.modeldata import load

    data = tmp_path / "m.yaml"
    data.write_text("families:\n  - name: evil\n    match: '(a+)+$'\n    prefixes: ['q: ']\n")
    started = time.monotonic()
    assert load([data]).family("a" * 45 + "!") is None          # Python's re: 110 s on this name
    assert load([data]).family("A" * 20) is not None             # case ignored, as before
    assert time.monotonic() - started < 2
    look = tmp_path / "look.yaml"
    look.write_text("families:\n  - name: look\n    match: '(?=a)a'\n    prefixes: ['q: ']\n")
    with pytest.raises(RuleError, match="linear-time"):
        load([look])


def test_the_backtracking_engine_has_a_budget_per_run_not_per_line(tmp_path):
    from emblens.rules.compiler import REGEX_RUN_BUDGET_S

    rule = ("id: test.slow\ntitle: t\nseverity: error\nmeans: m\n"
            "match: {text: {regex: '^ERROR (x|xx)+\\1y'}}\nmessage: x\nremedy: [x]\n")
    d = _rules(tmp_path, {"slow.yaml": rule})
    log = tmp_path / "slow.log"
    log.write_text(("ERROR " + "x" * 30 + "\n") * 2000)       # 0.05 s per line (the timeout) without the budget
    started = time.monotonic()
    a = analyze([str(log)], rule_dirs=[d])
    assert time.monotonic() - started < REGEX_RUN_BUDGET_S + 10
    assert any("budget" in n for n in a.notices), a.notices


def test_two_rules_with_one_id_in_one_folder_is_an_error_naming_both(tmp_path):
    import pytest

    from emblens.errors import RuleError
    from emblens.rules.loader import load_rules

    d = _rules(tmp_path, {"a.yaml": RULE.format(id="test.same", word="x"), "sub/b.yaml": RULE.format(id="test.same", word="y")})
    with pytest.raises(RuleError) as e:
        load_rules([d])
    assert "a.yaml:1" in str(e.value) and "b.yaml:1" in str(e.value)
    # a user folder may still replace a built-in id, with a notice
    user = _rules(tmp_path / "u", {"mine.yaml": RULE.format(id="auth.missing_key", word="x")})
    assert any("replaces rule auth.missing_key" in n for n in load_rules([user]).notices)
