"""One browser origin per share: ``<share id>.<relay host>``.

Browsers keep cookies, storage (the viewer's note-signing key in IndexedDB) and the
same-origin rule per origin. If every share sat on the relay's one origin, a hostile
dashboard of one share could read another share's pages with the viewer's cookie for
it, script a hidden frame of it, and have the viewer's browser key sign for it. So a
share's pages live on an origin of their own, and the relay's own origin serves
browsers only a redirect there.

On loopback this needs nothing: Chromium (and Firefox) resolve ``*.localhost`` to the
loopback address by themselves, so ``http://<id>.localhost:8765/`` just works. A public
relay needs a wildcard DNS name and certificate (``*.relay.example``) and says so with
``p2p2p relay --share-origins``; without them browsers fall back to the relay's origin,
as before, and docs/relay.md says what that gives up.

The relay tells the owner which kind of origin a request came on (``x-p2p2p-origin``:
``share`` or ``relay``) and, for the relay's own, where the share's origin is
(``x-p2p2p-share-origin``); the owner's gate decides what to do with that. Clients
cannot set these headers: only the relay's allow-listed ones are forwarded, and these
two are written by the relay itself.
"""

from __future__ import annotations

import ipaddress
import re

import tornado.httputil

__all__ = ["share_of_host", "share_origin"]

_SHARE_LABEL = re.compile(r"[a-z2-7]{32}")


def _split(host: str) -> tuple[str, str]:
    """``(name, ":port" or "")`` of a Host header (IPv6 literals kept in brackets)."""
    host = host.strip().lower()
    if host.startswith("["):
        name, _, rest = host.partition("]")
        return name + "]", rest
    name, colon, port = host.partition(":")
    return name, colon + port


def share_of_host(host: str) -> str | None:
    """The share id a Host header names as its first label (``<id>.relay.example``)."""
    name, _ = _split(host)
    label, dot, _rest = name.partition(".")
    return label if dot and _SHARE_LABEL.fullmatch(label) else None


def share_origin(
    request: tornado.httputil.HTTPServerRequest, share_id: str, enabled: bool
) -> str | None:
    """The origin a browser should use for ``share_id``, or None when there is none to
    give (a relay reached by a public IP address, or one without wildcard DNS)."""
    name, port = _split(request.headers.get("Host", ""))
    scheme = request.headers.get("X-Forwarded-Proto") or request.protocol
    try:
        address = ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        address = None
    if address is not None:
        if not address.is_loopback:
            return None  # an IP address has no subdomains
        name = "localhost"
    elif not enabled and name != "localhost" and not name.endswith(".localhost"):
        return None
    return f"{scheme}://{share_id}.{name}{port}"
