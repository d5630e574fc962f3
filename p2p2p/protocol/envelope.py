"""End-to-end encryption between a programmatic client and a share's owner (sans-I/O).

The relay carries these bytes but cannot read or undetectably change them.

* Keys: the client makes a fresh X25519 key pair per request; libsodium's ``crypto_kx``
  derives two session keys from it and the owner's X25519 key (the twin of the owner's
  Ed25519 identity, which the client checked against the share id). A new key per request
  means one request's keys reveal nothing about another's.
* Streams: each direction is a libsodium ``secretstream`` (XChaCha20-Poly1305): chunks
  are authenticated, numbered implicitly (reordering, dropping or replaying a chunk
  fails), and the last one carries ``TAG_FINAL``, so a cut-off stream is detected.
* Binding: every chunk is authenticated together with the protocol version and the share
  id, so a relay cannot redirect a request to another share of the same owner.

Wire layout (bytes on the tunnel, inside the HTTP bodies)::

    request  = VERSION (1) | client public key (32) | stream header (24) | frame*
    response = stream header (24) | frame*
    frame    = length of ciphertext (4, big endian) | ciphertext

Nonce reuse is impossible by construction: secretstream manages its own nonces and the
keys are fresh per request.
"""

from __future__ import annotations

import struct
from typing import Any

import nacl.bindings as sodium

from ..errors import Tampered, Truncated

VERSION = 1
_LENGTH = struct.Struct(">I")
HEADER_BYTES = sodium.crypto_secretstream_xchacha20poly1305_HEADERBYTES
_ABYTES = sodium.crypto_secretstream_xchacha20poly1305_ABYTES
_TAG_MESSAGE = sodium.crypto_secretstream_xchacha20poly1305_TAG_MESSAGE
_TAG_FINAL = sodium.crypto_secretstream_xchacha20poly1305_TAG_FINAL
PUBLIC_KEY_BYTES = sodium.crypto_kx_PUBLIC_KEY_BYTES
REQUEST_PREFIX_BYTES = 1 + PUBLIC_KEY_BYTES + HEADER_BYTES
DEFAULT_MAX_CHUNK = 16 << 20


def _associated(share_id: str) -> bytes:
    return b"p2p2p-e2e-v%d\x00" % VERSION + share_id.encode()


class Sealer:
    """Encrypts one direction: ``header`` first, then ``seal`` each chunk."""

    def __init__(self, key: bytes, share_id: str) -> None:
        self._state = sodium.crypto_secretstream_xchacha20poly1305_state()
        self.header: bytes = sodium.crypto_secretstream_xchacha20poly1305_init_push(
            self._state, key
        )
        self._ad = _associated(share_id)
        self.finished = False

    def seal(self, chunk: bytes, final: bool = False) -> bytes:
        if self.finished:
            raise ValueError("this stream is already finished")
        ciphertext = sodium.crypto_secretstream_xchacha20poly1305_push(
            self._state, chunk, self._ad, _TAG_FINAL if final else _TAG_MESSAGE
        )
        self.finished = final
        return _LENGTH.pack(len(ciphertext)) + ciphertext


class Opener:
    """Decrypts one direction incrementally: ``feed`` bytes as they arrive."""

    def __init__(
        self, key: bytes, share_id: str, header: bytes, max_chunk: int = DEFAULT_MAX_CHUNK
    ) -> None:
        if len(header) != HEADER_BYTES:
            raise Tampered("the encrypted stream's header is damaged")
        self._state = sodium.crypto_secretstream_xchacha20poly1305_state()
        try:
            sodium.crypto_secretstream_xchacha20poly1305_init_pull(self._state, header, key)
        except Exception:
            raise Tampered("the encrypted stream's header is damaged") from None
        self._ad = _associated(share_id)
        self._buf = bytearray()
        self._max = max_chunk + _ABYTES
        self.finished = False

    def feed(self, data: bytes) -> list[bytes]:
        """Plaintext chunks completed by ``data``; raises ``Tampered`` on any forgery."""
        self._buf += data
        chunks: list[bytes] = []
        while len(self._buf) >= _LENGTH.size:
            (length,) = _LENGTH.unpack_from(self._buf)
            if length < _ABYTES or length > self._max:
                raise Tampered(f"an encrypted chunk claims an impossible length ({length} bytes)")
            if len(self._buf) < _LENGTH.size + length:
                break
            if self.finished:
                raise Tampered("data arrived after the authenticated end of the stream")
            ciphertext = bytes(memoryview(self._buf)[_LENGTH.size : _LENGTH.size + length])
            del self._buf[: _LENGTH.size + length]
            try:
                plaintext, tag = sodium.crypto_secretstream_xchacha20poly1305_pull(
                    self._state, ciphertext, self._ad
                )
            except Exception:
                raise Tampered(
                    "an encrypted chunk failed authentication (changed, reordered or replayed on the way)"
                ) from None
            if tag == _TAG_FINAL:
                self.finished = True
            chunks.append(plaintext)
        return chunks

    def close(self) -> None:
        """Call at the end of the transport stream: refuses a stream cut short."""
        if not self.finished or self._buf:
            raise Truncated("the encrypted stream ended early: the result is incomplete")


class ClientSession:
    """One request from a client to a share's owner."""

    def __init__(self, owner_box_public_key: bytes, share_id: str) -> None:
        if len(owner_box_public_key) != PUBLIC_KEY_BYTES:
            raise ValueError("the owner's X25519 key is 32 bytes")
        self.share_id = share_id
        self.public_key, secret = sodium.crypto_kx_keypair()
        self._rx, tx = sodium.crypto_kx_client_session_keys(
            self.public_key, secret, owner_box_public_key
        )
        self.request = Sealer(tx, share_id)

    def request_prefix(self) -> bytes:
        return bytes([VERSION]) + self.public_key + self.request.header

    def response_opener(self, header: bytes) -> Opener:
        return Opener(self._rx, self.share_id, header)


_CLIENT_DOMAIN = b"p2p2p-client-v1\x00"


def client_claim(identity: Any, share_id: str, session: ClientSession) -> dict[str, str]:
    """Who sends this request: the client's Ed25519 key and a signature binding it to
    this request's one-time encryption key, so the claim cannot be moved to another
    request. Travels inside the encryption."""
    from ..identity import b64

    signed = _CLIENT_DOMAIN + share_id.encode() + b"\x00" + session.public_key
    return {"key": identity.public_key_b64, "sig": b64(identity.sign(signed))}


def verify_claim(claim: Any, share_id: str, client_public_key: bytes) -> str:
    """``ed25519:<key>`` for a valid claim, ``anonymous`` without one; raises on a forgery."""
    if claim is None:
        return "anonymous"
    import nacl.exceptions
    import nacl.signing

    from ..identity import unb64

    try:
        key = unb64(str(claim["key"]))
        nacl.signing.VerifyKey(key).verify(
            _CLIENT_DOMAIN + share_id.encode() + b"\x00" + client_public_key,
            unb64(str(claim["sig"])),
        )
    except (KeyError, TypeError, ValueError, nacl.exceptions.BadSignatureError):
        raise Tampered("the request's client signature does not verify") from None
    return "ed25519:" + str(claim["key"])


class OwnerSession:
    """The owner's side of one client request."""

    def __init__(
        self, owner_box_public_key: bytes, owner_box_secret_key: bytes, share_id: str, prefix: bytes
    ) -> None:
        if len(prefix) != REQUEST_PREFIX_BYTES:
            raise Tampered("the encrypted request's prefix is incomplete")
        if prefix[0] != VERSION:
            raise Tampered(
                f"unsupported encryption version {prefix[0]} (this owner speaks {VERSION})"
            )
        self.client_public_key = bytes(prefix[1 : 1 + PUBLIC_KEY_BYTES])
        try:
            rx, tx = sodium.crypto_kx_server_session_keys(
                owner_box_public_key, owner_box_secret_key, self.client_public_key
            )
        except Exception:
            raise Tampered("the client's key is not a valid X25519 key") from None
        self.request = Opener(rx, share_id, bytes(prefix[1 + PUBLIC_KEY_BYTES :]))
        self.response = Sealer(tx, share_id)
