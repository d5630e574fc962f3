"""The executor and its sandboxed workers: limits, crashes, streaming, store errors."""

from __future__ import annotations

import datetime
import decimal
import os
import select
import signal
import threading
import time
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from p2p2p.errors import (
    BadParameters,
    QueryFailed,
    QueryRefused,
    QueryTimeout,
    ResourceExhausted,
    StoreBusy,
    StoreCorrupt,
    StoreLocked,
    StoreMissing,
    WorkerCrashed,
)
from p2p2p.store.executor import Executor, ResultStream
from p2p2p.store.limits import Limits
from p2p2p.store.sandbox import landlock_abi


def worker_pid(ex: Executor) -> int:
    return int(ex.warm()["pid"])


def test_query_returns_arrow_with_counts(executor: Executor) -> None:
    table, info = executor.query_arrow(
        "SELECT region, count(*) AS n FROM sales WHERE year = $year GROUP BY 1 ORDER BY 1",
        {"year": 2022},
    )
    direct = duckdb.connect(executor.path, read_only=True)
    expected = direct.execute(
        "SELECT region, count(*) FROM sales WHERE year = 2022 GROUP BY 1 ORDER BY 1"
    ).fetchall()
    direct.close()
    assert list(zip(table["region"].to_pylist(), table["n"].to_pylist(), strict=True)) == expected
    assert info.rows == len(expected) and not info.truncated and info.bytes > 0


def test_parameters_keep_their_types(executor: Executor) -> None:
    params = {
        "d": datetime.date(2024, 2, 29),
        "ts": datetime.datetime(2024, 1, 1, 12, 30, tzinfo=datetime.UTC),
        "dec": decimal.Decimal("12.34"),
        "b": b"\x00\xff",
        "n": None,
        "xs": [1, 2, 3],
        "s": "x'; DROP TABLE sales; --",
    }
    table, _ = executor.query_arrow(
        "SELECT $d AS d, $ts AS ts, $dec AS dec, $b AS b, $n AS n, $xs AS xs, $s AS s", params
    )
    row = table.to_pylist()[0]
    assert row["d"] == params["d"]
    assert row["ts"] == params["ts"]
    assert row["dec"] == params["dec"]
    assert row["b"] == params["b"]
    assert row["n"] is None and row["xs"] == [1, 2, 3] and row["s"] == params["s"]
    # The injection attempt was a value; the table is still there.
    assert executor.query_arrow("SELECT count(*) AS n FROM sales")[0]["n"][0].as_py() == 20_000


def test_positional_parameters(executor: Executor) -> None:
    table, _ = executor.query_arrow("SELECT ? + ? AS s", [2, 3])
    assert table["s"][0].as_py() == 5


def test_bad_parameters_are_named(executor: Executor) -> None:
    with pytest.raises(BadParameters):
        executor.query_arrow("SELECT $x", {"x": object()})
    with pytest.raises(BadParameters, match="identifier"):
        executor.query_arrow("SELECT 1", {"not a name": 1})
    with pytest.raises((BadParameters, QueryFailed)):
        executor.query_arrow("SELECT $missing", {"other": 1})


def test_sql_errors_are_query_failed_and_worker_survives(executor: Executor) -> None:
    pid = worker_pid(executor)
    with pytest.raises(QueryFailed, match="nosuchcolumn"):
        executor.query_arrow("SELECT nosuchcolumn FROM sales")
    with pytest.raises(QueryFailed, match=r"[Ss]yntax"):
        executor.query_arrow("SELEC 1")
    assert executor.query_arrow("SELECT 1 AS one")[0]["one"][0].as_py() == 1
    assert worker_pid(executor) == pid


def test_streaming_in_batches_and_cancel_keeps_the_worker(executor: Executor) -> None:
    pid = worker_pid(executor)
    with executor.query("SELECT * FROM range(2000000) t(i)") as stream:
        first = next(iter(stream))
        assert isinstance(first, pa.RecordBatch) and 0 < first.num_rows < 2_000_000
    # Closing early cancelled the query; the same worker serves the next one.
    assert executor.query_arrow("SELECT 42 AS x")[0]["x"][0].as_py() == 42
    assert worker_pid(executor) == pid


def test_ipc_chunks_form_one_arrow_stream(executor: Executor) -> None:
    with executor.query("SELECT i, i::VARCHAR AS s FROM range(300000) t(i)") as stream:
        raw = b"".join(stream.ipc_chunks())
        info = stream.info
    table = pa.ipc.open_stream(raw).read_all()
    assert table.num_rows == 300_000 == info.rows
    assert table["i"][-1].as_py() == 299_999


def test_truncation_is_marked_never_silent(executor: Executor) -> None:
    table, info = executor.query_arrow("SELECT * FROM range(1000)", max_rows=10)
    assert table.num_rows == 10 and info.truncated and info.truncated_by == "max_rows"
    table, info = executor.query_arrow("SELECT * FROM range(10)", max_rows=10)
    assert table.num_rows == 10 and not info.truncated
    table, info = executor.query_arrow(
        "SELECT repeat('x', 1000) AS s FROM range(1000)", max_bytes=100_000
    )
    assert 0 < table.num_rows < 1000 and info.truncated_by == "max_bytes"
    assert table.nbytes <= 100_000


def test_a_repeated_statement_runs_again_under_its_own_limits_and_grant(
    sample_store: str,
) -> None:
    # One worker, so every repeat reaches the worker that kept the statement ready.
    with Executor(sample_store, Limits(workers=1, timeout_s=10)) as ex:
        sample = "SELECT count(*) AS n FROM range(100000) USING SAMPLE 50 PERCENT (bernoulli)"
        counts = {ex.query_arrow(sample)[0].column("n")[0].as_py() for _ in range(3)}
        assert len(counts) > 1  # run anew each time, not a kept answer
        few, info = ex.query_arrow("SELECT * FROM range(100)", max_rows=10)
        assert few.num_rows == 10 and info.truncated
        more, info = ex.query_arrow("SELECT * FROM range(100)", max_rows=50)
        assert more.num_rows == 50 and info.truncated
        everyone, _ = ex.query_arrow("SELECT count(*) AS n FROM sales")
        assert everyone.column("n")[0].as_py() > 0
        # The same text from a caller not granted the table is refused all the same.
        with pytest.raises(QueryRefused):
            ex.query_arrow("SELECT count(*) AS n FROM sales", tables=["regions"])


def test_callers_cannot_loosen_owner_limits(sample_store: str) -> None:
    with Executor(sample_store, Limits(max_rows=5)) as ex:
        table, info = ex.query_arrow("SELECT * FROM range(100)", max_rows=1000)
        assert table.num_rows == 5 and info.truncated


def test_timeout_interrupts_and_worker_survives(executor: Executor) -> None:
    pid = worker_pid(executor)
    started = time.monotonic()
    with pytest.raises(QueryTimeout, match="1 s"):
        executor.query_arrow("SELECT count(*) FROM range(1000000000000)", timeout_s=1)
    assert (
        time.monotonic() - started < 6
    )  # interrupted, not killed (that takes 1 + 3 s and says so)
    assert executor.query_arrow("SELECT 1 AS x")[0]["x"][0].as_py() == 1
    assert worker_pid(executor) == pid


def test_unresponsive_worker_is_killed_and_replaced(executor: Executor) -> None:
    pid = worker_pid(executor)
    stream = executor.query("SELECT count(*) FROM range(1000000000000)", timeout_s=1)
    os.kill(pid, signal.SIGSTOP)  # a worker that ignores even the interrupt
    started = time.monotonic()
    with pytest.raises(QueryTimeout, match="killed"):
        stream.read_all()
    assert time.monotonic() - started < 8
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert executor.query_arrow("SELECT 7 AS x")[0]["x"][0].as_py() == 7
    assert worker_pid(executor) != pid


def test_crashed_worker_costs_one_query(executor: Executor) -> None:
    pid = worker_pid(executor)
    stream = executor.query("SELECT count(*) FROM range(1000000000000)", timeout_s=5)
    time.sleep(0.3)
    os.kill(pid, signal.SIGKILL)  # what the kernel's OOM killer would do
    with pytest.raises(WorkerCrashed, match="SIGKILL"):
        stream.read_all()
    assert executor.query_arrow("SELECT 8 AS x")[0]["x"][0].as_py() == 8


def test_memory_bomb_is_stopped(executor: Executor) -> None:
    with pytest.raises((ResourceExhausted, QueryTimeout)):
        executor.query_arrow("SELECT length(repeat('x', 4000000000)) AS n")
    assert executor.query_arrow("SELECT 9 AS x")[0]["x"][0].as_py() == 9


def test_pool_runs_queries_side_by_side_and_reports_busy(sample_store: str) -> None:
    with Executor(sample_store, Limits(workers=2, timeout_s=2)) as ex:
        a = ex.query("SELECT * FROM range(3000000)")
        b = ex.query("SELECT * FROM range(3000000)")
        next(iter(a))
        next(iter(b))
        with pytest.raises(StoreBusy, match="busy"):
            ex.query("SELECT 1")
        a.close()
        assert ex.query_arrow("SELECT 1 AS x")[0]["x"][0].as_py() == 1
        b.close()


def test_threads_share_an_executor(executor: Executor) -> None:
    results: list[int] = []
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            table, _ = executor.query_arrow(
                "SELECT sum(i) AS s FROM range($n) t(i)", {"n": 1000 + i}
            )
            results.append(int(table["s"][0].as_py()))
        except BaseException as exc:  # collected for the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors
    assert sorted(results) == sorted(sum(range(1000 + i)) for i in range(6))


def test_schema_lists_tables_columns_and_counts(executor: Executor) -> None:
    schema = executor.schema()
    by_name = {r["name"]: r for r in schema["relations"]}
    assert set(by_name) == {"regions", "products", "sales", "yearly"}
    assert by_name["sales"]["rows"] == 20_000 and by_name["yearly"]["kind"] == "view"
    assert {"name": "amount", "type": "DECIMAL(12,2)", "nullable": True} in by_name["sales"][
        "columns"
    ]


def test_missing_store(tmp_path: Path) -> None:
    with pytest.raises(StoreMissing, match="does not exist"):
        Executor(tmp_path / "nope.duckdb")


def test_corrupt_store(tmp_path: Path) -> None:
    path = tmp_path / "broken.duckdb"
    path.write_bytes(b"this is not a database" * 1000)
    with Executor(path) as ex, pytest.raises(StoreCorrupt, match="not a DuckDB database file"):
        ex.query_arrow("SELECT 1")
    # A data file given as a store says how to read it instead (not DuckDB's catalog
    # error about an in-memory database).
    data = tmp_path / "small.csv"
    data.write_text("a,b\n1,2\n")
    with (
        Executor(data) as ex,
        pytest.raises(StoreCorrupt, match=r"a data file: .*read_csv\('small.csv'\)"),
    ):
        ex.query_arrow("SELECT 1")


def test_store_open_for_writing_elsewhere(tmp_path: Path) -> None:
    path = tmp_path / "busy.duckdb"
    writer = duckdb.connect(str(path))
    writer.execute("CREATE TABLE t AS SELECT 1 AS x")
    try:
        with Executor(path) as ex, pytest.raises(StoreLocked, match="close that connection"):
            ex.query_arrow("SELECT * FROM t")
    finally:
        writer.close()
    with Executor(path) as ex:
        assert ex.query_arrow("SELECT x FROM t")[0]["x"][0].as_py() == 1


def test_worker_is_sandboxed(executor: Executor) -> None:
    ready = executor.warm()
    assert "no file writes" in ready["sandbox"]
    assert any(item.startswith("address space") for item in ready["sandbox"])
    if landlock_abi() >= 1:
        assert any(item.startswith("landlock filesystem") for item in ready["sandbox"])


def test_worker_environment_carries_no_secrets(
    sample_store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("P2P2P_TEST_SECRET", "hunter2")
    with Executor(sample_store) as ex:
        pid = worker_pid(ex)
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes()
        except PermissionError:
            pytest.skip("cannot read another process's environment here")
        assert b"hunter2" not in environ
        assert b"HOME=" in environ and str(Path.home()).encode() + b"\x00" not in environ


def read_without_blocking(stream: ResultStream, within_s: float = 10.0) -> bytes:
    """What an event loop does: wait for the pipe to be readable, take what is there,
    and read the answer only once all of it is in hand (so no read can block)."""
    deadline = time.monotonic() + within_s
    while not stream.end_in_hand():
        assert time.monotonic() < deadline, "the answer did not arrive"
        readable, _, _ = select.select([stream.fileno()], [], [], 1.0)
        if readable:
            stream.take_available()
    return b"".join(stream.ipc_chunks())


def test_a_small_answer_is_read_without_blocking_and_frees_its_worker(executor: Executor) -> None:
    pid = worker_pid(executor)
    stream = executor.try_query_encoded("SELECT 42 AS x", b"", None)
    assert stream is not None
    table = pa.ipc.open_stream(read_without_blocking(stream)).read_all()
    assert table["x"].to_pylist() == [42] and stream.done and stream.info.rows == 1
    assert worker_pid(executor) == pid  # back in the pool, no bytes left over
    # A refusal arrives the same way, as the query's error.
    stream = executor.try_query_encoded("SELECT * FROM no_such_table", b"", None)
    assert stream is not None
    with pytest.raises(QueryRefused, match="no_such_table"):
        read_without_blocking(stream)
    assert executor.query_arrow("SELECT 1 AS x")[0]["x"][0].as_py() == 1


def test_try_query_never_waits_for_a_worker(sample_store: str) -> None:
    with Executor(sample_store, Limits(workers=1, timeout_s=5)) as ex:
        # No worker started yet: starting one takes a while, so the caller's thread does it.
        assert ex.try_query_encoded("SELECT 1", b"", None) is None
        ex.warm()
        busy = ex.query("SELECT * FROM range(3000000)")
        next(iter(busy))
        assert ex.try_query_encoded("SELECT 1", b"", None) is None  # the one worker is busy
        busy.close()
        # A request too big to write without blocking goes the thread's way too.
        assert ex.try_query_encoded("SELECT '" + "x" * 40_000 + "'", b"", None) is None
        with pytest.raises(BadParameters, match="compression"):
            ex.try_query_encoded("SELECT 1", b"", None, compression="snappy")
        assert ex.query_arrow("SELECT 3 AS x")[0]["x"][0].as_py() == 3


def test_an_aborted_or_discarded_query_gives_its_slot_back(sample_store: str) -> None:
    with Executor(sample_store, Limits(workers=1, timeout_s=5)) as ex:
        for stop in ("abort then close", "discard"):
            pid = worker_pid(ex)
            stream = ex.query("SELECT count(*) FROM range(1000000000000)")
            if stop == "discard":
                stream.discard()
            else:
                stream.abort()
                stream.close()
            with pytest.raises(ProcessLookupError):
                for _ in range(50):  # SIGKILL is delivered asynchronously
                    os.kill(pid, 0)
                    time.sleep(0.05)
            # The pool's one slot is free again: no StoreBusy for the next query.
            assert ex.query_arrow("SELECT 5 AS x", timeout_s=5)[0]["x"][0].as_py() == 5


def test_a_small_answer_travels_uncompressed_a_big_one_compressed(executor: Executor) -> None:
    def size(sql: str, codec: str | None) -> int:
        return executor.query_arrow(sql, compression=codec)[1].bytes

    # A compressed buffer carries its length in 8 more bytes: equal sizes mean no codec.
    assert size("SELECT 42 AS x, 'hello' AS s", "zstd") == size(
        "SELECT 42 AS x, 'hello' AS s", None
    )
    big = "SELECT i % 10 AS d, 'label-' || (i % 7) AS s FROM range(200000) t(i)"
    assert size(big, "zstd") < size(big, None) * 0.5
    assert executor.query_arrow(big, compression="zstd")[0].equals(executor.query_arrow(big)[0])


def test_an_abort_racing_the_answers_end_never_kills_a_pooled_worker(sample_store: str) -> None:
    # The owner aborts from its event loop while a thread may be reading the answer's
    # last frame; a worker that thread already gave back serves the next caller.
    with Executor(sample_store, Limits(workers=1, timeout_s=5)) as ex:
        ex.warm()
        for i in range(60):
            stream = ex.query("SELECT 1 AS x")
            reader = threading.Thread(target=_read_quietly, args=(stream,))
            reader.start()
            stream.abort()
            reader.join(10)
            assert ex.query_arrow(f"SELECT {i} AS x")[0]["x"][0].as_py() == i


def _read_quietly(stream: ResultStream) -> None:
    try:
        stream.read_all()
    except Exception:  # the abort may win: that query's error is expected, not the next's
        stream.close()
