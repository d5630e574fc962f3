"""Two owner machines, one share: a --standby process with the same key takes over when
the serving one stops; without --standby a second process is refused, clearly."""

from __future__ import annotations

import json
import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import p2p2p

from ..helpers.sharing import Relay, Share


@pytest.fixture()
def relay() -> Iterator[Relay]:
    started = Relay()
    yield started
    started.stop()


def same_key(first: Path, second: Path) -> None:
    """The second machine gets the owner's key (the identity), nothing else."""
    shutil.copytree(first / "config", second / "config")


def audit_lines(home: Path) -> int:
    return sum(len(p.read_text().splitlines()) for p in home.rglob("audit/*.jsonl"))


def test_a_standby_takes_over_and_a_second_primary_is_refused(
    relay: Relay, sample_store: str, tmp_path: Path
) -> None:
    first_home, second_home, third_home = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    primary = Share(sample_store, relay.url, first_home, "--name", "brig", "--keep-link")
    standby = None
    try:
        same_key(first_home, second_home)
        same_key(first_home, third_home)
        copy = tmp_path / "copy.duckdb"
        shutil.copy(sample_store, copy)
        standby = Share(
            str(copy), relay.url, second_home, "--name", "brig", "--keep-link", "--standby"
        )
        assert standby.info["state"] == "standby"
        assert standby.info["share_id"] == primary.info["share_id"]
        assert standby.link == primary.link  # the same key and --keep-link: the same link

        # Without --standby, a second process is told why, and does not take the route.
        refused = Share.__new__(Share)
        with pytest.raises(AssertionError, match="--standby"):
            Share.__init__(refused, sample_store, relay.url, third_home, "--name", "brig")
        store = p2p2p.connect(primary.link)
        assert store.query("SELECT 42 AS x")["x"].tolist() == [42]
        assert audit_lines(first_home) >= 1 and audit_lines(second_home) == 0

        primary.stop(signal.SIGKILL)
        started = time.monotonic()
        deadline = started + 10
        while True:  # bounded: the standby takes the route when the tunnel closes
            try:
                assert store.query("SELECT 43 AS x")["x"].tolist() == [43]
                break
            except p2p2p.errors.ShareOffline:
                assert time.monotonic() < deadline, "the standby did not take over"
                time.sleep(0.1)
        took = time.monotonic() - started
        assert took < 2.0, took
        assert audit_lines(second_home) >= 1  # each instance writes its own log

        # The first machine comes back as a standby itself: it never takes the route
        # back from the one serving now.
        back = Share(
            sample_store, relay.url, first_home, "--name", "brig", "--keep-link", "--standby"
        )
        try:
            assert back.info["state"] == "standby"
            before = audit_lines(first_home)
            for _ in range(5):
                store.query("SELECT 1")
            assert audit_lines(first_home) == before
            standby.stop()  # now it is the first one's turn again
            deadline = time.monotonic() + 10
            while True:
                try:
                    store.query("SELECT 2")
                    break
                except p2p2p.errors.ShareOffline:
                    assert time.monotonic() < deadline
                    time.sleep(0.1)
            assert audit_lines(first_home) > before
        finally:
            back.stop()
    finally:
        primary.stop()
        if standby is not None:
            standby.stop()


def test_the_json_line_says_the_state(relay: Relay, sample_store: str, tmp_path: Path) -> None:
    share = Share(sample_store, relay.url, tmp_path)
    try:
        assert share.info["state"] == "connected"
        assert json.loads(json.dumps(share.info))["link"] == share.link
    finally:
        share.stop()
