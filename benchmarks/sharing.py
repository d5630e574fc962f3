"""Remote queries through the relay next to the yardsticks, all on loopback, one run.

Paths, for a 10-column table (ints, doubles, strings, timestamps, a decimal, NULLs):

* local DuckDB → Arrow → pandas (the floor) and local ``duckdb .df()``;
* Arrow Flight ``do_get`` from a server process (the best-in-class transport);
* a naive JSON ``POST /query`` proxy process (what simpler tools ship);
* ours: client → relay → owner tunnel → sandboxed worker, end-to-end encrypted, and the
  same through the plain Arrow path without E2E.

Plus ``SELECT 42`` round trips and the relay's memory while it forwards a ~1 GiB result.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import duckdb
import httpx
import pandas as pd
import pyarrow as pa
import pyarrow.flight as flight

from p2p2p.core.client import RemoteStore, parse_link
from p2p2p.core.dataframe import to_pandas
from p2p2p.core.executor import Executor

from .executor import median_time

QUERY = "SELECT * FROM wide LIMIT {n}"

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


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        args, stdout=subprocess.PIPE, text=True, env={**os.environ, **(env or {})}
    )
    return proc


def rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def run(rounds: int, quick: bool) -> str:
    sizes = [1_000, 10_000] if quick else [1_000, 100_000, 1_000_000]
    json_sizes = (
        sizes if quick else [1_000, 100_000]
    )  # 1M via JSON takes minutes: measured once below
    procs: list[subprocess.Popen[str]] = []
    lines: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "wide.duckdb"
        build(path, max(sizes))
        big_path = Path(tmp) / "big.duckdb"
        big = duckdb.connect(str(big_path))
        big.execute("CREATE TABLE t AS SELECT i, repeat('x', 1000) AS s FROM range(1000000) t(i)")
        big.close()
        try:
            flight_port, json_port, relay_port = free_port(), free_port(), free_port()
            procs.append(start([sys.executable, "-c", FLIGHT_SERVER, str(path), str(flight_port)]))
            procs.append(start([sys.executable, "-c", JSON_SERVER, str(path), str(json_port)]))
            relay = start([sys.executable, "-m", "p2p2p", "relay", "--port", str(relay_port)])
            procs.append(relay)
            for proc in procs:
                assert proc.stdout is not None
                proc.stdout.readline()
            relay_url = f"http://127.0.0.1:{relay_port}"
            home = {"P2P2P_HOME": str(Path(tmp) / "home")}
            limits = ["--max-rows", "100000000", "--max-bytes", str(4 << 30), "--timeout", "300"]
            share = start(
                [
                    sys.executable,
                    "-m",
                    "p2p2p",
                    "share",
                    str(path),
                    "--relay",
                    relay_url,
                    "--json",
                    *limits,
                ],
                home,
            )
            big_share = start(
                [
                    sys.executable,
                    "-m",
                    "p2p2p",
                    "share",
                    str(big_path),
                    "--relay",
                    relay_url,
                    "--json",
                    *limits,
                ],
                home,
            )
            procs += [share, big_share]
            assert share.stdout is not None and big_share.stdout is not None
            link = parse_link(json.loads(share.stdout.readline())["link"])
            big_link = parse_link(json.loads(big_share.stdout.readline())["link"])

            con = duckdb.connect(str(path), read_only=True)
            flight_client = flight.FlightClient(f"grpc://127.0.0.1:{flight_port}")
            http = httpx.Client(timeout=None)
            remote = RemoteStore(link, compression=None)
            remote_lz4 = RemoteStore(link, compression="lz4")  # the default

            paths: dict[str, Callable[[int], object]] = {
                "local Arrow→pandas": lambda n: to_pandas(
                    con.sql(QUERY.format(n=n)).to_arrow_table()
                ),
                "local .df()": lambda n: con.sql(QUERY.format(n=n)).df(),
                "Flight do_get": lambda n: to_pandas(
                    flight_client.do_get(flight.Ticket(QUERY.format(n=n).encode())).read_all()
                ),
                "JSON proxy": lambda n: pd.DataFrame(
                    (
                        r := http.post(
                            f"http://127.0.0.1:{json_port}/", content=QUERY.format(n=n)
                        ).json()
                    )["rows"],
                    columns=r["columns"],
                ),
                "p2p2p via relay, plain Arrow": lambda n: to_pandas(
                    pa.ipc.open_stream(
                        http.get(
                            f"{link.share_url}/api/query",
                            params={"sql": QUERY.format(n=n), "format": "arrow", "t": link.token},
                        ).content
                    ).read_all()
                ),
                "p2p2p via relay, E2E": lambda n: remote.query(QUERY.format(n=n)),
                "p2p2p via relay, E2E + lz4": lambda n: remote_lz4.query(QUERY.format(n=n)),
            }
            results: dict[str, dict[int, float]] = {name: {} for name in paths}
            for n in sizes:
                for name, fn in paths.items():
                    if name == "JSON proxy" and n not in json_sizes:
                        continue
                    fn(n)  # warm
                    results[name][n] = median_time(lambda fn=fn, n=n: fn(n), rounds)
            if not quick:
                results["JSON proxy"][max(sizes)] = median_time(
                    lambda: paths["JSON proxy"](max(sizes)), 1
                )

            floor = results["local Arrow→pandas"]
            lines.append("| path | " + " | ".join(f"{n:,} rows" for n in sizes) + " |")
            lines.append("|---|" + "---:|" * len(sizes))
            for name, by_n in results.items():
                cells = []
                for n in sizes:
                    t = by_n.get(n)
                    cells.append("—" if t is None else f"{t * 1000:.1f} ms ({t / floor[n]:.1f}×)")
                lines.append(f"| {name} | " + " | ".join(cells) + " |")
            n = max(sizes)
            ours = results["p2p2p via relay, E2E + lz4"][n]  # the default
            lines.append("")
            lines.append(
                f"At {n:,} rows, ours (E2E + lz4 via relay, the default) is {ours / floor[n]:.2f}× local Arrow→pandas, "
                f"{ours / results['Flight do_get'][n]:.2f}× Flight, "
                f"local .df() takes {results['local .df()'][n] / ours:.2f}× our time, "
                f"{results['JSON proxy'][n] / ours:.0f}× faster than the JSON proxy."
            )

            # Round trips.
            executor = Executor(path)
            executor.warm()

            def rtts(fn: Callable[[], object], count: int = 200) -> tuple[float, float]:
                samples = []
                for _ in range(count):
                    started = time.perf_counter()
                    fn()
                    samples.append(time.perf_counter() - started)
                samples.sort()
                return samples[len(samples) // 2], samples[int(len(samples) * 0.99) - 1]

            local_rtt = rtts(lambda: con.execute("SELECT 42").fetchall())
            executor_rtt = rtts(lambda: executor.query_arrow("SELECT 42"))
            relay_rtt = rtts(lambda: remote.query_arrow("SELECT 42"))
            executor.close()
            lines.append("")
            lines.append("| `SELECT 42` round trip | p50 | p99 |")
            lines.append("|---|---:|---:|")
            for label, (p50, p99) in (
                ("local DuckDB", local_rtt),
                ("local sandboxed executor", executor_rtt),
                ("via relay, E2E", relay_rtt),
            ):
                lines.append(f"| {label} | {p50 * 1000:.2f} ms | {p99 * 1000:.2f} ms |")

            # Relay memory while forwarding ~1 GiB.
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
            table = big_remote.query_arrow("SELECT * FROM t")
            elapsed = time.perf_counter() - started
            done.set()
            sampler.join()
            size = table.nbytes
            del table
            lines.append("")
            lines.append(
                f"Relay RSS while forwarding a {size / 2**30:.2f} GiB result ({elapsed:.1f} s, E2E): "
                f"{before / 2**20:.0f} MiB before, {peak / 2**20:.0f} MiB peak, growth "
                f"{(peak - before) / 2**20:.0f} MiB."
            )
            remote.close()
            big_remote.close()
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
    return "\n".join(lines)
