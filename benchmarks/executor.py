"""What the sandboxed executor costs compared with DuckDB in the same process."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import duckdb

from p2p2p.store.arrow import to_pandas
from p2p2p.store.executor import Executor
from p2p2p.store.limits import Limits

from .common import Section, interleaved, median_time

QUERY = "SELECT * FROM wide LIMIT {n}"


def build(path: Path, rows: int) -> None:
    con = duckdb.connect(str(path))
    con.execute(
        f"""
        CREATE TABLE wide AS
        SELECT i AS id, i % 97 AS a, i % 1013 AS b, (i * 7) % 100003 AS c,
               i / 3.0 AS x, sqrt(i) AS y,
               'item-' || (i % 5000) AS label, ['north', 'south', 'east', 'west'][1 + i % 4] AS region,
               TIMESTAMP '2024-01-01' + to_seconds(i) AS ts,
               ((i % 100000) / 100.0)::DECIMAL(12, 2) AS amount
        FROM range({rows}) t(i)
        """
    )
    con.close()


PEAK_SCRIPT = """
import sys
from p2p2p.store.executor import Executor
from p2p2p.store.limits import Limits
path, n, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
def hwm():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
ex = Executor(path, Limits(workers=1, max_rows=10_000_000, max_bytes=1 << 31))
ex.warm()
base = hwm()
total = 0
with ex.query(f"SELECT * FROM wide LIMIT {n}") as stream:
    if mode == "stream":
        for batch in stream:
            total += batch.nbytes
    else:
        total = stream.read_all().nbytes
print(hwm() - base, total)
ex.close()
"""


def peak_memory(path: Path, n: int, mode: str) -> tuple[int, int]:
    """Peak resident memory a fresh process gains while taking a result."""
    out = subprocess.run(
        [sys.executable, "-c", PEAK_SCRIPT, str(path), str(n), mode],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    ).stdout.split()
    return int(out[0]), int(out[1])


def run(rounds: int, quick: bool) -> Section:
    sizes = [1_000, 10_000] if quick else [1_000, 100_000, 1_000_000]
    lines = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.duckdb"
        build(path, max(sizes))
        direct = duckdb.connect(str(path), read_only=True)
        executor = Executor(path, Limits(workers=1, max_rows=10_000_000, max_bytes=1 << 31))
        started = time.perf_counter()
        executor.warm()
        spawn = time.perf_counter() - started

        def local(n: int) -> None:
            to_pandas(direct.sql(QUERY.format(n=n)).to_arrow_table())

        def sandboxed(n: int) -> None:
            to_pandas(executor.query_arrow(QUERY.format(n=n))[0])

        rows = []
        for n in sizes:
            local(n)
            sandboxed(n)  # warm both paths once
            timed = interleaved(
                {"local": partial(local, n), "sandboxed": partial(sandboxed, n)}, rounds
            )
            rows.append((n, timed["local"], timed["sandboxed"]))

        n = max(sizes)
        streamed_peak, total = peak_memory(path, n, "stream")
        whole_peak, _ = peak_memory(path, n, "whole")
        rtt = median_time(lambda: executor.query_arrow("SELECT 1"), max(20, rounds * 4))
        executor.close()

    lines.append("| rows | in-process DuckDB → pandas | sandboxed executor → pandas | ratio |")
    lines.append("|---:|---:|---:|---:|")
    for n, t_local, t_sand in rows:
        lines.append(
            f"| {n:,} | {t_local * 1000:.1f} ms | {t_sand * 1000:.1f} ms | {t_sand / t_local:.2f}× |"
        )
    lines.append("")
    lines.append(f"* round trip of `SELECT 1` through the executor: {rtt * 1000:.2f} ms (median)")
    lines.append(
        f"* starting a worker (spawn, imports, open + lockdown + sandbox): {spawn * 1000:.0f} ms"
    )
    lines.append(
        f"* peak memory of a fresh caller process handling {n:,} rows ({total / 2**20:.0f} MiB of "
        f"Arrow data): streamed batch by batch {streamed_peak / 2**20:.0f} MiB, read whole "
        f"{whole_peak / 2**20:.0f} MiB (the worker sends at most 2 batches ahead)"
    )
    return Section("The sandboxed executor vs DuckDB in-process", "\n".join(lines))
