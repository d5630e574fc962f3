"""A share's dashboard server behind its link: HTTP and WebSockets through relay and tunnel."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from p2p2p.client import parse_link

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
