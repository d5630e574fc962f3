"""How many viewers one owner machine holds with the generic dashboard: real Chromium
pages opened one after another and kept open (each its own browser profile, so each has
its own Voila kernel on the owner's machine), until the goal is reached or the pages stop
answering in time.

At every tenth viewer: how long a new viewer waits for the first data row, how long an
open page (the first one) takes to show the next page of its table (a round trip through
its kernel, the relay and the store), and what the owner's side uses (Voila and its
kernels, RSS) and the machine's load.
"""

from __future__ import annotations

import shutil
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from p2p2p.samples.sales import build_sample_store
from tests.helpers.browser import CHROMIUM_ARGS

from .common import Processes, Section, Target, descendants, rss

GOAL = 50  # issue 19: 50 concurrent viewers with the page still answering in ≤ 3 s
ANSWER_S = 3.0
GIVE_UP_S = 60.0  # a page that takes longer than this to open: the machine is full
FIRST_ROW_JS = """() => {
  const row = document.querySelector('.p2p2p-x-table tbody tr');
  return row !== null && row.getBoundingClientRect().height > 0;
}"""


@dataclass(frozen=True)
class Checkpoint:
    viewers: int
    open_s: float  # the newest viewer: link to first data row
    answer_s: float  # the first viewer: "Next" to the next page shown
    owner_mib: float  # Voila and every kernel, RSS
    kernels: int
    load: float  # 1-minute load average


@dataclass
class ViewersResult(Section):
    checkpoints: list[Checkpoint] = field(default_factory=list)


def owner_memory(share_pid: int) -> tuple[float, int]:
    total, kernels = 0, 0
    for pid in descendants(share_pid):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                command = handle.read()
        except OSError:
            continue
        if b"ipykernel" in command or b"voila" in command:
            total += rss(pid)
            kernels += b"ipykernel" in command
    return total / 2**20, kernels


def open_viewer(browser: Any, link: str) -> tuple[Any, float]:
    context = browser.new_context(viewport={"width": 1024, "height": 800})
    page = context.new_page()
    started = time.perf_counter()
    page.goto(link, wait_until="domcontentloaded", timeout=GIVE_UP_S * 1000)
    page.wait_for_function(FIRST_ROW_JS, polling=100, timeout=GIVE_UP_S * 1000)
    return page, time.perf_counter() - started


def next_page(page: Any) -> float:
    """Next ▶ on an open page, until its row range says page 2 (or back to page 1)."""
    shown = page.locator(".p2p2p-x-range").inner_text()
    button = page.get_by_role("button", name="Next ▶")
    if button.is_disabled():
        button = page.get_by_role("button", name="◀ Previous")
    started = time.perf_counter()
    button.click()
    page.wait_for_function(
        "(before) => document.querySelector('.p2p2p-x-range')?.textContent !== before",
        arg=shown,
        polling=50,
        timeout=GIVE_UP_S * 1000,
    )
    return time.perf_counter() - started


def run(rounds: int, quick: bool) -> ViewersResult:
    del rounds  # each viewer is one sample; the checkpoints are the figures
    import os

    title = "Viewers one owner machine holds"
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        return ViewersResult(title, "Not measured: Chromium is missing (`make chromium`).")
    from playwright.sync_api import sync_playwright

    goal = 5 if quick else GOAL
    every = 5 if quick else 10
    checkpoints: list[Checkpoint] = []
    opens: list[float] = []
    stopped = ""
    with (
        tempfile.TemporaryDirectory(prefix="p2p2p-bench-") as tmp,
        Processes() as procs,
        sync_playwright() as pw,
    ):
        store = Path(build_sample_store(Path(tmp) / "sample.duckdb", rows=100_000))
        # Every page here comes from 127.0.0.1, which the relay would count as one client
        # (64 connections); real viewers each have their own address.
        _, relay_url = procs.relay("--max-connections-per-client", "10000")
        share, link = procs.share(
            store, relay_url, Path(tmp) / "owner", "--dashboard", "--max-viewers", str(goal + 5)
        )
        browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        pages: list[Any] = []
        try:
            for n in range(1, goal + 1):
                try:
                    page, seconds = open_viewer(browser, link)
                except Exception as exc:  # a timeout or a busy page: the machine is full
                    stopped = f"viewer {n} did not see its table within {GIVE_UP_S:g} s ({exc})"
                    break
                pages.append(page)
                opens.append(seconds)
                if n % every == 0 or n == 1:
                    memory, kernels = owner_memory(share.pid)
                    checkpoints.append(
                        Checkpoint(
                            n, seconds, next_page(pages[0]), memory, kernels, os.getloadavg()[0]
                        )
                    )
                    print(f"  {n} viewers: {checkpoints[-1]}", flush=True)
        finally:
            browser.close()

    held = [c for c in checkpoints if c.answer_s <= ANSWER_S and c.open_s <= GIVE_UP_S]
    most = max((c.viewers for c in held), default=0)
    lines = [
        f"The sample store (100,000 sales rows) shared with the generic dashboard "
        f"(`--max-viewers {goal + 5}`); viewers are headless Chromium pages at 1024×800, "
        "each in a browser profile of its own and kept open, opened one after another on "
        "the same 2-core machine as the owner and the relay (so the browser's own work "
        "counts against the owner's cores, as it would not for real viewers).",
        "",
        "| viewers open | new viewer: link → first row | open page: Next → next page "
        "| owner RSS (Voila + kernels) | kernels | load (1 min) |",
        "|---:|---:|---:|---:|---:|---:|",
        *(
            f"| {c.viewers} | {c.open_s:.2f} s | {c.answer_s:.2f} s | "
            f"{c.owner_mib:,.0f} MiB | {c.kernels} | {c.load:.1f} |"
            for c in checkpoints
        ),
        "",
    ]
    if opens:
        lines.append(
            f"* opening times over all {len(opens)} viewers: median "
            f"{statistics.median(opens):.2f} s, worst {max(opens):.2f} s."
        )
    if checkpoints and checkpoints[-1].kernels:
        last = checkpoints[-1]
        per_kernel = last.owner_mib / max(last.kernels, 1)
        lines.append(
            f"* memory: about {per_kernel:.0f} MiB per viewer on the owner's side; a 24 GiB "
            f"machine holds ~{24 * 1024 / per_kernel:,.0f} viewers' kernels by memory alone, "
            "so the cores, not memory, set the limit."
        )
    if stopped:
        lines.append(f"* stopped: {stopped}.")
    targets = [
        Target(
            f"viewers held with an open page answering in ≤ {ANSWER_S:g} s",
            f"{most}",
            f"≥ {goal}",
            most >= goal,
        )
    ]
    return ViewersResult(title, "\n".join(lines), targets, checkpoints=checkpoints)
