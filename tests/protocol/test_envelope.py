"""End-to-end envelopes without sockets: what a relay in the middle can and cannot do."""

from __future__ import annotations

import pytest

from p2p2p.errors import Tampered, Truncated
from p2p2p.identity import Identity, box_public_key
from p2p2p.protocol.envelope import REQUEST_PREFIX_BYTES, ClientSession, OwnerSession

SHARE = "a" * 32


def handshake(share: str = SHARE) -> tuple[ClientSession, OwnerSession, Identity]:
    owner = Identity.generate()
    client = ClientSession(box_public_key(owner.public_key), share)
    public, secret = owner.box_keys
    return client, OwnerSession(public, secret, share, client.request_prefix()), owner


def frames(data: bytes) -> list[bytes]:
    """Split a sealed byte stream back into its length-prefixed frames."""
    out, i = [], 0
    while i < len(data):
        n = int.from_bytes(data[i : i + 4], "big")
        out.append(data[i : i + 4 + n])
        i += 4 + n
    return out


def test_request_and_response_round_trip() -> None:
    client, owner, _ = handshake()
    body = client.request.seal(b'{"sql": "SELECT 1"}', final=True)
    assert owner.request.feed(body) == [b'{"sql": "SELECT 1"}']
    owner.request.close()
    response = owner.response.seal(b"chunk-1") + owner.response.seal(b"chunk-2", final=True)
    opener = client.response_opener(owner.response.header)
    # Bytes may arrive in any split.
    received = []
    for i in range(0, len(response), 7):
        received += opener.feed(response[i : i + 7])
    opener.close()
    assert received == [b"chunk-1", b"chunk-2"]


def test_the_relay_sees_no_plaintext() -> None:
    client, _owner, _ = handshake()
    secret = b"SELECT ssn FROM patients WHERE token = 'tok-123456'"
    wire = client.request_prefix() + client.request.seal(secret, final=True)
    assert b"ssn" not in wire and b"tok-123456" not in wire and b"SELECT" not in wire


def test_a_changed_byte_is_detected() -> None:
    client, owner, _ = handshake()
    body = bytearray(client.request.seal(b"SELECT 1", final=True))
    body[-1] ^= 1
    with pytest.raises(Tampered, match="failed authentication"):
        owner.request.feed(bytes(body))


def test_reordered_chunks_are_detected() -> None:
    client, owner, _ = handshake()
    first, second = owner.response.seal(b"one"), owner.response.seal(b"two", final=True)
    opener = client.response_opener(owner.response.header)
    with pytest.raises(Tampered):
        opener.feed(second + first)


def test_a_cut_result_is_detected() -> None:
    client, owner, _ = handshake()
    sealed = owner.response.seal(b"rows 1-1000") + owner.response.seal(
        b"rows 1001-2000", final=True
    )
    opener = client.response_opener(owner.response.header)
    assert opener.feed(frames(sealed)[0]) == [b"rows 1-1000"]
    with pytest.raises(Truncated):
        opener.close()


def test_data_after_the_end_is_refused() -> None:
    client, owner, _ = handshake()
    sealed = owner.response.seal(b"all", final=True)
    opener = client.response_opener(owner.response.header)
    with pytest.raises(Tampered, match="after the authenticated end"):
        opener.feed(sealed + sealed)


def test_a_request_redirected_to_another_share_fails() -> None:
    owner = Identity.generate()
    client = ClientSession(box_public_key(owner.public_key), "share-one-" + "x" * 22)
    public, secret = owner.box_keys
    elsewhere = OwnerSession(public, secret, "share-two-" + "x" * 22, client.request_prefix())
    with pytest.raises(Tampered):
        elsewhere.request.feed(client.request.seal(b"SELECT 1", final=True))


def test_only_the_owner_can_open_a_request() -> None:
    owner, impostor = Identity.generate(), Identity.generate()
    client = ClientSession(box_public_key(owner.public_key), SHARE)
    public, secret = impostor.box_keys
    wrong = OwnerSession(public, secret, SHARE, client.request_prefix())
    with pytest.raises(Tampered):
        wrong.request.feed(client.request.seal(b"SELECT 1", final=True))


def test_impossible_lengths_and_bad_prefixes() -> None:
    _client, owner, _ = handshake()
    with pytest.raises(Tampered, match="impossible length"):
        owner.request.feed(b"\xff\xff\xff\xff")
    public, secret = Identity.generate().box_keys
    with pytest.raises(Tampered, match="incomplete"):
        OwnerSession(public, secret, SHARE, b"\x01" * 10)
    with pytest.raises(Tampered, match="version"):
        OwnerSession(public, secret, SHARE, b"\x09" + bytes(REQUEST_PREFIX_BYTES - 1))


def test_each_request_uses_fresh_keys() -> None:
    owner = Identity.generate()
    a = ClientSession(box_public_key(owner.public_key), SHARE)
    b = ClientSession(box_public_key(owner.public_key), SHARE)
    assert a.public_key != b.public_key
    assert a.request.seal(b"same") != b.request.seal(b"same")
