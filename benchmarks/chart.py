"""The report's picture: one PNG with the headline figures of a run."""

from __future__ import annotations

import statistics
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display here, and none needed for a file; before pyplot loads

import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.ticker import FuncFormatter

from .dashboard import TARGET_S, DashboardResult
from .sharing import FLOOR, JSON_API, JSON_API_MAX_ROWS, OURS, SharingResult

SIZE_COLOURS = ["#9ecae1", "#4292c6", "#08306b"]  # light to dark: more rows
PHASE_COLOURS = ["#fdd0a2", "#fd8d3c", "#d94801", "#7f2704"]
PHASES = (
    "until the page is served",
    "page + its scripts load",
    "widget scripts, until the kernel connects",
    "widgets drawn: first table",
)


def _paths(ax: Axes, sharing: SharingResult) -> None:
    names = [name for name in sharing.times if name != FLOOR]
    floor = sharing.times[FLOOR]
    height = 0.8 / len(sharing.sizes)
    for i, size in enumerate(sharing.sizes):
        ys, ratios = [], []
        for row, name in enumerate(names):
            if size in sharing.times[name]:
                ys.append(row + (i - (len(sharing.sizes) - 1) / 2) * height)
                ratios.append(sharing.times[name][size] / floor[size])
        bars = ax.barh(
            ys,
            ratios,
            height=height * 0.92,
            color=SIZE_COLOURS[i % len(SIZE_COLOURS)],
            label=f"{size:,} rows ({floor[size] * 1000:.1f} ms locally)",
        )
        ax.bar_label(bars, [f"{r:.1f}×" for r in ratios], padding=3, fontsize=8)
    if JSON_API in names and max(sharing.sizes) > JSON_API_MAX_ROWS:
        ax.text(
            1.05,
            names.index(JSON_API) + height,
            f"(answers stop at {JSON_API_MAX_ROWS:,} rows: no larger sizes)",
            fontsize=8,
            color="#555",
            style="italic",
            va="center",
        )
    ax.set_yticks(range(len(names)))
    ax.set_yticklabels([f"{name}  (default)" if name == OURS else name for name in names])
    ax.invert_yaxis()
    ax.set_xscale("log")
    worst = max(t / floor[n] for by_n in sharing.times.values() for n, t in by_n.items())
    ax.set_xlim(0.5, worst * 3)  # room for the labels at the ends of the bars
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}×"))
    ax.axvline(1, color="#444", linewidth=1, linestyle="--", label="local Arrow→pandas = 1×")
    ax.set_xlabel(
        "time to a pandas DataFrame, × local DuckDB Arrow→pandas at the same size (log scale)"
    )
    ax.set_title("Query answers, every path next to the local floor (lower is better)", loc="left")
    ax.legend(loc="lower right", fontsize=9, title="result size", title_fontsize=9)
    ax.grid(axis="x", which="major", alpha=0.3)


def _round_trips(ax: Axes, sharing: SharingResult) -> None:
    labels = list(sharing.round_trips)
    p50 = [sharing.round_trips[label][0] * 1000 for label in labels]
    p99 = [sharing.round_trips[label][1] * 1000 for label in labels]
    ax.barh(labels, p50, color="#6a51a3", height=0.6, label="p50")
    ax.scatter(p99, labels, marker="|", s=300, color="#3f007d", zorder=3, label="p99")
    for row, (low, high) in enumerate(zip(p50, p99, strict=True)):
        # Past both marks, so a p99 close to its p50 cannot cover the figures.
        ax.text(
            max(low, high) + max(p99) * 0.03,
            row,
            f"{low:.2f} / {high:.2f} ms",
            va="center",
            fontsize=8,
        )
    ax.invert_yaxis()
    ax.set_xlim(0, max(p99) * 1.7)
    ax.set_xlabel("milliseconds (p50 / p99 of 200 in a row)")
    ax.set_title("SELECT 42 round trip", loc="left")
    ax.legend(loc="upper right", fontsize=8)
    ax.grid(axis="x", alpha=0.25)


def _dashboard(ax: Axes, dashboard: DashboardResult) -> None:
    kinds = [kind for kind, samples in dashboard.opens.items() if samples]
    for row, kind in enumerate(kinds):
        samples = dashboard.opens[kind]
        done = [
            statistics.median(getattr(o, field) for o in samples)
            for field in ("served", "loaded", "connected", "total")
        ]
        left = 0.0
        for phase, end, colour in zip(PHASES, done, PHASE_COLOURS, strict=True):
            width = max(end - left, 0.0)
            ax.barh(
                row, width, left=left, color=colour, height=0.6, label=phase if row == 0 else None
            )
            left = max(left, end)
        totals = [o.total for o in samples]
        ax.errorbar(
            statistics.median(totals),
            row,
            xerr=[
                [statistics.median(totals) - min(totals)],
                [max(totals) - statistics.median(totals)],
            ],
            color="#222",
            capsize=4,
            linewidth=1,
        )
        first = statistics.median(o.first_row for o in samples)
        ax.plot(
            first, row, marker="D", color="#ffffff", markeredgecolor="#222", markersize=7,
            linestyle="none", label="first row (the page's preview)" if row == 0 else None,
        )  # fmt: skip
        ax.text(
            max(totals) + 0.15,
            row,
            f"row {first:.1f} s · live {statistics.median(totals):.1f} s (n={len(samples)})",
            va="center",
            fontsize=8,
        )
    ax.axvline(TARGET_S, color="#b42318", linewidth=1, linestyle="--")
    ax.text(TARGET_S, len(kinds) - 0.45, f" target {TARGET_S:g} s", color="#b42318", fontsize=8)
    ax.set_yticks(range(len(kinds)))
    ax.set_yticklabels(kinds)
    ax.set_ylim(len(kinds) - 0.3, -0.6)  # top down, with room for the target's label
    ax.set_xlim(0, max(TARGET_S, *(o.total for s in dashboard.opens.values() for o in s)) * 1.3)
    ax.set_xlabel("seconds from opening the link (medians; whisker: min–max)")
    ax.set_title(f"Dashboard: time to first table, {dashboard.rows:,}-row store", loc="left")
    ax.legend(loc="upper center", bbox_to_anchor=(0.4, -0.16), fontsize=8, ncols=2)
    ax.grid(axis="x", alpha=0.25)


def draw(sharing: SharingResult, dashboard: DashboardResult, heading: str, out: Path) -> None:
    fig = plt.figure(figsize=(13, 10), layout="constrained")
    grid = fig.add_gridspec(2, 2, height_ratios=[1.5, 1], width_ratios=[1, 1.5])
    _paths(fig.add_subplot(grid[0, :]), sharing)
    _round_trips(fig.add_subplot(grid[1, 0]), sharing)
    if any(dashboard.opens.values()):
        _dashboard(fig.add_subplot(grid[1, 1]), dashboard)
    fig.suptitle(heading, fontsize=11, x=0.01, ha="left")
    fig.savefig(out, dpi=110)
    plt.close(fig)
