"""Views of a table as a viewer explores them, checked and turned into bound SQL, run on
a real store as a viewer of a share would read it (the lockdown applies)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from p2p2p.client.local import LocalStore
from p2p2p.dashboards import explore
from p2p2p.errors import BadParameters

ODD = "we\"ird'name"
ODD_SQL = '"we""ird\'name"'


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStore]:
    path = tmp_path_factory.mktemp("explore") / "x.duckdb"
    con = duckdb.connect(str(path))
    con.execute(
        f"""CREATE TABLE cases AS SELECT i AS case_id,
            ['north', 'south', 'East', NULL][1 + i % 4] AS region,
            (i * 7 % 1000)::DECIMAL(10,2) / 4 AS amount,
            DATE '2024-01-01' + (i % 90)::INT AS opened,
            i % 5 = 0 AS urgent,
            'v' || (i % 3) AS {ODD_SQL}
            FROM range(500) t(i)"""
    )
    con.execute("COMMENT ON TABLE cases IS 'Open cases'")
    con.execute("COMMENT ON COLUMN cases.amount IS 'Amount claimed [EUR]'")
    con.execute(f"COMMENT ON COLUMN cases.region IS '{'a long description ' * 5}'")
    con.close()
    local = LocalStore(str(path), as_viewer=True)
    yield local
    local.close()


@pytest.fixture(scope="module")
def cases(store: LocalStore) -> explore.Table:
    relation = next(r for r in store.schema()["relations"] if r["name"] == "cases")
    return explore.Table.from_relation(relation)


def rows(store: LocalStore, sql_params: tuple[str, dict[str, object]]) -> list[tuple[object, ...]]:
    sql, params = sql_params
    table = store.query_arrow(sql, params or None)
    return list(zip(*[table.column(i).to_pylist() for i in range(table.num_columns)], strict=True))


def test_filters_sort_and_pages_give_the_rows_the_same_sql_gives(
    store: LocalStore, cases: explore.Table
) -> None:
    view = cases.view(
        [
            {"column": "region", "op": "exact", "value": "north"},
            {"column": "amount", "op": "gte", "value": "100.5"},
            {"column": "opened", "op": "lt", "value": "2024-03-01"},
            {"column": ODD, "op": "not", "value": "v0"},
        ],
        sort="amount",
        descending=True,
        page=1,
        page_size=25,
    )
    got = rows(store, cases.select(view))
    expected = rows(
        store,
        (
            "SELECT * FROM cases WHERE region = 'north' AND amount >= 100.5 "
            f"AND opened < DATE '2024-03-01' AND {ODD_SQL} <> 'v0' "
            "ORDER BY amount DESC NULLS LAST, case_id LIMIT 26 OFFSET 25",
            {},
        ),
    )
    assert got == expected and 0 < len(got) <= 26
    count = rows(store, cases.count(view))[0][0]
    assert isinstance(count, int) and count >= len(got)
    # The view as SQL, as the SQL box would run it: the same page.
    assert rows(store, (cases.as_sql(view), {})) == got[:25]


def test_contains_null_and_booleans(store: LocalStore, cases: explore.Table) -> None:
    east = cases.view([{"column": "region", "op": "contains", "value": "EAS"}])
    assert {r[1] for r in rows(store, cases.select(east.with_(page_size=100)))} == {"East"}
    missing = cases.view([{"column": "region", "op": "isnull", "value": "ignored"}])
    assert rows(store, cases.count(missing)) == [(125,)]
    urgent = cases.view([{"column": "urgent", "op": "exact", "value": "yes"}])
    assert rows(store, cases.count(urgent)) == [(100,)]


def test_values_are_bound_never_pasted(store: LocalStore, cases: explore.Table) -> None:
    sneaky = "north' OR 1=1 --"
    view = cases.view([{"column": "region", "op": "exact", "value": sneaky}])
    sql, params = cases.select(view)
    assert sneaky not in sql and list(params.values()) == [sneaky]
    assert rows(store, (sql, params)) == []
    # Shown as SQL, the value is a quoted literal that still means the same.
    assert rows(store, (cases.as_sql(view), {})) == []
    # A value that reads like a placeholder stays a value (found by a hostile-viewer test).
    tricky = cases.view(
        [
            {"column": "region", "op": "exact", "value": "$p1"},
            {"column": "amount", "op": "gt", "value": "1"},
        ]
    )
    assert "'$p1'" in cases.as_sql(tricky) and rows(store, (cases.as_sql(tricky), {})) == []


def test_facets_count_the_other_filters_only(store: LocalStore, cases: explore.Table) -> None:
    view = cases.view(
        [
            {"column": "region", "op": "exact", "value": "north"},
            {"column": "urgent", "op": "exact", "value": "true"},
        ]
    )
    counts = dict(rows(store, cases.facet(view, "region")))
    # Region's own filter is left out, so every region stays one click away.
    assert counts == {"north": 25, "south": 25, "East": 25, None: 25}
    assert dict(rows(store, cases.facet(view, "urgent"))) == {True: 25, False: 100}
    assert cases.facet_columns() == ["region", "urgent", ODD]  # never case_id


@pytest.mark.parametrize(
    ("filters", "said"),
    [
        ([{"column": "nosuch", "op": "exact", "value": "1"}], "cases has no column 'nosuch'"),
        ([{"column": "region", "op": "like", "value": "n%"}], "unknown filter 'like'"),
        ([{"column": "amount", "op": "gt", "value": "lots"}], "amount needs a number"),
        ([{"column": "case_id", "op": "gt", "value": "1.5"}], "case_id needs a whole number"),
        ([{"column": "amount", "op": "gt", "value": "NaN"}], "finite"),
        ([{"column": "urgent", "op": "exact", "value": "maybe"}], "true or false"),
        ([{"column": "opened", "op": "gt", "value": "now(); drop"}], "date or time"),
        ([{"column": "region", "op": "exact", "value": "x" * 201}], "at most 200"),
        ([{"column": "region", "op": "exact", "value": "x"}] * 9, "at most 8 filters"),
    ],
)
def test_bad_views_are_refused_naming_what_is_wrong(
    cases: explore.Table, filters: list[dict[str, str]], said: str
) -> None:
    with pytest.raises(BadParameters, match=said.replace("(", r"\(")):
        cases.view(filters)


def test_sort_and_pages_are_checked(cases: explore.Table) -> None:
    with pytest.raises(BadParameters, match="no column"):
        cases.view(sort="amount; DROP TABLE cases")
    with pytest.raises(BadParameters, match="rows per page"):
        cases.view(page_size=10_000)
    with pytest.raises(BadParameters, match="pages go from 1"):
        cases.view(page=-1)
    with pytest.raises(BadParameters, match="pages go from 1"):
        cases.view(page=explore.MAX_PAGE)


def test_the_address_holds_the_view_and_gives_it_back(cases: explore.Table) -> None:
    view = cases.view(
        [
            {"column": "region", "op": "exact", "value": "north & south"},
            {"column": ODD, "op": "contains", "value": "v"},
            {"column": "amount", "op": "isnull"},
        ],
        sort="opened",
        descending=True,
        page=2,
        page_size=100,
    )
    query = view.to_dict()["query"]
    assert query.startswith("_table=cases&region=north+%26+south&")
    assert "t=" not in query.replace("_sort_desc=", "").replace("_table=", "")  # no token
    again, sql = explore.view_from_query({"cases": cases}, query + "&_sql=SELECT+1", "cases")
    assert again == view and sql == "SELECT 1"
    # An address from an older page, or mangled by hand: refused with what is wrong.
    with pytest.raises(BadParameters, match="no table 'gone'"):
        explore.view_from_query({"cases": cases}, "_table=gone", "cases")
    with pytest.raises(BadParameters, match="whole numbers"):
        explore.view_from_query({"cases": cases}, "_page=two", "cases")


def test_the_owners_comments_are_labels_and_formats(cases: explore.Table) -> None:
    assert cases.label == "Open cases"
    amount = cases.column("amount")
    assert (amount.label, amount.format) == ("Amount claimed", "currency:EUR")
    assert cases.column("region").label == "region"  # a description, not a header
    assert cases.column("case_id").label == "case_id" and cases.column("case_id").format == ""
    assert explore.presentation("Share of visits [%]") == ("Share of visits", "percent")


def test_kinds_of_types() -> None:
    kinds = {
        "BIGINT": "int", "HUGEINT": "int", "DECIMAL(18,3)": "decimal", "DOUBLE": "float",
        "BOOLEAN": "bool", "DATE": "date", "TIMESTAMP": "timestamp",
        "TIMESTAMP WITH TIME ZONE": "timestamptz", "TIMESTAMPTZ": "timestamptz",
        "VARCHAR": "text", "INTEGER[]": "other", "STRUCT(a INTEGER)": "other", "BLOB": "other",
    }  # fmt: skip
    assert {t: explore.kind_of(t) for t in kinds} == kinds


def test_a_path_like_value_stays_a_value(tmp_path: Path) -> None:
    table = explore.Table("t", [explore.Column("name", "VARCHAR")])
    view = table.view([{"column": "name", "op": "exact", "value": "read_csv('/etc/passwd')"}])
    sql, params = table.select(view)
    assert "passwd" not in sql and params == {"p0": "read_csv('/etc/passwd')"}
