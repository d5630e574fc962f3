"""Many stores as one: one question to three shares at once, against asking each in turn.

Three ``p2p2p share`` processes (three owners, as three sites would be) on one relay,
each serving its own copy of the hospital store. Measured in turns within one run: each
store alone (the slowest of the three is what a coordinator waits for at best), the three
one after another, and the fan-out (``StoreGroup``), for a small aggregate (latency-bound)
and a heavier one (the owners' CPU-bound work). On one machine the three owners share its
cores, which three sites would not: the heavier query shows that limit.
"""

from __future__ import annotations

import os
import resource
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import duckdb

from p2p2p.client import parse_link
from p2p2p.client.federation import StoreGroup
from p2p2p.client.remote import RemoteStore
from p2p2p.samples.hospital import build_hospital_store

from .common import Processes, Section, Target, descendants, interleaved, p2p2p, rss

SITES = ("brig", "sion", "visp")
TARGET_RATIO = 1.3
SMALL = "SELECT urgency, count(*) AS cases FROM cases GROUP BY 1"
HEAVY = (
    "SELECT m.category, sum(cm.cost) AS cost, count(DISTINCT cm.case_id) AS cases "
    "FROM case_materials cm JOIN materials m USING (material_id) GROUP BY 1"
)


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU of these processes so far (from /proc)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue  # a worker that exited
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def cpu_per_call(fn: Callable[[], object], pids: list[int], calls: int) -> tuple[float, float]:
    """(wall, CPU of every process involved, this one included) per call, in seconds."""
    everyone = [d for p in pids for d in descendants(p)]
    mine = resource.getrusage(resource.RUSAGE_SELF)
    before = cpu_seconds(everyone) + mine.ru_utime + mine.ru_stime
    started = time.perf_counter()
    for _ in range(calls):
        fn()
    wall = time.perf_counter() - started
    mine = resource.getrusage(resource.RUSAGE_SELF)
    after = cpu_seconds(everyone) + mine.ru_utime + mine.ru_stime
    return wall / calls, (after - before) / calls


def pull_once(link: str, into: Path, home: Path) -> tuple[float, int]:
    """``p2p2p pull`` as a process of its own: (seconds, its peak resident memory)."""
    started = time.perf_counter()
    process = subprocess.Popen(
        [*p2p2p("pull", link, "--into", str(into), "--cursor", "big.id")],
        env={**os.environ, "P2P2P_HOME": str(home)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    peak = 0
    while process.poll() is None:
        peak = max(peak, rss(process.pid))
        time.sleep(0.02)
    assert process.returncode == 0, f"the pull failed ({process.returncode})"
    return time.perf_counter() - started, peak


def pulls(quick: bool) -> list[str]:
    """Pull throughput, and the puller's memory at two sizes (flat if it streams)."""
    sizes = (100_000, 400_000) if quick else (1_000_000, 4_000_000)
    lines = [
        "",
        "### Pulls",
        "",
        "`p2p2p pull` of a table (id, timestamp, double, short text) by its id, as a "
        "process of its own, its resident memory sampled every 20 ms:",
        "",
        "| rows | time | rows/s | MiB/s (Arrow) | puller's peak RSS |",
        "|---:|---:|---:|---:|---:|",
    ]
    with tempfile.TemporaryDirectory(prefix="p2p2p-bench-pull-") as tmp, Processes() as procs:
        _relay, relay_url = procs.relay()
        peaks = []
        for rows in sizes:
            store = Path(tmp) / f"big{rows}.duckdb"
            con = duckdb.connect(str(store))
            con.execute(
                f"CREATE TABLE big AS SELECT i AS id, TIMESTAMP '2024-01-01' + INTERVAL (i) SECOND "
                f"AS ts, i * 0.5 AS v, 'row ' || (i % 1000) AS s FROM range({rows}) t(i)"
            )
            arrow_bytes = con.sql("SELECT * FROM big").to_arrow_table().nbytes
            con.close()
            home = Path(tmp) / f"owner{rows}"
            _, link = procs.share(
                store, relay_url, home, "--name", f"big{rows}", "--allow-pull", "big"
            )
            seconds, peak = pull_once(link, Path(tmp) / f"copy{rows}.duckdb", Path(tmp) / "puller")
            peaks.append(peak)
            lines.append(
                f"| {rows:,} | {seconds:.1f} s | {rows / seconds:,.0f} | "
                f"{arrow_bytes / seconds / 2**20:.0f} | {peak / 2**20:.0f} MiB |"
            )
    lines += [
        "",
        f"{sizes[1] // sizes[0]}× the rows took {peaks[1] / max(peaks[0], 1):.2f}× the puller's "
        "peak memory: one page (50,000 rows) is held at a time, and DuckDB writes each page "
        "to the file before the next one is asked for.",
    ]
    return lines


def run(rounds: int, quick: bool) -> Section:
    turns = 5 if quick else max(9, rounds * 2)
    scale = 0.05 if quick else 0.3
    with tempfile.TemporaryDirectory(prefix="p2p2p-bench-fanout-") as tmp, Processes() as procs:
        _relay, relay_url = procs.relay()
        links = {}
        for site in SITES:
            store = build_hospital_store(Path(tmp) / f"{site}.duckdb", scale=scale).path
            _, links[site] = procs.share(Path(store), relay_url, Path(tmp) / site, "--name", site)
        singles = {site: RemoteStore(parse_link(link)) for site, link in links.items()}
        group = StoreGroup(dict(singles), "sites")
        pids = [p.proc.pid for p in procs.started]
        floors: dict[str, float] = {}
        slowest_small = 0.0
        lines = [
            f"Three owners on one relay, each with a hospital store at scale {scale} "
            f"({int(160_000 * scale):,} cases), {turns} turns of each way, medians:",
            "",
            "| query | slowest single store | 3 one after another | fan-out to 3 | fan-out / "
            f"slowest | CPU of one fan-out, all processes → floor on {os.cpu_count()} cores |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        ratios = {}
        for label, sql in (("small aggregate", SMALL), ("heavy aggregate", HEAVY)):
            ways: dict[str, Callable[[], object]] = {
                f"alone {site}": (lambda s=s, q=sql: s.query_arrow(q))
                for site, s in singles.items()
            }
            ways["sequential"] = lambda q=sql: [s.query_arrow(q) for s in singles.values()]
            ways["fan-out"] = lambda q=sql: group.query_arrow(q)
            for fn in ways.values():
                fn()  # warm: connections, workers, DuckDB's caches
            p50 = interleaved(ways, turns)
            slowest = max(p50[f"alone {site}"] for site in SITES)
            if label == "small aggregate":
                slowest_small = slowest
            ratios[label] = p50["fan-out"] / slowest
            _wall, cpu = cpu_per_call(ways["fan-out"], pids, turns)
            floors[label] = cpu / (os.cpu_count() or 1)
            lines.append(
                f"| {label} | {slowest * 1000:.1f} ms | {p50['sequential'] * 1000:.1f} ms | "
                f"{p50['fan-out'] * 1000:.1f} ms | {ratios[label]:.2f}× | "
                f"{cpu * 1000:.1f} ms → {floors[label] * 1000:.1f} ms |"
            )
        group.close()
    lines += [
        "",
        "The fan-out asks every store from its own thread; each store's answer streams and "
        "is decrypted as it comes. Here three owners, the relay and the client share one "
        "machine's cores, which three sites would not: even one small query keeps about "
        "as many CPU-milliseconds busy across those processes as it takes in wall time, so "
        "three at once queue for the cores.",
        "",
        "The last column is the profile that says what this machine allows: the CPU every "
        "process spends on one fan-out (client, relay, three owners and their DuckDB "
        "workers, from /proc), divided by the cores. A fan-out cannot finish sooner than "
        f"that floor here; it took {ratios['small aggregate']:.2f}× the slowest single "
        f"store, against a floor of "
        f"{floors['small aggregate'] / max(slowest_small, 1e-9):.2f}× that store's time. "
        "Each query's own CPU (relay hop, E2E, tunnel, owner, worker) is issue 18's work.",
    ]
    lines += pulls(quick)
    small = ratios["small aggregate"]
    targets = [
        Target(
            "fan-out to 3 stores vs the slowest single store (small aggregate)",
            f"{small:.2f}×",
            f"≤ {TARGET_RATIO}×",
            small <= TARGET_RATIO,
        )
    ]
    return Section("Many stores as one: fan-out", "\n".join(lines), targets)
