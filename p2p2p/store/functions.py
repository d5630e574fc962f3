"""Which of DuckDB's functions a shared query may call: an allow list from DuckDB's catalog.

The rule (``derive``) runs over the rows of ``duckdb_functions()``; its output for the
DuckDB we ship with is checked in as ``function_list.py`` and is what the worker
enforces, so a DuckDB upgrade that adds functions changes nothing until someone
regenerates the list and reviews the difference (``python -m p2p2p.store.functions``
prints it; a test fails while the two disagree). A name on neither list is refused:
the list fails closed.

A function is allowed when it is a built-in scalar, aggregate, window function or macro,
DuckDB does not mark it as having side effects, it is not in one of the reviewed
categories below, and (for a macro) everything its body calls is allowed too.
docs/security.md walks through the categories.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping
from typing import Any

# Reviewed by hand: category -> (the reason a user reads, the names in it). Names here
# that DuckDB does not list (getenv in this build) stay, so an upgrade that brings them
# back does not quietly allow them.
REVIEWED: dict[str, tuple[str, frozenset[str]]] = {
    "sql-in-string": (
        "it parses, plans or builds SQL given as a string, which would bypass the statement checks",
        frozenset(
            {
                "json_serialize_sql",
                "json_serialize_plan",
                "json_deserialize_sql",
                "json_execute_serialized_sql",
                "query",
                "query_table",
            }
        ),
    ),
    "settings": (
        "it reads the worker's settings or variables, which hold paths on the owner's machine",
        frozenset({"current_setting", "getvariable", "in_search_path"}),
    ),
    "environment": (
        "it reads the owner's environment, files or secrets",
        frozenset({"getenv", "which_secret", "read_text", "read_blob"}),
    ),
    "session-state": (
        "it reveals state shared with other viewers' queries on the same worker",
        frozenset({"txid_current"}),
    ),
    "catalog-by-name": (
        "it reads a catalog object named in a string, around the table checks",
        frozenset({"index_key"}),
    ),
}
SIDE_EFFECTS = (
    "DuckDB marks it as having side effects (it changes or reveals the worker's state, "
    "writes a log or sleeps)"
)
INTERNAL = "it is one of DuckDB's internal functions, not meant for queries"
MACRO = "it is a macro whose body calls {callee}, which is not allowed"
CALLABLE_KINDS = frozenset({"scalar", "aggregate", "window", "macro"})
# Names the parser produces that DuckDB's catalog does not list as functions: ``unnest``
# and ``unlist`` are binder special forms; ``!x`` fails at bind time with DuckDB's message.
PARSER_ONLY = frozenset({"!", "unnest", "unlist"})
# Refused when a query calls them, but harmless inside DuckDB's own macros: ``error()``
# only fails the query with the macro's fixed text (json_group_object, assert_true).
MACRO_CALLEES = frozenset({"error"})
HINTS = {
    "random": "; to sample rows use USING SAMPLE (for example FROM t USING SAMPLE 10%)",
}


@dataclasses.dataclass(frozen=True)
class Function:
    """One row of ``duckdb_functions()``, reduced to what the rule reads."""

    name: str
    kind: str  # function_type
    side_effects: bool
    built_in: bool  # defined by DuckDB, not by the store's owner
    calls: frozenset[str] = frozenset()  # a macro's body: the functions it calls
    table_calls: frozenset[str] = frozenset()  # ... and the table functions it reads


def derive(functions: Iterable[Function], table_functions: frozenset[str]) -> dict[str, str]:
    """Every name in the catalog -> ``""`` (allowed) or why it is refused.

    ``table_functions`` are the table functions a query may read (policy's allow list):
    a macro over any other table function is refused.
    """
    by_name: dict[str, list[Function]] = {}
    for function in functions:
        if function.kind in CALLABLE_KINDS:
            by_name.setdefault(function.name.lower(), []).append(function)
    verdicts = {name: _own_verdict(overloads) for name, overloads in by_name.items()}
    # A macro is refused when anything it calls is: repeat until nothing changes.
    for _ in range(len(verdicts) + 1):
        changed = False
        for name, overloads in by_name.items():
            if verdicts[name]:
                continue
            for function in overloads:
                callee = _refused_callee(function, verdicts, table_functions)
                if callee:
                    verdicts[name] = "macro: " + MACRO.format(callee=callee)
                    changed = True
                    break
        if not changed:
            break
    return verdicts


def _own_verdict(overloads: list[Function]) -> str:
    name = overloads[0].name.lower()
    for category, (reason, names) in REVIEWED.items():
        if name in names:
            return f"{category}: {reason}"
    if name.startswith("__"):
        return f"internal: {INTERNAL}"
    if any(f.side_effects for f in overloads):
        return f"side-effects: {SIDE_EFFECTS}"
    if not all(f.built_in for f in overloads):
        return "not-built-in: it is defined in the store, not by DuckDB"
    return ""


def _refused_callee(
    function: Function, verdicts: Mapping[str, str], table_functions: frozenset[str]
) -> str:
    for callee in sorted(function.calls):
        if callee in PARSER_ONLY or callee in MACRO_CALLEES:
            continue
        if verdicts.get(callee, "unknown"):
            return f"{callee}()"
    for callee in sorted(function.table_calls):
        if callee not in table_functions:
            return f"the table function {callee}()"
    return ""


def refusal(name: str, allowed: frozenset[str], refused: Mapping[str, str]) -> str:
    """Why a shared query may not call ``name``; ``""`` when it may."""
    name = name.lower()
    if name in allowed or name in PARSER_ONLY:
        return ""
    reason = refused.get(name)
    if reason:
        return (
            f"the function {name}() is not available to shared queries: "
            + _unlabel(reason)
            + HINTS.get(name, "")
        )
    for _category, (reason, names) in REVIEWED.items():
        if name in names:
            return f"the function {name}() is not available to shared queries: {reason}"
    return (
        f"the function {name}() is not on the list of functions shared queries may call "
        "(DuckDB's built-in functions without side effects; see docs/security.md)"
    )


def _unlabel(reason: str) -> str:
    return reason.split(": ", 1)[1] if ": " in reason else reason


CATALOG_SQL = """
    SELECT function_name, function_type, coalesce(has_side_effects, false),
           database_name = 'system', macro_definition
    FROM duckdb_functions()
"""


def read_catalog(con: Any) -> list[Function]:
    """The catalog's functions, each macro with what its body calls (parsed by DuckDB)."""
    functions = []
    for name, kind, side_effects, built_in, body in con.execute(CATALOG_SQL).fetchall():
        calls: set[str] = set()
        table_calls: set[str] = set()
        if body:
            sql = body if kind == "table_macro" else f"SELECT {body}"
            tree = con.execute("SELECT json_serialize_sql($1)", [sql]).fetchall()[0][0]
            _collect(json.loads(tree), calls, table_calls)
        functions.append(
            Function(
                name,
                kind,
                bool(side_effects),
                bool(built_in),
                frozenset(calls),
                frozenset(table_calls),
            )
        )
    return functions


def _collect(node: Any, calls: set[str], table_calls: set[str]) -> None:
    if isinstance(node, list):
        for item in node:
            _collect(item, calls, table_calls)
    elif isinstance(node, dict):
        if node.get("type") == "TABLE_FUNCTION" and isinstance(node.get("function"), dict):
            table_calls.add(str(node["function"].get("function_name", "")).lower())
            _collect(node["function"].get("children"), calls, table_calls)
        elif "function_name" in node:
            calls.add(str(node["function_name"]).lower())
        for key, value in node.items():
            if key != "function" or node.get("type") != "TABLE_FUNCTION":
                _collect(value, calls, table_calls)


def render(verdicts: Mapping[str, str], version: str) -> str:
    """The text of function_list.py for these verdicts."""
    allowed = sorted(name for name, why in verdicts.items() if not why)
    refused = sorted((name, why) for name, why in verdicts.items() if why)
    lines = [
        f'"""Generated from the catalog of DuckDB {version} by ``python -m p2p2p.store.functions'
        " --write``.",
        "",
        "Do not edit by hand: change the rule or the reviewed categories in functions.py.",
        '"""',
        "",
        f"DUCKDB_VERSION = {version!r}",
        "",
        "ALLOWED: frozenset[str] = frozenset(",
        "    {",
        *(f"        {name!r}," for name in allowed),
        "    }",
        ")",
        "",
        "REFUSED: dict[str, str] = {",
        *(f"    {name!r}: {why!r}," for name, why in refused),
        "}",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Print how the live catalog differs from the checked-in list (``--write`` rewrites it)."""
    import argparse
    import pathlib

    import duckdb

    from . import function_list
    from .policy import ALLOWED_TABLE_FUNCTIONS

    parser = argparse.ArgumentParser(prog="python -m p2p2p.store.functions")
    parser.add_argument("--write", action="store_true", help="rewrite function_list.py")
    args = parser.parse_args(argv)
    verdicts = derive(read_catalog(duckdb.connect()), ALLOWED_TABLE_FUNCTIONS)
    allowed = frozenset(name for name, why in verdicts.items() if not why)
    for name in sorted(allowed - function_list.ALLOWED):
        print(f"+ {name}")
    for name in sorted(function_list.ALLOWED - allowed):
        print(f"- {name}: {verdicts.get(name) or 'no longer in the catalog'}")
    if args.write:
        target = pathlib.Path(__file__).with_name("function_list.py")
        target.write_text(render(verdicts, duckdb.__version__))
        print(f"wrote {target} ({len(allowed)} allowed, {len(verdicts) - len(allowed)} refused)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
