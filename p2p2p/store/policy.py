"""The SQL lockdown rules: which statements an untrusted caller may run on a store.

Pure functions over the statement text, DuckDB's statement kinds and DuckDB's JSON
parse tree (``json_serialize_sql``). The worker does the parsing; nothing here touches
a database, so every rule is testable on its own. The rules fail closed: a node kind we
do not know is refused, not waved through.

Each refusal names its rule (``QueryRefused.rule``); docs/security.md lists them all.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from ..errors import QueryRefused
from . import function_list, functions

# Statement kinds (DuckDB's StatementType names) that may run at all. DESCRIBE, SHOW and
# SUMMARIZE parse as SELECT over a SHOW_REF; EXPLAIN is checked through its inner SELECT.
ALLOWED_KINDS = frozenset({"SELECT", "EXPLAIN"})

# Table functions that read only the store's own catalog or generate values.
# Everything else (read_csv, read_parquet, glob, query, duckdb_settings, duckdb_databases,
# sniff_csv, ...) is refused: they reach files, settings, paths or run SQL from strings.
ALLOWED_TABLE_FUNCTIONS = frozenset(
    {
        "range",
        "generate_series",
        "unnest",
        "duckdb_tables",
        "duckdb_views",
        "duckdb_columns",
        "duckdb_constraints",
        "duckdb_indexes",
        "duckdb_schemas",
        "duckdb_types",
        "duckdb_keywords",
        "duckdb_functions",
        "pragma_table_info",
        "json_each",
        "json_tree",
    }
)

ALLOWED_QUERY_NODES = frozenset(
    {"SELECT_NODE", "SET_OPERATION_NODE", "RECURSIVE_CTE_NODE", "CTE_NODE"}
)
ALLOWED_TABLE_REFS = frozenset(
    {
        "BASE_TABLE",
        "JOIN",
        "SUBQUERY",
        "TABLE_FUNCTION",
        "EXPRESSION_LIST",
        "EMPTY",
        "EMPTY_FROM",
        "SHOW_REF",
        "PIVOT",
    }
)
# SHOW <special>: catalog listings of names only (no paths, no settings).
ALLOWED_SHOW_SPECIAL = frozenset(
    {"tables", "databases", "__show_tables_expanded"}
)  # last: SHOW ALL TABLES
# information_schema views describe only catalog objects. pg_catalog is left out: its
# pg_settings and pg_database reveal settings and the store's path.
METADATA_SCHEMAS = frozenset({"information_schema"})
MAX_DEPTH = 400
_WORD = re.compile(r"\w+|\S")


@dataclasses.dataclass(frozen=True)
class Catalog:
    """What a query may name: the store's own database and its tables and views."""

    database: str
    relations: frozenset[tuple[str, str]]  # (schema, name), lower case
    # A caller granted only some of the store's relations: ``relations`` holds just
    # those, and the catalog's own listings (information_schema, duckdb_*(), EXPLAIN)
    # are refused, since they would name the others.
    limited: bool = False

    @classmethod
    def of(cls, database: str, relations: Iterable[tuple[str, str]]) -> Catalog:
        return cls(database.lower(), frozenset((s.lower(), n.lower()) for s, n in relations))

    def granted(self, tables: Iterable[str]) -> Catalog:
        """The part of this catalog a caller granted ``tables`` may read."""
        wanted = {relation_key(t) for t in tables}
        return Catalog(self.database, self.relations & wanted, True)

    @property
    def schemas(self) -> frozenset[str]:
        return frozenset(s for s, _ in self.relations)

    def names(self) -> list[str]:
        return sorted(n if s == "main" else f"{s}.{n}" for s, n in self.relations)


def relation_key(name: str) -> tuple[str, str]:
    """``"costs"`` or ``"hr.staff"`` as (schema, name), lower case; ``main`` by default."""
    schema, _, table = name.strip().lower().rpartition(".")
    return (schema or "main", table)


def not_granted(what: str, catalog: Catalog) -> QueryRefused:
    # The same words whether or not the relation exists: a limited caller must not
    # learn the names of what it may not read.
    shown = ", ".join(catalog.names()) or "none"
    return QueryRefused(
        "table-not-granted", f"{what} is not among the tables you may read here (yours: {shown})"
    )


# The table functions that list the catalog: a limited caller would see every name.
CATALOG_TABLE_FUNCTIONS = frozenset(
    name for name in ALLOWED_TABLE_FUNCTIONS if name.startswith(("duckdb_", "pragma_"))
)
# What a limited caller reads of the catalog instead: the same listing with only its own
# relations (and schemas), and without the SQL of views and tables, which would name
# what stands behind a granted view. {grant}: its (schema, name) pairs; {schemas}: their
# schemas. Listings not here (constraints, indexes, functions, types, pragma_table_info)
# are refused: a constraint names the table it references.
_IN_STORE = "{cat} = current_database() AND (lower({s}), lower({n})) IN ({{grant}})"
CATALOG_FILTERS: dict[str, str] = {
    "information_schema.tables": "SELECT * FROM information_schema.tables WHERE "
    + _IN_STORE.format(cat="table_catalog", s="table_schema", n="table_name"),
    "information_schema.columns": "SELECT * FROM information_schema.columns WHERE "
    + _IN_STORE.format(cat="table_catalog", s="table_schema", n="table_name"),
    "information_schema.views": "SELECT * REPLACE (NULL::VARCHAR AS view_definition) FROM "
    "information_schema.views WHERE "
    + _IN_STORE.format(cat="table_catalog", s="table_schema", n="table_name"),
    "information_schema.schemata": "SELECT * FROM information_schema.schemata WHERE "
    "catalog_name = current_database() AND lower(schema_name) IN ({schemas})",
    "information_schema.character_sets": "SELECT * FROM information_schema.character_sets",
    "duckdb_tables": "SELECT * REPLACE (NULL::VARCHAR AS sql) FROM duckdb_tables() WHERE "
    + _IN_STORE.format(cat="database_name", s="schema_name", n="table_name"),
    "duckdb_views": "SELECT * REPLACE (NULL::VARCHAR AS sql) FROM duckdb_views() WHERE "
    + _IN_STORE.format(cat="database_name", s="schema_name", n="view_name"),
    "duckdb_columns": "SELECT * FROM duckdb_columns() WHERE "
    + _IN_STORE.format(cat="database_name", s="schema_name", n="table_name"),
    "duckdb_schemas": "SELECT * REPLACE (NULL::VARCHAR AS sql) FROM duckdb_schemas() WHERE "
    "database_name = current_database() AND lower(schema_name) IN ({schemas})",
}


def quote_name(name: str) -> str:
    """A table or column name as a SQL identifier, whatever characters it holds."""
    return '"' + name.replace('"', '""') + '"'


def catalog_filter(key: str, catalog: Catalog) -> str:
    """The SQL a limited caller's ``key`` listing is replaced with (trusted: ours)."""

    def quoted(text: str) -> str:
        return "'" + text.replace("'", "''") + "'"

    pairs = ", ".join(f"({quoted(s)}, {quoted(n)})" for s, n in sorted(catalog.relations))
    schemas = ", ".join(quoted(s) for s in sorted(catalog.schemas))
    return CATALOG_FILTERS[key].format(grant=pairs or "(NULL, NULL)", schemas=schemas or "NULL")


def _filter_key(node: dict[str, Any]) -> str | None:
    """Which catalog listing a table reference reads, if it is one we can filter."""
    kind = node.get("type")
    if kind == "BASE_TABLE" and not node.get("catalog_name"):
        key = f"{str(node.get('schema_name') or '').lower()}.{str(node.get('table_name')).lower()}"
        return key if key in CATALOG_FILTERS else None
    if kind == "TABLE_FUNCTION":
        function = node.get("function") or {}
        name = str(function.get("function_name", "")).lower()
        plain = not (function.get("arguments") or function.get("children"))
        if (
            name in CATALOG_FILTERS
            and plain
            and not function.get("schema")
            and not function.get("catalog")
        ):
            return name
    return None


def filter_catalog(
    tree: Any, catalog: Catalog, parse: Callable[[str], dict[str, Any]]
) -> tuple[Any, int]:
    """``tree`` with every catalog listing replaced by its filtered form for ``catalog``
    (a limited caller), and how many were replaced. ``parse``: SQL text to a query node
    (``json_serialize_sql``), so the replacement is DuckDB's own parse of our SQL."""
    replaced = 0

    def walk(node: Any) -> Any:
        nonlocal replaced
        if isinstance(node, list):
            return [walk(item) for item in node]
        if not isinstance(node, dict):
            return node
        if "class" not in node and "alias" in node and "sample" in node:
            key = _filter_key(node)
            if key is not None:
                replaced += 1
                alias = node.get("alias") or (
                    node.get("table_name") or (node.get("function") or {}).get("function_name")
                )
                return {
                    "type": "SUBQUERY",
                    "alias": alias,
                    "sample": node.get("sample"),
                    "query_location": node.get("query_location"),
                    "subquery": {"node": parse(catalog_filter(key, catalog))},
                    "column_name_alias": node.get("column_name_alias") or [],
                }
        return {key: walk(value) for key, value in node.items()}

    return walk(tree), replaced


def check_text(sql: str, max_chars: int) -> None:
    """Checks on the raw text, before the parser sees it."""
    if len(sql) > max_chars:
        raise QueryRefused(
            "sql-too-long", f"the statement is {len(sql)} characters; the limit is {max_chars}"
        )
    if "\x00" in sql:
        # DuckDB's parser splits statements at a NUL byte, hiding a second statement.
        raise QueryRefused("nul-byte", "the statement contains a NUL byte")
    if not sql.strip():
        raise QueryRefused("one-statement", "the statement is empty")


def check_kinds(kinds: Sequence[str]) -> None:
    """Exactly one statement, of a read kind."""
    if len(kinds) != 1:
        raise QueryRefused(
            "one-statement", f"send exactly one statement; this text holds {len(kinds)}"
        )
    kind = kinds[0].rsplit(".", 1)[-1].upper()
    if kind not in ALLOWED_KINDS:
        hint = ""
        if kind == "MULTI":
            kind = "PIVOT (and other multi-step)"
            hint = "; write PIVOT inside a SELECT with an explicit IN (...) list"
        raise QueryRefused(
            "read-only-kind",
            f"{kind} statements are not allowed; only SELECT/WITH/VALUES/TABLE/FROM, "
            f"DESCRIBE, SHOW, SUMMARIZE and EXPLAIN may run{hint}",
        )


def explain_inner(sql: str, token_offsets: Sequence[int]) -> str:
    """The statement an ``EXPLAIN [ANALYZE]`` wraps, so it can be checked like any query.

    ``token_offsets`` are the start offsets of DuckDB's tokens for ``sql``
    (``duckdb.tokenize``) without its comment tokens, so ``EXPLAIN /* x */ ANALYZE`` works.
    """
    words = [_token(sql, token_offsets, i).lower() for i in range(min(3, len(token_offsets)))]
    if not words or words[0] != "explain":
        raise QueryRefused("read-only-kind", "could not find the statement inside EXPLAIN")
    start = 1
    if len(words) > 1 and words[1] in ("analyze", "analyse"):
        start = 2
    if len(token_offsets) <= start:
        raise QueryRefused("read-only-kind", "EXPLAIN needs a query to explain")
    if _token(sql, token_offsets, start) == "(":
        raise QueryRefused("explain-options", "EXPLAIN options in parentheses are not supported")
    return sql[token_offsets[start] :]


def _token(sql: str, offsets: Sequence[int], i: int) -> str:
    # Only the token itself: the text up to the next offset may hold a comment.
    match = _WORD.match(sql, offsets[i])
    return match.group(0) if match else ""


def check_tree(tree: dict[str, Any], catalog: Catalog) -> None:
    """Walk a ``json_serialize_sql`` tree and refuse anything outside the store."""
    if tree.get("error"):
        raise QueryRefused(
            "unparseable",
            "the statement could not be checked: " + str(tree.get("error_message", "parse error")),
        )
    statements = tree.get("statements")
    if not isinstance(statements, list) or len(statements) != 1:
        raise QueryRefused("one-statement", "send exactly one statement")
    _walk(statements[0], catalog, frozenset())


def _walk(
    node: Any,
    catalog: Catalog,
    ctes: frozenset[str],
    depth: int = 0,
    table_function: bool = False,
) -> None:
    if depth > MAX_DEPTH:
        raise QueryRefused("too-complex", f"the statement nests deeper than {MAX_DEPTH} levels")
    if isinstance(node, list):
        for item in node:
            _walk(item, catalog, ctes, depth + 1)
        return
    if not isinstance(node, dict):
        return
    kind = node.get("type")
    if "function_name" in node and not table_function:
        _check_function(node)
    if isinstance(kind, str) and "class" not in node:
        if kind.endswith("_NODE"):
            _check_query_node(kind)
        elif "alias" in node and "sample" in node:  # the fields every TableRef serializes
            _check_table_ref(node, kind, catalog, ctes)
    cte_map = node.get("cte_map")
    if isinstance(cte_map, dict):
        ctes = _walk_ctes(cte_map.get("map") or [], catalog, ctes, depth)
    # A table function is checked against its own allow list (in _check_table_ref);
    # its arguments are expressions like any other.
    is_table_function = kind == "TABLE_FUNCTION" and "class" not in node
    for key, value in node.items():
        if key != "cte_map" and isinstance(value, dict | list):
            _walk(value, catalog, ctes, depth + 1, is_table_function and key == "function")


def _walk_ctes(
    entries: list[Any], catalog: Catalog, ctes: frozenset[str], depth: int
) -> frozenset[str]:
    """Check CTE bodies with DuckDB's scoping; return the names visible to the main query.

    A CTE body sees the CTEs defined before it, and its own name only when it is
    recursive. Inside a plain CTE its own name, or a later sibling's, means the real
    catalog object — so treating those as CTEs would let ``WITH pg_settings AS (FROM
    pg_settings) ...`` read a settings view.
    """
    scope = ctes
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("key"), str):
            raise QueryRefused("unsupported-construct", "a WITH clause of an unknown shape")
        name = entry["key"].lower()
        body = entry.get("value")
        query = body.get("query_node") if isinstance(body, dict) else None
        recursive = (
            isinstance(query, dict)
            and query.get("type") == "RECURSIVE_CTE_NODE"
            and str(query.get("cte_name", "")).lower() == name
        )
        _walk(body, catalog, scope | {name} if recursive else scope, depth + 1)
        scope = scope | {name}
    return scope


def _check_function(node: dict[str, Any]) -> None:
    name = str(node.get("function_name", "")).lower()
    why = functions.refusal(name, function_list.ALLOWED, function_list.REFUSED)
    if why:
        raise QueryRefused("function-not-allowed", why)
    if node.get("catalog") or str(node.get("schema") or "").lower() not in ("", "main"):
        qualified = ".".join(str(p) for p in (node.get("catalog"), node.get("schema"), name) if p)
        raise QueryRefused(
            "function-not-allowed",
            f"functions from other schemas or databases are not available ({qualified})",
        )


def _check_query_node(kind: str) -> None:
    if kind not in ALLOWED_QUERY_NODES:
        raise QueryRefused(
            "data-modifying-subquery",
            f"only plain queries are allowed inside a statement (found {kind.removesuffix('_NODE')})",
        )


def _check_table_ref(
    node: dict[str, Any], kind: str, catalog: Catalog, ctes: frozenset[str]
) -> None:
    if kind not in ALLOWED_TABLE_REFS:
        raise QueryRefused(
            "unsupported-construct", f"the construct {kind} is not allowed in shared queries"
        )
    if kind == "BASE_TABLE":
        if node.get("at_clause"):
            raise QueryRefused("time-travel", "AT (VERSION/TIMESTAMP) clauses are not allowed")
        _check_relation(node, catalog, ctes)
    elif kind == "TABLE_FUNCTION":
        function = node.get("function") or {}
        name = str(function.get("function_name", "")).lower()
        if catalog.limited and name in CATALOG_TABLE_FUNCTIONS and _filter_key(node) is None:
            raise not_granted(
                f"the catalog listing {name}() (it names every table; use SHOW TABLES or "
                "DESCRIBE <table>)",
                catalog,
            )
        if name not in ALLOWED_TABLE_FUNCTIONS or function.get("schema") or function.get("catalog"):
            raise QueryRefused(
                "table-function-not-allowed",
                f"the table function {name}() is not available to shared queries (it could reach "
                "files, settings or other databases); allowed: range, generate_series, unnest, "
                "json_each, json_tree, pragma_table_info and the duckdb_* catalog functions",
            )
    elif kind == "SHOW_REF":
        table = str(node.get("table_name") or "").strip('"').lower()
        if node.get("show_type") == "SHOW_SPECIAL":
            if table not in ALLOWED_SHOW_SPECIAL:
                raise QueryRefused("unsupported-construct", f"SHOW {table} is not allowed")
            if catalog.limited:  # a bare SHOW TABLES is answered, filtered, by the worker
                raise not_granted("a catalog listing inside another query", catalog)
        elif table:
            _check_relation(node, catalog, ctes)


def _check_relation(node: dict[str, Any], catalog: Catalog, ctes: frozenset[str]) -> None:
    cat = str(node.get("catalog_name") or "").lower()
    schema = str(node.get("schema_name") or "").lower()
    name = str(node.get("table_name") or "").lower()
    if not cat and not schema and name in ctes:
        return
    if not cat and schema == catalog.database and schema not in catalog.schemas:
        cat, schema = schema, ""  # "store.table": DuckDB reads a lone qualifier as a database
    if cat not in ("", catalog.database):
        raise QueryRefused(
            "table-not-in-store",
            f"only this store's tables can be queried; {cat!r} is another database",
        )
    if schema in METADATA_SCHEMAS and (not catalog.limited or _filter_key(node) is not None):
        return  # a limited caller reads it filtered (filter_catalog)
    if (schema or "main", name) in catalog.relations:
        return
    if catalog.limited:
        raise not_granted(repr(node.get("table_name")), catalog)
    shown = ", ".join(catalog.names()[:20]) or "none"
    raise QueryRefused(
        "table-not-in-store",
        f"{node.get('table_name')!r} is not a table or view of this store (files, other "
        f"databases and host objects cannot be read); tables: {shown}",
    )
