"""Run every benchmark side by side and write the report: docs/benchmarks.md and its
chart docs/benchmarks.png.

    python -m benchmarks [--rounds N] [--quick] [--out DIR]

The machine is noisy: each figure is the median of back-to-back rounds in one run, and
the ratios, not the absolute times, are what to compare. ``--quick`` is a smoke run
(small sizes, few viewers, about a minute); it writes to a temporary folder unless
``--out`` says otherwise, so it never replaces the committed report.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

from . import (
    access,
    capacity,
    chart,
    dashboard,
    executor,
    federation,
    jupyter,
    notes,
    query_path,
    sharing,
    soak,
    viewers,
)
from .common import Section

DOCS = Path(__file__).resolve().parent.parent / "docs"


def machine() -> str:
    cpu = "unknown CPU"
    memory = 0
    try:
        with open("/proc/cpuinfo") as handle:
            cpu = next(
                (line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")),
                cpu,
            )
        with open("/proc/meminfo") as handle:
            memory = int(next(line for line in handle if line.startswith("MemTotal")).split()[1])
    except (OSError, StopIteration):
        pass
    return (
        f"{cpu}, {os.cpu_count()} cores, {memory / 2**20:.0f} GiB, Linux {platform.release()} "
        f"({platform.machine()})"
    )


def software() -> str:
    packages = ("duckdb", "pyarrow", "pandas", "voila", "playwright")
    return f"Python {platform.python_version()}, " + ", ".join(
        f"{name} {version(name)}" for name in packages
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds per figure")
    parser.add_argument("--quick", action="store_true", help="small sizes only, for a smoke run")
    parser.add_argument("--out", type=Path, help="folder for benchmarks.md/.png (default docs/)")
    args = parser.parse_args()
    out: Path = args.out or (
        Path(tempfile.gettempdir()) / "p2p2p-benchmarks-quick" if args.quick else DOCS
    )
    out.mkdir(parents=True, exist_ok=True)

    started = time.perf_counter()
    load_before = os.getloadavg()[0]
    sections: list[Section] = []
    timing: list[str] = []
    for name, run in (
        ("executor", executor.run),
        ("sharing", sharing.run),
        ("query path", query_path.run),
        ("dashboard", dashboard.run),
        ("viewers", viewers.run),
        ("notes", notes.run),
        ("access", access.run),
        ("federation", federation.run),
        ("jupyter", jupyter.run),
        ("soak", soak.run),
        ("capacity", capacity.run),
    ):
        print(f"[{name}] running…", flush=True)
        section_started = time.perf_counter()
        sections.append(run(args.rounds, args.quick))
        timing.append(f"{name} {time.perf_counter() - section_started:.0f} s")
        print(f"[{name}] done in {timing[-1]}", flush=True)
    load_after = os.getloadavg()[0]
    total = time.perf_counter() - started

    shared = next(s for s in sections if isinstance(s, sharing.SharingResult))
    opened = next(s for s in sections if isinstance(s, dashboard.DashboardResult))
    today = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    kind = "quick smoke run, not comparable" if args.quick else f"medians of {args.rounds} rounds"
    chart.draw(
        shared,
        opened,
        f"p2p2p benchmarks · {today} · {os.cpu_count()} cores · {kind} · loopback",
        out / "benchmarks.png",
    )

    targets = [target for section in sections for target in section.targets]
    report = [
        "# Benchmarks",
        "",
        "What the sandbox, the relay and the dashboard cost, measured side by side in one run "
        "on loopback (`python -m benchmarks`, or `make bench`, rewrites this page and its "
        "chart).",
        "",
        f"* **run**: {today}, {kind}; took {total / 60:.1f} min ({', '.join(timing)})",
        f"* **machine**: {machine()}; 1-minute load average {load_before:.2f} before the run, "
        f"{load_after:.2f} after (a shared VM: other work may run beside it, so compare the "
        "ratios, which are taken within one run)",
        f"* **software**: {software()}",
        "",
        "![Benchmark chart: time per query path as a multiple of local DuckDB, SELECT 42 round "
        "trips, and dashboard time to first table](benchmarks.png)",
        "",
        "## Targets",
        "",
        "The goals set in the issues (3: relay and remote queries; 5: dashboards, whose "
        '"a viewer sees content within a few seconds" is read here as ≤ 5 s; 13: a notes '
        "flood; 14: removing a viewer; 15: fan-out; 16: faults under load; 18: the query path at the floor; 19: a dashboard's "
        "first row), against this run.",
        "",
        "| what | this run | target | |",
        "|---|---:|---:|---|",
        *(target.row() for target in targets),
        "",
        *(f"## {section.title}\n\n{section.markdown}\n" for section in sections),
    ]
    text = "\n".join(report)
    print(text)
    (out / "benchmarks.md").write_text(text)
    print(f"\nwritten to {out / 'benchmarks.md'} and {out / 'benchmarks.png'} in {total:.0f} s")


if __name__ == "__main__":
    main()
