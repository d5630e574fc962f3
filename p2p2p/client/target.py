"""Where a query goes: the one resolver for links, aliases and local paths.

Every caller (``p2p2p.connect``, ``%%p2pquery``, the ``p2p2p query`` command) resolves a
target here, in this order:

1. ``local:PATH`` is always a file on this machine;
2. ``http://…`` or ``https://…`` is a share link;
3. a name saved with ``%p2p connect LINK as NAME`` is that share, and one saved with
   ``%p2p group NAME A B …`` is that group of stores (``client.federation``);
4. anything else is a path to a DuckDB file.

An alias name has no ``:``, ``/`` or ``.``, so it can only clash with a bare file name in
the current directory; the alias wins, and ``local:NAME`` (or ``./NAME``) names the file.
"""

from __future__ import annotations

import dataclasses
import os
import urllib.parse

from ..errors import BadTarget
from ..protocol.shareid import ID_LENGTH
from . import aliases

__all__ = [
    "LOCAL_PREFIX",
    "GroupTarget",
    "Link",
    "LinkTarget",
    "LocalTarget",
    "Target",
    "is_link",
    "parse_link",
    "parse_target",
    "resolve",
    "resolve_any",
]

LOCAL_PREFIX = "local:"


ALSO = "also"  # the fragment key naming the other relays of a link


@dataclasses.dataclass(frozen=True)
class Link:
    """A share's link: ``http(s)://relay/s/<id>/?t=<token>[#also=relay2,relay3]``.

    Other relays carrying the same share travel in the fragment, which browsers never
    send to a server: a browser opens the first relay with one click, and notebook
    clients try the others when it stops answering (``client.remote``). A relay written
    without a scheme there (``r2.example:8443``) takes the first relay's scheme.
    """

    base: str  # http(s)://relay[:port]
    share_id: str
    token: str  # "" in an invite link: redeeming the invite hands it over
    invite: str = ""  # a one-time invite code (``&i=``), for identified shares
    also: tuple[str, ...] = ()  # the other relays' bases, in the owner's order

    def with_token(self, token: str) -> Link:
        """The share's own link, once an invite was redeemed."""
        return Link(self.base, self.share_id, token, also=self.also)

    @property
    def relays(self) -> tuple[str, ...]:
        return (self.base, *self.also)

    @property
    def full(self) -> str:
        """The whole link, token included: to be kept like a password."""
        return f"{self.share_url}/?t={self.token}{fragment(self.base, self.also)}"

    @property
    def share_url(self) -> str:
        return f"{self.base}/s/{self.share_id}"

    @property
    def display(self) -> str:
        """The link as it may be shown: without its access token."""
        return f"{self.share_url}/"


@dataclasses.dataclass(frozen=True)
class LocalTarget:
    path: str  # absolute
    label: str = ""  # as the user wrote it, for display

    @property
    def key(self) -> str:
        """What names this store within one session (one store per file)."""
        return self.path

    def __str__(self) -> str:
        return self.label or f"{LOCAL_PREFIX}{self.path}"


@dataclasses.dataclass(frozen=True)
class LinkTarget:
    link: Link
    alias: str = ""  # the saved name it was reached by, if any

    @property
    def key(self) -> str:
        """The alias, or the whole link (a new token is a new store)."""
        return self.alias or f"{self.link.share_url}/?t={self.link.token}&i={self.link.invite}"

    def __str__(self) -> str:
        return self.alias or self.link.display  # never the token


@dataclasses.dataclass(frozen=True)
class GroupTarget:
    """A named group of stores: every query goes to all of them (``client.federation``)."""

    name: str
    members: tuple[LocalTarget | LinkTarget, ...]

    @property
    def key(self) -> str:
        return f"group:{self.name}"

    def __str__(self) -> str:
        return self.name


Target = LocalTarget | LinkTarget
_B32 = set("abcdefghijklmnopqrstuvwxyz234567")


def resolve_any(text: str, cwd: str | None = None) -> Target | GroupTarget:
    """The store, or group of stores, ``text`` names."""
    members = aliases.group(text)
    if members is None:
        return resolve(text, cwd)
    return GroupTarget(text.strip(), tuple(resolve(m, cwd) for m in members))


def resolve(text: str, cwd: str | None = None) -> Target:
    """The store ``text`` names (see the module docstring for the order)."""
    text = text.strip()
    if aliases.group(text) is not None:
        raise BadTarget(f"{text!r} is a group of stores: query it with %%p2pquery {text}")
    if text.startswith(LOCAL_PREFIX):
        return parse_target(text, cwd)
    if is_link(text):
        return LinkTarget(parse_link(text))
    saved = aliases.resolve(text)
    if saved is not None:
        return LinkTarget(parse_link(saved), alias=text)
    target = parse_target(text, cwd)
    if aliases.NAME.fullmatch(text) and not os.path.exists(target.path):
        # A bare word is most likely a mistyped alias, not a file that is missing.
        raise BadTarget(
            f"no alias and no store file named {text!r}: %p2p aliases lists your aliases "
            f"(%p2p connect LINK as {text} makes one); local:PATH names a file"
        )
    return target


def is_link(text: str) -> bool:
    """Whether a target names a share by its link rather than a file here."""
    return text.strip().startswith(("http://", "https://"))


def parse_target(text: str, cwd: str | None = None) -> LocalTarget:
    """A local store: ``local:PATH`` or a bare path."""
    text = text.strip()
    if not text:
        raise BadTarget("no store given: use local:PATH or a path to a .duckdb file")
    if is_link(text):
        raise BadTarget(f"{text!r} is a share link, not a local store: use p2p2p.connect(link)")
    path = text.removeprefix(LOCAL_PREFIX)
    if not path:
        raise BadTarget("local: needs a path, e.g. local:sales.duckdb")
    path = os.path.abspath(os.path.join(cwd or os.getcwd(), os.path.expanduser(path)))
    return LocalTarget(path, label=text if text.startswith(LOCAL_PREFIX) else LOCAL_PREFIX + text)


def fragment(base: str, also: tuple[str, ...] | list[str]) -> str:
    """The ``#also=…`` part of a link naming ``also`` (empty for one relay)."""
    if not also:
        return ""
    scheme = base.split("://", 1)[0] + "://"
    return f"#{ALSO}=" + ",".join(url.removeprefix(scheme) for url in also)


def _also(base: str, text: str, fragment_text: str) -> tuple[str, ...]:
    found = urllib.parse.parse_qs(fragment_text).get(ALSO, [""])[-1]
    scheme = base.split("://", 1)[0]
    relays: list[str] = []
    for item in (part.strip().rstrip("/") for part in found.split(",")):
        if not item:
            continue
        url = urllib.parse.urlsplit(item if "://" in item else f"{scheme}://{item}")
        if url.scheme not in ("http", "https") or not url.netloc or url.path not in ("", "/"):
            raise BadTarget(f"{text!r} names a relay {item!r} in #{ALSO}= that is not host[:port]")
        relay = f"{url.scheme}://{url.netloc}"
        if relay != base and relay not in relays:
            relays.append(relay)
    return tuple(relays[: MAX_RELAYS - 1])


MAX_RELAYS = 8  # relays one link may name; more are ignored


def parse_link(text: str) -> Link:
    url = urllib.parse.urlsplit(text.strip())
    if url.scheme not in ("http", "https") or not url.netloc:
        raise BadTarget(
            f"{text!r} is not a share link (expected http(s)://relay/s/<share id>/?t=<token>)"
        )
    parts = [p for p in url.path.split("/") if p]
    if len(parts) < 2 or parts[0] != "s":
        raise BadTarget(f"{text!r} has no /s/<share id>/ path: copy the whole link the owner sent")
    share_id = parts[1]
    if len(share_id) != ID_LENGTH or not set(share_id) <= _B32:
        raise BadTarget(
            f"the share id in {text!r} is damaged ({len(share_id)} characters; expected {ID_LENGTH})"
        )
    query = urllib.parse.parse_qs(url.query)
    token = query.get("t", [""])[-1]
    invite = query.get("i", [""])[-1]
    if not token and not invite:
        raise BadTarget(f"{text!r} has no access token (?t=…): copy the whole link")
    base = f"{url.scheme}://{url.netloc}"
    return Link(base, share_id, token, invite, _also(base, text, url.fragment))
