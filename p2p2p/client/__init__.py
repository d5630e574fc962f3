"""Querying stores from anywhere: ``connect``, ``current_share`` and the stores they give.

* ``target``: the one resolver (links, aliases, local paths);
* ``local``: a file on this machine (``LocalStore``);
* ``remote``: a share through its link (``RemoteStore``), including its notes;
* ``aliases``: the names saved by ``%p2p connect LINK as NAME`` and ``%p2p group``;
* ``federation``: many stores as one (``StoreGroup``, ``connect_many``).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, overload

from ..errors import BadTarget
from . import aliases
from .remote import RemoteStore
from .target import (
    GroupTarget,
    Link,
    LinkTarget,
    LocalTarget,
    Target,
    parse_link,
    resolve,
    resolve_any,
)

if TYPE_CHECKING:
    from .federation import StoreGroup
    from .local import LocalStore


def __getattr__(name: str) -> Any:
    """``LocalStore`` and ``StoreGroup`` when first asked for: they bring DuckDB and
    pandas, which a process that only reads shares (a dashboard's kernel) never needs."""
    if name == "LocalStore":
        from .local import LocalStore

        return LocalStore
    if name == "StoreGroup":
        from .federation import StoreGroup

        return StoreGroup
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "SHARE_LINK_ENV",
    "VIEWER_TICKET_ENV",
    "Link",
    "LinkTarget",
    "LocalStore",
    "LocalTarget",
    "RemoteStore",
    "StoreGroup",
    "Target",
    "aliases",
    "connect",
    "connect_many",
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
        # A file here as its viewers will read it: the same refusals and limits, so a
        # dashboard is tried as it will run, and viewers' SQL (an SQL box) can never get
        # the owner's own trust, even in a page started without the share's link.
        return connect(resolve(fallback), as_viewer=True)
    if not link:
        raise BadTarget(
            "p2p2p.current_share() works inside a share's dashboard, which p2p2p starts "
            "with the share's link; elsewhere use p2p2p.connect(link)"
        )
    # In an identified share the page's kernel acts for the signed-in viewer: the owner
    # gave it a ticket (through Voila) that its queries carry.
    ticket = os.environ.get(VIEWER_TICKET_ENV)
    return RemoteStore(parse_link(link), identity=None, session=secrets.token_hex(8), ticket=ticket)


@overload
def connect(target: str, *, as_viewer: bool = False) -> LocalStore | RemoteStore | StoreGroup: ...
@overload
def connect(target: Target, *, as_viewer: bool = False) -> LocalStore | RemoteStore: ...
def connect(
    target: str | Target, *, as_viewer: bool = False
) -> LocalStore | RemoteStore | StoreGroup:
    """``local:PATH`` (or a path) for a file here; a share link, or an alias saved with
    ``%p2p connect``, for a remote share; a group saved with ``%p2p group`` for all its
    stores at once (see ``client.target`` for the order).

    A file here is yours: it is read with your trust (``client.local``), unless
    ``as_viewer=True`` asks for exactly what a viewer of a share of it would get."""
    return open_target(
        resolve_any(target) if isinstance(target, str) else target, as_viewer=as_viewer
    )


def connect_many(targets: Mapping[str, str] | Sequence[str], name: str = "group") -> StoreGroup:
    """Several stores as one: ``{"brig": link1, "sion": link2}`` (the keys become the
    ``_source`` column), or a list of targets (named by their alias or link)."""
    if isinstance(targets, str):
        raise BadTarget("connect_many takes several targets: a dict of name -> link, or a list")
    if isinstance(targets, Mapping):
        members: dict[str, Target] = {str(k): resolve(v) for k, v in targets.items()}
    else:
        resolved = [resolve(t) for t in targets]
        members = {str(t): t for t in resolved}
        if len(members) < len(resolved):
            raise BadTarget("the same store is named twice: give each one once")
    from .federation import StoreGroup

    return StoreGroup(members, name)


@overload
def open_target(target: Target, *, as_viewer: bool = False) -> LocalStore | RemoteStore: ...
@overload
def open_target(target: GroupTarget, *, as_viewer: bool = False) -> StoreGroup: ...
def open_target(
    target: Target | GroupTarget, *, as_viewer: bool = False
) -> LocalStore | RemoteStore | StoreGroup:
    """The store a resolved target names. ``as_viewer`` concerns files here only: a share
    is always read as its viewers read it."""
    if isinstance(target, GroupTarget):
        from .federation import StoreGroup

        return StoreGroup({str(m): m for m in target.members}, target.name)
    if isinstance(target, LinkTarget):
        return RemoteStore(target.link)
    from .local import LocalStore

    return LocalStore(target.path, as_viewer=as_viewer)


def display_target(target: str) -> str:
    """How a target is shown in results and logs: a link never with its token."""
    return str(resolve_any(target))
