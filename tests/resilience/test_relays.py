"""One share through several relays: the owner stays on each, the link names them all,
and notebook clients go on through the next one when a relay stops."""

from __future__ import annotations

import signal
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest

import p2p2p
from p2p2p.client import parse_link
from p2p2p.errors import BadTarget, ShareOffline

from ..helpers.sharing import Relay, Share, cli


@pytest.fixture()
def relays() -> Iterator[list[Relay]]:
    started = [Relay(), Relay()]
    yield started
    for relay in started:
        relay.stop()


def registered(relay: Relay, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if relay.health()["shares"] >= 1:
                return True
        except Exception:
            pass
        time.sleep(0.1)
    return False


def test_a_share_on_two_relays_survives_either_one_stopping(
    relays: list[Relay], sample_store: str, tmp_path: Path
) -> None:
    first, second = relays
    share = Share(sample_store, first.url, tmp_path, "--relay", second.url)
    try:
        link = share.link
        # One click in a browser opens the first relay; the second rides in the fragment.
        assert link.startswith(first.url + "/s/")
        assert link.endswith(f"#also=127.0.0.1:{second.port}")
        assert parse_link(link).relays == (first.url, second.url)
        assert registered(first) and registered(second)
        store = p2p2p.connect(link)
        assert store.query("SELECT 42 AS x")["x"].tolist() == [42]

        first.stop(signal.SIGKILL)
        started = time.monotonic()
        assert store.query("SELECT 43 AS x")["x"].tolist() == [43]  # through the second
        failover = time.monotonic() - started
        assert failover < 2.0, failover
        # A client that starts now, with the first relay gone, finds the share too.
        assert p2p2p.connect(link).query("SELECT 1 AS x")["x"].tolist() == [1]
        ran = cli(tmp_path / "analyst", "query", link, "SELECT 7 AS x", "--format", "csv")
        assert ran.returncode == 0 and "7" in ran.stdout, ran.stderr

        # The first relay comes back on its port: the owner is on it again by itself,
        # and the second can go.
        again = Relay(first.port)
        relays.append(again)
        assert registered(again)
        second.stop(signal.SIGKILL)
        assert store.query("SELECT 44 AS x")["x"].tolist() == [44]
        # Every relay gone: the error says so, naming the last one tried.
        again.stop(signal.SIGKILL)
        with pytest.raises(ShareOffline, match="cannot reach the relay"):
            store.query("SELECT 1")
    finally:
        share.stop()


def test_the_share_starts_while_one_of_its_relays_is_down(
    relays: list[Relay], sample_store: str, tmp_path: Path
) -> None:
    first, second = relays
    first.stop(signal.SIGKILL)
    share = Share(sample_store, first.url, tmp_path, "--relay", second.url)
    try:
        assert p2p2p.connect(share.link).query("SELECT 5 AS x")["x"].tolist() == [5]
        back = Relay(first.port)
        relays.append(back)
        assert registered(back)  # taken as soon as it is up
    finally:
        share.stop()


def test_links_with_other_relays_are_checked() -> None:
    base = "http://127.0.0.1:1/s/" + "a" * 32 + "/?t=tok"
    assert parse_link(base + "#also=r2.example:8443,https://r3.example").also == (
        "http://r2.example:8443",
        "https://r3.example",
    )
    assert parse_link(base + "#also=127.0.0.1:1").also == ()  # the first one again
    for bad in ("#also=r2.example/path", "#also=ftp://r2.example"):
        with pytest.raises(BadTarget, match="not host"):
            parse_link(base + bad)
    link = parse_link(base + "#also=" + urllib.parse.quote("r2:1,r3:2"))
    assert link.full.endswith("#also=r2:1,r3:2")
