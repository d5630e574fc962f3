"""``p2p2p pull``: copies of the tables an owner allows copying, through a real share."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

import p2p2p
from p2p2p.client.pull import PULLS_TABLE, pull
from p2p2p.errors import PullRefused

from ..helpers.sharing import Relay, Share


def make_store(path: Path, rows: int) -> str:
    con = duckdb.connect(str(path))
    con.execute(
        f"CREATE TABLE cases AS SELECT i AS case_id, TIMESTAMP '2024-01-01' + INTERVAL (i) MINUTE "
        f"AS admitted, (i % 7)::INTEGER AS ward, (i * 1.5)::DECIMAL(10,2) AS cost FROM range({rows}) t(i)"
    )
    con.execute("CREATE TABLE secrets AS SELECT 42 AS x")
    con.close()
    return str(path)


def append(path: str, start: int, count: int) -> None:
    con = duckdb.connect(path)
    con.execute(
        f"INSERT INTO cases SELECT i, TIMESTAMP '2024-01-01' + INTERVAL (i) MINUTE, (i % 7)::INTEGER, "
        f"(i * 1.5)::DECIMAL(10,2) FROM range({start}, {start + count}) t(i)"
    )
    con.execute("UPDATE cases SET ward = 99 WHERE case_id = 0")  # a changed row
    con.close()


def rows_of(path: Path, sql: str) -> list[tuple[object, ...]]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def owner(store: str, relay: Relay, home: Path) -> Share:
    return Share(store, relay.url, home, "--name", "site", "--allow-pull", "cases")


def test_a_pull_copies_exactly_then_only_what_is_new(relay: Relay, tmp_path: Path) -> None:
    store = make_store(tmp_path / "site.duckdb", 2500)
    into = tmp_path / "copy.duckdb"
    home = tmp_path / "owner"
    share = owner(store, relay, home)
    try:
        remote = p2p2p.connect(share.link)
        assert remote.info()["allow_pull"] == ["cases"]
        (report,) = pull(remote, str(into), cursors={"cases": "admitted"}, page_rows=1000)
        assert report.rows == 2500 and report.pages == 3 and report.cursor == "admitted"
        assert rows_of(into, "SELECT count(*), sum(cost) FROM cases") == rows_of(
            Path(store), "SELECT count(*), sum(cost) FROM cases"
        )
        # Nothing new: a second pull copies nothing.
        (again,) = pull(remote, str(into))
        assert again.rows == 0
        # Refused: a table the owner did not allow, named with the owner's setting.
        with pytest.raises(PullRefused, match=r"does not allow pulling 'secrets'.*only cases"):
            pull(remote, str(into), tables=["secrets"])
        remote.close()
    finally:
        share.stop()
    append(store, 2500, 300)
    share = owner(store, relay, home)  # same owner and name: the same share id
    try:
        remote = p2p2p.connect(share.link)
        (report,) = pull(remote, str(into), keys={"cases": "case_id"})
        assert report.rows == 301  # the 300 new rows, and the last one again (by key)
        assert rows_of(into, "SELECT count(*), count(DISTINCT case_id) FROM cases") == [
            (2800, 2800)
        ]
        records = rows_of(
            into, f"SELECT share_id, table_name, cursor_column, rows FROM {PULLS_TABLE}"
        )
        assert {r[0] for r in records} == {share.info["share_id"]}
        assert sum(r[3] for r in records) == 2500 + 301
        remote.close()
    finally:
        share.stop()
    # Every pull is in the owner's audit log, as a pull.
    log = home / "data" / "audit" / f"{share.info['share_id']}.jsonl"
    channels = [json.loads(line).get("channel") for line in log.read_text().splitlines()]
    assert channels.count("pull") >= 5, channels


def test_an_interrupted_pull_resumes_without_duplicates(relay: Relay, tmp_path: Path) -> None:
    store = make_store(tmp_path / "site.duckdb", 3000)
    into = tmp_path / "copy.duckdb"
    share = owner(store, relay, tmp_path / "owner")
    try:
        remote = p2p2p.connect(share.link)

        def stop_after_first_page(_table: str, rows: int) -> None:
            raise KeyboardInterrupt  # Ctrl+C while the second page is on its way

        with pytest.raises(KeyboardInterrupt):
            pull(remote, str(into), page_rows=1000, progress=stop_after_first_page)
        assert rows_of(into, "SELECT count(*) FROM cases") == [(1000,)]
        (report,) = pull(remote, str(into), page_rows=1000)
        assert report.rows == 2000 and report.cursor == "rowid"
        assert rows_of(into, "SELECT count(*), count(DISTINCT case_id) FROM cases") == [
            (3000, 3000)
        ]
        # --full starts over.
        (over,) = pull(remote, str(into), full=True)
        assert over.rows == 3000 and rows_of(into, "SELECT count(*) FROM cases") == [(3000,)]
        remote.close()
    finally:
        share.stop()


def test_no_pulls_unless_the_owner_allows_and_the_command_line(
    relay: Relay, tmp_path: Path, sample_store: str
) -> None:
    closed = Share(sample_store, relay.url, tmp_path / "closed", "--name", "closed")
    try:
        with pytest.raises(PullRefused, match="allows no pulls"):
            pull(p2p2p.connect(closed.link), str(tmp_path / "x.duckdb"))
    finally:
        closed.stop()
    store = make_store(tmp_path / "site.duckdb", 120)
    share = owner(store, relay, tmp_path / "owner")
    try:
        command = [sys.executable, "-m", "p2p2p", "pull", share.link, "--into"]
        done = subprocess.run(
            [*command, str(tmp_path / "cli.duckdb"), "--cursor", "cases.case_id"],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert "cases: 120 new rows" in done.stdout
        assert rows_of(tmp_path / "cli.duckdb", "SELECT count(*) FROM cases") == [(120,)]
        refused = subprocess.run(
            [*command, str(tmp_path / "cli.duckdb"), "--tables", "secrets"],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert refused.returncode == 2 and "does not allow pulling 'secrets'" in refused.stderr
    finally:
        share.stop()
