"""What a result shows, exactly: numbers as they are, plans as lines, a static copy for
saved notebooks, and a line that moves while the store computes before its first row."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import duckdb
import pandas as pd

from p2p2p.client import LocalStore
from p2p2p.store.arrow import to_pandas
from p2p2p.store.executor import ResultInfo
from p2p2p.widgets import ResultProgress, ResultTable

HOSTILE = "<img src=x onerror=alert(1)>"


def shown(sql: str) -> ResultTable:
    table = duckdb.sql(sql).to_arrow_table()
    return ResultTable(to_pandas(table), ResultInfo(rows=table.num_rows), "sales")


def test_numbers_show_as_they_are() -> None:
    t = shown(
        "SELECT 123456789.123456::DOUBLE AS d, 0.1::DOUBLE + 0.2 AS drift, "
        "12.5::DECIMAL(10,2) AS money, 170141183460469231731687303715884105727::HUGEINT AS huge, "
        "NULL::BIGINT AS nothing, DATE '2024-02-29' AS day"
    )
    row = repr(t).splitlines()[2].split()
    assert row == [
        "123456789.123456",
        "0.3",
        "12.50",
        "170141183460469231731687303715884105727",
        "NULL",
        "2024-02-29",
    ]
    html = t.table_html.value
    for text in row:
        assert f"<td>{text}</td>" in html


def test_a_float_column_keeps_one_number_of_decimals() -> None:
    t = shown("SELECT * FROM (VALUES (1.5::DOUBLE), (2.25), (NULL), (10)) t(x)")
    assert repr(t).split()[-4:] == ["1.50", "2.25", "NULL", "10.00"]


def test_a_plan_reads_as_lines() -> None:
    t = shown("EXPLAIN SELECT 42")
    text = repr(t)
    assert "\\n" not in text
    assert "explain_value:" in text and any(line.startswith("╭") for line in text.splitlines())
    assert 'class="p2p2p-pre"' in t.table_html.value  # kept as lines on the page too
    assert "\n" in t.static_html()


def test_saved_notebooks_get_a_small_static_table() -> None:
    frame = pd.DataFrame({"name": [HOSTILE] * 5000, "n": range(5000)})
    t = ResultTable(frame, ResultInfo(rows=5000, seconds=0.01), HOSTILE)
    bundle = t._repr_mimebundle_()
    html = bundle["text/html"]
    assert "5,000 rows" in html  # the widget's caption line
    assert html.count("<tr>") == 11  # the header and ten rows
    assert "… 4,990 more rows" in html
    assert HOSTILE not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    assert len(html) < 3_000
    assert "application/vnd.jupyter.widget-view+json" in bundle


def test_a_long_query_shows_its_time_before_the_first_row(tmp_path: Path) -> None:
    path = tmp_path / "big.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE t AS SELECT range AS i FROM range(10_000_000)")
    con.close()
    store = LocalStore(str(path))
    progress = ResultProgress("local:big", hidden=True)
    assert progress.layout.display == "none"
    seen: list[str] = []
    done = threading.Event()

    def watch() -> None:
        while not done.wait(0.05):
            seen.append(repr(progress))

    watcher = threading.Thread(target=watch)
    watcher.start()
    started = time.monotonic()
    try:
        with progress.ticking(store.query_progress, after_s=0.1, every_s=0.1):
            # Computes for a second or two (2 cores) and returns one row.
            store.query("SELECT count(DISTINCT hash(i)) FROM t")
    finally:
        done.set()
        watcher.join()
        store.close()
    if time.monotonic() - started > 0.6:
        running = [line for line in seen if line.startswith("running… ")]
        assert running and all("no rows yet from local:big" in line for line in running), seen
        assert progress.layout.display != "none"
        # DuckDB's own estimate of how far, read from the running cursor.
        assert any("% done" in line for line in running), running


def test_a_quick_query_never_shows_the_line() -> None:
    progress = ResultProgress("x", hidden=True)
    with progress.ticking(None, after_s=5):
        pass
    assert progress.layout.display == "none"
    assert repr(progress) == "waiting for the first rows from x…"
