"""The scalar-function allow list: derived from DuckDB's catalog, reviewed, fail closed."""

from __future__ import annotations

import duckdb
import pytest

from p2p2p.errors import QueryRefused
from p2p2p.store import function_list
from p2p2p.store.functions import Function, derive, read_catalog, refusal
from p2p2p.store.policy import ALLOWED_TABLE_FUNCTIONS, check_tree

from .test_policy_rules import CATALOG, tree


@pytest.fixture(scope="module")
def live() -> list[Function]:
    return read_catalog(duckdb.connect())


def test_checked_in_list_is_the_rule_applied_to_this_duckdb(live: list[Function]) -> None:
    # Fails after a DuckDB upgrade until `python -m p2p2p.store.functions --write` is
    # run and the difference reviewed: new functions are refused until then.
    verdicts = derive(live, ALLOWED_TABLE_FUNCTIONS)
    allowed = frozenset(name for name, why in verdicts.items() if not why)
    assert duckdb.__version__ == function_list.DUCKDB_VERSION
    assert sorted(allowed ^ function_list.ALLOWED) == []
    assert {n: w for n, w in verdicts.items() if w} == function_list.REFUSED


def test_every_function_duckdb_marks_as_side_effecting_is_refused(live: list[Function]) -> None:
    flagged = sorted({f.name for f in live if f.side_effects})
    assert "random" in flagged and "setseed" in flagged and "write_log" in flagged
    for name in flagged:
        with pytest.raises(QueryRefused) as info:
            check_tree(tree(f"SELECT {name}()"), CATALOG)
        assert info.value.rule == "function-not-allowed", name


def test_side_effects_are_refused_inside_a_lambda_and_an_order_by() -> None:
    for sql in (
        "SELECT list_transform([1, 2], x -> random())",
        "SELECT * FROM sales ORDER BY random()",
        "SELECT * FROM range(3) WHERE setseed(0.1) IS NULL",
    ):
        with pytest.raises(QueryRefused):
            check_tree(tree(sql), CATALOG)


def test_table_functions_follow_their_own_list_not_the_scalar_one() -> None:
    check_tree(tree("SELECT * FROM duckdb_tables()"), CATALOG)
    check_tree(tree("SELECT * FROM unnest([1, 2]) WHERE unnest > abs(-1)"), CATALOG)
    with pytest.raises(QueryRefused):  # the arguments are still expressions we check
        check_tree(tree("SELECT * FROM range(random()::INT)"), CATALOG)


def test_a_macro_is_refused_when_anything_it_calls_is() -> None:
    functions = [
        Function("abs", "scalar", False, True),
        Function("sleep_ms", "scalar", True, True),
        Function("nap", "macro", False, True, frozenset({"sleep_ms"})),
        Function("doze", "macro", False, True, frozenset({"nap", "abs"})),  # two hops
        Function("sizes", "macro", False, True, table_calls=frozenset({"pragma_database_size"})),
        Function("tables", "macro", False, True, table_calls=frozenset({"duckdb_tables"})),
        Function("unknown_callee", "macro", False, True, frozenset({"not_in_catalog"})),
        Function("owners_macro", "macro", False, False, frozenset({"abs"})),
    ]
    verdicts = derive(functions, frozenset({"duckdb_tables"}))
    assert verdicts["abs"] == "" and verdicts["tables"] == ""
    assert verdicts["sleep_ms"].startswith("side-effects")
    assert "sleep_ms()" in verdicts["nap"]
    assert "nap()" in verdicts["doze"]
    assert "pragma_database_size" in verdicts["sizes"]
    assert verdicts["unknown_callee"].startswith("macro")
    assert verdicts["owners_macro"].startswith("not-built-in")


def test_refusals_say_why_and_how_to_do_without() -> None:
    allowed, refused = function_list.ALLOWED, function_list.REFUSED
    assert refusal("ABS", allowed, refused) == ""
    assert "USING SAMPLE" in refusal("random", allowed, refused)
    assert "settings" in refusal("current_setting", allowed, refused)
    # Not in this DuckDB's catalog at all, still refused for the reviewed reason.
    assert "environment" in refusal("getenv", allowed, refused)
    assert "not on the list" in refusal("made_up_fn", allowed, refused)


def test_the_list_keeps_what_analysts_use() -> None:
    for name in (
        "count", "sum", "avg", "quantile_cont", "row_number", "lag", "date_trunc",
        "strftime", "regexp_matches", "list_transform", "struct_pack", "json_extract",
        "~~", "+", "||", "now", "current_database", "json_group_object", "histogram",
    ):  # fmt: skip
        assert name in function_list.ALLOWED, name
