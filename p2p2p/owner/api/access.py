"""Who is asking, and what they may read: the share's access decision for one request.

In stealth mode (the default) the link is the access: every caller reads every table,
and a signature only names the caller in the audit log. In identified mode only a
listed, unexpired viewer's signed request is answered, with that viewer's grant. The
decision is made here once per request and carried as a ``Caller``; the store's policy
enforces the grant (``Executor.query(tables=...)``), never the dashboard.
"""

from __future__ import annotations

import dataclasses

from ...errors import NotInvited
from ...identity import fingerprint, unb64
from ..shares import Share
from ..viewers import Viewer

__all__ = ["ANONYMOUS", "Caller", "caller_for", "still_allowed"]

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


def caller_for(share: Share, client: str) -> Caller:
    """The caller of a request whose signature the owner checked (``client``)."""
    viewers = share.viewers
    if viewers is None:
        return Caller(client)
    viewers.refresh()
    if not viewers.identified:
        return Caller(client)
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
