"""A JupySQL user's habits in %%p2pquery, and a local file read with its owner's trust,
through a real IPython shell."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.testing import globalipapp

from p2p2p.kernel_ext.magics import CellError


@pytest.fixture(scope="module")
def shell() -> Iterator[InteractiveShell]:
    globalipapp.start_ipython()
    ip = globalipapp.get_ipython()
    assert ip is not None
    ip.run_line_magic("load_ext", "p2p2p")
    yield ip
    for setting in ("displaylimit = 10", "autolimit = 0", "output = 'pandas'", "local_limits = {}"):
        ip.run_line_magic("config", f"P2PMagics.{setting}")


def ok(shell: InteractiveShell, source: str) -> Any:
    result = shell.run_cell(source)
    assert result.success, result.error_in_exec or result.error_before_exec
    return result.result


def refused(shell: InteractiveShell, source: str) -> str:
    result = shell.run_cell(source)
    assert not result.success, f"expected an error from:\n{source}"
    return str(result.error_in_exec or result.error_before_exec)


def test_assign_with_double_arrow_and_one_line_queries(
    shell: InteractiveShell, sample_store: str
) -> None:
    ok(
        shell,
        f"%%p2pquery by_region << local:{sample_store}\nSELECT region, count(*) AS n FROM sales GROUP BY 1",
    )
    frame = shell.user_ns["by_region"]
    assert isinstance(frame, pd.DataFrame) and int(frame["n"].sum()) == 20_000
    ok(shell, "%%p2pquery top<<\nSELECT region FROM sales LIMIT 1")  # glued, last target
    assert len(shell.user_ns["top"]) == 1
    # The line magic returns the result; the SQL keeps its quotes and spacing.
    ok(shell, "n = %p2pquery SELECT count(*) AS n FROM sales WHERE region = 'north'")
    north = duckdb.connect(sample_store, read_only=True)
    expected = north.execute("SELECT count(*) FROM sales WHERE region = 'north'").fetchone()
    north.close()
    assert expected is not None and int(shell.user_ns["n"]["n"][0]) == expected[0]
    ok(shell, f"one = %p2pquery local:{sample_store} --limit 2 SELECT * FROM sales")
    assert len(shell.user_ns["one"]) == 2
    ok(shell, "%p2pquery few << SELECT 1 AS a")
    assert shell.user_ns["few"]["a"].tolist() == [1]
    assert "unknown option --nope" in refused(shell, "%p2pquery --nope SELECT 1")
    assert "no SQL" in refused(shell, "%p2pquery --limit 3")
    assert "two names" in refused(shell, "%%p2pquery a << --out b\nSELECT 1")


def test_snippets_become_ctes(
    shell: InteractiveShell, sample_store: str, capsys: pytest.CaptureFixture[str]
) -> None:
    ok(
        shell,
        f"%%p2pquery local:{sample_store} --save recent --no-execute\nSELECT * FROM sales WHERE year >= 2023;",
    )
    assert "saved snippet recent (not run)" in capsys.readouterr().out
    ok(shell, "%%p2pquery --save north_recent\nSELECT * FROM recent WHERE region = 'north'")
    ok(shell, "%%p2pquery\nSELECT count(*) AS n FROM north_recent")  # found by name, with recent
    con = duckdb.connect(sample_store, read_only=True)
    row = con.execute(
        "SELECT count(*) FROM sales WHERE year >= 2023 AND region = 'north'"
    ).fetchone()
    con.close()
    assert row is not None and int(shell.user_ns["_"]["n"][0]) == row[0]
    # A cell with CTEs of its own keeps them, after ours.
    ok(shell, "%%p2pquery\nWITH mine AS (SELECT 1 AS k)\nSELECT count(*) AS n FROM recent, mine")
    listed = ok(shell, "%p2p snippets")
    assert "recent" in repr(listed) and "north_recent" in repr(listed)
    assert "no snippet of that name" in refused(shell, "%%p2pquery --with nope\nSELECT 1")
    assert "--no-execute goes with --save" in refused(shell, "%%p2pquery --no-execute\nSELECT 1")
    ok(shell, "%p2p snippets forget north_recent")
    assert "north_recent" not in repr(ok(shell, "%p2p snippets"))


def test_other_tools_placeholders_bind_values(shell: InteractiveShell, sample_store: str) -> None:
    shell.user_ns["year"] = 2023
    counts = []
    for written in ("{year}", "{{year}}", "{{ year }}", ":year", "$year"):
        ok(
            shell,
            f"%%p2pquery local:{sample_store}\nSELECT count(*) AS n FROM sales WHERE year = {written}",
        )
        counts.append(int(shell.user_ns["_"]["n"][0]))
    assert len(set(counts)) == 1 and counts[0] > 0
    message = refused(shell, "%%p2pquery\nSELECT $nothing_here_x")
    assert "{nothing_here_x} binds the Python variable" in message
    # A name where SQL wants a table: the hint says a bound value cannot be one.
    shell.user_ns["table"] = "sales"
    message = refused(shell, "%%p2pquery\nSELECT * FROM {{table}}")
    assert "a table or column name cannot be bound" in message


def test_python_values_are_bound_never_pasted(shell: InteractiveShell, sample_store: str) -> None:
    """IPython pastes {x} and $x into a magic's line as text; ours binds them as values,
    and a variable still names the target."""
    shell.user_ns["where"] = sample_store
    shell.user_ns["sneaky"] = "'north' OR 1=1"
    ok(shell, "n = %p2pquery local:{where} SELECT count(*) AS n FROM sales WHERE region = {sneaky}")
    assert int(shell.user_ns["n"]["n"][0]) == 0  # one odd string, not an OR
    ok(shell, "%%p2pquery local:$where\nSELECT count(*) AS n FROM sales")
    assert int(shell.user_ns["_"]["n"][0]) == 20_000
    shell.user_ns["k"] = "1 OR 1=1"
    ok(
        shell,
        '%%p2pquery local:{where} --combine "SELECT count(*) AS n FROM _ WHERE a::VARCHAR = {k}"\n'
        "SELECT 1 AS a UNION ALL SELECT 2",
    )
    assert int(shell.user_ns["_"]["n"][0]) == 0


def test_settings_are_traitlets(shell: InteractiveShell, sample_store: str) -> None:
    ok(shell, "%config P2PMagics.autolimit = 7")
    ok(shell, f"%%p2pquery local:{sample_store}\nSELECT * FROM sales")
    assert len(shell.user_ns["_"]) == 7
    ok(shell, "%%p2pquery --limit 9\nSELECT * FROM sales")  # a cell's own --limit wins
    assert len(shell.user_ns["_"]) == 9
    ok(shell, "%config P2PMagics.autolimit = 0")
    ok(shell, "%config P2PMagics.output = 'polars'")
    ok(shell, "%%p2pquery\nSELECT region, count(*) AS n FROM sales GROUP BY 1 ORDER BY 1")
    polars_frame = shell.user_ns["_"]
    assert type(polars_frame).__module__.startswith("polars") and polars_frame.height == 4
    ok(shell, "%config P2PMagics.output = 'arrow'")
    ok(shell, "%%p2pquery\nSELECT 1 AS a")
    assert type(shell.user_ns["_"]).__name__ == "Table"
    ok(shell, "%config P2PMagics.output = 'pandas'")
    ok(shell, "%%p2pquery --polars\nSELECT 1 AS a")
    assert type(shell.user_ns["_"]).__module__.startswith("polars")
    magics = shell.magics_manager.registry["P2PMagics"]
    before = magics.local_limits
    shell.run_line_magic("config", "P2PMagics.local_limits = {'max_rowz': 5}")
    assert magics.local_limits == before  # refused, with the known names said
    with pytest.raises(Exception, match="must be 0 or more"):
        magics.displaylimit = -1


def test_a_local_file_is_yours(
    shell: InteractiveShell, sample_store: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Your own limits (none by default), your own files; --as-viewer shows the share's."""
    ok(shell, f"%%p2pquery local:{sample_store}\nSELECT * FROM range(1500000)")
    assert len(shell.user_ns["_"]) == 1_500_000  # a share would stop at 1,000,000
    mine = tmp_path / "budget.csv"
    mine.write_text("region,goal\nnorth,5\n")
    ok(
        shell,
        f"%%p2pquery\nSELECT s.region, b.goal FROM sales s JOIN read_csv('{mine}') b USING (region) LIMIT 1",
    )
    assert shell.user_ns["_"]["goal"].tolist() == [5]
    viewer = refused(
        shell, f"%%p2pquery local:{sample_store} --as-viewer\nSELECT * FROM read_csv('{mine}')"
    )
    assert "table-function-not-allowed" in viewer
    capsys.readouterr()
    ok(shell, f"%%p2pquery local:{sample_store} --as-viewer\nSELECT * FROM range(1500000)")
    assert len(shell.user_ns["_"]) == 1_000_000 and "TRUNCATED" in capsys.readouterr().out
    ok(shell, "%config P2PMagics.local_limits = {'max_rows': 3, 'timeout_s': 0.5}")
    ok(shell, f"%%p2pquery local:{sample_store}\nSELECT * FROM sales")
    assert len(shell.user_ns["_"]) == 3
    slow = "SELECT count(DISTINCT a * 7919 + b) FROM range(30000000) t(a), range(5) u(b)"
    assert "your local limit of 0.5 s" in refused(shell, f"%%p2pquery\n{slow}")
    ok(shell, "%config P2PMagics.local_limits = {}")


def test_this_kernels_writer_is_used_and_never_blocked(
    shell: InteractiveShell, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "building.duckdb"
    shell.user_ns["path"] = str(path)
    ok(
        shell,
        "import duckdb\ncon = duckdb.connect(path)\ncon.execute('CREATE TABLE t AS SELECT 1 AS a')",
    )
    capsys.readouterr()
    ok(shell, f"%%p2pquery local:{path}\nSELECT sum(a) AS s FROM t")
    assert int(shell.user_ns["_"]["s"][0]) == 1
    assert "through `con`, which has it open for writing" in capsys.readouterr().out
    ok(shell, "con.execute('INSERT INTO t VALUES (2)')")
    ok(shell, "%%p2pquery\nSELECT sum(a) AS s FROM t")  # sees the writer's committed rows
    assert int(shell.user_ns["_"]["s"][0]) == 3
    ok(shell, "con.close()")
    ok(shell, "%%p2pquery\nSELECT count(*) AS n FROM t")  # read-only, our own connection
    # ... let go after the cell: the notebook may open the file for writing again.
    ok(shell, "con = duckdb.connect(path)\ncon.execute('INSERT INTO t VALUES (4)')\ncon.close()")
    ok(shell, "%%p2pquery\nSELECT sum(a) AS s FROM t")
    assert int(shell.user_ns["_"]["s"][0]) == 7


def test_errors_keep_duckdbs_lines(shell: InteractiveShell, sample_store: str) -> None:
    result = shell.run_cell(f"%%p2pquery local:{sample_store}\nSELECT * FROM no_such_table")
    assert isinstance(result.error_in_exec, CellError)
    shown = result.error_in_exec._render_traceback_()
    assert len(shown) == 1 and "\\n" not in shown[0] and "no_such_table" in shown[0]


def test_after_unshare_all_a_query_says_the_share_is_gone(
    shell: InteractiveShell, sample_store: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("P2P2P_HOME", str(tmp_path / "home"))
    shared = ok(shell, f"%share {sample_store} --name gone-soon --no-dashboard")
    link = shared.status["link"]
    ok(shell, f"%%p2pquery {link}\nSELECT 1 AS a")  # the store stays open in the kernel
    ok(shell, "%unshare --all")
    message = refused(shell, "%%p2pquery\nSELECT 1 AS a")
    assert "offline or has been revoked" in message, message
    assert "Errno" not in message and "Connection refused" not in message
