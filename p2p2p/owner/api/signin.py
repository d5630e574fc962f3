"""Browser sign-in for identified shares: the page, its script, challenge, login, enroll.

``owner.signin`` holds the sessions; this module turns them into HTTP. A successful
login or enrollment sets the session cookie (``signin.COOKIE``), scoped like the token
cookie to this share's path on its own origin, httpOnly; an enrollment also sets the
token cookie, since an invite link carries no token.
"""

from __future__ import annotations

import json
from pathlib import Path

from ...errors import BadParameters, NotFound, NotInvited
from ..shares import Share
from ..signin import COOKIE
from .gate import COOKIE as TOKEN_COOKIE
from .gate import COOKIE_MAX_AGE_S, SIGNIN_PATHS, share_cookie
from .http import Request, Response, json_response, script_response

__all__ = ["SCRIPT_PATH", "serve"]

SCRIPT_PATH = SIGNIN_PATHS[0]
_PACKAGE = Path(__file__).resolve().parents[2]
# The browser's key store (the one the notes signer uses), then the sign-in steps.
SCRIPT = (_PACKAGE / "widgets" / "browser_key.js").read_bytes() + (
    _PACKAGE / "owner" / "signin.js"
).read_bytes()
MAX_BODY = 4096


async def serve(share: Share, request: Request) -> Response:
    if share.signins is None or share.viewers is None:
        raise NotFound("this share does not sign browsers in")
    if request.path == SCRIPT_PATH:
        return script_response(SCRIPT, request)
    if request.method != "POST":
        raise NotFound(f"no such page {request.path}")
    if request.path == "/.p2p2p/challenge":
        return json_response(200, {"nonce": share.signins.challenge()})
    body = _json(request)
    proof = (body.get("key"), body.get("nonce"), body.get("signature"))
    if request.path == "/.p2p2p/login":
        secret = share.signins.login(share.viewers, *proof)
        cookies = [share_cookie(share, request, COOKIE, secret, int(share.signins.ttl_s))]
    else:
        secret = share.signins.enroll(share.viewers, body.get("invite"), *proof)
        cookies = [
            share_cookie(share, request, COOKIE, secret, int(share.signins.ttl_s)),
            share_cookie(share, request, TOKEN_COOKIE, share.token, COOKIE_MAX_AGE_S),
        ]
    session = share.signins.session(secret, share.viewers)
    if session is None:  # removed between the two lines above
        raise NotInvited("your access to this share has ended")
    answer = json_response(200, {"viewer": session.viewer})
    answer.headers["set-cookie"] = cookies
    answer.headers["cache-control"] = "no-store"
    return answer


def _json(request: Request) -> dict[str, object]:
    if len(request.body) > MAX_BODY:
        raise BadParameters("the sign-in request is too large")
    try:
        body = json.loads(request.body or b"{}")
    except ValueError:
        raise BadParameters("the sign-in request is not JSON") from None
    if not isinstance(body, dict):
        raise BadParameters("the sign-in request must be a JSON object")
    return body
