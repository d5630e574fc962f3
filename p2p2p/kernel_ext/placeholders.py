"""``{name}`` placeholders in SQL cells become bound parameters, never text.

``SELECT * FROM sales WHERE year = {year}`` turns into ``... WHERE year = $year`` with
``{"year": <the Python value>}`` bound by DuckDB. Placeholders inside string literals,
quoted identifiers, dollar-quoted strings and comments are left alone; DuckDB's struct
literals (``{'a': 1}``) pass through.

Other tools' habits bind the same way, as values (never pasted into the SQL as text):
``{{name}}`` (JupySQL's Jinja), ``:name`` (SQLAlchemy) and ``$name`` (DuckDB's own
parameters) when ``name`` is a variable; other ``{{`` and ``}}`` write literal braces.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ..errors import BadParameters

_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_JINJA = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
_DOLLAR_TAG = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)?\$")
_DOLLAR_NAME = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")
_COLON_NAME = re.compile(r":([A-Za-z_][A-Za-z0-9_]*)")
# Where a ``:name`` can be a parameter: after a space, an operator or an opening bracket,
# never after a name (``x::INT``, ``list[a:b]``) or a quote (``{'k':v}``).
_BEFORE_COLON_PARAM = set(" \t\r\n(,=<>+-*/%|")


def bind(sql: str, namespace: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    out: list[str] = []
    params: dict[str, Any] = {}
    i, n = 0, len(sql)
    while i < n:
        ch = sql[i]
        if ch in ("'", '"'):
            end = _closing_quote(sql, i, ch)
            out.append(sql[i:end])
            i = end
        elif sql.startswith("--", i):
            end = sql.find("\n", i)
            end = n if end < 0 else end
            out.append(sql[i:end])
            i = end
        elif sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            end = n if end < 0 else end + 2
            out.append(sql[i:end])
            i = end
        elif ch == "$" and (tag := _DOLLAR_TAG.match(sql, i)) and not sql[i + 1 : i + 2].isdigit():
            close = sql.find(tag.group(0), tag.end())
            end = n if close < 0 else close + len(tag.group(0))
            out.append(sql[i:end])
            i = end
        elif ch == "{" and (match := _JINJA.match(sql, i) or _PLACEHOLDER.match(sql, i)):
            name = match.group(1)
            _take(name, match.group(0), namespace, params)
            out.append(f"${name}")
            i = match.end()
        elif sql.startswith("{{", i) or sql.startswith("}}", i):
            out.append(ch)
            i += 2
        elif ch == "$" and (match := _DOLLAR_NAME.match(sql, i)):
            # Already DuckDB's parameter syntax: only the value is needed.
            _take(match.group(1), match.group(0), namespace, params)
            out.append(match.group(0))
            i = match.end()
        elif (
            ch == ":"
            and (i == 0 or sql[i - 1] in _BEFORE_COLON_PARAM)
            and (match := _COLON_NAME.match(sql, i))
            and match.group(1) in namespace
        ):
            params[match.group(1)] = namespace[match.group(1)]
            out.append(f"${match.group(1)}")
            i = match.end()
        else:
            out.append(ch)
            i += 1
    return "".join(out), params


def _take(name: str, written: str, namespace: Mapping[str, Any], params: dict[str, Any]) -> None:
    if name not in namespace:
        raise BadParameters(
            f"the SQL uses {written} but no variable named {name!r} is defined "
            f"({{{name}}} binds the Python variable {name} as a value)"
        )
    params[name] = namespace[name]


def _closing_quote(sql: str, start: int, quote: str) -> int:
    """Index just past the quote that closes the literal opened at ``start``."""
    i = start + 1
    while i < len(sql):
        if sql[i] == quote:
            if sql[i + 1 : i + 2] == quote:  # doubled quote is an escaped quote
                i += 2
                continue
            return i + 1
        i += 1
    return len(sql)
