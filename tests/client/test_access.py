"""Identified mode through the public CLI and the client: who gets in, and what they see.

A real relay and a real ``p2p2p share`` with two viewers: ``cfo`` reads everything,
``consultant`` only ``regions`` and the ``yearly`` view. Viewers are added and removed
with ``p2p2p viewers`` while the share runs.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from p2p2p.client import parse_link
from p2p2p.client.remote import RemoteStore
from p2p2p.errors import NotInvited, QueryRefused
from p2p2p.identity import Identity

from ..helpers.sharing import Relay, Share, cli, origin_of, share_origin_request

CFO, CONSULTANT, LATECOMER, STRANGER = (Identity.generate() for _ in range(4))


@pytest.fixture(scope="module")
def owner_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("owner")


@pytest.fixture(scope="module")
def shared(relay: Relay, sample_store: str, owner_home: Path) -> Iterator[Share]:
    process = Share(
        sample_store,
        relay.url,
        owner_home,
        "--name",
        "finance",
        "--viewer",
        f"cfo={CFO.public_key_b64}",
        "--viewer",
        f"consultant={CONSULTANT.public_key_b64}:regions,yearly",
        "--viewer-expires",
        "consultant=7d",
    )
    yield process
    process.stop()


def store(share: Share, identity: Identity | None) -> RemoteStore:
    return RemoteStore(parse_link(share.link), identity=identity)


def test_a_listed_key_reads_everything_it_was_granted(shared: Share) -> None:
    assert len(store(shared, CFO).query("SELECT * FROM sales")) == 20_000
    tables = store(shared, CFO).query("SHOW TABLES")["name"].tolist()
    assert tables == ["products", "regions", "sales", "yearly"]


def test_an_unlisted_or_anonymous_caller_is_told_how_to_get_in(shared: Share) -> None:
    with pytest.raises(NotInvited, match=r"invited viewers only.*p2p2p keys") as info:
        store(shared, STRANGER).query("SELECT 1")
    assert STRANGER.fingerprint in str(info.value)
    with pytest.raises(NotInvited, match="not signed"):
        store(shared, None).query("SELECT 1")
    with pytest.raises(NotInvited):
        store(shared, STRANGER).schema()


def test_plain_http_and_browsers_are_refused_in_identified_mode(shared: Share) -> None:
    link = parse_link(shared.link)
    auth = {"Authorization": f"Bearer {link.token}"}
    answer = httpx.get(f"{link.share_url}/api/query", params={"sql": "SELECT 1"}, headers=auth)
    assert answer.status_code == 403 and answer.json()["error"] == "not_invited"
    # A browser is asked to sign in with its key (and gets nothing of the share before).
    own = f"{origin_of(link.share_id, link.base)}/s/{link.share_id}"
    url, host = share_origin_request(f"{own}/")
    page = httpx.get(url, headers={**auth, **host, "Accept": "text/html"})
    assert page.status_code == 200 and "invited viewers" in page.text
    assert "signin.js" in page.text and "sales" not in page.text
    url, host = share_origin_request(f"{own}/api/schema")
    api = httpx.get(url, headers={**auth, **host})
    assert api.status_code == 403 and api.json()["error"] == "not_invited"
    # Sign-in challenges are for holders of the link (or of a live invite) only: nobody
    # else can spend the share's bounded store of them.
    url, host = share_origin_request(f"{own}/.p2p2p/challenge")
    assert httpx.post(url, headers=host).status_code == 403
    assert httpx.post(url, headers={**host, "Authorization": f"Bearer {link.token}"}).json()[
        "nonce"
    ]
    assert httpx.post(url + "?i=made-up", headers=host).status_code == 403


def test_a_table_limited_viewer_sees_and_reaches_only_its_tables(shared: Share) -> None:
    consultant = store(shared, CONSULTANT)
    assert consultant.query("SHOW TABLES")["name"].tolist() == ["regions", "yearly"]
    names = [r["name"] for r in consultant.schema()["relations"]]
    assert names == ["regions", "yearly"]
    assert len(consultant.query("SELECT * FROM yearly")) > 0
    listed = consultant.query("SELECT table_name FROM information_schema.tables ORDER BY 1")
    assert listed["table_name"].tolist() == ["regions", "yearly"]
    for sql in (
        "SELECT * FROM sales",
        "SELECT * FROM duckdb_constraints()",
        "EXPLAIN SELECT * FROM yearly",
    ):
        with pytest.raises(QueryRefused) as info:
            consultant.query(sql)
        assert info.value.rule == "table-not-granted", sql


def test_viewers_added_and_removed_while_the_share_runs(shared: Share, owner_home: Path) -> None:
    with pytest.raises(NotInvited):
        store(shared, LATECOMER).query("SELECT 1")
    added = cli(owner_home, "viewers", "add", "finance", "auditor", LATECOMER.public_key_b64)
    assert added.returncode == 0, added.stderr
    assert "auditor" in added.stdout and LATECOMER.fingerprint in added.stdout
    time.sleep(0.2)
    assert store(shared, LATECOMER).query("SELECT 42 AS x")["x"].tolist() == [42]
    listing = json.loads(cli(owner_home, "viewers", "list", "finance", "--json").stdout)
    assert listing["identified"] is True
    assert [v["name"] for v in listing["viewers"]] == ["auditor", "cfo", "consultant"]
    assert listing["viewers"][2]["tables"] == ["regions", "yearly"]
    assert listing["viewers"][2]["expires"] > time.time() + 6 * 86400

    removed = cli(owner_home, "viewers", "remove", "finance", "auditor")
    assert removed.returncode == 0, removed.stderr
    time.sleep(0.2)
    with pytest.raises(NotInvited):
        store(shared, LATECOMER).query("SELECT 1")
    assert len(store(shared, CFO).query("SELECT 1")) == 1  # everyone else carries on


def test_removing_a_viewer_cuts_their_answer_in_flight(shared: Share, owner_home: Path) -> None:
    added = cli(owner_home, "viewers", "add", "finance", "temp", LATECOMER.public_key_b64)
    assert added.returncode == 0, added.stderr
    time.sleep(0.2)
    outcome: dict[str, object] = {}

    def long_query() -> None:
        try:
            store(shared, LATECOMER).query("SELECT sum(hash(i)) FROM range(30000000000) t(i)")
            outcome["error"] = None
        except Exception as exc:  # the assertion below says which
            outcome["error"] = exc
        outcome["at"] = time.monotonic()

    worker = threading.Thread(target=long_query)
    worker.start()
    time.sleep(1.5)  # the query is running on the owner's machine now
    assert worker.is_alive()
    removed = cli(owner_home, "viewers", "remove", "finance", "temp")
    assert removed.returncode == 0, removed.stderr
    cut = time.monotonic()
    worker.join(timeout=20)
    assert isinstance(outcome.get("error"), NotInvited), outcome
    assert float(outcome["at"]) - cut < 2.0  # type: ignore[arg-type]


def test_the_audit_log_names_viewers(shared: Share, owner_home: Path) -> None:
    store(shared, CONSULTANT).query("SELECT count(*) AS n FROM regions")
    shown = cli(owner_home, "audit", "show", "finance", "--viewer", "consultant")
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0].split()[:3] == ["time", "(UTC)", "who"]
    assert all("consultant" in line for line in lines[1:])
    assert any("SELECT count(*) AS n FROM regions" in line for line in lines)


def test_the_list_survives_a_restart_and_a_bad_file_stops_the_share(
    relay: Relay, sample_store: str, tmp_path: Path
) -> None:
    home = tmp_path / "owner"
    first = Share(
        sample_store, relay.url, home, "--name", "kept", "--viewer", f"cfo={CFO.public_key_b64}"
    )
    first.stop()
    again = Share(sample_store, relay.url, home, "--name", "kept")  # no --viewer this time
    try:
        assert len(store(again, CFO).query("SELECT 1")) == 1
        with pytest.raises(NotInvited):
            store(again, STRANGER).query("SELECT 1")
    finally:
        again.stop()
    # A viewers file edited by hand into something wrong: the share is not served with it.
    (path,) = (home / "data" / "viewers").glob("*.json")
    assert path.stat().st_mode & 0o777 == 0o600
    data = json.loads(path.read_text())
    data["viewers"][0]["key"] = "not-a-key"
    path.write_text(json.dumps(data))
    failed = cli(home, "share", sample_store, "--relay", relay.url, "--name", "kept")
    assert failed.returncode != 0
    assert str(path) in failed.stderr and "not a public key" in failed.stderr


def test_a_one_time_invite_lists_whoever_redeems_it(shared: Share, owner_home: Path) -> None:
    made = cli(
        owner_home, "viewers", "invite", "finance", "analyst", "--tables", "regions", "--json"
    )
    assert made.returncode == 0, made.stderr
    invite = json.loads(made.stdout)["invite"]
    assert "?i=" in invite and "t=" not in invite  # the link's token is not in it
    newcomer = Identity.generate()
    enrolled = RemoteStore(parse_link(invite), identity=newcomer)
    assert enrolled.enrolled == {"viewer": "analyst", "tables": ["regions"], "expires": None}
    assert len(enrolled.query("SELECT * FROM regions")) > 0
    with pytest.raises(QueryRefused):
        enrolled.query("SELECT * FROM sales")
    # What they keep is the share's own link; their key is now listed.
    again = RemoteStore(parse_link(enrolled.link.full), identity=newcomer)
    assert again.enrolled is None and len(again.query("SELECT 1")) == 1
    listing = json.loads(cli(owner_home, "viewers", "list", "finance", "--json").stdout)
    mine = [v for v in listing["viewers"] if v["fingerprint"] == newcomer.fingerprint]
    assert mine and mine[0]["via"] == "invite"
    # Used once: nobody else gets in with it, not even the first user again.
    with pytest.raises(NotInvited, match="not valid"):
        RemoteStore(parse_link(invite), identity=Identity.generate())
    with pytest.raises(NotInvited, match="not valid"):
        RemoteStore(parse_link(invite + "x"), identity=Identity.generate())
    cli(owner_home, "viewers", "remove", "finance", "analyst")


def test_an_expired_or_anonymous_invite_does_not_get_in(shared: Share, owner_home: Path) -> None:
    made = cli(owner_home, "viewers", "invite", "finance", "late", "--expires", "1s", "--json")
    invite = json.loads(made.stdout)["invite"]
    with pytest.raises(NotInvited, match="with your key"):
        RemoteStore(parse_link(invite), identity=None)
    time.sleep(1.2)
    with pytest.raises(NotInvited, match="not valid"):
        RemoteStore(parse_link(invite), identity=Identity.generate())
