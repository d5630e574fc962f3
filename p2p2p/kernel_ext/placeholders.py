"""``{name}`` placeholders in SQL cells become bound parameters, never text.

``SELECT * FROM sales WHERE year = {year}`` turns into ``... WHERE year = $year`` with
``{"year": <the Python value>}`` bound by DuckDB. Placeholders inside string literals,
quoted identifiers, dollar-quoted strings and comments are left alone; ``{{`` and ``}}``
write literal braces; DuckDB's struct literals (``{'a': 1}``) pass through.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ..errors import BadParameters

_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_DOLLAR_TAG = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)?\$")


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
        elif sql.startswith("{{", i) or sql.startswith("}}", i):
            out.append(ch)
            i += 2
        elif ch == "{" and (match := _PLACEHOLDER.match(sql, i)):
            name = match.group(1)
            if name not in namespace:
                raise BadParameters(
                    f"the SQL uses {{{name}}} but no variable named {name!r} is defined"
                )
            params[name] = namespace[name]
            out.append(f"${name}")
            i = match.end()
        else:
            out.append(ch)
            i += 1
    return "".join(out), params


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
