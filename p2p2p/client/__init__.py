"""Querying stores from anywhere: ``connect``, ``current_share`` and the stores they give.

* ``target``: the one resolver (links, aliases, local paths);
* ``local``: a file on this machine (``LocalStore``);
* ``remote``: a share through its link (``RemoteStore``), including its notes;
* ``aliases``: the names saved by ``%p2p connect LINK as NAME``.
"""

from __future__ import annotations

import os
import secrets
from typing import overload

from ..errors import BadTarget
from . import aliases
from .local import LocalStore
from .remote import RemoteStore
from .target import Link, LinkTarget, LocalTarget, Target, parse_link, resolve

__all__ = [
    "SHARE_LINK_ENV",
    "VIEWER_TICKET_ENV",
    "Link",
    "LinkTarget",
    "LocalStore",
    "LocalTarget",
    "RemoteStore",
    "Target",
    "aliases",
    "connect",
    "current_share",
    "display_target",
    "open_target",
    "parse_link",
    "resolve",
]


SHARE_LINK_ENV = "P2P2P_SHARE_LINK"
# Set by Voila (from the owner's X-P2P2P-Viewer header) in the kernel of a page that a
# signed-in viewer of an identified share opened: owner.signin.
VIEWER_TICKET_ENV = "HTTP_X_P2P2P_VIEWER"


@overload
def current_share() -> RemoteStore: ...
@overload
def current_share(fallback: str | None) -> LocalStore | RemoteStore: ...
def current_share(fallback: str | None = None) -> LocalStore | RemoteStore:
    """Inside a share's dashboard: the share itself, through its link like any viewer
    (token check, lockdown, limits, audit), with a session id for this viewer.

    Elsewhere (writing the dashboard in JupyterLab, testing it), ``fallback`` (a path, a
    link or an alias) is connected instead, so the same notebook runs in both places.
    """
    link = os.environ.get(SHARE_LINK_ENV)
    if not link and fallback:
        return connect(fallback)
    if not link:
        raise BadTarget(
            "p2p2p.current_share() works inside a share's dashboard, which p2p2p starts "
            "with the share's link; elsewhere use p2p2p.connect(link)"
        )
    # In an identified share the page's kernel acts for the signed-in viewer: the owner
    # gave it a ticket (through Voila) that its queries carry.
    ticket = os.environ.get(VIEWER_TICKET_ENV)
    return RemoteStore(parse_link(link), identity=None, session=secrets.token_hex(8), ticket=ticket)


def connect(target: str) -> LocalStore | RemoteStore:
    """``local:PATH`` (or a path) for a file here; a share link, or an alias saved with
    ``%p2p connect``, for a remote share (see ``client.target`` for the order)."""
    return open_target(resolve(target))


def open_target(target: Target) -> LocalStore | RemoteStore:
    if isinstance(target, LinkTarget):
        return RemoteStore(target.link)
    return LocalStore(target.path)


def display_target(target: str) -> str:
    """How a target is shown in results and logs: a link never with its token."""
    return str(resolve(target))
