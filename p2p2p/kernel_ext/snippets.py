"""Saved SQL snippets (``%%p2pquery --save NAME``), used by later cells as CTEs.

A cell that names a saved snippet (``FROM recent``) gets it as ``WITH recent AS (…)`` in
front, with the snippets that one names in turn, in dependency order; ``--with NAME``
asks for one explicitly. Snippets live in the kernel (as JupySQL's do): a restart
forgets them. The SQL goes to the store as text like any cell, so a share's lockdown
sees the whole statement; ``{name}`` placeholders inside a snippet are bound when the
cell that uses it runs.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from ..errors import BadParameters

__all__ = ["expand", "normalise", "used_in"]

_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_LEADING_WITH = re.compile(r"with(\s+recursive)?\s", re.IGNORECASE)
_COMMENT_OR_SPACE = re.compile(r"(\s+|--[^\n]*(\n|$)|/\*.*?\*/)", re.DOTALL)


def normalise(sql: str) -> str:
    """The snippet's SQL as kept: without the trailing ``;`` that would end the CTE."""
    body = sql.strip()
    while body.endswith(";"):
        body = body[:-1].rstrip()
    if not body:
        raise BadParameters("the snippet is empty: write its SELECT in the cell")
    return body


def used_in(sql: str, snippets: Mapping[str, str]) -> list[str]:
    """The snippet names ``sql`` mentions, as whole words (case-insensitive, as SQL names
    are), in order of first mention."""
    lowered = {name.lower(): name for name in snippets}
    seen: dict[str, None] = {}
    for word in _WORD.findall(sql):
        name = lowered.get(word.lower())
        if name is not None:
            seen.setdefault(name, None)
    return list(seen)


def expand(sql: str, snippets: Mapping[str, str], explicit: Iterable[str] = ()) -> str:
    """``sql`` with the snippets it uses (and ``explicit`` ones) in front as CTEs."""
    for name in explicit:
        if name not in snippets:
            known = ", ".join(sorted(snippets)) or "none yet"
            raise BadParameters(
                f"--with {name}: no snippet of that name (saved: {known}; "
                "%%p2pquery --save NAME makes one)"
            )
    order: list[str] = []
    visiting: list[str] = []

    def visit(name: str) -> None:
        if name in order:
            return
        if name in visiting:
            cycle = " → ".join([*visiting[visiting.index(name) :], name])
            raise BadParameters(f"the snippets use each other in a circle: {cycle}")
        visiting.append(name)
        # A snippet that names itself means the table of that name, not itself.
        for inner in used_in(snippets[name], snippets):
            if inner != name:
                visit(inner)
        visiting.pop()
        order.append(name)

    for name in [*explicit, *used_in(sql, snippets)]:
        visit(name)
    if not order:
        return sql
    ctes = ", ".join(f"{_quote(name)} AS ({snippets[name]}\n)" for name in order)
    start = _skip_comments(sql)
    head = _LEADING_WITH.match(sql, start)
    if head is None:
        return f"WITH {ctes}\n{sql}"
    # The cell has CTEs of its own: ours go first in the same WITH (RECURSIVE kept).
    keyword = "WITH RECURSIVE" if head.group(1) else "WITH"
    return f"{sql[:start]}{keyword} {ctes},\n{sql[head.end() :]}"


def _skip_comments(sql: str) -> int:
    i = 0
    while match := _COMMENT_OR_SPACE.match(sql, i):
        i = match.end()
    return i


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
