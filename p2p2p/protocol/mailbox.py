"""Notes for an owner who is away: sealed by the sender, held by the relay, opened by
the owner (sans-I/O).

A sender who finds a share offline seals its signed note to the owner's key with a
libsodium sealed box (X25519 twin of the owner's Ed25519 key, as ``identity``): the
relay that holds it can read neither the note nor who wrote it. The owner's key comes
from the relay, which remembers the shares it has carried, and is checked against the
share id (``shareid``) before anything is sealed, so a relay cannot hand out a key of
its own. When the owner's tunnel is back, the relay hands queued notes over in batches
(``queued`` control messages) and forgets each one the owner says it took
(``delivered``); the owner opens and checks each note as it checks any note.

A sender can take a queued note back before it is delivered: with the note it sends
the hash of a random secret it keeps, and later the secret.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
from typing import Any

import nacl.exceptions
import nacl.public

from ..errors import NoteRefused
from ..identity import Identity, box_public_key

__all__ = [
    "BATCH",
    "MAX_SEALED",
    "TTL_S",
    "open_sealed",
    "retract_secret",
    "retract_tag",
    "retracts",
    "seal",
]

MAX_SEALED = 16 * 1024  # bytes of one sealed note (a note's body is at most 4,000 chars)
TTL_S = 7 * 24 * 3600.0  # how long a relay keeps a queued note by default
BATCH = 32  # queued notes per control message to the owner


def seal(owner_public_key: bytes, note: dict[str, Any], work: str | None) -> bytes:
    """``note`` (signed) and its proof of work, readable by the owner's key only."""
    payload = json.dumps({"note": note, "work": work}, separators=(",", ":")).encode()
    sealed = nacl.public.SealedBox(nacl.public.PublicKey(box_public_key(owner_public_key)))
    blob = bytes(sealed.encrypt(payload))
    if len(blob) > MAX_SEALED:
        raise NoteRefused(f"a note for an offline share is at most {MAX_SEALED:,} bytes sealed")
    return blob


def open_sealed(identity: Identity, blob: bytes) -> tuple[dict[str, Any], str | None]:
    """The note and work inside a queued blob; ``NoteRefused`` if it is not one for us."""
    try:
        payload = json.loads(nacl.public.SealedBox(identity.box_private_key).decrypt(blob))
    except (nacl.exceptions.CryptoError, ValueError, TypeError):
        raise NoteRefused("a queued note that this owner's key does not open") from None
    note, work = payload.get("note") if isinstance(payload, dict) else None, None
    if isinstance(payload, dict) and isinstance(payload.get("work"), str):
        work = payload["work"]
    if not isinstance(note, dict):
        raise NoteRefused("a queued note without a note inside")
    return note, work


def retract_secret() -> str:
    return base64.urlsafe_b64encode(os.urandom(24)).decode().rstrip("=")


def retract_tag(secret: str) -> str:
    """What the relay keeps of the sender's secret (it learns the secret only on use)."""
    return hashlib.sha256(b"p2p2p-queue-retract-v1\x00" + secret.encode()).hexdigest()


def retracts(secret: str, tag: str) -> bool:
    return hmac.compare_digest(retract_tag(secret), tag)
