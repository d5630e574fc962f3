"""Notes while the owner is away: sealed to the owner's key, held by the relay in
memory with caps, delivered and checked when the owner is back, retractable before."""

from __future__ import annotations

import base64
import os
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import p2p2p
from p2p2p.client import parse_link
from p2p2p.client.queued import queue_note, retract_queued
from p2p2p.errors import NoteRefused, ShareOffline
from p2p2p.identity import Identity
from p2p2p.protocol import mailbox, notes
from p2p2p.relay import mailbox as relay_mailbox

from ..helpers.sharing import Relay, Share


@pytest.fixture()
def relay() -> Iterator[Relay]:
    started = Relay()
    yield started
    started.stop()


def test_a_note_waits_for_the_owner_and_is_delivered_when_they_are_back(
    relay: Relay, sample_store: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("P2P2P_HOME", str(tmp_path / "analyst"))
    owner_home = tmp_path / "owner"
    share = Share(sample_store, relay.url, owner_home, "--name", "clinic")
    link = share.link
    with pytest.raises(ShareOffline, match="online now"):
        queue_note(link, "too early")  # the owner is here: send it to them
    share.stop()

    analyst = Identity.generate()
    waiting = queue_note(link, "Q3 looks odd while you were away", on="sales", identity=analyst)
    assert waiting["relay"] == relay.url
    taken_back = queue_note(link, "never mind", identity=analyst)
    retract_queued(taken_back["id"])
    with pytest.raises(p2p2p.BadTarget):
        retract_queued(taken_back["id"])  # once only: its secret is gone from here
    facts = httpx.get(f"{relay.url}/s/{parse_link(link).share_id}/.p2p2p/queue").json()
    assert facts["online"] is False and facts["ttl_s"] == mailbox.TTL_S

    back = Share(sample_store, relay.url, owner_home, "--name", "clinic")
    try:
        store = p2p2p.connect(back.link)
        deadline = time.monotonic() + 10
        bodies: list[str] = []
        while time.monotonic() < deadline:
            frame = store.notes()
            bodies = frame["body"].tolist() if len(frame) else []
            if bodies:
                break
            time.sleep(0.2)
        assert bodies == ["Q3 looks odd while you were away"]
        kept = frame.iloc[0]
        assert kept["author"] == analyst.fingerprint and bool(kept["verified"])
        assert kept["on"] == notes.describe_target({"kind": "table", "table": "sales"})
        # Delivered once: the relay forgot it (a restart of the owner brings nothing more).
        with pytest.raises(NoteRefused, match="no longer waits"):
            retract_queued(waiting["id"])
    finally:
        back.stop()


def test_the_relays_queue_is_capped_and_checked(
    relay: Relay, sample_store: str, tmp_path: Path
) -> None:
    share = Share(sample_store, relay.url, tmp_path / "owner")
    share_id = parse_link(share.link).share_id
    share.stop()
    url = f"{relay.url}/s/{share_id}/.p2p2p/queue"
    tag = mailbox.retract_tag("s")
    statuses = [
        httpx.post(
            url, json={"sealed": base64.b64encode(os.urandom(200)).decode(), "tag": tag}
        ).status_code
        for _ in range(relay_mailbox.PER_SENDER + 2)
    ]
    assert statuses == [200] * relay_mailbox.PER_SENDER + [429, 429]
    too_big = base64.b64encode(os.urandom(mailbox.MAX_SEALED + 1)).decode()
    assert httpx.post(url, json={"sealed": too_big, "tag": tag}).status_code == 400
    assert httpx.post(url, json={"sealed": "not base64!", "tag": tag}).status_code == 400
    unknown = f"{relay.url}/s/{'a' * 32}/.p2p2p/queue"
    assert httpx.get(unknown).status_code == 404
    assert httpx.post(unknown, json={"sealed": "AAAA", "tag": tag}).status_code in (400, 404)


def test_a_sealed_note_is_for_the_owners_key_only() -> None:
    owner, other, author = Identity.generate(), Identity.generate(), Identity.generate()
    note = notes.sign(author, notes.draft("a" * 32, author.public_key, "Ann", "secret words"))
    blob = mailbox.seal(owner.public_key, note, "w")
    assert b"secret words" not in blob and b"Ann" not in blob
    assert mailbox.open_sealed(owner, blob) == (note, "w")
    with pytest.raises(NoteRefused):
        mailbox.open_sealed(other, blob)
    assert mailbox.retracts("x", mailbox.retract_tag("x")) and not mailbox.retracts(
        "y", mailbox.retract_tag("x")
    )
