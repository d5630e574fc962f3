"""Identified mode: how soon removing a viewer cuts their answer, and what checking a
viewer costs a small query.

A real relay and ``p2p2p share --viewer``; the removal is what ``p2p2p viewers remove``
does (the viewers file rewritten), timed from the moment the file is written to the
moment the viewer's client holds the refusal, while a long query of theirs runs.
"""

from __future__ import annotations

import statistics
import tempfile
import threading
import time
from pathlib import Path

from p2p2p.client import parse_link
from p2p2p.client.remote import RemoteStore
from p2p2p.errors import NotInvited
from p2p2p.identity import Identity
from p2p2p.owner.viewers import Viewer, ViewerList, viewers_path
from p2p2p.samples.sales import build_sample_store

from .common import Processes, Section, Target, interleaved

REMOVAL_TARGET_S = 0.1
LONG_QUERY = "SELECT sum(hash(i)) FROM range(30000000000) t(i)"


def run(rounds: int, quick: bool) -> Section:
    removals = 3 if quick else max(5, rounds * 2)
    viewer = Identity.generate()
    with tempfile.TemporaryDirectory(prefix="p2p2p-bench-access-") as tmp, Processes() as procs:
        store = build_sample_store(Path(tmp) / "store.duckdb")
        _relay, relay_url = procs.relay()
        home = Path(tmp) / "home"
        key = f"v={viewer.public_key_b64}"
        _, open_link = procs.share(Path(store), relay_url, home, "--name", "open")
        _, link = procs.share(Path(store), relay_url, home, "--name", "closed", "--viewer", key)
        anonymous = RemoteStore(parse_link(open_link), identity=viewer)
        identified = RemoteStore(parse_link(link), identity=viewer)
        for client in (anonymous, identified):
            client.query_arrow("SELECT 42")
        small = 40 if quick else 200
        p50 = interleaved(
            {
                "stealth": lambda: anonymous.query_arrow("SELECT 42"),
                "identified": lambda: identified.query_arrow("SELECT 42"),
            },
            small,
        )
        stealth_p50, identified_p50 = p50["stealth"], p50["identified"]

        viewers = ViewerList(viewers_path(home / "data", parse_link(link).share_id))
        cuts: list[float] = []
        for _ in range(removals):
            viewers.load()
            viewers.add([Viewer("v", viewer.public_key, added=time.time())])
            time.sleep(0.2)
            done: dict[str, float] = {}

            def long_query(done: dict[str, float] = done) -> None:
                try:
                    identified.query_arrow(LONG_QUERY)
                except NotInvited:
                    done["refused"] = time.perf_counter()

            thread = threading.Thread(target=long_query)
            thread.start()
            time.sleep(1.0)
            removed = time.perf_counter()
            viewers.remove("v")
            thread.join(timeout=30)
            if "refused" in done:
                cuts.append(done["refused"] - removed)
    cut = statistics.median(cuts) if cuts else float("inf")
    lines = [
        f"* **removal**: a viewer taken out while a long query of theirs runs gets the "
        f"refusal {cut * 1000:.0f} ms (median of {len(cuts)}; worst "
        f"{max(cuts, default=float('inf')) * 1000:.0f} ms) after the viewers file is "
        "written; the owner re-reads the file every 50 ms and stops the query's worker.",
        f"* **checking a viewer**: `SELECT 42` via the relay, E2E, p50 "
        f"{stealth_p50 * 1000:.2f} ms on a stealth share, {identified_p50 * 1000:.2f} ms in "
        f"identified mode ({identified_p50 / stealth_p50:.2f}×; both signed by the same key).",
    ]
    targets = [
        Target(
            "a removed viewer's answer in flight is cut",
            f"{cut * 1000:.0f} ms median",
            f"≤ {REMOVAL_TARGET_S * 1000:.0f} ms",
            cut <= REMOVAL_TARGET_S,
        )
    ]
    return Section("Access: removing a viewer", "\n".join(lines), targets)
