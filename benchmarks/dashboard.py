"""Dashboard time to first table, as a person meets it: a real relay and ``p2p2p share
--dashboard`` on loopback, the link opened in headless Chromium, a fresh browser
context per viewer so each one trades the link's token for its cookie.

Voila keeps one preheated kernel, so who arrives when matters and is measured apart:

* the first viewer, opening the link the moment ``p2p2p share`` prints it;
* next viewers back to back, each opening as soon as the one before saw its table (the
  preheated kernel went to the previous viewer and is still being replaced);
* a viewer on a settled share, arriving after a pause long enough for the replacement;
* that viewer again later, in the same browser profile (a new tab): its cache holds
  Voila's scripts (the versioned ones kept a year, the others ten minutes, then
  revalidated with 304s).
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

# The first result table of the dashboard, laid out with a size: what a person calls
# "I can see a table"; checked on every animation frame.
FIRST_TABLE_JS = """() => {
  const row = document.querySelector('.p2p2p-dashboard .p2p2p-x-table tbody tr');
  return row !== null && row.getBoundingClientRect().height > 0;
}"""
# When the page drew its preview of that table from its own HTML, before the widgets
# connected (dashboards/preview.js sets the mark), in ms from the navigation's start.
PREVIEW_JS = """() => performance.getEntriesByName('p2p2p-preview')[0]?.startTime ?? null"""
NAVIGATION_JS = """() => ({
  ...performance.getEntriesByType('navigation')[0].toJSON(),
  fetched: performance.getEntriesByType('resource').reduce((sum, r) => sum + r.transferSize, 0),
})"""
OPEN_TIMEOUT_S = 120
TARGET_S = 5.0  # issue 5: "a viewer sees content within a few seconds": the live table
FIRST_ROW_S = 2.0  # issue 19: first data row, a first viewer (a fresh browser context)
RETURNING_ROW_S = 1.0  # issue 19: first data row, a returning viewer

FIRST = "first viewer, the moment the link is live"
BACK_TO_BACK = "next viewers, back to back"
SETTLED = "a viewer on a settled share"
RETURNING = "returning viewer (scripts cached)"


@dataclass(frozen=True)
class Open:
    """One viewer opening the link, in seconds from ``page.goto``."""

    served: float  # first byte of the page, after the cookie trade's redirect
    loaded: float  # DOMContentLoaded: the page and its scripts are in
    connected: float  # the widgets' websocket to the viewer's kernel opened
    total: float  # the first table is visible, live (its widget connected)
    preview: float | None  # the page's own preview of it drawn (None: there was none)
    fetched: int  # bytes over the wire until then (0 for what came from the cache)
    cached: int = 0  # answers the browser's cache gave without asking
    revalidated: int = 0  # answers it asked about and got a 304 for (its copy was good)

    @property
    def first_row(self) -> float:
        """When the viewer first saw a data row: the preview's, or the live table's."""
        return self.total if self.preview is None else min(self.preview, self.total)


@dataclass
class DashboardResult(Section):
    rows: int = 0
    opens: dict[str, list[Open]] = field(default_factory=dict)
    live: list[float] = field(default_factory=list)  # `p2p2p share` started → link printed


def from_cache(requests: list[Any]) -> tuple[int, int]:
    """How many of these finished requests the cache answered without asking, and how
    many it revalidated with a 304 (Playwright then shows the kept 200, with no body and
    only the 304's headers on the wire)."""
    cached = revalidated = 0
    for request in requests:
        sizes = request.sizes()
        wire = sizes["responseHeadersSize"] + sizes["responseBodySize"]
        asked = request.all_headers()
        if wire <= 0:
            cached += 1
        elif sizes["responseBodySize"] <= 0 and (
            "if-none-match" in asked or "if-modified-since" in asked
        ):
            revalidated += 1
    return cached, revalidated


def open_link(context: Any, link: str) -> Open:
    page = context.new_page()
    try:
        connected: list[float] = []
        finished: list[Any] = []
        page.on("websocket", lambda _ws: connected.append(time.perf_counter()))
        page.on("requestfinished", lambda request: finished.append(request))
        started = time.perf_counter()
        # Voila's template asks a CDN for a font that never loads here: no "load" event.
        page.goto(link, wait_until="domcontentloaded", timeout=OPEN_TIMEOUT_S * 1000)
        page.wait_for_function(FIRST_TABLE_JS, polling="raf", timeout=OPEN_TIMEOUT_S * 1000)
        total = time.perf_counter() - started
        # The browser's own clock for what happens inside it (0 = the navigation's start,
        # a few ms after goto was called).
        navigation = page.evaluate(NAVIGATION_JS)
        preview = page.evaluate(PREVIEW_JS)
        cached, revalidated = from_cache(list(finished))  # counted after the clock stopped
        return Open(
            served=navigation["responseStart"] / 1000,
            loaded=navigation["domContentLoadedEventEnd"] / 1000,
            connected=(connected[0] - started) if connected else total,
            total=total,
            preview=None if preview is None else preview / 1000,
            fetched=int(navigation["transferSize"] + navigation["fetched"]),
            cached=cached,
            revalidated=revalidated,
        )
    finally:
        # Closing the tab ends the viewer's session; Voila keeps its kernel until idle.
        page.close()


def fresh_viewer(browser: Any, link: str) -> tuple[Open, Any]:
    """A new person: a browser profile with no cache and no cookie."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        return open_link(context, link), context
    except BaseException:
        context.close()
        raise


def viewers_of_one_share(
    browser: Any, link: str, back_to_back: int, settled: int, pause_s: float
) -> list[tuple[str, Open]]:
    seen: list[tuple[str, Open]] = []
    profiles: list[Any] = []
    try:
        for kind, pause in [
            (FIRST, 0.0),
            *[(BACK_TO_BACK, 0.0)] * back_to_back,
            *[(SETTLED, pause_s)] * settled,
        ]:
            time.sleep(pause)
            opened, profile = fresh_viewer(browser, link)
            seen.append((kind, opened))
            profiles.append(profile)
        time.sleep(pause_s)
        seen.append((RETURNING, open_link(profiles[-1], link)))
    finally:
        for profile in profiles:
            profile.close()
    return seen


def kernel_memory(share_pid: int) -> tuple[int, list[int]]:
    """RSS of the share's Voila server and of each kernel it started."""
    voila, kernels = 0, []
    for pid in descendants(share_pid):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                command = handle.read().replace(b"\0", b" ")
        except OSError:
            continue
        if b"ipykernel" in command:
            kernels.append(rss(pid))
        elif b" voila " in command:
            voila = rss(pid)
    return voila, kernels


def seconds(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} s"


def run(rounds: int, quick: bool) -> DashboardResult:
    del rounds  # viewers are counted below: each open costs seconds, not milliseconds
    title = "Dashboard: time to first table in a browser"
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        return DashboardResult(title, "Not measured: Chromium is missing (`make chromium`).")
    from playwright.sync_api import sync_playwright

    rows = 20_000 if quick else 1_000_000
    shares, back_to_back, settled = (1, 1, 1) if quick else (3, 2, 2)
    pause_s = 8.0  # the replacement of a taken preheated kernel is ready in ~3-4 s
    opens: dict[str, list[Open]] = {FIRST: [], BACK_TO_BACK: [], SETTLED: [], RETURNING: []}
    live: list[float] = []
    memory: tuple[int, list[int]] = (0, [])
    browser_version = ""
    with (
        tempfile.TemporaryDirectory(prefix="p2p2p-bench-") as tmp,
        Processes() as procs,
        sync_playwright() as pw,
    ):
        store = Path(build_sample_store(Path(tmp) / "sample.duckdb", rows=rows))
        _, relay_url = procs.relay()
        browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        browser_version = browser.version
        try:
            # A person's browser is already running: start its processes before timing.
            warm = browser.new_context()
            warm.new_page().goto("about:blank")
            warm.close()
            for _ in range(shares):
                started = time.perf_counter()
                share, link = procs.share(
                    store, relay_url, Path(tmp) / "owner", "--dashboard", "--name", "clinic"
                )
                live.append(time.perf_counter() - started)
                for kind, opened in viewers_of_one_share(
                    browser, link, back_to_back, settled, pause_s
                ):
                    opens[kind].append(opened)
                if not memory[1]:
                    memory = kernel_memory(share.pid)
                procs.stop(share)  # a fresh share next: its first viewer is a first again
        finally:
            browser.close()

    lines = [
        f"The sample store ({rows:,} sales rows, 4 tables) shared with `--dashboard` through "
        f"a relay on loopback. A viewer is a page of headless Chromium {browser_version} at "
        f"1280×900, timed from "
        f"`page.goto(link)` until the first result table is laid out. "
        f"{shares} share start{'s' if shares > 1 else ''}; "
        f"on each: the first viewer at once, {back_to_back} back to back, {settled} after "
        f"{pause_s:g} s pauses, then the last of those again after another pause in the same "
        f"browser profile. All but the returning viewer are new profiles (no cache, no "
        f"cookie), so each trades the link's token for its cookie.",
        "",
        "| viewer | n | first row: median (min–max) | live table | page served "
        "| scripts loaded | kernel connected | fetched | cached / 304 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for kind, samples in opens.items():
        firsts = [o.first_row for o in samples]
        lines.append(
            f"| {kind} | {len(samples)} | **{seconds(firsts)}** ({min(firsts):.2f}–"
            f"{max(firsts):.2f} s) | {seconds([o.total for o in samples])} "
            f"| {seconds([o.served for o in samples])} "
            f"| {seconds([o.loaded for o in samples])} "
            f"| {seconds([o.connected for o in samples])} "
            f"| {statistics.median(o.fetched for o in samples) / 1e6:.2f} MB "
            f"| {statistics.median(o.cached for o in samples):.0f} / "
            f"{statistics.median(o.revalidated for o in samples):.0f} |"
        )
    voila, kernels = memory
    lines += [
        "",
        "First row: the page's own preview of the first table (dashboards/preview.js draws "
        "it from the page's HTML as the page arrives, before Voila's scripts have run), or "
        "the live table if that came first; "
        f"{sum(o.preview is not None for s in opens.values() for o in s)} of "
        f"{sum(len(s) for s in opens.values())} opens drew a preview. Live table: the "
        "explorer widget drawn by its kernel, which a viewer can click. "
        "The three step columns are medians of when each step was done, counted from the "
        "same start: the first byte of the page (after the redirect that trades the token "
        "for a cookie; Voila answers once a kernel has run the dashboard), "
        "DOMContentLoaded (the page and its scripts, through the relay and the owner's "
        "tunnel), and the widgets' websocket to the viewer's kernel opening (Voila's widget "
        "scripts fetched and run). The table follows once the widgets' state has crossed it. "
        "Fetched: bytes over the wire until then; what a returning viewer still fetches is "
        "what its cache could not answer. Cached / 304: answers (medians) its cache gave "
        "without asking (Voila's files, within the time the owner lets it keep them) and "
        "those it revalidated and got a 304 for (the unversioned ones, after their ten "
        "minutes); docs/dashboards.md says which.",
        "",
        f"* `p2p2p share --dashboard` from start to a live link: {seconds(live)} (median of "
        f"{len(live)}); the preheated kernel may still be running the dashboard then, which "
        "the first viewer waits for.",
    ]
    if kernels:
        lines.append(
            f"* owner side with {len(kernels)} kernels: Voila server {voila / 2**20:.0f} MiB, "
            f"each kernel {statistics.median(kernels) / 2**20:.0f} MiB RSS (median). At most "
            "`--max-viewers` kernels exist (default 10, the pre-started one included); a "
            "closed tab frees its kernel at once, one no page is connected to goes after 20 s."
        )
    targets = [
        Target(
            f"dashboard first data row, {kind}",
            f"{seconds([o.first_row for o in samples])} median, "
            f"{max(o.first_row for o in samples):.2f} s worst",
            f"median ≤ {goal:g} s",
            statistics.median(o.first_row for o in samples) <= goal,
        )
        for kind, samples in opens.items()
        for goal in [RETURNING_ROW_S if kind == RETURNING else FIRST_ROW_S]
    ] + [
        Target(
            f"dashboard live table, {kind}",
            f"{seconds([o.total for o in samples])} median, "
            f"{max(o.total for o in samples):.2f} s worst",
            f"median ≤ {TARGET_S:g} s",
            statistics.median(o.total for o in samples) <= TARGET_S,
        )
        for kind, samples in opens.items()
    ]
    return DashboardResult(title, "\n".join(lines), targets, rows=rows, opens=opens, live=live)
