"""What a %%p2pquery cell hands back and shows, through a real jupyter server and kernel:
the types pandas gets, the polars output, the static HTML copy a saved notebook keeps, and
the line a frontend redraws while DuckDB computes before its first row."""

from __future__ import annotations

from collections.abc import Iterator

import duckdb
import pytest

from ..helpers.jupyter import JupyterServer, Kernel

pytestmark = pytest.mark.timeout(300)

TYPES = "%%p2pquery local:types.duckdb\nSELECT * FROM t ORDER BY id"


@pytest.fixture(scope="module")
def kernel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kernel]:
    root = tmp_path_factory.mktemp("notebooks")
    con = duckdb.connect(str(root / "types.duckdb"))
    con.execute(
        "CREATE TABLE t AS SELECT * FROM (VALUES"
        " (1, DATE '2024-02-29', 123456789.123456::DECIMAL(18,6), ('7' || repeat('0', 30))::HUGEINT,"
        "  12.34::DECIMAL(38,20), 5, true, 'line one' || chr(10) || 'line two'),"
        " (2, NULL, 0.1::DECIMAL(18,6), -1::HUGEINT, 0::DECIMAL(38,20), NULL, NULL, 'x')"
        ") v(id, day, amount, huge, wide, n, flag, memo)"
    )
    con.close()
    server = JupyterServer(root, tmp_path_factory.mktemp("home"))
    kernel = server.kernel()
    kernel.run("%load_ext p2p2p")
    yield kernel
    kernel.close()
    server.stop()


def test_types_are_exact_and_computable(kernel: Kernel) -> None:
    kernel.run(TYPES)
    dtypes = kernel.value("{c: str(t) for c, t in _.dtypes.items()}")
    assert dtypes["day"].startswith("datetime64"), dtypes  # so .dt works
    assert kernel.value("_['day'].dt.year.tolist()[0]") == 2024
    assert kernel.value("bool(_['day'].isna().tolist()[1])") is True
    # A decimal of up to 15 digits: the float64 nearest to it, computable as such.
    assert dtypes["amount"] == "float64"
    assert kernel.value("repr(_['amount'].tolist()[0])") == "123456789.123456"
    assert kernel.value("round(float(_['amount'].sum() - 0.1), 6)") == 123456789.123456
    # Past 15 digits: Decimal objects, never a float that drifted.
    assert kernel.value("str(_['huge'][0])") == "7" + "0" * 30
    assert kernel.value("type(_['huge'][0]).__name__") == "Decimal"
    assert kernel.value("str(_['wide'][0])") == "12.34000000000000000000"
    # Integers and booleans with NULLs stay integers and booleans.
    assert dtypes["n"] == "Int32" and dtypes["flag"] == "boolean", dtypes
    assert kernel.value("int(_['n'].sum())") == 5


def test_the_display_shows_numbers_as_they_are(kernel: Kernel) -> None:
    shown = kernel.run(TYPES)["data"][-1]
    plain, html = shown["text/plain"], shown["text/html"]
    assert plain.startswith("2 rows ·")
    for text in (plain, html):
        assert "123456789.123456" in text and "1.234568e+08" not in text
        assert "0.100000" in text  # DECIMAL(18,6) keeps its scale
        assert "7" + "0" * 30 in text.replace(",", "")
    # The static copy a saved notebook keeps (GitHub, nbviewer, nbconvert): a real table,
    # its values escaped, and the widget on top of it where widgets run.
    assert "<table" in html and "<th>amount</th>" in html
    assert "2024-02-29" in html and "00:00:00" not in html
    assert "line one\nline two" in html  # multi-line text kept as lines, not a literal \n
    assert "application/vnd.jupyter.widget-view+json" in shown


def test_polars_output(kernel: Kernel) -> None:
    kernel.run(TYPES.replace("local:types.duckdb", "local:types.duckdb --polars"))
    assert kernel.value("type(_).__module__.split('.')[0]") == "polars"
    assert kernel.value("_.height") == 2
    assert kernel.value("str(_.schema['day'])") == "Date"
    assert kernel.value("str(_['huge'][0])").startswith("7" + "0" * 30)
    kernel.run("%config P2PMagics.output = 'polars'")
    try:
        kernel.run("%p2pquery local:types.duckdb SELECT id FROM t")
        assert kernel.value("type(_).__module__.split('.')[0]") == "polars"
    finally:
        kernel.run("%config P2PMagics.output = 'pandas'")
    kernel.run("%p2pquery local:types.duckdb SELECT id FROM t")
    assert kernel.value("type(_).__name__") == "DataFrame"
    assert kernel.value("type(_).__module__.split('.')[0]") == "pandas"


def test_a_slow_query_shows_its_time_before_the_first_row(kernel: Kernel) -> None:
    # Seconds of DuckDB work before a single row exists (one aggregate at the end).
    slow = kernel.run(
        "%%p2pquery local:types.duckdb\n"
        "SELECT count(DISTINCT hash(i) % 100000000) AS n FROM range(10000000) t(i)",
        timeout=240,
    )
    drawn = [str(state.get("value", "")) for state in slow["widgets"]]
    running = [html for html in drawn if "running…" in html]
    assert running, drawn[:5]
    assert "no rows yet from local:types.duckdb" in running[0]
    texts = [bundle.get("text/plain", "") for bundle in slow["data"]]
    # The line made way for the result: nothing saved says "waiting" or "running".
    assert texts[-1].startswith("1 row ·"), texts
    assert not any("waiting" in t or "running" in t for t in texts[1:]), texts


def test_a_quick_query_never_flashes_a_line(kernel: Kernel) -> None:
    quick = kernel.run("%%p2pquery local:types.duckdb\nSELECT 42 AS answer")
    drawn = [str(state.get("value", "")) for state in quick["widgets"]]
    assert not any("running…" in html or "receiving…" in html for html in drawn)
    assert quick["data"][-1]["text/plain"].startswith("1 row ·")
