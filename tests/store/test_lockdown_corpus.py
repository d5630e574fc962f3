"""The lockdown as a whole: a hostile corpus the store must refuse or contain, then
proof that nothing changed, then a corpus of ordinary analytics that must keep working.

Every statement goes through an ``Executor`` (sandboxed worker, policy, limits), exactly
as a remote caller's would: one for the module, plus a second one that takes the memory
bombs, so the ordinary cases do not depend on worker recycling (which
``test_memory_bombs_leave_the_worker_usable`` checks on its own). Expected outcomes are
what the lockdown should do. Cases that once got through (CTE scoping, pg_catalog,
unnamed statement kinds, deep nesting) stay here as regressions.

The tests of this module depend on running in file order: the "after the corpus" checks
look for damage the hostile cases above them might have done.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import decimal
import hashlib
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest

from p2p2p.errors import (
    P2P2PError,
    QueryFailed,
    QueryRefused,
    QueryTimeout,
    ResourceExhausted,
    ResultTooLarge,
)
from p2p2p.samples.sales import build_sample_store
from p2p2p.store.executor import Executor
from p2p2p.store.limits import Limits

from ..helpers.sharing import descendants

TIMEOUT_S = 3.0  # the store's limit
BOMB_TIMEOUT_S = 1.0  # tightened per query for the CPU bombs, to keep the module fast
BOMB_MAX_ROWS = 1_000
OUT = "@OUT@"  # replaced by a directory that must still be empty after the corpus
STORE_FILE = "corpus.duckdb"

TYPED_SQL = """
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE TABLE typed (
    id INTEGER,
    d DECIMAL(18, 4),
    ts TIMESTAMP WITH TIME ZONE,
    dt DATE,
    iv INTERVAL,
    li INTEGER[],
    st STRUCT(a INTEGER, b VARCHAR),
    mp MAP(VARCHAR, INTEGER),
    bl BLOB,
    u UUID,
    h HUGEINT,
    e mood,
    s VARCHAR,
    b BOOLEAN,
    f DOUBLE
);
SET TimeZone = 'UTC';
INSERT INTO typed VALUES
    (1, 12345.6789, TIMESTAMPTZ '2024-03-01 12:34:56+00', DATE '2024-02-29',
     INTERVAL '1 year 2 months 3 days 04:05:06', [1, 2, NULL], {'a': 7, 'b': 'x'},
     MAP {'k': 1, 'j': 2}, '\\xDE\\xAD'::BLOB, '12345678-1234-5678-1234-567812345678',
     170141183460469231731687303715884105727, 'happy', 'héllo', true, 2.5),
    (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
"""


@dataclasses.dataclass(frozen=True)
class Store:
    path: str
    folder: Path  # holds only the store file
    out: Path  # COPY/EXPORT/ATTACH targets of the hostile corpus: must stay empty
    digest: str  # sha256 of the store file before any query ran
    executor: Executor  # every query of this module, except:
    bombs: Executor  # the memory bombs (recycled workers; see test below)


def _sha256(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    folder = tmp_path_factory.mktemp("lockdown-store")
    path = build_sample_store(folder / STORE_FILE, rows=20_000)
    con = duckdb.connect(path)
    try:
        con.execute(TYPED_SQL)
        con.execute("CHECKPOINT")
    finally:
        con.close()
    out = tmp_path_factory.mktemp("lockdown-out")
    limits = Limits(timeout_s=TIMEOUT_S, memory_limit_mb=256)
    executor, bombs = Executor(path, limits), Executor(path, limits)
    try:
        yield Store(path, folder, out, _sha256(path), executor, bombs)
    finally:
        executor.close()
        bombs.close()


def reference(store: Store, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
    """The same question asked of DuckDB directly (read-only, in this process)."""
    con = duckdb.connect(store.path, read_only=True)
    try:
        return con.execute(sql, params).fetchall()
    finally:
        con.close()


def rows_of(table: pa.Table) -> list[tuple[Any, ...]]:
    return [tuple(row.values()) for row in table.to_pylist()]


# -- the hostile corpus ---------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Refused:
    """Refused by the lockdown rule of this name before DuckDB executed anything."""

    rule: str


@dataclasses.dataclass(frozen=True)
class Fails:
    """Stopped by a limit (or, where noted, by DuckDB's parser): one of these errors."""

    errors: tuple[type[P2P2PError], ...]


@dataclasses.dataclass(frozen=True)
class Truncated:
    """Runs, but the result is cut at the row limit."""

    by: str = "max_rows"


Expect = Refused | Fails | Truncated


def case(sql: str, expect: Expect, id: str, **limits: Any) -> Any:
    """One hostile statement and what must happen to it."""
    return pytest.param(sql, expect, limits, id=id)


TABLE_FUNCTION = Refused("table-function-not-allowed")
FUNCTION = Refused("function-not-allowed")
NOT_IN_STORE = Refused("table-not-in-store")
READ_ONLY = Refused("read-only-kind")
ONE_STATEMENT = Refused("one-statement")
DATA_MODIFYING = Refused("data-modifying-subquery")
TIME_TRAVEL = Refused("time-travel")
TIMEOUT = Fails((QueryTimeout,))
# A memory bomb hits the memory limit first on a quiet machine; on a loaded one the
# allocations can take longer than the time limit. Either limit stopping it is correct.
OUT_OF_MEMORY = Fails((ResourceExhausted, QueryTimeout))

# Every table function of DuckDB 2.0 (core + parquet + json, plus read_xlsx from the excel
# extension, which parses even though it is not loaded) that reads a file, a glob or a URL.
FILE_TABLE_FUNCTIONS = (
    "read_csv",
    "read_csv_auto",
    "read_single_csv_file",
    "read_single_json_file",
    "read_single_parquet_file",
    "sniff_csv",
    "read_parquet",
    "parquet_scan",
    "parquet_metadata",
    "parquet_schema",
    "parquet_file_metadata",
    "parquet_kv_metadata",
    "parquet_full_metadata",
    "parquet_page_index",
    "parquet_bloom_probe",
    "read_json",
    "read_json_auto",
    "read_json_objects",
    "read_json_objects_auto",
    "read_ndjson",
    "read_ndjson_auto",
    "read_ndjson_objects",
    "read_text",
    "read_blob",
    "read_duckdb",
    "glob",
    "read_xlsx",
)

# Table functions that do not read files but reveal host details, run SQL from strings,
# change state, or take raw pointers.
OTHER_TABLE_FUNCTIONS = (
    "query('SELECT 1')",
    "query_table('sales')",
    "json_execute_serialized_sql(json_serialize_sql('SELECT 1'))",
    "duckdb_settings()",
    "duckdb_databases()",
    "duckdb_secrets()",
    "duckdb_extensions()",
    "duckdb_temporary_files()",
    "duckdb_memory()",
    "duckdb_logs()",
    "duckdb_profiling_settings()",
    "pragma_database_list()",
    "pragma_version()",
    "pragma_storage_info('sales')",
    "which_secret('s3://bucket/x', 's3')",
    "checkpoint()",
    "enable_logging()",
    "histogram(sales, units)",
    "test_all_types()",
    "arrow_scan(0, 0, 0)",
)

ENDLESS_CTE_ROWS = "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT * FROM r"
DEEP_SUBQUERIES = "SELECT * FROM " + "(SELECT * FROM " * 500 + "sales" + ") t" * 500

HOSTILE = [
    # Files and URLs through table functions.
    *(
        case(f"SELECT * FROM {fn}('/etc/passwd')", TABLE_FUNCTION, f"file-fn-{fn}")
        for fn in FILE_TABLE_FUNCTIONS
    ),
    case("SELECT * FROM read_csv('http://example.com/x.csv')", TABLE_FUNCTION, "read_csv-http-url"),
    case(
        "SELECT * FROM read_parquet('s3://bucket/x.parquet')", TABLE_FUNCTION, "read_parquet-s3-url"
    ),
    case(
        "SELECT * FROM read_csv(['/etc/passwd', '/etc/hosts'])",
        TABLE_FUNCTION,
        "read_csv-file-list",
    ),
    case("FROM read_csv('/etc/passwd') SELECT *", TABLE_FUNCTION, "from-first-read_csv"),
    case(
        "SELECT * FROM sales, LATERAL read_csv('/etc/' || region)",
        TABLE_FUNCTION,
        "lateral-read_csv",
    ),
    case(
        "SELECT (SELECT count(*) FROM read_csv('/etc/passwd'))",
        TABLE_FUNCTION,
        "scalar-subquery-read_csv",
    ),
    case(
        "SELECT list_transform([1], x -> (SELECT count(*) FROM read_csv('/etc/passwd')))",
        TABLE_FUNCTION,
        "lambda-subquery-read_csv",
    ),
    # Files and URLs through replacement scans (a string where a table name goes).
    case("FROM '/etc/passwd'", NOT_IN_STORE, "replacement-scan-etc-passwd"),
    case("SELECT * FROM '/proc/self/environ'", NOT_IN_STORE, "replacement-scan-proc-environ"),
    case("SELECT * FROM 'file.csv'", NOT_IN_STORE, "replacement-scan-relative-csv"),
    case('SELECT * FROM sales, "data.parquet"', NOT_IN_STORE, "replacement-scan-quoted-ident"),
    case(
        "SELECT * FROM 'https://example.com/data.parquet'", NOT_IN_STORE, "replacement-scan-https"
    ),
    case("SELECT * FROM 's3://bucket/x.parquet'", NOT_IN_STORE, "replacement-scan-s3"),
    case("SELECT * FROM (FROM '/etc/passwd')", NOT_IN_STORE, "replacement-scan-in-subquery"),
    case("WITH x AS (FROM '/etc/passwd') SELECT * FROM x", NOT_IN_STORE, "replacement-scan-in-cte"),
    case(
        "SELECT region FROM sales UNION ALL FROM '/etc/passwd'",
        NOT_IN_STORE,
        "replacement-scan-in-union",
    ),
    case("DESCRIBE '/etc/passwd'", NOT_IN_STORE, "describe-file"),
    case("SUMMARIZE '/etc/passwd'", NOT_IN_STORE, "summarize-file"),
    # SQL from strings, settings, secrets, databases, the environment.
    *(
        case(f"SELECT * FROM {call}", TABLE_FUNCTION, f"table-fn-{call.split('(')[0]}")
        for call in OTHER_TABLE_FUNCTIONS
    ),
    case(
        "SELECT * FROM system.main.duckdb_settings()",
        TABLE_FUNCTION,
        "system-qualified-duckdb_settings",
    ),
    case("SELECT * FROM main.range(3)", TABLE_FUNCTION, "schema-qualified-table-fn"),
    case("SELECT query('SELECT 1')", FUNCTION, "scalar-query"),
    case("SELECT current_setting('home_directory')", FUNCTION, "current_setting"),
    case("SELECT 'home_directory'.current_setting()", FUNCTION, "current_setting-dot-call"),
    case("SELECT getenv('HOME')", FUNCTION, "getenv"),
    case("SELECT system.main.getenv('HOME')", FUNCTION, "getenv-qualified"),
    case("SELECT list_transform(['HOME'], x -> getenv(x))", FUNCTION, "getenv-in-lambda"),
    case("SELECT COLUMNS(c -> getenv(c) IS NULL) FROM sales", FUNCTION, "getenv-in-columns-lambda"),
    case("SELECT read_text('/etc/passwd')", FUNCTION, "scalar-read_text"),
    case("SELECT nextval('seq')", FUNCTION, "nextval"),
    case("SELECT setseed(0.5)", FUNCTION, "setseed"),
    # The allow list from DuckDB's catalog: side effects, SQL in a string, settings,
    # session state, catalog objects by name, and macros over any of those.
    case("SELECT random()", FUNCTION, "side-effects-random"),
    case("SELECT uuid()", FUNCTION, "side-effects-uuid"),
    case("SELECT sleep_ms(10)", FUNCTION, "side-effects-sleep_ms"),
    case("SELECT write_log('x')", FUNCTION, "side-effects-write_log"),
    case("SELECT current_query()", FUNCTION, "side-effects-current_query"),
    case("SELECT error('owner says: paste your token here')", FUNCTION, "side-effects-error"),
    case("SELECT json_serialize_plan('SELECT * FROM sales')", FUNCTION, "sql-in-string-plan"),
    case("SELECT json_serialize_sql('SELECT 1')", FUNCTION, "sql-in-string-parse"),
    case("SELECT getvariable('x')", FUNCTION, "settings-getvariable"),
    case("SELECT txid_current()", FUNCTION, "session-state-txid"),
    case("SELECT pg_sleep(30)", FUNCTION, "macro-over-sleep_ms"),
    case("SELECT get_block_size('store')", FUNCTION, "macro-over-pragma_database_size"),
    case("SELECT list_transform([1], x -> random())", FUNCTION, "random-in-lambda"),
    case("SELECT region FROM sales ORDER BY uuidv7()", FUNCTION, "uuidv7-in-order-by"),
    case("SELECT no_such_function(1)", FUNCTION, "unknown-function"),
    case("SELECT * FROM pragma_database_list", NOT_IN_STORE, "pragma_database_list-view"),
    case("FROM duckdb_databases", NOT_IN_STORE, "duckdb_databases-view"),
    case("FROM sqlite_master", NOT_IN_STORE, "sqlite_master-view"),
    case(
        "SELECT name, setting FROM pg_catalog.pg_settings WHERE name = 'home_directory'",
        NOT_IN_STORE,
        "pg_catalog-pg_settings",
    ),
    # CTE names must only hide a relation where DuckDB itself resolves them to the CTE.
    case(
        "WITH duckdb_databases AS (FROM duckdb_databases) SELECT path FROM duckdb_databases",
        NOT_IN_STORE,
        "cte-self-reference-duckdb_databases",
    ),
    case(
        "WITH pg_settings AS (FROM pg_settings) SELECT name, setting FROM pg_settings",
        NOT_IN_STORE,
        "cte-self-reference-pg_settings",
    ),
    case(
        'WITH "x.csv" AS (FROM "x.csv") FROM "x.csv"',
        NOT_IN_STORE,
        "cte-self-reference-file",
    ),
    case(
        "WITH a AS (FROM pragma_database_list), pragma_database_list AS (SELECT 1) SELECT file FROM a",
        NOT_IN_STORE,
        "cte-forward-reference",
    ),
    # Writing, in every form.
    case(f"COPY sales TO '{OUT}/sales.csv'", READ_ONLY, "copy-to"),
    case(
        f"COPY (SELECT * FROM sales) TO '{OUT}/sales.parquet' (FORMAT parquet)",
        READ_ONLY,
        "copy-query-to",
    ),
    case("COPY sales FROM '/etc/passwd'", READ_ONLY, "copy-from"),
    case(f"EXPORT DATABASE '{OUT}/export'", READ_ONLY, "export-database"),
    case(f"IMPORT DATABASE '{OUT}'", READ_ONLY, "import-database"),
    case("INSERT INTO sales SELECT * FROM sales", READ_ONLY, "insert"),
    case("UPDATE sales SET units = 0", READ_ONLY, "update"),
    case("DELETE FROM sales", READ_ONLY, "delete"),
    case(
        "MERGE INTO sales USING sales s2 ON sales.sale_id = s2.sale_id WHEN MATCHED THEN DELETE",
        READ_ONLY,
        "merge-into",
    ),
    case("CREATE TABLE t AS SELECT 1", READ_ONLY, "create-table"),
    case("CREATE TEMP TABLE t (a INTEGER)", READ_ONLY, "create-temp-table"),
    case("CREATE VIEW v AS SELECT 1", READ_ONLY, "create-view"),
    case("CREATE MACRO m(x) AS x", READ_ONLY, "create-macro"),
    case("CREATE OR REPLACE MACRO read_it() AS TABLE SELECT 1", READ_ONLY, "create-table-macro"),
    case("CREATE SEQUENCE seq", READ_ONLY, "create-sequence"),
    case("CREATE TYPE t AS ENUM ('a')", READ_ONLY, "create-type"),
    case("CREATE SECRET (TYPE s3, KEY_ID 'a', SECRET 'b')", READ_ONLY, "create-secret"),
    case(
        "CREATE PERSISTENT SECRET s (TYPE s3, KEY_ID 'a', SECRET 'b')",
        READ_ONLY,
        "create-persistent-secret",
    ),
    case("DROP TABLE sales", READ_ONLY, "drop-table"),
    case("ALTER TABLE sales ADD COLUMN x INTEGER", READ_ONLY, "alter-table"),
    case("COMMENT ON TABLE sales IS 'x'", READ_ONLY, "comment-on"),
    case(
        "WITH d AS (DELETE FROM sales RETURNING *) SELECT * FROM d",
        DATA_MODIFYING,
        "cte-delete-returning",
    ),
    case(
        "WITH i AS (INSERT INTO sales SELECT * FROM sales RETURNING *) SELECT count(*) FROM i",
        DATA_MODIFYING,
        "cte-insert-returning",
    ),
    case(
        "WITH u AS (UPDATE sales SET units = 0 RETURNING *) SELECT count(*) FROM u",
        DATA_MODIFYING,
        "cte-update-returning",
    ),
    # Other databases, extensions, settings, session state.
    case(f"ATTACH '{OUT}/other.duckdb' AS o", READ_ONLY, "attach"),
    case("DETACH corpus", READ_ONLY, "detach"),
    case("USE memory", READ_ONLY, "use"),
    case("INSTALL httpfs", READ_ONLY, "install"),
    case("LOAD httpfs", READ_ONLY, "load"),
    case("LOAD '/tmp/evil.duckdb_extension'", READ_ONLY, "load-path"),
    case(
        "UPDATE EXTENSIONS",
        READ_ONLY,
        "update-extensions",
    ),
    case("SET enable_external_access = true", READ_ONLY, "set-enable_external_access"),
    case("SET lock_configuration = false", READ_ONLY, "set-lock_configuration"),
    case("SET memory_limit = '10GB'", READ_ONLY, "set-memory_limit"),
    case("SET search_path = 'memory'", READ_ONLY, "set-search_path"),
    case("SET VARIABLE x = 1", READ_ONLY, "set-variable"),
    case("RESET enable_external_access", READ_ONLY, "reset-setting"),
    # DuckDB 2.0 has no RESET ALL: the parser rejects it, so nothing runs (QueryFailed).
    case("RESET ALL", Fails((QueryFailed,)), "reset-all-syntax-error"),
    case("PRAGMA enable_profiling", READ_ONLY, "pragma-enable_profiling"),
    case("PRAGMA threads = 64", READ_ONLY, "pragma-threads"),
    case("PRAGMA database_list", READ_ONLY, "pragma-database_list"),
    case("CALL pragma_database_list()", READ_ONLY, "call-pragma_database_list"),
    case("CALL duckdb_settings()", READ_ONLY, "call-duckdb_settings"),
    case("CHECKPOINT", READ_ONLY, "checkpoint"),
    case("FORCE CHECKPOINT", READ_ONLY, "force-checkpoint"),
    case("VACUUM", READ_ONLY, "vacuum"),
    case("ANALYZE", READ_ONLY, "analyze"),
    case("BEGIN", READ_ONLY, "begin"),
    case("COMMIT", READ_ONLY, "commit"),
    case("ROLLBACK", READ_ONLY, "rollback"),
    case("PREPARE p AS SELECT 1", READ_ONLY, "prepare"),
    case("EXECUTE p", READ_ONLY, "execute"),
    case("DEALLOCATE p", READ_ONLY, "deallocate"),
    case("SHOW VARIABLES", Refused("unsupported-construct"), "show-variables"),
    # PIVOT without an IN list is a MULTI statement (it creates an enum type first).
    case(
        "PIVOT read_csv('/etc/passwd') ON column0 USING count(*)",
        READ_ONLY,
        "pivot-without-in-list",
    ),
    # More than one statement, NUL bytes, empty text, oversize text.
    case("SELECT 1; DROP TABLE sales", ONE_STATEMENT, "two-statements-drop"),
    case("SELECT 1; SELECT 2", ONE_STATEMENT, "two-selects"),
    case("SELECT 1 /* ; */ ; DROP TABLE sales", ONE_STATEMENT, "comment-then-second-statement"),
    case("SELECT 1 --\n; DROP TABLE sales", ONE_STATEMENT, "line-comment-then-second-statement"),
    case("SELECT 1\x00DROP TABLE sales", Refused("nul-byte"), "nul-byte-splits-statements"),
    case("SELECT 1;\x00", Refused("nul-byte"), "trailing-nul-byte"),
    case("", ONE_STATEMENT, "empty"),
    case(";", ONE_STATEMENT, "only-semicolon"),
    case("-- nothing here", ONE_STATEMENT, "only-comment"),
    case("SELECT 1" + " " * 100_000, Refused("sql-too-long"), "sql-too-long"),
    # Case, quoting and comment tricks.
    case("sElEcT * fRoM ReAd_CsV('/etc/passwd')", TABLE_FUNCTION, "mixed-case-read_csv"),
    case("SELECT * FROM \"read_csv\"('/etc/passwd')", TABLE_FUNCTION, "quoted-read_csv"),
    case("SELECT \"GETENV\"('HOME')", FUNCTION, "quoted-upper-getenv"),
    case(
        "SELECT * FROM /* sales */ read_csv('/etc/passwd')",
        TABLE_FUNCTION,
        "block-comment-before-read_csv",
    ),
    case(f"/* harmless */ COPY sales TO '{OUT}/c.csv'", READ_ONLY, "block-comment-before-copy"),
    case("-- SELECT\nDROP TABLE sales", READ_ONLY, "line-comment-before-drop"),
    # Other catalogs and schemas.
    case("SELECT * FROM system.main.sqlite_master", NOT_IN_STORE, "catalog-system"),
    case("SELECT * FROM temp.main.x", NOT_IN_STORE, "catalog-temp"),
    case("SELECT * FROM temp.x", NOT_IN_STORE, "catalog-temp-short"),
    case("SELECT * FROM memory.main.x", NOT_IN_STORE, "catalog-memory"),
    case("SELECT * FROM memory.x", NOT_IN_STORE, "catalog-memory-short"),
    case("DESCRIBE system.main.duckdb_databases", NOT_IN_STORE, "describe-system-view"),
    # Time travel.
    case("SELECT * FROM sales AT (VERSION => 1)", TIME_TRAVEL, "at-version"),
    case("SELECT * FROM sales s AT (TIMESTAMP => now())", TIME_TRAVEL, "at-timestamp"),
    # EXPLAIN (and DESCRIBE) wrapping refused statements.
    case("EXPLAIN SELECT * FROM read_csv('/etc/passwd')", TABLE_FUNCTION, "explain-read_csv"),
    case(f"EXPLAIN ANALYZE COPY sales TO '{OUT}/explain.csv'", READ_ONLY, "explain-analyze-copy"),
    case(
        f"EXPLAIN /* c */ ANALYZE COPY sales TO '{OUT}/explain2.csv'",
        READ_ONLY,
        "explain-comment-analyze-copy",
    ),
    case("EXPLAIN ANALYZE DROP TABLE sales", READ_ONLY, "explain-analyze-drop"),
    case(
        "EXPLAIN ANALYZE WITH d AS (DELETE FROM sales RETURNING *) SELECT * FROM d",
        DATA_MODIFYING,
        "explain-analyze-cte-delete",
    ),
    case(
        f"EXPLAIN (ANALYZE) COPY sales TO '{OUT}/explain3.csv'",
        Refused("explain-options"),
        "explain-options",
    ),
    case("EXPLAIN SELECT getenv('HOME')", FUNCTION, "explain-getenv"),
    case("DESCRIBE SELECT * FROM read_csv('/etc/passwd')", TABLE_FUNCTION, "describe-read_csv"),
    # The parse tree itself as a weapon: deep nesting must not take the worker down.
    case(
        DEEP_SUBQUERIES,
        Fails((QueryRefused, QueryFailed)),
        "500-nested-subqueries",
    ),
    # Resource bombs: stopped by the time limit, the memory limit or the row limit.
    case(
        "SELECT count(*) FROM range(10000000000000)",
        TIMEOUT,
        "bomb-huge-range-count",
        timeout_s=BOMB_TIMEOUT_S,
    ),
    # 10^12 pairs: DuckDB counts 10^10 in under a second on two cores, so smaller
    # products stop being bombs as DuckDB gets faster.
    case(
        "SELECT count(*) FROM range(1000000) a, range(1000000) b",
        TIMEOUT,
        "bomb-cross-join-count",
        timeout_s=BOMB_TIMEOUT_S,
    ),
    # An endless recursive CTE under count(*) either runs out the clock or (on a faster
    # machine) the memory for its accumulated rows; both stop it.
    case(
        "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT count(*) FROM r",
        Fails((QueryTimeout, ResourceExhausted)),
        "bomb-endless-recursive-cte-count",
        timeout_s=BOMB_TIMEOUT_S,
    ),
    case(
        ENDLESS_CTE_ROWS,
        TIMEOUT,
        "bomb-endless-recursive-cte-streamed",
        timeout_s=BOMB_TIMEOUT_S,
    ),
    case(
        "SELECT * FROM range(100000) a, range(100000) b",
        Truncated(),
        "bomb-cross-join-rows",
        max_rows=BOMB_MAX_ROWS,
    ),
    # (The endless recursive CTE streamed and cut at max_rows is tested on its own below:
    # it can wedge the worker for the NEXT query, which would make this corpus flaky.)
    case(
        "SELECT * FROM range(10000000000000)",
        Truncated(),
        "bomb-huge-range-rows",
        max_rows=BOMB_MAX_ROWS,
    ),
    case(
        "SELECT repeat('x', 2000000000)",
        Fails((ResourceExhausted, ResultTooLarge, QueryTimeout)),
        "bomb-giant-string",
    ),
    case("SELECT length(repeat('x', 2000000000))", OUT_OF_MEMORY, "bomb-giant-string-length"),
    case(
        "SELECT repeat('x', 2000000)",
        Fails((ResultTooLarge,)),
        "bomb-row-over-max-bytes",
        max_bytes=1 << 20,
    ),
    case("SELECT range(1000000000)", OUT_OF_MEMORY, "bomb-giant-list-literal"),
    case(
        "SELECT repeat('x', 100000000) AS s FROM range(30)",
        OUT_OF_MEMORY,
        "bomb-giant-strings-in-arrow-conversion",
    ),
    case("SELECT list(range) FROM range(1000000000)", OUT_OF_MEMORY, "bomb-giant-list-aggregate"),
    case(
        "SELECT string_agg(repeat('x', 1000), ',') FROM range(10000000)",
        OUT_OF_MEMORY,
        "bomb-string_agg",
    ),
    case(
        "SELECT * FROM range(1000000000) ORDER BY hash(range)",
        Fails((ResourceExhausted, QueryTimeout)),
        "bomb-giant-sort",
        max_rows=BOMB_MAX_ROWS,
    ),
]


@pytest.mark.parametrize(("sql", "expect", "limits"), HOSTILE)
def test_hostile(store: Store, sql: str, expect: Expect, limits: dict[str, Any]) -> None:
    sql = sql.replace(OUT, str(store.out))
    executor = store.executor
    if isinstance(expect, Fails) and ResourceExhausted in expect.errors:
        executor = store.bombs  # see test_memory_bombs_leave_the_worker_usable
    if isinstance(expect, Truncated):
        table, info = executor.query_arrow(sql, **limits)
        assert info.truncated and info.truncated_by == expect.by, info
        assert table.num_rows == info.rows == limits["max_rows"]
        return
    try:
        table, info = executor.query_arrow(sql, **limits)
    except P2P2PError as exc:
        caught = exc
    else:
        pytest.fail(f"the statement ran: {info.rows} rows, first: {table.slice(0, 3).to_pylist()}")
    if isinstance(expect, Refused):
        assert isinstance(caught, QueryRefused), f"expected refusal [{expect.rule}], got {caught!r}"
        assert caught.rule == expect.rule, str(caught)
    else:
        assert isinstance(caught, expect.errors), f"expected {expect.errors}, got {caught!r}"


def test_hostile_corpus_size() -> None:
    assert len(HOSTILE) >= 60


# -- after the hostile corpus ---------------------------------------------------------


def test_store_still_answers_after_hostile_corpus(store: Store) -> None:
    expected = reference(store, "SELECT count(*), sum(units) FROM sales")
    for executor in (store.executor, store.bombs):
        table, info = executor.query_arrow("SELECT count(*) AS n, sum(units) AS u FROM sales")
        assert rows_of(table) == expected
        assert table["n"].to_pylist() == [20_000] and not info.truncated
    table, _ = store.executor.query_arrow("SELECT count(*) AS n FROM typed")
    assert table["n"].to_pylist() == [2]


def test_worker_reports_its_sandbox(store: Store) -> None:
    ready = store.executor.warm()
    assert isinstance(ready["sandbox"], list) and ready["sandbox"], ready
    assert all(isinstance(item, str) and item for item in ready["sandbox"])
    assert {"products", "regions", "sales", "typed", "yearly"} <= set(ready["relations"])


MEDIUM_QUERY = "SELECT i, repeat('x', 100) AS s FROM range(100000) t(i) ORDER BY i"  # ~10 MB


def test_memory_bombs_leave_the_worker_usable(store: Store) -> None:
    bombs = ("SELECT range(1000000000)", "SELECT list(range) FROM range(1000000000)")
    with Executor(store.path, Limits(timeout_s=TIMEOUT_S, workers=1, memory_limit_mb=256)) as ex:
        for _ in range(3):
            for bomb in bombs:
                with pytest.raises((ResourceExhausted, QueryTimeout)):
                    ex.query_arrow(bomb)
                table, info = ex.query_arrow(MEDIUM_QUERY)
                assert table.num_rows == info.rows == 100_000


def test_hostile_corpus_created_no_files(store: Store) -> None:
    assert sorted(p.name for p in store.out.rglob("*")) == []
    assert sorted(os.listdir(store.folder)) == [STORE_FILE]
    assert _sha256(store.path) == store.digest


# -- the legit analytics corpus -------------------------------------------------------

SAME = "same"  # expected: what DuckDB itself answers to the same statement


def legit(
    sql: str,
    expected: list[tuple[Any, ...]] | str | Callable[[pa.Table], bool],
    id: str,
    params: Any = None,
) -> Any:
    """``expected``: exact rows; SAME; another SQL text whose answer must match; or a check."""
    return pytest.param(sql, params, expected, id=id)


SALES_COLUMNS = ["sale_id", "region", "year", "month", "product_id", "units", "amount"]
REGIONS = [
    ("north", "Nordheim", "Ines Varga"),
    ("south", "Suderburg", "Tomas Lind"),
    ("east", "Osterfeld", "Mara Okafor"),
    ("west", "Westerby", "Jon Brandt"),
]


def _summarize_ok(t: pa.Table) -> bool:
    return t["column_name"].to_pylist() == SALES_COLUMNS and set(t["count"].to_pylist()) == {20_000}


def _explain_ok(t: pa.Table) -> bool:
    return (
        t["explain_key"].to_pylist() == ["physical_plan"]
        and "sales" in t["explain_value"][0].as_py().lower()
    )


def _explain_analyze_ok(t: pa.Table) -> bool:
    return (
        t["explain_key"].to_pylist() == ["analyzed_plan"]
        and "total time" in t["explain_value"][0].as_py().lower()
    )


def _first_five_ok(t: pa.Table) -> bool:
    return (
        t.num_rows == 5
        and t.column_names == SALES_COLUMNS
        and all(1 <= i <= 20_000 for i in t["sale_id"].to_pylist())
    )


LEGIT = [
    legit(
        "SELECT r.city, count(*) AS n, sum(s.units) AS units FROM sales s JOIN regions r USING (region) "
        "GROUP BY r.city ORDER BY r.city",
        SAME,
        "join-group-by",
    ),
    legit(
        "SELECT p.category, sum(s.units * p.unit_price) AS revenue FROM sales s "
        "JOIN products p USING (product_id) GROUP BY ALL ORDER BY revenue DESC",
        SAME,
        "three-way-join-revenue",
    ),
    legit(
        "SELECT region, year, total, rank() OVER (PARTITION BY year ORDER BY total DESC) AS rk "
        "FROM yearly ORDER BY year, rk",
        SAME,
        "window-rank",
    ),
    legit(
        "SELECT i, sum(i) OVER (ORDER BY i) AS running FROM range(1, 6) t(i) ORDER BY i",
        [(1, 1), (2, 3), (3, 6), (4, 10), (5, 15)],
        "window-running-sum",
    ),
    legit(
        "SELECT year, total - lag(total) OVER (ORDER BY year) AS delta "
        "FROM (SELECT year, sum(total) AS total FROM yearly GROUP BY year) ORDER BY year",
        SAME,
        "window-lag",
    ),
    legit(
        "WITH per_region AS (SELECT region, sum(units) AS u FROM sales GROUP BY region) SELECT sum(u) FROM per_region",
        "SELECT sum(units) FROM sales",
        "cte",
    ),
    # A CTE named like a store table that reads that table: must keep working when the
    # CTE-scope gap above is fixed.
    legit(
        "WITH sales AS (SELECT * FROM sales WHERE region = 'east') SELECT count(*) FROM sales",
        "SELECT count(*) FROM sales WHERE region = 'east'",
        "cte-shadowing-store-table",
    ),
    legit(
        "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 10) SELECT sum(n) FROM r",
        [(55,)],
        "recursive-cte-bounded",
    ),
    legit(
        "WITH RECURSIVE fib(n, a, b) AS (SELECT 1, 0, 1 UNION ALL SELECT n + 1, b, a + b FROM fib WHERE n < 10) "
        "SELECT list(a ORDER BY n) FROM fib",
        [([0, 1, 1, 2, 3, 5, 8, 13, 21, 34],)],
        "recursive-cte-fibonacci",
    ),
    legit(
        "SELECT region, year, count(*) AS n FROM sales GROUP BY ALL ORDER BY ALL",
        "SELECT region, year, sales FROM yearly ORDER BY ALL",
        "group-by-all-matches-view",
    ),
    legit(
        "SELECT region, count(*) AS n FROM sales GROUP BY ROLLUP (region) ORDER BY region NULLS LAST",
        SAME,
        "rollup",
    ),
    legit(
        "SELECT region, year, total FROM yearly "
        "QUALIFY row_number() OVER (PARTITION BY region ORDER BY total DESC) = 1 ORDER BY region",
        "SELECT region, arg_max(year, total), max(total) FROM yearly GROUP BY region ORDER BY region",
        "qualify",
    ),
    legit(
        "SELECT region FROM regions UNION SELECT region FROM sales ORDER BY 1",
        [("east",), ("north",), ("south",), ("west",)],
        "union",
    ),
    legit("SELECT region FROM sales EXCEPT SELECT region FROM regions", [], "except"),
    legit("VALUES (1, 'a'), (2, 'b')", [(1, "a"), (2, "b")], "values"),
    legit("FROM sales LIMIT 5", _first_five_ok, "from-first-limit"),
    legit("TABLE regions", lambda t: sorted(rows_of(t)) == sorted(REGIONS), "table-statement"),
    legit("SUMMARIZE sales", _summarize_ok, "summarize"),
    legit(
        "SELECT column_name, column_type FROM (DESCRIBE sales)",
        [
            ("sale_id", "BIGINT"),
            ("region", "VARCHAR"),
            ("year", "INTEGER"),
            ("month", "INTEGER"),
            ("product_id", "INTEGER"),
            ("units", "INTEGER"),
            ("amount", "DECIMAL(12,2)"),
        ],
        "describe",
    ),
    legit(
        "DESCRIBE sales", lambda t: t["column_name"].to_pylist() == SALES_COLUMNS, "describe-plain"
    ),
    legit(
        "SHOW TABLES",
        lambda t: (
            sorted(t["name"].to_pylist()) == ["products", "regions", "sales", "typed", "yearly"]
        ),
        "show-tables",
    ),
    legit("SHOW DATABASES", [("corpus",)], "show-databases"),
    legit("EXPLAIN SELECT region, count(*) FROM sales GROUP BY region", _explain_ok, "explain"),
    legit("EXPLAIN ANALYZE SELECT count(*) FROM sales", _explain_analyze_ok, "explain-analyze"),
    legit(
        "PIVOT sales ON year IN (2021, 2022) USING sum(units) GROUP BY region ORDER BY region",
        "SELECT region, sum(units) FILTER (WHERE year = 2021), sum(units) FILTER (WHERE year = 2022) "
        "FROM sales GROUP BY region ORDER BY region",
        "pivot-with-in-list",
    ),
    legit(
        "SELECT table_name, table_type FROM information_schema.tables WHERE table_schema = 'main' ORDER BY 1",
        [
            ("products", "BASE TABLE"),
            ("regions", "BASE TABLE"),
            ("sales", "BASE TABLE"),
            ("typed", "BASE TABLE"),
            ("yearly", "VIEW"),
        ],
        "information_schema-tables",
    ),
    legit(
        "SELECT table_name, column_count FROM duckdb_tables() WHERE database_name = current_database() ORDER BY 1",
        [("products", 4), ("regions", 3), ("sales", 7), ("typed", 15)],
        "duckdb_tables",
    ),
    legit(
        "SELECT name FROM pragma_table_info('regions')",
        [("region",), ("city",), ("manager",)],
        "pragma_table_info",
    ),
    legit(
        "SELECT count(*), sum(range), max(range) FROM range(1000)", [(1000, 499500, 999)], "range"
    ),
    legit(
        "SELECT list(generate_series) FROM generate_series(1, 10, 3)",
        [([1, 4, 7, 10],)],
        "generate_series",
    ),
    legit("SELECT unnest([3, 1, 2]) AS x ORDER BY x", [(1,), (2,), (3,)], "unnest-scalar"),
    legit(
        "SELECT v FROM unnest(['a', 'b']) t(v) ORDER BY v",
        [("a",), ("b",)],
        "unnest-table-function",
    ),
    legit(
        'SELECT key, value FROM json_each(\'{"a": 1, "b": [2]}\') ORDER BY key',
        [("a", "1"), ("b", "[2]")],
        "json_each",
    ),
    legit(
        "SELECT count(*) AS n FROM sales WHERE year = $year",
        "SELECT count(*) FROM sales WHERE year = 2022",
        "named-parameter",
        {"year": 2022},
    ),
    legit(
        "SELECT count(*) AS n FROM sales WHERE region = ? AND units > ?",
        "SELECT count(*) FROM sales WHERE region = 'north' AND units > 20",
        "positional-parameters",
        ["north", 20],
    ),
    legit("SELECT count(*) FROM (FROM sales USING SAMPLE 10 ROWS)", [(10,)], "using-sample"),
    legit("SELECT max(COLUMNS('^(year|month)$')) FROM sales", [(2024, 12)], "columns-expression"),
    legit(
        "SELECT region, upper(city) FROM regions WHERE city ~ '^[NS]' ORDER BY 1",
        [("north", "NORDHEIM"), ("south", "SUDERBURG")],
        "regex-and-string-functions",
    ),
    legit(
        "SELECT last_day(DATE '2024-02-10'), strftime(DATE '2024-02-29', '%d/%m/%Y')",
        [(datetime.date(2024, 2, 29), "29/02/2024")],
        "date-functions",
    ),
    # DuckDB's own macros over allowed functions (json_group_object's body calls error()).
    legit(
        "SELECT json_group_object(region, units)::VARCHAR, list_sum([1, 2, 3]), "
        "assert_true(true) FROM (SELECT 'north' AS region, 3 AS units)",
        [('{"north":3}', 6, None)],
        "allowed-macros",
    ),
    legit(
        "SELECT region, unnest([1, 2]) AS k FROM regions ORDER BY region, k LIMIT 2",
        [("east", 1), ("east", 2)],
        "unnest-in-select",
    ),
    legit(
        "SELECT count(*) FROM duckdb_tables() t, range(2) r WHERE t.table_name = 'sales'",
        [(2,)],
        "catalog-and-range-table-functions",
    ),
]


@pytest.mark.parametrize(("sql", "params", "expected"), LEGIT)
def test_legit(store: Store, sql: str, params: Any, expected: Any) -> None:
    try:
        table, info = store.executor.query_arrow(sql, params)
    except QueryRefused as exc:
        pytest.fail(f"a legitimate query was refused: {exc}")
    assert not info.truncated and info.rows == table.num_rows
    if callable(expected):
        assert expected(table), table.slice(0, 10).to_pylist()
        return
    rows = rows_of(table)
    if expected == SAME:
        expected = reference(store, sql, params)
    elif isinstance(expected, str):
        expected = reference(store, expected)
    assert rows == expected


def test_legit_corpus_size() -> None:
    assert len(LEGIT) >= 20


def test_typed_values_round_trip_into_arrow(store: Store) -> None:
    table, info = store.executor.query_arrow("SELECT * FROM typed ORDER BY id")
    assert table.num_rows == info.rows == 2
    schema = table.schema
    full, empty = table.to_pylist()

    assert schema.field("d").type == pa.decimal128(18, 4)
    assert full["d"] == decimal.Decimal("12345.6789")

    ts = schema.field("ts").type
    assert pa.types.is_timestamp(ts) and ts.tz is not None, ts
    assert full["ts"] == datetime.datetime(2024, 3, 1, 12, 34, 56, tzinfo=datetime.UTC)

    assert schema.field("dt").type == pa.date32()
    assert full["dt"] == datetime.date(2024, 2, 29)

    assert schema.field("iv").type == pa.month_day_nano_interval()
    months, days, nanos = full["iv"]
    assert (months, days, nanos) == (14, 3, (4 * 3600 + 5 * 60 + 6) * 10**9)

    li = schema.field("li").type
    assert pa.types.is_list(li) and li.value_type == pa.int32(), li
    assert full["li"] == [1, 2, None]

    st = schema.field("st").type
    assert pa.types.is_struct(st), st
    assert [(f.name, f.type) for f in st] == [("a", pa.int32()), ("b", pa.string())]
    assert full["st"] == {"a": 7, "b": "x"}

    mp = schema.field("mp").type
    assert pa.types.is_map(mp) and mp.key_type == pa.string() and mp.item_type == pa.int32(), mp
    assert full["mp"] == [("k", 1), ("j", 2)]

    assert schema.field("bl").type in (pa.binary(), pa.large_binary())
    assert full["bl"] == b"\xde\xad"

    # DuckDB exports UUID as text by default, or as the arrow.uuid extension type when
    # lossless conversion is on; either way it must be this UUID.
    u = schema.field("u").type
    expected_uuid = uuid.UUID("12345678-1234-5678-1234-567812345678")
    if isinstance(u, pa.ExtensionType):
        assert u.extension_name == "arrow.uuid"
        assert full["u"] in (expected_uuid, expected_uuid.bytes)
    else:
        assert u in (pa.string(), pa.large_string(), pa.string_view()), u
        assert uuid.UUID(full["u"]) == expected_uuid

    assert schema.field("h").type == pa.decimal128(38, 0)
    assert full["h"] == 2**127 - 1

    e = schema.field("e").type
    assert pa.types.is_dictionary(e) and e.value_type == pa.string(), e
    assert full["e"] == "happy"

    assert schema.field("s").type == pa.string() and full["s"] == "héllo"
    assert schema.field("b").type == pa.bool_() and full["b"] is True
    assert schema.field("f").type == pa.float64() and full["f"] == 2.5

    assert empty["id"] == 2
    assert all(value is None for name, value in empty.items() if name != "id"), empty


# -- truncation -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("total", "max_rows"),
    [
        pytest.param(1_000, 100, id="inside-first-batch"),
        pytest.param(3 * 65_536, 65_536, id="at-a-batch-boundary"),
    ],
)
def test_max_rows_cut_is_marked(store: Store, total: int, max_rows: int) -> None:
    table, info = store.executor.query_arrow(f"SELECT * FROM range({total})", max_rows=max_rows)
    assert info.truncated and info.truncated_by == "max_rows"
    assert table.num_rows == info.rows == max_rows
    assert table["range"].to_pylist() == list(range(max_rows))


@pytest.mark.parametrize(
    "rows", [pytest.param(100, id="small"), pytest.param(65_536, id="one-full-batch")]
)
def test_result_exactly_at_max_rows_is_not_truncated(store: Store, rows: int) -> None:
    table, info = store.executor.query_arrow(f"SELECT * FROM range({rows})", max_rows=rows)
    assert not info.truncated and info.truncated_by is None
    assert table.num_rows == info.rows == rows


def test_max_bytes_cut_is_marked(store: Store) -> None:
    max_bytes = 1 << 20
    table, info = store.executor.query_arrow(MEDIUM_QUERY, max_bytes=max_bytes)
    assert info.truncated and info.truncated_by == "max_bytes"
    assert 0 < table.num_rows == info.rows < 100_000
    assert table.nbytes <= max_bytes
    assert info.bytes <= max_bytes
    assert table["i"].to_pylist() == list(range(table.num_rows))


def test_truncated_endless_query_leaves_the_worker_usable(store: Store) -> None:
    with Executor(store.path, Limits(timeout_s=1, workers=1, memory_limit_mb=256)) as executor:
        for _ in range(30):
            table, info = executor.query_arrow(ENDLESS_CTE_ROWS, max_rows=BOMB_MAX_ROWS)
            assert info.truncated_by == "max_rows" and table.num_rows == BOMB_MAX_ROWS
            started = time.monotonic()
            table, _ = executor.query_arrow("SELECT 42 AS x")
            assert table["x"].to_pylist() == [42]
            # A wedged worker would hold this query for timeout_s + grace (4 s) and then
            # fail; anything well below that is fine on a loaded machine.
            assert time.monotonic() - started < 3.0


def _resident_mb(pid: int) -> int:
    with open(f"/proc/{pid}/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") >> 20


def test_real_memory_is_bounded_near_the_owners_limit(store: Store) -> None:
    # A string built inside one call lives outside DuckDB's memory accounting and no
    # interrupt stops it. The address-space cap is set far away so that only the resident
    # bound can stop it: the worker must not grow past memory_limit + 2 x slack.
    limits = Limits(timeout_s=60, workers=1, memory_limit_mb=256, address_space_mb=16384)
    with Executor(store.path, limits) as ex:
        ex.query_arrow("SELECT 1")
        pids = descendants(os.getpid())
        peak = [0]
        stop = threading.Event()

        def watch() -> None:
            while not stop.wait(0.01):
                for pid in pids:
                    with contextlib.suppress(OSError, ValueError):
                        peak[0] = max(peak[0], _resident_mb(pid))

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        began = time.monotonic()
        try:
            with pytest.raises(ResourceExhausted, match="more memory"):
                ex.query_arrow("SELECT len(repeat('x', 3000000000))")
        finally:
            stop.set()
            watcher.join()
        assert time.monotonic() - began < 30
        assert 0 < peak[0] <= limits.resident_hard_mb + 64, peak[0]
        _, info = ex.query_arrow(MEDIUM_QUERY)  # a new worker answers
        assert info.rows == 100_000
