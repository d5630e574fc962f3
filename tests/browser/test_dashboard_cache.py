"""A returning viewer's dashboard comes from the browser's cache: a real relay, a real
``p2p2p share --dashboard`` (Voila) and headless Chromium, twice in one browser profile.

What each visit cost is read from Playwright's requests as they finished: the bytes each
one took on the wire (``request.sizes()``: headers and encoded body; nothing for an
answer the cache gave without asking), and whether the browser asked conditionally
(``If-None-Match`` / ``If-Modified-Since``) and got no body back, which is a 304 (the
cache then hands the page its kept copy, so Playwright reports the kept 200).
"""

from __future__ import annotations

import dataclasses
import re
import time
from typing import Any

import pytest

from p2p2p.client import parse_link

from ..helpers.browser import CHROMIUM_ARGS, chromium_path
from ..helpers.sharing import Share

pytestmark = pytest.mark.timeout(600)

STATIC = re.compile(r"/s/[a-z2-7]{32}/voila/(static|templates|labextensions)/")
TEXT = re.compile(r"\.(js|css|json|svg)(\?|$)")
OPEN_TIMEOUT_MS = 120_000


@dataclasses.dataclass(frozen=True)
class Seen:
    """One request of a visit, as it finished."""

    url: str
    status: int  # as the page saw it: a revalidated copy shows its kept 200
    kind: str  # Playwright's resource type: document, script, stylesheet, fetch…
    transferred: int  # bytes on the wire: 0 when the cache answered without asking
    conditional: bool  # the browser revalidated a copy it kept
    body: int  # encoded body bytes on the wire
    headers: dict[str, str]

    @property
    def revalidated(self) -> bool:
        """A 304: asked whether the kept copy is still good, and no body came back."""
        return self.conditional and self.body <= 0 < self.transferred

    @property
    def cached(self) -> bool:
        return self.transferred <= 0

    @property
    def static(self) -> bool:
        return STATIC.search(self.url) is not None


@dataclasses.dataclass(frozen=True)
class Visit:
    seconds: float
    seen: list[Seen]

    @property
    def transferred(self) -> int:
        return sum(s.transferred for s in self.seen)

    def summary(self) -> str:
        static = [s for s in self.seen if s.static]
        return (
            f"{self.seconds:.2f} s to the first row, {len(self.seen)} requests, "
            f"{self.transferred / 1e6:.3f} MB on the wire; static files: {len(static)}, "
            f"{sum(s.cached for s in static)} from the cache without asking, "
            f"{sum(s.revalidated for s in static)} as 304s"
        )


def seen_of(request: Any) -> Seen:
    sizes = request.sizes()
    response = request.response()
    asked = request.all_headers()
    return Seen(
        url=request.url,
        status=response.status if response is not None else 0,
        kind=request.resource_type,
        transferred=max(0, sizes["responseHeadersSize"] + sizes["responseBodySize"]),
        conditional="if-none-match" in asked or "if-modified-since" in asked,
        body=sizes["responseBodySize"],
        headers=response.all_headers() if response is not None else {},
    )


def visit(context: Any, link: str) -> Visit:
    """One visit in a new tab of ``context``, until the dashboard shows its first data row."""
    page = context.new_page()
    finished: list[Any] = []
    page.on("requestfinished", lambda request: finished.append(request))
    try:
        started = time.monotonic()
        # Voila's page waits on a CDN font that is unreachable here: do not wait for "load".
        page.goto(link, wait_until="domcontentloaded", timeout=OPEN_TIMEOUT_MS)
        page.locator(".p2p2p-table-name", has_text="sales").wait_for(timeout=OPEN_TIMEOUT_MS)
        page.locator(".p2p2p-dashboard").get_by_text("north").first.wait_for(
            timeout=OPEN_TIMEOUT_MS
        )
        seconds = time.monotonic() - started
        return Visit(seconds, [seen_of(request) for request in list(finished)])
    finally:
        page.close()  # the tab closes: the viewer leaves, and comes back later


@pytest.fixture(scope="module")
def two_visits(dashboard: Share, tmp_path_factory: pytest.TempPathFactory) -> list[Visit]:
    """A first visit in a fresh profile, then the same person again in the same profile."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            visits = [visit(context, dashboard.link) for _ in range(2)]
            context.close()
        finally:
            browser.close()
    for n, one in enumerate(visits, 1):
        print(f"visit {n}: {one.summary()}")
    return visits


def test_a_returning_viewer_gets_the_static_files_from_the_cache(
    two_visits: list[Visit],
) -> None:
    first, again = two_visits
    static = [s for s in again.seen if s.static]
    assert len(static) > 20, "the dashboard loads Voila's scripts"
    fetched = [s.url for s in static if not (s.cached or s.revalidated)]
    assert fetched == [], "fetched again in full"
    # Back within ten minutes: not even asked about (each question is a round trip
    # through the relay and the owner's tunnel).
    asked = [s.url for s in static if s.revalidated]
    assert asked == [], asked
    # Versioned files are not even asked about.
    versioned = [s for s in static if "?v=" in s.url]
    assert versioned and all(s.cached for s in versioned), [s.url for s in versioned]
    assert again.transferred < first.transferred / 10, (first.summary(), again.summary())


def test_the_first_visit_gets_voilas_text_files_gzipped(two_visits: list[Visit]) -> None:
    first = two_visits[0]
    text = [s for s in first.seen if s.static and TEXT.search(s.url)]
    assert len(text) > 20
    plain = [s.url for s in text if s.headers.get("content-encoding") != "gzip"]
    assert plain == []
    assert all("accept-encoding" in s.headers.get("vary", "").lower() for s in text)
    # The page itself is never compressed (BREACH): it holds the viewer's kernel id.
    pages = [s for s in first.seen if s.kind == "document" and s.status == 200]
    assert pages and all("content-encoding" not in s.headers for s in pages)


def test_the_page_is_never_kept_and_no_kept_address_holds_the_token(
    dashboard: Share, two_visits: list[Visit]
) -> None:
    token = parse_link(dashboard.link).token
    for one in two_visits:
        pages = [s for s in one.seen if s.kind == "document"]
        assert pages
        for page in pages:
            assert "no-store" in page.headers.get("cache-control", ""), page
        shown = [p for p in pages if p.status == 200]
        assert shown and all(not p.cached and p.body > 0 for p in shown)
        for s in one.seen:
            if "no-store" not in s.headers.get("cache-control", ""):
                assert token not in s.url, s.url
    # The address of every kept copy, as the browser kept it: no token in any.
    kept = [s.url for s in two_visits[1].seen if s.cached or s.revalidated]
    assert kept and all(token not in url for url in kept)
