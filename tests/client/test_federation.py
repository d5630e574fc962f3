"""Many stores as one: three real shares on one relay, one of them stopped mid-test."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pytest

import p2p2p
from p2p2p.client.federation import SOURCE, StoreGroup, stack
from p2p2p.errors import ColumnTypesDiffer, QueryFailed, SourcesFailed

from ..helpers.sharing import Relay, Share

SITES = {"brig": 11, "sion": 23, "visp": 7}  # site -> number of cases


def site_store(path: Path, cases: int, extra: bool = False, text_year: bool = False) -> str:
    """The same schema at every site, nearly: ``extra`` adds a column, ``text_year`` keeps
    the year as text (as sites' schemas drift in real life)."""
    year = "'2024'" if text_year else "2024"
    con = duckdb.connect(str(path))
    con.execute(
        f"CREATE TABLE cases AS SELECT i AS case_id, ['ortho', 'cardio'][i % 2 + 1] AS department, "
        f"(i * 10.5)::DECIMAL(10,2) AS cost, {year} AS year FROM range({cases}) t(i)"
    )
    if extra:
        con.execute("ALTER TABLE cases ADD COLUMN ward VARCHAR DEFAULT 'north'")
    con.close()
    return str(path)


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("sites")
    return {
        site: site_store(
            root / f"{site}.duckdb", cases, extra=site == "sion", text_year=site == "visp"
        )
        for site, cases in SITES.items()
    }


@pytest.fixture(scope="module")
def shares(
    relay: Relay, stores: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Share]]:
    running = {
        site: Share(path, relay.url, tmp_path_factory.mktemp(site), "--name", site)
        for site, path in stores.items()
    }
    yield running
    for share in running.values():
        share.stop()


def local(path: str, sql: str) -> pd.DataFrame:
    con = duckdb.connect(path, read_only=True)
    try:
        return con.execute(sql).df()
    finally:
        con.close()


SQL = "SELECT department, count(*) AS cases, sum(cost) AS cost FROM cases GROUP BY 1 ORDER BY 1"


def test_one_question_to_every_share_equals_the_union_plus_source(
    shares: dict[str, Share], stores: dict[str, str]
) -> None:
    group = p2p2p.connect_many({site: share.link for site, share in shares.items()})
    try:
        frame = group.query(SQL)
    finally:
        group.close()
    assert list(frame.columns) == [SOURCE, "department", "cases", "cost"]
    expected = pd.concat(
        [local(path, SQL).assign(**{SOURCE: site}) for site, path in stores.items()]
    )
    got = frame.sort_values([SOURCE, "department"]).reset_index(drop=True)
    want = expected.sort_values([SOURCE, "department"]).reset_index(drop=True)
    assert got[SOURCE].tolist() == want[SOURCE].tolist()
    assert got["cases"].tolist() == want["cases"].tolist()
    assert got["cost"].astype(float).tolist() == pytest.approx(want["cost"].astype(float).tolist())
    sources = {s["source"]: s for s in frame.attrs["sources"]}
    assert all(s["ok"] for s in sources.values()) and sources["sion"]["rows"] == 2


def test_missing_columns_are_null_and_clashing_types_are_named(
    shares: dict[str, Share],
) -> None:
    group = p2p2p.connect_many({site: share.link for site, share in shares.items()})
    try:
        frame = group.query("SELECT * EXCLUDE (year) FROM cases WHERE case_id < 2 ORDER BY case_id")
        assert frame.columns[0] == SOURCE and "ward" in frame.columns
        wards = frame.groupby(SOURCE)["ward"].apply(lambda s: s.isna().all()).to_dict()
        assert wards == {"brig": True, "sion": False, "visp": True}
        # visp keeps the year as text: no silent casting, and the error names the
        # column, the stores and the cure.
        clash = "SELECT year, count(*) AS n FROM cases GROUP BY 1"
        with pytest.raises(ColumnTypesDiffer, match=r"'year' is int32 from brig but string") as e:
            group.query(clash)
        assert e.value.details["store"] == "visp" and "::VARCHAR" in str(e.value)
        fixed = group.query("SELECT year::INTEGER AS year, count(*) AS n FROM cases GROUP BY 1")
        assert fixed["n"].sum() == sum(SITES.values())
    finally:
        group.close()


def test_a_stopped_share_is_reported_not_dropped(
    relay: Relay, stores: dict[str, str], tmp_path: Path
) -> None:
    owners = {
        site: Share(path, relay.url, tmp_path / site, "--name", f"{site}-2")
        for site, path in stores.items()
    }
    group = p2p2p.connect_many({site: share.link for site, share in owners.items()})
    try:
        assert len(group.query(SQL)) == 6
        owners["sion"].stop()  # mid-test: one site goes offline
        frame = group.query(SQL)
        assert sorted(set(frame[SOURCE])) == ["brig", "visp"]
        info = group.last_info
        assert info.answered == ["brig", "visp"]
        (failed,) = info.failed
        assert failed.name == "sion" and failed.error == "offline", failed
        assert "sion" in info.describe("sites") and "2 of 3 stores answered" in info.describe("x")
        with pytest.raises(SourcesFailed, match="sion"):
            group.query(SQL, strict=True)
    finally:
        group.close()
        for share in owners.values():
            share.stop()


def test_the_command_line_asks_several_links(shares: dict[str, Share], tmp_path: Path) -> None:
    links = [shares[s].link for s in ("brig", "visp")]
    done = subprocess.run(
        [sys.executable, "-m", "p2p2p", "query", *links, SQL, "--format", "csv"],
        capture_output=True,
        text=True,
        timeout=120,
        env={"P2P2P_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert lines[0] == "_source,department,cases,cost" and len(lines) == 5
    assert "2 of 2 stores answered" in done.stderr


def test_local_combine_joins_a_remote_answer_with_your_own_frame(
    shares: dict[str, Share],
) -> None:
    group = p2p2p.connect_many({site: share.link for site, share in shares.items()})
    try:
        answered = group.query(SQL)
    finally:
        group.close()
    budget = pd.DataFrame({"site": ["brig", "sion", "visp"], "budget": [100.0, 5000.0, 10.0]})
    over = p2p2p.combine(
        "SELECT a._source AS site, sum(a.cost) AS cost, b.budget FROM answered a "
        "JOIN budget b ON b.site = a._source GROUP BY ALL HAVING sum(a.cost) > b.budget "
        "ORDER BY site",
        answered=answered,
        budget=budget,
    )
    assert over["site"].tolist() == ["brig", "visp"]
    with pytest.raises(QueryFailed, match="nope"):
        p2p2p.combine("SELECT * FROM nope")


# -- without sockets ----------------------------------------------------------------------
def test_stack_widens_numbers_and_names_what_does_not_combine() -> None:
    small = pa.table({"n": pa.array([1], pa.int32())})
    wide = pa.table({"n": pa.array([2.5], pa.float64()), "extra": ["x"]})
    both = stack([("a", small), ("b", wide)])
    assert both.column_names == [SOURCE, "n", "extra"]
    assert both.column("n").to_pylist() == [1.0, 2.5] and both.column("extra").to_pylist() == [
        None,
        "x",
    ]
    with pytest.raises(ColumnTypesDiffer, match="'n' is int32 from a but string from c"):
        stack([("a", small), ("c", pa.table({"n": ["one"]}))])
    # A store cannot pass its rows off as another's by sending a _source of its own, or
    # one that only looks like it.
    for fake in (SOURCE, "_source\u200b", "\uff3fsource"):
        spoof = stack([("a", small), ("evil", pa.table({fake: ["a"], "n": [9]}))])
        assert spoof.column(SOURCE).to_pylist() == ["a", "evil"]
        assert spoof.column("_source_from_store").to_pylist() == [None, "a"]


def test_what_a_store_wrote_is_shown_as_printable_text() -> None:
    from p2p2p.errors import P2P2PError, printable

    hostile = {"code": "query_failed", "message": "bad\x1b[2K\r\np2p2p: all stores answered\x1b[8m"}
    error = P2P2PError.from_dict(hostile)
    assert "\x1b" not in str(error) and "\n" not in str(error) and "\\x1b[2K" in str(error)
    (line,) = error._render_traceback_()
    assert line.count("\x1b") == 2  # our colour on, and off: nothing of theirs
    assert printable("x" * 5000).endswith("(3,000 more characters)")
    clash = {"code": "query_failed", "message": "m", "details": {"message": "twice"}}
    assert str(P2P2PError.from_dict(clash)) == "m"  # odd details: still an error of ours


def test_local_stores_group_and_a_missing_one(stores: dict[str, str], tmp_path: Path) -> None:
    group = StoreGroup(
        {"brig": f"local:{stores['brig']}", "gone": f"local:{tmp_path / 'gone.duckdb'}"}
    )
    try:
        frame = group.query("SELECT count(*) AS n FROM cases")
        assert frame[SOURCE].tolist() == ["brig"] and int(frame["n"][0]) == SITES["brig"]
        failed = {s["source"]: s for s in frame.attrs["sources"]}["gone"]
        assert not failed["ok"] and failed["error"] == "store_missing"
    finally:
        group.close()


def test_a_store_that_does_not_answer_in_time_is_reported(stores: dict[str, str]) -> None:
    slow = "SELECT count(*) AS n FROM range(20000000000) WHERE $slow OR true"
    group = StoreGroup({"brig": f"local:{stores['brig']}"}, timeout_s=0.5)
    try:
        frame = group.query(slow, {"slow": True}, timeout_s=5)
        assert frame.empty
        (failed,) = group.last_info.failed
        assert failed.error == "timeout" and "0.5 s" in str(failed.message)
    finally:
        group.close()
