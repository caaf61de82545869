"""Charts of the HTML report, drawn with matplotlib as inline SVG.

matplotlib renders on this machine with no browser script, no network and no font download: the
SVG is vector (sharp when printed or saved as PDF), its letters are drawn in the font matplotlib
ships (the same wherever the file is opened), and the page needs no
JavaScript at all, so nothing can fail to load when the report is opened years later from a
postmortem page. It is imported only when an HTML report is asked for.

Labels that come from inputs (source names, GPU names) are made printable, clipped and kept
out of matplotlib's math parser.
"""

from __future__ import annotations

import io
from datetime import datetime, timedelta
from types import MappingProxyType

from emblens.events.redact import printable

STATUS_COLOURS = MappingProxyType({"2xx": "#2e7d32", "3xx": "#757575", "4xx": "#ef6c00", "5xx": "#c62828", "1xx": "#90a4ae"})
MARK_COLOUR = "#6a1b9a"
MAX_BARS = 240      # wider windows are drawn in coarser buckets


def _label(text: str, limit: int = 48) -> str:
    text = printable(str(text))
    return (text[: limit - 1] + "…" if len(text) > limit else text).replace("$", r"\$")


def _svg(fig, salt: str) -> str:
    import matplotlib.pyplot as plt

    buf = io.StringIO()
    with plt.rc_context({"svg.hashsalt": salt}):     # ids unique per chart: several SVGs share one page
        fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None, "Creator": None})
    plt.close(fig)
    svg = buf.getvalue()
    return svg[svg.index("<svg"):]                     # drop the XML prolog and DOCTYPE: the SVG is inline


def _pyplot():
    """pyplot, set up for these charts (SVG backend, no math parsing, the shipped font)."""
    import matplotlib

    matplotlib.use("svg", force=True)
    import matplotlib.pyplot as plt

    plt.rcParams.update({
        # glyphs as paths, in the font matplotlib ships: the chart looks the same wherever it is opened
        "svg.fonttype": "path", "text.parse_math": False, "font.size": 9, "font.family": ["DejaVu Sans"],
        "axes.spines.top": False, "axes.spines.right": False, "axes.grid": True, "grid.alpha": 0.3,
    })
    return plt


def _figure(height: float = 2.8):
    return _pyplot().subplots(figsize=(9, height))


def _time_axis(ax) -> None:
    import matplotlib.dates as mdates

    locator = mdates.AutoDateLocator(maxticks=10)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))


def _marks(ax, marks: list[tuple[datetime, str]], lo: datetime, hi: datetime) -> None:
    """Vertical lines at the findings' first times (those inside the window)."""
    for i, (ts, label) in enumerate(marks[:6]):
        if lo - timedelta(minutes=1) <= ts <= hi + timedelta(minutes=1):
            ax.axvline(ts, color=MARK_COLOUR, linestyle="--", linewidth=1)
            ax.annotate(_label(label, 40), xy=(ts, 1), xycoords=("data", "axes fraction"), xytext=(3, -10 - 11 * i),
                        textcoords="offset points", color=MARK_COLOUR, fontsize=8)


def requests_chart(per_minute, marks: list[tuple[datetime, str]], salt: str = "requests") -> str | None:
    """Requests per minute (or per coarser bucket) by status class, stacked; None without timed traffic."""
    if per_minute is None or per_minute.height == 0:
        return None
    import polars as pl

    span = (per_minute["ts"].max() - per_minute["ts"].min()).total_seconds() / 60 + 1
    every = next((m for m in (1, 5, 15, 60, 360, 1440) if span / m <= MAX_BARS), 1440)
    data = (per_minute.group_by(pl.col("ts").dt.truncate(f"{every}m"), "class").agg(pl.col("requests").sum())
            .pivot(on="class", index="ts", values="requests").fill_null(0).sort("ts"))
    classes = sorted(c for c in data.columns if c != "ts")
    errors = [c for c in classes if c[0] in "45"]
    if errors == classes:
        errors = []      # nothing but errors: the first panel already shows them on their own scale
    plt = _pyplot()
    if errors:    # errors drawn again on their own scale: 3 of 2,000 would not show on the first
        fig, (ax, ax_err) = plt.subplots(2, 1, figsize=(9, 4.2), sharex=True, height_ratios=(3, 2))
    else:
        fig, ax = plt.subplots(figsize=(9, 2.8))
    x = data["ts"].to_list()
    width = timedelta(minutes=every) * 0.8
    unit = {1: "minute", 5: "5 minutes", 15: "15 minutes", 60: "hour", 360: "6 hours", 1440: "day"}[every]
    for axis, shown, label in ((ax, classes, f"requests per {unit}"), *(((ax_err, errors, "errors"),) if errors else ())):
        bottom = [0] * len(x)
        for cls in shown:
            values = data[cls].to_list()
            axis.bar(x, values, width=width, bottom=bottom, color=STATUS_COLOURS.get(cls, "#455a64"), label=cls, align="edge")
            bottom = [b + v for b, v in zip(bottom, values, strict=True)]
        axis.set_ylabel(label)
        axis.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False, title="status" if axis is ax else None)
        axis.yaxis.get_major_locator().set_params(integer=True)
        _marks(axis, marks if axis is ax else [(t, "") for t, _ in marks], x[0], x[-1] + timedelta(minutes=every))
    _time_axis(ax_err if errors else ax)
    return _svg(fig, salt)


def gpu_chart(series: list[dict], gpus: list[dict], marks: list[tuple[datetime, str]]) -> str | None:
    """GPU memory per GPU over time when nvidia-smi was looped (a line each, the total dashed),
    else the last snapshot: memory by process and free, one bar per GPU."""
    timed = [s for s in series if s["ts"] is not None and s["used_mib"] is not None]
    if len({s["ts"] for s in timed}) > 1:
        fig, ax = _figure()
        by_gpu: dict[object, list[dict]] = {}
        for s in timed:
            by_gpu.setdefault((s["source"], s["index"]), []).append(s)
        for (_source, index), points in list(by_gpu.items())[:16]:
            points.sort(key=lambda p: p["ts"])
            line, = ax.plot([p["ts"] for p in points], [p["used_mib"] / 1024 for p in points], marker=".",
                            label=_label(f"GPU {index if index is not None else '?'}"))
            total = next((p["total_mib"] for p in points if p["total_mib"]), None)
            if total:
                ax.axhline(total / 1024, color=line.get_color(), linestyle=":", linewidth=1)
        ax.set_ylabel("GiB used (dotted: total)")
        ax.set_ylim(bottom=0)
        ax.legend(loc="lower left", frameon=False, ncols=4)
        _time_axis(ax)
        _marks(ax, marks, min(s["ts"] for s in timed), max(s["ts"] for s in timed))
        return _svg(fig, "gpu-series")
    shown = [g for g in gpus if g["total_mib"]][:16]
    if not shown:
        return None
    fig, ax = _figure(0.6 + 0.55 * len(shown))
    names = [_label(f"GPU {g['index'] if g['index'] is not None else '?'} {g['name'] or ''}".strip(), 32) for g in shown]
    palette = ["#1565c0", "#6a1b9a", "#00838f", "#ad1457", "#5d4037"]
    labelled: set[str] = set()
    for row, g in enumerate(shown):
        left = 0.0
        for k, p in enumerate(g["processes"]):
            mib = p["used_mib"] or 0
            label = _label(f"pid {p['pid']} {p['name'] or ''}", 40)
            ax.barh(row, mib / 1024, left=left, color=palette[k % len(palette)], label=label if label not in labelled else None)
            labelled.add(label)
            left += mib / 1024
        used = (g["used_mib"] or 0) / 1024
        if used > left + 0.01:
            ax.barh(row, used - left, left=left, color="#90a4ae", label="other use" if "other" not in labelled else None)
            labelled.add("other")
            left = used
        free = g["total_mib"] / 1024 - left
        ax.barh(row, max(free, 0), left=left, color="#e0e0e0", label="free" if "free" not in labelled else None)
        labelled.add("free")
        ax.annotate(f"{used:,.1f} / {g['total_mib'] / 1024:,.1f} GiB used", xy=(g["total_mib"] / 1024, row),
                    xytext=(4, 0), textcoords="offset points", va="center", fontsize=8)
    ax.set_yticks(range(len(shown)), names)
    ax.invert_yaxis()
    ax.set_xlabel("GiB (last nvidia-smi snapshot)")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.35 if len(shown) == 1 else -0.15), frameon=False, ncols=3)
    return _svg(fig, "gpu-snapshot")


def kv_chart(kv, marks: list[tuple[datetime, str]]) -> str | None:
    """KV-cache usage (the highest each minute), one line per server log; None without metrics lines."""
    if kv is None or kv.filter(kv["ts"].is_not_null()).height < 2:
        return None
    fig, ax = _figure(2.4)
    timed = kv.filter(kv["ts"].is_not_null())
    for source in timed["source"].unique(maintain_order=True).to_list()[:8]:
        part = timed.filter(timed["source"] == source)
        ax.plot(part["ts"].to_list(), part["kv"].to_list(), marker=".", label=_label(source.rsplit("/", 1)[-1].rsplit(":", 1)[-1]))
    ax.set_ylabel("KV cache used, %")
    ax.set_ylim(0, 100)
    ax.legend(loc="upper left", frameon=False)
    _time_axis(ax)
    _marks(ax, marks, timed["ts"].min(), timed["ts"].max())
    return _svg(fig, "kv")
