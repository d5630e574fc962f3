"""%%p2pquery through a real IPython shell."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import duckdb
import pandas as pd
import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.testing import globalipapp

from p2p2p.kernel_ext.magics import CellError


@pytest.fixture(scope="module")
def shell() -> Iterator[InteractiveShell]:
    globalipapp.start_ipython()  # the test shell is process-wide: made once, then reused
    ip = globalipapp.get_ipython()
    assert ip is not None
    ip.run_line_magic("load_ext", "p2p2p")
    yield ip
    magics = ip.magics_manager.registry.get("P2PMagics")
    if magics is not None:
        magics.close()


def run(shell: InteractiveShell, source: str) -> Any:
    return shell.run_cell(source)


def test_query_binds_variables_and_sets_underscore(
    shell: InteractiveShell, sample_store: str
) -> None:
    shell.user_ns["year"] = 2022
    result = run(
        shell,
        f"%%p2pquery local:{sample_store} --out totals\n"
        "SELECT region, count(*) AS n FROM sales WHERE year = {year} GROUP BY 1 ORDER BY 1",
    )
    assert result.success, result.error_in_exec
    frame = shell.user_ns["_"]
    assert isinstance(frame, pd.DataFrame)
    assert list(frame.columns) == ["region", "n"]
    assert frame is shell.user_ns["totals"]
    con = duckdb.connect(sample_store, read_only=True)
    expected = con.execute("SELECT count(*) FROM sales WHERE year = 2022").fetchall()[0][0]
    con.close()
    assert int(frame["n"].sum()) == expected


def test_bare_path_and_last_target(shell: InteractiveShell, sample_store: str) -> None:
    assert run(shell, f"%%p2pquery {sample_store}\nSELECT 1 AS a").success
    result = run(shell, "%%p2pquery --limit 3\nSELECT * FROM sales")
    assert result.success
    assert len(shell.user_ns["_"]) == 3


def test_display_shows_rows_time_and_truncation(
    shell: InteractiveShell, sample_store: str, capsys: pytest.CaptureFixture[str]
) -> None:
    run(shell, f"%%p2pquery local:{sample_store} --limit 2\nSELECT sale_id FROM sales ORDER BY 1")
    out = capsys.readouterr().out
    assert "2 rows" in out and " ms" in out and "TRUNCATED by max_rows" in out


def test_refusal_is_one_line_not_a_traceback(
    shell: InteractiveShell, sample_store: str, capsys: pytest.CaptureFixture[str]
) -> None:
    result = run(
        shell,
        f"%%p2pquery local:{sample_store} --as-viewer\nSELECT * FROM read_csv('/etc/passwd')",
    )
    assert not result.success
    assert isinstance(result.error_in_exec, CellError)
    assert result.error_in_exec.error.rule == "table-function-not-allowed"  # type: ignore[attr-defined]
    captured = capsys.readouterr()
    text = captured.out + captured.err
    assert "table-function-not-allowed" in text
    assert "Traceback" not in text


def test_missing_variable_and_missing_store(shell: InteractiveShell, tmp_path: Any) -> None:
    result = run(shell, "%%p2pquery local:/nonexistent/x.duckdb\nSELECT 1")
    assert isinstance(result.error_in_exec, CellError)
    assert "does not exist" in str(result.error_in_exec)
    result = run(shell, "%%p2pquery\nSELECT {no_such_variable}")
    assert "no_such_variable" in str(result.error_in_exec)


def test_share_without_the_server_extension_runs_in_the_kernel(
    shell: InteractiveShell, sample_store: str, capsys: pytest.CaptureFixture[str]
) -> None:
    import p2p2p
    from p2p2p.errors import ShareOffline
    from p2p2p.widgets import ShareStatus

    result = run(shell, f"%share {sample_store} --name in-kernel --no-dashboard")
    assert result.error_in_exec is None, result.error_in_exec
    widget = result.result
    assert isinstance(widget, ShareStatus)
    assert "shares run inside this kernel" in capsys.readouterr().out  # said once
    link = widget.status["link"]
    assert int(p2p2p.connect(link).query("SELECT count(*) AS n FROM sales")["n"][0]) == 20_000
    again = run(shell, f"%share {sample_store} --name in-kernel --no-dashboard").result  # re-run
    assert again.status["link"] == link and "already shared" in capsys.readouterr().out
    again.close()
    listed = run(shell, "%shares").result
    assert "in-kernel" in repr(listed)
    widget.close()
    result = run(shell, "%unshare")  # the only share: no name needed
    assert result.error_in_exec is None
    assert "stopped: in-kernel" in capsys.readouterr().out
    with pytest.raises(ShareOffline):
        p2p2p.connect(link)
    # Bad input: a clear one-line error, nothing shared.
    result = run(shell, "%share /etc/hostname")
    assert isinstance(result.error_in_exec, CellError)
    assert "not a DuckDB database" in str(result.error_in_exec)
    result = run(shell, "%unshare nothing-here")
    assert "no active share named 'nothing-here'" in str(result.error_in_exec)


def test_a_group_asks_every_store_and_says_who_answered(
    shell: InteractiveShell,
    sample_store: str,
    tmp_path: Any,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("P2P2P_HOME", str(tmp_path / "home"))
    other = tmp_path / "other.duckdb"
    con = duckdb.connect(str(other))
    con.execute("CREATE TABLE sales AS SELECT 'east' AS region, 5 AS n")
    con.close()
    typo = run(shell, f"%p2p group sites local:{sample_store} nosuchalias")
    assert isinstance(typo.error_in_exec, CellError)
    assert "no alias and no store file" in str(typo.error_in_exec)  # not taken as a path
    assert run(shell, f"%p2p group sites local:{sample_store} local:{other}").success
    capsys.readouterr()
    result = run(shell, "%%p2pquery sites\nSELECT count(*) AS n FROM sales")
    assert result.success, result.error_in_exec
    frame = shell.user_ns["_"]
    assert frame.columns[0] == "_source" and len(frame) == 2
    assert [s["ok"] for s in frame.attrs["sources"]] == [True, True]
    out = capsys.readouterr().out
    assert "2 of 2 stores answered" in out
    # One store refusing: the others still answer, and the refusal is shown as that store's.
    result = run(shell, "%%p2pquery sites\nSELECT count(*) AS n FROM sales WHERE year = 2022")
    assert result.success
    out = capsys.readouterr().out
    assert "1 of 2 stores answered" in out and "no rows (query_failed" in out, out
    strict = run(shell, "%%p2pquery sites --strict\nSELECT count(*) FROM sales WHERE year = 1")
    assert isinstance(strict.error_in_exec, CellError) and "--strict" in str(strict.error_in_exec)
    # The common case in one cell: each store counts, this kernel adds the counts up.
    result = run(
        shell,
        '%%p2pquery sites --combine "SELECT sum(n) AS n, count(*) AS stores FROM _"\n'
        "SELECT count(*) AS n FROM sales",
    )
    assert result.success, result.error_in_exec
    total = shell.user_ns["_"]
    assert int(total["stores"][0]) == 2 and int(total["n"][0]) == int(frame["n"].sum())
    assert "2 of 2 stores answered" in capsys.readouterr().out


def test_here_joins_your_own_dataframes(
    shell: InteractiveShell, sample_store: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(
        shell,
        f"%%p2pquery local:{sample_store} --out by_region\n"
        "SELECT region, count(*) AS n FROM sales GROUP BY 1",
    ).success
    shell.user_ns["targets"] = pd.DataFrame({"region": ["north", "south"], "goal": [1, 10**9]})
    result = run(
        shell,
        "%%p2pquery here\nSELECT b.region, b.n >= t.goal AS met FROM by_region b "
        "JOIN targets t USING (region) WHERE t.goal > {floor} ORDER BY 1".replace("{floor}", "0"),
    )
    assert result.success, result.error_in_exec
    frame = shell.user_ns["_"]
    assert frame["region"].tolist() == ["north", "south"] and frame["met"].tolist() == [True, False]
    assert "this kernel's DuckDB" in capsys.readouterr().out
    missing = run(shell, "%%p2pquery here\nSELECT * FROM no_such_frame")
    assert isinstance(missing.error_in_exec, CellError) and "no_such_frame" in str(
        missing.error_in_exec
    )


def test_a_mistyped_alias_is_not_taken_for_a_missing_file(shell: InteractiveShell) -> None:
    result = run(shell, "%%p2pquery nosuchalias\nSELECT 1")
    assert isinstance(result.error_in_exec, CellError)
    message = str(result.error_in_exec)
    assert "no alias and no store file named 'nosuchalias'" in message
    assert "%p2p aliases" in message and "does not exist" not in message
