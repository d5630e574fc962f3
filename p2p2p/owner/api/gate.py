"""The share's gate: the one check every HTTP request and WebSocket session passes.

It answers four questions before any endpoint runs: is the path a plain one (no
``.``/``..`` segments, no ``%``, ``\\`` or control characters: what is checked is exactly
what is forwarded), is the share live, does the request carry its access token (``?t=``, ``Authorization: Bearer`` or the share's
cookie), and may this path be asked for at all. A browser that followed the link gets
the token traded for an httpOnly cookie scoped to this share, and is sent to the same
page without the token in its address. That trade happens only on the share's own
browser origin (``relay.origins``): a browser that arrives on the relay's shared origin
is first sent to the share's, so no share's cookie, storage or pages ever sit on an
origin another share's pages can reach. Cookies open pages, never the API's own
endpoints (``/api/query`` and the like): a link clicked on another site cannot make the
viewer's browser run a query.

End-to-end requests (``/.p2p2p/e2e``) carry the token inside their encryption, where
the relay cannot see it; the gate lets them through to ``e2e``, which checks it there.
"""

from __future__ import annotations

import urllib.parse

from ... import pages
from ...errors import Forbidden, NotFound, NotInvited, ShareOffline
from ...protocol.tunnel import LIVE_PATH, ORIGIN_HEADER, SHARE_ORIGIN_HEADER
from ..shares import Share, ShareManager
from ..signin import COOKIE as SESSION_COOKIE
from .http import Request, Response, error_response, html_response, once

__all__ = [
    "COOKIE",
    "COOKIE_MAX_AGE_S",
    "E2E_PATH",
    "LIVE_PATHS",
    "OWN_PATHS",
    "PAGE_SCRIPTS",
    "SIGNIN_PATHS",
    "admit",
    "cookie_of",
    "plain_path",
    "share_cookie",
    "token_of",
]

COOKIE = "p2p2p_t"  # path-scoped to /s/<share id>/, so one name serves every share
COOKIE_MAX_AGE_S = 7 * 24 * 3600  # the token is checked on every request: revocation still works
E2E_PATH = "/.p2p2p/e2e"
# Answered by the API itself; every other path belongs to the share's dashboard, if any.
OWN_PATHS = ("/api/info", "/api/schema", "/api/query", E2E_PATH)
# The owner's own scripts in every dashboard page (the "is the share still live?" banner,
# the first view drawn before the widgets connect, and the explorer code it draws with)
# and the banner's question: the same for everyone and telling nothing the relay does not
# tell anyway, so they need no token (a relay of ours answers the question itself;
# owner.api.live).
PAGE_SCRIPTS = ("/.p2p2p/live.js", "/.p2p2p/preview.js", "/.p2p2p/explorer.js")
LIVE_PATHS = (*PAGE_SCRIPTS, LIVE_PATH)
# Signing a browser in to an identified share (owner.api.signin).
SIGNIN_PATHS = ("/.p2p2p/signin.js", "/.p2p2p/challenge", "/.p2p2p/login", "/.p2p2p/enroll")


def admit(manager: ShareManager, request: Request, websocket: bool = False) -> Share | Response:
    """The share, if the request may go on; otherwise the response that refuses it."""
    if not plain_path(request.path):
        # Before anything else: an allow-list matched on "/voila/files/../../x" would let
        # through whatever "x" turns into once a client library collapses the dots.
        return error_response(
            NotFound(
                "no such page: its path is not a plain one (., .., %, \\ or control characters)"
            )
        )
    share = manager.shares.get(request.share_id)
    if share is None:
        return _refuse(request, ShareOffline("this share is offline or has been revoked"))
    if not websocket and request.method == "POST" and request.path == E2E_PATH:
        return share  # the token travels inside the encryption
    if not websocket and request.method == "GET" and request.path in LIVE_PATHS:
        return share
    elsewhere = share_origin_for(request)
    navigating = not websocket and request.method == "GET" and request.wants_html
    from_url = request.arg("t")
    closed = identified(share)
    if closed and elsewhere is None and not websocket:
        # Signing a browser in: with the link's token (its cookie), or with an invite
        # that is still good (an invite link carries no token). Either way what proves
        # the browser is its key (owner.signin); the token or invite only keeps strangers
        # from spending the share's challenges.
        invite = request.arg("i") or ""
        invited = bool(invite) and share.viewers is not None and share.viewers.has_invite(invite)
        if request.path == SIGNIN_PATHS[0]:
            return share  # the page's script: the same for everyone
        if request.path in SIGNIN_PATHS and (invited or share.token_ok(token_of(request))):
            return share
        if navigating and invite and not from_url:
            return signin_page(share, enrolling=True)
    if not share.token_ok(token_of(request)):
        if navigating and elsewhere is not None and not from_url:
            # A page of the share opened on the relay's origin (an old bookmark, a typed
            # address): its cookie, if the browser has one, lives on the share's origin.
            return to_share_origin(share, request, elsewhere)
        return _refuse(request, Forbidden("the link's access token is missing, wrong or revoked"))
    if not _reachable(share, request.path, websocket):
        where = "no websocket here" if websocket else f"no such page {request.path}"
        return _refuse(request, NotFound(where))
    if from_url and navigating:
        if elsewhere is not None:
            return to_share_origin(share, request, elsewhere)
        return trade_token(share, request, from_url)
    if closed:
        # Only a browser signed in with a listed viewer's key gets the share's pages; the
        # API's own endpoints are for signed programs (E2E) only.
        session = None
        if share.signins is not None and share.viewers is not None:
            session = share.signins.session(cookie_of(request, SESSION_COOKIE), share.viewers)
        if session is None or request.path in OWN_PATHS[:3]:
            if navigating and session is None:
                return signin_page(share, enrolling=False)
            return _refuse(
                request,
                NotInvited(
                    "this share is open to invited viewers only: query it with "
                    "p2p2p.connect(link), which signs with your key (`p2p2p keys`), or sign "
                    "in with an invite in a browser"
                ),
            )
        request.viewer_session = session
    return share


def share_origin_for(request: Request) -> str | None:
    """Where a browser should see this share, if not where it is now (the relay says)."""
    if request.headers.get(ORIGIN_HEADER) != "relay":
        return None
    origin = request.headers.get(SHARE_ORIGIN_HEADER, "")
    return origin if origin.startswith(("http://", "https://")) else None


def to_share_origin(share: Share, request: Request, origin: str) -> Response:
    """The same page, token and all, on the share's own origin (which trades the token)."""
    query = f"?{request.query}" if request.query else ""
    return _see_other(f"{origin}/s/{share.share_id}{request.path}{query}")


def _see_other(location: str, cookie: str | None = None) -> Response:
    """A 303 that nothing caches and that tells the next page nothing of this address."""
    headers = {"location": location, "cache-control": "no-store", "referrer-policy": "no-referrer"}
    if cookie is not None:
        headers["set-cookie"] = cookie
    return Response(303, headers, once(b""))


def plain_path(path: str) -> bool:
    """Whether ``path`` means one thing to everyone who will read it: it starts with
    ``/``, has no empty, ``.`` or ``..`` segment, and no ``%`` (the relay has decoded it
    once already; a second decoding is someone else's), backslash or control character."""
    if not path.startswith("/") or "%" in path or "\\" in path:
        return False
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in path):
        return False
    segments = path[1:].split("/")
    return all(s not in (".", "..") for s in segments) and "" not in segments[:-1]


def _reachable(share: Share, path: str, websocket: bool) -> bool:
    """Whether a path may be asked for: the API's own, or the dashboard's allowed ones."""
    if path in OWN_PATHS:
        return not websocket
    if not share.upstream:
        return not websocket  # the API's 404 names the unknown endpoint
    return share.upstream_paths is None or share.upstream_paths.fullmatch(path) is not None


def identified(share: Share) -> bool:
    """Whether the share answers listed viewers' signed requests only (owner.viewers)."""
    if share.viewers is None:
        return False
    share.viewers.refresh()
    return share.viewers.identified


def _refuse(request: Request, error: ShareOffline | Forbidden | NotFound) -> Response:
    if request.wants_html and not isinstance(error, NotFound):
        if isinstance(error, ShareOffline):
            page = pages.OFFLINE
        elif isinstance(error, NotInvited):
            page = pages.INVITED_ONLY
        else:
            page = pages.BAD_TOKEN
        return html_response(error.status, page)
    return error_response(error)


def trade_token(share: Share, request: Request, token: str) -> Response:
    """Keep the token in an httpOnly cookie for this share's path; redirect to the
    same page without it (so it leaves the address bar, history and Referer)."""
    base = f"/s/{share.share_id}/"
    rest = [(k, v) for k, v in urllib.parse.parse_qsl(request.query) if k != "t"]
    location = (
        base + request.path.lstrip("/") + ("?" + urllib.parse.urlencode(rest) if rest else "")
    )
    return _see_other(location, share_cookie(share, request, COOKIE, token, COOKIE_MAX_AGE_S))


def share_cookie(share: Share, request: Request, name: str, value: str, max_age: int) -> str:
    """A cookie for this share's path only, httpOnly, and Secure behind HTTPS."""
    secure = "; Secure" if request.headers.get("x-forwarded-proto") == "https" else ""
    return (
        f"{name}={value}; Path=/s/{share.share_id}/; Max-Age={max_age}; HttpOnly; "
        f"SameSite=Lax{secure}"
    )


def token_of(request: Request) -> str | None:
    """The token a request carries: ``?t=``, a bearer header, or (for pages only) the
    share's cookie."""
    own_api = request.path in OWN_PATHS
    cookie = None if own_api else _cookie(request.headers.get("cookie", ""), COOKIE)
    return request.arg("t") or _bearer(request.headers.get("authorization", "")) or cookie


def cookie_of(request: Request, name: str) -> str | None:
    return _cookie(request.headers.get("cookie", ""), name)


def signin_page(share: Share, enrolling: bool) -> Response:
    return html_response(
        200, pages.signin(share.name, share.share_id, enrolling), pages.SIGNIN_HEADERS
    )


def _cookie(header: str, name: str) -> str | None:
    for part in header.split(";"):
        key, _, value = part.strip().partition("=")
        if key == name and value:
            return value
    return None


def _bearer(value: str) -> str | None:
    scheme, _, token = value.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token else None
