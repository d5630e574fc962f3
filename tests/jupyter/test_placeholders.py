from __future__ import annotations

import datetime

import pytest

from p2p2p.errors import BadParameters
from p2p2p.kernel_ext.placeholders import bind


def test_placeholder_becomes_named_parameter() -> None:
    sql, params = bind(
        "SELECT * FROM sales WHERE year = {year} AND region = {r}", {"year": 2022, "r": "north"}
    )
    assert sql == "SELECT * FROM sales WHERE year = $year AND region = $r"
    assert params == {"year": 2022, "r": "north"}


def test_value_is_never_pasted_into_sql() -> None:
    evil = "x'; DROP TABLE sales; --"
    sql, params = bind("SELECT {evil}", {"evil": evil})
    assert evil not in sql
    assert params["evil"] == evil


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT '{year}'",
        'SELECT "{year}" FROM t',
        "SELECT 1 -- {year}\n",
        "SELECT /* {year} */ 1",
        "SELECT $${year}$$",
        "SELECT $tag${year}$tag$",
        "SELECT 'it''s {year}'",
    ],
)
def test_placeholders_in_literals_and_comments_are_left_alone(sql: str) -> None:
    assert bind(sql, {"year": 2022}) == (sql, {})


def test_struct_literals_and_escaped_braces_pass_through() -> None:
    assert bind("SELECT {'a': 1}", {}) == ("SELECT {'a': 1}", {})
    # {{x}} is JupySQL's habit and binds x; other doubled braces are literal braces.
    assert bind("SELECT '{{x}}', {{x}}, {{ x }}", {"x": 1}) == ("SELECT '{{x}}', $x, $x", {"x": 1})
    assert bind("SELECT '{{1}}', {{1}}", {})[0] == "SELECT '{{1}}', {1}"


def test_positional_dollar_parameters_untouched() -> None:
    assert bind("SELECT $1, {d}", {"d": datetime.date(2024, 1, 1)})[0] == "SELECT $1, $d"


def test_unknown_variable_names_it() -> None:
    with pytest.raises(BadParameters, match="'yaer'"):
        bind("SELECT {yaer}", {"year": 1})
