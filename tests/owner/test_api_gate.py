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

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[str] = []

    async def request(
        self, upstream: str, share_id: str, method: str, path: str, *rest: Any
    ) -> Any:
        self.seen.append(path)
        return 200, {"content-type": "text/html"}, once(b"dashboard page")

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


def test_a_closing_share_answers_nothing_more(manager: ShareManager, store: str) -> None:
    share, token = share_of(manager, store)
    manager.closing(share)
    answer, _ = call(ShareApi(manager), request(share, query=f"t={token}"))
    assert answer.status == 404


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
    share, token = share_of(manager, store, upstream=DASHBOARD)
    dashboard = Recorder()
    api = ShareApi(manager, dashboard)
    answer, body = call(api, request(share, path, query=f"t={token}"))
    assert answer.status == 404 and json.loads(body)["error"] == "not_found"
    session, _ = call(api, request(share, path, query=f"t={token}"), websocket=True)
    assert session.status == 404
    assert dashboard.seen == []


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


def test_past_the_viewer_cap_a_page_load_is_busy(manager: ShareManager, store: str) -> None:
    share, token = share_of(manager, store, upstream=DASHBOARD)
    share.sessions = share.max_viewers
    dashboard = Recorder()
    page = request(share, "/", query=f"t={token}", headers={"Accept": "text/html"})
    page.headers["cookie"] = f"{COOKIE}={token}"
    page.query = ""
    answer, body = call(ShareApi(manager, dashboard), page)
    assert answer.status == 503 and answer.headers["retry-after"] == "5"
    assert b"Many people are looking" in body and dashboard.seen == []


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
    # The cookie alone is now enough; a wrong one is not.
    own = request(share, headers={"Cookie": f"other=1; {COOKIE}={token}"})
    assert call(api, own)[0].status == 200
    forged = request(share, headers={"Cookie": f"{COOKIE}=guess"})
    assert call(api, forged)[0].status == 403


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
