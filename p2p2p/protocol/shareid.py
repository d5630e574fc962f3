"""Self-certifying share ids: a hash of the owner's public key and the share name.

Anyone shown an owner key for a share id can check that the key belongs to it, so a
relay cannot swap in another owner, and nobody can register an id without the key
it was derived from.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

from ..errors import BadShareName

_DOMAIN = b"p2p2p-share-id-v1\x00"
_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
ID_LENGTH = 32  # base32 characters: 160 bits


def check_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise BadShareName(
            f"share name {name!r} must be 1-63 characters of a-z, 0-9, '-' and '_', "
            "starting with a letter or digit"
        )
    return name


def share_id(owner_public_key: bytes, name: str) -> str:
    if len(owner_public_key) != 32:
        raise ValueError("an Ed25519 public key is 32 bytes")
    digest = hashlib.sha256(_DOMAIN + owner_public_key + check_name(name).encode()).digest()
    return base64.b32encode(digest[:20]).decode().lower()


def matches(share: str, owner_public_key: bytes, name: str) -> bool:
    """Whether ``share`` is the id of ``name`` owned by ``owner_public_key``."""
    try:
        expected = share_id(owner_public_key, name)
    except (ValueError, BadShareName):
        return False
    return hmac.compare_digest(expected, share)


def name_from_path(path: str) -> str:
    """A default share name from a store's file name: ``Sales 2024.duckdb`` -> ``sales-2024``."""
    stem = path.rsplit("/", 1)[-1].rsplit(".", 1)[0].lower()
    cleaned = re.sub(r"[^a-z0-9_-]+", "-", stem).strip("-_")[:63]
    return cleaned or "store"
