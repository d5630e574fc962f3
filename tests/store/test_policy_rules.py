"""The lockdown rules on their own, without a worker (DuckDB only parses here)."""

from __future__ import annotations

import json
from typing import Any

import duckdb
import pytest

from p2p2p.errors import QueryRefused, WorkerCrashed
from p2p2p.store.pipe import HEADER, Kind, encode, parse_header
from p2p2p.store.policy import Catalog, check_kinds, check_text, check_tree, explain_inner

CATALOG = Catalog.of("store", [("main", "sales"), ("main", "Regions"), ("hr", "staff")])


def tree(sql: str) -> dict[str, Any]:
    con = duckdb.connect()
    (text,) = con.execute("SELECT json_serialize_sql(?::VARCHAR)", [sql]).fetchall()[0]
    return json.loads(text)


def refused(sql: str) -> str:
    with pytest.raises(QueryRefused) as info:
        check_tree(tree(sql), CATALOG)
    return info.value.rule


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM sales",
        "SELECT * FROM regions",  # identifiers are case-insensitive
        "SELECT * FROM store.sales",
        "SELECT * FROM store.main.sales",
        "SELECT * FROM hr.staff",
        "WITH x AS (SELECT 1 AS a) SELECT * FROM x",
        "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 5) SELECT * FROM r",
        "SELECT * FROM range(10)",
        "SELECT * FROM information_schema.tables",
        "SUMMARIZE sales",
        "DESCRIBE sales",
        "SHOW TABLES",
        "SELECT * FROM (SELECT * FROM sales) s JOIN regions USING (region)",
        "SELECT lower(region) FROM sales ORDER BY 1 NULLS LAST",
        "WITH sales AS (SELECT * FROM sales WHERE region = 'east') SELECT count(*) FROM sales",
        "WITH a AS (SELECT 1 AS x), b AS (SELECT * FROM a) SELECT * FROM b",
    ],
)
def test_reads_of_the_store_pass(sql: str) -> None:
    check_tree(tree(sql), CATALOG)


@pytest.mark.parametrize(
    ("sql", "rule"),
    [
        ("SELECT * FROM read_csv('/etc/passwd')", "table-function-not-allowed"),
        ("SELECT * FROM '/etc/passwd'", "table-not-in-store"),
        ("SELECT * FROM other.sales", "table-not-in-store"),
        ("SELECT * FROM system.main.sales", "table-not-in-store"),
        ("SELECT * FROM staff", "table-not-in-store"),  # not on the search path
        ("SELECT current_setting('allowed_paths')", "function-not-allowed"),
        ("SELECT getenv('HOME')", "function-not-allowed"),
        ("SELECT * FROM query('SELECT 1')", "table-function-not-allowed"),
        ("WITH d AS (DELETE FROM sales RETURNING *) SELECT * FROM d", "data-modifying-subquery"),
        ("SELECT * FROM sales AT (VERSION => 1)", "time-travel"),
        ("SELECT * FROM pg_catalog.pg_settings", "table-not-in-store"),
        # Inside a plain CTE its own name is the catalog object, not the CTE.
        ("WITH pg_settings AS (FROM pg_settings) SELECT * FROM pg_settings", "table-not-in-store"),
        ('WITH "x.csv" AS (FROM "x.csv") FROM "x.csv"', "table-not-in-store"),
        # A CTE cannot see a later sibling: that name is the catalog object too.
        (
            "WITH a AS (FROM pg_database), pg_database AS (SELECT 1) SELECT * FROM a",
            "table-not-in-store",
        ),
        # A CTE name only shields references inside its own WITH, never a file read elsewhere.
        ("SELECT * FROM (WITH x AS (SELECT 1) SELECT * FROM x), 'x'", "table-not-in-store"),
    ],
)
def test_reaching_outside_the_store_is_refused(sql: str, rule: str) -> None:
    assert refused(sql) == rule


def test_deep_nesting_is_refused_not_crashed() -> None:
    sql = "SELECT * FROM " + "(SELECT * FROM " * 150 + "sales" + ") t" * 150
    assert refused(sql) == "too-complex"


def test_text_rules() -> None:
    with pytest.raises(QueryRefused, match="NUL") as info:
        check_text("SELECT 1\x00; DROP TABLE sales", 1000)
    assert info.value.rule == "nul-byte"
    with pytest.raises(QueryRefused) as info:
        check_text("SELECT 1" + " " * 100, 50)
    assert info.value.rule == "sql-too-long"
    with pytest.raises(QueryRefused):
        check_text("  \n ", 50)


def test_kind_rules() -> None:
    check_kinds(["StatementType.SELECT"])
    with pytest.raises(QueryRefused) as info:
        check_kinds(["StatementType.SELECT", "StatementType.SELECT"])
    assert info.value.rule == "one-statement"
    with pytest.raises(QueryRefused) as info:
        check_kinds(["StatementType.COPY"])
    assert info.value.rule == "read-only-kind"
    assert "COPY" in str(info.value)


def offsets(sql: str) -> list[int]:
    return [o for o, kind in duckdb.tokenize(sql) if kind != duckdb.token_type.comment]


def test_explain_inner_skips_comments_and_analyze() -> None:
    sql = "EXPLAIN /* note */ ANALYZE SELECT * FROM sales"
    assert explain_inner(sql, offsets(sql)) == "SELECT * FROM sales"
    sql = "EXPLAIN (FORMAT json) SELECT 1"
    with pytest.raises(QueryRefused) as info:
        explain_inner(sql, offsets(sql))
    assert info.value.rule == "explain-options"


def test_frames_refuse_unknown_kinds_and_oversize() -> None:
    frame = encode(Kind.END, b"{}")
    assert parse_header(frame[: HEADER.size], 10) == (Kind.END, 2)
    with pytest.raises(WorkerCrashed, match="unknown frame kind"):
        parse_header(HEADER.pack(250, 0), 10)
    with pytest.raises(WorkerCrashed, match="cap"):
        parse_header(HEADER.pack(Kind.DATA, 11), 10)
