"""Run every benchmark side by side and write benchmarks/results.md.

    python -m benchmarks [--rounds N] [--quick]

The machine is noisy: each figure is the median of back-to-back rounds in one run, and
the ratios, not the absolute times, are what to compare.
"""

from __future__ import annotations

import argparse
import platform
from pathlib import Path

from . import executor, sharing


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="small sizes only, for a smoke run")
    args = parser.parse_args()
    sections = [
        ("The sandboxed executor vs DuckDB in-process", executor.run(args.rounds, args.quick)),
        (
            "Remote queries through the relay vs the yardsticks",
            sharing.run(args.rounds, args.quick),
        ),
    ]
    text = "\n\n".join(f"## {title}\n\n{body}" for title, body in sections)
    print(text)
    out = Path(__file__).with_name("results.md")
    out.write_text(
        "# Benchmark results\n\n"
        f"`python -m benchmarks` ({args.rounds} rounds, medians; {platform.machine()}, "
        f"{platform.python_version()}; loopback only).\n\n{text}\n"
    )
    print(f"\nwritten to {out}")


if __name__ == "__main__":
    main()
