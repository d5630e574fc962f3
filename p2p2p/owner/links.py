"""Links that outlive the process: ``--keep-link`` and ``--rotate-link``.

By default each start of a share makes a new random token, so a restarted owner hands
out a new link. With ``--keep-link`` the token is derived from the owner's key and a
generation number: ``token = H(sign(domain, share id, generation))`` (Ed25519 signatures
are deterministic, so the same key always gives the same token). What this module keeps
on disk, per share, is only that number and the token's hash: reading the data
directory gives no working link without the key, and whoever has the key is the owner.
``--rotate-link`` moves to the next generation; the old token then matches nothing, so
the old link is dead as soon as the share runs with the new one.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

from ..identity import Identity
from ..paths import private_dir, write_private_json

__all__ = ["kept_token"]

_DOMAIN = b"p2p2p-link-token-v1\x00"


def _derived(identity: Identity, share_id: str, generation: int) -> str:
    signature = identity.sign(_DOMAIN + f"{share_id}\x00{generation}".encode())
    digest = hashlib.sha256(signature).digest()[:24]  # 192 bits, as a random token's
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def _record(base_dir: Path, share_id: str) -> Path:
    return private_dir(base_dir / "links") / f"{share_id}.json"


def kept_token(identity: Identity, base_dir: Path, share_id: str, rotate: bool = False) -> str:
    """The share's lasting token: the one kept from before, or (first time, or ``rotate``)
    the next generation's, recorded."""
    path = _record(base_dir, share_id)
    generation = 0
    try:
        kept = json.loads(path.read_text())
        generation = int(kept["generation"])
        if kept.get("owner") != identity.public_key_b64:
            generation, rotate = 0, True  # another key's record: start over
    except (OSError, ValueError, KeyError, TypeError):
        rotate = True  # nothing usable kept: a first generation
    if rotate:
        generation += 1
    token = _derived(identity, share_id, generation)
    if rotate:
        record = {
            "generation": generation,
            "owner": identity.public_key_b64,
            "token_sha256": hashlib.sha256(token.encode()).hexdigest(),
        }
        write_private_json(path, record)
    return token
