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
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from p2p2p.client import parse_link
from p2p2p.client.federation import StoreGroup
from p2p2p.client.remote import RemoteStore
from p2p2p.samples.hospital import build_hospital_store

from .common import Processes, Section, Target, descendants, interleaved

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
