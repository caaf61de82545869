"""The HTML report: one self-contained file (nothing loaded from elsewhere), charts drawn, input
text escaped, and, in a real headless Chromium, no console message and the charts on screen."""

from __future__ import annotations

import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from typer.testing import CliRunner

from emblens.frontends.cli import app

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = sorted((ROOT / "samples").glob("*.zip"))
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# what a chart draws: the 2xx bars, the errors (4xx), a process on a GPU (charts.STATUS_COLOURS, palette)
CHART_COLOURS = {"2xx": (0x2E, 0x7D, 0x32), "4xx": (0xEF, 0x6C, 0x00), "gpu process": (0x15, 0x65, 0xC0)}


class Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    handle_startendtag = handle_starttag


def tags_of(page: str) -> list[tuple[str, dict]]:
    parser = Tags()
    parser.feed(page)
    return parser.tags


def html_report(tmp_path: Path, *inputs) -> str:
    out = tmp_path / "report.html"
    result = CliRunner().invoke(app, ["analyze", *map(str, inputs), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert f"wrote {out} (html)" in result.stderr
    return out.read_text(encoding="utf-8")


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda p: p.stem)
def test_every_sample_gives_one_self_contained_page_with_charts(tmp_path, sample):
    page = html_report(tmp_path, sample)
    assert list(tmp_path.iterdir()) == [tmp_path / "report.html"]        # one file, nothing beside it
    tags = tags_of(page)
    names = [t for t, _ in tags]
    assert "script" not in names and "link" not in names and "iframe" not in names and "object" not in names
    for tag, attrs in tags:
        for key in ("src", "href", "xlink:href", "srcset", "poster", "data"):
            value = attrs.get(key)
            if value is None:
                continue
            if tag == "a" and key == "href":      # a reference to read, never loaded by the page
                assert value.startswith(("#", "https://")), value
            else:
                assert value.startswith(("#", "data:")), (tag, key, value)
    assert "url(http" not in page and "@import" not in page and "@font-face" not in page
    csp = next(a["content"] for t, a in tags if t == "meta" and a.get("http-equiv") == "Content-Security-Policy")
    assert "default-src 'none'" in csp
    figures = page.count("<figure")
    assert figures >= 1 and page.count("<svg") == figures
    assert "ROOT CAUSE" in page and "Coverage" in page and "Masked" in page


def test_the_charts_follow_the_data(tmp_path):
    page = html_report(tmp_path, ROOT / "samples/model-name-mismatch.zip")
    assert 'id="chart-requests"' in page and 'id="chart-kv"' in page and "400 requests seen" in page
    assert 'id="chart-gpu"' not in page
    page = html_report(tmp_path, ROOT / "samples/gpu-held-by-another-process.zip")
    assert 'id="chart-gpu"' in page and 'id="chart-requests"' not in page


def test_input_text_is_escaped_and_cannot_load_anything(tmp_path):
    log = tmp_path / "client.txt"
    log.write_text('Traceback (most recent call last):\n  File "x.py", line 1, in <module>\n'
                   'openai.APIConnectionError: Connection error. <script>alert(1)</script>'
                   '<img src="https://evil.example/x.png"> $\\frac{a}{b}$ \x07\n')
    page = html_report(tmp_path, log)
    assert "<script>alert" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert not any(t == "img" for t, _ in tags_of(page))
    assert "\x07" not in page and "\\x07" in page       # shown, never acted on


def _chromium(page: Path, tmp_path: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
         f"--user-data-dir={tmp_path / 'chromium-profile'}", "--enable-logging=stderr", "--v=0",
         "--virtual-time-budget=1000", *extra, page.as_uri()],
        capture_output=True, text=True, timeout=120, check=False)


def _console(run: subprocess.CompletedProcess) -> list[str]:
    return [line for line in run.stderr.splitlines() if ":CONSOLE" in line]


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (.ci/run installs Debian's chromium)")
def test_the_console_check_sees_errors(tmp_path):
    bad = tmp_path / "bad.html"
    bad.write_text('<!DOCTYPE html><html><body><script>console.error("boom"); missing();</script>'
                   '<img src="https://example.invalid/x.png"></body></html>')
    assert any('"boom"' in line for line in _console(_chromium(bad, tmp_path, "--dump-dom")))


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (.ci/run installs Debian's chromium)")
@pytest.mark.parametrize("sample", SAMPLES, ids=lambda p: p.stem)
def test_each_sample_report_loads_in_chromium_with_no_console_message_and_its_charts_on_screen(tmp_path, sample):
    from PIL import Image

    html_report(tmp_path, sample)
    page = tmp_path / "report.html"
    source = page.read_text(encoding="utf-8")
    assert source.count("<figure") >= 1 and "<svg" in source      # the charts are drawn into the page, not by a script
    # one launch: the page loads with no console message, and its charts are on screen
    shot = tmp_path / "shot.png"
    run = _chromium(page, tmp_path, "--window-size=1100,6000", f"--screenshot={shot}")
    assert run.returncode == 0 and _console(run) == [] and shot.exists(), _console(run)
    import numpy as np

    pixels = np.asarray(Image.open(shot).convert("RGB"), dtype=np.int16)
    seen = {name: int((np.abs(pixels - np.array(colour)).max(axis=2) < 12).sum()) for name, colour in CHART_COLOURS.items()}
    if "gpu" in sample.stem:
        assert seen["gpu process"] > 2000, seen          # the bar of the process holding the GPU
    else:
        assert seen["2xx"] > 2000, seen                  # the bars of the requests


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda p: p.stem)
def test_the_markdown_report_renders_as_github_flavoured_markdown(sample):
    """Headings, pipe tables, code spans and lists come out as such from a GFM renderer (markdown-it,
    CommonMark plus GFM tables): the elements a rich-text editor keeps on paste."""
    import re

    from markdown_it import MarkdownIt

    md = CliRunner().invoke(app, ["analyze", str(sample), "--format", "markdown"]).stdout
    page = MarkdownIt("commonmark").enable("table").render(md)
    count = {tag: len(re.findall(rf"<{tag}[ >]", page)) for tag in ("h1", "h2", "table", "th", "code", "ol")}
    assert count["h1"] == 1 and count["h2"] >= 2 and count["ol"] >= 1 and count["code"] >= 3, count
    assert count["table"] >= 1 and count["th"] >= 3 * count["table"], count
    # no table row broke out of its table: every pipe row of the source is a row of a rendered table
    rows = sum(1 for line in md.splitlines() if line.startswith("| ") and not line.startswith("|---"))
    assert page.count("<tr>") == rows
    assert "<html" not in md and "<script" not in md
