"""The share's gate, in process: ``ShareApi`` called with plain ``Request`` objects.

No sockets and no subprocess: the share's executor is never asked to query (its worker
starts lazily), and the dashboard behind the share is a recorder that keeps every
request the gate let through to it.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import duckdb
import pytest

from p2p2p.identity import Identity
from p2p2p.owner.api import Request, Response, ShareApi
from p2p2p.owner.api.gate import COOKIE
from p2p2p.owner.api.http import once
from p2p2p.owner.shares import Share, ShareManager
from p2p2p.owner.upstream import Upstream
from p2p2p.owner.voila import VOILA_PATHS
from p2p2p.store.executor import Executor

DASHBOARD = "http://127.0.0.1:8866"  # never dialled: the recorder below answers instead


class Recorder(Upstream):
    """The share's dashboard, as far as the gate can tell: notes what reached it."""

    def __init__(self, status: int = 200) -> None:
        super().__init__()
        self.seen: list[str] = []
        self.status = status  # 503: Voila's kernel cap refused to start one more

    async def request(
        self, upstream: str, share_id: str, method: str, path: str, *rest: Any
    ) -> Any:
        self.seen.append(path)
        return self.status, {"content-type": "text/html"}, once(b"dashboard page")

    async def websocket(self, upstream: str, share_id: str, path: str, *rest: Any) -> Any:
        self.seen.append(path)
        raise OSError("a recorder holds no sessions")


@pytest.fixture()
def store(tmp_path: Path) -> str:
    path = str(tmp_path / "tiny.duckdb")
    with duckdb.connect(path) as con:
        con.execute("CREATE TABLE t AS SELECT 1 AS x")
    return path


@pytest.fixture()
def manager(tmp_path: Path) -> ShareManager:
    return ShareManager(Identity.generate(), tmp_path / "owner")


def share_of(manager: ShareManager, store: str, upstream: str = "") -> tuple[Share, str]:
    share, token = manager.add(store, name="tiny", executor=Executor(store), upstream=upstream)
    if upstream:
        share.upstream_paths = VOILA_PATHS
    return share, token


def request(share: Share, path: str = "/api/info", **fields: Any) -> Request:
    headers = {k.lower(): v for k, v in fields.pop("headers", {}).items()}
    return Request(
        share_id=share.share_id,
        method=fields.pop("method", "GET"),
        path=path,
        query=fields.pop("query", ""),
        headers=headers,
        body=fields.pop("body", b""),
    )


def call(api: ShareApi, req: Request, websocket: bool = False) -> tuple[Response, bytes]:
    async def go() -> tuple[Response, bytes]:
        answer = await (api.open_websocket(req) if websocket else api.handle(req))
        assert isinstance(answer, Response), "the gate let a websocket through"
        body = b"".join([piece async for piece in answer.body])
        return answer, body

    return asyncio.run(go())


def refused_both_ways(manager: ShareManager, store: str, path: str) -> str:
    """Ask for ``path`` with a valid token over HTTP and WebSocket; both must be 404s
    that never reached the dashboard. Returns the HTTP answer's message."""
    share, token = share_of(manager, store, upstream=DASHBOARD)
    dashboard = Recorder()
    api = ShareApi(manager, dashboard)
    answer, body = call(api, request(share, path, query=f"t={token}"))
    assert answer.status == 404 and json.loads(body)["error"] == "not_found"
    session, _ = call(api, request(share, path, query=f"t={token}"), websocket=True)
    assert session.status == 404 and dashboard.seen == []
    return str(json.loads(body)["message"])


def test_a_request_with_the_right_token_gets_the_share(manager: ShareManager, store: str) -> None:
    share, token = share_of(manager, store)
    api = ShareApi(manager)
    answer, body = call(api, request(share, query=f"t={token}"))
    assert answer.status == 200 and json.loads(body)["name"] == "tiny"
    bearer = request(share, headers={"Authorization": f"Bearer {token}"})
    assert call(api, bearer)[0].status == 200


@pytest.mark.parametrize("token", [None, "", "wrong", "x" * 200])
def test_a_missing_or_wrong_token_is_forbidden(
    manager: ShareManager, store: str, token: str | None
) -> None:
    share, _ = share_of(manager, store)
    api = ShareApi(manager)
    query = "" if token is None else f"t={token}"
    answer, body = call(api, request(share, query=query))
    assert answer.status == 403 and json.loads(body)["error"] == "forbidden"
    page, html = call(api, request(share, "/", query=query, headers={"Accept": "text/html"}))
    assert page.status == 403 and b"does not work" in html
    assert "default-src 'none'" in page.headers["content-security-policy"]


def test_a_revoked_share_is_offline_even_with_its_old_token(
    manager: ShareManager, store: str
) -> None:
    share, token = share_of(manager, store)
    api = ShareApi(manager)
    manager.remove(share.share_id)
    answer, body = call(api, request(share, query=f"t={token}"))
    assert answer.status == 404 and json.loads(body)["error"] == "offline"
    page, html = call(api, request(share, "/", query=f"t={token}", headers={"Accept": "text/html"}))
    assert page.status == 404 and b"offline" in html
    session, _ = call(api, request(share, "/api/kernels/x/channels", query=f"t={token}"), True)
    assert session.status == 404


def test_whether_a_share_is_live_is_answered_without_a_token(
    manager: ShareManager, store: str
) -> None:
    """Every dashboard page asks (owner.api.live); the answer tells nothing a relay does
    not, and after unsharing it is "offline"."""
    share, _token = share_of(manager, store, upstream=DASHBOARD)
    dashboard = Recorder()
    api = ShareApi(manager, dashboard)
    live, body = call(api, request(share, "/.p2p2p/live"))
    assert live.status == 200 and json.loads(body) == {"live": True}
    assert live.headers["cache-control"] == "no-store"
    script, code = call(api, request(share, "/.p2p2p/live.js"))
    assert script.status == 200 and b"This share is offline" in code
    assert script.headers["content-type"].startswith("text/javascript")
    # A returning page asks again and is told it has the script already.
    tag = script.headers["etag"]
    again, nothing = call(api, request(share, "/.p2p2p/live.js", headers={"If-None-Match": tag}))
    assert again.status == 304 and nothing == b"" and again.headers["etag"] == tag
    # The first view's scripts are the owner's own code too, the same for every page.
    drawn, code = call(api, request(share, "/.p2p2p/preview.js"))
    assert drawn.status == 200 and b'from "./explorer.js"' in code
    module, code = call(api, request(share, "/.p2p2p/explorer.js"))
    assert module.status == 200 and code.startswith(b"// The table explorer")
    assert module.headers["etag"] not in (tag, drawn.headers["etag"])
    assert dashboard.seen == []  # none of them reached the dashboard's Voila
    posted, _ = call(api, request(share, "/.p2p2p/live", method="POST"))
    assert posted.status == 403  # GET only: anything else needs the token like the rest
    socket, _ = call(api, request(share, "/.p2p2p/live"), websocket=True)
    assert socket.status == 403 and dashboard.seen == []
    manager.remove(share.share_id)
    gone, body = call(api, request(share, "/.p2p2p/live"))
    assert gone.status == 404 and json.loads(body)["error"] == "offline"


class PageRecorder(Recorder):
    """A dashboard whose page arrives in small pieces, its head split across them."""

    async def request(
        self, upstream: str, share_id: str, method: str, path: str, *rest: Any
    ) -> Any:
        self.seen.append(path)

        async def pieces() -> Any:
            for piece in (
                b"<!DOCTYPE html>\n<html><HE",
                b'AD lang="en">',
                b"<title>x</title>",
                b"</head>",
            ):
                yield piece

        return 200, {"content-type": "text/html; charset=utf-8"}, pieces()


def test_every_dashboard_page_gets_the_offline_banner_script(
    manager: ShareManager, store: str
) -> None:
    share, token = share_of(manager, store, upstream=DASHBOARD)
    api = ShareApi(manager, PageRecorder())
    page = request(share, "/", headers={"Accept": "text/html", "Cookie": f"{COOKIE}={token}"})
    answer, body = call(api, page)
    base = f"/s/{share.share_id}/.p2p2p"
    tag = (
        f'<script src="{base}/live.js"></script>'
        f'<script type="module" async src="{base}/preview.js"></script>'
    ).encode()
    assert answer.status == 200
    assert body == b'<!DOCTYPE html>\n<html><HEAD lang="en">' + tag + b"<title>x</title></head>"
    # Only the dashboard's page: its other files go through as they are.
    other = request(share, "/voila/static/x.html", headers={"Cookie": f"{COOKIE}={token}"})
    _answer, body = call(api, other)
    assert tag not in body


@pytest.mark.parametrize(
    "path",
    [
        "/api/contents",
        "/api/contents/secret.ipynb",
        "/api/kernels",
        "/api/sessions",
        "/api/terminals",
        "/terminals/websocket/1",
        "/lab",
        "/tree",
        "/voila/render/other.ipynb",
        "/api/kernels/not-a-uuid/channels",
    ],
)
def test_jupyter_paths_never_reach_the_dashboard(
    manager: ShareManager, store: str, path: str
) -> None:
    message = refused_both_ways(manager, store, path)
    assert message  # a 404 naming the page, over HTTP and WebSocket alike


def test_an_allowed_dashboard_path_is_forwarded(manager: ShareManager, store: str) -> None:
    share, token = share_of(manager, store, upstream=DASHBOARD)
    dashboard = Recorder()
    api = ShareApi(manager, dashboard)
    kernel = "/api/kernels/0f9e8d7c-6b5a-4392-8170-6f5e4d3c2b1a/channels"
    answer, body = call(api, request(share, "/", query=f"t={token}"))
    assert answer.status == 200 and body == b"dashboard page"
    session, _ = call(api, request(share, kernel, query=f"t={token}"), websocket=True)
    assert session.status == 502  # past the gate; the recorder holds no sessions
    assert dashboard.seen == ["/", kernel]
    refused, _ = call(api, request(share, "/", query="t=wrong"))
    assert refused.status == 403 and dashboard.seen == ["/", kernel]


def test_past_the_kernel_cap_a_page_load_is_busy(manager: ShareManager, store: str) -> None:
    share, token = share_of(manager, store, upstream=DASHBOARD)
    page = request(share, "/", headers={"Accept": "text/html", "Cookie": f"{COOKIE}={token}"})
    answer, body = call(ShareApi(manager, Recorder(status=503)), page)
    assert answer.status == 503 and answer.headers["retry-after"] == "5"
    assert b"Many people are looking" in body and b"dashboard page" not in body


def test_open_sessions_do_not_make_the_share_busy(manager: ShareManager, store: str) -> None:
    """One viewer's many websockets must not lock the others out: only the kernel cap,
    which lives where kernels are made, decides."""
    share, token = share_of(manager, store, upstream=DASHBOARD)
    share.sessions = 10 * share.max_viewers
    page = request(share, "/", headers={"Accept": "text/html", "Cookie": f"{COOKIE}={token}"})
    answer, body = call(ShareApi(manager, Recorder()), page)
    assert answer.status == 200 and body == b"dashboard page"


@pytest.mark.parametrize(
    "path",
    [
        "/voila/files/../../api/kernels",
        "/voila/static/../../api/contents",
        "/voila/files/./x",
        "/voila/files//etc/passwd",
        "/voila/files/%2e%2e/%2e%2e/api/kernels",
        "/voila/files/%252e%252e/api/kernels",
        "/voila/files/..%5c..%5capi",
        "/voila/files/..\\..\\api",
        "/voila/files/x\x00.ipynb",
        "api/info",
    ],
)
def test_paths_that_are_not_plain_are_refused_before_anything(
    manager: ShareManager, store: str, path: str
) -> None:
    assert "not a plain one" in refused_both_ways(manager, store, path)


def test_a_browser_trades_the_token_for_a_cookie_on_a_clean_url(
    manager: ShareManager, store: str
) -> None:
    share, token = share_of(manager, store)
    api = ShareApi(manager)
    browser = {"Accept": "text/html,application/xhtml+xml"}
    answer, _ = call(api, request(share, "/", query=f"t={token}&view=cases", headers=browser))
    assert answer.status == 303
    assert answer.headers["location"] == f"/s/{share.share_id}/?view=cases"
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}={token};")
    for attribute in ("HttpOnly", "SameSite=Lax", f"Path=/s/{share.share_id}/"):
        assert attribute in cookie
    assert "Secure" not in cookie  # plain HTTP here; behind HTTPS the relay says so
    assert answer.headers["referrer-policy"] == "no-referrer"


def test_the_cookie_opens_pages_but_never_the_api(manager: ShareManager, store: str) -> None:
    """A link on another site can make the browser send its (Lax) cookie along: that must
    open nothing that runs a query."""
    share, token = share_of(manager, store, upstream=DASHBOARD)
    dashboard = Recorder()
    api = ShareApi(manager, dashboard)
    own = request(share, "/", headers={"Cookie": f"other=1; {COOKIE}={token}"})
    assert call(api, own)[0].status == 200 and dashboard.seen == ["/"]
    forged = request(share, "/", headers={"Cookie": f"{COOKIE}=guess"})
    assert call(api, forged)[0].status == 403
    for path in ("/api/query", "/api/info", "/api/schema"):
        sneaky = request(share, path, query="sql=SELECT+1", headers={"Cookie": f"{COOKIE}={token}"})
        answer, body = call(api, sneaky)
        assert answer.status == 403 and json.loads(body)["error"] == "forbidden", path
    bearer = request(share, "/api/info", headers={"Authorization": f"Bearer {token}"})
    assert call(api, bearer)[0].status == 200


RELAY_ORIGIN = "x-p2p2p-origin"
SHARE_ORIGIN = "x-p2p2p-share-origin"


def test_a_browser_on_the_relays_origin_is_sent_to_the_shares_own(
    manager: ShareManager, store: str
) -> None:
    share, token = share_of(manager, store)
    own_origin = f"http://{share.share_id}.localhost:8765"
    arriving = {"Accept": "text/html", RELAY_ORIGIN: "relay", SHARE_ORIGIN: own_origin}
    req = request(share, "/", query=f"t={token}&view=cases", headers=arriving)
    answer, _ = call(ShareApi(manager), req)
    assert answer.status == 303 and "set-cookie" not in answer.headers  # no cookie here
    assert answer.headers["location"] == f"{own_origin}/s/{share.share_id}/?t={token}&view=cases"
    # There, on its own origin, the token becomes the cookie.
    there = {"Accept": "text/html", RELAY_ORIGIN: "share"}
    answer, _ = call(ShareApi(manager), request(share, "/", query=f"t={token}", headers=there))
    assert answer.status == 303 and answer.headers["set-cookie"].startswith(f"{COOKIE}={token};")
    assert answer.headers["location"] == f"/s/{share.share_id}/"


def test_without_an_origin_of_its_own_the_share_keeps_the_relays(
    manager: ShareManager, store: str
) -> None:
    """A relay reached by a public IP address has no subdomains to give: browsers stay on
    its origin, as before (docs/relay.md says what that gives up)."""
    share, token = share_of(manager, store)
    arriving = {"Accept": "text/html", RELAY_ORIGIN: "relay"}
    answer, _ = call(ShareApi(manager), request(share, "/", query=f"t={token}", headers=arriving))
    assert answer.status == 303 and "set-cookie" in answer.headers
    odd = {**arriving, SHARE_ORIGIN: "javascript:alert(1)"}
    answer, _ = call(ShareApi(manager), request(share, "/", query=f"t={token}", headers=odd))
    assert answer.headers["location"].startswith("/s/")  # only http(s) origins are followed


def test_pages_may_not_be_framed(manager: ShareManager, store: str) -> None:
    share, _ = share_of(manager, store)
    answer, _ = call(ShareApi(manager), request(share, "/", headers={"Accept": "text/html"}))
    assert answer.status == 403
    assert answer.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]


def test_the_cookie_is_secure_behind_https(manager: ShareManager, store: str) -> None:
    share, token = share_of(manager, store)
    headers = {"Accept": "text/html", "X-Forwarded-Proto": "https"}
    answer, _ = call(ShareApi(manager), request(share, "/", query=f"t={token}", headers=headers))
    assert answer.status == 303 and "; Secure" in answer.headers["set-cookie"]


def test_a_program_is_never_redirected(manager: ShareManager, store: str) -> None:
    share, token = share_of(manager, store)
    answer, _ = call(ShareApi(manager), request(share, query=f"t={token}"))
    assert answer.status == 200 and "set-cookie" not in answer.headers


def test_another_shares_token_does_not_open_this_one(
    manager: ShareManager, store: str, tmp_path: Path
) -> None:
    share, _ = share_of(manager, store)
    _other, other_token = manager.add(store, name="other", executor=Executor(store))
    answer, _ = call(ShareApi(manager), request(share, query=f"t={other_token}"))
    assert answer.status == 403


def test_e2e_with_a_garbled_body_is_refused_without_a_token(
    manager: ShareManager, store: str
) -> None:
    share, _ = share_of(manager, store)
    req = request(share, "/.p2p2p/e2e", method="POST", body=b"\x00" * 100)
    answer, body = call(ShareApi(manager), req)
    assert answer.status == 400 and json.loads(body)["error"] == "tampered"


def test_an_unknown_endpoint_is_named(manager: ShareManager, store: str) -> None:
    share, token = share_of(manager, store)
    answer, body = call(ShareApi(manager), request(share, "/api/nope", query=f"t={token}"))
    assert answer.status == 404 and "/api/nope" in json.loads(body)["message"]


def test_a_key_holder_remark_is_the_owners_words_not_the_clients(
    manager: ShareManager, store: str
) -> None:
    from p2p2p.identity import Identity as Key
    from p2p2p.owner.api.notes import notes_op
    from p2p2p.protocol import notes

    share, _ = share_of(manager, store)
    author = Key.generate()

    def post(text: str, claim: str) -> dict[str, Any]:
        note = notes.sign(author, notes.draft(share.share_id, author.public_key, "v", text))
        work = notes.prove_work(note, notes.WORK_BASE_BITS)
        message = {"note": note, "key_holder": claim, "work": work}
        return asyncio.run(notes_op(share, "post_note", message))["note"]

    assert post("one", "✓ verified · signed by the owner's own key")["via"] is None
    assert post("two", "visit")["via"] == "visit"


def test_a_tokenless_page_on_the_relays_origin_leads_to_the_shares_own(
    manager: ShareManager, store: str
) -> None:
    share, _ = share_of(manager, store)
    own_origin = f"http://{share.share_id}.localhost:8765"
    arriving = {"Accept": "text/html", RELAY_ORIGIN: "relay", SHARE_ORIGIN: own_origin}
    answer, _ = call(ShareApi(manager), request(share, "/", headers=arriving))
    assert (
        answer.status == 303 and answer.headers["location"] == f"{own_origin}/s/{share.share_id}/"
    )
    wrong, html = call(ShareApi(manager), request(share, "/", query="t=nope", headers=arriving))
    assert wrong.status == 403 and b"does not work" in html  # a wrong token is not sent on
