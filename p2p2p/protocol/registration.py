"""Owner ↔ relay registration: proving the right to serve share ids (sans-I/O).

The relay sends a fresh random challenge on every tunnel; the owner answers with its
shares and an Ed25519 signature over the challenge and the share list. The relay checks
the signature and that every share id derives from the signing key and the share name
(``shareid``), so nobody can take over another owner's id, and an old answer cannot be
replayed on a new tunnel.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

import nacl.exceptions
import nacl.signing

from ..errors import RegistrationRefused
from ..identity import Identity, b64, unb64
from .shareid import matches

_DOMAIN = b"p2p2p-register-v1\x00"
CHALLENGE_BYTES = 32
MAX_SHARES_PER_TUNNEL = 64


@dataclasses.dataclass(frozen=True)
class ShareAd:
    """What an owner announces about one share (nothing secret)."""

    share_id: str
    name: str
    listed: bool = False
    title: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def new_challenge() -> str:
    return b64(os.urandom(CHALLENGE_BYTES))


def _signed_bytes(challenge: str, owner_key: str, shares: list[ShareAd]) -> bytes:
    body = json.dumps(
        {"challenge": challenge, "owner": owner_key, "shares": [s.to_dict() for s in shares]},
        sort_keys=True,
        separators=(",", ":"),
    )
    return _DOMAIN + body.encode()


def answer(identity: Identity, challenge: str, shares: list[ShareAd]) -> dict[str, Any]:
    """The owner's registration message for this challenge."""
    owner = identity.public_key_b64
    signature = identity.sign(_signed_bytes(challenge, owner, shares))
    return {
        "type": "register",
        "owner": owner,
        "shares": [s.to_dict() for s in shares],
        "signature": b64(signature),
    }


def check(message: dict[str, Any], challenge: str) -> tuple[bytes, list[ShareAd]]:
    """The relay's check; returns ``(owner public key, shares)`` or raises."""
    try:
        owner_key = unb64(str(message["owner"]))
        signature = unb64(str(message["signature"]))
        raw_shares = message["shares"]
        if not isinstance(raw_shares, list):
            raise TypeError
        shares = [
            ShareAd(
                str(s["share_id"]),
                str(s["name"]),
                bool(s.get("listed", False)),
                str(s.get("title", ""))[:200],
            )
            for s in raw_shares
        ]
    except (KeyError, TypeError, ValueError, AttributeError):
        raise RegistrationRefused("malformed registration") from None
    if len(owner_key) != 32:
        raise RegistrationRefused("the owner key must be 32 bytes")
    if len(shares) > MAX_SHARES_PER_TUNNEL:
        raise RegistrationRefused(f"at most {MAX_SHARES_PER_TUNNEL} shares per tunnel")
    try:
        nacl.signing.VerifyKey(owner_key).verify(
            _signed_bytes(challenge, str(message["owner"]), shares), signature
        )
    except (nacl.exceptions.BadSignatureError, ValueError, TypeError):
        raise RegistrationRefused(
            "the registration is not signed by the owner key for this challenge"
        ) from None
    for share in shares:
        if not matches(share.share_id, owner_key, share.name):
            raise RegistrationRefused(
                f"share id {share.share_id} does not belong to this owner key and name"
            )
    return owner_key, shares
