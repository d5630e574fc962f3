"""Browsers in identified mode: a viewer's browser key signs in, and gets a session.

The browser keeps a non-extractable Ed25519 key in IndexedDB (the one it signs notes
with; ``widgets/signer.js``). An invite link enrolls that key once; afterwards the page
proves it holds the key by signing a fresh challenge, and gets a session cookie that
lasts ``SESSION_TTL_S``. Each request re-checks that the session's viewer is still
listed with the same key, so removing a viewer ends their sessions at once.

The dashboard's kernel (run for one page load) acts for the viewer through a *ticket*:
the owner adds it to the page request it forwards to Voila, Voila hands it to the
kernel, and the kernel's queries carry it, so they run with that viewer's grant.

Everything here is in memory and bounded: challenges and sessions past their caps push
out the oldest, so no client can make the owner keep more than ``MAX_*`` of them.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import secrets
import time

import nacl.exceptions
import nacl.signing

from ..errors import NotInvited
from ..identity import unb64
from .viewers import Viewer, ViewerList

__all__ = [
    "COOKIE",
    "SESSION_TTL_S",
    "VIEWER_HEADER",
    "Session",
    "Sessions",
    "signed_message",
]

COOKIE = "p2p2p_v"
# The header the owner adds to a signed-in viewer's page request, and Voila passes to the
# page's kernel as client.VIEWER_TICKET_ENV (VoilaConfiguration.http_header_envs).
VIEWER_HEADER = "x-p2p2p-viewer"
SESSION_TTL_S = 8 * 3600
CHALLENGE_TTL_S = 60.0
MAX_CHALLENGES = 256
MAX_SESSIONS = 1024
DOMAIN = b"p2p2p-signin-v1\x00"


def signed_message(share_id: str, nonce: str) -> bytes:
    """What a browser signs to sign in: only this share, only this challenge."""
    return DOMAIN + share_id.encode() + b"\x00" + nonce.encode()


@dataclasses.dataclass(frozen=True)
class Session:
    viewer: str
    key: bytes
    expires: float
    ticket: str  # what the dashboard's kernel presents for this viewer


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class Sessions:
    """One share's browser challenges and sessions."""

    def __init__(self, share_id: str, ttl_s: float = SESSION_TTL_S) -> None:
        self.share_id = share_id
        self.ttl_s = ttl_s
        self._challenges: collections.OrderedDict[str, float] = collections.OrderedDict()
        self._sessions: collections.OrderedDict[str, Session] = collections.OrderedDict()
        self._tickets: dict[str, str] = {}  # ticket digest -> session digest

    def challenge(self, now: float | None = None) -> str:
        now = time.monotonic() if now is None else now
        nonce = secrets.token_urlsafe(24)
        self._challenges[nonce] = now
        while len(self._challenges) > MAX_CHALLENGES:
            self._challenges.popitem(last=False)
        return nonce

    def _proven_key(self, key_b64: object, nonce: object, signature_b64: object) -> bytes:
        """The key that signed a challenge we issued (once, within its time); else refuse."""
        if not isinstance(nonce, str):
            raise NotInvited("the sign-in challenge is missing: reload the page")
        issued = self._challenges.pop(nonce, None)
        if issued is None or time.monotonic() - issued > CHALLENGE_TTL_S:
            raise NotInvited("the sign-in challenge is unknown, used or too old: reload the page")
        try:
            key = unb64(str(key_b64))
            nacl.signing.VerifyKey(key).verify(
                signed_message(self.share_id, nonce), unb64(str(signature_b64))
            )
        except (ValueError, TypeError, nacl.exceptions.BadSignatureError):
            raise NotInvited("the sign-in signature does not verify") from None
        return key

    def login(self, viewers: ViewerList, key_b64: object, nonce: object, signature: object) -> str:
        """A session for a listed viewer who signed our challenge; returns its secret."""
        key = self._proven_key(key_b64, nonce, signature)
        viewers.refresh()
        viewer = viewers.lookup(key)
        if viewer is None:
            raise NotInvited(
                "this browser's key is not a viewer of this share: open the invite link the "
                "owner sent you, in this browser"
            )
        return self._open(viewer)

    def enroll(
        self, viewers: ViewerList, invite: object, key_b64: object, nonce: object, signature: object
    ) -> str:
        """Redeem an invite for the key that signed our challenge, and sign it in."""
        key = self._proven_key(key_b64, nonce, signature)
        if not isinstance(invite, str) or not invite:
            raise NotInvited("this invite is not valid; ask the owner for a new one")
        viewer = viewers.redeem(invite, key, via="browser invite")
        viewers.refresh(force=True)
        return self._open(viewer)

    def _open(self, viewer: Viewer) -> str:
        secret = secrets.token_urlsafe(32)
        ticket = secrets.token_urlsafe(32)
        expires = time.time() + self.ttl_s
        if viewer.expires is not None:
            expires = min(expires, viewer.expires)
        self._sessions[_digest(secret)] = Session(viewer.name, viewer.key, expires, ticket)
        self._tickets[_digest(ticket)] = _digest(secret)
        while len(self._sessions) > MAX_SESSIONS:
            _old, session = self._sessions.popitem(last=False)
            self._tickets.pop(_digest(session.ticket), None)
        return secret

    def session(self, secret: str | None, viewers: ViewerList) -> Session | None:
        """The live session behind a cookie: unexpired, its viewer still listed, same key."""
        return self._valid(_digest(secret) if secret else "", viewers)

    def by_ticket(self, ticket: str | None, viewers: ViewerList) -> Session | None:
        digest = self._tickets.get(_digest(ticket)) if ticket else None
        return self._valid(digest or "", viewers)

    def _valid(self, digest: str, viewers: ViewerList) -> Session | None:
        session = self._sessions.get(digest)
        if session is None:
            return None
        viewers.refresh()
        viewer = viewers.lookup(session.key)
        if time.time() >= session.expires or viewer is None or viewer.name != session.viewer:
            del self._sessions[digest]
            self._tickets.pop(_digest(session.ticket), None)
            return None
        return session

    def sign_out(self, secret: str | None) -> None:
        session = self._sessions.pop(_digest(secret), None) if secret else None
        if session is not None:
            self._tickets.pop(_digest(session.ticket), None)
