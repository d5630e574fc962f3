"""%share from a notebook: a real jupyter server with the extension as installed, real
kernels driven through the Jupyter API, a real relay where the test needs one."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb
import httpx
import pytest

import p2p2p
from p2p2p.client import parse_link
from p2p2p.errors import ShareOffline

from ..helpers.jupyter import JupyterServer, Kernel
from ..helpers.sharing import Relay, share_origin_request

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, sample_store: str) -> Iterator[JupyterServer]:
    root = tmp_path_factory.mktemp("notebooks")
    shutil.copy(sample_store, root / "store.duckdb")
    process = JupyterServer(root, tmp_path_factory.mktemp("owner-home"))
    yield process
    process.stop()


@pytest.fixture(scope="module")
def owner(server: JupyterServer) -> Iterator[Kernel]:
    kernel = server.kernel()
    kernel.run("%load_ext p2p2p")
    yield kernel
    kernel.close()


@pytest.fixture(scope="module")
def analyst(server: JupyterServer) -> Iterator[Kernel]:
    kernel = server.kernel()
    kernel.run("%load_ext p2p2p")
    yield kernel
    kernel.close()


def share(kernel: Kernel, args: str) -> str:
    """Run %share in the kernel; returns the link its widget shows."""
    result = kernel.run(f"_w = %share {args}\n_w")
    assert any("text/plain" in bundle for bundle in result["data"]), result
    link = kernel.value("_w.status['link']")
    assert isinstance(link, str)
    return link


def count(kernel: Kernel, target: str) -> int:
    result = kernel.run(f"%%p2pquery {target} --out _n\nSELECT count(*) AS n FROM sales")
    assert result["data"], result
    return int(kernel.value("int(_n['n'][0])"))


def browse(link: str, hops: int = 5) -> httpx.Response:
    """Follow a link as a browser does, ``*.localhost`` origins included."""
    cookies: dict[str, str] = {}
    url = link
    for _ in range(hops):
        direct, host = share_origin_request(url) if ".localhost" in url else (url, {})
        answer = httpx.get(
            direct, headers={"Accept": "text/html", **host}, cookies=cookies, timeout=60
        )
        if "set-cookie" in answer.headers:
            name, _, value = answer.headers["set-cookie"].split(";")[0].partition("=")
            cookies[name] = value
        if answer.status_code != 303:
            return answer
        url = str(httpx.URL(url).join(answer.headers["location"]))
    raise AssertionError(f"more than {hops} redirects from {link}")


def test_share_in_one_kernel_query_in_another(owner: Kernel, analyst: Kernel) -> None:
    link = share(owner, "store.duckdb --name clinic")
    assert "/s/" in link and "?t=" in link
    assert link.startswith("http://127.0.0.1:")  # the embedded relay: nothing else running
    # In a browser the link lands on the share's dashboard (Voila), token traded for a cookie.
    page = browse(link)
    assert page.status_code == 200 and "voila" in page.text.lower()
    assert "?t=" not in str(page.url)
    assert count(analyst, link) == 20_000
    # An alias, checked against the share id, survives in the analyst's config.
    said = analyst.run(f"%p2p connect {link} as brig")["stdout"]
    assert "brig" in said and "checked against the share id" in said
    assert count(analyst, "brig") == 20_000
    listing = analyst.run("%p2p aliases")["stdout"]
    assert "brig" in listing and "?t=" not in listing  # never prints the token
    shown = owner.run("%shares")["data"][-1]["text/plain"]
    assert "clinic" in shown
    # Notes: the owner's panel is live; an analyst's signed note shows up in it by itself.
    owner.run("_notes = %p2p notes clinic")
    said = analyst.run('%p2p note brig --on sales "Q3 looks odd"')["stdout"]
    assert "signed and kept by the owner" in said
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # bounded: the panel's long request returns at once
        bodies = owner.value("[n['body'] for n in _notes.notes]")
        if "Q3 looks odd" in bodies:
            break
        time.sleep(0.3)
    else:
        pytest.fail("the owner's notes panel did not show the new note")
    # A large result shows its progress while it streams, then the table in its place.
    big = analyst.run(
        "%%p2pquery brig\nSELECT i, md5(md5(md5(md5(i::VARCHAR)))) AS h FROM range(1000000) t(i)"
    )
    drawn = [str(state.get("value", "")) for state in big["widgets"]]
    assert any("receiving…" in html and "rows" in html for html in drawn), drawn[:5]
    texts = [bundle.get("text/plain", "") for bundle in big["data"]]
    assert "1,000,000 rows" in texts[-1]
    # The progress line made way for the table: emptied, then the table in its slot.
    assert texts[-2] == "", texts[:-1]


def test_identified_mode_from_the_notebook(owner: Kernel) -> None:
    from p2p2p.client.remote import RemoteStore
    from p2p2p.errors import NotInvited, QueryRefused
    from p2p2p.identity import Identity

    link = share(owner, "store.duckdb --name invited --require-key --no-dashboard")
    consultant = Identity.generate()
    remote = RemoteStore(parse_link(link), identity=consultant)
    with pytest.raises(NotInvited, match="invited viewers only"):
        remote.query("SELECT 1")
    said = owner.run(
        f"%p2p viewers add invited consultant {consultant.public_key_b64} --tables regions"
    )["stdout"]
    assert "consultant" in said and consultant.fingerprint in said
    time.sleep(0.3)
    assert len(remote.query("SELECT * FROM regions")) > 0
    with pytest.raises(QueryRefused) as refused:
        remote.query("SELECT * FROM sales")
    assert refused.value.rule == "table-not-granted"
    owner.run("_w.refresh()")
    assert owner.value("[v['name'] for v in _w.status['viewers']]") == ["consultant"]
    assert owner.value("_w.status['viewers'][0]['last_query'] is not None") is True
    assert "consultant (regions)" in owner.run("print(repr(_w))")["stdout"]
    listing = owner.run("%p2p viewers list invited")["stdout"]
    assert "consultant" in listing and "regions" in listing
    owner.run("%unshare invited")


def test_a_kernel_restart_keeps_the_share(owner: Kernel, analyst: Kernel) -> None:
    link = share(owner, "store.duckdb --name restart-me --no-dashboard")
    owner.restart()
    owner.run("%load_ext p2p2p")
    assert count(analyst, link) == 20_000
    assert "restart-me" in owner.run("%shares")["data"][-1]["text/plain"]
    owner.run("%unshare restart-me")


def test_unshare_revokes_at_once(owner: Kernel) -> None:
    link = share(owner, "store.duckdb --name gone-soon --no-dashboard")
    store = p2p2p.connect(link)
    assert int(store.query("SELECT 1 AS x")["x"][0]) == 1
    said = owner.run("%unshare gone-soon")["stdout"]
    assert "stopped: gone-soon" in said
    with pytest.raises(ShareOffline):
        store.query("SELECT 1")


def test_the_control_endpoint_answers_only_its_kernels(
    owner: Kernel, server: JupyterServer
) -> None:
    url = owner.value("__import__('os').environ['P2P2P_CONTROL_URL']")
    secret = owner.value("__import__('os').environ['P2P2P_CONTROL_SECRET']")
    assert url.startswith("http://127.0.0.1:") and not url.endswith(f":{server.port}")
    assert httpx.get(f"{url}/shares").status_code == 403
    wrong = {"Authorization": "Bearer " + "x" * len(secret)}
    assert httpx.get(f"{url}/shares", headers=wrong).status_code == 403
    # Jupyter's own token is no key to it either.
    assert (
        httpx.get(f"{url}/shares", headers={"Authorization": f"token {server.token}"}).status_code
        == 403
    )
    good = {"Authorization": f"Bearer {secret}"}
    # A web page cannot drive it even if it learnt the secret.
    page = {**good, "Origin": "http://evil.example"}
    assert httpx.get(f"{url}/shares", headers=page).status_code == 403
    bad_share = httpx.post(f"{url}/shares", headers=page, json={"path": "/etc/passwd"})
    assert bad_share.status_code == 403
    assert httpx.get(f"{url}/shares", headers=good).status_code == 200
    # Only existing DuckDB files can be shared.
    refused = httpx.post(f"{url}/shares", headers=good, json={"path": "/etc/passwd"})
    assert refused.status_code == 400 and "not a DuckDB database" in refused.json()["message"]


def test_the_tunnel_reaches_nothing_but_the_share(owner: Kernel, server: JupyterServer) -> None:
    link = parse_link(share(owner, "store.duckdb --name fenced --no-dashboard"))
    try:
        for path in (
            "/api/contents",
            "/api/kernels",
            "/api/sessions",
            "/terminals/websocket/1",
            "/../../api/kernels",
            "/%2e%2e/%2e%2e/api/kernels",
            "/files/store.duckdb",
            "/lab",
        ):
            answer = httpx.get(
                f"{link.share_url}{path}",
                params={"t": link.token, "token": server.token},
                headers={"Authorization": f"token {server.token}"},
            )
            assert answer.status_code in (400, 404), (path, answer.status_code, answer.text[:200])
            assert "kernel" not in answer.text.lower() or "no such endpoint" in answer.text
    finally:
        owner.run("%unshare fenced")


def test_a_store_open_for_writing_in_the_notebook_is_shared_as_a_snapshot(owner: Kernel) -> None:
    owner.run(
        "import duckdb\n"
        "con = duckdb.connect('built.duckdb')\n"
        "con.execute('CREATE OR REPLACE TABLE cases AS SELECT 42 AS x')"
    )
    said = owner.run("_w = %share built.duckdb --no-dashboard")["stdout"]
    assert "snapshot" in said and "--refresh" in said and "`con`" in said
    link = owner.value("_w.status['link']")
    store = p2p2p.connect(link)
    assert store.query("SELECT sum(x) AS s FROM cases")["s"][0] == 42
    owner.run("con.execute('INSERT INTO cases VALUES (1)')")
    assert store.query("SELECT count(*) AS n FROM cases")["n"][0] == 1  # still the snapshot
    owner.run("%share built.duckdb --refresh")
    assert store.query("SELECT count(*) AS n FROM cases")["n"][0] == 2  # same link, new copy
    owner.run("%unshare built")
    owner.run("con.close()")


def test_stopping_the_server_revokes_its_shares(tmp_path: Path, sample_store: str) -> None:
    relay = Relay()
    root = tmp_path / "root"
    root.mkdir()
    shutil.copy(sample_store, root / "store.duckdb")
    server = JupyterServer(root, tmp_path / "home", env={"P2P2P_RELAY": relay.url})
    try:
        kernel = server.kernel()
        kernel.run("%load_ext p2p2p")
        link = share(kernel, "store.duckdb --no-dashboard")
        assert link.startswith(relay.url)
        store = p2p2p.connect(link)
        assert int(store.query("SELECT 7 AS x")["x"][0]) == 7
        kernel.ws.close()
        server.stop()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:  # bounded: revocation is immediate on a clean stop
            try:
                store.query("SELECT 7")
            except ShareOffline:
                break
            time.sleep(0.1)
        else:
            pytest.fail("the share still answered after the server stopped")
        assert relay.health()["shares"] == 0
    finally:
        server.stop()
        relay.stop()


def test_the_embedded_relay_outlives_the_last_share(owner: Kernel) -> None:
    link = share(owner, "store.duckdb --name brief --no-dashboard")
    base = parse_link(link).base
    owner.run("%unshare --all")
    # Still there: the revoked link is told so, and the next share reuses the relay.
    assert httpx.get(f"{base}/healthz", timeout=5).json()["ok"]
    with pytest.raises(ShareOffline, match="offline"):
        p2p2p.connect(link).query("SELECT 1")
    again = share(owner, "store.duckdb --name brief --no-dashboard")
    assert parse_link(again).base == base
    owner.run("%unshare brief")


def test_a_relay_that_stopped_with_its_server_is_named(tmp_path: Path, sample_store: str) -> None:
    """Not a bare "connection refused": which process ran the relay, and that it stopped."""
    root = tmp_path / "root"
    root.mkdir()
    shutil.copy(sample_store, root / "store.duckdb")
    server = JupyterServer(root, tmp_path / "home")  # no relay configured: its own
    try:
        kernel = server.kernel()
        kernel.run("%load_ext p2p2p")
        link = share(kernel, "store.duckdb --no-dashboard")
        store = p2p2p.connect(link)
        kernel.ws.close()
        pid = server.proc.pid
        server.stop()
        for attempt in (lambda: store.query("SELECT 1"), lambda: p2p2p.connect(link)):
            with pytest.raises(ShareOffline) as info:
                attempt()
            message = str(info.value)
            assert "cannot reach the relay" in message and f"pid {pid}" in message, message
            assert "the Jupyter server" in message and "has stopped" in message, message
    finally:
        server.stop()


def test_a_notebook_share_may_allow_pulls_of_named_tables(
    owner: Kernel, sample_store: str, tmp_path: Path
) -> None:
    from p2p2p.client.pull import pull
    from p2p2p.errors import PullRefused

    link = share(owner, "store.duckdb --name pullable --no-dashboard --allow-pull sales")
    try:
        store = p2p2p.connect(link)
        (report,) = pull(store, str(tmp_path / "copy.duckdb"))
        con = duckdb.connect(sample_store, read_only=True)
        expected = con.execute("SELECT count(*) FROM sales").fetchall()[0][0]
        con.close()
        assert report.table == "sales" and report.rows == expected
        with pytest.raises(PullRefused, match="only sales"):
            pull(store, str(tmp_path / "copy.duckdb"), tables=["regions"])
        refused = owner.run("%share store.duckdb --name bad --allow-pull nosuch", allow_error=True)
        assert "nosuch" in str(refused["error"]) and "does not have" in str(refused["error"])
        gone = owner.run("%unshare bad", allow_error=True)  # nothing half made
        assert "no active share named 'bad'" in str(gone["error"]), gone
    finally:
        owner.run("%unshare pullable")


def test_connect_refuses_a_wrong_token_and_saves_nothing(owner: Kernel, analyst: Kernel) -> None:
    link = share(owner, "store.duckdb --name tokencheck --no-dashboard")
    try:
        wrong = link.rsplit("=", 1)[0] + "=not-the-token"
        refused = analyst.run(f"%p2p connect {wrong} as typo", allow_error=True)
        assert "token" in str(refused["error"]) and "wrong or revoked" in str(refused["error"])
        listed = analyst.run("%p2p aliases")["stdout"]
        assert "typo" not in listed
    finally:
        owner.run("%unshare tokencheck")


def test_rotate_link_on_a_live_share_from_the_notebook(owner: Kernel, analyst: Kernel) -> None:
    from p2p2p.errors import Forbidden

    kept = share(owner, "store.duckdb --name lasting --keep-link --no-dashboard")
    assert share(owner, "store.duckdb --name lasting --keep-link --no-dashboard") == kept
    assert count(analyst, kept) == 20_000
    rotated = share(owner, "store.duckdb --name lasting --rotate-link --no-dashboard")
    assert rotated != kept and rotated.split("?t=")[0] == kept.split("?t=")[0]
    assert count(analyst, rotated) == 20_000
    with pytest.raises(Forbidden):  # dead at once, with the share still running
        p2p2p.connect(kept).query("SELECT 1")
    owner.run("%unshare lasting")
    # Shared again later with --keep-link: the rotated link is the one that lasts.
    assert share(owner, "store.duckdb --name lasting --keep-link --no-dashboard") == rotated
    owner.run("%unshare lasting")


def test_a_note_to_a_share_whose_owner_is_away_waits_for_them(
    owner: Kernel, analyst: Kernel
) -> None:
    link = share(owner, "store.duckdb --name away --no-dashboard")
    assert count(analyst, link) == 20_000
    owner.run("%unshare away")
    said = analyst.run(f'%p2p note {link} --on sales "written while you were out"')["stdout"]
    assert "the owner is away" in said and "%p2p unqueue" in said, said
    dropped = analyst.run(f'%p2p note {link} "scratch that"')["stdout"]
    item = dropped.rsplit("%p2p unqueue ", 1)[1].split()[0]
    assert "taken back" in analyst.run(f"%p2p unqueue {item}")["stdout"]
    share(owner, "store.duckdb --name away --no-dashboard")  # back: the relay hands it over
    owner.run("_away = %p2p notes away")
    deadline = time.monotonic() + 15
    bodies: list[str] = []
    while time.monotonic() < deadline:
        bodies = owner.value("[n['body'] for n in _away.notes]")
        if bodies:
            break
        time.sleep(0.3)
    assert bodies == ["written while you were out"], bodies
    owner.run("%unshare away")
