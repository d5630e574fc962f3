"""A share's dashboard server behind its link: HTTP and WebSockets through relay and tunnel;
what browsers may cache of it and what is gzipped, in process and through the relay."""

from __future__ import annotations

import asyncio
import gzip
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import tornado.httpserver
import tornado.netutil
import tornado.web
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from p2p2p.client import parse_link
from p2p2p.owner.api.gate import COOKIE
from p2p2p.owner.upstream import IMMUTABLE, REVALIDATE, Upstream, accepts_gzip

from ..helpers.sharing import Relay, Share, share_origin_request


@pytest.fixture()
def dashboard(relay: Relay, upstream: str, sample_store: str, tmp_path: Path) -> Iterator[Share]:
    process = Share(sample_store, relay.url, tmp_path / "owner", "--upstream", upstream)
    yield process
    process.stop()


def seen(upstream: str) -> list[dict[str, str]]:
    return list(httpx.get(f"{upstream}/s/x/seen").json())


def test_pages_of_the_dashboard_come_through_with_the_cookie_only(
    dashboard: Share, relay: Relay, upstream: str
) -> None:
    link = parse_link(dashboard.link)
    before = len(seen(upstream))
    # Without a token: on the relay's origin a browser is sent on to the share's own,
    # where the owner refuses it. The dashboard hears of neither.
    sent_on = httpx.get(f"{link.share_url}/page", headers={"Accept": "text/html"})
    assert sent_on.status_code == 303 and "?t=" not in sent_on.headers["location"]
    there, host = share_origin_request(sent_on.headers["location"])
    refused = httpx.get(there, headers={"Accept": "text/html", **host})
    assert refused.status_code == 403 and "does not work" in refused.text
    assert len(seen(upstream)) == before  # refused at the owner: the dashboard never saw it
    cookies = {"p2p2p_t": link.token, "theirs": "kept"}
    page = httpx.get(
        f"{link.share_url}/page",
        headers={"Authorization": f"Bearer {link.token}"},
        cookies=cookies,
    )
    assert page.status_code == 200 and "upstream page" in page.text
    assert sorted(page.headers.get_list("set-cookie"))[0].startswith("first=1")
    assert len(page.headers.get_list("set-cookie")) == 2
    last = seen(upstream)[-1]
    assert last["cookie"] == "theirs=kept" and last["authorization"] == ""  # ours stay here
    # The share's own API is still the owner's, not the dashboard's.
    api = httpx.get(f"{link.share_url}/api/query", params={"sql": "SELECT 3 AS x", "t": link.token})
    assert api.json()["rows"] == [[3]]


def test_websockets_through_relay_and_tunnel(dashboard: Share, relay: Relay, upstream: str) -> None:
    link = parse_link(dashboard.link)
    url = f"ws://127.0.0.1:{relay.port}/s/{link.share_id}/echo"
    with connect(
        url, additional_headers={"Cookie": f"p2p2p_t={link.token}"}, origin=relay.url, max_size=None
    ) as ws:  # type: ignore[arg-type]
        assert ws.recv(timeout=10) == "hello"
        ws.send("ping")
        assert ws.recv(timeout=10) == "ping"
        blob = bytes(range(256)) * 8192  # 2 MiB: more than one tunnel frame
        ws.send(blob)
        assert ws.recv(timeout=30) == blob
        for i in range(300):  # many small messages keep their order
            ws.send(f"m{i}")
        assert [ws.recv(timeout=10) for _ in range(300)] == [f"m{i}" for i in range(300)]
    opened = [s for s in seen(upstream) if s["kind"] == "websocket"][-1]
    assert opened["origin"] == upstream and "p2p2p_t" not in opened["cookie"]


def test_websockets_refused_without_token_or_from_another_site(
    dashboard: Share, relay: Relay, upstream: str
) -> None:
    link = parse_link(dashboard.link)
    url = f"ws://127.0.0.1:{relay.port}/s/{link.share_id}/echo"
    before = len(seen(upstream))
    with pytest.raises(InvalidStatus) as no_token:
        connect(url, origin=relay.url, open_timeout=10)  # type: ignore[arg-type]
    assert no_token.value.response.status_code == 403
    with pytest.raises(InvalidStatus) as elsewhere:
        connect(  # a page on another site, with the viewer's cookie attached
            url,
            additional_headers={"Cookie": f"p2p2p_t={link.token}"},
            origin="http://evil.example",  # type: ignore[arg-type]
            open_timeout=10,
        )
    assert elsewhere.value.response.status_code == 403
    assert len(seen(upstream)) == before


def test_unsharing_closes_open_sessions(dashboard: Share, relay: Relay) -> None:
    link = parse_link(dashboard.link)
    url = f"ws://127.0.0.1:{relay.port}/s/{link.share_id}/echo"
    with connect(
        url, additional_headers={"Cookie": f"p2p2p_t={link.token}"}, origin=relay.url
    ) as ws:  # type: ignore[arg-type]
        assert ws.recv(timeout=10) == "hello"
        started = time.monotonic()
        dashboard.stop()
        with pytest.raises(Exception):  # noqa: B017 - closed, however the library words it
            ws.recv(timeout=10)
        assert time.monotonic() - started < 5
    assert relay.health()["ok"]


# -- caching and compression ------------------------------------------------------------
SHARE_ID = "a" * 32
SCRIPT = b"".join(b"function f%d(x) { return x + %d; }\n" % (i, i) for i in range(2000))
STYLE = b"".join(b".c%d { color: #%06x; }\n" % (i, i) for i in range(2000))
IMAGE = bytes(range(256)) * 16
ASKED: list[dict[str, str]] = []  # the headers of each request that reached the server


class Static(tornado.web.StaticFileHandler):
    """Voila serves its files with tornado's StaticFileHandler: ETag, Last-Modified, 304."""

    def prepare(self) -> None:
        ASKED.append(dict(self.request.headers))


class StaticWithCookie(Static):
    """Jupyter's handlers set their anonymous user's cookie on some static answers."""

    def set_extra_headers(self, path: str) -> None:
        self.set_header("Cache-Control", "no-cache")
        self.set_cookie("username-x", "someone")


class Page(tornado.web.RequestHandler):
    def get(self) -> None:
        self.set_header("Cache-Control", "no-cache, no-store, must-revalidate")
        self.finish("<!doctype html><title>page</title><script>var secret = 'k';</script>")


class Kernel(tornado.web.RequestHandler):
    def get(self) -> None:
        self.finish({"id": "a kernel of one viewer"})  # JSON, no Cache-Control


@pytest.fixture(scope="module")
def static_dashboard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A dashboard server with Voila's kinds of paths, on a loopback port, in a thread."""
    root = tmp_path_factory.mktemp("voila")
    (root / "app.js").write_bytes(SCRIPT)
    (root / "index.css").write_bytes(STYLE)
    (root / "logo.png").write_bytes(IMAGE)
    sockets = tornado.netutil.bind_sockets(0, "127.0.0.1")
    port = sockets[0].getsockname()[1]
    loop = asyncio.new_event_loop()
    started = threading.Event()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        app = tornado.web.Application(
            [
                (r"/s/[a-z2-7]+/voila/static/(.*)", Static, {"path": str(root)}),
                (r"/s/[a-z2-7]+/voila/templates/(.*)", Static, {"path": str(root)}),
                (r"/s/[a-z2-7]+/voila/labextensions/(.*)", StaticWithCookie, {"path": str(root)}),
                (r"/s/[a-z2-7]+/", Page),
                (r"/s/[a-z2-7]+/api/kernels/.*", Kernel),
            ]
        )
        server = tornado.httpserver.HTTPServer(app)
        server.add_sockets(sockets)
        started.set()
        loop.run_forever()
        server.stop()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert started.wait(10)
    yield f"http://127.0.0.1:{port}"
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)


def ask(
    upstream: str, path: str, query: str = "", headers: dict[str, str] | None = None
) -> tuple[int, dict[str, Any], bytes]:
    """One request through the owner's upstream client, in process: status, headers, body
    as they go into the tunnel."""

    async def go() -> tuple[int, dict[str, Any], bytes]:
        client = Upstream()
        try:
            status, passed, body = await client.request(
                upstream, SHARE_ID, "GET", path, query, headers or {}, b"", COOKIE
            )
            return status, passed, b"".join([piece async for piece in body])
        finally:
            await client.close()

    return asyncio.run(go())


def test_a_revalidation_reaches_the_dashboard_and_its_304_comes_back(
    static_dashboard: str,
) -> None:
    status, headers, body = ask(static_dashboard, "/voila/static/app.js")
    assert status == 200 and body == SCRIPT
    # Weak: the same content may go out gzipped, another representation of it.
    etag, modified = headers["etag"], headers["last-modified"]
    assert etag.startswith('W/"') and headers["cache-control"] == REVALIDATE
    for asked in ({"if-none-match": etag}, {"if-modified-since": modified}):
        status, headers, body = ask(static_dashboard, "/voila/static/app.js", headers=asked)
        assert (status, body) == (304, b""), asked
        assert headers["etag"] == etag and "content-encoding" not in headers
    status, _, body = ask(
        static_dashboard, "/voila/static/app.js", headers={"if-none-match": 'W/"other"'}
    )
    assert status == 200 and body == SCRIPT


def test_only_versioned_static_files_are_kept_and_never_with_a_cookie_or_the_token(
    static_dashboard: str,
) -> None:
    status, headers, _ = ask(static_dashboard, "/voila/templates/index.css", "v=abc123")
    assert status == 200 and headers["cache-control"] == IMMUTABLE
    # Jupyter's user cookie on a versioned file: the file is kept, the cookie is not sent.
    status, headers, _ = ask(static_dashboard, "/voila/labextensions/app.js", "v=abc123")
    assert headers["cache-control"] == IMMUTABLE and "set-cookie" not in headers
    _, headers, _ = ask(static_dashboard, "/voila/labextensions/app.js")
    assert headers["cache-control"] == REVALIDATE and headers["set-cookie"]
    # The token in the address: kept nowhere, versioned or not.
    _, headers, _ = ask(static_dashboard, "/voila/templates/index.css", "v=abc123&t=secret")
    assert headers["cache-control"] == "no-store"
    # An error is not kept for a year, even at a versioned address.
    status, headers, _ = ask(static_dashboard, "/voila/static/gone.js", "v=abc123")
    assert status == 404 and headers["cache-control"] != IMMUTABLE
    # Pages keep the dashboard's own no-store; a kernel's answer, which says nothing,
    # gets one.
    _, headers, _ = ask(static_dashboard, "/")
    assert "no-store" in headers["cache-control"]
    _, headers, _ = ask(static_dashboard, "/api/kernels/1234")
    assert headers["cache-control"] == "no-store"


def test_static_text_is_gzipped_before_the_tunnel_and_pages_never_are(
    static_dashboard: str,
) -> None:
    gzip_ok = {"accept-encoding": "gzip, deflate, br"}
    for path, content in (("/voila/static/app.js", SCRIPT), ("/voila/static/index.css", STYLE)):
        del ASKED[:]
        status, headers, body = ask(static_dashboard, path, headers=gzip_ok)
        assert status == 200 and headers["content-encoding"] == "gzip"
        assert gzip.decompress(body) == content and len(body) < len(content) / 4
        assert headers["vary"] == "Accept-Encoding" and "content-length" not in headers
        # Plain bytes on loopback: the owner compresses, once.
        assert ASKED[-1].get("Accept-Encoding") == "identity"
    _, headers, body = ask(static_dashboard, "/voila/static/app.js")
    assert "content-encoding" not in headers and body == SCRIPT
    assert headers["vary"] == "Accept-Encoding"
    _, headers, body = ask(static_dashboard, "/voila/static/logo.png", headers=gzip_ok)
    assert "content-encoding" not in headers and body == IMAGE  # compressed already
    # A page and an API answer can hold a secret beside reflected input (BREACH).
    for path in ("/", "/api/kernels/1234"):
        _, headers, body = ask(static_dashboard, path, headers=gzip_ok)
        assert "content-encoding" not in headers and body.startswith((b"<!doctype", b"{"))


def test_accept_encoding_is_read_with_its_weights() -> None:
    assert accepts_gzip("gzip, deflate, br, zstd")
    assert accepts_gzip("br;q=1.0, gzip;q=0.8")
    assert accepts_gzip("*")
    assert not accepts_gzip("")
    assert not accepts_gzip("identity")
    assert not accepts_gzip("gzip;q=0, *")
    assert not accepts_gzip("*;q=0")
    assert not accepts_gzip("gzip;q=nonsense")


@pytest.fixture()
def static_share(
    relay: Relay, static_dashboard: str, sample_store: str, tmp_path: Path
) -> Iterator[Share]:
    process = Share(sample_store, relay.url, tmp_path / "owner", "--upstream", static_dashboard)
    yield process
    process.stop()


def test_validators_304s_and_gzip_pass_through_the_relay_which_adds_none(
    static_share: Share,
) -> None:
    link = parse_link(static_share.link)
    auth = {"Authorization": f"Bearer {link.token}", "Accept-Encoding": "gzip"}
    url = f"{link.share_url}/voila/static/app.js"
    with httpx.stream("GET", url, headers=auth) as first:
        crossed = b"".join(first.iter_raw())
    assert first.status_code == 200 and gzip.decompress(crossed) == SCRIPT
    assert len(crossed) < len(SCRIPT) / 4
    assert first.headers["content-encoding"] == "gzip" and first.headers["vary"]
    # One Content-Type, the dashboard's (not tornado's text/html default beside it).
    assert first.headers.get_list("content-type") == ["text/javascript"]
    etag = first.headers["etag"]
    again = httpx.get(url, headers={**auth, "If-None-Match": etag})
    assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == etag
    modified = first.headers["last-modified"]
    again = httpx.get(url, headers={**auth, "If-Modified-Since": modified})
    assert again.status_code == 304 and again.content == b""
    kept = httpx.get(f"{link.share_url}/voila/templates/index.css?v=abc", headers=auth)
    assert kept.headers["cache-control"] == IMMUTABLE
    # The owner's own answers carry no validator, and the relay makes up none.
    api = httpx.get(f"{link.share_url}/api/info", headers=auth)
    assert api.status_code == 200 and "etag" not in api.headers
