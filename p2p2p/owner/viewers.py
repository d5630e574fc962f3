"""Who may see a share: its viewers list, and whether the share is open to invited keys only.

A share starts in *stealth* mode: whoever holds the link reads every table. In
*identified* mode (``--require-key``, or any ``--viewer``) a request is answered only
when it is signed by the key of a listed viewer who has not expired, and that viewer
reads only the tables the owner granted them (all, if none were named).

The list lives in the owner's data directory, ``viewers/<share id>.json`` (mode 0600),
so it outlives the process; ``p2p2p viewers add/remove`` edit it while the share runs,
and the running share reads the change within ``REFRESH_S``. A file that does not parse,
or names a bad key, stops the share from being served with it (``BadViewers``, naming
the file and the entry), rather than serving a list the owner did not write.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import os
import re
import secrets
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from ..errors import BadViewers, NotInvited
from ..identity import b64, fingerprint, unb64
from ..paths import private_dir, write_private_json

__all__ = [
    "REFRESH_S",
    "Invite",
    "Viewer",
    "ViewerList",
    "parse_duration",
    "parse_viewer",
    "viewers_path",
]

REFRESH_S = 0.05  # a removal or an expiry reaches the running share within this
INVITE_BYTES = 18  # 144 bits: an invite is one-time and short-lived
VERSION = 1
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}")
_TABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*(\.[A-Za-z_][A-Za-z0-9_$]*)?")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


@dataclasses.dataclass(frozen=True)
class Viewer:
    name: str
    key: bytes  # Ed25519 public key: what the viewer's requests are signed with
    tables: tuple[str, ...] | None = None  # None: every table and view
    expires: float | None = None  # Unix time; None: until removed
    added: float = 0.0
    via: str = ""  # how the key came: "" (the owner listed it), "invite", "browser invite"

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.key)

    def active(self, now: float) -> bool:
        return self.expires is None or now < self.expires

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "key": b64(self.key),
            "tables": list(self.tables) if self.tables is not None else None,
            "expires": self.expires,
            "added": self.added,
            "via": self.via,
        }

    @classmethod
    def from_dict(cls, data: Any, where: str = "") -> Viewer:
        if not isinstance(data, dict):
            raise BadViewers(f"{where}a viewer entry must be an object, got {data!r}")
        name = check_viewer_name(data.get("name"), where)
        tables = data.get("tables")
        expires = data.get("expires")
        if expires is not None and not isinstance(expires, int | float):
            raise BadViewers(f"{where}viewer {name!r}: expires must be a time, got {expires!r}")
        return cls(
            name=name,
            key=check_key(data.get("key"), f"{where}viewer {name!r}: "),
            tables=None if tables is None else check_tables(tables, f"{where}viewer {name!r}: "),
            expires=float(expires) if expires is not None else None,
            added=float(data.get("added") or 0.0),
            via=str(data.get("via") or "")[:32],
        )


def check_viewer_name(name: Any, where: str = "") -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise BadViewers(
            f"{where}a viewer's name must be 1-64 letters, digits, '_', '.', '@' or '-', "
            f"got {name!r}"
        )
    return name


def check_key(key: Any, where: str = "") -> bytes:
    """A viewer's public key as ``p2p2p keys`` prints it (base64url, 32 bytes)."""
    try:
        raw = unb64(key.strip()) if isinstance(key, str) else b""
    except ValueError:
        raw = b""
    if len(raw) != 32:
        raise BadViewers(
            f"{where}{key!r} is not a public key; ask the viewer for the 'public key' line "
            "that `p2p2p keys` prints (43 characters)"
        )
    return raw


def check_tables(tables: Any, where: str = "") -> tuple[str, ...]:
    if isinstance(tables, str):
        tables = [t for t in tables.split(",") if t.strip()]
    if not isinstance(tables, list | tuple) or not all(isinstance(t, str) for t in tables):
        raise BadViewers(f"{where}tables must be a list of names, got {tables!r}")
    names = tuple(t.strip() for t in tables)
    bad = [t for t in names if not _TABLE.fullmatch(t)]
    if bad:
        raise BadViewers(f"{where}{bad[0]!r} is not a table name (write name or schema.name)")
    return names


def parse_duration(text: str) -> float:
    """``7d``, ``36h``, ``90m``, ``2w``, ``1d12h`` → seconds."""
    text = text.strip().lower()
    parts = _DURATION.findall(text)
    if not parts or _DURATION.sub("", text).strip():
        raise BadViewers(f"{text!r} is not a duration (write it like 7d, 36h, 90m or 2w)")
    seconds = sum(float(n) * _UNITS[unit] for n, unit in parts)
    if seconds <= 0:
        raise BadViewers(f"{text!r} is not a duration longer than zero")
    return seconds


def parse_viewer(text: str, now: float | None = None) -> Viewer:
    """``--viewer NAME=KEY[:TABLE,TABLE...]``."""
    name, sep, rest = text.partition("=")
    if not sep:
        raise BadViewers(f"--viewer needs NAME=KEY or NAME=KEY:TABLE,..., got {text!r}")
    key, _, tables = rest.partition(":")
    return Viewer(
        name=check_viewer_name(name.strip(), "--viewer: "),
        key=check_key(key, f"--viewer {name.strip()}: "),
        tables=check_tables(tables, f"--viewer {name.strip()}: ") if tables else None,
        added=time.time() if now is None else now,
    )


def viewers_path(base_dir: Path, share_id: str) -> Path:
    return private_dir(base_dir / "viewers") / f"{share_id}.json"


class ViewerList:
    """One share's viewers file, kept in step with the disk (``refresh``)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.identified = False
        self.viewers: dict[str, Viewer] = {}
        self.invites: dict[str, Invite] = {}  # by the code's SHA-256
        self.url = ""  # the share's address without its token, for invite links
        self._stamp: tuple[int, int, int] | None = None
        self._checked = 0.0
        self.load()

    # -- reading ----------------------------------------------------------------
    def load(self) -> None:
        """Read the file (none yet: stealth mode, no viewers); refuse one that is wrong."""
        stamp = self._stamp_now()
        if stamp is None:
            self.identified, self.viewers, self.invites, self._stamp = False, {}, {}, None
            return
        where = f"{self.path}: "
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError) as exc:
            raise BadViewers(f"{where}not readable as JSON ({exc})") from None
        if not isinstance(data, dict) or not isinstance(data.get("viewers", []), list):
            raise BadViewers(f"{where}expected {{'identified': ..., 'viewers': [...]}}")
        viewers: dict[str, Viewer] = {}
        keys: set[bytes] = set()
        for entry in data.get("viewers", []):
            viewer = Viewer.from_dict(entry, where)
            if viewer.name in viewers or viewer.key in keys:
                raise BadViewers(f"{where}viewer {viewer.name!r} or its key is listed twice")
            viewers[viewer.name] = viewer
            keys.add(viewer.key)
        invites: dict[str, Invite] = {}
        for digest, entry in (data.get("invites") or {}).items():
            invites[str(digest)] = Invite.from_dict(entry, where)
        self.identified = bool(data.get("identified", False))
        self.viewers = viewers
        self.invites = invites
        self.url = str(data.get("url") or "")
        self._stamp = stamp

    def _stamp_now(self) -> tuple[int, int, int] | None:
        """What tells one version of the file from the next (each save is a new file)."""
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            return None
        return (stat.st_ino, stat.st_mtime_ns, stat.st_size)

    def refresh(self, now: float | None = None, force: bool = False) -> bool:
        """Re-read the file if it changed; at most every ``REFRESH_S``. True if it did.

        A file made wrong while the share runs keeps the share closed to everyone until
        it is right again (identified mode, no viewers), instead of serving an old list.
        """
        now = time.monotonic() if now is None else now
        if now - self._checked < REFRESH_S and not force:
            return False
        self._checked = now
        stamp = self._stamp_now()
        if stamp == self._stamp:
            return False
        try:
            self.load()
        except BadViewers:
            self.identified, self.viewers, self._stamp = True, {}, stamp
        return True

    def lookup(self, key: bytes, now: float | None = None) -> Viewer | None:
        now = time.time() if now is None else now
        for viewer in self.viewers.values():
            if viewer.key == key and viewer.active(now):
                return viewer
        return None

    def listing(self, now: float | None = None) -> list[dict[str, Any]]:
        now = time.time() if now is None else now
        return [
            {
                "name": v.name,
                "fingerprint": v.fingerprint,
                "tables": list(v.tables) if v.tables is not None else None,
                "expires": v.expires,
                "expired": not v.active(now),
                "added": v.added,
                "via": v.via,
            }
            for v in sorted(self.viewers.values(), key=lambda v: v.name)
        ]

    # -- writing ----------------------------------------------------------------
    def save(self) -> None:
        write_private_json(
            self.path,
            {
                "version": VERSION,
                "identified": self.identified,
                "url": self.url,
                "viewers": [
                    v.to_dict() for v in sorted(self.viewers.values(), key=lambda v: v.name)
                ],
                "invites": {d: i.to_dict() for d, i in self.invites.items()},
            },
        )
        self._stamp = self._stamp_now()

    @contextlib.contextmanager
    def changing(self) -> Iterator[None]:
        """Read, change and write the file as one step: the running share (redeeming an
        invite) and ``p2p2p viewers`` (adding someone) may write it at the same moment."""
        with open(self.path.with_name(f".{self.path.name}.lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                self.load()
                yield
                self.save()
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def add(self, viewers: Iterable[Viewer]) -> None:
        """Add (or replace, by name) viewers; a share with viewers is identified."""
        with self.changing():
            self._add(viewers)

    def _add(self, viewers: Iterable[Viewer]) -> None:
        for viewer in viewers:
            for other in list(self.viewers.values()):
                if other.key == viewer.key and other.name != viewer.name:
                    raise BadViewers(
                        f"that key is already listed as {other.name!r}; remove it first"
                    )
            self.viewers[viewer.name] = viewer
        self.identified = True

    def remove(self, name: str) -> Viewer:
        with self.changing():
            viewer = self.viewers.pop(name, None)
            if viewer is None:
                listed = ", ".join(sorted(self.viewers)) or "none"
                raise BadViewers(f"no viewer named {name!r} (listed: {listed})")
            # An invite not yet used for that name goes too.
            self.invites = {d: i for d, i in self.invites.items() if i.name != name}
        return viewer

    def require_key(self, identified: bool = True) -> None:
        with self.changing():
            self.identified = identified

    def set_url(self, url: str) -> None:
        with self.changing():
            self.url = url

    def invite(self, invite: Invite) -> str:
        """Keep a one-time invite; returns its code (shown once, kept as a hash)."""
        code = secrets.token_urlsafe(INVITE_BYTES)
        with self.changing():
            check_viewer_name(invite.name)
            if invite.name in self.viewers:
                raise BadViewers(f"{invite.name!r} is already a viewer; remove them first")
            self.invites = {d: i for d, i in self.invites.items() if i.name != invite.name}
            self.invites[_digest(code)] = invite
            self.identified = True
        return code

    def has_invite(self, code: str, now: float | None = None) -> bool:
        """Whether ``code`` is an invite not yet used and not expired (as last read)."""
        invite = self.invites.get(_digest(code))
        return invite is not None and (time.time() if now is None else now) < invite.valid_until

    def redeem(
        self, code: str, key: bytes, now: float | None = None, via: str = "invite"
    ) -> Viewer:
        """Turn an unused, unexpired invite into a viewer with ``key``; the invite is gone."""
        now = time.time() if now is None else now
        with self.changing():
            invite = self.invites.pop(_digest(code), None)
            if invite is None or now >= invite.valid_until:
                raise NotInvited(
                    "this invite is not valid: it was used already, has expired or was "
                    "withdrawn; ask the owner for a new one"
                )
            for other in self.viewers.values():
                if other.key == key:
                    raise BadViewers(f"your key is already listed, as {other.name!r}")
            viewer = Viewer(
                invite.name,
                key,
                invite.tables,
                now + invite.access_s if invite.access_s else None,
                now,
                via,
            )
            self._add([viewer])
        return viewer


@dataclasses.dataclass(frozen=True)
class Invite:
    """A one-time way in for one viewer, not yet used."""

    name: str
    valid_until: float  # the invite itself stops working then
    tables: tuple[str, ...] | None = None
    access_s: float | None = None  # how long the access lasts once enrolled; None: no end

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "valid_until": self.valid_until,
            "tables": list(self.tables) if self.tables is not None else None,
            "access_s": self.access_s,
        }

    @classmethod
    def from_dict(cls, data: Any, where: str = "") -> Invite:
        if not isinstance(data, dict) or not isinstance(data.get("valid_until"), int | float):
            raise BadViewers(f"{where}an invite entry is damaged: {data!r}")
        tables = data.get("tables")
        access = data.get("access_s")
        return cls(
            check_viewer_name(data.get("name"), where),
            float(data["valid_until"]),
            None if tables is None else check_tables(tables, where),
            float(access) if isinstance(access, int | float) else None,
        )


def _digest(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()
