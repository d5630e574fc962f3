"""Remote queries through the relay next to the yardsticks, all on loopback, one run.

Paths, for a 10-column table (ints, doubles, strings, timestamps, a decimal, NULLs):

* local DuckDB → Arrow → pandas (the floor) and local ``duckdb .df()``;
* Arrow Flight ``do_get`` from a server process (the best-in-class transport);
* a naive JSON ``POST /query`` proxy process (what simpler tools ship);
* ours: client → relay → owner tunnel → sandboxed worker, end-to-end encrypted (with
  zstd, the default, with lz4 and without compression), the same through the plain Arrow path without E2E, and the share's own
  JSON API (capped at 10,000 rows, so small sizes only).

Plus ``SELECT 42`` round trips and the relay's memory while it forwards a ~1 GiB result.
"""

from __future__ import annotations

import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import duckdb
import httpx
import pandas as pd
import pyarrow as pa
import pyarrow.flight as flight

from p2p2p.client import RemoteStore, parse_link
from p2p2p.store.arrow import to_pandas
from p2p2p.store.executor import Executor

from .common import Processes, Section, Target, free_port, interleaved, median_time, rss

QUERY = "SELECT * FROM wide LIMIT {n}"
FLOOR = "local Arrow→pandas"
OURS = "p2p2p via relay, E2E + zstd"  # what a link does by default
LZ4 = "p2p2p via relay, E2E + lz4"
JSON_API = "p2p2p via relay, JSON API"
JSON_API_MAX_ROWS = 10_000  # the share's JSON answers stop there (owner/api/query.py)

FLIGHT_SERVER = """
import sys, duckdb, pyarrow.flight as flight
class Server(flight.FlightServerBase):
    def __init__(self, location, path):
        super().__init__(location)
        self.con = duckdb.connect(path, read_only=True)
    def do_get(self, context, ticket):
        reader = self.con.cursor().sql(ticket.ticket.decode()).to_arrow_reader(65536)
        return flight.RecordBatchStream(reader)
server = Server(f"grpc://127.0.0.1:{sys.argv[2]}", sys.argv[1])
print("ready", flush=True)
server.serve()
"""

JSON_SERVER = """
import json, sys, duckdb
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
con = duckdb.connect(sys.argv[1], read_only=True)
class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        sql = self.rfile.read(int(self.headers["Content-Length"])).decode()
        cur = con.cursor()
        rows = cur.execute(sql).fetchall()
        body = json.dumps({"columns": [d[0] for d in cur.description], "rows": rows}, default=str).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[2])), Handler)
print("ready", flush=True)
server.serve_forever()
"""


def build(path: Path, rows: int) -> None:
    con = duckdb.connect(str(path))
    con.execute(
        f"""
        CREATE TABLE wide AS
        SELECT i AS id, (i % 1013)::INTEGER AS a, i / 3.0 AS x, sqrt(i) AS y,
               'item-' || (i % 5000) AS label, ['north', 'south', 'east', 'west'][1 + i % 4] AS region,
               TIMESTAMP '2024-01-01' + to_seconds(i) AS ts,
               ((i % 100000) / 100.0)::DECIMAL(12, 2) AS amount,
               CASE WHEN i % 7 = 0 THEN NULL ELSE i % 100 END AS maybe,
               i % 2 = 0 AS flag
        FROM range({rows}) t(i)
        """
    )
    con.close()


@dataclass
class SharingResult(Section):
    sizes: list[int] = field(default_factory=list)
    times: dict[str, dict[int, float]] = field(default_factory=dict)  # path → rows → s
    round_trips: dict[str, tuple[float, float]] = field(default_factory=dict)  # p50, p99


def json_frame(answer: httpx.Response) -> pd.DataFrame:
    body = answer.raise_for_status().json()
    return pd.DataFrame(body["rows"], columns=body["columns"])


def round_trips(fn: Callable[[], object], count: int = 200) -> tuple[float, float]:
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    samples.sort()
    return samples[len(samples) // 2], samples[int(len(samples) * 0.99) - 1]


def run(rounds: int, quick: bool) -> SharingResult:
    sizes = [1_000, 10_000] if quick else [1_000, 100_000, 1_000_000]
    # The JSON proxy at 1M rows takes minutes per round: measured once, below.
    json_sizes = sizes if quick else [1_000, 100_000]
    lines: list[str] = []
    with tempfile.TemporaryDirectory(prefix="p2p2p-bench-") as tmp, Processes() as procs:
        path = Path(tmp) / "wide.duckdb"
        build(path, max(sizes))
        big_path = Path(tmp) / "big.duckdb"
        big = duckdb.connect(str(big_path))
        big.execute("CREATE TABLE t AS SELECT i, repeat('x', 1000) AS s FROM range(1000000) t(i)")
        big.close()

        flight_port, json_port = free_port(), free_port()
        procs.python("Flight server", FLIGHT_SERVER, str(path), str(flight_port))
        procs.python("JSON proxy", JSON_SERVER, str(path), str(json_port))
        relay, relay_url = procs.relay()
        home = Path(tmp) / "home"
        limits = ["--max-rows", "100000000", "--max-bytes", str(4 << 30), "--timeout", "300"]
        link = parse_link(procs.share(path, relay_url, home, *limits)[1])
        big_link = parse_link(procs.share(big_path, relay_url, home, *limits)[1])

        con = duckdb.connect(str(path), read_only=True)
        flight_client = flight.FlightClient(f"grpc://127.0.0.1:{flight_port}")
        http = httpx.Client(timeout=300)
        remote = RemoteStore(link, compression=None)
        remote_lz4 = RemoteStore(link, compression="lz4")
        remote_zstd = RemoteStore(link, compression="zstd")

        def ours_plain(n: int, fmt: str) -> httpx.Response:
            params = {"sql": QUERY.format(n=n), "format": fmt, "t": link.token}
            return http.get(f"{link.share_url}/api/query", params=params)

        paths: dict[str, Callable[[int], object]] = {
            FLOOR: lambda n: to_pandas(con.sql(QUERY.format(n=n)).to_arrow_table()),
            "local .df()": lambda n: con.sql(QUERY.format(n=n)).df(),
            "Flight do_get": lambda n: to_pandas(
                flight_client.do_get(flight.Ticket(QUERY.format(n=n).encode())).read_all()
            ),
            "JSON proxy": lambda n: json_frame(
                http.post(f"http://127.0.0.1:{json_port}/", content=QUERY.format(n=n))
            ),
            JSON_API: lambda n: json_frame(ours_plain(n, "json")),
            "p2p2p via relay, plain Arrow": lambda n: to_pandas(
                pa.ipc.open_stream(ours_plain(n, "arrow").content).read_all()
            ),
            "p2p2p via relay, E2E": lambda n: remote.query(QUERY.format(n=n)),
            LZ4: lambda n: remote_lz4.query(QUERY.format(n=n)),
            OURS: lambda n: remote_zstd.query(QUERY.format(n=n)),
        }
        measured_at = {
            "JSON proxy": json_sizes,
            JSON_API: [n for n in sizes if n <= JSON_API_MAX_ROWS],
        }
        times: dict[str, dict[int, float]] = {name: {} for name in paths}
        for n in sizes:
            contenders = {
                name: partial(fn, n)
                for name, fn in paths.items()
                if n in measured_at.get(name, sizes)
            }
            for warm in contenders.values():
                warm()
            for name, median in interleaved(contenders, rounds).items():
                times[name][n] = median
        n = max(sizes)
        if n not in json_sizes:
            times["JSON proxy"][n] = median_time(partial(paths["JSON proxy"], n), 1)

        floor = times[FLOOR]
        lines.append("| path | " + " | ".join(f"{n:,} rows" for n in sizes) + " |")
        lines.append("|---|" + "---:|" * len(sizes))
        for name, by_n in times.items():
            cells = []
            for size in sizes:
                t = by_n.get(size)
                cells.append("—" if t is None else f"{t * 1000:.1f} ms ({t / floor[size]:.1f}×)")
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        ours = times[OURS][n]
        lines.append("")
        lines.append(
            f"Times are medians of {rounds} rounds after one warm-up, the paths taking turns "
            f"within each round, each a query answered into "
            f"a pandas DataFrame; (×) is the time over local Arrow→pandas at the same size."
            + ("" if n in json_sizes else f" The JSON proxy at {n:,} rows is one round (seconds).")
            + f" The share's JSON API stops at {JSON_API_MAX_ROWS:,} rows by design, so it has "
            "no larger figures."
        )
        lines.append("")
        lines.append(
            f"At {n:,} rows, ours (E2E + zstd via relay, the default) is {ours / floor[n]:.2f}× "
            f"local Arrow→pandas, {ours / times['Flight do_get'][n]:.2f}× Flight, "
            f"local .df() takes {times['local .df()'][n] / ours:.2f}× our time, "
            f"{times['JSON proxy'][n] / ours:.0f}× faster than the JSON proxy; with lz4 it is "
            f"{times[LZ4][n] / floor[n]:.2f}×, E2E without compression "
            f"{times['p2p2p via relay, E2E'][n] / floor[n]:.2f}× and the plain Arrow "
            f"path (no E2E) {times['p2p2p via relay, plain Arrow'][n] / floor[n]:.2f}×."
        )

        executor = Executor(path)
        executor.warm()
        rtts = {
            "local DuckDB": round_trips(lambda: con.execute("SELECT 42").fetchall()),
            "local sandboxed executor": round_trips(lambda: executor.query_arrow("SELECT 42")),
            "via relay, E2E": round_trips(lambda: remote.query_arrow("SELECT 42")),
        }
        executor.close()
        lines.append("")
        lines.append("| `SELECT 42` round trip (200 in a row) | p50 | p99 |")
        lines.append("|---|---:|---:|")
        for label, (p50, p99) in rtts.items():
            lines.append(f"| {label} | {p50 * 1000:.2f} ms | {p99 * 1000:.2f} ms |")

        # The relay must forward a large answer without holding it: sample its memory.
        big_remote = RemoteStore(big_link)
        before = rss(relay.pid)
        peak = before
        done = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not done.is_set():
                peak = max(peak, rss(relay.pid))
                time.sleep(0.02)

        sampler = threading.Thread(target=sample)
        sampler.start()
        started = time.perf_counter()
        try:
            table = big_remote.query_arrow("SELECT * FROM t")
        finally:
            done.set()
            sampler.join()
        elapsed = time.perf_counter() - started
        size = table.nbytes
        del table
        growth = peak - before
        lines.append("")
        lines.append(
            f"Relay RSS while forwarding a {size / 2**30:.2f} GiB result ({elapsed:.1f} s, E2E): "
            f"{before / 2**20:.0f} MiB before, {peak / 2**20:.0f} MiB peak, growth "
            f"{growth / 2**20:.0f} MiB."
        )
        remote.close()
        remote_lz4.close()
        remote_zstd.close()
        big_remote.close()
        http.close()
        con.close()

    at = f"at {n:,} rows"
    relay_p50 = rtts["via relay, E2E"][0]
    targets = [
        Target(
            f"ours vs local Arrow→pandas, {at}",
            f"{ours / floor[n]:.2f}×",
            "≤ 3×",
            ours <= 3 * floor[n],
        ),
        Target(
            f"ours vs Arrow Flight, {at}",
            f"{ours / times['Flight do_get'][n]:.2f}×",
            "≤ 1.5×",
            ours <= 1.5 * times["Flight do_get"][n],
        ),
        Target(
            f"local `.df()` over ours, {at}",
            f"{times['local .df()'][n] / ours:.2f}×",
            "> 1× (ours faster)",
            times["local .df()"][n] > ours,
        ),
        Target(
            f"JSON proxy over ours, {at}",
            f"{times['JSON proxy'][n] / ours:.0f}×",
            "≥ 20×",
            times["JSON proxy"][n] >= 20 * ours,
        ),
        Target(
            "`SELECT 42` via relay, p50", f"{relay_p50 * 1000:.2f} ms", "≤ 3 ms", relay_p50 <= 0.003
        ),
        Target(
            "relay RSS growth forwarding ~1 GiB",
            f"{growth / 2**20:.0f} MiB",
            "≤ 64 MiB",
            growth <= 64 * 2**20,
        ),
    ]
    return SharingResult(
        "Remote queries through the relay vs the yardsticks",
        "\n".join(lines),
        targets,
        sizes=sizes,
        times=times,
        round_trips=rtts,
    )
