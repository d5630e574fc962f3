"""Links across restarts: a new one by default, the same one with --keep-link, a new
lasting one with --rotate-link (the old one dead at once)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

import p2p2p
from p2p2p.errors import Forbidden

from ..helpers.sharing import Relay, Share


@pytest.fixture()
def relay() -> Iterator[Relay]:
    started = Relay()
    yield started
    started.stop()


def answered(link: str) -> bool:
    try:
        return p2p2p.connect(link).query("SELECT 1 AS x")["x"].tolist() == [1]
    except Forbidden:
        return False


def test_keep_link_and_rotate_link(relay: Relay, sample_store: str, tmp_path: Path) -> None:
    def start(*flags: str) -> str:
        share = Share(sample_store, relay.url, tmp_path, *flags)
        try:
            assert answered(share.link)
            return share.link
        finally:
            share.stop()

    plain = [start(), start()]
    assert plain[0] != plain[1]  # by default a restart is a new link
    kept = start("--keep-link")
    assert start("--keep-link") == kept  # the same link after a restart
    # What the data directory holds is a number and a hash, never the token.
    token = kept.split("?t=")[1]
    records = list((tmp_path / "data").rglob("links/*.json")) or list(
        tmp_path.rglob("links/*.json")
    )
    assert len(records) == 1
    text = records[0].read_text()
    assert token not in text and json.loads(text)["generation"] == 1
    rotated = start("--rotate-link")
    assert rotated != kept
    share = Share(sample_store, relay.url, tmp_path, "--keep-link")
    try:
        assert share.link == rotated  # the rotated one is the lasting one now
        assert answered(share.link)
        with pytest.raises(Forbidden):  # the old link, against the running share
            p2p2p.connect(kept).query("SELECT 1")
    finally:
        share.stop()
