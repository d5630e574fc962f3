"""The query path stage by stage (issue 18): where a remote query's time and cycles go.

* A ladder of ``SELECT 42`` round trips, each rung adding one stage (DuckDB, the sandboxed
  worker, E2E crypto, HTTP through the relay, the tunnel to the owner, the owner's query
  machinery), so the cost of each stage is a difference measured in one run.
* Arrow table to Arrow table at 1,000,000 rows × 10 columns: in-process DuckDB, Arrow
  Flight ``do_get`` and ours with each compression, no pandas on either side.
* Many clients at once: 100 threads in 4 processes asking ``SELECT 42`` for a while.
* 10,000,000 rows streamed batch by batch (``RemoteStore.query_batches``): peak memory and
  CPU seconds per GiB of every process on the path (client, relay, owner, worker).
* Compression on loopback and on a 100 Mbit/s link (a pacing proxy in front of the relay).
"""

from __future__ import annotations

import json
import os
import resource
import socket
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.flight as flight

from p2p2p.client import RemoteStore, parse_link
from p2p2p.client.transport import RelayHttp
from p2p2p.identity import Identity, box_public_key
from p2p2p.owner.api import Request, ShareApi
from p2p2p.owner.shares import ShareManager
from p2p2p.protocol import envelope
from p2p2p.store.executor import Executor

from .common import (
    LOOPBACK,
    Process,
    Processes,
    Section,
    Target,
    descendants,
    free_port,
    interleaved,
    rss,
)
from .sharing import FLIGHT_SERVER, QUERY, build

CODECS = (None, "lz4", "zstd")
LINK_MBIT = 100

# Paces bytes through at a link's rate, each direction on its own, shared by every
# connection (one link), as a 100 Mbit/s line between analyst and relay would.
PACER = """
import asyncio, sys, time
rate = float(sys.argv[3]) / 8
class Line:
    def __init__(self): self.free = time.monotonic()
    async def take(self, n):
        now = time.monotonic()
        self.free = max(self.free, now) + n / rate
        if self.free > now: await asyncio.sleep(self.free - now)
up, down = Line(), Line()
async def pipe(reader, writer, line):
    try:
        while data := await reader.read(65536):
            await line.take(len(data))
            writer.write(data)
            await writer.drain()
    except OSError:
        pass
    finally:
        writer.close()
async def handle(client_reader, client_writer):
    reader, writer = await asyncio.open_connection("127.0.0.1", int(sys.argv[2]))
    await asyncio.gather(pipe(client_reader, writer, up), pipe(reader, client_writer, down))
async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", int(sys.argv[1]))
    print("ready", flush=True)
    await server.serve_forever()
asyncio.run(main())
"""

# One of the concurrent-client processes: THREADS threads, each with its own store,
# asking SELECT 42 until the deadline; prints every latency (and every error) as JSON.
CLIENTS = """
import json, sys, threading, time
from p2p2p.client import RemoteStore, parse_link
link, threads, seconds = parse_link(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
stores = [RemoteStore(link) for _ in range(threads)]
for store in stores:
    store.query_arrow("SELECT 42")
print("ready", flush=True)
sys.stdin.readline()
deadline = time.monotonic() + seconds
times, errors = [], []
def ask(store):
    while time.monotonic() < deadline:
        started = time.perf_counter()
        try:
            store.query_arrow("SELECT 42")
            times.append(time.perf_counter() - started)
        except Exception as exc:
            errors.append(type(exc).__name__)
workers = [threading.Thread(target=ask, args=(s,)) for s in stores]
for w in workers: w.start()
for w in workers: w.join()
print(json.dumps({"times": times, "errors": errors}), flush=True)
"""

# The 10M-row reader: streams the answer and keeps no batch, reporting its own peak RSS.
STREAMER = """
import json, resource, sys, time
from p2p2p.client import RemoteStore, parse_link
store = RemoteStore(parse_link(sys.argv[1]))
print("ready", flush=True)
sys.stdin.readline()
usage = resource.getrusage(resource.RUSAGE_SELF)
started = time.perf_counter()
rows = nbytes = 0
with store.query_batches(sys.argv[2]) as batches:
    for batch in batches:
        rows += batch.num_rows
        nbytes += batch.nbytes
elapsed = time.perf_counter() - started
end = resource.getrusage(resource.RUSAGE_SELF)
cpu = end.ru_utime + end.ru_stime - usage.ru_utime - usage.ru_stime
# VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent across fork and exec.
with open("/proc/self/status") as status:
    peak = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmHWM:"))
print(json.dumps({"rows": rows, "bytes": nbytes, "seconds": elapsed, "peak": peak, "cpu": cpu}),
      flush=True)
"""


# The floor of our path's shape: the same four processes on the same kinds of
# connection (client -TCP-> relay -TCP-> owner -pipe-> worker, and back), each an asyncio
# loop on uvloop (the worker a blocking read), doing nothing but passing 200 bytes on.
# What a query costs above this is what the processes do, not that there are four.
BARE_CHAIN = """
import asyncio, os, subprocess, sys
import uvloop
WORKER = "import os, sys\\nwhile data := os.read(int(sys.argv[1]), 65536): os.write(int(sys.argv[2]), data)"
async def relay(owner_port, client_port):
    owner = asyncio.get_running_loop().create_future()
    to_client = {}
    async def from_owner(reader, writer):
        owner.set_result(writer)
        while data := await reader.read(65536):
            to_client["writer"].write(data)
    async def from_client(reader, writer):
        to_client["writer"] = writer
        to_owner = await owner
        while data := await reader.read(65536):
            to_owner.write(data)
    await asyncio.start_server(from_owner, "127.0.0.1", owner_port)
    await asyncio.start_server(from_client, "127.0.0.1", client_port)
    print("listening", flush=True)
    await asyncio.Event().wait()
async def owner(owner_port):
    req_r, req_w = os.pipe()
    resp_r, resp_w = os.pipe()
    worker = subprocess.Popen([sys.executable, "-c", WORKER, str(req_r), str(resp_w)], pass_fds=(req_r, resp_w))
    reader, writer = await asyncio.open_connection("127.0.0.1", owner_port)
    asyncio.get_running_loop().add_reader(resp_r, lambda: writer.write(os.read(resp_r, 65536)))
    print("connected", flush=True)
    while data := await reader.read(65536):
        os.write(req_w, data)
    worker.kill()
ports = [int(p) for p in sys.argv[2:]]
uvloop.run(relay(*ports) if sys.argv[1] == "relay" else owner(*ports))
"""


def bare_chain(procs: Processes) -> Callable[[], object]:
    """One round trip of 200 bytes through the bare chain above."""
    owner_port, client_port = free_port(), free_port()
    procs.python("bare relay", BARE_CHAIN, "relay", str(owner_port), str(client_port))
    procs.python("bare owner", BARE_CHAIN, "owner", str(owner_port))
    sock = socket.create_connection((LOOPBACK, client_port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    message = b"x" * 200

    def once() -> None:
        sock.sendall(message)
        got = 0
        while got < len(message):
            got += len(sock.recv(65536))

    return once


def cpu_seconds(pid: int) -> float:
    """User + system CPU of one process so far (0 once it has gone)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return ordered[len(ordered) // 2], ordered[max(0, int(len(ordered) * 0.99) - 1)]


def ladder(rungs: dict[str, Callable[[], object]], count: int) -> dict[str, tuple[float, float]]:
    """p50 and p99 of each rung, ``count`` round trips each, taken in turns of 20 so a
    burst of load elsewhere lands on every rung alike."""
    samples: dict[str, list[float]] = {name: [] for name in rungs}
    for _ in range(count // 20):
        for name, fn in rungs.items():
            for _ in range(20):
                started = time.perf_counter()
                fn()
                samples[name].append(time.perf_counter() - started)
    return {name: percentiles(times) for name, times in samples.items()}


def e2e_crypto(owner_public: bytes, owner_secret: bytes, share_id: str) -> None:
    """Both ends' crypto for one small request and its answer, in this process."""
    client = envelope.ClientSession(owner_public, share_id)
    body = client.request_prefix() + client.request.seal(b'{"op": "query"}' * 8, final=True)
    owner = envelope.OwnerSession(
        owner_public, owner_secret, share_id, body[: envelope.REQUEST_PREFIX_BYTES]
    )
    owner.request.feed(body[envelope.REQUEST_PREFIX_BYTES :])
    answer = owner.response.header + owner.response.seal(b"x" * 600, final=True)
    client.response_opener(answer[: envelope.HEADER_BYTES]).feed(answer[envelope.HEADER_BYTES :])


class OwnerInProcess:
    """The owner's API for one share, called in this process: E2E requests in, answers
    drained, with no relay, tunnel or socket, so a rung can price the owner's own work."""

    def __init__(self, store: Path, home: Path) -> None:
        import asyncio

        identity = Identity.generate()
        self.manager = ShareManager(identity, home)
        self.share, self.token = self.manager.add(
            str(store), name="bench", executor=Executor(store)
        )
        self.share.executor.warm()
        self.api = ShareApi(self.manager)
        self.box = box_public_key(identity.public_key)
        try:
            import uvloop  # as the owner runs

            self.loop = uvloop.new_event_loop()
        except ImportError:
            self.loop = asyncio.new_event_loop()

    def ask(self, message: dict[str, Any]) -> None:
        session = envelope.ClientSession(self.box, self.share.share_id)
        payload = json.dumps({**message, "token": self.token, "client": None}).encode()
        body = session.request_prefix() + session.request.seal(payload, final=True)
        request = Request(self.share.share_id, "POST", "/.p2p2p/e2e", "", {}, body)

        async def answered() -> None:
            response = await self.api.handle(request)
            async for _piece in response.body:
                pass

        self.loop.run_until_complete(answered())

    def close(self) -> None:
        self.share.executor.close()
        self.loop.close()


@dataclass
class QueryPathResult(Section):
    rungs: dict[str, tuple[float, float]] = field(default_factory=dict)
    arrow: dict[str, float] = field(default_factory=dict)


def via(link: str, relay_port: int, port: int) -> str:
    return link.replace(f"{LOOPBACK}:{relay_port}/", f"{LOOPBACK}:{port}/", 1)


def run(rounds: int, quick: bool) -> QueryPathResult:
    import nacl.bindings as sodium

    rows = 100_000 if quick else 1_000_000
    big_rows = 1_000_000 if quick else 10_000_000
    paced_rows = 50_000 if quick else 250_000
    clients, threads, seconds = (2, 10, 3.0) if quick else (4, 25, 10.0)
    lines: list[str] = []
    targets: list[Target] = []
    with tempfile.TemporaryDirectory(prefix="p2p2p-bench-") as tmp, Processes() as procs:
        path = Path(tmp) / "wide.duckdb"
        build(path, big_rows)
        flight_port = free_port()
        flight_server = procs.python("Flight server", FLIGHT_SERVER, str(path), str(flight_port))
        relay, relay_url = procs.relay("--max-connections-per-client", "10000")
        relay_port = int(relay_url.rsplit(":", 1)[1])
        home = Path(tmp) / "home"
        limits = ["--max-rows", "100000000", "--max-bytes", str(8 << 30), "--timeout", "600"]
        share, link_text = procs.share(path, relay_url, home, *limits)
        link = parse_link(link_text)

        # -- the ladder -------------------------------------------------------------
        con = duckdb.connect(str(path), read_only=True)
        executor = Executor(path)
        executor.warm()
        http = RelayHttp(60.0, 60.0)  # the client's own HTTP, as a query uses it
        remote = RemoteStore(link)
        owner_public, owner_secret = sodium.crypto_kx_keypair()  # the cost, not the owner
        remote.query_arrow("SELECT 42")
        owner_here = OwnerInProcess(path, Path(tmp) / "owner-here")
        select_42 = {"op": "query", "sql": "SELECT 42", "params": "", "style": None}
        rungs = {
            "DuckDB in-process": lambda: con.execute("SELECT 42").fetchall(),
            "sandboxed worker (pipe, lockdown, Arrow IPC)": lambda: executor.query_arrow(
                "SELECT 42"
            ),
            "E2E crypto, both ends, in-process": partial(
                e2e_crypto, owner_public, owner_secret, link.share_id
            ),
            "HTTP to the relay and back (`/healthz`)": lambda: http.get(f"{relay_url}/healthz"),
            "to the owner and back, no query (`info`, E2E)": remote.info,
            "the owner's API in-process, `SELECT 42` (E2E, worker, audit; no sockets)": partial(
                owner_here.ask, select_42
            ),
            "`SELECT 42` via relay, E2E (all of it)": lambda: remote.query_arrow("SELECT 42"),
            "the same four processes passing 200 bytes, nothing else (the floor)": bare_chain(
                procs
            ),
        }
        count = 100 if quick else 400
        measured = ladder(rungs, count)
        lines.append(f"| `SELECT 42`, stage by stage ({count} round trips each) | p50 | p99 |")
        lines.append("|---|---:|---:|")
        for name, (p50, p99) in measured.items():
            lines.append(f"| {name} | {p50 * 1000:.2f} ms | {p99 * 1000:.2f} ms |")
        names = list(measured)
        p50 = {name: measured[name][0] for name in names}
        http_s, info_s, here_s, full_s = (p50[name] for name in names[3:7])
        crypto_s, worker_s = p50[names[2]], p50[names[1]]
        lines.append("")
        lines.append(
            "What each stage adds, from the p50s above: HTTP through the relay "
            f"{http_s * 1000:.2f} ms; the tunnel to the owner and the owner's request "
            f"handling (framing, JSON, audit) {(info_s - http_s - crypto_s) * 1000:.2f} ms; "
            f"E2E crypto {crypto_s * 1000:.2f} ms; running the query on the owner (worker "
            f"pipe, Arrow IPC, audit) {(full_s - info_s) * 1000:.2f} ms, of which the "
            f"sandboxed worker itself is {worker_s * 1000:.2f} ms. In one process the "
            f"owner's whole answer to a `SELECT 42` (opening the request, the worker, "
            f"sealing, the audit line) takes {here_s * 1000:.2f} ms, "
            f"{(here_s - worker_s) * 1000:.2f} ms more than the worker alone. The rest of "
            f"the {full_s * 1000:.2f} ms is the client's and the relay's HTTP and the "
            "tunnel's framing at both of its ends, each process's own work (the CPU table "
            "below), not the handing on between them (the last rung)."
        )
        spent, mean_s = cpu_per_query(
            lambda: remote.query_arrow("SELECT 42"),
            count,
            {"relay": lambda: [relay.pid], "owner": lambda: [share.pid],
             "worker": lambda: [p for p in descendants(share.pid) if p != share.pid]},
        )  # fmt: skip
        bare_s = p50[names[7]]
        lines.append("")
        lines.append(
            f"| CPU per `SELECT 42` ({count} queries, from each process's own count) "
            "| CPU per query | of the mean round trip |"
        )
        lines.append("|---|---:|---:|")
        for name, cpu in spent.items():
            lines.append(f"| {name} | {cpu * 1000:.2f} ms | {cpu / mean_s:.0%} |")
        total_cpu = sum(spent.values())
        lines.append(f"| all four | {total_cpu * 1000:.2f} ms | {total_cpu / mean_s:.0%} |")
        lines.append("")
        lines.append(
            f"The four processes spend {total_cpu * 1000:.2f} ms of CPU per query against a "
            f"mean round trip of {mean_s * 1000:.2f} ms: a small query's latency is the work "
            "of four processes, most of it one after another (each waits for the one before; some, "
            "like the owner's audit line and the worker's tidying up, overlaps the next "
            "query). The same four processes on the same kinds of connection, passing 200 "
            f"bytes along and doing nothing else, take {bare_s * 1000:.2f} ms (the ladder's "
            "last rung): handing a message from process to process is a small part of the "
            "path; what each process does with it is the rest, and what that is is in "
            "[the profile](performance.md)."
        )
        full_p99 = measured[names[6]][1]
        targets.append(
            Target(
                "`SELECT 42` via relay, p99",
                f"{full_p99 * 1000:.2f} ms",
                "≤ 6 ms",
                full_p99 <= 0.006,
            )
        )

        # -- Arrow to Arrow -----------------------------------------------------------
        sql = QUERY.format(n=rows)
        flight_client = flight.FlightClient(f"grpc://{LOOPBACK}:{flight_port}")
        stores = {codec: RemoteStore(link, compression=codec) for codec in CODECS}
        paths: dict[str, Callable[[], object]] = {
            "in-process DuckDB → Arrow": lambda: con.sql(sql).to_arrow_table(),
            "Arrow Flight `do_get`": lambda: flight_client.do_get(
                flight.Ticket(sql.encode())
            ).read_all(),
            **{
                f"ours via relay, E2E, {codec or 'no compression'}": partial(store.query_arrow, sql)
                for codec, store in stores.items()
            },
        }
        for warm in paths.values():
            warm()
        arrow = interleaved(paths, rounds)
        floor, flight_s = arrow["in-process DuckDB → Arrow"], arrow["Arrow Flight `do_get`"]
        ours = arrow["ours via relay, E2E, zstd"]  # the default
        lines.append("")
        lines.append(
            f"| Arrow table to Arrow table, {rows:,} rows × 10 columns | median | × in-process "
            "| × Flight |"
        )
        lines.append("|---|---:|---:|---:|")
        for name, seconds_taken in arrow.items():
            lines.append(
                f"| {name} | {seconds_taken * 1000:.0f} ms | {seconds_taken / floor:.2f}× "
                f"| {seconds_taken / flight_s:.2f}× |"
            )
        at = f"Arrow→Arrow, {rows:,} rows"
        targets += [
            Target(f"ours vs Arrow Flight, {at}", f"{ours / flight_s:.2f}×", "≤ 1.3×",
                   ours <= 1.3 * flight_s),
            Target(f"ours vs in-process DuckDB, {at}", f"{ours / floor:.2f}×", "≤ 3×",
                   ours <= 3 * floor),
        ]  # fmt: skip

        # -- many clients at once -----------------------------------------------------------
        group = [
            procs.python(f"clients {i}", CLIENTS, link_text, str(threads), str(seconds), stdin=True)
            for i in range(clients)
        ]
        times, errors = many_clients(group)
        qps = len(times) / seconds
        c50, c99 = percentiles(times) if times else (0.0, 0.0)
        lines.append("")
        lines.append(
            f"{clients * threads} clients at once ({clients} processes × {threads} threads, "
            f"each its own connection) asking `SELECT 42` for {seconds:.0f} s: "
            f"{qps:,.0f} queries/s, p50 {c50 * 1000:.1f} ms, p99 {c99 * 1000:.1f} ms, "
            f"{len(errors)} failed"
            + (f" ({', '.join(sorted(set(errors)))})" if errors else "")
            + ". One owner process answers them all: its worker pool and event loop are the "
            "ceiling, not the relay."
        )
        targets.append(
            Target(
                f"{clients * threads} concurrent `SELECT 42` clients, failed",
                str(len(errors)),
                "0",
                not errors,
            )
        )

        # -- 10M rows, streamed -------------------------------------------------------------
        streamer = procs.python(
            "10M reader", STREAMER, link_text, QUERY.format(n=big_rows), stdin=True
        )
        big = streamed(streamer, relay.pid, share.pid)
        gib = big["bytes"] / 2**30
        lines.append("")
        lines.append(
            f"{big['rows']:,} rows ({gib:.2f} GiB of Arrow data) streamed batch by batch to a "
            f"client that keeps none, in {big['seconds']:.1f} s "
            f"({big['bytes'] / 2**20 / big['seconds']:,.0f} MiB/s):"
        )
        lines.append("")
        lines.append("| process | peak RSS | growth while streaming | CPU s | CPU s per GiB |")
        lines.append("|---|---:|---:|---:|---:|")
        for name in big["peak"]:
            lines.append(
                f"| {name} | {big['peak'][name] / 2**20:,.0f} MiB "
                f"| {big['growth'][name] / 2**20:+,.0f} MiB | {big['cpu'][name]:.1f} "
                f"| {big['cpu'][name] / gib:.2f} |"
            )
        # The same rows through Flight, for the cycles a plain transport spends.
        cpu_server, usage = cpu_seconds(flight_server.pid), resource.getrusage(resource.RUSAGE_SELF)
        started = time.perf_counter()
        reader = flight_client.do_get(flight.Ticket(QUERY.format(n=big_rows).encode()))
        flight_bytes = sum(chunk.data.nbytes for chunk in reader)
        flight_s = time.perf_counter() - started
        end = resource.getrusage(resource.RUSAGE_SELF)
        flight_client_cpu = end.ru_utime + end.ru_stime - usage.ru_utime - usage.ru_stime
        flight_server_cpu = cpu_seconds(flight_server.pid) - cpu_server
        flight_gib = flight_bytes / 2**30
        lines.append(
            f"| for comparison: Flight server (DuckDB in it) | | | {flight_server_cpu:.1f} "
            f"| {flight_server_cpu / flight_gib:.2f} |"
        )
        lines.append(
            f"| for comparison: Flight client | | | {flight_client_cpu:.1f} "
            f"| {flight_client_cpu / flight_gib:.2f} |"
        )
        ours_cpu = sum(big["cpu"].values())
        lines.append("")
        lines.append(
            f"All of ours: {ours_cpu / gib:.2f} CPU s per GiB over four processes, against "
            f"{(flight_server_cpu + flight_client_cpu) / flight_gib:.2f} for Flight's two "
            f"(which took {flight_s:.1f} s for the same rows, "
            f"{flight_bytes / 2**20 / flight_s:,.0f} MiB/s). On 2 cores a result cannot "
            "stream faster than its CPU seconds allow, whatever the pipelining."
        )
        lines.append("")
        lines.append(
            "Growth is the peak over what the process held just before the query; the "
            "workers' memory is DuckDB's (its scan and the batches in flight), bounded by "
            "the share's memory limit."
        )
        for name in ("client", "relay"):
            targets.append(
                Target(
                    f"{name} memory growth streaming {big['rows']:,} rows",
                    f"{big['growth'][name] / 2**20:+,.0f} MiB",
                    "flat (≤ 64 MiB)",
                    big["growth"][name] <= 64 * 2**20,
                )
            )

        # -- compression on loopback and on a slower line -------------------------------------
        pacer_port, flight_pacer = free_port(), free_port()
        procs.python("100 Mbit/s line", PACER, str(pacer_port), str(relay_port),
                     str(LINK_MBIT * 1e6))  # fmt: skip
        procs.python("100 Mbit/s line to Flight", PACER, str(flight_pacer), str(flight_port),
                     str(LINK_MBIT * 1e6))  # fmt: skip
        paced = parse_link(via(link_text, relay_port, pacer_port))
        small = QUERY.format(n=paced_rows)
        flight_paced = flight.FlightClient(f"grpc://{LOOPBACK}:{flight_pacer}")
        lines.append("")
        lines.append(f"| {paced_rows:,} rows × 10 columns | loopback | {LINK_MBIT} Mbit/s line |")
        lines.append("|---|---:|---:|")
        line_rounds = 1 if quick else 2

        def flight_get(client: flight.FlightClient) -> object:
            return client.do_get(flight.Ticket(small.encode())).read_all()

        contenders: dict[str, tuple[Callable[[], object], Callable[[], object]]] = {
            "Arrow Flight (no compression)": (
                partial(flight_get, flight_client),
                partial(flight_get, flight_paced),
            )
        }
        slow = {codec: RemoteStore(paced, compression=codec) for codec in CODECS}
        for codec in CODECS:
            contenders[f"ours, {codec or 'no compression'}"] = (
                partial(stores[codec].query_arrow, small),
                partial(slow[codec].query_arrow, small),
            )
        near = interleaved({k: v[0] for k, v in contenders.items()}, rounds)
        far = interleaved({k: v[1] for k, v in contenders.items()}, line_rounds)
        for name in contenders:
            lines.append(f"| {name} | {near[name] * 1000:.0f} ms | {far[name] * 1000:.0f} ms |")
        for store in slow.values():
            store.close()
        ranked_near = sorted((t, n) for n, t in near.items() if n.startswith("ours"))
        ranked_far = sorted((t, n) for n, t in far.items() if n.startswith("ours"))
        lines.append("")
        lines.append(
            f"Fastest of ours on loopback: {ranked_near[0][1].removeprefix('ours, ')}; on the "
            f"{LINK_MBIT} Mbit/s line: {ranked_far[0][1].removeprefix('ours, ')}. A link's "
            "default is zstd (`RemoteStore(link, compression=…)` overrides): every byte crosses "
            "three processes and is sealed and opened, so fewer bytes pay for the compression "
            "even on loopback, and on a real line they are what a result waits for."
        )
        for store in stores.values():
            store.close()
        remote.close()
        owner_here.close()
        http.close()
        executor.close()
        con.close()
    return QueryPathResult(
        "The query path, stage by stage",
        "\n".join(lines),
        targets,
        rungs=measured,
        arrow=arrow,
    )


def cpu_per_query(
    ask: Callable[[], object], count: int, groups: dict[str, Callable[[], list[int]]]
) -> tuple[dict[str, float], float]:
    """CPU seconds each process on the path spends per query, this one included, and the
    mean round trip of the same queries (CPU is a total, so it is set against a mean)."""
    pids = {name: find() for name, find in groups.items()}
    before = {name: sum(cpu_seconds(p) for p in found) for name, found in pids.items()}
    mine, started = time.process_time(), time.perf_counter()
    for _ in range(count):
        ask()
    wall = (time.perf_counter() - started) / count
    spent = {"client": (time.process_time() - mine) / count}
    for name, found in pids.items():
        spent[name] = (sum(cpu_seconds(p) for p in found) - before[name]) / count
    return spent, wall


def many_clients(group: list[Process]) -> tuple[list[float], list[str]]:
    """Start every client process's clock at once and gather what they measured."""
    for process in group:
        assert process.proc.stdin is not None
        process.proc.stdin.write("go\n")
        process.proc.stdin.flush()
    times: list[float] = []
    errors: list[str] = []
    for process in group:
        found = json.loads(process.readline(120))
        times += found["times"]
        errors += found["errors"]
    return times, errors


def streamed(streamer: Process, relay: int, owner: int) -> dict[str, Any]:
    """Run the streaming reader, sampling the memory and CPU of every process on the path
    (workers are found as they come: the owner may start one for this query)."""
    import threading

    groups: dict[str, Callable[[], list[int]]] = {
        "client": lambda: [streamer.pid],
        "relay": lambda: [relay],
        "owner": lambda: [owner],
        "worker": lambda: [p for p in descendants(owner) if p != owner],
    }
    peak = dict.fromkeys(groups, 0)
    first: dict[str, dict[int, float]] = {name: {} for name in groups}
    last: dict[str, dict[int, float]] = {name: {} for name in groups}
    done = threading.Event()

    def sample() -> None:
        while True:
            for name, pids in groups.items():
                found = pids()
                peak[name] = max(peak[name], sum(rss(p) for p in found))
                for p in found:
                    if (cpu := cpu_seconds(p)) > 0:
                        first[name].setdefault(p, cpu)
                        last[name][p] = cpu
            if done.wait(0.05):
                return

    done.set()
    sample()  # the starting figures, before the query
    before = dict(peak)
    done.clear()
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        assert streamer.proc.stdin is not None
        streamer.proc.stdin.write("go\n")
        streamer.proc.stdin.flush()
        found: dict[str, Any] = json.loads(streamer.readline(600))
    finally:
        done.set()
        sampler.join()
    cpu = {
        name: sum(last[name][p] - first[name].get(p, 0.0) for p in last[name]) for name in groups
    }
    cpu["client"] = float(found["cpu"])  # its own count: it has exited by now
    peak["client"] = max(peak["client"], int(found["peak"]))
    growth = {name: peak[name] - before[name] for name in groups}
    return {**found, "peak": peak, "growth": growth, "cpu": cpu}
