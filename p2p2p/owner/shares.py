"""The owner's shares: which stores are reachable, under which ids and tokens.

``ShareManager`` is host-agnostic: ``OwnerService`` holds one wherever it runs (its own
process for ``p2p2p share``, the Jupyter server, or a kernel). It owns one ``Executor`` per
share (the single enforcement point) and one audit log per share; the access token is
shown once and kept only as a hash.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import hmac
import os
import re
import secrets
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..client.target import fragment
from ..errors import ShareExists, UnknownShare
from ..identity import Identity
from ..paths import data_dir, private_dir
from ..protocol.registration import ShareAd
from ..protocol.shareid import check_name, name_from_path, share_id
from ..store.executor import Executor
from ..store.file import check_store_file
from ..store.limits import Limits
from .audit import AuditLog
from .notes import NotesStore
from .signin import SESSION_TTL_S, Sessions
from .upstream import check_upstream
from .viewers import Viewer, ViewerList, viewers_path

TOKEN_BYTES = 24  # 192 bits


def open_store(path: str, limits: Limits | None = None) -> Executor:
    """The executor for a store, opened now: a missing, locked or broken file fails here,
    at share time, not in front of a viewer. Blocks for a moment (worker start)."""
    check_store_file(path, "share")
    executor = Executor(path, limits)
    try:
        executor.warm()
    except BaseException:
        executor.close()
        raise
    return executor


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclasses.dataclass
class Share:
    name: str
    share_id: str
    path: str
    executor: Executor
    token_hash: str
    audit: AuditLog
    listed: bool = False
    title: str = ""
    relay: str = ""  # the relay that routes it ("" : every tunnel of this manager)
    also: tuple[str, ...] = ()  # other relays that carry it too (``--relay`` again)
    snapshot: dict[str, str] | None = None  # {"source", "taken"} when serving a copy
    upstream: str = ""  # a loopback web app serving the rest of the share's paths
    upstream_paths: re.Pattern[str] | None = None  # if set, only these paths reach it
    max_viewers: int = 10  # dashboard sessions at once; more get a "busy" page
    # Tables the owner lets subscribers copy (``p2p2p pull``); none unless they say so.
    allow_pull: frozenset[str] = frozenset()
    # Whether viewers may download what they see (the dashboard's export buttons).
    exports: bool = True
    sessions: int = 0  # dashboard sessions open now
    notes: NotesStore | None = None
    viewers: ViewerList | None = None  # who may see it in identified mode (owner.viewers)
    viewer_seen: dict[str, float] = dataclasses.field(default_factory=dict)  # name -> last query
    signins: Sessions | None = None  # browsers signed in, in identified mode (owner.signin)
    # The link's token in this process's memory only (checks use token_hash): handed to
    # a viewer who redeems an invite, whose invite link carries no token.
    token: str = dataclasses.field(default="", repr=False)
    notes_changed: asyncio.Event | None = None  # set (and replaced) when a note arrives
    started: float = dataclasses.field(default_factory=time.time)
    queries: int = 0
    bytes_out: int = 0

    def token_ok(self, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(token_hash(str(token)), self.token_hash)

    def ad(self) -> ShareAd:
        return ShareAd(self.share_id, self.name, self.listed, self.title)


class ShareManager:
    def __init__(self, identity: Identity, base_dir: Path | None = None) -> None:
        self.identity = identity
        self.base_dir = base_dir or data_dir()
        self.shares: dict[str, Share] = {}  # by share id
        self.listeners: list[Any] = []  # called with (event, share) on add/remove
        # Names this process to relays, so a relay can tell its reconnect from another
        # process with the same key trying to take the same share.
        self.instance = secrets.token_hex(8)

    def add(
        self,
        path: str | os.PathLike[str],
        name: str | None = None,
        listed: bool = False,
        limits: Limits | None = None,
        title: str = "",
        relay: str = "",
        snapshot: dict[str, str] | None = None,
        executor: Executor | None = None,
        upstream: str = "",
        viewers: Sequence[Viewer] = (),
        require_key: bool = False,
        session_ttl_s: float = SESSION_TTL_S,
        token: str | None = None,
    ) -> tuple[Share, str]:
        """Share a store; returns the share and its access token (shown once, kept hashed).

        ``executor``: one already opened on ``path`` (by ``open_store``, off an event loop).
        ``viewers`` are added to the share's kept list; they, or ``require_key``, put the
        share in identified mode (a list kept from before keeps its mode).
        """
        resolved = os.path.realpath(os.fspath(path))
        name = check_name(name or name_from_path(resolved))
        sid = share_id(self.identity.public_key, name)
        if sid in self.shares:
            if executor is not None:
                executor.close()
            raise ShareExists(f"a share named {name!r} is already active; unshare it first")
        try:
            viewer_list = ViewerList(viewers_path(self.base_dir, sid))
            if viewers:
                viewer_list.add(viewers)
            if require_key and not viewer_list.identified:
                viewer_list.require_key()
        except BaseException:
            if executor is not None:
                executor.close()
            raise
        if executor is None:
            executor = open_store(resolved, limits)
        token = token or secrets.token_urlsafe(TOKEN_BYTES)
        audit_dir = private_dir(self.base_dir / "audit")
        share = Share(
            name=name,
            share_id=sid,
            path=resolved,
            executor=executor,
            token_hash=token_hash(token),
            audit=AuditLog(audit_dir / f"{sid}.jsonl"),
            listed=listed,
            title=title,
            relay=relay,
            snapshot=snapshot,
            upstream=check_upstream(upstream) if upstream else "",
            notes=NotesStore(
                private_dir(self.base_dir / "notes") / f"{sid}.sqlite",
                sid,
                self.identity.public_key_b64,
            ),
            viewers=viewer_list,
            token=token,
            signins=Sessions(sid, session_ttl_s),
        )
        self.shares[sid] = share
        for listener in self.listeners:
            listener("added", share)
        return share, token

    def find(self, name_or_id: str) -> Share:
        share = self.shares.get(name_or_id) or next(
            (s for s in self.shares.values() if s.name == name_or_id), None
        )
        if share is None:
            active = ", ".join(sorted(s.name for s in self.shares.values())) or "none"
            raise UnknownShare(f"no active share named {name_or_id!r} (active: {active})")
        return share

    def remove(self, name_or_id: str, close: bool = True) -> Share:
        """Stop serving a share at once; ``close=False`` leaves closing its executor (which
        can take a moment) to the caller."""
        share = self.find(name_or_id)
        del self.shares[share.share_id]
        for listener in self.listeners:
            listener("removed", share)
        if share.notes_changed is not None:
            share.notes_changed.set()  # waiting panels return now
        if close:
            share.executor.close()
        return share

    def close(self) -> None:
        for sid in list(self.shares):
            self.remove(sid)

    def link(self, relay_url: str, share: Share, token: str, also: Sequence[str] = ()) -> str:
        base = relay_url.rstrip("/")
        return f"{base}/s/{share.share_id}/?t={token}{fragment(base, list(also))}"
