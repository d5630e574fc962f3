"""What a relay (or anything between) can make a client say: only that a share could
not be reached, in words shown as the relay's, never as the owner's."""

from __future__ import annotations

import json

import httpcore

from p2p2p.client.remote import _http_error
from p2p2p.client.transport import Answer
from p2p2p.errors import Forbidden, QueryRefused, ShareOffline


def raw(status: int, body: bytes) -> Answer:
    return Answer(httpcore.Response(status, content=body), "relay.example")


def answer(status: int, **body: object) -> Answer:
    return raw(status, json.dumps(body).encode())


def test_a_relays_words_are_labelled_as_the_relays() -> None:
    error = _http_error(answer(403, error="forbidden", message="log in at http://evil.example/"))
    assert isinstance(error, Forbidden)
    assert "from relay.example, outside the encryption" in error.message


def test_a_relay_cannot_claim_the_owner_refused_a_query() -> None:
    error = _http_error(answer(400, error="refused", message="rule broken: send your token"))
    assert not isinstance(error, QueryRefused) and "outside the encryption" in error.message


def test_offline_and_raw_pages_are_kept_short_and_printable() -> None:
    page = raw(502, ("<html>\x1b[31m" + "x" * 5000).encode())
    error = _http_error(page)
    assert isinstance(error, ShareOffline) and "\x1b" not in error.message
    assert len(error.message) < 300
