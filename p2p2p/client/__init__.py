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
    return RemoteStore(parse_link(link), identity=None, session=secrets.token_hex(8))


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
