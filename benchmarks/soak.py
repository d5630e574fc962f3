"""A soak with faults: one share through two relays, a standby owner beside the primary,
many notebook clients and open dashboards at once, while one relay is killed and
restarted and later the primary owner process is killed; malformed traffic at the relays
all along.

What counts: how many requests were served and how many failed (and why, and whether
they were in flight at a fault), latency percentiles, how long each fault took to
recover from, and the memory of the relays and the owners.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .common import (
    LOOPBACK,
    Process,
    Processes,
    Section,
    Target,
    descendants,
    free_port,
    p2p2p,
    rss,
)

QUERIES = (
    "SELECT 42 AS x",
    "SELECT region, count(*) AS n, sum(amount) AS total FROM sales GROUP BY 1",
    "SELECT * FROM sales ORDER BY sale_id LIMIT 2000",
)


@dataclass(frozen=True)
class Done:
    started: float  # seconds since the soak began
    seconds: float
    error: str  # "" when served


@dataclass
class SoakResult(Section):
    done: list[Done] = field(default_factory=list)


def relay_at(procs: Processes, port: int) -> Process:
    relay = procs.start(
        f"relay :{port}",
        p2p2p("relay", "--host", LOOPBACK, "--port", str(port), "--heartbeat", "1",
              "--max-connections-per-client", "10000"),
    )  # fmt: skip
    relay.readline(60)
    return relay


def tree_mib(pid: int) -> float:
    return sum(rss(p) for p in descendants(pid)) / 2**20


def hostile(urls: list[str], share_id: str, stop: threading.Event, counts: dict[str, int]) -> None:
    """Garbage frames on the tunnel endpoint, oversized bodies, headers sent a byte at a
    time: what a relay on the internet gets, all through the soak."""
    import httpx
    from websockets.sync.client import connect

    slow: list[socket.socket] = []
    while not stop.is_set():
        url = random.choice(urls)
        host, port = url.removeprefix("http://").split(":")
        try:
            with connect(f"ws://{host}:{port}/tunnel", open_timeout=2, close_timeout=1) as ws:
                ws.send(os.urandom(random.randint(1, 4096)))
                ws.send(b"\x00" * 16)
            counts["garbage tunnels"] += 1
        except Exception:
            counts["garbage tunnels"] += 1  # closed on us, as it should be
        try:
            httpx.post(f"{url}/s/{share_id}/.p2p2p/e2e", content=b"x" * (3 << 20), timeout=5)
            counts["oversized bodies"] += 1
        except httpx.HTTPError:
            counts["oversized bodies"] += 1
        try:
            if len(slow) < 20:
                sock = socket.create_connection((host, int(port)), timeout=2)
                sock.send(b"GET /s/" + share_id.encode() + b"/ HTTP/1.1\r\nHost: x")
                slow.append(sock)
                counts["slow clients"] += 1
            for sock in slow:
                sock.send(b"x")  # one more byte of a header that never ends
        except OSError:
            slow = [s for s in slow if s.fileno() != -1]
        stop.wait(0.5)
    for sock in slow:
        sock.close()


def run(rounds: int, quick: bool) -> SoakResult:
    del rounds  # one soak; each request is a sample
    import p2p2p as api
    from p2p2p.client import parse_link
    from p2p2p.samples.sales import build_sample_store

    title = "Soak: faults under load"
    duration = 20.0 if quick else 60.0
    clients = 10 if quick else 100
    dashboards = 2 if quick else 10
    restart_at, kill_at = 0.25 * duration, 0.6 * duration
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")

    done: list[Done] = []
    lock = threading.Lock()
    stop = threading.Event()
    memory: dict[str, float] = {}
    counts = {"garbage tunnels": 0, "oversized bodies": 0, "slow clients": 0}
    pages_ok, pages_failed, reloads = [0], [0], [0]
    events: dict[str, float] = {}
    events_text: list[str] = []
    with tempfile.TemporaryDirectory(prefix="p2p2p-soak-") as tmp, Processes() as procs:
        store = Path(build_sample_store(Path(tmp) / "sample.duckdb", rows=100_000))
        copy = Path(tmp) / "copy.duckdb"
        shutil.copy(store, copy)
        ports = [free_port(), free_port()]
        relays = [relay_at(procs, port) for port in ports]
        urls = [f"http://{LOOPBACK}:{port}" for port in ports]
        primary_home, standby_home = Path(tmp) / "a", Path(tmp) / "b"
        extra = ["--relay", urls[1], "--name", "soak", "--keep-link", "--dashboard",
                 "--max-viewers", str(dashboards + 3)]  # fmt: skip
        primary, link = procs.share(store, urls[0], primary_home, *extra)
        shutil.copytree(primary_home / "config", standby_home / "config")
        standby, standby_link = procs.share(copy, urls[0], standby_home, *extra, "--standby")
        assert standby_link == link, "the standby's link differs"
        share_id = parse_link(link).share_id
        opened = threading.Event()
        began = time.monotonic()

        def client() -> None:
            try:
                remote = api.connect(link)
            except api.P2P2PError as exc:
                with lock:
                    done.append(Done(time.monotonic() - began, 0.0, type(exc).__name__))
                return
            while not stop.is_set():
                sql = random.choice(QUERIES)
                started = time.monotonic()
                error = ""
                try:
                    remote.query_arrow(sql)
                except api.P2P2PError as exc:
                    error = type(exc).__name__
                with lock:
                    done.append(Done(started - began, time.monotonic() - started, error))
                stop.wait(random.uniform(0.05, 0.3))

        def watch_memory() -> None:
            while not stop.is_set():
                for name, pid in (
                    ("relay 1", relays[0].pid),
                    ("relay 2", relays[1].pid),
                    ("primary owner", primary.pid),
                    ("standby owner", standby.pid),
                ):
                    memory[name] = max(memory.get(name, 0.0), tree_mib(pid))
                stop.wait(1.0)

        def viewers() -> None:
            try:
                open_dashboards()
            except Exception as exc:  # said in the report, not lost in a thread
                events_text.append(f"the dashboards' browser failed: {exc!r}"[:300])
            finally:
                opened.set()

        def open_dashboards() -> None:
            if chromium is None or dashboards == 0:
                return
            from playwright.sync_api import sync_playwright

            from tests.helpers.browser import CHROMIUM_ARGS

            from .viewers import next_page, open_viewer

            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
                pages: list[Any] = []
                for _ in range(dashboards):
                    try:
                        pages.append(open_viewer(browser, link)[0])
                    except Exception:
                        pages_failed[0] += 1
                opened.set()  # the soak's clock starts with the pages open
                while not stop.is_set():
                    for i, page in enumerate(pages):
                        if stop.is_set():
                            break
                        try:
                            page.set_default_timeout(10_000)
                            next_page(page)
                            pages_ok[0] += 1
                        except Exception:
                            pages_failed[0] += 1
                            reloads[0] += 1
                            try:  # what a person does with a page that stopped answering
                                page.context.close()
                                pages[i] = open_viewer(browser, link)[0]
                            except Exception:
                                pass
                    stop.wait(2.0)
                browser.close()

        browsing = threading.Thread(target=viewers, daemon=True)
        browsing.start()
        opened.wait(180)
        began = time.monotonic()
        threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
        threads += [
            threading.Thread(target=watch_memory, daemon=True),
            threading.Thread(target=hostile, args=(urls, share_id, stop, counts), daemon=True),
        ]
        for thread in threads:
            thread.start()
        threads.append(browsing)
        time.sleep(restart_at)
        relays[0].proc.send_signal(signal.SIGKILL)
        events["relay 1 killed"] = time.monotonic() - began
        procs.stop(relays[0])
        time.sleep(1.0)
        relays[0] = relay_at(procs, ports[0])
        events["relay 1 back"] = time.monotonic() - began
        events["share back on relay 1"] = _registered(urls[0], began)
        time.sleep(max(0.0, kill_at - (time.monotonic() - began)))
        for pid in reversed(descendants(primary.pid)):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        events["primary owner killed"] = time.monotonic() - began
        time.sleep(max(0.0, duration - (time.monotonic() - began)))
        stop.set()
        for thread in threads:
            thread.join(30)

    served = [d for d in done if not d.error]
    failed = [d for d in done if d.error]
    latencies = sorted(d.seconds for d in served)

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] if latencies else 0.0

    def in_flight(d: Done) -> str:
        for name in ("relay 1 killed", "primary owner killed"):
            at = events[name]
            if d.started <= at + 0.05 and d.started + d.seconds >= at - 0.05:
                return name
        return ""

    causes: dict[str, int] = {}
    stray = 0
    for d in failed:
        where = in_flight(d)
        stray += not where
        key = f"{d.error} ({'in flight at ' + where if where else 'not in flight at a fault'})"
        causes[key] = causes.get(key, 0) + 1
    kill = events["primary owner killed"]
    after_kill = [d.started + d.seconds - kill for d in served if d.started >= kill]
    takeover = min(after_kill) if after_kill else float("nan")
    restart = events["relay 1 killed"]
    around = [d.seconds for d in served if restart <= d.started <= restart + 1.0]
    rows = [
        "| figure | value |",
        "|---|---:|",
        f"| requests served | {len(served):,} ({len(served) / duration:.0f}/s) |",
        f"| requests failed | {len(failed)} (not in flight at a fault: {stray}) |",
        f"| latency p50 / p99 | {pct(0.5) * 1000:.1f} ms / {pct(0.99) * 1000:.1f} ms |",
        f"| slowest request started within 1 s of the relay kill | "
        f"{max(around) * 1000 if around else float('nan'):.0f} ms |",
        f"| owner back on the restarted relay | {events['share back on relay 1'] - events['relay 1 back']:.2f} s after it was up |",
        f"| first answer from the standby after the primary's kill | {takeover:.2f} s |",
        f"| dashboard page turns served / failed (reloads) | {pages_ok[0]} / {pages_failed[0]} ({reloads[0]}) |",
        *(
            f"| peak RSS, {name} (with its children) | {mib:.0f} MiB |"
            for name, mib in memory.items()
        ),
        f"| malformed traffic sent | {', '.join(f'{v} {k}' for k, v in counts.items())} |",
    ]
    failures = "\n".join(f"* {n} × {cause}" for cause, n in sorted(causes.items())) or "* none"
    markdown = "\n".join([
        f"One share of the sample store (100,000 rows) with its dashboard, through two relays, "
        f"a `--standby` owner with a copy of the store beside the primary; {clients} notebook "
        f"clients (threads of one process, each its own `p2p2p.connect(link)`, a random mix of "
        f"`SELECT 42`, a GROUP BY and 2,000 rows, 50-300 ms apart) and {dashboards} open "
        f"dashboards in Chromium turning pages every ~2 s, for {duration:.0f} s. At "
        f"{events['relay 1 killed']:.0f} s the first relay is killed (SIGKILL) and restarted a "
        f"second later on its port; at {kill:.0f} s the primary owner's whole process tree is "
        "killed. All along, garbage frames on `/tunnel`, 3 MiB bodies and headers sent a byte "
        "at a time go to both relays. Everything runs on this one 2-core machine.",
        "",
        *rows,
        "",
        "Failures, by cause:",
        "",
        failures,
        "",
        *events_text,
        "",
        "Dashboards do not fail over by themselves: a page's kernel lives in the owner "
        "process that served it and its websocket runs through one relay; a page that stops "
        "answering is reopened here as a person would (its link takes the live relay and "
        "owner).",
    ])  # fmt: skip
    targets = [
        Target(
            "soak: requests failed outside the faults' in-flight ones",
            str(stray),
            "0",
            stray == 0,
        ),
        Target(
            "soak: standby's first answer after the primary is killed",
            f"{takeover:.2f} s",
            "≤ 2 s",
            takeover <= 2.0,
        ),
    ]
    return SoakResult(title, markdown, targets, done)


def _registered(url: str, began: float, timeout: float = 20.0) -> float:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).json().get("shares", 0) >= 1:
                return time.monotonic() - began
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    return float("nan")
