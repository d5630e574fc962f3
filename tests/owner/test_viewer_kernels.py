"""A link can never make the owner start more dashboard kernels than the owner allows.

Real processes: a relay, ``p2p2p share --dashboard`` with its Voila, and plain HTTP page
loads that never open a kernel websocket (the cheapest attack: each load used to start a
kernel of 130-230 MB that nothing ever counted).
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from p2p2p.client import parse_link

from ..helpers.sharing import Relay, Share, kernels_below

pytestmark = pytest.mark.timeout(600)

CAP = 3


def test_fifty_page_loads_never_exceed_the_kernel_cap_and_idle_kernels_go(
    relay: Relay, sample_store: str, tmp_path: Path
) -> None:
    owner = Share(
        sample_store, relay.url, tmp_path / "owner", "--dashboard", "--max-viewers", str(CAP)
    )
    try:
        link = parse_link(owner.link)
        page = f"{link.share_url}/"
        headers = {"Accept": "text/html", "Cookie": f"p2p2p_t={link.token}"}
        peak = 0
        done = threading.Event()

        def watch() -> None:
            nonlocal peak
            while not done.is_set():
                peak = max(peak, len(kernels_below(owner.proc.pid)))
                time.sleep(0.1)

        watcher = threading.Thread(target=watch)
        watcher.start()

        def load(_: int) -> httpx.Response:
            return httpx.get(page, headers=headers, timeout=180)

        try:
            with ThreadPoolExecutor(max_workers=10) as pool:
                answers = list(pool.map(load, range(50)))
        finally:
            done.set()
            watcher.join()
        statuses = [a.status_code for a in answers]
        assert peak <= CAP, f"{peak} kernels for a cap of {CAP}"
        assert 1 <= statuses.count(200) <= CAP
        busy = [a for a in answers if a.status_code == 503]
        assert len(busy) == 50 - statuses.count(200)
        assert all("Many people are looking" in a.text for a in busy)

        # Nobody connected to those kernels: they are reclaimed within about 30 s, and
        # the one started ahead for the next viewer comes back.
        deadline = time.monotonic() + 45
        while time.monotonic() < deadline and len(kernels_below(owner.proc.pid)) > 1:
            time.sleep(1)
        left = len(kernels_below(owner.proc.pid))
        assert left <= 1, f"{left} idle kernels still running"
        again = httpx.get(page, headers=headers, timeout=180)
        assert again.status_code == 200 and "voila" in again.text.lower()
    finally:
        owner.stop()
