"""The SQL cell next to JupySQL's and plain DuckDB, in one IPython shell in this process.

The same query on the same file, each path answering with a pandas DataFrame:

* plain DuckDB: ``duckdb.connect(path, read_only=True).sql(q).df()`` (connected once),
  and its Arrow result through p2p2p's ``to_pandas`` (the floor ours is built on);
* JupySQL 0.11: ``%%sql`` on a native DuckDB connection (``%sql con --alias bench``, so
  its DuckDB path, not SQLAlchemy) with ``autopandas``;
* ours: ``%%p2pquery local:PATH`` (the owner's own trust: this process's DuckDB) and
  ``%%p2pquery LINK`` through a relay and a ``p2p2p share`` of the same file (E2E + lz4).

The table has 10 columns of integers, doubles and text and no NULLs or DECIMAL, so every
path makes the same DataFrame (checked). Each call is a cell as a notebook runs it: ours
shows its result table (outside a kernel the widget is built and formatted, not sent),
and ``post_run_cell`` fires after every call, so our read-only connection is let go as
it is after a real cell (the other connections here keep DuckDB's database instance
open, so opening it again is free here: alone on a file it is not). Plus ``SELECT 42``
round trips through each.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
from IPython.core.interactiveshell import ExecutionInfo, ExecutionResult, InteractiveShell
from IPython.utils.capture import capture_output

from p2p2p.store.arrow import to_pandas

from .common import Processes, Section, Target, interleaved
from .sharing import round_trips

QUERY = "SELECT * FROM wide"
PLAIN = "plain DuckDB `.df()`"
ARROW = "plain DuckDB, Arrow → pandas"  # the floor: how ours makes its DataFrame
JUPYSQL = "JupySQL `%%sql` (native DuckDB)"
LOCAL = "`%%p2pquery local:PATH`"
REMOTE = "`%%p2pquery LINK` (relay, E2E + lz4)"
OUT = "_p2p2p_bench_result"  # --out: where each cell's DataFrame is looked for

# JupySQL (through ploomber-core) reports usage and checks PyPI for new versions unless
# told not to: both off before it is first imported, which only `%load_ext sql` does.
os.environ["PLOOMBER_STATS_ENABLED"] = "false"
os.environ["PLOOMBER_VERSION_CHECK_DISABLED"] = "true"


def build(path: Path, rows: int) -> None:
    con = duckdb.connect(str(path))
    con.execute(
        f"""
        CREATE TABLE wide AS
        SELECT i AS id, (i % 97)::INTEGER AS a, (i % 1013)::INTEGER AS b,
               (i * 7) % 100003 AS c, i / 3.0 AS x, sqrt(i) AS y, sin(i) AS z,
               'item-' || (i % 5000) AS label,
               ['north', 'south', 'east', 'west'][1 + i % 4] AS region,
               md5(i::VARCHAR) AS digest
        FROM range({rows}) t(i)
        """
    )
    con.close()


def quiet(con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    """No DuckDB progress bar on the terminal when a query passes 2 s (the machine is
    shared: it happens) from this connection or its cursors, which JupySQL queries on."""
    con.execute("SET enable_progress_bar = false")
    return con


@contextlib.contextmanager
def client_home(path: Path) -> Iterator[None]:
    """This process's p2p2p files (aliases, identity) in ``path`` for the section: the
    benchmark neither reads the user's nor signs with their key."""
    before = os.environ.get("P2P2P_HOME")
    os.environ["P2P2P_HOME"] = str(path)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("P2P2P_HOME", None)
        else:
            os.environ["P2P2P_HOME"] = before


class Cells:
    """One IPython shell with both extensions loaded; each method runs one cell's worth
    and returns the DataFrame it produced."""

    def __init__(self, path: Path) -> None:
        self.own_shell = not InteractiveShell.initialized()  # not a shell we run inside
        self.shell: Any = InteractiveShell.instance()  # IPython is untyped
        # What IPython hands post_run_cell callbacks after a cell (untyped classes too).
        info: Callable[..., Any] = ExecutionInfo
        result: Callable[..., Any] = ExecutionResult
        self._ran = result(
            info("", store_history=False, silent=False, shell_futures=True, cell_id=None)
        )
        with capture_output():  # JupySQL's note that it cannot read pyproject.toml
            self.shell.run_line_magic("load_ext", "p2p2p")
            self.shell.run_line_magic("load_ext", "sql")
        self.shell.user_ns["bench_con"] = quiet(duckdb.connect(str(path), read_only=True))
        for setting in (
            "SqlMagic.autopandas = True",  # a DataFrame, like ours
            "SqlMagic.displaylimit = 10",  # its default: what its ResultSet keeps to show
            "SqlMagic.feedback = 0",
            "SqlMagic.displaycon = False",
        ):
            self.shell.run_line_magic("config", setting)
        self.shell.run_line_magic("sql", "bench_con --alias bench")

    def _cell_done(self) -> None:
        # What IPython does after any cell: ours lets go of its read-only connection.
        self.shell.events.trigger("post_run_cell", self._ran)

    def jupysql(self, sql: str) -> Any:
        frame = self.shell.run_cell_magic("sql", "", sql)
        self._cell_done()
        return frame

    def p2pquery(self, target: str, sql: str) -> Any:
        self.shell.user_ns.pop(OUT, None)
        # Outside a kernel the result table is formatted and "published" to stdout:
        # captured here, so its cost counts but nothing is printed.
        with capture_output():
            self.shell.run_cell_magic("p2pquery", f"{target} --out {OUT}", sql)
        self._cell_done()
        return self.shell.user_ns.pop(OUT)

    def close(self) -> None:
        with capture_output():
            self.shell.run_line_magic("sql", "--close bench")
        self.shell.user_ns.pop("bench_con").close()
        magics = self.shell.magics_manager.registry.get("P2PMagics")
        if magics is not None:
            magics.close()
        if self.own_shell:
            InteractiveShell.clear_instance()


def checked(fn: Callable[[], Any], rows: int) -> Callable[[], None]:
    """``fn``, failing unless it returned the whole DataFrame: no path may time a no-op."""

    def call() -> None:
        frame = fn()
        assert isinstance(frame, pd.DataFrame), f"got {type(frame).__name__}, not a DataFrame"
        assert len(frame) == rows, f"got {len(frame):,} rows, not {rows:,}"

    return call


def run(rounds: int, quick: bool) -> Section:
    rows = 100_000 if quick else 1_000_000
    trips = 50 if quick else 200
    with (
        tempfile.TemporaryDirectory(prefix="p2p2p-bench-") as tmp,
        client_home(Path(tmp) / "client"),
        Processes() as procs,
    ):
        path = Path(tmp) / "wide.duckdb"
        build(path, rows)
        _relay, relay_url = procs.relay()
        limits = ["--max-rows", "100000000", "--max-bytes", str(4 << 30), "--timeout", "300"]
        link = procs.share(path, relay_url, Path(tmp) / "home", *limits)[1]

        con = quiet(duckdb.connect(str(path), read_only=True))
        cells = Cells(path)
        try:
            local = f"local:{path}"
            pulls: dict[str, Callable[[], Any]] = {
                PLAIN: lambda: con.sql(QUERY).df(),
                ARROW: lambda: to_pandas(con.sql(QUERY).to_arrow_table()),
                JUPYSQL: lambda: cells.jupysql(QUERY),
                LOCAL: lambda: cells.p2pquery(local, QUERY),
                REMOTE: lambda: cells.p2pquery(link, QUERY),
            }
            # The warm-up round also checks that all of them make the same DataFrame.
            frames = {name: fn() for name, fn in pulls.items()}
            reference = frames[PLAIN]
            differ = [name for name, frame in frames.items() if not frame.equals(reference)]
            del frames, reference
            times = interleaved({name: checked(fn, rows) for name, fn in pulls.items()}, rounds)

            small = "SELECT 42 AS answer"
            tiny: dict[str, Callable[[], Any]] = {
                PLAIN: lambda: con.sql(small).df(),
                JUPYSQL: lambda: cells.jupysql(small),
                LOCAL: lambda: cells.p2pquery(local, small),
                REMOTE: lambda: cells.p2pquery(link, small),
            }
            rtts = {name: round_trips(checked(fn, 1), trips) for name, fn in tiny.items()}
        finally:
            cells.close()
            con.close()

    plain = times[PLAIN]
    lines = [
        f"| path ({rows:,} rows × 10 columns) | time | × plain DuckDB |",
        "|---|---:|---:|",
        *(f"| {name} | {t:.3f} s | {t / plain:.2f}× |" for name, t in times.items()),
        "",
        f"The same query (`{QUERY}`) on the same file, each path giving a pandas DataFrame "
        f"in this process, one IPython shell for the cells: medians of {rounds} rounds "
        "after one warm-up, the paths taking turns within each round; (×) is the time over "
        "plain DuckDB's `.df()`; its Arrow → pandas row is the floor ours is built on "
        "(DuckDB's Arrow result, then p2p2p's `to_pandas`). The columns are integers, "
        "doubles and text without NULLs, "
        + (
            "and all the DataFrames are equal (`DataFrame.equals`)."
            if not differ
            else f"yet these DataFrames differ from plain DuckDB's: {', '.join(differ)}."
        )
        + " JupySQL runs on a native DuckDB connection with `autopandas`; ours shows its "
        "result table as a cell does (built, not sent: no kernel) and lets go of its "
        "read-only connection after the cell; the link goes through a relay and a "
        "`p2p2p share` process of the same file.",
        "",
        f"| `SELECT 42` as a DataFrame ({trips} in a row) | p50 | p99 |",
        "|---|---:|---:|",
        *(
            f"| {name} | {p50 * 1000:.2f} ms | {p99 * 1000:.2f} ms |"
            for name, (p50, p99) in rtts.items()
        ),
        "",
        "Each `%%p2pquery` cell still builds and formats its result table even for one row "
        "(8 widget models with their layouts and styles, since the pager and sorter are made "
        "only when a result needs them; 33 before), shows a hidden progress line it replaces, "
        "and, for a local file, looks for a writer connection among the notebook's "
        "variables; JupySQL with `autopandas` hands back the frame alone (a notebook then "
        "shows pandas' own table).",
    ]
    ours, theirs = times[LOCAL], times[JUPYSQL]
    targets = [
        Target(
            f"local pull via `%%p2pquery` faster than JupySQL, at {rows:,} rows",
            f"{ours / theirs:.2f}×",
            "≤ 1.0×",
            ours <= theirs,
        ),
    ]
    return Section("The SQL cell vs JupySQL and plain DuckDB", "\n".join(lines), targets)
