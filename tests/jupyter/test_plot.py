"""%p2pplot through a real IPython shell: the numbers drawn are the store's aggregates.

The stores are opened as a viewer would reach them (``LocalStore(as_viewer=True)``: the
share's executor, lockdown and limits), so a function the lockdown refuses fails here as
it would on a share. One test goes through a real relay and share.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import matplotlib
import pandas as pd
import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.testing import globalipapp

matplotlib.use("Agg")  # before pyplot is imported: no window, in any environment

import matplotlib.pyplot as plt
from matplotlib import cbook
from matplotlib.axes import Axes

from p2p2p.client import LocalStore
from p2p2p.client.target import resolve_any
from p2p2p.errors import BadParameters, BadTarget, QueryRefused
from p2p2p.kernel_ext.magics import CellError, P2PMagics
from p2p2p.kernel_ext.plot import relation_sql
from p2p2p.samples.sales import build_sample_store

from ..helpers.sharing import Relay, Share

HOSTILE = '"x"; DROP TABLE t; --'
BIG_ROWS = 100_000


@pytest.fixture(scope="module")
def shell() -> Iterator[InteractiveShell]:
    globalipapp.start_ipython()
    ip = globalipapp.get_ipython()
    assert ip is not None
    ip.run_line_magic("load_ext", "p2p2p")
    yield ip
    # The shell outlives this module: later modules get their own stores, not ours.
    queries(ip).close()


@pytest.fixture(autouse=True)
def no_open_figures() -> Iterator[None]:
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The sample tables at 100,000 rows, plus tables with awkward names and outliers."""
    path = build_sample_store(tmp_path_factory.mktemp("plot") / "big.duckdb", rows=BIG_ROWS)
    con = duckdb.connect(path)
    quoted = '"' + HOSTILE.replace('"', '""') + '"'
    con.execute(f"CREATE TABLE odd AS SELECT i * 1.5 AS {quoted}, i % 3 AS g FROM range(1000) t(i)")
    con.execute("CREATE TABLE t AS SELECT 1 AS still_here")
    # Mostly small values and a few far out: whiskers end well inside min and max.
    con.execute(
        "CREATE TABLE skewed AS SELECT i % 5 AS grp, "
        "CASE WHEN i % 97 = 0 THEN 5000 + i ELSE (i * 37) % 100 END AS v FROM range(5000) t(i)"
    )
    con.execute("CREATE SCHEMA hr")
    con.execute("CREATE TABLE hr.staff AS SELECT i AS age FROM range(20, 60) t(i)")
    con.execute('CREATE TABLE "a.b" AS SELECT i AS n FROM range(10) t(i)')
    con.execute("CHECKPOINT")
    con.close()
    return path


def queries(shell: InteractiveShell) -> P2PMagics:
    magics = shell.magics_manager.registry["P2PMagics"]
    assert isinstance(magics, P2PMagics)
    return magics


@pytest.fixture
def viewer(shell: InteractiveShell, store: str) -> Iterator[str]:
    """``local:PATH`` for ``store``, opened with the share's lockdown (as_viewer)."""
    magics = queries(shell)
    key = resolve_any(f"local:{store}").key
    old = magics.stores.pop(key, None)
    if old is not None:
        old.close()
    magics.stores[key] = LocalStore(store, as_viewer=True)
    magics.labels[key] = f"local:{store}"
    yield f"local:{store}"
    magics.stores.pop(key).close()


def store_of(shell: InteractiveShell, target: str) -> Any:
    return queries(shell).stores[resolve_any(target).key]


def plot(shell: InteractiveShell, line: str) -> Axes:
    result = shell.run_cell(f"%p2pplot {line}")
    assert result.error_in_exec is None, result.error_in_exec
    ax = result.result
    assert isinstance(ax, Axes)
    return ax


def fails(shell: InteractiveShell, line: str) -> CellError:
    result = shell.run_cell(f"%p2pplot {line}")
    error = result.error_in_exec
    assert isinstance(error, CellError), error
    assert error.magic == "p2pplot"
    (rendered,) = error._render_traceback_()
    assert "\n" not in rendered and rendered.startswith("\x1b[31mp2pplot: ")
    return error


def rows(path: str, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
    con = duckdb.connect(path, read_only=True)
    try:
        return con.execute(sql, params).fetchall()
    finally:
        con.close()


def expected_histogram(
    path: str, table: str, column: str, bins: int, where: str = "TRUE"
) -> tuple[list[float], list[int]]:
    """Edges from min and max, counts by comparing each value with the edges: another
    way to the same numbers than the magic's floor arithmetic."""
    ((lo, hi),) = rows(
        path, f"SELECT min({column})::DOUBLE, max({column})::DOUBLE FROM {table} WHERE {where}"
    )
    edges = [lo + (hi - lo) * i / bins for i in range(bins + 1)]
    edges[-1] = hi
    counts = ", ".join(
        f"count(*) FILTER (WHERE x >= {edges[i]!r} AND x {'<=' if i == bins - 1 else '<'} {edges[i + 1]!r})"
        for i in range(bins)
    )
    (found,) = rows(
        path, f"SELECT {counts} FROM (SELECT {column}::DOUBLE AS x FROM {table} WHERE {where})"
    )
    return edges, [int(n) for n in found]


# -- the numbers ---------------------------------------------------------------------
def test_histogram_draws_the_stores_bins(shell: InteractiveShell, store: str, viewer: str) -> None:
    shell.user_ns["year"] = 2022
    ax = plot(
        shell,
        f"histogram --table sales --column amount --bins 25 --where 'year = {{year}}' --target {viewer}",
    )
    edges, counts = expected_histogram(store, "sales", "amount", 25, "year = 2022")
    assert [int(p.get_height()) for p in ax.patches] == counts
    assert [p.get_x() for p in ax.patches] == pytest.approx(edges[:-1])
    assert [p.get_x() + p.get_width() for p in ax.patches] == pytest.approx(edges[1:])
    data = ax.p2p2p_data  # type: ignore[attr-defined]
    assert list(data.columns) == ["bin_start", "bin_end", "count"]
    assert data["count"].tolist() == counts
    ((total,),) = rows(store, "SELECT count(*) FROM sales WHERE year = 2022")
    assert sum(counts) == total and total > 20_000
    assert "$year" in data.attrs["sql"] and "2022" not in data.attrs["sql"]  # bound, not text
    # Only the bins reached this process, from a 100,000-row table.
    assert store_of(shell, viewer).last_info.rows <= 25 and len(data) == 25
    ax.set_title("mine")  # an Axes like any other
    assert ax.get_title() == "mine"


def test_bar_draws_the_top_values(shell: InteractiveShell, store: str, viewer: str) -> None:
    ax = plot(shell, f"bar --table sales --column region --top 3 --target {viewer}")
    expected = rows(
        store, "SELECT region, count(*) AS n FROM sales GROUP BY 1 ORDER BY n DESC, region LIMIT 3"
    )
    assert [t.get_text() for t in ax.get_xticklabels()] == [r for r, _ in expected]
    assert [int(p.get_height()) for p in ax.patches] == [n for _, n in expected]
    assert ax.get_xlabel() == "region (the 3 most frequent of 4 values)"
    data = ax.p2p2p_data  # type: ignore[attr-defined]
    assert list(zip(data["value"], data["count"], strict=True)) == expected
    # 100,000 distinct values: 20 arrive.
    ax = plot(shell, "bar --table sales --column sale_id")  # the last target
    assert len(ax.patches) == 20 and store_of(shell, viewer).last_info.rows == 20
    assert "of 100,000 values" in ax.get_xlabel()


def box_stats(values: list[float]) -> dict[str, Any]:
    (stats,) = cbook.boxplot_stats(values, whis=1.5)
    return dict(stats)


@pytest.mark.parametrize(
    ("table", "column", "by"), [("skewed", "v", "grp"), ("sales", "amount", "region")]
)
def test_box_matches_matplotlibs_own_stats(
    shell: InteractiveShell, store: str, viewer: str, table: str, column: str, by: str
) -> None:
    ax = plot(shell, f"box --table {table} --column {column} --by {by} --target {viewer}")
    data = ax.p2p2p_data  # type: ignore[attr-defined]
    groups = [g for (g,) in rows(store, f"SELECT DISTINCT {by} FROM {table} ORDER BY 1")]
    assert data["group"].tolist() == groups
    assert [t.get_text() for t in ax.get_xticklabels()] == [str(g) for g in groups]
    drawn = {round(float(y), 6) for line in ax.lines for y in line.get_ydata()}
    for _, row in data.iterrows():
        values = [
            float(v)
            for (v,) in rows(store, f"SELECT {column} FROM {table} WHERE {by} = ?", [row["group"]])
        ]
        stats = box_stats(values)
        for name in ("med", "q1", "q3", "whislo", "whishi"):
            assert row[name] == pytest.approx(stats[name]), name
            assert round(float(row[name]), 6) in drawn, name  # a line of the box is there
        assert row["outliers"] == len(stats["fliers"])
        assert row["n"] == len(values)
        assert (row["min"], row["max"]) == (min(values), max(values))
    assert store_of(shell, viewer).last_info.rows == len(groups)
    if table == "skewed":
        assert data["outliers"].sum() > 0 and (data["whishi"] < data["max"]).all()
        assert "outliers not drawn" in ax.get_xlabel()


def test_box_without_groups(shell: InteractiveShell, store: str, viewer: str) -> None:
    ax = plot(shell, f"box --table skewed --column v --target {viewer}")
    data = ax.p2p2p_data  # type: ignore[attr-defined]
    stats = box_stats([float(v) for (v,) in rows(store, "SELECT v FROM skewed")])
    assert len(data) == 1
    for name in ("med", "q1", "q3", "whislo", "whishi"):
        assert data[name].iloc[0] == pytest.approx(stats[name])
    assert [t.get_text() for t in ax.get_xticklabels()] == ["v"]


@pytest.mark.parametrize(
    ("options", "value"),
    [("--y amount", "sum(amount)"), ("--y amount --agg avg", "avg(amount)"),
     ("--agg count", "count(*)"), ("--y region --agg max", "max(region)")],
)  # fmt: skip
def test_line_aggregates_per_x(
    shell: InteractiveShell, store: str, viewer: str, options: str, value: str
) -> None:
    ax = plot(shell, f"line --table sales --x month {options} --target {viewer}")
    expected = rows(store, f"SELECT month, {value} FROM sales GROUP BY 1 ORDER BY 1")
    data = ax.p2p2p_data  # type: ignore[attr-defined]
    assert data["x"].tolist() == [m for m, _ in expected]
    if value == "max(region)":
        assert data["y"].tolist() == [y for _, y in expected]
    else:
        assert data["y"].astype(float).tolist() == pytest.approx([float(y) for _, y in expected])
        (line,) = ax.lines
        assert list(line.get_ydata()) == pytest.approx([float(y) for _, y in expected])
    assert store_of(shell, viewer).last_info.rows == 12


@pytest.mark.parametrize(
    "line",
    ["histogram --column amount", "bar --column region", "box --column amount",
     "box --column amount --by region", "line --x month --y amount"],
)  # fmt: skip
def test_no_rows_is_an_empty_chart(shell: InteractiveShell, viewer: str, line: str) -> None:
    kind, options = line.split(" ", 1)
    ax = plot(shell, f"{kind} --table sales {options} --where 'year < 0' --target {viewer}")
    assert ax.p2p2p_data.empty and "no rows" in ax.get_xlabel()  # type: ignore[attr-defined]


def test_a_comment_in_where_ends_with_its_line(
    shell: InteractiveShell, store: str, viewer: str
) -> None:
    ax = plot(
        shell, f"bar --table sales --column year --where 'year > 2022 -- later' --target {viewer}"
    )
    assert sorted(ax.p2p2p_data["value"]) == [2023, 2024]  # type: ignore[attr-defined]


# -- names and values are never SQL ----------------------------------------------------
def test_a_hostile_column_name_is_quoted_not_run(
    shell: InteractiveShell, store: str, viewer: str
) -> None:
    ax = plot(shell, f"histogram --table odd --column '{HOSTILE}' --bins 10 --target {viewer}")
    quoted = '"' + HOSTILE.replace('"', '""') + '"'
    _edges, counts = expected_histogram(store, "odd", quoted, 10)
    assert [int(p.get_height()) for p in ax.patches] == counts and sum(counts) == 1000
    ax = plot(shell, f"box --table odd --column '{HOSTILE}' --by g")
    assert len(ax.p2p2p_data) == 3  # type: ignore[attr-defined]
    error = fails(shell, "histogram --table odd --column '\"y\"; DROP TABLE t; --'")
    assert isinstance(error.error, BadParameters) and "no such column" in str(error)
    error = fails(shell, "bar --table 'odd; DROP TABLE t; --' --column g")
    assert isinstance(error.error, QueryRefused) and error.error.rule == "table-not-in-store"
    assert rows(store, "SELECT * FROM t") == [(1,)]


def test_relation_names_are_quoted_part_by_part(
    shell: InteractiveShell, store: str, viewer: str
) -> None:
    assert relation_sql("sales") == '"sales"'
    assert relation_sql("hr.staff") == '"hr"."staff"'
    assert relation_sql('"a.b"') == '"a.b"'
    assert relation_sql('x"; DROP TABLE t; --') == '"x""; DROP TABLE t; --"'
    assert relation_sql('hr."we""ird"') == '"hr"."we""ird"'
    for bad in ("a..b", '"open', "a.b.c.d", '""'):
        with pytest.raises(BadParameters):
            relation_sql(bad)
    ax = plot(shell, f"histogram --table hr.staff --column age --bins 4 --target {viewer}")
    assert [int(p.get_height()) for p in ax.patches] == [10, 10, 10, 10]
    ax = plot(shell, """bar --table '"a.b"' --column n""")
    assert len(ax.patches) == 10


# -- errors ------------------------------------------------------------------------------
def test_errors_are_one_line(shell: InteractiveShell, viewer: str, capsys: Any) -> None:
    error = fails(shell, f"histogram --table sales --column nope --target {viewer}")
    assert isinstance(error.error, BadParameters)
    assert "no such column (its columns: sale_id, region" in str(error)
    error = fails(shell, "histogram --table nosuch --column amount")
    assert isinstance(error.error, QueryRefused) and error.error.rule == "table-not-in-store"
    error = fails(shell, "bar --table sales --column region --where 'random() < 2'")
    assert isinstance(error.error, QueryRefused) and error.error.rule == "function-not-allowed"
    error = fails(shell, "histogram --table sales --column region")
    assert isinstance(error.error, BadParameters) and "not a number" in str(error)
    error = fails(shell, "line --table sales --x month --y region --agg avg")
    assert isinstance(error.error, BadParameters) and "not a number" in str(error)
    error = fails(shell, "line --table sales --x month --agg sum")
    assert "needs --y" in str(error)
    error = fails(shell, "histogram --table sales --column amount --bins 0")
    assert "--bins" in str(error)
    error = fails(shell, "histogram --table sales --column amount --where 'year = {nope}'")
    assert isinstance(error.error, BadParameters) and "nope" in str(error)
    captured = capsys.readouterr()
    assert "Traceback" not in captured.out + captured.err
    result = shell.run_cell("%p2pplot pie --table sales")
    assert not result.success and "invalid choice: 'pie'" in str(result.error_in_exec)


def test_no_target_and_groups(
    shell: InteractiveShell, sample_store: str, store: str, viewer: str
) -> None:
    magics = queries(shell)
    remembered, magics.last_target = magics.last_target, None
    try:
        error = fails(shell, "bar --table sales --column region")
        assert isinstance(error.error, BadTarget) and "no store given yet" in str(error)
    finally:
        magics.last_target = remembered
    assert shell.run_cell(f"%p2p group both local:{store} local:{sample_store}").success
    error = fails(shell, "bar --table sales --column region --target both")
    assert isinstance(error.error, BadTarget) and "is a group" in str(error)


# -- a DataFrame of the notebook: this kernel's DuckDB, no store -----------------------------
def test_dataframes_are_aggregated_here(shell: InteractiveShell, viewer: str) -> None:
    assert shell.run_cell(f"%%p2pquery {viewer}\nSELECT * FROM sales WHERE sale_id <= 5000").success
    frame = shell.user_ns["_"]
    assert isinstance(frame, pd.DataFrame) and len(frame) == 5000
    ax = plot(shell, "bar --table _ --column region")
    data = ax.p2p2p_data  # type: ignore[attr-defined]
    assert data.attrs["source"] == "_ (a DataFrame here)"
    assert (
        dict(zip(data["value"], data["count"], strict=True))
        == frame["region"].value_counts().to_dict()
    )
    shell.user_ns["mine"] = frame
    ax = plot(shell, "box --table mine --column amount --by year")
    stats = box_stats(frame.loc[frame["year"] == 2021, "amount"].astype(float).tolist())
    first = ax.p2p2p_data.iloc[0]  # type: ignore[attr-defined]
    assert first["group"] == 2021 and first["med"] == pytest.approx(stats["med"])
    ax = plot(shell, "histogram --table mine --column amount --bins 8")
    assert sum(int(p.get_height()) for p in ax.patches) == 5000
    shell.run_cell("1 + 1")
    error = fails(shell, "bar --table _ --column region")
    assert "_ is int, not a DataFrame" in str(error)


# -- through a real relay ----------------------------------------------------------------
@pytest.fixture(scope="module")
def shared(relay: Relay, store: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Share]:
    process = Share(store, relay.url, Path(tmp_path_factory.mktemp("owner")))
    yield process
    process.stop()


def test_through_a_share(shell: InteractiveShell, store: str, shared: Share) -> None:
    ax = plot(shell, f"histogram --table sales --column amount --bins 40 --target '{shared.link}'")
    _edges, counts = expected_histogram(store, "sales", "amount", 40)
    assert [int(p.get_height()) for p in ax.patches] == counts and sum(counts) == BIG_ROWS
    remote = store_of(shell, shared.link)
    assert remote.last_info.rows <= 40
    ax = plot(shell, "box --table sales --column amount --by region")  # the share, remembered
    assert store_of(shell, shared.link).last_info.rows == 4
    east = box_stats(
        [float(v) for (v,) in rows(store, "SELECT amount FROM sales WHERE region = 'east'")]
    )
    row = ax.p2p2p_data.set_index("group").loc["east"]  # type: ignore[attr-defined]
    assert row["q1"] == pytest.approx(east["q1"]) and row["whishi"] == pytest.approx(east["whishi"])
    error = fails(shell, "bar --table sales --column region --where 'random() < 2'")
    assert isinstance(error.error, QueryRefused) and error.error.rule == "function-not-allowed"
