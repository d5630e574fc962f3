"""Tab in a %%p2pquery cell: a real jupyter server and kernel, asked for completions the way
JupyterLab, Notebook 7 and VS Code ask (``complete_request``)."""

from __future__ import annotations

import shutil
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest

from p2p2p import build_sample_store

from ..helpers.jupyter import JupyterServer, Kernel

pytestmark = pytest.mark.timeout(300)

CELL = "%%p2pquery local:sample.duckdb\n"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JupyterServer]:
    root = tmp_path_factory.mktemp("notebooks")
    build_sample_store(root / "sample.duckdb", rows=1000)
    # The share reads its own copy: the owner's server holds what it shares open.
    shutil.copy(root / "sample.duckdb", root / "shared.duckdb")
    process = JupyterServer(root, tmp_path_factory.mktemp("home"))
    yield process
    process.stop()


@pytest.fixture(scope="module")
def kernel(server: JupyterServer) -> Iterator[Kernel]:
    kernel = server.kernel()
    kernel.run("%load_ext p2p2p")
    yield kernel
    kernel.close()


def chosen(code: str, reply: dict[str, Any], match: str) -> str:
    """The cell once ``match`` is picked, edited as a frontend edits it."""
    assert match in reply["matches"], reply
    return code[: reply["cursor_start"]] + match + code[reply["cursor_end"] :]


def unchanged_by_tab(code: str, reply: dict[str, Any]) -> bool:
    return all(chosen(code, reply, m) == code for m in reply["matches"])


def test_tables_and_columns_of_the_cells_store(kernel: Kernel) -> None:
    code = CELL + "SELECT * FROM sa"
    reply = kernel.complete(code)
    assert chosen(code, reply, "sales") == CELL + "SELECT * FROM sales"
    assert not [m for m in reply["matches"] if m.startswith("%")], reply  # no %save
    code = CELL + "SELECT reg"
    assert chosen(code, kernel.complete(code), "region") == CELL + "SELECT region"
    code = CELL + "SELECT sales.am"
    assert chosen(code, kernel.complete(code), "amount") == CELL + "SELECT sales.amount"
    # An alias, written after the cursor, as a SELECT list is filled in last.
    code = CELL + "SELECT r.ma FROM sales s JOIN regions r USING (region)"
    reply = kernel.complete(code, code.index("r.ma") + len("r.ma"))
    assert chosen(code, reply, "manager") == code.replace("r.ma ", "r.manager ")
    assert [m for m in reply["matches"] if m.startswith("m")] == ["manager"]  # regions' only
    # A name that fits nothing: Tab leaves the SQL alone, without Python's names.
    code = CELL + "SELECT * FROM sales WHERE zzq"
    reply = kernel.complete(code)
    assert unchanged_by_tab(code, reply) and reply["stderr"] == "", reply


def test_the_magic_line_offers_stores_and_options(kernel: Kernel) -> None:
    code = "%%p2pquery local:sa"
    assert (
        chosen(code, kernel.complete(code), "local:sample.duckdb")
        == "%%p2pquery local:sample.duckdb"
    )
    code = "%%p2pquery local:sample.duckdb --li"
    assert chosen(code, kernel.complete(code), "--limit").endswith(" --limit")
    kernel.run("%p2p group sites local:sample.duckdb local:shared.duckdb")
    code = "%%p2pquery si"
    assert chosen(code, kernel.complete(code), "sites") == "%%p2pquery sites"
    code = "%%p2pquery sites\nSELECT * FROM pro"  # a group: its first store's tables
    assert chosen(code, kernel.complete(code), "products").endswith("FROM products")


def test_snippets_and_the_last_store(kernel: Kernel) -> None:
    kernel.run(
        "%%p2pquery local:sample.duckdb --save big_sales --no-execute\n"
        "SELECT * FROM sales WHERE amount > 900"
    )
    code = CELL + "SELECT count(*) FROM big"
    assert chosen(code, kernel.complete(code), "big_sales").endswith("FROM big_sales")
    code = "%%p2pquery --with bi"
    assert chosen(code, kernel.complete(code), "big_sales") == "%%p2pquery --with big_sales"
    kernel.run(CELL + "SELECT 1 AS a")
    code = "%%p2pquery\nSELECT * FROM reg"  # no target: the one the last cell used
    assert chosen(code, kernel.complete(code), "regions").endswith("FROM regions")


def test_refresh_reads_tables_made_since(kernel: Kernel) -> None:
    code = CELL + "SELECT * FROM fresh"
    assert "fresh_table" not in kernel.complete(code)["matches"]
    # Reading the names let go of the file: the notebook may write it at once.
    kernel.run(
        "import duckdb\n_w = duckdb.connect('sample.duckdb')\n"
        "_w.execute('CREATE TABLE fresh_table AS SELECT 1 AS fresh_col')\n_w.close()"
    )
    assert "read anew" in kernel.run("%p2p refresh local:sample.duckdb")["stdout"]
    assert chosen(code, kernel.complete(code), "fresh_table").endswith("FROM fresh_table")
    code = CELL + "SELECT fresh_c FROM fresh_table"
    reply = kernel.complete(code, code.index("fresh_c") + len("fresh_c"))
    assert chosen(code, reply, "fresh_col") == CELL + "SELECT fresh_col FROM fresh_table"


def test_a_share_completes_and_a_dead_link_costs_one_short_wait(kernel: Kernel) -> None:
    kernel.run("_shared = %share shared.duckdb --name completion --no-dashboard")
    link = kernel.value("_shared.status['link']")
    kernel.run(f"%p2p connect {link} as clinic")
    code = "%%p2pquery cl"
    assert chosen(code, kernel.complete(code), "clinic") == "%%p2pquery clinic"
    code = "%%p2pquery clinic\nSELECT * FROM yea"
    deadline = time.monotonic() + 20
    while "yearly" not in (reply := kernel.complete(code))["matches"]:
        # Names from a share come once it answered: if not by this Tab, by a later one.
        assert time.monotonic() < deadline, reply
        time.sleep(0.5)
    kernel.run("%unshare --all")
    # A relay that takes the connection and never answers.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        dead = f"http://127.0.0.1:{silent.getsockname()[1]}/s/{'a' * 32}/?t=token"
        code = f"%%p2pquery {dead}\nSELECT * FROM sa"
        waits = []
        for _ in range(2):
            started = time.monotonic()
            reply = kernel.complete(code)
            waits.append(time.monotonic() - started)
            assert unchanged_by_tab(code, reply) and reply["stderr"] == "", reply
    assert waits[0] < 5 and waits[1] < 1, waits


def test_python_cells_complete_as_before(kernel: Kernel) -> None:
    kernel.run("completion_probe_value = 1")
    code = "completion_probe_v"
    assert chosen(code, kernel.complete(code), "completion_probe_value") == "completion_probe_value"
    assert "%save" in kernel.complete("%sav")["matches"]
    # Loaded again: one matcher still, answering for the new magics.
    kernel.run("%reload_ext p2p2p")
    ours = "sum(getattr(m, 'matcher_identifier', '') == 'p2p2p.p2pquery' for m in get_ipython().Completer.custom_matchers)"
    assert kernel.value(ours) == 1
    code = CELL + "SELECT * FROM sa"
    reply = kernel.complete(code)
    assert chosen(code, reply, "sales") and reply["stderr"] == "", reply
