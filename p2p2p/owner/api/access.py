"""Who is asking, and what they may read: the share's access decision for one request.

In stealth mode (the default) the link is the access: every caller reads every table,
and a signature only names the caller in the audit log. In identified mode only a
listed, unexpired viewer's signed request is answered, with that viewer's grant. The
decision is made here once per request and carried as a ``Caller``; the store's policy
enforces the grant (``Executor.query(tables=...)``), never the dashboard.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

from ...errors import NotInvited
from ...identity import b64, fingerprint, unb64
from ..shares import Share
from ..signin import Session
from ..viewers import Viewer

__all__ = ["ANONYMOUS", "Caller", "caller_for", "enroll", "session_tables", "still_allowed"]

ANONYMOUS = "anonymous"
HOW_TO_JOIN = (
    "send the owner your public key (the 'public key' line of `p2p2p keys`) and ask to be "
    "added as a viewer"
)


@dataclasses.dataclass(frozen=True)
class Caller:
    client: str  # "anonymous" or "ed25519:<key>", as the owner verified it
    viewer: Viewer | None = None  # identified mode: the listed viewer it is

    @property
    def tables(self) -> tuple[str, ...] | None:
        return self.viewer.tables if self.viewer is not None else None


def caller_for(share: Share, client: str, ticket: Any = None) -> Caller:
    """The caller of a request whose signature the owner checked (``client``); a
    dashboard kernel's request carries instead the ticket of the viewer it runs for."""
    viewers = share.viewers
    if viewers is None:
        return Caller(client)
    viewers.refresh()
    if not viewers.identified:
        return Caller(client)
    if isinstance(ticket, str) and ticket and share.signins is not None:
        session = share.signins.by_ticket(ticket, viewers)
        viewer = viewers.lookup(session.key) if session is not None else None
        if viewer is None:
            raise NotInvited("the viewer this dashboard runs for has been signed out or removed")
        return Caller(f"ed25519:{b64(viewer.key)}", viewer)
    if client == ANONYMOUS:
        raise NotInvited(
            "this share is open to invited viewers only, and this request is not signed: "
            "connect with your identity (p2p2p.connect signs with it unless told not to); "
            + HOW_TO_JOIN
        )
    key = unb64(client.partition(":")[2])
    viewer = viewers.lookup(key)
    if viewer is None:
        raise NotInvited(
            f"this share is open to invited viewers only, and your key ({fingerprint(key)}) "
            f"is not one of them, or its access has ended: {HOW_TO_JOIN}"
        )
    return Caller(client, viewer)


def still_allowed(share: Share, caller: Caller) -> bool:
    """Whether an answer in flight may go on: the viewer was not removed, did not expire,
    and was not given a different grant since the request began."""
    if caller.viewer is None or share.viewers is None:
        return True
    share.viewers.refresh()
    now = share.viewers.lookup(caller.viewer.key)
    return now is not None and now.tables == caller.viewer.tables


async def enroll(share: Share, client: str, code: Any) -> dict[str, Any]:
    """Redeem a one-time invite for the key that signed the request.

    Answers the viewer's name and grant, and the link's token, which the invite link
    does not carry. The invite is used up whatever happens next.
    """
    if share.viewers is None or not isinstance(code, str) or not code:
        raise NotInvited("this invite is not valid; ask the owner for a new one")
    if client == ANONYMOUS:
        raise NotInvited(
            "an invite is redeemed with your key: connect with your identity "
            "(`p2p2p keys` creates one)"
        )
    key = unb64(client.partition(":")[2])
    viewer = await asyncio.to_thread(share.viewers.redeem, code, key)
    share.viewers.refresh(force=True)
    return {
        "viewer": viewer.name,
        "tables": list(viewer.tables) if viewer.tables is not None else None,
        "expires": viewer.expires,
        "token": share.token,
    }


def session_tables(share: Share, session: Session | None) -> tuple[str, ...] | None:
    """The grant of a signed-in browser's viewer (None: every table, or no session)."""
    if session is None or share.viewers is None:
        return None
    viewer = share.viewers.lookup(session.key)
    return viewer.tables if viewer is not None else ()
