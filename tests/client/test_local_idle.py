"""A local: store with your own trust lets go of the file once it has been idle, so this
notebook (or another program) may open it for writing again, and costs one timer for any
number of queries, not a thread per query."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import duckdb
import pytest

from p2p2p.client import local
from p2p2p.client.local import LocalStore


def test_the_file_is_let_go_after_idle_with_one_timer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(local, "IDLE_CLOSE_S", 0.4)
    path = tmp_path / "mine.duckdb"
    duckdb.connect(str(path)).execute("CREATE TABLE t AS SELECT 1 AS x").close()
    store = LocalStore(str(path))
    try:
        before = threading.active_count()
        for _ in range(50):
            assert store.query_arrow("SELECT x FROM t").num_rows == 1
        assert threading.active_count() <= before + 1  # one idle timer, not fifty
        # While in use the file is held read-only: opening it for writing is refused.
        with pytest.raises(duckdb.Error):
            duckdb.connect(str(path)).close()
        deadline = time.monotonic() + 5
        while True:  # bounded: the timer fires 0.4 s after the last query
            try:
                duckdb.connect(str(path)).close()
                break
            except duckdb.Error:
                assert time.monotonic() < deadline, "the file was never let go"
                time.sleep(0.1)
        assert store.query_arrow("SELECT x FROM t").num_rows == 1  # opened again on demand
    finally:
        store.close()
