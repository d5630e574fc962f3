"""A caller granted some tables reads only those, and learns nothing of the others.

Real sandboxed workers on the sample store: ``yearly`` is a view over ``sales``; a caller
granted ``yearly`` and ``regions`` may read the view (the owner chose to show that
aggregate) but not ``sales`` or ``products``, however it asks.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from p2p2p.errors import QueryRefused
from p2p2p.samples.sales import build_sample_store
from p2p2p.store.executor import Executor
from p2p2p.store.limits import Limits

GRANT = ["yearly", "Regions"]  # names are case-insensitive


@pytest.fixture(scope="module")
def executor(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Executor]:
    path = build_sample_store(Path(tmp_path_factory.mktemp("grants")) / "store.duckdb")
    with Executor(path, Limits(timeout_s=20, workers=1)) as ex:
        yield ex


def rows(executor: Executor, sql: str, tables: list[str] | None = GRANT) -> list[tuple]:
    table, _ = executor.query_arrow(sql, tables=tables)
    return [tuple(r.values()) for r in table.to_pylist()]


def refusal(executor: Executor, sql: str) -> QueryRefused:
    with pytest.raises(QueryRefused) as info:
        executor.query_arrow(sql, tables=GRANT)
    return info.value


def test_granted_tables_and_views_answer(executor: Executor) -> None:
    assert rows(executor, "SELECT count(*) FROM regions") == rows(
        executor, "SELECT count(*) FROM regions", None
    )
    # A granted view reads the table behind it: that is what granting the view means.
    assert rows(executor, "SELECT count(*) FROM yearly")[0][0] > 0
    assert rows(executor, "DESCRIBE yearly")
    assert rows(executor, "SUMMARIZE regions")


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM sales",
        "SELECT * FROM main.sales",
        "SELECT * FROM store.main.sales",
        "SELECT * FROM SALES",
        "WITH s AS (SELECT * FROM sales) SELECT count(*) FROM s",
        "SELECT * FROM regions WHERE region IN (SELECT region FROM sales)",
        "SELECT * FROM regions r JOIN products p ON true",
        "DESCRIBE sales",
        "SUMMARIZE sales",
        "SUMMARIZE SELECT * FROM products",
        "SELECT * FROM pragma_table_info('sales')",
        "SELECT * FROM pragma_table_info('regions')",
        "SELECT * FROM information_schema.table_constraints",
        "SELECT * FROM information_schema.key_column_usage",
        "SELECT * FROM duckdb_constraints()",
        "SELECT * FROM duckdb_indexes()",
        "SELECT * FROM duckdb_functions()",
        "SELECT * FROM duckdb_tables(include_internal := true)",
        "SELECT * FROM store.information_schema.tables",
        "SELECT * FROM pg_catalog.pg_tables",
        "SELECT * FROM (SHOW ALL TABLES)",
        "EXPLAIN SELECT * FROM yearly",
        "EXPLAIN ANALYZE SELECT * FROM regions",
        "SELECT * FROM no_such_table",
    ],
)
def test_ungranted_relations_are_refused_whatever_the_way(executor: Executor, sql: str) -> None:
    refused = refusal(executor, sql)
    assert refused.rule == "table-not-granted", str(refused)
    # The refusal names what the caller may read, and what it typed, nothing more.
    for hidden in ("products", "sales"):
        if hidden not in sql.lower():
            assert hidden not in refused.message.lower(), refused.message


def test_a_missing_table_and_a_hidden_one_get_the_same_words(executor: Executor) -> None:
    hidden = refusal(executor, "SELECT * FROM sales").message
    missing = refusal(executor, "SELECT * FROM salez").message
    assert hidden.replace("'sales'", "X") == missing.replace("'salez'", "X")


def test_show_tables_lists_only_the_grant(executor: Executor) -> None:
    assert rows(executor, "SHOW TABLES") == [("regions",), ("yearly",)]
    assert [r[2] for r in rows(executor, "show all tables;")] == ["regions", "yearly"]
    assert len(rows(executor, "SHOW TABLES", None)) == 4


def test_schema_describes_only_the_grant(executor: Executor) -> None:
    names = [r["name"] for r in executor.schema(tables=GRANT)["relations"]]
    assert names == ["regions", "yearly"]
    assert len(executor.schema()["relations"]) == 4


def test_an_empty_grant_reads_nothing(executor: Executor) -> None:
    with pytest.raises(QueryRefused, match="yours: none"):
        executor.query_arrow("SELECT * FROM regions", tables=[])
    assert rows(executor, "SELECT 42", []) == [(42,)]


def test_the_same_text_is_checked_again_for_another_grant(executor: Executor) -> None:
    # The worker caches statements that passed; the cache must not carry a pass from
    # an unlimited caller over to a limited one.
    assert rows(executor, "SELECT count(*) FROM products", None)[0][0] > 0
    assert refusal(executor, "SELECT count(*) FROM products").rule == "table-not-granted"


def test_catalog_listings_show_only_the_grant(executor: Executor) -> None:
    tables = rows(executor, "SELECT table_name FROM information_schema.tables ORDER BY 1")
    assert tables == [("regions",), ("yearly",)]
    listed = rows(
        executor, "SELECT table_name, table_type FROM information_schema.tables t ORDER BY 1"
    )
    assert [r[0] for r in listed] == ["regions", "yearly"]
    assert rows(executor, "SELECT DISTINCT table_name FROM duckdb_columns() ORDER BY 1") == [
        ("regions",),
        ("yearly",),
    ]
    assert rows(executor, "SELECT table_name FROM duckdb_tables()") == [("regions",)]
    assert rows(executor, "SELECT view_name, sql FROM duckdb_views()") == [("yearly", None)]
    # The view's definition would name the table behind it: not shown.
    assert rows(executor, "SELECT view_definition FROM information_schema.views") == [(None,)]
    assert rows(executor, "SELECT schema_name FROM duckdb_schemas()") == [("main",)]
    # Inside CTEs and subqueries too, and whatever the alias.
    nested = rows(
        executor,
        "WITH t AS (SELECT table_name AS n FROM information_schema.columns) "
        "SELECT count(DISTINCT n) FROM t WHERE n IN (SELECT table_name FROM duckdb_tables())",
    )
    assert nested == [(1,)]
    # An unlimited caller still sees everything.
    assert len(rows(executor, "SELECT * FROM information_schema.tables", None)) == 4


def test_a_filtered_listing_cannot_be_widened_by_the_query(executor: Executor) -> None:
    # Conditions of the caller's own are ANDed onto ours by being outside the subquery.
    for sql in (
        "SELECT table_name FROM information_schema.tables WHERE true OR table_name = 'sales'",
        "SELECT table_name FROM information_schema.tables UNION SELECT 'x'",
        "SELECT * FROM (SELECT table_name FROM duckdb_tables()) WHERE table_name <> ''",
    ):
        names = {r[0] for r in rows(executor, sql)}
        assert "sales" not in names and "products" not in names, sql
